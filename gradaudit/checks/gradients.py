"""GA201–GA205, GA211: what the tape says about each variable and input.

``None`` from the tape means no differentiable path (GA201, GA211); a tensor
of zeros means a path whose derivative is zero on the probe data (GA202).
The depth profile of gradient RMS over the trainable layers gives GA203/GA204.
"""

from __future__ import annotations

from gradaudit.options import Thresholds
from gradaudit.probe.evidence import Evidence, LayerEvidence
from gradaudit.report.catalogue import finding
from gradaudit.report.types import Finding


def check(evidence: Evidence, thresholds: Thresholds) -> list[Finding]:
    samples = evidence.probe.samples
    trainable = evidence.owning()
    dead_layers = sorted(layer.info.name for layer in evidence.layers if layer.fully_dead)
    constant = [output.layer for output in evidence.flat_outputs]
    vanishing, underflowed = _vanishing(trainable, thresholds)
    findings: list[Finding] = []
    for layer in trainable:
        name = layer.info.name
        missing = [v.label for v in layer.variables if not v.grad.connected]
        non_finite = [v.label for v in layer.variables if v.grad.connected and not v.grad.finite]
        zero = [v.label for v in layer.variables
                if v.grad.connected and v.grad.finite and not v.grad.nonzero]
        if missing:
            cut = (evidence.model.cut_of(layer.info)
                   or "an operation inside a layer's call, which the recorded graph does not show")
            findings.append(finding(
                "GA201", name,
                f"no gradient reaches {_join(missing)}: the path to the outputs is cut "
                f"at {cut}",
                variables=missing, cut_at=cut))
        if non_finite:
            findings.append(finding(
                "GA205", name, f"NaN/Inf in the gradient of {_join(non_finite)}",
                variables=non_finite))
        if zero:
            reason = _zero_reason(name, underflowed, dead_layers, constant)
            findings.append(finding(
                "GA202", name,
                f"gradient of {_join(zero)} is exactly zero on all {samples} probe "
                f"samples{reason}",
                variables=zero, dead_layers=dead_layers, underflow=name in underflowed))
    findings += _exploding(trainable, thresholds)
    for layer, ratio, reference in vanishing:
        findings.append(finding(
            "GA204", layer.info.name,
            f"gradient RMS {layer.grad_rms:.2e} is {ratio:.1e} × that of the latest "
            f"trainable layer '{reference.info.name}' ({reference.grad_rms:.2e})"
            + (" — underflowed to exactly zero in float32" if not layer.grad_rms else ""),
            grad_rms=layer.grad_rms, ratio_to_last=ratio, reference=reference.info.name))
    for input_name, index, stats in evidence.inputs:
        if not stats.connected:
            input_cut = evidence.model.input_cut(index)
            where = (f"its paths are cut at {input_cut}" if input_cut
                     else "it is not used by any output")
            findings.append(finding(
                "GA211", input_name,
                f"input '{input_name}' has no gradient path to any output: {where}",
                cut_at=input_cut or "unused"))
    return findings


def _join(labels: list[str]) -> str:
    return ", ".join(labels)


def _zero_reason(name: str, underflowed: set[str], dead_layers: list[str],
                 constant: list[str]) -> str:
    if name in underflowed:
        return " (vanishing gradient underflowed to zero in float32; see GA204)"
    if dead_layers:
        return f" (fully dead layer(s) on the path: {', '.join(dead_layers)})"
    if constant:
        return (f" (constant output from {', '.join(constant)}; see GA206: zero in exact "
                "arithmetic, whatever rounding the float32 kernels add)")
    return ""


def _profile(trainable: list[LayerEvidence]) -> list[tuple[LayerEvidence, float]]:
    """Layers with a finite, measured gradient and its RMS, in depth order."""
    return [
        (layer, rms) for layer in trainable
        if (rms := layer.grad_rms) is not None
        and all(v.grad.connected and v.grad.finite for v in layer.variables)
    ]


def _vanishing(
    trainable: list[LayerEvidence], thresholds: Thresholds
) -> tuple[list[tuple[LayerEvidence, float, LayerEvidence]], set[str]]:
    """Layers whose gradient RMS is orders below the latest layer's.

    Exactly-zero layers count only when non-zero layers show the vanishing
    trend too; otherwise zero gradients have another cause (dead units, a
    `where`), reported as GA202 alone.
    """
    profile = _profile(trainable)
    nonzero = [(layer, rms) for layer, rms in profile if rms > 0]
    if len(nonzero) < 2:
        return [], set()
    reference, reference_rms = nonzero[-1]
    last_index = [layer for layer, _ in profile].index(reference)
    weak = [(layer, rms) for layer, rms in profile[:last_index]
            if 0 < rms < thresholds.vanishing_abs
            and rms / reference_rms < thresholds.vanishing_ratio]
    if not weak:
        return [], set()
    deepest = [layer for layer, _ in profile].index(weak[-1][0])
    zeros = [(layer, rms) for layer, rms in profile[:deepest] if rms == 0]
    flagged = sorted(weak + zeros, key=lambda pair: pair[0].info.depth_index)
    result = [(layer, rms / reference_rms, reference) for layer, rms in flagged]
    return result, {layer.info.name for layer, _ in zeros}


def _exploding(trainable: list[LayerEvidence], thresholds: Thresholds) -> list[Finding]:
    profile = [(layer, rms) for layer, rms in _profile(trainable) if rms > 0]
    if not profile:
        return []
    reference, reference_rms = profile[-1]
    findings = []
    for layer, rms in profile:
        weight_rms = layer.weight_rms
        relative = rms / weight_rms if weight_rms > 0 else None
        growth = rms / reference_rms
        if relative is not None and relative > thresholds.exploding_ratio:
            why = f"{relative:.1e} × its weight RMS ({weight_rms:.2e})"
        elif layer is not reference and growth > thresholds.exploding_growth:
            why = f"{growth:.1e} × that of the latest trainable layer '{reference.info.name}'"
        else:
            continue
        findings.append(finding(
            "GA203", layer.info.name,
            f"gradient RMS {rms:.2e} is {why}",
            grad_rms=rms, weight_rms=weight_rms,
            relative_update=relative, ratio_to_last=growth))
    return findings
