"""JUnit XML for CI test dashboards: one test suite per model, one test case per rule.

Every catalogue rule is a test case of every audited model (classname = the
model path, name = "GA102 dead_relu_layer"); it fails when the model has a
root-cause finding of that code at or over ``--fail-on``, listing each layer with
the consequences it explains (``caused_by``) in the text: one failure per root
cause. A consequence fails its own rule's case only when no failing root
finding explains it. Findings below the gate are kept as the case's system-out,
so nothing is lost. A rule
whose checks did not run for the model (``checks_run``: the probe's under
``--no-probe``, the training state's without one) is skipped, not passed. A file
that could not be audited is a suite with one erroring "load" case. No
timestamps or durations: the same run gives the same bytes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gradaudit.formats.common import gate
from gradaudit.report.catalogue import CATALOGUE
from gradaudit.report.types import AuditRun, LoadError, ModelReport, fails


def render(run: AuditRun) -> str:
    root = ET.Element("testsuites", name="gradaudit")
    suites = [_model_suite(m, run) for m in run.models] + [_error_suite(e) for e in run.errors]
    root.extend(suites)
    for attribute in ("tests", "failures", "errors", "skipped"):
        total = sum(int(s.get(attribute, "0")) for s in suites)
        if total or attribute != "skipped":
            root.set(attribute, str(total))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _model_suite(model: ModelReport, run: AuditRun) -> ET.Element:
    suite = ET.Element("testsuite", name=model.path, tests=str(len(CATALOGUE)), errors="0")
    failures = skipped = 0
    by_id = {f.id: f for f in model.findings}
    failing_roots = {f.layer for f in model.findings
                     if f.caused_by is None and fails(f.severity, gate(run))}
    folded = {i: cause for cause in model.diagnosis if cause.layer in failing_roots
              for i in cause.explains}
    explains = {(cause.layer, cause.codes[0]): [by_id[i] for i in cause.explains if i in by_id]
                for cause in model.diagnosis if cause.layer in failing_roots}
    for rule in CATALOGUE:
        case = ET.SubElement(suite, "testcase", classname=model.path,
                             name=f"{rule.code} {rule.name}")
        if not rule.code.startswith(tuple(model.checks_run)):
            skipped += 1
            ET.SubElement(case, "skipped", message="not run for this model (checks_run)")
            continue
        found = [f for f in model.findings if f.code == rule.code]
        failing = [f for f in found if fails(f.severity, gate(run)) and f.id not in folded]
        if failing:
            failures += 1
            failure = ET.SubElement(case, "failure", type=rule.code,
                                    message=f"{rule.title}: {', '.join(f.layer for f in failing)}")
            failure.text = "\n".join(
                f"{f.severity} {f.layer}: {f.message}" + "".join(
                    f"\n  explains {e.severity} {e.code} {e.layer}: {e.message}"
                    for e in explains.get((f.layer, f.code), []))
                for f in failing)
        elif found:
            ET.SubElement(case, "system-out").text = "\n".join(
                f"{f.severity} {f.layer}: {f.message}" for f in found)
    suite.set("failures", str(failures))
    if skipped:
        suite.set("skipped", str(skipped))
    return suite


def _error_suite(error: LoadError) -> ET.Element:
    suite = ET.Element("testsuite", name=error.path, tests="1", failures="0", errors="1")
    case = ET.SubElement(suite, "testcase", classname=error.path, name="load")
    ET.SubElement(case, "error", message=error.error)
    return suite
