"""Static checks: lint rules over the model, optimizer and loss, run before the first step.

They read module structure only, so registration order stands for execution order where a
rule needs it (Sequential models); whatever ``forward()`` does on top is the runtime rules' job.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .diagnosis import SATURATING
from .messages import DETAILS
from .rules import Finding
from .thresholds import LR_RANGES

# Modules that neither add nor remove nonlinearity between two linear layers.
TRANSPARENT = (nn.Dropout, nn.Identity, nn.Flatten, nn.BatchNorm1d, nn.LayerNorm)


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Named modules without children, in registration order."""
    return [
        (name or type(model).__name__, m) for name, m in model.named_modules() if not any(True for _ in m.children())
    ]


def loss_name(loss_fn: Any) -> str | None:
    """The loss's class name (``CrossEntropyLoss``) or functional name, None if unknown."""
    if loss_fn is None:
        return None
    if isinstance(loss_fn, nn.Module):
        return type(loss_fn).__name__
    return _FUNCTIONAL_LOSSES.get(getattr(loss_fn, "__name__", ""))


_FUNCTIONAL_LOSSES = {
    "cross_entropy": "CrossEntropyLoss",
    "nll_loss": "NLLLoss",
    "mse_loss": "MSELoss",
    "l1_loss": "L1Loss",
    "binary_cross_entropy": "BCELoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "smooth_l1_loss": "SmoothL1Loss",
    "huber_loss": "HuberLoss",
    "kl_div": "KLDivLoss",
    "multi_margin_loss": "MultiMarginLoss",
}


def static_checks(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, loss_fn: Any, thresholds: dict[str, float]
) -> list[Finding]:
    """Lint the setup before the first step; one finding per problem, in a fixed order."""
    found: list[Finding] = []
    loss = loss_name(loss_fn)
    leaves = leaf_modules(model)
    last_name, last = leaves[-1] if leaves else ("", None)
    last_linear = next(((n, m) for n, m in reversed(leaves) if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))), None)
    # Registration order is execution order only for Sequential models; the output-layer rules
    # therefore apply to Sequential models or models whose last registered leaf is unambiguous.
    sequential = isinstance(model, nn.Sequential)

    if loss == "CrossEntropyLoss" and isinstance(last, nn.Softmax) and sequential:
        found.append(Finding("softmax_before_cross_entropy", {"layer": last_name}))
    if loss == "BCELoss" and sequential and last is not None and not isinstance(last, nn.Sigmoid):
        found.append(Finding("bce_without_sigmoid", {"layer": last_name, "layer_type": type(last).__name__}))
    if loss in ("CrossEntropyLoss", "NLLLoss") and last_linear is not None:
        name, layer = last_linear
        units = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        if units == 1:
            found.append(Finding("cross_entropy_one_output", {"layer": name}))

    pairs = []
    for container_name, container in model.named_modules():
        if not isinstance(container, nn.Sequential):
            continue
        previous = None
        for child_name, child in container.named_children():
            full = f"{container_name}.{child_name}" if container_name else child_name
            if isinstance(child, nn.Linear):
                if previous is not None:
                    pairs.append(f"{previous} and {full}")
                previous = full
            elif not isinstance(child, TRANSPARENT):
                previous = None
    if pairs:
        found.append(Finding("linear_without_activation", {"pairs": "; ".join(pairs)}))

    high = [
        f"{n} (p={m.p:g})"
        for n, m in leaves
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > thresholds["dropout_max"]
    ]
    if high:
        found.append(Finding("dropout_too_high", {"layers": ", ".join(high)}))

    # Saturating activations between layers (an output activation is the loss's business).
    hidden = leaves[:-1] if isinstance(last, SATURATING) else leaves
    saturating = [n for n, m in hidden if isinstance(m, SATURATING)]
    if len(saturating) >= 2:
        shown = ", ".join(saturating[:5]) + (", ..." if len(saturating) > 5 else "")
        found.append(Finding("saturating_activations", {"n": len(saturating), "layers": shown}))

    sizes = [(p.numel(), p.requires_grad) for p in model.parameters()]
    total = sum(n for n, _ in sizes)
    frozen = sum(n for n, trained in sizes if not trained)
    if total and frozen / total >= thresholds["frozen_share"]:
        found.append(Finding("frozen_parameters", {"share": frozen / total, "frozen": frozen, "total": total}))

    if optimizer is not None:
        opt_name = type(optimizer).__name__
        lr = optimizer.param_groups[0].get("lr")
        if isinstance(lr, torch.Tensor):
            lr = float(lr)
        if opt_name in LR_RANGES and isinstance(lr, (int, float)):
            low, high_lr = LR_RANGES[opt_name]
            if lr > high_lr or lr < low:
                too_high = lr > high_lr
                found.append(
                    Finding(
                        "learning_rate_range",
                        {
                            "optimizer": opt_name,
                            "lr": lr,
                            "low": low,
                            "high": high_lr,
                            "suggested": 1e-3 if opt_name != "SGD" else 0.01,
                            "consequence": DETAILS["lr_too_high" if too_high else "lr_too_low"],
                        },
                    )
                )
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            found.append(Finding("params_not_in_optimizer", {"n": len(missing), "names": shown}))
    return found
