"""A pytest helper for model libraries: fail a test when a model's gradients die.

    from gradaudit.testing import assert_no_findings

    def test_encoder_trains():
        assert_no_findings(build_encoder(), fail_on="warning")

The failure message is the table of offending findings, so the test log says
which layer is dead or cut off and why, without re-running anything.
"""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from gradaudit.api import Report, audit
from gradaudit.formats.common import FINDING_HEADERS, finding_rows
from gradaudit.options import Options
from gradaudit.report.types import FailOn, fails


def assert_no_findings(model_or_path: Any, inputs: Any = None, *,
                       fail_on: FailOn | str = Options.fail_on, **options: Any) -> Report:
    """Audit the model and raise AssertionError if a finding is at or above ``fail_on``.

    ``inputs`` and ``options`` (samples, seed, select, ignore …) are those of
    ``gradaudit.audit``. Returns the report when the model passes.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    report = audit(model_or_path, inputs, **options)
    if not report.ok(fail_on):
        raise AssertionError(failure_message(report, FailOn(fail_on.lower())))
    return report


def failure_message(report: Report, fail_on: FailOn) -> str:
    """The findings at or above ``fail_on`` as a table, with where to read more."""
    failing = [f for f in report.findings if fails(f.severity, fail_on)]
    table = tabulate(finding_rows(failing), headers=FINDING_HEADERS)
    return (f"gradaudit: {len(failing)} finding(s) at or above {fail_on.value} in "
            f"{report.path}:\n{table}\n(`gradaudit explain CODE` says what a code means "
            "and how to fix it)")
