"""Diagnosis: the most likely cause of a detected problem, from what the monitor knows.

A rule detects a symptom; several causes produce each symptom (``causes.CAUSES``). These
pure functions pick the one the evidence points at, from the model's structure (read once,
:func:`describe`) and what the monitor saw while training (:class:`Seen`). The fix shown is
the cause's, in the architecture's terms (a transformer is not told to add BatchNorm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .thresholds import LR_RANGES

# Activations that saturate: their gradient vanishes for large inputs.
SATURATING = (nn.Sigmoid, nn.Tanh, nn.Hardsigmoid, nn.Hardtanh, nn.Softsign)
RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU)
# A weight initialised by PyTorch's defaults has rms(weight) * sqrt(fan_in) of about 0.58 (He
# initialisation: 1.41); above this it was scaled up by hand.
LARGE_WEIGHT_SCALE = 2.5
# Batches this small make the accuracy of an epoch swing by themselves.
SMALL_BATCH = 8


@dataclass(frozen=True)
class Architecture:
    """What the diagnosis needs of a model's structure.

    ``family``: "transformer" (attention or embeddings with LayerNorm), "recurrent" (an RNN,
    LSTM or GRU), "convolutional" or "mlp". ``saturating`` / ``rectifiers``: activation
    modules of each kind. ``plain_rnn``: an ``nn.RNN`` (no gates). ``weight_scale``: the
    largest rms(weight) * sqrt(fan_in) of a Linear or convolution layer when the monitor
    started. ``frozen_share``: the share of parameter values that are not trained (frozen, or
    not in the optimizer). ``optimizer``, ``lr``, ``momentum``: the optimizer's.
    """

    family: str
    saturating: int
    rectifiers: int
    plain_rnn: bool
    weight_scale: float
    frozen_share: float
    optimizer: str | None
    lr: float | None
    momentum: bool


def _weight_scale(model: nn.Module) -> float:
    scales = [0.0]
    with torch.no_grad():
        for m in model.modules():
            weight = getattr(m, "weight", None)
            if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and isinstance(weight, torch.Tensor):
                fan_in = weight[0].numel()
                if fan_in and weight.numel():
                    rms = float(torch.linalg.vector_norm(weight.float())) / math.sqrt(weight.numel())
                    scales.append(rms * math.sqrt(fan_in))
    return max(scales)


def describe(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> Architecture:
    """Read the model's structure and the optimizer's settings once, before training."""
    modules = list(model.modules())
    attention = any(isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__ for m in modules)
    has = {kind: any(isinstance(m, kind) for m in modules) for kind in (nn.Embedding, nn.LayerNorm, nn.RNNBase)}
    if attention or (has[nn.Embedding] and has[nn.LayerNorm]):
        family = "transformer"
    elif has[nn.RNNBase]:
        family = "recurrent"
    elif any(isinstance(m, nn.modules.conv._ConvNd) for m in modules):
        family = "convolutional"
    else:
        family = "mlp"
    params = [p for p in model.parameters()]
    held = {id(p) for group in optimizer.param_groups for p in group["params"]} if optimizer is not None else None
    total = sum(p.numel() for p in params) or 1
    idle = sum(p.numel() for p in params if not p.requires_grad or (held is not None and id(p) not in held))
    group = optimizer.param_groups[0] if optimizer is not None and optimizer.param_groups else {}
    lr = group.get("lr")
    momentum = bool(group.get("momentum")) or "betas" in group
    return Architecture(
        family=family,
        saturating=sum(isinstance(m, SATURATING) for m in modules),
        rectifiers=sum(isinstance(m, RECTIFIERS) for m in modules),
        plain_rnn=any(isinstance(m, nn.RNN) for m in modules),
        weight_scale=_weight_scale(model),
        frozen_share=idle / total,
        optimizer=type(optimizer).__name__ if optimizer is not None else None,
        lr=float(lr) if isinstance(lr, (int, float, torch.Tensor)) else None,
        momentum=momentum,
    )


@dataclass
class Seen:
    """What the monitor saw while training that bears on the cause of a problem.

    ``from_start``: the reported symptom has been seen since the first time its rule looked (on
    the initial weights, before any update, for a rule that looks from step 1). ``nonfinite_input``: a
    batch held NaN or Inf. ``input_rms``: the typical size of the last batch checked.
    ``batch_size``: the last batch's. ``noisy_labels``: the linked recorder saw the model
    memorise samples whose labels their neighbours contradict.
    """

    from_start: bool = False
    nonfinite_input: bool = False
    input_rms: float | None = None
    batch_size: int | None = None
    noisy_labels: bool = False


def _lr_below_usual(arch: Architecture) -> bool:
    """The learning rate is in the lower part of the optimizer's usual range (geometric middle)."""
    if arch.lr is None or arch.optimizer not in LR_RANGES:
        return False
    low, high = LR_RANGES[arch.optimizer]
    return arch.lr < math.sqrt(low * high)


def _diverged(arch: Architecture, seen: Seen, input_scale: float) -> str:
    """Why values blew up in a network fed finite data: inputs, initialisation or step size."""
    if seen.input_rms is not None and seen.input_rms > input_scale:
        return "unnormalized_input"
    if arch.weight_scale >= LARGE_WEIGHT_SCALE:
        return "initialization"
    return "learning_rate"


# The cause of each static (lint) finding: the mistake it names.
STATIC_CAUSES = {
    "softmax_before_cross_entropy": "output_activation",
    "bce_without_sigmoid": "output_activation",
    "cross_entropy_one_output": "output_layer",
    "linear_without_activation": "missing_activation",
    "dropout_too_high": "dropout",
    "learning_rate_range": "learning_rate",
    "params_not_in_optimizer": "optimizer_parameters",
    "frozen_parameters": "frozen_parameters",
    "saturating_activations": "saturating_activations",
}


def diagnose(code: str, evidence: dict[str, Any], arch: Architecture, seen: Seen, input_scale: float) -> str:
    """The most likely cause of problem ``code`` (one of ``causes.CAUSES[code]``)."""
    if code in STATIC_CAUSES:
        return STATIC_CAUSES[code]
    if code == "vanishing_gradient":
        if arch.plain_rnn:
            return "recurrence"
        return "saturating_activations" if arch.saturating >= 2 else "initialization"
    if code == "exploding_gradient":
        return _diverged(arch, seen, input_scale)
    if code == "dying_relu":
        # dead on the initial weights: the initialisation; dead after updates: their size
        return "initialization" if seen.from_start else "learning_rate"
    if code == "oscillating_loss":
        return "small_batch" if seen.batch_size is not None and seen.batch_size <= SMALL_BATCH else "learning_rate"
    if code == "slow_convergence":
        if arch.frozen_share >= 0.5:
            return "frozen_parameters"
        if _lr_below_usual(arch):
            return "learning_rate"
        if arch.saturating >= 2 and not arch.plain_rnn:
            return "saturating_activations"
        return "optimizer" if arch.optimizer == "SGD" and not arch.momentum else "learning_rate"
    if code in ("abnormal_data", "nan_loss"):
        return "nan_in_data" if seen.nonfinite_input else _diverged(arch, seen, input_scale)
    if code == "overfitting":
        return "label_noise" if seen.noisy_labels else "no_regularization"
    if code == "unnormalized_input":
        low, high = evidence.get("min_value", -1.0), evidence.get("max_abs", 0.0)
        return "raw_pixels" if low >= 0 and 1 < high <= 255.5 else "unscaled_features"
    if code == "class_collapse":
        return "dead_representation" if evidence.get("spread", 1.0) == 0 else "learning_rate"
    if code == "improper_output_activation":
        return "output_activation"
    if code == "improper_loss":
        return "loss"
    return "label_noise"  # memorizing_noisy_labels
