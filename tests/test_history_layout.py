"""The training history is its own stage beside the probe (issue 21, §4).

Read from the import graph :mod:`tests.test_layout` builds from the source:
opening a file safely (``load/``) needs nothing of the history, and the history,
evidence like the probe's, reaches no stage after it (checks, report, formats).
"""

from __future__ import annotations

from tests.test_layout import GRAPH, MODULES

LATER_STAGES = ("gradaudit.checks", "gradaudit.report", "gradaudit.formats", "gradaudit.probe")


def _in(package: str, module: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_history_readers_live_in_their_own_package() -> None:
    moved = ("training_state", "training_types", "optimizer_slots", "slot_mapping",
             "trainable_vars", "compile_info", "loss_config", "live_state")
    assert {f"gradaudit.history.{name}" for name in moved} <= MODULES.keys()
    assert not [name for name in MODULES if name.rpartition(".")[2] in moved
                and not _in("gradaudit.history", name)]


def test_load_never_imports_the_history() -> None:
    reaching = {name: [t for t in targets if _in("gradaudit.history", t)]
                for name, targets in GRAPH.items() if _in("gradaudit.load", name)}
    assert not {name: targets for name, targets in reaching.items() if targets}


def test_the_history_reaches_no_later_stage() -> None:
    reaching = {name: [t for t in targets if any(_in(stage, t) for stage in LATER_STAGES)]
                for name, targets in GRAPH.items() if _in("gradaudit.history", name)}
    assert not {name: targets for name, targets in reaching.items() if targets}


def test_the_pipeline_and_the_checks_read_the_history_package() -> None:
    assert "gradaudit.history.training_state" in GRAPH["gradaudit.pipeline"]
    assert "gradaudit.history.training_state" in GRAPH["gradaudit.checks.training"]
