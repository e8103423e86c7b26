"""The docs: generated pages that match the code, a schema real reports pass, links that resolve.

The pages under ``docs/`` that ``gradaudit.report.docs`` generates must be what it
generates now (else: regenerate them); the JSON Schema is checked against real
reports of every fixture (probed, ``--no-probe``, merged, after a baseline); and
every relative link of the README and the docs reaches a file, and its
``#anchor`` a heading there, as GitHub renders them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gradaudit.report import baseline, json_io
from gradaudit.report.catalogue import CATALOGUE
from gradaudit.report.docs import FAMILIES, REGENERATE, family_page, pages, stale
from tests.conftest import FIXTURES, GOLDEN_PATHS, ROOT, GoldenRun, run_cli

DOCS = ROOT / "docs"
SCHEMA = json.loads((DOCS / "report.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
TRAINED = sorted(str(p.relative_to(ROOT)) for p in (FIXTURES / "trained").glob("*"))


# --- generated pages ---------------------------------------------------------------------


def test_the_generated_pages_are_what_the_catalogue_and_the_cli_give_now() -> None:
    differing = stale(DOCS)
    assert not differing, (f"docs/{', docs/'.join(differing)} differ from the code; regenerate "
                           f"with `{REGENERATE}` (from the repository root) and commit them")


def test_stale_names_a_page_edited_by_hand(tmp_path: Path) -> None:
    for name, text in pages().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert stale(tmp_path) == []
    page = tmp_path / FAMILIES[0].page
    page.write_text(page.read_text(encoding="utf-8").replace("GA101", "GA1O1"), encoding="utf-8")
    (tmp_path / "cli.md").unlink()
    assert stale(tmp_path) == sorted(["cli.md", FAMILIES[0].page])


def test_every_code_is_on_its_family_s_page_with_everything_the_catalogue_says() -> None:
    placed = [rule.code for family in FAMILIES for rule in family.rules()]
    assert sorted(placed) == sorted(rule.code for rule in CATALOGUE), "a code without a family"
    for family in FAMILIES:
        page = family_page(family)
        for rule in family.rules():
            section = page.split(f"\n## {rule.code}\n", 1)[1].split("\n## ", 1)[0]
            for text in (rule.name, rule.title, str(rule.severity), rule.fix, rule.source):
                assert text in section, (rule.code, text)
            # The explanation, paragraph by paragraph (GA412's table is Markdown here).
            for line in rule.explanation.splitlines():
                assert line.startswith("- ") or line in section, (rule.code, line)


@pytest.mark.parametrize("command", ["audit", "merge", "checks", "explain"])
def test_the_cli_reference_has_every_option_help_prints(command: str) -> None:
    """Read back from ``--help`` as Typer renders it, not from the parameters."""
    help_text = run_cli(command, "--help").stdout.split("\nOptions:\n", 1)[1]
    reference = (DOCS / "cli.md").read_text(encoding="utf-8")
    section = reference.split(f"\n## gradaudit {command}\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\s+(?:(-[a-z]), )?(--[a-z][a-z-]*)", help_text, re.M)
    options = {name for row in rows for name in row if name} - {"--help"}
    assert len(options) >= (8 if command == "audit" else 0)  # the rows were read
    mentioned = set(re.findall(r"`(--[a-z][a-z-]*|-[a-z])`", section))
    assert options <= mentioned, options - mentioned


# --- the JSON Schema against real reports ---------------------------------------------


def _valid(document: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                                 for e in errors[:10])


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_report_of_every_fixture_fits_the_schema(golden_run: GoldenRun) -> None:
    document = json.loads(golden_run.json_text)
    assert len(document["models"]) + len(document["errors"]) == len(GOLDEN_PATHS)
    assert document["errors"] and any(m["diagnosis"] for m in document["models"])
    _valid(document)


def test_the_trained_fixtures_reports_fit_the_schema() -> None:
    """The training summary, per-layer history and the compiled-loss objective."""
    result = run_cli("audit", *(str(ROOT / p) for p in TRAINED), "--format", "json",
                     "--samples", "64", "-q")
    document = json.loads(result.stdout)
    assert len(document["models"]) == len(TRAINED)
    assert any(m["summary"]["training"] for m in document["models"])
    assert any(m["summary"]["objective"] == "loss" for m in document["models"])
    _valid(document)


def test_no_probe_reports_of_every_fixture_fit_the_schema() -> None:
    result = run_cli("audit", *(str(ROOT / p) for p in [*GOLDEN_PATHS, *TRAINED]),
                     "--no-probe", "--format", "json", "-q")
    document = json.loads(result.stdout)
    ran = {tuple(m["summary"]["checks_run"]) for m in document["models"]}
    assert ran == {(), ("GA4",), ("GA103",)}  # BN statistics of the untrained bn_* fixtures
    assert any(e["path"].endswith("tf_save") for e in document["errors"])  # SavedModel: exit 2
    _valid(document)


def test_a_merge_and_a_run_after_a_baseline_fit_the_schema(golden_run: GoldenRun,
                                                           tmp_path: Path) -> None:
    document = json.loads(golden_run.json_text)
    shards = []
    for index in range(2):
        shard = tmp_path / f"shard-{index + 1}.json"
        shard.write_text(json.dumps(dict(document, models=document["models"][index::2],
                                         errors=document["errors"][index::2])))
        shards.append(str(shard))
    merged = run_cli("merge", *shards, "--format", "json", "-q")
    assert merged.exit_code == 2
    _valid(json.loads(merged.stdout))
    # What --baseline leaves: half the findings known, the diagnosis trimmed to the rest.
    run = json_io.read(golden_run.json_text)
    known = frozenset(baseline.finding_key(m.path, f) for m in run.models
                      for f in m.findings[::2])
    after, suppressed = baseline.apply(run, known)
    assert suppressed == len(known) > 0
    _valid(json.loads(json_io.write(after)))


def test_the_schema_rejects_what_is_not_a_report(golden_run: GoldenRun) -> None:
    """It can fail: an unknown key, a wrong severity, a missing field."""
    document = json.loads(golden_run.json_text)
    model = document["models"][0]
    for broken in (dict(model, extra=1), dict(model, summary=dict(model["summary"], seed="0")),
                   {k: v for k, v in model.items() if k != "diagnosis"}):
        assert not VALIDATOR.is_valid(dict(document, models=[broken]))
    finding = dict(next(m for m in document["models"] if m["findings"])["findings"][0],
                   severity="fatal")
    assert not VALIDATOR.is_valid(dict(document, models=[dict(model, findings=[finding])]))


# --- links ----------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", path.read_text("utf-8")), re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_slugs_are_github_s() -> None:
    assert _slug("`--no-probe`: a gate over many trained models in seconds") == (
        "--no-probe-a-gate-over-many-trained-models-in-seconds")
    assert _slug("Many machines: `--shard K/N` and `gradaudit merge`") == (
        "many-machines---shard-kn-and-gradaudit-merge")
    assert _slug("GA101") == "ga101"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text(encoding="utf-8")))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(ROOT)}")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_the_readme_s_30_second_example_is_what_the_tool_prints(
        monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## A 30-second example\n\n```console\n", 1)[1].split("```", 1)[0]
    command, _, shown = block.partition("\n")
    args = command.removeprefix("$ gradaudit ").split()
    monkeypatch.chdir(ROOT)  # the example's path is relative to the repository
    result = run_cli(*args)
    assert result.exit_code == 1
    assert result.stdout + result.stderr == shown
