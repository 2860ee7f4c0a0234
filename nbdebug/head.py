"""The head contract: what a classifier's outputs mean, and how a run's heads come back.

The head is the module that maps a sample's representation to one score per class.
This module is the one place that decides

* how outputs become probabilities (:func:`probabilities`): logits through a softmax,
  probabilities as they are, log-probabilities through exp; a single output unit is a
  binary classifier whose unit scores class 1 (a sigmoid of logits), recorded as
  ``[1 - p, p]``;
* whether an output has the right shape for the number of classes (:func:`fits_classes`);
* how the head of a recorded epoch is rebuilt (:func:`load_head`): a run stores each
  epoch's head weights (a state dict) and, once, the head's architecture as a small JSON
  spec (:func:`describe`). Heads built from the common layers below are rebuilt from the
  spec alone; any other head from a module the user passes, whose weights are replaced
  by the recorded ones.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from .run import Run

OUTPUTS = ("logits", "probabilities", "log_probabilities")


def n_classes_of(n_outputs: int) -> int:
    """Classes of a classifier with ``n_outputs`` output units: one unit is binary."""
    return max(n_outputs, 2)


def fits_classes(n_outputs: int, n_classes: int) -> bool:
    """Whether ``n_outputs`` units score ``n_classes`` classes (one unit for two classes)."""
    return n_outputs == n_classes or (n_outputs == 1 and n_classes == 2)


def probabilities(output: torch.Tensor, kind: str = "logits") -> torch.Tensor:
    """(batch, n_classes) float32 probabilities from a (batch, n_outputs) output of ``kind``
    (one of :data:`OUTPUTS`); a single unit gives ``[1 - p, p]``."""
    out = output.detach().float()
    if kind == "log_probabilities":
        out = out.exp()
    if out.shape[1] == 1:
        p = torch.sigmoid(out) if kind == "logits" else out
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(out, dim=1) if kind == "logits" else out


def log_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """The logarithm of :func:`probabilities` of ``logits``, computed stably (keeps the graph)."""
    if logits.shape[1] == 1:
        return torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=1)
    return torch.log_softmax(logits, dim=1)


def predicted_class(logits: torch.Tensor) -> torch.Tensor:
    """(batch,) the class a head's logits predict: the largest score, or for a single unit
    class 1 where its logit is positive."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(1)


def is_single_unit(run: Run) -> bool:
    """True when the run's classifier has one sigmoid output (recorded as [1 - p, p])."""
    if run.n_classes != 2:
        return False
    weights = [v for k, v in run.head_state(run.epochs[-1]).items() if k.endswith("weight") and v.ndim == 2]
    return bool(weights) and weights[-1].shape[0] == 1


def can_rebuild(run: Run, module: nn.Module | None = None) -> bool:
    """Whether the heads of ``run`` can be rebuilt: from the recorded description, or from
    ``module`` (a custom head's class). Without, a run still opens, without territories."""
    return module is not None or run.info["head"].get("spec") is not None


def rebuild_note(run: Run, module: nn.Module | None = None) -> str:
    """What to tell a user whose run opens without territories ("" where they can be painted)."""
    if can_rebuild(run, module):
        return ""
    return (
        f"no class territories: the run's head ({run.info['head']['type']}) is a custom module; "
        "pass head_module= (an instance of its class) to show() to paint them"
    )


def check_rebuild(run: Run, module: nn.Module | None) -> nn.Module | None:
    """``module``, once checked to be one, if the run's head can be rebuilt with it; raises otherwise."""
    if module is not None and not isinstance(module, nn.Module):
        raise TypeError(f"head_module must be a torch.nn.Module like the run's head, got {type(module).__name__}")
    if not can_rebuild(run, module):
        raise ValueError(
            f"the run's head ({run.info['head']['type']}) is a custom module that nbdebug cannot rebuild, so it "
            "has no territories; pass an instance of its class: nbdebug.Session(run, head_module=model.head) "
            "or nbdebug.show(run, head_module=model.head)"
        )
    return module


def load_head(run: Run, epoch: int, module: nn.Module | None = None) -> nn.Module:
    """The head of ``epoch`` in eval mode on the CPU with frozen parameters, checked to output
    one score per class; ``module`` as for :meth:`nbdebug.Run.head`."""
    head = run.head(epoch, module=module)
    for parameter in head.parameters():
        parameter.requires_grad_(False)
    with torch.no_grad():
        out = head(torch.zeros(2, run.dim))
    if out.ndim != 2 or not fits_classes(out.shape[1], run.n_classes):
        raise ValueError(
            f"the head of epoch {epoch} maps a batch of 2 representations to shape {tuple(out.shape)}, but the "
            f"run has {run.n_classes} classes; head_module must map (batch, {run.dim}) representations to "
            f"(batch, {run.n_classes}) logits (or (batch, 1) for a binary sigmoid head). Pass an instance of the "
            "head's class as recorded, e.g. head_module=MyHead(...)"
        )
    return head


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
