"""The data fit() trains on: ``(X, y)`` tensors or arrays, a map-style ``Dataset`` or a
``DataLoader``, batched the same way whatever the form, plus the training statistics that the
input standardization (S9) uses."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

EVAL_BATCH = 512


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{name} is a numpy array of Python objects; convert it to a numeric array")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(value).__name__}")


def _as_labels(value: torch.Tensor, name: str) -> torch.Tensor:
    if value.dim() != 1:
        raise ValueError(
            f"{name} must hold one class index per sample (1-D), got shape {tuple(value.shape)}; "
            "for one-hot labels pass y.argmax(1)"
        )
    if value.is_floating_point():
        if not bool((value == value.round()).all()):
            raise ValueError(
                f"{name} must hold integer class indices, got non-integer floats; fit() trains classifiers "
                "(for regression write your own loop)"
            )
    elif value.dtype == torch.bool or (not value.dtype.is_signed and value.dtype != torch.uint8):
        raise ValueError(f"{name} must hold integer class indices, got dtype {value.dtype}")
    labels = value.long()
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{name} holds a negative label ({int(labels.min())}); labels must be 0..n_classes-1")
    return labels


@dataclass
class Data:
    """One split (``name`` is the argument it came from). Tensors are batched by index; a
    Dataset through a DataLoader; a DataLoader is used as given (its batch size wins) unless a
    repair changes the batch size, which needs a loader without its own batch sampler."""

    name: str
    inputs: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    dataset: Dataset | None = None
    loader: DataLoader | None = None

    @classmethod
    def of(cls, name: str, value: Any) -> Data:
        if isinstance(value, DataLoader):
            return cls(name, loader=value, dataset=value.dataset)
        if isinstance(value, Dataset):
            try:
                len(cast(Sized, value))
            except TypeError:
                raise TypeError(f"{name} is a Dataset without a length; pass a map-style Dataset") from None
            return cls(name, dataset=value)
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(
                f"{name} must be an (inputs, labels) pair of tensors or arrays, a Dataset of (input, label) "
                f"pairs or a DataLoader, got {type(value).__name__}"
            )
        inputs = _as_tensor(value[0], f"{name}[0]")
        labels = _as_labels(_as_tensor(value[1], f"{name}[1]"), f"{name}[1]")
        if inputs.dim() == 0 or len(inputs) != len(labels):
            raise ValueError(f"{name} has {len(labels)} labels for {len(inputs) if inputs.dim() else 0} inputs")
        if len(labels) == 0:
            raise ValueError(f"{name} has no samples")
        if inputs.dtype == torch.float64:
            inputs = inputs.float()  # models are float32
        return cls(name, inputs=inputs, labels=labels)

    def __len__(self) -> int:
        if self.inputs is not None:
            return len(self.inputs)
        return len(cast(Sized, self.dataset))

    @property
    def fixed_batches(self) -> str | None:
        """Why the batch size cannot change (a loader with its own batch sampler), else None."""
        if self.loader is not None and self.loader.batch_size is None:
            return f"the {self.name} DataLoader has its own batch sampler"
        return None

    def n_batches(self, batch_size: int) -> int:
        if self.loader is not None and batch_size == self.loader.batch_size:
            return len(self.loader)
        return -(-len(self) // batch_size)

    def batches(
        self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) batches; labels as int64 class indices."""
        if self.inputs is not None and self.labels is not None:
            n = len(self.inputs)
            order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
            for idx in order.split(batch_size):
                yield self.inputs[idx], self.labels[idx]
            return
        loader = self.loader
        if loader is None or (loader.batch_size is not None and batch_size != loader.batch_size):
            collate = loader.collate_fn if loader is not None else None
            loader = DataLoader(
                cast(Dataset, self.dataset),
                batch_size=batch_size,
                shuffle=shuffle,
                generator=generator,
                collate_fn=collate,
            )
        for i, item in enumerate(loader):
            if not isinstance(item, (tuple, list)) or len(item) < 2 or not isinstance(item[0], torch.Tensor):
                raise TypeError(
                    f"{self.name} must yield (inputs, labels) pairs of tensors, got {type(item).__name__} in batch {i}"
                )
            inputs = item[0].float() if item[0].dtype == torch.float64 else item[0]
            yield inputs, _as_labels(torch.as_tensor(item[1]), f"{self.name} labels")

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(EVAL_BATCH, shuffle=False)

    def all_labels(self) -> torch.Tensor:
        """Every label in sample order (read once from a Dataset)."""
        if self.labels is None:
            self.labels = torch.cat([y for _, y in self.eval_batches()])
        return self.labels

    def first_inputs(self, n: int = 8) -> torch.Tensor:
        """A few inputs (to trace the model and check a repaired one runs)."""
        if self.inputs is not None:
            return self.inputs[:n]
        return next(iter(self.batches(n, shuffle=False)))[0]

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor, int, int, float]:
        """Per-feature mean and std over the finite values, the number of samples, how many hold
        NaN or Inf, and the root-mean-square of the finite values."""
        total = total_sq = count = None
        n = bad = 0
        for x, _ in self.eval_batches():
            x = x.double()
            finite = torch.isfinite(x)
            bad += int((~finite.flatten(1).all(1)).sum()) if x.dim() > 1 else int((~finite).sum())
            n += len(x)
            clean = torch.where(finite, x, torch.zeros_like(x))
            s, sq, c = clean.sum(0), (clean**2).sum(0), finite.sum(0).double()
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            count = c if count is None else count + c
        assert total is not None and total_sq is not None and count is not None
        count = count.clamp_min(1)
        mean = total / count
        std = (total_sq / count - mean**2).clamp_min(0).sqrt()
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant features stay at 0
        rms = float((total_sq.sum() / count.sum()).sqrt())
        return mean.float(), std.float(), n, bad, rms
