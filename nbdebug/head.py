"""Describe a classifier head as JSON so the head of any recorded epoch can be rebuilt.

A run stores each epoch's head weights (a state dict) and, once, the head's
architecture as a small JSON spec. Heads built from the common layers below are
rebuilt from the spec alone; any other head is rebuilt from a module the user
passes (its weights are replaced by the recorded ones).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

# Layers whose constructor arguments are plain attributes of the instance.
_LAYERS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "Linear": (nn.Linear, ("in_features", "out_features")),
    "Dropout": (nn.Dropout, ("p",)),
    "Identity": (nn.Identity, ()),
    "Flatten": (nn.Flatten, ("start_dim", "end_dim")),
    "ReLU": (nn.ReLU, ()),
    "GELU": (nn.GELU, ("approximate",)),
    "Tanh": (nn.Tanh, ()),
    "Sigmoid": (nn.Sigmoid, ()),
    "SiLU": (nn.SiLU, ()),
    "ELU": (nn.ELU, ("alpha",)),
    "LeakyReLU": (nn.LeakyReLU, ("negative_slope",)),
    "BatchNorm1d": (nn.BatchNorm1d, ("num_features", "eps", "momentum", "affine", "track_running_stats")),
    "LayerNorm": (nn.LayerNorm, ("normalized_shape", "eps", "elementwise_affine")),
}


def describe(module: nn.Module) -> dict[str, Any] | None:
    """Return a JSON-able spec of ``module``, or None if it holds a layer not listed above."""
    if type(module) is nn.Sequential:
        children = [describe(child) for child in module]
        if any(child is None for child in children):
            return None
        return {"type": "Sequential", "children": children}
    for name, (cls, args) in _LAYERS.items():
        if type(module) is cls:
            spec: dict[str, Any] = {"type": name}
            for arg in args:
                value = getattr(module, arg)
                spec[arg] = list(value) if isinstance(value, tuple) else value
            if cls is nn.Linear:
                spec["bias"] = module.bias is not None
            return spec
    return None


def build(spec: dict[str, Any]) -> nn.Module:
    """Build a freshly initialised module from a spec made by :func:`describe`."""
    if spec["type"] == "Sequential":
        return nn.Sequential(*(build(child) for child in spec["children"]))
    cls, args = _LAYERS[spec["type"]]
    kwargs = {arg: spec[arg] for arg in args}
    if cls is nn.Linear:
        kwargs["bias"] = spec["bias"]
    if cls is nn.LayerNorm:
        kwargs["normalized_shape"] = tuple(kwargs["normalized_shape"])
    return cls(**kwargs)


def rebuild(
    spec: dict[str, Any] | None,
    state: dict[str, torch.Tensor],
    module: nn.Module | None = None,
    *,
    what: str = "the head",
) -> nn.Module:
    """A module in eval mode carrying ``state``: built from ``spec``, or a copy of ``module``."""
    if module is not None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module shaped like {what}, got {type(module).__name__}")
        head = copy.deepcopy(module)
    elif spec is not None:
        head = build(spec)
    else:
        raise ValueError(
            f"{what} is a custom module that nbdebug cannot rebuild from its description; "
            "pass a module of the same class, e.g. run.head(epoch, module=MyHead(...))"
        )
    try:
        head.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"the recorded weights do not fit the module given for {what}: {err}") from None
    return head.eval()
