"""Model surgery on any ``nn.Module`` tree: where layers run (a traced forward pass), replacing a
submodule by its dotted path, and the wrappers some repairs put around a model.

The structure of a model says little about the order its layers run in (a ResNet block calls
``conv1``, ``bn1``, ``relu`` from ``forward()``), so the repairs read the order from one
forward pass on a few training inputs, with forward hooks on every leaf module, on a copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

PARAMETRIC = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
HIDDEN_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softsign,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Hardswish,
    nn.Softplus,
    nn.LogSigmoid,
)
OUTPUT_ACTIVATIONS = (nn.Softmax, nn.LogSoftmax, *HIDDEN_ACTIVATIONS)


@dataclass(frozen=True)
class Call:
    """One leaf module call of the traced forward pass: its path, the module and its output shape."""

    path: str
    module: nn.Module
    shape: tuple[int, ...]


def trace(model: nn.Module, inputs: torch.Tensor) -> list[Call]:
    """The leaf modules of ``model`` in the order one forward pass calls them (on a copy in
    training mode, so that fast paths that skip submodules in eval mode do not hide them; the
    copy's batch-norm statistics change, the model's do not)."""
    probe = copy.deepcopy(model).train()
    names = {id(m): n for n, m in probe.named_modules()}
    calls: list[Call] = []
    handles = []
    for module in probe.modules():
        if not any(True for _ in module.children()) and module is not probe:

            def hook(m: nn.Module, args: object, out: object) -> None:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
                calls.append(Call(names[id(m)], m, shape))

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            probe(inputs)
    finally:
        for handle in handles:
            handle.remove()
    # report the real model's modules, found by path
    real = dict(model.named_modules())
    return [Call(c.path, real[c.path], c.shape) for c in calls]


def get_module(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    """Replace the submodule at dotted ``path`` (works inside Sequential and ModuleList too)."""
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new) if not name.isdigit() else parent.__setitem__(int(name), new)  # type: ignore[operator]


def output_layer(calls: list[Call]) -> int | None:
    """Index in ``calls`` of the last parametric layer called (the output layer)."""
    idx = [i for i, c in enumerate(calls) if isinstance(c.module, PARAMETRIC)]
    return idx[-1] if idx else None


def describe(module: nn.Module) -> str:
    """A module as in a diff: ``LeakyReLU(0.01)``, ``Linear(64, 10)``, ``BatchNorm1d(64)``."""
    if isinstance(module, nn.LeakyReLU):
        return f"LeakyReLU({module.negative_slope:g})"
    if isinstance(module, nn.Linear):
        return f"Linear({module.in_features}, {module.out_features})"
    if isinstance(module, nn.modules.conv._ConvNd):
        return f"{type(module).__name__}({module.in_channels}, {module.out_channels}, {module.kernel_size})"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return f"{type(module).__name__}({module.num_features})"
    if isinstance(module, (nn.Softmax, nn.LogSoftmax)):
        return f"{type(module).__name__}(dim={module.dim})"
    if isinstance(module, nn.Sequential):
        return " + ".join(describe(m) for m in module)
    return f"{type(module).__name__}()"


def batch_norm_for(call: Call) -> nn.Module | str:
    """The batch norm that fits after a layer's outputs, or why none does."""
    layer, shape = call.module, call.shape
    if isinstance(layer, nn.Linear) and len(shape) == 2:
        return nn.BatchNorm1d(layer.out_features)
    if isinstance(layer, nn.Conv1d) and len(shape) == 3:
        return nn.BatchNorm1d(layer.out_channels)
    if isinstance(layer, nn.Conv2d) and len(shape) == 4:
        return nn.BatchNorm2d(layer.out_channels)
    if isinstance(layer, nn.Conv3d) and len(shape) == 5:
        return nn.BatchNorm3d(layer.out_channels)
    return f"its outputs have shape {shape} (batch norm would mix positions of a sequence)"


def init_layer(layer: nn.Module, scheme: str = "xavier") -> None:
    """Zero biases and Glorot (Xavier) uniform weights (AutoTrainer S4), or He normal weights
    (``scheme="he"``, for a layer feeding a ReLU)."""
    weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
    with torch.no_grad():
        if isinstance(weight, torch.Tensor):
            if scheme == "he":
                nn.init.kaiming_normal_(weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(weight)
        if isinstance(bias, torch.Tensor):
            bias.zero_()


class Standardized(nn.Module):
    """``model`` behind the input standardization of S9: ``model((x - mean) / std)``, with NaN
    and Inf replaced by the mean (0 once standardized). The statistics are buffers."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.nan_to_num((x - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0))


class ToLogits(nn.Module):
    """``inner`` whose ``forward()`` ends in a softmax or a sigmoid, with its probabilities turned
    back into scores the logit losses take: log(p) (a log-softmax, for CrossEntropyLoss) or
    log(p / (1 - p)) (for BCEWithLogitsLoss). Used when the activation is not a module that
    surgery could replace."""

    def __init__(self, inner: nn.Module, kind: str):
        super().__init__()
        self.inner = inner
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.inner(x).clamp(1e-12, 1 - 1e-7)
        return p.log() if self.kind == "log" else (p / (1 - p)).log()

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
