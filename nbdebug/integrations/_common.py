"""What the framework callbacks share: finding the head, reading datasets and metrics, and
the error for a framework that is not installed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader


def missing(framework: str, extra: str, package: str) -> ImportError:
    """The error raised when ``import nbdebug.integrations.<extra>`` finds no ``framework``."""
    return ImportError(
        f"nbdebug.integrations.{extra} needs {framework}, which is not installed; "
        f"install it with: pip install 'nbdebug[{extra}]' (or pip install {package})"
    )


def resolve_head(model: nn.Module, head: nn.Module | str) -> nn.Module:
    """``head`` as a module of ``model``: given as the module itself or as its dotted name
    (``"classifier"``, ``"classifier.out_proj"``)."""
    if isinstance(head, str):
        try:
            return model.get_submodule(head)
        except AttributeError:
            names = [name for name, _ in model.named_modules() if name][-5:]
            raise ValueError(
                f"head={head!r} names no submodule of the {type(model).__name__}; the last ones are {names}"
            ) from None
    if isinstance(head, nn.Module):
        return head
    raise TypeError(f"head must be a module of the model or its dotted name (e.g. 'classifier'), got {head!r}")


def dataset_of(data: Any) -> Any:
    """A DataLoader's dataset (nbdebug batches the samples itself, in order); anything else as it is."""
    return data.dataset if isinstance(data, DataLoader) else data


def samples_in(loaders: Any) -> int | None:
    """The number of samples of a DataLoader's dataset, or of a list of DataLoaders' together
    (what a validation accuracy was measured on); None when unknown."""
    total = 0
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        if not isinstance(loader, DataLoader) or not hasattr(loader.dataset, "__len__"):
            return None
        total += len(loader.dataset)
    return total or None


def scalars(values: Mapping[str, Any] | None) -> dict[str, float]:
    """The finite numbers (and one-element tensors) among ``values``, as floats."""
    found: dict[str, float] = {}
    for name, value in (values or {}).items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            found[str(name)] = float(value)
    return found
