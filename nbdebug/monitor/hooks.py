"""The monitor's hooks on a live model: what one capture step measures, as plain numbers.

Forward hooks on the leaf layers with their own parameters are armed for one capture step at
a time; an optimizer step pre-hook keeps references to that step's gradients. All statistics
of a capture step come from one ``torch._foreach_norm`` call. Nothing here knows the rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .lint import leaf_modules

PARAMETRIC = (nn.Linear, nn.modules.conv._ConvNd)


@dataclass
class CaptureStats:
    """What one capture step measured.

    ``grad_norms``: l2 norm of each parametric layer's weight gradient, in order; None without
    gradients to judge (missing, or all zero because an in-place ``zero_grad()`` cleared them).
    ``output_names`` / ``output_rms``: root-mean-square of each hooked layer's floating-point
    output. ``input_rms``: that of the inputs, None without them. ``has_hidden_layers``:
    whether ``per_neuron_grads()`` has neurons to return.
    """

    grad_norms: list[float] | None
    output_names: list[str]
    output_rms: list[float]
    input_rms: float | None
    neuron_grads: list[torch.Tensor]
    neuron_bias: list[bool]

    @property
    def has_hidden_layers(self) -> bool:
        return bool(self.neuron_grads)

    def per_neuron_grads(self) -> np.ndarray:
        """One gradient value per hidden neuron, layer after layer (computed when asked).

        A neuron's bias gradient sums its gradient over the batch: exactly 0 when it passed no
        gradient for any sample (a dead ReLU), almost surely not otherwise. Without a bias, the
        norm of the neuron's row of the weight gradient is used.
        """
        return torch.cat(
            [
                g if has_bias else torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1)
                for g, has_bias in zip(self.neuron_grads, self.neuron_bias, strict=True)
            ]
        ).numpy()


def input_rms(inputs: torch.Tensor) -> float | None:
    """Root-mean-square of a floating-point, non-empty input batch (else None)."""
    if inputs.is_floating_point() and inputs.numel() > 0:
        return torch.linalg.vector_norm(inputs).item() / math.sqrt(inputs.numel())
    return None


def input_magnitudes(inputs: torch.Tensor) -> dict[str, float]:
    """Mean and largest absolute value of an input batch."""
    x = inputs.detach()
    return {"mean_abs": float(x.abs().mean()), "max_abs": float(x.abs().max())}


def batch_correct(
    task: str | None, activation: str | None, targets: torch.Tensor, outputs: torch.Tensor
) -> torch.Tensor | None:
    """Number of correct predictions in the batch (a 0-d tensor), None if not a classifier."""
    out = outputs.detach()
    if task == "multiclass" and out.dim() == 2:
        labels = targets.argmax(1) if targets.dim() == 2 else targets
        return (out.argmax(1) == labels).sum()
    if task == "binary":
        cut = 0.5 if activation in ("sigmoid", "softmax") else 0.0
        return ((out.reshape(-1) > cut) == (targets.reshape(-1) > 0.5)).sum()
    return None


class LayerHooks:
    """Hooks of one model (and optimizer): arm them for a capture step, then ``capture()``."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None):
        self.layers: list[tuple[str, Any]] = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, PARAMETRIC) and isinstance(getattr(m, "weight", None), torch.Tensor)
        ]
        self.layer_names = [name for name, _ in self.layers]
        # Only layers with their own parameters are hooked: their outputs carry the largest
        # values (activations only clip or squash them), and fewer hooks cost less per step.
        hooked = [
            (name, m)
            for name, m in leaf_modules(model)
            if m is not model and any(True for _ in m.parameters(recurse=False))
        ]
        self._hook_fns = [(module, self._output_hook(name)) for name, module in hooked]
        # Gradients read on capture steps: every layer's weight (for its norm), then per hidden
        # layer the bias (one value per neuron) or, without a bias, the weight again.
        # The output layer's bias tells a cleared gradient (all zero) from a dead network.
        self._neuron_bias = [isinstance(getattr(m, "bias", None), torch.Tensor) for _, m in self.layers[:-1]]
        out_bias = getattr(self.layers[-1][1], "bias", None) if self.layers else None
        self._norm_params = [m.weight for _, m in self.layers] + (
            [out_bias] if isinstance(out_bias, torch.Tensor) else []
        )
        self._grad_params: list[torch.Tensor] = self._norm_params + [
            m.bias if has_bias else m.weight
            for (_, m), has_bias in zip(self.layers[:-1], self._neuron_bias, strict=True)
        ]
        self._outputs: dict[str, torch.Tensor] = {}
        self._grad_refs: list[torch.Tensor | None] | None = None
        self._forward_handles: list[Any] = []
        self.armed = False
        self._optimizer_handle = (
            optimizer.register_step_pre_hook(self._before_optimizer_step) if optimizer is not None else None
        )

    @property
    def hidden_widths(self) -> list[tuple[str, int]]:
        """(name, number of neurons) of every parametric layer but the last."""
        return [(name, m.weight.shape[0]) for name, m in self.layers[:-1]]

    def arm(self) -> None:
        """Hook layer outputs for the next training forward pass (a capture step)."""
        if self.armed:
            return
        self.armed = True
        for module, hook in self._hook_fns:
            self._forward_handles.append(module.register_forward_hook(hook))

    def disarm(self) -> None:
        """Remove the forward hooks and drop every tensor reference: nothing outlives the check."""
        for handle in self._forward_handles:
            handle.remove()
        self._forward_handles.clear()
        self.armed = False
        self._outputs.clear()
        self._grad_refs = None

    def remove(self) -> None:
        """Remove every hook, the optimizer's too."""
        self.disarm()
        if self._optimizer_handle is not None:
            self._optimizer_handle.remove()
            self._optimizer_handle = None

    def _output_hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            # validation passes under no_grad are not training steps
            if torch.is_grad_enabled() and isinstance(output, torch.Tensor):
                self._outputs[name] = output

        return hook

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        # Keep references to this step's gradients in case the loop clears them (zero_grad)
        # between optimizer.step() and monitor.step(); no copy, no computation.
        if self.armed:
            self._grad_refs = [p.grad for p in self._grad_params]

    def _current_grads(self) -> list[torch.Tensor] | None:
        current = [p.grad for p in self._grad_params]
        grads = self._grad_refs if any(g is None for g in current) else current
        if not grads or any(g is None for g in grads):
            return None
        return cast("list[torch.Tensor]", grads)

    def capture(self, inputs: torch.Tensor | None) -> CaptureStats | None:
        """The statistics of this capture step; None when there is nothing to measure.

        On small models PyTorch's per-operation overhead, not the arithmetic, is what the
        monitor costs, so every statistic comes from one call: the l2 norms of the weight
        gradients, the layer outputs and the inputs (``_foreach_norm``), copied out once.
        """
        grads = self._current_grads() if self.layers else None
        n_norms = len(self._norm_params) if grads else 0
        measured = grads[:n_norms] if grads else []
        names = [name for name, t in self._outputs.items() if t.is_floating_point()]
        measured += [self._outputs[name] for name in names]
        batch = inputs if inputs is not None and inputs.is_floating_point() and inputs.numel() > 0 else None
        if batch is not None:
            measured.append(batch)
        if not measured:
            return None
        with torch.no_grad():  # cheaper than detaching each tensor
            values = torch.stack(torch._foreach_norm(measured)).tolist()
        # l2 norm -> root-mean-square: the typical size of one value
        rms = [v / math.sqrt(t.numel()) for v, t in zip(values[n_norms:], measured[n_norms:], strict=True)]
        usable = bool(grads) and any(values[:n_norms])
        return CaptureStats(
            grad_norms=values[: len(self.layers)] if usable else None,
            output_names=names,
            output_rms=rms[: len(names)],
            input_rms=rms[-1] if batch is not None else None,
            neuron_grads=grads[n_norms:] if grads and usable else [],
            neuron_bias=self._neuron_bias,
        )
