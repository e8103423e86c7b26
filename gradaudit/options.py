"""Audit options and detection thresholds: every default lives here, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from gradaudit.model.specs import InputShapes
from gradaudit.report.types import FailOn

Distribution = Literal["normal", "uniform"]
"""How random float inputs are drawn (``--input-dist``)."""
DISTRIBUTIONS: tuple[Distribution, ...] = get_args(Distribution)
ObjectiveKind = Literal["loss", "projection"]
"""What the probe differentiates (``--objective``): the compiled loss or a random projection."""
OBJECTIVES: tuple[ObjectiveKind, ...] = get_args(ObjectiveKind)


@dataclass(frozen=True)
class Thresholds:
    """Detection thresholds; sources are named in ``gradaudit explain``."""

    dead_warn: float = 0.5
    """GA101 when at least this fraction of a ReLU layer's units never fire."""
    saturation_eps: float = 1e-3
    """A sigmoid/tanh output within this of a bound counts as saturated."""
    saturation_samples: float = 0.99
    """A unit is saturated when saturated on at least this fraction of samples."""
    saturation_units: float = 0.5
    """GA111 when at least this fraction of a layer's units is saturated."""
    vanishing_ratio: float = 1e-3
    """GA204 when a layer's gradient RMS / the latest layer's is below this …"""
    vanishing_abs: float = 1e-4
    """… and the layer's gradient RMS itself is below this."""
    exploding_ratio: float = 1e3
    """GA203 when a layer's gradient RMS / its weight RMS is above this …"""
    exploding_growth: float = 1e3
    """… or its gradient RMS / the latest layer's is above this."""
    stall_ratio: float = 1e-3
    """GA401/GA402: a unit is stalled in training when its Adam-family ratio
    ``|m| / √v`` (the largest over its weights) is below this. Live units sit at
    0.1–1; each step without a gradient multiplies the ratio by β1/√β2 ≈ 0.9, so
    1e-3 means no gradient for about the last 66 steps (measured: 1e-23 against 0.3)."""
    stall_relative: float = 1e-6
    """… or, where the slot is a magnitude (RMSprop's √v, SGD's momentum), below this
    fraction of the most active unit of the model: a magnitude has no scale of its own,
    and a layer's own median is dead when most of its units are. Live units spread over
    about four orders of magnitude below the most active one (SGD's momentum, a signed
    average, the most); 1e-6 matched the units dead on the training data best."""
    learning_rate_factor: float = 100.0
    """GA414 notes (info) a learning rate more than this factor above or below
    the optimizer's usual rate (its paper's or Keras's default)."""
    learning_rate_harm_factor: float = 10.0
    """GA414 warns on a learning rate more than this factor above the usual one when
    the file shows harm a too-high rate does (stalled units, NaN/Inf in the slots);
    a rate far off on its own is info only (fine-tuning runs far below on purpose)."""
    diff_fraction_change: float = 0.2
    """``gradaudit diff``: a finding is "changed" when its layer's dead or stalled fraction
    moved by at least this much (a fifth of the layer's units). An absolute change, not a
    factor: the fractions are bounded by 1, and a GA101 layer's lies between 0.5 and 1."""
    diff_rms_factor: float = 10.0
    """``gradaudit diff``: … or when its layer's gradient RMS (probe or training) moved by
    at least this factor either way: one order of magnitude. With the same seed on both
    sides only the weights move it; between seeds the probe's random projection alone
    moved a layer's RMS by up to 9.2× (measured: seeds 0–3, multi_io; 3.4× healthy_mlp),
    so the diff notes sides probed with different seeds."""
    timeline_jump: float = 0.3
    """``gradaudit timeline``: a layer "died" (warning) between two consecutive
    checkpoints when its dead or stalled fraction rose by at least this ("revived" when
    it fell by as much). Between healthy checkpoints an epoch apart the fractions moved
    by at most 0.03 (fixtures/timeline/healthy, 32-unit layers); the spike of
    fixtures/timeline/spike moved h1's dead fraction by 0.375."""
    bn_dead_rate: float = 1e-4
    """GA103, BatchNorm → ReLU: a channel is dead on the training distribution when its
    estimated firing rate, Φ(beta/|gamma|) under a Gaussian model of the BN output
    N(beta, gamma²), is below this: beta/|gamma| < Φ⁻¹(1e-4) ≈ -3.72. A channel at that rate
    still fires about 6 times in a 64,000-position epoch; at -5 (Φ ≈ 3e-7) never."""
    bn_variance_ratio: float = 1e-4
    """GA103, ReLU → BatchNorm: a unit never fired when the BN's moving mean is exactly 0
    (a ReLU that never fires gives batch mean 0, so the moving mean stays at its initial 0
    and the moving variance decays as momentum^steps from 1), or when its moving variance
    is below this fraction of the layer's median (over units with a non-zero mean) and its
    moving mean below √ of it × the median's standard deviation: a unit firing on a fraction
    p of the inputs at its peers' amplitude has variance ≈ p × theirs, so this is the same
    1e-4 rate as ``bn_dead_rate``."""
    bn_dead_warn: float = 0.1
    """GA103 when at least this fraction of the channels the BN statistics speak for is
    dead (keras-contrib's DeadReluDetector warns at 10%; the estimate is on the training
    distribution itself, not on random probe inputs, so GA101's 50% is not needed)."""


USUAL_LEARNING_RATES: dict[str, tuple[float, str]] = {
    "Adam": (1e-3, "Kingma & Ba, ICLR 2015"),
    "AdamW": (1e-3, "Keras's default"),
    "Nadam": (1e-3, "Keras's default"),
    "Adamax": (2e-3, "Kingma & Ba, ICLR 2015"),
    "RMSprop": (1e-3, "Keras's default"),
    "SGD": (1e-2, "Bengio 2012, Practical recommendations for gradient-based training"),
    "Adagrad": (1e-3, "Keras's default"),
    "Lion": (1e-4, "Chen et al. 2023: 3-10× below AdamW's"),
}
"""The learning rate each optimizer is usually run at, with its source, that
``learning_rate_factor`` is applied to (GA414); another optimizer is not judged."""


@dataclass(frozen=True)
class Limits:
    """Sizes refused before they are allocated (a model file is untrusted input)."""

    max_params: int = 500_000_000
    """Declared variables and weight datasets, in values. 5e8 covers every Keras
    Applications model (the largest, ConvNeXtXLarge, has 3.5e8) and keeps the peak of
    weights + gradients + load buffers near 6 GB in float32."""
    max_input_elements: int = 100_000_000
    """Values in one probe batch over all inputs (400 MB in float32): 64 images of
    224×224×3 need 9.6e6; a larger batch is made smaller, one sample over it refused."""


@dataclass(frozen=True)
class Options:
    """Everything an audit run is configured by; each default here is the only one.

    The CLI's flags, the config-file keys (``settings.py``), ``gradaudit.audit``
    and ``GradAuditCallback`` take their defaults from these fields.
    """

    samples: int = 256
    batch_size: int = 64
    seed: int = 0
    input_dist: Distribution = "normal"
    """Random float inputs: "normal" (standard normal) or "uniform" over ``input_range``."""
    input_range: tuple[float, float] = (0.0, 1.0)
    """[low, high) of uniform random float inputs (images: (0, 1) or (0, 255))."""
    input_shape: InputShapes = ()
    """Shapes for inputs the model does not size (``--input-shape [NAME=]SHAPE``)."""
    unsafe: bool = False
    imports: tuple[str, ...] = ()
    """Modules (dotted names or .py files) imported before loading, so the classes they
    register with Keras load; the pre-scan accepts those classes and nothing else."""
    inference: bool = False
    """Probe in inference mode instead of training mode (as the optimizer sees the model)."""
    all_samples: bool = False
    """Probe every sample; by default the probe stops once further batches cannot
    change a verdict (see probe/tape.py)."""
    no_probe: bool = False
    """Run no model: only the checks that read the file (its optimizer state and compile
    config), without TensorFlow (``--no-probe``)."""
    max_memory: int | None = None
    """Bytes the process may hold during a probe step (``--max-memory``): the batch is
    made smaller until the estimated step fits. None: the smaller of 4 GiB and a
    quarter of physical memory (``probe.memory.default_budget``)."""
    objective: ObjectiveKind | None = None
    """``--objective``: None differentiates each output's compiled loss where the model
    has one and a random projection otherwise; "loss" / "projection" force one (a model
    without a compiled loss still gets the projection, with a note)."""
    timeout: float = 1800.0
    """Seconds the CLI's worker process may spend on one model before it is stopped and
    the file reported (``--timeout``): a hung model must not hold a batch for ever."""
    signature: str | None = None
    """The SavedModel signature to audit (None: serving_default, else the only one)."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    limits: Limits = field(default_factory=Limits)
    fail_on: FailOn = FailOn.ERROR
    """The exit code is 1 when a finding is at or above this severity."""
    select: tuple[str, ...] = ()
    """Report only these code prefixes (normalised, see ``report.selection``); () all."""
    ignore: tuple[str, ...] = ()
    """Do not report these code prefixes; the most specific of select/ignore wins."""
    exclude: tuple[str, ...] = ()
    """Globs of files skipped when a directory is searched."""
