"""``--shard auto``: the slice from the variables a CI system sets on its parallel jobs.

Each system's documented base is checked (GitLab counts from 1, CircleCI, Buildkite
and Kubernetes from 0) by auditing a real folder with ``--shard auto`` under that
system's variables and comparing with the same slice given as ``--shard K/N``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gradaudit.errors import AuditError
from gradaudit.load.discovery import CI_SYSTEMS, Shard
from gradaudit.report.types import ShardInfo
from tests.conftest import FIXTURES, run_cli, run_cli_fresh

NAMES = ("dead_relu.keras", "healthy_mlp.keras", "partly_dead.keras", "deep_sigmoid.keras",
         "nested_dead.keras")
VARIABLES = [name for system in CI_SYSTEMS for name in (system.index, system.total) if name]


@pytest.fixture(autouse=True)
def no_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CI variable of the machine running the tests leaks into them."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ci") / "models"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(FIXTURES / name, folder / name)
    return folder


def _audited(models: Path, shard: str) -> tuple[list[str], str]:
    """The files a --no-probe audit with ``--shard shard`` reported, and its status line."""
    result = run_cli("audit", str(models), "--shard", shard, "--no-probe", "--format", "json",
                     "--fail-on", "never")
    assert result.exit_code == 0, result.stderr
    return [Path(m["path"]).name for m in json.loads(result.stdout)["models"]], result.stderr


@pytest.mark.parametrize(("variables", "expected", "source"), [
    ({"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"}, "2/3",
     "CI_NODE_INDEX=2, CI_NODE_TOTAL=3 (GitLab)"),
    ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "2"}, "1/2",
     "CIRCLE_NODE_INDEX=0, CIRCLE_NODE_TOTAL=2 (CircleCI)"),
    ({"BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "3"}, "3/3",
     "BUILDKITE_PARALLEL_JOB=2, BUILDKITE_PARALLEL_JOB_COUNT=3 (Buildkite)"),
])
def test_each_system_gives_the_slice_its_base_says(
        models: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str],
        expected: str, source: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    files, status = _audited(models, "auto")
    explicit, _ = _audited(models, expected)
    assert files == explicit and 1 <= len(files) < len(NAMES)
    assert status.rstrip("\n").endswith(f"; shard {expected} from {source}")


def test_a_kubernetes_indexed_job_gives_the_index_and_the_flag_the_total(
        models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    files, status = _audited(models, "auto/2")
    assert files == _audited(models, "1/2")[0] == sorted(NAMES)[::2]
    assert status.rstrip("\n").endswith(
        "; shard 1/2 from JOB_COMPLETION_INDEX=0 (Kubernetes indexed Job)")


def test_the_slices_of_every_job_cover_the_folder_once(models: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    for index in range(1, 4):  # GitLab's three jobs, counted from 1
        monkeypatch.setenv("CI_NODE_INDEX", str(index))
        monkeypatch.setenv("CI_NODE_TOTAL", "3")
        seen += _audited(models, "auto")[0]
    assert sorted(seen) == sorted(NAMES)


def test_an_explicit_shard_is_reported_without_a_source(models: Path) -> None:
    assert _audited(models, "2/2")[1].rstrip("\n").endswith("; shard 2/2")


def test_no_variable_set_names_every_one_looked_for(models: Path) -> None:
    result = run_cli_fresh("audit", str(models), "--shard", "auto")
    assert "EXIT 2" in result.stdout and result.imported == []
    (line,) = result.stderr.splitlines()
    assert line.startswith("gradaudit: error: --shard auto: no CI shard variables are set")
    assert all(name in line for name in VARIABLES) and "auto/N" in line


@pytest.mark.parametrize(("shard", "variables", "message"), [
    ("auto", {"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "4"},
     "CI_NODE_INDEX=0, CI_NODE_TOTAL=4: the index must be between 1 and 4 (GitLab counts "
     "from 1)"),
    ("auto", {"CIRCLE_NODE_INDEX": "4", "CIRCLE_NODE_TOTAL": "4"},
     "CIRCLE_NODE_INDEX=4, CIRCLE_NODE_TOTAL=4: the index must be between 0 and 3 "
     "(CircleCI counts from 0)"),
    ("auto", {"BUILDKITE_PARALLEL_JOB": "one", "BUILDKITE_PARALLEL_JOB_COUNT": "4"},
     "BUILDKITE_PARALLEL_JOB=one, BUILDKITE_PARALLEL_JOB_COUNT=4: not a whole number"),
    ("auto", {"CI_NODE_INDEX": "-1", "CI_NODE_TOTAL": "4"},
     "CI_NODE_INDEX=-1, CI_NODE_TOTAL=4: not a whole number"),
    ("auto", {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "9" * 5000},
     f"CI_NODE_INDEX=1, CI_NODE_TOTAL={'9' * 5000}: not a whole number"),
    ("auto", {"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "0"},
     "CIRCLE_NODE_INDEX=0, CIRCLE_NODE_TOTAL=0: the number of jobs must be at least 1"),
    ("auto", {"CI_NODE_INDEX": "1"}, "CI_NODE_INDEX is set but CI_NODE_TOTAL is not"),
    ("auto", {"JOB_COMPLETION_INDEX": "1"},
     "JOB_COMPLETION_INDEX is set but Kubernetes indexed Job gives no total: use --shard auto/N"),
    ("auto/2", {"JOB_COMPLETION_INDEX": "2"},
     "JOB_COMPLETION_INDEX=2: the index must be between 0 and 1 (Kubernetes indexed Job "
     "counts from 0)"),
    ("auto/4", {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"},
     "CI_NODE_INDEX=1, CI_NODE_TOTAL=3 says 3 jobs"),
    ("auto", {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2", "CIRCLE_NODE_INDEX": "0"},
     "variables of several CI systems are set (CI_NODE_INDEX (GitLab), CIRCLE_NODE_INDEX "
     "(CircleCI))"),
])
def test_inconsistent_variables_are_one_line_and_exit_2(
        models: Path, monkeypatch: pytest.MonkeyPatch, shard: str, variables: dict[str, str],
        message: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    result = run_cli("audit", str(models), "--shard", shard, "--no-probe")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"gradaudit: error: --shard {shard}: {message}\n"


def test_gitlab_sets_the_total_alone_on_a_job_without_parallel() -> None:
    """``CI_NODE_TOTAL=1`` is on every GitLab job; without the index it is no shard."""
    with pytest.raises(AuditError, match="no CI shard variables are set"):
        Shard.parse("auto", {"CI_NODE_TOTAL": "1"})


@pytest.mark.parametrize("text", ["auto/", "auto/x", "auto/-2", "auto/2/3"])
def test_a_malformed_auto_is_refused(text: str) -> None:
    with pytest.raises(AuditError, match=r"expected auto or auto/N, e\.g\. auto/4"):
        Shard.parse(text, {"JOB_COMPLETION_INDEX": "0"})


def _report(models: Path, *args: str) -> dict:
    result = run_cli("audit", str(models), *args, "--no-probe", "--format", "json",
                     "--fail-on", "never", "-q")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_the_json_report_says_which_slice_and_variables_it_used(
        models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCLE_NODE_INDEX", "1")
    monkeypatch.setenv("CIRCLE_NODE_TOTAL", "3")
    assert _report(models, "--shard", "auto")["shard"] == {
        "index": 2, "total": 3, "source": {"CIRCLE_NODE_INDEX": "1", "CIRCLE_NODE_TOTAL": "3"},
        "system": "CircleCI"}
    assert _report(models, "--shard", "2/3")["shard"] == {
        "index": 2, "total": 3, "source": {}, "system": None}
    assert _report(models)["shard"] is None


def test_the_shard_is_read_back_and_a_merge_is_no_shard(
        models: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gradaudit.report import json_io
    from gradaudit.report.merge import merge

    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    reports = []
    for shard in ("auto/2", "1/2"):
        document = _report(models, "--shard", shard)
        reports.append(tmp_path / f"{shard.replace('/', '-')}.json")
        reports[-1].write_text(json.dumps(document), encoding="utf-8")
    run = json_io.read_file(reports[0])
    assert run.shard == ShardInfo(2, 2, {"JOB_COMPLETION_INDEX": "1"}, "Kubernetes indexed Job")
    assert json_io.read(json_io.write(run)) == run
    assert json_io.read_file(reports[1]).shard == ShardInfo(1, 2)
    merged = merge(reports)
    assert merged.shard is None and len(merged.models) == len(NAMES)
    assert json.loads(json_io.write(merged))["shard"] is None


def test_markdown_and_html_name_the_slice(models: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDKITE_PARALLEL_JOB", "0")
    monkeypatch.setenv("BUILDKITE_PARALLEL_JOB_COUNT", "2")
    text = ("shard 1 of 2 (from BUILDKITE_PARALLEL_JOB=0, BUILDKITE_PARALLEL_JOB_COUNT=2, "
            "Buildkite)")
    for fmt in ("markdown", "html"):
        result = run_cli("audit", str(models), "--shard", "auto", "--no-probe", "--format", fmt,
                         "-q", "--fail-on", "never")
        assert f"This report is {text}." in result.stdout
    unsharded = run_cli("audit", str(models), "--no-probe", "--format", "markdown", "-q")
    assert "This report is shard" not in unsharded.stdout
