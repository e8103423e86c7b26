"""The tape: one forward and backward pass per probe batch, statistics reduced
as they stream.

The objective is the sum over outputs of each output's term
(:mod:`gradaudit.probe.objective`): its compiled loss × loss weight where the
model has one, as training differentiates it, else the mean over samples of
``<output, c>`` with one fixed random cotangent ``c`` per output (seeded normal).
A plain ``sum(output)`` would be constant for a softmax and would make a healthy
classifier look dead; averaging over samples keeps gradient magnitudes the same
at any number of samples. The model hands back the outputs of the layers the
probe watches with each batch (:meth:`AuditedModel.run`); per-unit
statistics are folded into small per-layer vectors after each batch and the
batch's tensors are dropped; so are each output's range over the samples
(running element-wise min and max) and how often each row of an Embedding was
looked up.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from gradaudit.model.interface import AuditedModel, LayerInfo, Variable
from gradaudit.model.rules import CONSTANT_EPSILONS, FLOAT32_EPSILON, UnitRule
from gradaudit.options import Options
from gradaudit.probe.objective import Objective, OutputLoss


@dataclass
class UnitStats:
    """Per-unit activity of one layer, accumulated over all probe batches."""

    rule: UnitRule
    observations: int  # samples × positions seen per unit
    values: np.ndarray
    """ReLU family: whether each unit ever fired (bool); saturating: on how many
    observations each unit was near a bound (count)."""

    @property
    def units(self) -> int:
        return len(self.values)

    def fold(self, values: np.ndarray, observations: int) -> None:
        """Add one batch's per-unit statistic."""
        self.observations += observations
        self.values = self.values | values if self.rule.kind == "relu" else self.values + values

    def dead_units(self) -> int:
        return int(self.units - np.count_nonzero(self.values))

    def saturated_units(self, min_fraction: float) -> int:
        if not self.observations:
            return 0
        return int(np.count_nonzero(self.values >= min_fraction * self.observations))


@dataclass
class OutputStats:
    """One float model output's range over all probe samples, element by element
    (in float32): running minimum and maximum, folded per batch."""

    low: np.ndarray
    high: np.ndarray
    sensitivity: float | None = None
    """Constant outputs only: the largest gradient RMS, over the trainable variables, of
    this output's own term of the objective per unit of its cotangent's RMS."""

    def fold(self, low: np.ndarray, high: np.ndarray) -> None:
        self.low = np.minimum(self.low, low)  # NaN propagates: a NaN output is never constant
        self.high = np.maximum(self.high, high)

    @property
    def spread(self) -> float:
        """The largest max - min of any element."""
        return float(np.max(self.high - self.low)) if self.low.size else 0.0

    @property
    def magnitude(self) -> float:
        """The largest absolute value of any element on any sample."""
        return float(np.max(np.maximum(np.abs(self.low), np.abs(self.high)))) if (
            self.low.size) else 0.0

    @property
    def constant(self) -> bool:
        """Every element is the same on every sample, up to rounding
        (``rules.CONSTANT_EPSILONS`` of its magnitude); never for a NaN/Inf element."""
        scale = np.maximum(np.abs(self.low), np.abs(self.high))
        within = self.high - self.low <= CONSTANT_EPSILONS * FLOAT32_EPSILON * scale
        finite = np.isfinite(self.low) & np.isfinite(self.high)
        return bool(self.low.size) and bool(np.all(within & finite))

    @property
    def flat(self) -> bool:
        """Constant, and no trainable variable moves it beyond rounding (``sensitivity``
        within ``rules.CONSTANT_EPSILONS`` of its magnitude): the gradient it sends back
        is zero up to rounding. An output that is constant because what feeds it is (a
        dead or vanishing layer before it) still moves with its own layer's weights,
        orders of magnitude more."""
        tolerance = CONSTANT_EPSILONS * FLOAT32_EPSILON * self.magnitude
        return self.constant and self.sensitivity is not None and self.sensitivity <= tolerance


@dataclass
class GradStats:
    """What the tape said about one variable or input over all batches."""

    connected: bool = True
    nonzero: bool = False
    finite: bool = True
    rms: float | None = None
    """RMS of the mean gradient over all samples; for a variable whose gradient comes
    as looked-up rows (an Embedding's), of the mean gradient per lookup, over the rows
    some probe sample looked up."""
    rows: int | None = None
    """How many rows ``rms`` is taken over, for a variable whose gradient comes as rows."""


@dataclass
class ProbeResult:
    samples: int
    units: dict[str, UnitStats]
    variables: list[tuple[Variable, GradStats]]
    inputs: list[GradStats]
    outputs: dict[int, OutputStats]
    """Index among the model's outputs → its range; float outputs only."""
    returned: int = 0
    """How many outputs the model returned: a loss objective for another number was
    not applied (:meth:`Objective.applied`)."""


def probe(
    model: AuditedModel,
    batches: Iterable[list[np.ndarray]],
    options: Options,
    *,
    compiled: bool | None = None,
    on_batch: Callable[[int], None] | None = None,
    objective: Objective | None = None,
) -> ProbeResult:
    """Run the model over ``batches`` under a GradientTape and reduce statistics.

    The layers with a unit rule are watched (their outputs judged per unit);
    every trainable variable and every float input gets gradient statistics.
    Unless ``options.inference``, the layers behave as the optimizer sees them
    (BatchNormalization on batch statistics, Dropout active); the model's
    state variables (moving statistics, RNG state) are restored afterwards, so
    probing leaves the model as it found it.

    Unless ``options.all_samples``, the probe ends as soon as no further batch
    can change a verdict: every unit has fired (or can no longer reach the
    saturation threshold), every connected variable has had a non-zero
    gradient and every float output has varied or is not flat (GA206). Once
    every gradient verdict is in and only units are open (a unit never active
    needs every sample to be called dead), the remaining batches run forward
    only, without the tape: the gradient statistics are those of the batches
    before (an eager step; a traced one keeps its whole step). ``compiled``
    traces the step with ``tf.function`` instead of running eagerly (default:
    as the model prefers; always under a probability crossentropy, as ``fit`` traces its
    step, so that Keras's rule of differentiating a sigmoid/softmax head through its
    logits applies exactly as in training, also to a head that ends in a raw op; the
    rule touches no other loss, which runs eagerly, as fast as the projection). ``on_batch`` is
    told the samples probed so far after each batch (progress). ``objective``: what is
    differentiated per output (None: the projection for every output).
    """
    thresholds = options.thresholds
    max_samples = options.samples
    watched = [(info, info.unit_rule) for info in model.layers if info.unit_rule is not None]
    step = _Step(model, watched, options.seed, thresholds.saturation_eps,
                 not options.inference, max_samples, objective)
    if compiled is None:
        compiled = model.prefers_tracing or step.objective.reads_logits
    run = tf.function(step, reduce_retracing=True) if compiled else step
    unit_stats: dict[str, UnitStats] = {}
    output_stats: dict[int, OutputStats] = {}
    lookups: dict[int, np.ndarray] = {}  # variable index → how often each row was looked up
    samples = 0
    graded = 0  # samples whose gradients were taken
    forward_only = False
    positions: dict[str, int] = {}  # settled layer → observations per sample
    nonzero: set[int] = set()  # indices of variables whose gradient was non-zero so far
    tensors: list[tf.Tensor] = []
    with _restoring(model.state_variables):
        for batch in batches:
            tensors = [tf.constant(x) for x in batch]
            n = int(batch[0].shape[0])
            result = step.forward(tensors) if forward_only else run(
                tensors, step.objective.batch_labels(samples, n),
                tf.constant(samples, tf.int64))
            samples += n
            graded += 0 if forward_only else n
            if on_batch is not None:
                on_batch(samples)
            reduced = zip(step.seen_layers, result["units"], strict=True)
            for (info, rule), (values, observations) in reduced:
                stats = unit_stats.get(info.name)
                if stats is None:
                    stats = unit_stats[info.name] = UnitStats(rule, int(observations),
                                                              values.numpy())
                else:
                    stats.fold(values.numpy(), int(observations))
                if not compiled and rule.kind == "relu" and stats.values.all():
                    # Every unit fired: no batch can change it. Its observations go on
                    # being counted, from its positions per sample.
                    step.settled.add(info.name)
                    positions[info.name] = int(observations) // n
            for name in step.settled - {info.name for info, _ in step.seen_layers}:
                unit_stats[name].observations += positions[name] * n
            for index, (low, high) in zip(step.float_outputs, result["outputs"], strict=True):
                if index in output_stats:
                    output_stats[index].fold(low.numpy(), high.numpy())
                else:
                    output_stats[index] = OutputStats(low.numpy(), high.numpy())
            for index, counts in zip(step.row_variables, result["lookups"], strict=True):
                if counts is not None:
                    lookups[index] = lookups.get(index, 0) + counts.numpy()
            if not options.all_samples and samples < max_samples:
                nonzero |= step.nonzero_totals(exclude=nonzero)
                # Every gradient verdict is in; only units are open (never active, or
                # saturated on every sample so far): later batches run forward only.
                forward_only = not compiled and _gradients_decided(step, nonzero)
                if _decided(step, nonzero, unit_stats, samples, max_samples,
                            thresholds.saturation_samples):
                    # An output that varied once is not constant (its range only widens);
                    # a constant one that is not flat cannot be GA206; a flat one must
                    # stay constant over every sample, like a dead unit.
                    _measure_constant(step, tensors, output_stats)
                    if not any(stats.flat for stats in output_stats.values()):
                        break
        _measure_constant(step, tensors, output_stats)
    rounding = step.rounding_only({i for i, stats in output_stats.items() if stats.flat})
    variables = [(v, step.gradient_stats(i, graded, lookups.get(i), rounding=i in rounding))
                 for i, v in enumerate(step.variables)]
    inputs = [GradStats(connected=c) for c in step.inputs_connected or []]
    return ProbeResult(samples=samples, units=unit_stats, variables=variables,
                       inputs=inputs, outputs=output_stats, returned=step.returned)


class _Step:
    """One probe step: forward, backward and every reduction, returning small tensors.

    Written so it runs the same eagerly or traced by ``tf.function``: Python
    side effects (which layers were seen, which gradients are None) happen
    while it runs or traces, and everything per batch comes back as tensors.
    """

    def __init__(self, model: AuditedModel, watched: list[tuple[LayerInfo, UnitRule]],
                 seed: int, eps: float, training: bool, max_samples: int,
                 objective: Objective | None = None) -> None:
        self.model = model
        self.objective = objective or Objective((), (), seed)
        self.watched = watched
        self.eps = eps
        self.training = training
        self.variables = list(model.trainable_variables)
        self.max_samples = max_samples
        # Running mean gradient: each batch adds g × n / max_samples, which stays
        # within the gradient's own magnitude (no float32 overflow from summing).
        # Variables made before the first batch: the first batch's products kept as
        # tensors instead (no variable to create) fragmented the memory of the batches
        # after it (+18% peak on MobileNetV2 with --all-samples).
        self.totals = [tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False)
                       for v in self.variables]
        # Mean square of each batch's gradient, weighted by the batch's samples: the
        # gradient RMS the checks compare. Not the RMS of the running mean, which
        # shrinks as 1/√samples where per-sample gradients disagree (early layers),
        # so a verdict would depend on --samples and on where the probe stopped.
        # One vector for all variables: one update per batch, not one per variable.
        self.squares = tf.Variable(tf.zeros([len(self.variables)], tf.float32),
                                   trainable=False)
        self.sizes = tf.constant([math.prod(v.shape) for v in self.variables],
                                 tf.float32)
        self._squares: np.ndarray | None = None  # ``squares`` read once the probe ends
        self.cotangents: list[np.ndarray | None] | None = None
        self.rng = np.random.default_rng([seed, 1])
        self.seen_layers: list[tuple[LayerInfo, UnitRule]] = []
        self.settled: set[str] = set()
        """ReLU-family layers all of whose units have fired: neither watched nor reduced
        any more (eager steps only; a traced step keeps the structure it was traced with);
        the probe counts their observations."""
        self.float_outputs: list[int] = []  # indices of the outputs whose range is returned
        self.row_variables: list[int] = []  # variables whose gradient comes as rows (lookups)
        self.variables_connected: list[bool] = []
        self.inputs_connected: list[bool] | None = None
        self.returned = 0  # outputs the model returns, seen when the step runs or traces
        self.reaches: dict[int, set[int]] | None = None
        """Per float output whose objective term is its projection: the indices of the
        variables that term reaches (measured with the sensitivities of constant outputs)."""

    def __call__(self, tensors: list[tf.Tensor], labels: list[tf.Tensor | None],
                 offset: tf.Tensor) -> dict[str, Any]:
        """One batch: ``labels`` per output (None: drawn from the seed for the samples
        from ``offset``) feed the outputs whose term is their loss."""
        # Whether an input reaches an output is structural: ask the tape once.
        floats = ([t for t in tensors if t.dtype.is_floating]
                  if self.inputs_connected is None else [])
        n = tf.cast(tf.shape(tensors[0])[0], tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(floats)
            ran = self.model.run(tensors, training=self.training, watched=self._open())
            terms = self._terms(ran.outputs, labels, offset)
            objective = tf.add_n(terms) if terms else tf.constant(0.0)
        grads = tape.gradient(objective, self.variables + floats)
        var_grads = grads[: len(self.variables)]
        self.variables_connected = [g is not None for g in var_grads]
        if floats:
            self.inputs_connected = [g is not None for g in grads[len(self.variables):]]
        weight = n / self.max_samples
        self.row_variables = []
        lookups = []
        halves = []  # per variable: half its gradient's sum of squares (0 if disconnected)
        for index, (grad, total) in enumerate(zip(var_grads, self.totals, strict=True)):
            if grad is None:
                halves.append(tf.constant(0.0))
                continue
            if isinstance(grad, tf.IndexedSlices):  # Embedding: sum duplicate rows
                self.row_variables.append(index)
                count = grad.dense_shape[0]
                lookups.append(tf.math.bincount(tf.cast(grad.indices, tf.int32),
                                                minlength=count, maxlength=count))
                grad = tf.convert_to_tensor(grad)
            grad = tf.cast(grad, tf.float32)
            # total += grad × weight in one pass (total - grad × -weight: the same
            # rounding as a multiply then an add, checked bit for bit).
            tf.raw_ops.ResourceApplyGradientDescent(var=total.handle, alpha=-weight,
                                                    delta=grad)
            # l2_loss is sum(grad²) / 2 in one pass: × 2 / size is reduce_mean(grad²)
            # bit for bit (the same reduction, halved exactly).
            halves.append(tf.nn.l2_loss(grad))
        if halves:
            self.squares.assign_add(tf.stack(halves) * 2.0 / self.sizes * n)
        return {"units": self._units(ran.activations), "outputs": self._ranges(ran.outputs),
                "lookups": lookups}

    def forward(self, tensors: list[tf.Tensor]) -> dict[str, Any]:
        """The step without the tape: the units and the outputs' ranges of one batch,
        once the gradients have said all they can (no lookups: those weigh gradients)."""
        ran = self.model.run(tensors, training=self.training, watched=self._open())
        return {"units": self._units(ran.activations), "outputs": self._ranges(ran.outputs),
                "lookups": [None] * len(self.row_variables)}

    def _total(self, index: int) -> np.ndarray:
        """A running mean gradient read into numpy (one read: the checks on it are
        per variable, and numpy's calls cost less than TensorFlow's ops)."""
        return np.asarray(self.totals[index])

    def _open(self) -> list[LayerInfo]:
        """The watched layers a batch can still change the verdict of (not settled)."""
        return [info for info, _ in self.watched if info.name not in self.settled]

    def nonzero_totals(self, exclude: set[int]) -> set[int]:
        """Indices of connected variables whose accumulated gradient is non-zero.

        A batch gradient that is non-zero makes the running sum non-zero (exact
        cancellation aside), so checking the sum replaces a check per batch.
        """
        return {
            i for i, connected in enumerate(self.variables_connected)
            if connected and i not in exclude and bool(np.any(self._total(i) != 0.0))
        }

    def rounding_only(self, flat: set[int]) -> set[int]:
        """Indices of the variables that only the ``flat`` outputs reach, under an objective
        of projections alone.

        Such a gradient is zero in exact arithmetic (flat: no weight moves the output), and
        float32 gives exact zeros or rounding noise depending on the kernels: a softmax
        over one unit is exactly 1 with oneDNN, so every gradient before it is 0, and
        1 - 2⁻²⁴ with Eigen (TF_ENABLE_ONEDNN_OPTS=0), which sends back 1e-10 to 1e-8. It
        is reported as zero either way, so that the report does not depend on the math
        library. Not under a loss term: Keras differentiates a softmax or sigmoid head
        through its logits, a real gradient.
        """
        if (not flat or self.reaches is None
                or any(loss is not None for loss in self._losses(self.returned))):
            return set()
        moved = set[int]().union(*(r for i, r in self.reaches.items() if i not in flat))
        return set[int]().union(*(r for i, r in self.reaches.items() if i in flat)) - moved

    def gradient_stats(self, index: int, samples: int,
                       lookups: np.ndarray | None = None, *,
                       rounding: bool = False) -> GradStats:
        """Connectivity, finiteness, non-zero-ness and RMS of the batch gradients.

        ``rounding``: the gradient is rounding noise of an exact zero
        (:meth:`rounding_only`): zero, and its RMS 0, when finite.

        With ``lookups`` (how often each row of an Embedding was looked up) the RMS is
        over the rows looked up, of their mean gradient per lookup. A row gets gradient
        only from the samples that look it up: averaged over all samples, the rows no
        token chose (zero) and the rarity of the others (a row used once in 256 samples
        gets 1/256 of a lookup's gradient) would make a healthy embedding look
        vanishing, the more so the larger the vocabulary and the more samples.
        """
        if not self.variables_connected[index]:
            return GradStats(connected=False)
        total = self._total(index)
        if rounding and bool(np.all(np.isfinite(total))):
            return GradStats(connected=True, nonzero=False, rms=0.0,
                             rows=None if lookups is None else int(np.count_nonzero(lookups)))
        scale = self.max_samples / max(samples, 1)
        # × 1.0 changes no float: skip the pass over the variable when every sample ran.
        # float32 × float32 in numpy rounds as TensorFlow's multiply does.
        mean = total * np.float32(scale) if scale != 1.0 else total
        rows = None
        if lookups is None:
            if self._squares is None:  # one read for all variables
                self._squares = self.squares.numpy()
            rms = math.sqrt(float(self._squares[index]) / max(samples, 1))
        else:
            used = lookups > 0
            rows = int(np.count_nonzero(used))
            per_lookup = (samples / lookups[used]).astype(np.float32)
            judged = tf.boolean_mask(mean, used) * per_lookup.reshape((-1,) + (1,) * (
                len(mean.shape) - 1))
            rms = float(tf.sqrt(tf.reduce_mean(tf.square(judged)))) if rows else 0.0
        return GradStats(
            connected=True,
            finite=bool(np.all(np.isfinite(mean))),
            nonzero=bool(np.any(mean != 0.0)),
            rms=rms,
            rows=rows,
        )

    def sensitivities(self, tensors: list[tf.Tensor], indices: list[int]) -> dict[int, float]:
        """Per output in ``indices``: the largest gradient RMS, over the trainable
        variables, of that output's projection term, per unit of its cotangent's RMS
        (one more eager pass over ``tensors``). Outputs share the objective, so its
        gradient cannot say which output moves a variable. The projection even under a
        loss objective: GA206 asks whether the weights move the output at all, which is
        the output's own property; a loss through its logits measures the logits.

        The first pass also records which variables each float output's projection
        reaches (:attr:`reaches`)."""
        wanted = set(indices) if self.reaches is not None else None  # None: every output
        with tf.GradientTape(persistent=True) as tape:
            ran = self.model.run(tensors, training=self.training, watched=[])
            cotangents = self._cotangents(ran.outputs)
            terms = {i: (self._term(o, c), rms(c)) for i, (o, c)
                     in enumerate(zip(ran.outputs, cotangents, strict=True))
                     if c is not None and (wanted is None or i in wanted)}
        result = {}
        reaches = {}
        for index, (term, scale) in terms.items():
            grads = tape.gradient(term, self.variables)
            reaches[index] = {i for i, g in enumerate(grads) if g is not None}
            if index not in indices:
                continue
            values = [g.values if isinstance(g, tf.IndexedSlices) else g
                      for g in grads if g is not None]
            # Nothing trainable reaches it: flatness is unknown, so it is not called flat.
            largest = max((rms(g.numpy()) for g in values), default=math.inf)
            result[index] = largest / scale
        del tape
        if self.reaches is None:
            self.reaches = reaches
        return result

    def _terms(self, outputs: list[tf.Tensor], labels: list[tf.Tensor | None],
               offset: tf.Tensor) -> list[tf.Tensor]:
        """Each float output's term: its loss where the objective has one, else its
        projection."""
        # The compile config names the outputs in the order the model returns them; a
        # model that returns another number of outputs is not matched by position.
        self.returned = len(outputs)
        losses = self._losses(len(outputs))
        cotangents = self._cotangents(outputs)
        terms = []
        for index, (output, cotangent) in enumerate(zip(outputs, cotangents, strict=True)):
            if losses and losses[index] is not None:
                terms.append(self.objective.term(index, output, labels[index], offset))
            elif cotangent is not None:
                terms.append(self._term(output, cotangent))
        return terms

    def _losses(self, returned: int) -> tuple[OutputLoss | None, ...]:
        """The objective's loss per output position; none for a model that returns another
        number of outputs than the compile config names."""
        return self.objective.losses if len(self.objective.losses) == returned else ()

    def _cotangents(self, outputs: list[tf.Tensor]) -> list[np.ndarray | None]:
        """One fixed random cotangent per float output (integer/bool outputs carry no
        gradient), drawn on the first batch."""
        if self.cotangents is None:
            self.cotangents = [
                self.rng.standard_normal(tuple(o.shape[1:])).astype("float32")
                if o.dtype.is_floating else None
                for o in outputs
            ]
        return self.cotangents

    @staticmethod
    def _term(output: tf.Tensor, cotangent: np.ndarray) -> tf.Tensor:
        """One output's part of the objective: the mean over samples of <output, c>."""
        product = tf.cast(output, tf.float32) * cotangent
        flat = tf.reshape(product, [tf.shape(output)[0], -1])
        return tf.reduce_mean(tf.reduce_sum(flat, axis=1))

    def _ranges(self, outputs: list[tf.Tensor]) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """Per float output: its element-wise minimum and maximum over the batch."""
        self.float_outputs = [i for i, o in enumerate(outputs) if o.dtype.is_floating]
        cast = [tf.cast(outputs[i], tf.float32) for i in self.float_outputs]
        return [(tf.reduce_min(o, axis=0), tf.reduce_max(o, axis=0)) for o in cast]

    def _units(self, activations: dict[str, list[tf.Tensor]]) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """Per watched layer: (per-unit statistic over the batch, observations)."""
        self.seen_layers = []
        reduced = []
        for info, rule in self.watched:
            if info.name in self.settled:
                continue
            outputs = [o for o in activations.get(info.name, ())
                       if isinstance(o, tf.Tensor) and o.dtype.is_floating]
            if not outputs:
                continue
            parts = [self._reduce(rule, o) for o in outputs]
            values = parts[0][0]
            for other, _ in parts[1:]:
                values = tf.logical_or(values, other) if values.dtype == tf.bool else values + other
            reduced.append((values, tf.add_n([count for _, count in parts])))
            self.seen_layers.append((info, rule))
        return reduced

    def _reduce(self, rule: UnitRule, output: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        values = tf.cast(output, tf.float32)
        if values.shape.rank == 1:
            values = values[:, None]
        values = tf.reshape(values, [-1, values.shape[-1]])
        observations = tf.shape(values)[0]
        if rule.kind == "relu":
            return _fired(values, rule.high), observations
        near = tf.logical_or(values <= rule.low + self.eps, values >= rule.high - self.eps)
        return tf.reduce_sum(tf.cast(near, tf.int32), axis=0), observations


def _fired(values: tf.Tensor, high: float) -> tf.Tensor:
    """Per column of ``values``: whether any value is non-zero and below ``high``.

    Read from each column's largest value first (one reduction, nothing allocated per
    value): a column whose largest value is in (0, high) fired. Only the columns it
    does not decide (all zeros, one that reached ``high``, a NaN: the reduction
    propagates it, or negative values) are checked value by value, with the same
    answer: in a healthy layer, none or a few."""
    largest = tf.reduce_max(values, axis=0)
    fired = tf.logical_and(largest > 0.0, largest < high)

    def exact() -> tf.Tensor:
        undecided = tf.where(tf.logical_not(fired))
        some = tf.gather(values, undecided[:, 0], axis=1)
        hit = tf.reduce_any(tf.logical_and(tf.not_equal(some, 0.0), some < high), axis=0)
        return tf.tensor_scatter_nd_update(fired, undecided, hit)

    return tf.cond(tf.reduce_all(fired), lambda: fired, exact)


def _measure_constant(step: _Step, tensors: list[tf.Tensor],
                      output_stats: dict[int, OutputStats]) -> None:
    """Measure how much the trainable variables move each constant output not measured
    yet (rare: one more pass over the batch ``tensors``)."""
    unmeasured = [i for i, stats in output_stats.items()
                  if stats.constant and stats.sensitivity is None]
    if unmeasured:
        for index, value in step.sensitivities(tensors, unmeasured).items():
            output_stats[index].sensitivity = value


def _decided(step: _Step, nonzero: set[int], unit_stats: dict[str, UnitStats], samples: int,
             max_samples: int, saturation_samples: float) -> bool:
    """Whether more batches could still change a unit or gradient verdict.

    A unit that has fired once can never be dead; a unit seen unsaturated on more
    observations than the saturation rule allows over all ``max_samples`` can no
    longer become saturated; a connected gradient that was non-zero once is
    not zero.
    """
    if not _gradients_decided(step, nonzero):
        return False
    for stats in unit_stats.values():
        if stats.rule.kind == "relu":
            if not stats.values.all():
                return False
            continue
        allowed = (1 - saturation_samples) * stats.observations / samples * max_samples
        if np.any(stats.observations - stats.values <= allowed):
            return False
    return True


def _gradients_decided(step: _Step, nonzero: set[int]) -> bool:
    """Every connected variable has had a non-zero gradient: no batch can change that."""
    return all(not c or i in nonzero for i, c in enumerate(step.variables_connected))


@contextlib.contextmanager
def _restoring(variables: Sequence[Variable]) -> Iterator[None]:
    """Put the values of ``variables`` back on exit (training mode updates them)."""
    saved = [tf.identity(v) for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved, strict=False):
            variable.assign(value)


def rms(values: Any) -> float:
    """Root mean square of a weight tensor, as a Python float."""
    array = np.asarray(values, dtype=np.float64)
    return math.sqrt(float(np.mean(np.square(array)))) if array.size else 0.0
