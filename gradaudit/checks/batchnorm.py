"""GA103: ReLU-family units dead on the training data, as BatchNormalization statistics show.

Pure functions over :class:`~gradaudit.history.batchnorm.BatchNormStats` (read from the
file alone), so ``--no-probe`` gives GA103 too. How each pattern is judged, and why the
thresholds (``Thresholds.bn_dead_rate``, ``bn_variance_ratio``) are what they are, is in
``docs/batchnorm.md``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from gradaudit.history.batchnorm import BatchNorm, BatchNormStats
from gradaudit.options import Thresholds
from gradaudit.report.catalogue import finding
from gradaudit.report.types import Finding, Severity


@dataclass(frozen=True)
class BatchNormDead:
    """The channels of one ReLU-family layer that its BN statistics show dead."""

    layer: str
    """The ReLU-family layer."""
    activation: str
    units: int
    dead_units: int
    finding: Finding | None
    """GA103 when enough of them are (``Thresholds.bn_dead_warn``)."""

    @property
    def dead_fraction(self) -> float:
        return self.dead_units / self.units if self.units else 0.0


def judge(stats: BatchNormStats, thresholds: Thresholds) -> list[BatchNormDead]:
    """Each judged ReLU-family layer once (where two BN layers speak for it, the one that
    shows more of it dead)."""
    found: dict[str, BatchNormDead] = {}
    for bn in stats.layers:
        dead, words, metrics = (_after(bn, thresholds) if bn.after
                                else _before(bn, thresholds))
        units, count = dead.size, int(dead.sum())
        previous = found.get(bn.target)
        if previous is not None and previous.dead_units / previous.units >= count / units:
            continue
        result = None
        if count and count >= thresholds.bn_dead_warn * units:
            result = finding("GA103", bn.target, words, bn_layer=bn.layer, units=units,
                             dead_units=count, dead_fraction=round(count / units, 4),
                             **metrics)
            if count == units:
                result = dataclasses.replace(result, severity=Severity.ERROR)
        found[bn.target] = BatchNormDead(bn.target, bn.activation, units, count, result)
    return list(found.values())


def _after(bn: BatchNorm, thresholds: Thresholds) -> tuple[np.ndarray, str, dict[str, object]]:
    """Affine → BN → ReLU: channel c fires on the mass of N(beta_c, gamma_c²) inside the
    active range."""
    low, high = bn.active
    scale = np.abs(bn.gamma)
    flat = scale == 0  # outputs beta everywhere
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = _phi((high - bn.beta) / scale) - _phi((low - bn.beta) / scale)
    rate = np.where(flat, ((bn.beta > low) & (bn.beta < high)).astype(float), rate)
    dead = rate < thresholds.bn_dead_rate
    count, units = int(dead.sum()), dead.size
    if bn.active == (0.0, math.inf):
        z = NormalDist().inv_cdf(thresholds.bn_dead_rate)
        what = f"have beta/|gamma| below {z:.2f}"
    else:
        z = None
        what = (f"have less than {thresholds.bn_dead_rate:g} of N(beta, gamma²) inside "
                f"{bn.target}'s active range ({low:g}, {high:g})")
    zeros = int((dead & flat).sum())
    words = (f"BatchNormalization {bn.layer}: {count} of {units} channels {what}"
             + (f" ({zeros} with gamma = 0: they output beta everywhere)" if zeros else "")
             + f", so {bn.target} fires on an estimated < {thresholds.bn_dead_rate:g} of the "
             "training inputs in them (a Gaussian model of the BN output, N(beta, gamma²))")
    return dead, words, {"pattern": "bn_relu", "bn_dead_rate": thresholds.bn_dead_rate,
                         **({} if z is None else {"beta_over_gamma_below": round(z, 4)})}


def _before(bn: BatchNorm, thresholds: Thresholds) -> tuple[np.ndarray, str, dict[str, object]]:
    """ReLU → BN: a unit that never fired left the moving mean at exactly 0 and the moving
    variance decaying from 1; one that stopped firing decayed towards 0 against the rest."""
    ratio = thresholds.bn_variance_ratio
    moved = bn.mean != 0
    live = float(np.median(bn.variance[moved])) if moved.any() else None
    exact = ~moved & (bn.variance < 1.0)
    decayed = np.zeros_like(exact) if live is None else (
        (bn.variance <= ratio * live) & (np.abs(bn.mean) <= math.sqrt(ratio * live)))
    dead = exact | decayed
    count, units = int(dead.sum()), dead.size
    largest = float(bn.variance[dead].max()) if count else 0.0
    against = ("" if live is None else
               f" (the median over its units with a non-zero mean: {live:.3g})")
    words = (f"BatchNormalization {bn.layer} after {bn.target}: {count} of {units} units have "
             f"a moving mean of 0 ({int(exact.sum())} exactly) and a moving variance of at "
             f"most {largest:.3g}{against}, so their {bn.target} output was 0 on the training "
             "batches (on every one, for an exact 0: a ReLU unit that never fires feeds the "
             "BN only zeros)")
    return dead, words, {"pattern": "relu_bn", "exact_zero_mean": int(exact.sum()),
                         "live_variance": None if live is None else float(f"{live:.6g}")}


def _phi(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise (±∞ and NaN as they come)."""
    return np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in z.ravel()]).reshape(z.shape)
