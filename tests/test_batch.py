"""Directories: recursive discovery, --exclude, --shard, a summary table, one exit code."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from gradaudit import progress
from gradaudit.errors import AuditError
from gradaudit.load.discovery import Shard, discover
from tests.conftest import FIXTURES, run_cli


def _tree(root: Path) -> Path:
    """models/ with good files at two depths, a broken one, and files to skip."""
    models = root / "models"
    (models / "sub" / "deeper").mkdir(parents=True)
    (models / ".hidden").mkdir()
    (models / "saved" / "variables").mkdir(parents=True)
    shutil.copy(FIXTURES / "healthy_mlp.keras", models / "healthy.keras")
    shutil.copy(FIXTURES / "dead_relu.keras", models / "sub" / "dead.keras")
    shutil.copy(FIXTURES / "healthy_mlp.h5", models / "sub" / "deeper" / "legacy.hdf5")
    (models / "sub" / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    (models / "notes.txt").write_text("not a model\n")
    shutil.copy(FIXTURES / "dead_relu.keras", models / ".hidden" / "ignored.keras")
    (models / "saved" / "saved_model.pb").write_bytes(b"")
    (models / "saved" / "variables" / "inner.keras").write_bytes(b"")
    return models


def test_discovery_is_recursive_sorted_and_treats_savedmodel_dirs_as_one_model(
    tmp_path: Path,
) -> None:
    models = _tree(tmp_path)
    found = discover([str(models)])
    assert [Path(p).relative_to(models).as_posix() for p in found.paths] == [
        "healthy.keras", "saved", "sub/broken.h5", "sub/dead.keras", "sub/deeper/legacy.hdf5"]
    assert found.errors == ()


def test_named_files_are_kept_as_given_and_excludes_apply_to_directories(tmp_path: Path) -> None:
    models = _tree(tmp_path)
    named = tmp_path / "model.bin"
    found = discover([str(named), str(models)], exclude=["sub/deeper/*", "broken.*", "saved"])
    assert [Path(p).name for p in found.paths] == ["model.bin", "healthy.keras", "dead.keras"]


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (error,) = discover([str(tmp_path / "empty")]).errors
    assert "holds no model files" in error.error


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_are_disjoint_cover_everything_and_are_balanced(count: int) -> None:
    paths = [f"m{i:02d}.keras" for i in range(10)]
    slices = [Shard(k, count).take(paths) for k in range(1, count + 1)]
    assert sorted(p for s in slices for p in s) == paths
    assert max(map(len, slices)) - min(map(len, slices)) <= 1
    assert Shard(2, 3).take(paths) == ["m01.keras", "m04.keras", "m07.keras"]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(AuditError, match="--shard"):
        Shard.parse(text)


def test_a_broken_file_among_good_ones_is_exit_2_and_the_others_are_audited(
    tmp_path: Path,
) -> None:
    models = _tree(tmp_path)
    result = run_cli("audit", str(models), "--samples", "32", "--format", "json",
                     "--exclude", "saved")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert [Path(m["path"]).name for m in document["models"]] == [
        "healthy.keras", "dead.keras", "legacy.hdf5"]
    (error,) = document["errors"]
    assert error["path"] == str(models / "sub" / "broken.h5")
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"gradaudit: error: {models / 'sub' / 'broken.h5'}: ")
    assert lines[1].startswith("gradaudit: 3 model(s) audited, 1 failed;")
    assert lines[1].endswith("exit 2") and len(lines) == 2  # no progress bar when piped


def test_the_table_ends_with_a_summary_of_every_file(tmp_path: Path) -> None:
    models = _tree(tmp_path)
    result = run_cli("audit", str(models), "--samples", "32", "--exclude", "saved", "-q")
    assert result.exit_code == 2
    summary = result.stdout.split("Summary:\n", 1)[1].splitlines()
    assert summary[0].split() == ["file", "format", "errors", "warnings", "infos", "status"]
    rows = {line.split()[0]: line.split()[1:] for line in summary[2:]}
    assert rows == {
        str(models / "healthy.keras"): ["keras", "0", "0", "0", "pass"],
        str(models / "sub" / "dead.keras"): ["keras", "4", "0", "0", "fail"],
        str(models / "sub" / "deeper" / "legacy.hdf5"): ["h5", "0", "0", "0", "pass"],
        str(models / "sub" / "broken.h5"): ["-", "-", "-", "-", "error"],
    }


def test_a_single_model_has_no_summary_table() -> None:
    result = run_cli("audit", str(FIXTURES / "healthy_mlp.keras"), "--samples", "8", "-q")
    assert "Summary:" not in result.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_without_quiet() -> None:
    assert progress.wanted(quiet=False, stream=_Terminal())
    assert not progress.wanted(quiet=True, stream=_Terminal())
    assert not progress.wanted(quiet=False, stream=io.StringIO())
    terminal = _Terminal()
    with progress.progress_bar(2, terminal) as step:
        step("a.keras", "loading")
        step("a.keras", "probing batch 1/4")
        step("b.keras", "loading")
        step("b.keras", "probing batch 2/4")
    shown = terminal.getvalue()
    assert "1/2" in shown and "b.keras: probing batch 2/4" in shown, shown


def test_pipeline_reports_progress_per_model_and_per_batch() -> None:
    from gradaudit.options import Options
    from gradaudit.pipeline import audit_paths

    seen: list[tuple[str, str]] = []
    paths = [str(FIXTURES / "dead_relu.keras"), str(FIXTURES / "healthy_mlp.keras")]
    audit_paths(paths, Options(samples=96, batch_size=32),
                progress=lambda p, step: seen.append((p, step)))
    steps = ["loading", "sizing", "probing batch 1/3", "probing batch 2/3",
             "probing batch 3/3", "checks"]
    assert seen == [*((paths[0], step) for step in steps),
                    # the healthy model is decided after one batch
                    *((paths[1], step) for step in [*steps[:3], "checks"])]
