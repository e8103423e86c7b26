"""``GradAuditCallback``: the same checks on the live model while ``fit`` runs.

A ReLU layer that dies because of a too-large learning rate, or a sigmoid that
saturates, shows up as a finding at the end of the epoch where it happened,
not after the run. Each audit probes the model in memory with a held-out batch
(``inputs``): eagerly, outside the compiled train step (which is neither
called nor retraced), leaving weights, moving statistics and optimizer state as
they were, so training continues exactly as without the callback.

Each audit also reads the live optimizer (``model.optimizer``: its iterations,
learning rate and slots, see :mod:`gradaudit.history.live_state`), so units that
stopped receiving gradients during training are reported as a saved file's
optimizer state would show them (GA401–GA403), whatever the held-out batch does.

(This module is ``gradaudit.keras``; ``import keras`` below is the Keras
package, imports being absolute.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from gradaudit.api import Report, audit
from gradaudit.options import Options
from gradaudit.report.types import FailOn, Finding, Severity, fails

if TYPE_CHECKING:
    from gradaudit.api import Inputs

LOGGER = logging.getLogger("gradaudit")
LEVELS = {Severity.ERROR: logging.ERROR, Severity.WARNING: logging.WARNING,
          Severity.INFO: logging.INFO}
SCALARS = ("grad_rms", "dead_fraction", "saturated_fraction", "stalled_fraction",
           "train_grad_rms")
"""The per-layer report fields written to TensorBoard as ``<field>/<layer>``."""


class GradAuditCallback(keras.callbacks.Callback):
    """Audit the model every ``every_n_epochs`` epochs during ``fit``.

    ``inputs``: a held-out batch to probe with (as for ``gradaudit.audit``:
    one array, a list in input order or a dict by input name); None probes
    with random inputs built from the model's signature.
    ``fail_on``: stop training at the end of an epoch whose audit has a
    finding at or above this severity ("error"); None never stops.
    ``log_dir``: also write TensorBoard scalars per layer to
    ``log_dir/gradaudit``: ``grad_rms/<layer>``, ``dead_fraction/<layer>``,
    ``saturated_fraction/<layer>``, from the optimizer ``stalled_fraction/<layer>``
    and ``train_grad_rms/<layer>``, and ``findings/<severity>``, at step = epoch.

    New findings (not in the previous audit) are logged to the ``gradaudit``
    logger at their severity's level; every report is kept in ``reports``.
    Epochs are numbered one way in the data: Keras's 0-based index, as
    ``on_epoch_end``, ``History.epoch`` and ``EarlyStopping.stopped_epoch`` give
    it — the keys of ``reports``, ``stopped_epoch`` (where training was stopped,
    or None) and the TensorBoard step. A log line names both, ``epoch 7 (index
    6)``: the progress bar's 1-based count, then that index.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        inputs: Inputs | None = None,
        fail_on: FailOn | str | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        samples: int = Options.samples,
        seed: int = Options.seed,
        select: str | Sequence[str] | None = Options.select,
        ignore: str | Sequence[str] | None = Options.ignore,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be ≥ 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.inputs = inputs
        self.fail_on = None if fail_on is None else FailOn(fail_on.lower())
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.audit_options: dict[str, Any] = {"samples": samples, "seed": seed,
                                              "select": select, "ignore": ignore}
        self.reports: dict[int, Report] = {}
        self.stopped_epoch: int | None = None
        self._writer: Any = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.reports, self.stopped_epoch = {}, None
        if self.log_dir is not None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "gradaudit"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if (epoch + 1) % self.every_n_epochs:
            return
        previous = self.reports[max(self.reports)] if self.reports else None
        report = audit(self.model, self.inputs, **self.audit_options)
        self.reports[epoch] = report
        self._log(epoch, report, previous)
        if self._writer is not None:
            self._write_scalars(epoch, report)
        if self.fail_on is not None and not report.ok(self.fail_on):
            self.model.stop_training = True
            self.stopped_epoch = epoch
            failing = sum(1 for f in report.findings if fails(f.severity, self.fail_on))
            LOGGER.error("%s: stopping training: %d finding(s) at or above %s",
                         _epoch(epoch), failing, self.fail_on.value)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _log(self, epoch: int, report: Report, previous: Report | None) -> None:
        seen = {_key(f) for f in previous.findings} if previous is not None else set()
        for finding in report.findings:
            if _key(finding) not in seen:
                LOGGER.log(LEVELS[finding.severity], "%s: %s %s %s: %s", _epoch(epoch),
                           finding.severity, finding.code, finding.layer, finding.message)
        counts = ", ".join(f"{report.count(s)} {s}" for s in reversed(Severity))
        LOGGER.info("%s: gradaudit: %s", _epoch(epoch), counts)

    def _write_scalars(self, epoch: int, report: Report) -> None:
        values = {f"{name}/{row.name}": getattr(row, name) for row in report.layers
                  for name in SCALARS}
        values.update({f"findings/{s}": report.count(s) for s in Severity})
        with self._writer.as_default(step=epoch):
            for tag, value in values.items():
                if value is not None:
                    _scalar(tag, value)
        self._writer.flush()


def _scalar(tag: str, value: float) -> None:
    """What ``tf.summary.scalar`` writes, without needing the TensorBoard package.

    TensorFlow implements ``tf.summary.scalar`` only when TensorBoard is
    installed; the event it writes is this tensor with scalar-plugin metadata.
    """
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR)
    tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata)


def _key(finding: Finding) -> tuple[str, str]:
    return finding.code, finding.layer


def _epoch(index: int) -> str:
    """How a log line names an epoch: 1-based as the progress bar, then Keras's index."""
    return f"epoch {index + 1} (index {index})"
