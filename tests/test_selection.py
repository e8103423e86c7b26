"""--select / --ignore: full codes or prefixes; the most specific match wins (ruff)."""

from __future__ import annotations

import json

import pytest

from gradaudit.report.catalogue import BY_CODE
from gradaudit.report.selection import Selection, prefix
from tests.conftest import FIXTURES, run_cli

DEAD = str(FIXTURES / "dead_relu.keras")  # GA102 on dead; GA202 on pre, dead, out


@pytest.mark.parametrize(
    ("select", "ignore", "kept"),
    [
        ((), (), set(BY_CODE)),
        (("GA1",), (), {"GA101", "GA102", "GA103", "GA111"}),
        (("GA1", "GA201"), (), {"GA101", "GA102", "GA103", "GA111", "GA201"}),
        ((), ("GA2", "GA301"), {"GA101", "GA102", "GA103", "GA111", "GA302", "GA303"}
         | {code for code in BY_CODE if code.startswith("GA4")}),
        (("GA1",), ("GA10",), {"GA111"}),  # the longer prefix wins
        (("GA102",), ("GA1",), {"GA102"}),  # a full code beats its family
        (("GA1",), ("GA1",), set()),  # a tie: ignore wins
        (("GA",), ("GA3",), set(BY_CODE) - {"GA301", "GA302", "GA303"}),
    ],
)
def test_most_specific_prefix_wins(select: tuple[str, ...], ignore: tuple[str, ...],
                                   kept: set[str]) -> None:
    selection = Selection(select, ignore)
    assert {code for code in BY_CODE if selection.keeps(code)} == kept


def test_prefixes_are_case_insensitive_and_must_name_a_code() -> None:
    assert prefix(" ga1 ") == "GA1"
    for bad in ("GA9", "B101", "", "GA1021"):
        with pytest.raises(ValueError, match="not a finding code"):
            prefix(bad)


def _findings(*args: str) -> tuple[int, set[tuple[str, str]]]:
    result = run_cli("audit", DEAD, "--samples", "16", "-f", "json", "-q", *args)
    document = json.loads(result.stdout)
    return result.exit_code, {(f["code"], f["layer"]) for f in document["models"][0]["findings"]}


def test_select_and_ignore_filter_the_report_and_the_exit_code() -> None:
    assert _findings("--ignore", "GA202") == (1, {("GA102", "dead")})
    assert _findings("--select", "GA2") == (1, {("GA202", "pre"), ("GA202", "dead"),
                                                 ("GA202", "out")})
    assert _findings("--select", "GA1,GA201") == (1, {("GA102", "dead")})
    # Nothing left at or over the gate: exit 0, and the summary counts agree.
    result = run_cli("audit", DEAD, "--samples", "16", "-f", "json", "-q", "--ignore", "GA1,GA2")
    assert result.exit_code == 0
    model = json.loads(result.stdout)["models"][0]
    assert model["findings"] == [] and model["summary"]["findings"]["error"] == 0


def test_an_unknown_code_is_exit_2_naming_it() -> None:
    result = run_cli("audit", DEAD, "--select", "GA1,XY9")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "gradaudit: error: --select: bad value 'GA1,XY9': 'XY9' is not a finding code or a "
        "prefix of one (`gradaudit checks` lists them)"]
