"""The runtime rules as pure functions: measured numbers and thresholds in, a finding (or None) out.

They follow AutoTrainer's eight problems and SCRAM's three heuristics; the deviations from the
papers are stated where they apply. ``t`` is always the thresholds dict (see
:data:`nbdebug.monitor.thresholds.DEFAULT_THRESHOLDS`). A rule returning a finding means its
symptom is observed this time; counting observations in a row (AutoTrainer's alpha) is the
monitor's state, not the rule's. Collecting the numbers from a live training is
:mod:`nbdebug.monitor.hooks`' job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .messages import ACTIVATION_FIX, DETAILS, ERROR, EXPECTED_ACTIVATION, LOSS_FIX

Thresholds = Mapping[str, float]


@dataclass(frozen=True)
class Finding:
    """One detection: the warning code, the evidence its message is formatted with, and a
    severity when it is not the message's own (None: the message's)."""

    code: str
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: str | None = None


def format_accuracy(value: float | None) -> str:
    """An accuracy as shown in messages: ``61.2%``, or ``unknown``."""
    return "unknown" if value is None else f"{value:.1%}"


def accuracy_is_low(best_acc: float | None, t: Thresholds) -> bool:
    """AutoTrainer's gate max(Acc) <= theta; an unknown accuracy counts as low."""
    return best_acc is None or best_acc <= t["theta"]


# ---------------------------------------------------------------- loss


def nonfinite_loss(loss: float) -> Finding | None:
    """SCRAM's NaN check: the loss is NaN or infinite."""
    return None if math.isfinite(loss) else Finding("nan_loss", {"loss": loss})


# ---------------------------------------------------------------- gradients


def nonfinite_gradient(
    layer_names: Sequence[str], norms: Sequence[float], step: int, best_acc: float | None
) -> Finding | None:
    """Gradient norms that are NaN or infinite: an exploding gradient, reported as an error."""
    bad = [name for name, value in zip(layer_names, norms, strict=True) if not math.isfinite(value)]
    if not bad:
        return None
    detail = DETAILS["nonfinite_gradient"].format(layers=", ".join(bad), step=step)
    evidence = {"detail": detail, "layers": bad, "best_acc": format_accuracy(best_acc)}
    return Finding("exploding_gradient", evidence, severity=ERROR)


def first_signal_layer(norms: Sequence[float]) -> int:
    """Index of the first layer that received gradient (norm above 0): the layer the gradient
    rules compare with the last. Layers before it got none at all this step (a zero-initialised
    branch, a layer the step did not use), which is not a vanishing gradient."""
    return next((i for i, value in enumerate(norms) if value > 0), len(norms) - 1)


def _signal(norms: Sequence[float], best_acc: float | None, t: Thresholds) -> tuple[int, float] | None:
    """The first signal layer's index and its gradient norm over the last layer's (infinite
    without a last-layer gradient); None when the gradient rules do not apply: fewer than two
    layers with gradient to compare, or accuracy no longer low."""
    first = first_signal_layer(norms)
    if first == len(norms) - 1 or not accuracy_is_low(best_acc, t):
        return None
    value, last = norms[first], norms[-1]
    return first, value / last if last > 0 else math.inf


def _gradient_flow(
    layer_names: Sequence[str], norms: Sequence[float], first: int, ratio: float, best_acc: float | None
) -> dict[str, Any]:
    """Evidence of the gradient rules: first signal layer's and last layer's gradient norms and
    their ratio."""
    return {
        "first_layer": layer_names[first],
        "last_layer": layer_names[-1],
        "first_norm": norms[first],
        "last_norm": norms[-1],
        "ratio": ratio,
        "best_acc": format_accuracy(best_acc),
        "layer_norms": dict(zip(layer_names, norms, strict=True)),
    }


def vanishing_gradient(
    layer_names: Sequence[str], norms: Sequence[float], best_acc: float | None, t: Thresholds
) -> Finding | None:
    """AutoTrainer VG: first / last layer gradient norm <= beta1 and first norm <= beta2, while
    accuracy is low. ``norms`` are the finite gradient norms of the gradient layers in order
    (embeddings and recurrent input weights included); the first layer is the first that got
    any gradient (deviation: the paper takes the first layer)."""
    signal = _signal(norms, best_acc, t)
    if signal is None:
        return None
    first, ratio = signal
    if ratio <= t["beta1"] and norms[first] <= t["beta2"]:
        return Finding("vanishing_gradient", _gradient_flow(layer_names, norms, first, ratio, best_acc))
    return None


def exploding_gradient(
    layer_names: Sequence[str], norms: Sequence[float], step: int, best_acc: float | None, t: Thresholds
) -> Finding | None:
    """AutoTrainer EG: first / last layer gradient norm >= beta3, while accuracy is low (the first
    layer as in :func:`vanishing_gradient`)."""
    signal = _signal(norms, best_acc, t)
    if signal is None or signal[1] < t["beta3"]:
        return None
    flow = _gradient_flow(layer_names, norms, *signal, best_acc)
    return Finding("exploding_gradient", {**flow, "detail": DETAILS["gradient_ratio"].format(step=step, **flow)})


def dying_relu(
    per_neuron: np.ndarray, hidden_layers: Sequence[tuple[str, int]], best_acc: float | None, t: Thresholds
) -> Finding | None:
    """AutoTrainer DR: at least gamma of the hidden neurons got exactly zero gradient.

    ``per_neuron`` holds one gradient value per hidden neuron, layer after layer, and
    ``hidden_layers`` each hidden layer's (name, width). The caller observes it only while
    accuracy is low; ``best_acc`` is evidence.
    """
    total = per_neuron.size
    dead = total - np.count_nonzero(per_neuron)
    if not (total > 0 and dead / total >= t["gamma"]):
        return None
    per_layer, at = {}, 0
    for name, width in hidden_layers:
        per_layer[name] = int(width - np.count_nonzero(per_neuron[at : at + width]))
        at += width
    return Finding(
        "dying_relu",
        {
            "dead": int(dead),
            "total": total,
            "dead_pct": 100 * dead / total,
            "per_layer": per_layer,
            "best_acc": format_accuracy(best_acc),
        },
    )


# ---------------------------------------------------------------- inputs and layer outputs


def nonfinite_input(rms: float, step: int, best_acc: float | None) -> Finding | None:
    """The input batch (root-mean-square ``rms``) holds NaN or infinite values: abnormal data."""
    if math.isfinite(rms):
        return None
    detail = DETAILS["nonfinite_input"].format(step=step)
    return Finding("abnormal_data", {"detail": detail, "best_acc": format_accuracy(best_acc)})


def unnormalized_input(rms: float, t: Thresholds) -> Finding | None:
    """SCRAM's range check. Deviation: instead of every value within [-1, 1], the batch's
    root-mean-square must stay below ``input_scale`` (standardized data legitimately has
    values beyond +-1); the monitor also wants two captures running, so that one batch with
    rare outliers (z-scores of 20-40 occur in standardized pixel data) is not enough.

    The evidence holds ``rms``; the monitor adds the batch's ``mean_abs`` and ``max_abs``
    (measured only when it reports) before formatting the message.
    """
    return Finding("unnormalized_input", {"rms": rms}) if rms > t["input_scale"] else None


def _layer_output(name: str, value: float, what: str, step: int, best_acc: float | None, t: Thresholds) -> Finding:
    detail = DETAILS["layer_output"].format(layer=name, what=what, step=step, omega=t["omega"])
    return Finding(
        "abnormal_data", {"detail": detail, "layer": name, "value": value, "best_acc": format_accuracy(best_acc)}
    )


def nonfinite_layer_output(
    names: Sequence[str], rms: Sequence[float], step: int, best_acc: float | None, t: Thresholds
) -> Finding | None:
    """The first layer (in ``names`` order) whose outputs' root-mean-square is NaN or infinite."""
    for name, value in zip(names, rms, strict=True):
        if not math.isfinite(value):
            return _layer_output(name, value, DETAILS["nonfinite_output"], step, best_acc, t)
    return None


def large_layer_output(
    names: Sequence[str], rms: Sequence[float], step: int, best_acc: float | None, t: Thresholds
) -> Finding | None:
    """AutoTrainer AD on layer outputs, while accuracy is low: the layer with the largest
    outputs of typical size (root-mean-square) >= omega; the first such layer on ties.

    Deviation: the typical size is compared with omega instead of the largest output; on
    standardized data a few rare-valued inputs (z-scores of 20-40) push single outputs past
    omega in healthy runs. Meant for finite values (see :func:`nonfinite_layer_output`).
    """
    if not accuracy_is_low(best_acc, t):
        return None
    worst: tuple[str, float] | None = None
    for name, value in zip(names, rms, strict=True):
        if value >= t["omega"] and (worst is None or value > worst[1]):
            worst = (name, value)
    if worst is None:
        return None
    name, value = worst
    return _layer_output(name, value, DETAILS["large_output"].format(value=value), step, best_acc, t)


# ---------------------------------------------------------------- epoch-level trends


def sampling_noise(a: float, b: float, n: int | None, t: Thresholds) -> float:
    """How far two accuracies ``a`` and ``b`` measured on ``n`` samples each can differ by chance:
    ``noise_z`` standard errors of the difference of two proportions, sqrt(2 p (1 - p) / n) with
    p their mean (p (1 - p) at least 1/n: one sample's flip). 0 when ``n`` is unknown."""
    if not n:
        return 0.0
    p = (a + b) / 2
    return t["noise_z"] * math.sqrt(2 * max(p * (1 - p), 1 / n) / n)


def oscillation_swings(
    accs: Sequence[float], zeta: float, n: int | None = None, t: Thresholds | None = None
) -> list[float]:
    """AutoTrainer OL: gaps A[i] - B[i] >= zeta between the i-th local maximum and minimum;
    with ``n`` (the samples each accuracy was measured on) and ``t``, a gap must also exceed
    their :func:`sampling_noise`."""
    peaks, troughs = [], []
    for i in range(1, len(accs) - 1):
        if accs[i] > accs[i - 1] and accs[i] >= accs[i + 1]:
            peaks.append(accs[i])
        elif accs[i] < accs[i - 1] and accs[i] <= accs[i + 1]:
            troughs.append(accs[i])
    if len(accs) >= 2 and accs[-1] < accs[-2]:
        troughs.append(accs[-1])  # a fall at the end is a trough we can already see
    noise = (lambda a, b: sampling_noise(a, b, n, t)) if t is not None else (lambda a, b: 0.0)
    return [a - b for a, b in zip(peaks, troughs, strict=False) if a - b >= max(zeta, noise(a, b))]


def oscillating_accuracy(accs: Sequence[float], t: Thresholds, n: int | None = None) -> Finding | None:
    """AutoTrainer OL over the training accuracy of each epoch: at least eta swings of zeta
    per epoch. Deviations: judged only from ``trend_epochs`` epochs on, and with ``n`` (training
    samples per epoch) a swing must exceed the sampling noise of accuracies on n samples."""
    if len(accs) < t["trend_epochs"]:
        return None
    swings = oscillation_swings(accs, t["zeta"], n, t)
    if len(swings) / len(accs) < t["eta"]:
        return None
    return Finding(
        "oscillating_loss",
        {
            "epochs": len(accs),
            "zeta": t["zeta"],
            "swings": len(swings),
            "amplitudes": ", ".join(f"{s:.0%}" for s in swings[-6:]),
        },
    )


def slow_convergence(accs: Sequence[float], t: Thresholds) -> Finding | None:
    """AutoTrainer SC: the training accuracy has not improved by more than delta per epoch, and
    the best accuracy is still low. Deviations: judged over the last ``trend_epochs`` epochs
    (and only once there are that many), on their average gain (best minus first, per epoch),
    so that one noisy epoch does not hide a stalled training."""
    if len(accs) < t["trend_epochs"] or not accuracy_is_low(max(accs) if accs else None, t):
        return None
    window = accs[-int(t["trend_epochs"]) :]
    if (max(window) - window[0]) / (len(window) - 1) > t["delta"]:
        return None
    shown = ", ".join(f"{a:.0%}" for a in accs[-8:])
    return Finding("slow_convergence", {"delta": t["delta"], "epochs": len(accs), "accs": shown})


def overfitting(
    train: Sequence[float], val: Sequence[float], t: Thresholds, val_n: int | None = None
) -> Finding | None:
    """SCRAM overfitting: validation accuracy falls while training accuracy rises (``train`` and
    ``val`` are the accuracies of the epochs that have both).

    Deviations, so that a validation set wobbling by chance is not reported: the last two
    epochs must both lie below the best validation accuracy before them (the peak) by more than
    ``overfit_drop`` and, with ``val_n`` (the validation samples), by more than the
    :func:`sampling_noise` of two accuracies on val_n samples (a two-proportion z-test at
    ``noise_z``); training accuracy must have risen since the peak, and validation accuracy
    must end ``overfit_gap`` below training accuracy. Comparing with the peak, not just the
    last three epochs, also catches a slow, steady fall.
    """
    if len(train) < 3 or len(val) < 3:
        return None
    peak = int(np.argmax(val[:-2]))
    best, recent = val[peak], max(val[-2:])
    margin = max(t["overfit_drop"], sampling_noise(best, recent, val_n, t))
    if not (best - recent > margin and train[-1] > train[peak] and train[-1] - val[-1] >= t["overfit_gap"]):
        return None
    shown = [peak, len(val) - 2, len(val) - 1]
    return Finding(
        "overfitting",
        {
            "val": " → ".join(f"{val[i]:.1%}" for i in shown),
            "train": " → ".join(f"{train[i]:.1%}" for i in shown),
            "peak_epochs_ago": len(val) - 1 - peak,
            "margin": margin,
        },
    )


# ---------------------------------------------------------------- task, activation and loss

# AutoTrainer's LossSet per task and ActSet per loss: what each task and loss expects.
LOSS_SETS = {
    "multiclass": ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss"),
    "binary": ("BCEWithLogitsLoss", "BCELoss", "SoftMarginLoss"),
    "multilabel": ("BCEWithLogitsLoss", "BCELoss", "MultiLabelSoftMarginLoss"),
    "regression": ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss"),
}
ACTIVATION_SETS = {
    "CrossEntropyLoss": ("linear", "log_softmax"),
    "NLLLoss": ("log_softmax",),
    "BCEWithLogitsLoss": ("linear",),
    "BCELoss": ("sigmoid",),
}
ACTIVATION_LAYERS = {
    nn.Softmax: "softmax",
    nn.LogSoftmax: "log_softmax",
    nn.Sigmoid: "sigmoid",
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.LeakyReLU: "relu",
}


def improper_output_activation(
    task: str, loss: str, activation: str, best_acc: float | None, t: Thresholds
) -> Finding | None:
    """AutoTrainer IO, while accuracy is low: ``activation`` is not in the ActSet of (task, loss)."""
    if not accuracy_is_low(best_acc, t):
        return None
    if loss not in ACTIVATION_SETS or loss not in LOSS_SETS.get(task, ()) or activation in ACTIVATION_SETS[loss]:
        return None
    seen = DETAILS["no_activation"] if activation == "linear" else DETAILS["activation"].format(activation=activation)
    evidence = {"task": task, "loss": loss, "expected": EXPECTED_ACTIVATION[loss], "activation": seen}
    return Finding(
        "improper_output_activation",
        {**evidence, "fix": ACTIVATION_FIX[loss], "best_acc": format_accuracy(best_acc)},
    )


def improper_loss(task: str, loss: str, best_acc: float | None, t: Thresholds) -> Finding | None:
    """AutoTrainer IL, while accuracy is low: a known loss that is not in the LossSet of ``task``."""
    if not accuracy_is_low(best_acc, t) or task not in LOSS_SETS or loss in LOSS_SETS[task]:
        return None
    known = {name for names in LOSS_SETS.values() for name in names}
    if loss not in known:
        return None  # custom losses are the user's business (AutoTrainer §4.2)
    evidence = {"task": task, "loss": loss, "expected": ", ".join(LOSS_SETS[task]), "fix": LOSS_FIX[task]}
    return Finding("improper_loss", {**evidence, "best_acc": format_accuracy(best_acc)})


def infer_task(targets: torch.Tensor, outputs: torch.Tensor) -> str | None:
    """AutoTrainer's T((x, y), O): the prediction task from one batch of targets and outputs."""
    if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        if targets.dim() == 1 and outputs.dim() >= 2 and outputs.shape[1] >= 2:
            return "multiclass"
        if targets.dim() == 1 and (outputs.dim() == 1 or outputs.shape[-1] == 1) and targets.max() <= 1:
            return "binary"
        return "multiclass" if targets.dim() == 1 else None
    if targets.dtype.is_floating_point:
        binary_values = bool(((targets == 0) | (targets == 1)).all())
        if not binary_values:
            return "regression"
        if targets.dim() == 1 or targets.shape[-1] == 1:
            return "binary"
        if targets.dim() == 2 and bool((targets.sum(1) == 1).all()):
            return "multiclass"  # one-hot targets
        return "multilabel"
    return None


def infer_output_activation(outputs: torch.Tensor, last_module: nn.Module | None) -> str:
    """Which activation produced ``outputs``: the last executed layer if it is an activation,
    otherwise read from the values (softmax rows sum to 1, sigmoid lies in (0, 1), ...)."""
    for cls, name in ACTIVATION_LAYERS.items():
        if isinstance(last_module, cls):
            return name
    out = outputs.detach().float()
    if out.numel() == 0 or not bool(torch.isfinite(out).all()):
        return "linear"
    lo, hi = float(out.min()), float(out.max())
    if out.dim() >= 2 and out.shape[1] >= 2:
        sums = out.sum(1)
        if lo >= 0 and hi <= 1 and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3)):
            return "softmax"
        lse = torch.logsumexp(out, 1)
        if hi <= 0 and bool(torch.allclose(lse, torch.zeros_like(lse), atol=1e-3)):
            return "log_softmax"
    if lo > 0 and hi < 1:
        return "sigmoid"
    if lo >= 0 and float((out == 0).float().mean()) >= 0.05:
        return "relu"
    return "linear"
