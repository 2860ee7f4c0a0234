"""What a Recorder tracks: each split's inputs and labels, checked when given and batched in
sample order when captured.

A split comes as ``(inputs, labels)`` tensors or arrays (``train``, ``test``), as inputs
alone (``unlabeled``), or as a map-style ``Dataset`` of ``(input, label)`` pairs (of
inputs for ``unlabeled``), whose labels are read from ``.targets`` when it has them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset


@dataclass
class Split:
    """One tracked split: its inputs (a tensor or a Dataset) and labels (-1 where none)."""

    name: str
    inputs: torch.Tensor | Dataset
    labels: np.ndarray

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[torch.Tensor]:
        """The split's inputs in order, ``batch_size`` at a time (only the first ``limit``)."""
        n = len(self.labels) if limit is None else min(limit, len(self.labels))
        if isinstance(self.inputs, torch.Tensor):
            for start in range(0, n, batch_size):
                yield self.inputs[start : min(start + batch_size, n)]
        else:
            subset = self.inputs if n == len(self.labels) else Subset(self.inputs, range(n))
            yield from DataLoader(subset, batch_size=batch_size, shuffle=False, collate_fn=_collate_inputs)


def _collate_inputs(items: list) -> torch.Tensor:
    inputs = [item[0] if isinstance(item, (tuple, list)) else item for item in items]
    return torch.stack([torch.as_tensor(x) for x in inputs])


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name} is a numpy array of Python objects; convert it to a numeric array")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{name} must be a torch.Tensor, a numpy array or a torch Dataset, got {type(x).__name__}")


def _as_labels(y: Any, n: int, name: str) -> np.ndarray:
    labels = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(
            f"{name} must be one integer class index per sample (1-D), got shape {labels.shape}; "
            "for one-hot labels pass y.argmax(1)"
        )
    if labels.size and labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} labels for {n} inputs; pass one label per input")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} holds a negative label ({labels.min()}); labels must be class indices 0..n_classes-1")
    return labels.astype(np.int64)


def make_split(name: str, value: Any, labelled: bool) -> Split:
    """Turn ``train=(X, y)``, ``test=(X, y)``, ``unlabeled=X`` or a Dataset into a Split."""
    split = _split_unchecked(name, value, labelled)
    if len(split.labels) == 0:
        raise ValueError(f"{name} has no samples; pass at least one or leave {name} out")
    return split


def _split_unchecked(name: str, value: Any, labelled: bool) -> Split:
    if isinstance(value, Dataset):
        try:
            n = len(cast(Sized, value))
        except TypeError:
            raise TypeError(f"{name} is a Dataset without a length; nbdebug needs map-style datasets") from None
        if not labelled:
            return Split(name, value, np.full(n, -1, dtype=np.int64))
        targets = getattr(value, "targets", None)  # torchvision datasets: no need to load every image
        if targets is not None and len(targets) == n:
            return Split(name, value, _as_labels(np.asarray(targets), n, f"{name}.targets"))
        labels = []
        for i in range(n):
            item = value[i]
            if not isinstance(item, (tuple, list)) or len(item) < 2:
                raise ValueError(f"{name}[{i}] should be an (input, label) pair, got {type(item).__name__}")
            labels.append(int(item[1]))
        return Split(name, value, _as_labels(np.asarray(labels, dtype=np.int64), n, f"{name} labels"))
    if labelled:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name} must be an (inputs, labels) pair or a Dataset of (input, label) pairs")
        inputs = _as_tensor(value[0], f"{name}[0]")
        if inputs.ndim == 0:
            raise ValueError(f"{name}[0] must have one row per sample, got a scalar")
        return Split(name, inputs, _as_labels(value[1], len(inputs), f"{name}[1]"))
    inputs = _as_tensor(value, name)
    if inputs.ndim == 0:
        raise ValueError(f"{name} must have one row per sample, got a scalar")
    return Split(name, inputs, np.full(len(inputs), -1, dtype=np.int64))
