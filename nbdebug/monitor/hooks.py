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

# Layers whose weight gradients the gradient rules compare, in registration order: the signal
# enters a transformer through its embeddings and a recurrent net through its input weights.
NEURON_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)
GRADIENT_LAYERS = (*NEURON_LAYERS, nn.Embedding, nn.RNNBase)
# Normalization layers: a scale of exactly zero (a zero-initialised residual branch) blocks the
# gradient of everything before it in its branch until the scale has had an update.
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def _input_weight(module: nn.Module) -> torch.Tensor | None:
    """The weight through which a layer's input enters it (a recurrent layer's first input
    weights), if it is trained."""
    weight = getattr(module, "weight_ih_l0" if isinstance(module, nn.RNNBase) else "weight", None)
    return weight if isinstance(weight, torch.Tensor) and weight.requires_grad else None


@dataclass
class CaptureStats:
    """What one capture step measured.

    ``grad_norms``: l2 norm of each gradient layer's input weight gradient, in order (0 for a
    layer that got none this step); None without gradients to judge (missing, or all zero
    because an in-place ``zero_grad()`` cleared them). ``zero_scale``: a normalization layer's
    scale is exactly zero (its branch passes no gradient back yet). ``output_names`` /
    ``output_rms``: root-mean-square of each hooked layer's floating-point output.
    ``input_rms``: that of the inputs, None without them. ``has_hidden_layers``: whether
    ``per_neuron_grads()`` has neurons to return.
    """

    grad_norms: list[float] | None
    zero_scale: bool
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
    """Mean and largest absolute value, and the smallest value, of an input batch."""
    x = inputs.detach()
    return {"mean_abs": float(x.abs().mean()), "max_abs": float(x.abs().max()), "min_value": float(x.min())}


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
        # Frozen layers are left out: they get no gradient by design.
        self.layers: list[tuple[str, nn.Module, torch.Tensor]] = [
            (name, m, weight)
            for name, m in model.named_modules()
            if isinstance(m, GRADIENT_LAYERS) and (weight := _input_weight(m)) is not None
        ]
        self.layer_names = [name for name, _, _ in self.layers]
        # Only layers with their own parameters are hooked: their outputs carry the largest
        # values (activations only clip or squash them), and fewer hooks cost less per step.
        hooked = [
            (name, m)
            for name, m in leaf_modules(model)
            if m is not model and any(True for _ in m.parameters(recurse=False))
        ]
        self._hook_fns = [(module, self._output_hook(name)) for name, module in hooked]
        # Hidden neurons (dying ReLU): the Linear and convolution layers before the last layer.
        self._neurons = [(name, m) for name, m, _ in self.layers[:-1] if isinstance(m, NEURON_LAYERS)]
        self._neuron_bias = [isinstance(getattr(m, "bias", None), torch.Tensor) for _, m in self._neurons]
        self._scales = [
            m.weight
            for m in model.modules()
            if isinstance(m, NORM_LAYERS) and isinstance(getattr(m, "weight", None), torch.Tensor)
        ]
        # Gradients read on capture steps: every layer's input weight (for its norm), the
        # output layer's bias (it tells a cleared gradient, all zero, from a dead network),
        # then per hidden layer the bias (one value per neuron) or, without one, the weight.
        out_bias = getattr(self.layers[-1][1], "bias", None) if self.layers else None
        self._norm_params = [weight for _, _, weight in self.layers] + (
            [out_bias] if isinstance(out_bias, torch.Tensor) and out_bias.requires_grad else []
        )
        self._grad_params: list[torch.Tensor] = self._norm_params + [
            cast("torch.Tensor", m.bias if has_bias else m.weight)
            for (_, m), has_bias in zip(self._neurons, self._neuron_bias, strict=True)
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
        """(name, number of neurons) of every hidden Linear or convolution layer."""
        return [(name, m.weight.shape[0]) for name, m in self._neurons]

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
        """This step's gradients; a parameter that got none (unused this step) counts as zero."""
        current = [p.grad for p in self._grad_params]
        grads = self._grad_refs if all(g is None for g in current) and self._grad_refs else current
        if not grads or all(g is None for g in grads):
            return None
        return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self._grad_params, strict=True)]

    def capture(self, inputs: torch.Tensor | None) -> CaptureStats | None:
        """The statistics of this capture step; None when there is nothing to measure.

        On small models PyTorch's per-operation overhead, not the arithmetic, is what the
        monitor costs, so every statistic comes from one call: the l2 norms of the weight
        gradients, the normalization scales, the layer outputs and the inputs
        (``_foreach_norm``), copied out once.
        """
        grads = self._current_grads() if self.layers else None
        n_norms = len(self._norm_params) if grads else 0
        measured = [*grads[:n_norms]] if grads else []
        measured += self._scales
        names = [name for name, t in self._outputs.items() if t.is_floating_point()]
        measured += [self._outputs[name] for name in names]
        batch = inputs if inputs is not None and inputs.is_floating_point() and inputs.numel() > 0 else None
        if batch is not None:
            measured.append(batch)
        if not measured:
            return None
        with torch.no_grad():  # cheaper than detaching each tensor
            values = torch.stack(torch._foreach_norm(measured)).tolist()
        scales = values[n_norms : n_norms + len(self._scales)]
        outputs = values[n_norms + len(self._scales) :]
        # l2 norm -> root-mean-square: the typical size of one value
        rms = [v / math.sqrt(t.numel()) for v, t in zip(outputs, measured[n_norms + len(self._scales) :], strict=True)]
        usable = bool(grads) and any(values[:n_norms])
        return CaptureStats(
            grad_norms=values[: len(self.layers)] if usable else None,
            zero_scale=any(v == 0 for v in scales),
            output_names=names,
            output_rms=rms[: len(names)],
            input_rms=rms[-1] if batch is not None else None,
            neuron_grads=grads[n_norms:] if grads and usable else [],
            neuron_bias=self._neuron_bias,
        )
