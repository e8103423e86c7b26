"""The catalogue of finding codes: the stable interface users script against.

Every finding gradaudit can produce is described here once: its code, a short
snake_case name, its severity, a one-line title, what it means, the usual
causes and how to fix it. ``gradaudit checks`` and ``gradaudit explain`` print
from this table; checks take their severity from it. The texts quote the
default thresholds (``options.Thresholds``) and the activation names
(``model.rules``) the checks use, so they cannot drift from them. Importing
this module must stay cheap (no TensorFlow).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gradaudit.model.head_table import table_text
from gradaudit.model.rules import CONSTANT_EPSILONS, FLOAT32_EPSILON, RELU_FAMILY, SATURATING
from gradaudit.options import USUAL_LEARNING_RATES, Thresholds
from gradaudit.report.types import Finding, Severity


@dataclass(frozen=True)
class Rule:
    """One entry of the catalogue: a finding code and what it means (SARIF calls it a rule).

    Not to be confused with ``checks.Check``, the functions that produce findings.
    """

    code: str
    name: str
    severity: Severity
    title: str
    explanation: str
    fix: str
    source: str = ""


def _power(value: float) -> str:
    """``1e-3``, as the README and ``[tool.gradaudit]`` write thresholds, rather than 0.001."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _names(names: Iterable[str]) -> str:
    """``a, b or c``."""
    *rest, last = names
    return f"{', '.join(rest)} or {last}" if rest else last


def _rates() -> str:
    """``Adam 1e-3, …, SGD 1e-2`` from ``options.USUAL_LEARNING_RATES``."""
    return ", ".join(f"{name} {_power(rate)}" for name, (rate, _) in USUAL_LEARNING_RATES.items())


def _sources() -> str:
    """Each optimizer's usual rate with its source."""
    return "; ".join(f"{name}: {source}" for name, (_, source) in USUAL_LEARNING_RATES.items())


_DEFAULT = Thresholds()
_RELU_NAMES = ", ".join(RELU_FAMILY)
_SATURATING_NAMES = _names(SATURATING)

CATALOGUE: tuple[Rule, ...] = (
    Rule(
        code="GA101",
        name="partially_dead_relu",
        severity=Severity.WARNING,
        title="Partially dead ReLU layer",
        explanation=(
            f"At least `dead_warn` (default {_DEFAULT.dead_warn:.0%}) of the units of a "
            f"ReLU-family layer ({_RELU_NAMES}, a ReLU layer without negative slope) "
            "never produce an active output on any probe sample. A unit that never "
            "activates has a derivative of exactly zero, so neither it nor the weights "
            "feeding it can learn: the 'dying ReLU'. Units are channels (the last axis) "
            "for convolutional and sequence outputs, counted over every position."
        ),
        fix=(
            "Lower the learning rate (dying ReLU usually follows one huge update), "
            "use He initialisation and a zero or small positive bias, add "
            "normalisation before the activation, or switch to LeakyReLU, ELU or "
            "GELU, whose derivative is never exactly zero."
        ),
        source="SageMaker Debugger DeadRelu flags a layer at >50% dead units; "
        "keras-contrib DeadReluDetector warns at >=10%.",
    ),
    Rule(
        code="GA102",
        name="dead_relu_layer",
        severity=Severity.ERROR,
        title="Fully dead ReLU layer",
        explanation=(
            "Every unit of a ReLU-family layer is inactive on every probe sample. "
            "No gradient passes the layer: its own weights and every trainable "
            "layer before it on this path receive exactly zero gradient."
        ),
        fix=(
            "Lower the learning rate that killed it (one huge update usually does; the "
            "diagnosis quotes the file's rate when the optimizer state is there) and "
            "restart from an earlier checkpoint, or re-initialise the layer (He normal, a "
            "zero or small positive bias: a large negative bias kills every unit). Use "
            "LeakyReLU or ELU, whose derivative is never exactly zero, put "
            "BatchNormalization before the activation, and check the input scale "
            "(standardise the data). The zero gradients of the layers before it (GA202, "
            "GA403) and a dead layer fed only its zeros are its consequences: fix this one."
        ),
    ),
    Rule(
        code="GA103",
        name="batchnorm_dead_units",
        severity=Severity.WARNING,
        title="Dead ReLU units shown by BatchNorm statistics",
        explanation=(
            "Read from the file alone (also with --no-probe): at least `bn_dead_warn` "
            f"(default {_DEFAULT.bn_dead_warn:.0%}) of the units of a ReLU-family layer "
            f"({_RELU_NAMES}, a ReLU layer without negative slope) are dead on the training "
            "data, as the BatchNormalization layer next to it shows. Affine → BN → ReLU: on "
            "the training distribution the BN output of channel c is about N(beta_c, gamma_c²), so "
            "c fires on an estimated Φ(beta_c/|gamma_c|) of the inputs (a Gaussian model); below "
            f"`bn_dead_rate` ({_power(_DEFAULT.bn_dead_rate)}, beta/|gamma| < -3.72) it is dead; "
            "gamma_c = 0 outputs beta_c everywhere. ReLU → BN: a unit that never fired fed the BN "
            "only zeros, so its moving mean stayed exactly 0 while its moving variance "
            "decayed from 1 (as momentum^steps); one that stopped firing decayed below "
            f"`bn_variance_ratio` ({_power(_DEFAULT.bn_variance_ratio)}) of the layer's "
            "median variance. Evidence: the BN layer's gamma, beta, moving_mean and "
            "moving_variance, quoted in the finding. Error when every unit is dead. "
            "LeakyReLU, ELU, GELU and swish are never flat, so they are not judged."
        ),
        fix=(
            "Lower what drove beta far below zero or gamma to zero (usually a too-high "
            "learning rate, or weight decay on gamma) and retrain from an earlier checkpoint, "
            "or re-initialise the dead channels (beta = 0, gamma = 1), or prune them: a dead "
            "channel only costs compute. Where the probe measures the layer dead too (GA101, "
            "GA102) it is the same root cause."
        ),
        source="Ioffe & Szegedy 2015, Batch Normalization (arXiv:1502.03167): the output "
        "gamma·x̂ + beta with x̂ normalised by the batch/moving statistics; Keras "
        "BatchNormalization docs (keras.io/api/layers/normalization_layers/batch_normalization: "
        "moving_mean = moving_mean·momentum + mean(batch)·(1 - momentum)); the Gaussian "
        "model of a normalised pre-activation: the Central Limit Theorem over the affine "
        "layer's many inputs.",
    ),
    Rule(
        code="GA111",
        name="saturated_activation",
        severity=Severity.WARNING,
        title="Saturated sigmoid/tanh units",
        explanation=(
            f"At least `saturation_units` (default {_DEFAULT.saturation_units:.0%}) of the "
            f"units of a {_SATURATING_NAMES} layer output a value within `saturation_eps` "
            f"(default {_power(_DEFAULT.saturation_eps)}) of the activation's bounds on "
            "(nearly) every probe sample (at least `saturation_samples`, default "
            f"{_DEFAULT.saturation_samples:.0%}). There the derivative is close to or "
            "exactly zero, so almost no gradient passes."
        ),
        fix=(
            "Scale inputs (standardise them), use a smaller weight initialisation "
            "(Glorot), add normalisation before the activation, or replace a hidden "
            "sigmoid/tanh by ReLU-family activations."
        ),
        source="SageMaker Debugger SaturatedActivation (1% / 50% rule); "
        "DeepDiagnosis flags >50% of pre-activations outside [-5, 5].",
    ),
    Rule(
        code="GA201",
        name="disconnected_variable",
        severity=Severity.ERROR,
        title="Trainable variable gets no gradient",
        explanation=(
            "The tape returns no gradient at all (None) for a trainable variable: "
            "no differentiable path leads from it to any output. Usual cuts are "
            "stop_gradient, a cast to an integer or boolean dtype, argmax/argmin, "
            "rounding, or values taken out to NumPy and back. The finding names the "
            "operation that cuts the path where the model's graph shows it."
        ),
        fix=(
            "Keep the path float and on the tape: remove the stop_gradient, replace "
            "argmax/hard choices by softmax-weighted (soft) versions or a "
            "straight-through estimator, and do not cast to integers inside the "
            "model. The finding names the op and the layer after which it cuts; the "
            "layers before that layer on the same cut are its consequences. If the layer "
            "is meant to be fixed, set trainable=False."
        ),
    ),
    Rule(
        code="GA202",
        name="zero_gradient",
        severity=Severity.ERROR,
        title="Trainable variable gets an exactly zero gradient",
        explanation=(
            "The variable is connected to the outputs, but its gradient is exactly "
            "zero on every probe batch: the derivative is zero wherever the model "
            "is used. Typical causes are dead ReLU units downstream, a "
            "`where`/mask whose branch is never selected, a zero input feeding the "
            "layer, or a vanishing gradient that underflowed to zero in float32."
        ),
        fix=(
            "Look at the layers after this one: revive dead units (see GA102), "
            "check the condition of any `where`, and check what feeds the layer. "
            "For deep saturating stacks see GA204."
        ),
    ),
    Rule(
        code="GA203",
        name="exploding_gradient",
        severity=Severity.WARNING,
        title="Exploding gradient",
        explanation=(
            "A layer's gradient RMS is orders of magnitude above its weight RMS "
            f"(`exploding_ratio`, default {_power(_DEFAULT.exploding_ratio)}: one plain SGD "
            "step would change the weights by far more than their own size), or the "
            "gradient grows by orders of magnitude from the latest layers towards the "
            f"input (`exploding_growth`, default {_power(_DEFAULT.exploding_growth)}). "
            "In a deep linear stack with large weights the gradients are equally huge at "
            "every depth, which is why the weight-relative ratio is checked, not only "
            "first/last growth."
        ),
        fix=(
            "Use a smaller initialisation (Glorot/He), add normalisation layers, "
            "clip gradients (clipnorm) and lower the learning rate."
        ),
        source="AUTOTRAINER: first/last gradient norm ratio > 70; SageMaker "
        "Debugger WeightUpdateRatio above 10.",
    ),
    Rule(
        code="GA204",
        name="vanishing_gradient",
        severity=Severity.WARNING,
        title="Vanishing gradient",
        explanation=(
            "The gradient RMS of an early trainable layer is orders of magnitude "
            "below that of the latest trainable layer (ratio < `vanishing_ratio`, "
            f"default {_power(_DEFAULT.vanishing_ratio)}) and tiny in absolute terms "
            f"(< `vanishing_abs`, default {_power(_DEFAULT.vanishing_abs)}): early layers "
            "barely learn. Deep stacks of saturating activations (sigmoid, tanh) cause "
            "this; in float32 the gradient of the deepest layers can underflow to exactly "
            "zero, which is then also reported as GA202."
        ),
        fix=(
            "Use ReLU-family activations in hidden layers, add residual "
            "connections or normalisation, and use Glorot/He initialisation."
        ),
        source="AUTOTRAINER: first/last gradient norm ratio < 1e-3 and first "
        "norm < 1e-4.",
    ),
    Rule(
        code="GA205",
        name="non_finite_gradient",
        severity=Severity.ERROR,
        title="Non-finite gradient (NaN/Inf)",
        explanation=(
            "The gradient of a trainable variable contains NaN or Inf on at least "
            "one probe batch. One such step destroys the weights. Causes: "
            "operations with an infinite derivative at a reachable point (sqrt or "
            "log at zero, division by zero), overflow, or non-finite weights."
        ),
        fix=(
            "Add an epsilon inside sqrt/log/division (sqrt(x + 1e-12)), clip "
            "values before exp, check the weights (GA303) and the input data."
        ),
    ),
    Rule(
        code="GA206",
        name="constant_output",
        severity=Severity.ERROR,
        title="Constant model output",
        explanation=(
            "A float output of the model is the same on every probe sample and no "
            "trainable weight moves it: it does not depend on the inputs, and the gradient "
            "it sends back is zero up to rounding, so nothing before it can learn. Those "
            "weights get a zero gradient in exact arithmetic; float32 kernels may add rounding "
            "noise (RMS around 1e-10 to 1e-7, with oneDNN off), so under the random "
            "projection a weight that only constant outputs reach is reported with a zero "
            "gradient (GA202) whatever the kernels computed. Under a loss Keras "
            "differentiates a softmax/sigmoid head through its logits, a real gradient. "
            "The classic cause is a one-unit softmax, `Dense(1, activation=\"softmax\")`: "
            "a softmax over one value is 1.0 whatever the value. Others: a sigmoid or tanh "
            "output saturated to exactly its bound in float32, a ReLU output that is zero "
            "everywhere (also GA102), an argmax, round or cast of a value that barely "
            "varies (an argmax over one unit is always 0). Constant means, element by "
            "element over every probe sample in float32, max - min within "
            f"{CONSTANT_EPSILONS} machine epsilons ({CONSTANT_EPSILONS * FLOAT32_EPSILON:.1e}) "
            "of the element's magnitude, so an output constant in exact arithmetic but "
            "computed with rounding (sigmoid(x) + sigmoid(-x)) counts too. Flat means that "
            "one more pass over the last probe batch gives that output's part of the "
            "objective no gradient, for any trainable variable, above the same tolerance "
            "(per unit of its random cotangent). An output that is constant only because "
            "what feeds it is (a dead layer, a gradient that vanished on the way, features "
            "of a frozen base that shrink to nothing) is not flat: its own layer still moves "
            "it, and the cause lies upstream (GA102, GA202, GA204). Reported on the layer "
            "that computes the output, with `metrics.spread` and `metrics.sensitivity` (the "
            "largest gradient)."
        ),
        fix=(
            "For two classes use `Dense(1, activation=\"sigmoid\")` with binary "
            "cross-entropy, or `Dense(2, activation=\"softmax\")`; for k classes "
            "`Dense(k, activation=\"softmax\")` (a one-unit softmax usually comes from "
            "a binary label). Take argmax/round after prediction, not inside the trained "
            "model. For a saturated output scale the inputs and re-initialise the layer "
            "(see GA111)."
        ),
        source=f"{CONSTANT_EPSILONS} epsilons: outputs constant in exact arithmetic measured "
        "2 to 8 epsilons apart (sigmoid(x) + sigmoid(-x); softmax summed over 2 to 10,000 "
        "classes), flat outputs' gradients at most 1 epsilon, outputs constant from upstream "
        "0.1 to 1 (per unit cotangent). Keras 3 warns about a softmax over one unit only "
        "while the model is called.",
    ),
    Rule(
        code="GA211",
        name="unused_input",
        severity=Severity.WARNING,
        title="Input with no gradient path to any output",
        explanation=(
            "A float input of the model has no differentiable path to any output: "
            "it is unused, or it only reaches the outputs through operations that "
            "cut the gradient. Whatever is fed there cannot influence training. "
            "Integer inputs (token ids) are never reported: they are not "
            "differentiable by nature."
        ),
        fix=(
            "Connect the input to the model's computation, or remove it from the "
            "model's inputs; see GA201 for cuts."
        ),
    ),
    Rule(
        code="GA301",
        name="frozen_layer",
        severity=Severity.INFO,
        title="Frozen layer",
        explanation=(
            "The layer has weights and was set trainable=False: none of its weights "
            "will be updated. This is expected for a frozen pre-trained base in "
            "transfer learning; it is reported so that an accidental freeze is seen."
        ),
        fix=("If the layer should learn, set `layer.trainable = True` before compiling; "
             "if it should not, remove it from the path to the loss. Rows inside it "
             "without a gradient are its consequences."),
    ),
    Rule(
        code="GA302",
        name="no_trainable_variables",
        severity=Severity.ERROR,
        title="Model has no trainable variables",
        explanation=(
            "Not a single variable of the model is trainable, so training cannot "
            "change anything: the loss stays where it is."
        ),
        fix=(
            "Set `model.trainable = True`, or unfreeze the layers that should learn "
            "(for example the head on top of a frozen base), then compile again."
        ),
    ),
    Rule(
        code="GA303",
        name="non_finite_weights",
        severity=Severity.ERROR,
        title="Non-finite weight values",
        explanation=(
            "A layer's weights contain NaN or Inf. Every output that depends on "
            "them is non-finite and so are the gradients: training has diverged."
        ),
        fix=(
            "Restore an earlier checkpoint, lower the learning rate, clip gradients "
            "and look for operations with infinite derivatives (GA205)."
        ),
    ),
    Rule(
        code="GA401",
        name="partially_stalled_in_training",
        severity=Severity.WARNING,
        title="Units that stopped getting a gradient during training",
        explanation=(
            f"At least `dead_warn` (default {_DEFAULT.dead_warn:.0%}) of a layer's units "
            "stopped getting a gradient (none, or one ≥1000× below their past) during the "
            "last steps before the model was saved, as "
            "the optimizer state in the file shows: a slot that gets no gradient shrinks "
            "by a fixed factor at every step (Adam's |m|/√v by β1/√β2 ≈ 0.9, RMSprop's "
            "√v by √ρ, SGD's momentum by the momentum). A unit is stalled when Adam's "
            f"ratio is below `stall_ratio` (default {_power(_DEFAULT.stall_ratio)}; live "
            "units sit near 0.1–1), or RMSprop's √v or SGD's momentum is below "
            f"`stall_relative` (default {_power(_DEFAULT.stall_relative)}) × the most "
            "active unit of the model; and only once the file's steps are enough for a "
            "live unit to decay that far (before that, only slots that are exactly zero "
            "count). It says a unit \"received no gradient\" only where the state shows "
            "it: slots exactly zero, or Adam's ratio decayed at the no-gradient rate as far "
            "again past the threshold; other stalled units are worded by how far their "
            "gradient fell (≥1/`stall_ratio` below their own past for Adam; below "
            "`stall_relative` × the most active unit for a magnitude, which cannot tell a "
            "trickle from nothing). "
            "This is what the training data did, which the probe's random inputs "
            "may not show: usually dying ReLU units after a too-high learning rate, or "
            "units cut off by dead layers after them."
        ),
        fix=(
            "Lower the learning rate (or warm it up), use He initialisation, add "
            "normalisation before the activation, or switch to LeakyReLU/ELU/GELU; then "
            "retrain, since stalled units do not recover by themselves."
        ),
        source="Update rules: Kingma & Ba (ICLR 2015) for Adam, Hinton's lecture 6e "
        "for RMSprop. Thresholds measured on MLPs trained with Adam, RMSprop and SGD "
        "with momentum, against the units that never activate on their training data.",
    ),
    Rule(
        code="GA402",
        name="stalled_in_training",
        severity=Severity.ERROR,
        title="Layer that stopped getting a gradient during training",
        explanation=(
            "Every unit of the layer received no gradient during the last steps before "
            "the model was saved, per the optimizer state (see GA401 for how a unit is "
            "judged): the layer stopped learning, and usually nothing before it on the "
            "same path learns either."
        ),
        fix=(
            "Restart from a checkpoint before the layer died, with a lower learning rate "
            "or gradient clipping; check the layer's bias and the layers after it."
        ),
    ),
    Rule(
        code="GA403",
        name="never_updated",
        severity=Severity.ERROR,
        title="Trainable variable never updated in training",
        explanation=(
            "The optimizer slots of a trainable variable are exactly zero after at least "
            "one step: not one step ever gave it a gradient. Keras skips a variable whose "
            "gradient is None, and a zero gradient leaves the slots at zero. Usual causes: "
            "a path cut from the loss (stop_gradient, an integer cast, argmax), an output "
            "with a loss weight of 0 or no loss (GA413), or a head that gives no gradient "
            "(GA411)."
        ),
        fix=(
            "Connect the variable to a loss (see GA201 for cuts, GA413 for outputs), or "
            "set trainable=False if it is meant to stay fixed."
        ),
    ),
    Rule(
        code="GA404",
        name="no_training_history",
        severity=Severity.INFO,
        title="No training history in the file",
        explanation=(
            "The file has no optimizer state (the model was saved uncompiled or without "
            "its optimizer), the optimizer has taken no step (iterations = 0: compiled, "
            "never trained), or its state cannot show which units got a gradient (plain "
            "SGD, Adagrad). The checks that read the optimizer state (GA401–GA403) were "
            "skipped; reported once per model."
        ),
        fix=(
            "To get them, save the model after training with its optimizer "
            "(`model.save(path)`, the default includes it)."
        ),
    ),
    Rule(
        code="GA411",
        name="head_without_gradient",
        severity=Severity.ERROR,
        title="Output head that cannot learn under its loss",
        explanation=(
            "The output layer and its compiled loss together give no usable gradient: a "
            "softmax over one unit is 1 for every input, so its derivative is zero (Keras "
            "on TensorFlow trains the logits under a crossentropy, but the model still "
            "outputs 1); a categorical or sparse categorical crossentropy over one unit "
            "normalises the single class to certainty, so the loss is constant. Judged "
            "with GA412 against one head/loss table (`gradaudit explain GA412`)."
        ),
        fix=(
            "For two classes use one sigmoid unit with binary_crossentropy, or two "
            "softmax units with categorical crossentropy."
        ),
        source="Keras source: softmax over one unit (Keras warns about it); "
        "categorical crossentropy divides by the sum over the class axis.",
    ),
    Rule(
        code="GA412",
        name="head_loss_mismatch",
        severity=Severity.WARNING,
        title="Output head and loss disagree",
        explanation=(
            "Each output's head — the activation it ends in (also a separate Activation "
            "or Softmax layer after the last Dense/Conv, through a Dropout), its units — "
            "is read with its compiled loss (from_logits) and metrics; the first row of "
            "this table that fits gives the finding:\n" + table_text() + "\n"
            "With labels in --inputs: a bounded head (sigmoid, softmax, tanh, relu, …) "
            "under a regression loss whose labels lie outside what it can output "
            "(warning, with the head's range and the share of labels outside).\n"
            "From the model config alone, compiled or not: a Dropout or "
            "BatchNormalization between the last affine layer and its separate "
            "sigmoid/softmax, or after the head (warning); a sigmoid, softmax or tanh "
            "applied twice in a row (warning); two or more Dense/Conv layers with only "
            "shape-keeping linear layers between them, which collapse into one linear "
            "map (info)."
        ),
        fix=(
            "Use the pair the finding names: end the model in sigmoid/softmax with "
            "from_logits=False, or in a linear layer with from_logits=True; softmax with "
            "a categorical crossentropy for one class per sample, sigmoid with "
            "binary_crossentropy for several; a linear head for a regression loss."
        ),
        source="Keras source: backend crossentropies (the logits shortcut, the clip to "
        "[epsilon, 1 - epsilon], the renormalisation by the sum); get_metric in "
        "trainers/compile_utils.py (what `accuracy` resolves to).",
    ),
    Rule(
        code="GA413",
        name="output_without_loss",
        severity=Severity.WARNING,
        title="Output with no loss or a loss weight of 0",
        explanation=(
            "An output of the model has no loss while others have, or its loss weight "
            "is 0: no gradient comes from it, so the layers only it uses do not train "
            "(their optimizer slots stay at zero, GA403)."
        ),
        fix=(
            "Give the output a loss and a non-zero weight, or remove it from the "
            "training model if it is only for inference."
        ),
    ),
    Rule(
        code="GA414",
        name="optimizer_settings",
        severity=Severity.ERROR,
        title="Optimizer settings that stop learning",
        explanation=(
            "Error: a learning rate ≤ 0, or a clipnorm/clipvalue/global_clipnorm of 0 in "
            "a Keras 2 optimizer_v2 (which clips every gradient to zero; Keras 3 and "
            "standalone Keras ≤ 2.3, told by the HDF5 `keras_version` without `-tf`, skip "
            "a clip of 0) — unless the optimizer state shows gradients reached the "
            "weights (non-zero slots): the evidence wins, and the setting is then info. "
            "Warning: a learning rate more than `learning_rate_harm_factor` (default "
            f"{_DEFAULT.learning_rate_harm_factor:g}) times above the optimizer's usual "
            "rate when the file shows what a too-high rate does (stalled units, GA401/"
            "GA402; NaN or Inf in the optimizer slots), named in the finding. Info: a rate "
            f"more than `learning_rate_factor` (default {_DEFAULT.learning_rate_factor:g}) "
            "times above or below the usual one with no such evidence (fine-tuning runs "
            f"far below on purpose). Usual rates: {_rates()}. A schedule is judged by its "
            "initial rate."
        ),
        fix=(
            "Set a positive learning rate near the optimizer's usual one, and leave "
            "clipping unset rather than 0."
        ),
        source=f"Usual rates: {_sources()}.",
    ),
)

BY_CODE: dict[str, Rule] = {rule.code: rule for rule in CATALOGUE}


def lookup(code: str) -> Rule:
    """The catalogue entry for ``code`` (case-insensitive); KeyError if unknown."""
    return BY_CODE[code.strip().upper()]


def finding(code: str, layer: str, message: str, **metrics: Any) -> Finding:
    """A Finding whose severity comes from the catalogue entry for ``code``."""
    return Finding(code=code, severity=BY_CODE[code].severity, layer=layer,
                   message=message, metrics=metrics)
