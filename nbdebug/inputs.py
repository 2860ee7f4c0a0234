"""What a Recorder tracks: each split's inputs and labels, checked when given, batched in
sample order when captured, and how a batch is passed to the model and its logits read back.

A split comes as ``(inputs, labels)`` (``train``, ``test``), as inputs alone (``unlabeled``),
or as a map-style ``Dataset``. Inputs are a tensor or numpy array, a mapping of them
(``{"input_ids": ..., "attention_mask": ...}``, passed as ``model(**batch)``) or a tuple of
them (a multi-input model, passed as ``model(*batch)``). A Dataset yields ``(input, label)``
pairs, whose input may be a mapping or a tuple too, or mappings that hold the label under
``"labels"`` or ``"label"`` (the Hugging Face ``datasets`` convention); labels are read from
``.targets`` or a ``label`` column when the Dataset has one, without loading every item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sized
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset, default_collate

LABEL_KEYS = ("labels", "label")

# What one batch is: a tensor, a mapping of tensors or a tuple of tensors.
Batch = Any


@dataclass
class Split:
    """One tracked split: its inputs (tensors or a Dataset) and labels (-1 where none)."""

    name: str
    inputs: Any
    labels: np.ndarray

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
        """The inputs of samples ``start`` to ``stop`` (default all) in order, ``batch_size`` at a time."""
        stop = len(self.labels) if stop is None else min(stop, len(self.labels))
        if start >= stop:
            return
        if not _is_dataset(self.inputs):
            for first in range(start, stop, batch_size):
                yield _take(self.inputs, first, min(first + batch_size, stop))
            return
        whole = start == 0 and stop == len(self.labels)
        subset = self.inputs if whole else Subset(self.inputs, range(start, stop))
        collate = partial(collate_inputs, name=self.name)
        yield from DataLoader(subset, batch_size=batch_size, shuffle=False, collate_fn=collate)


def _item_input(item: Any) -> Any:
    """The model's input in one Dataset item: the mapping without its label, or the first of a pair."""
    if isinstance(item, Mapping):
        return {k: v for k, v in item.items() if k not in LABEL_KEYS}
    if isinstance(item, (tuple, list)):
        return item[0]
    return item


def collate_inputs(items: list, name: str) -> Batch:
    """Stack the inputs of Dataset items into one batch, per key of a mapping or per position
    of a tuple; text (str) values of a mapping are dropped, as the model cannot take them."""
    inputs = [_item_input(item) for item in items]
    try:
        batch = default_collate(inputs)
    except (RuntimeError, TypeError) as err:
        raise TypeError(
            f"the items of {name} could not be stacked into one batch ({err}); each item must be "
            "(input, label) or a mapping of tensors of the same shape in every item (pad token ids "
            "to one length, e.g. tokenizer(..., padding='max_length'))"
        ) from None
    if isinstance(batch, Mapping):
        return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    if isinstance(batch, list):
        return tuple(batch)
    return batch


def _take(inputs: Any, start: int, stop: int) -> Batch:
    if isinstance(inputs, dict):
        return {k: v[start:stop] for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(v[start:stop] for v in inputs)
    return inputs[start:stop]


def to_device(batch: Batch, device: torch.device, dtype: torch.dtype) -> Batch:
    """The batch on ``device``, floating-point tensors in the model's ``dtype``."""
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, dtype) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return tuple(to_device(v, device, dtype) for v in batch)
    if isinstance(batch, torch.Tensor):
        return batch.to(device, dtype) if batch.is_floating_point() else batch.to(device)
    return batch


def batch_size_of(batch: Batch) -> int:
    """Samples in a batch."""
    if isinstance(batch, Mapping):
        return len(next(iter(batch.values())))
    if isinstance(batch, tuple):
        return len(batch[0])
    return len(batch)


def describe_batch(batch: Batch) -> str:
    """The shapes of a batch, for messages: ``(2, 6)``, ``{'input_ids': (2, 8), ...}``."""
    if isinstance(batch, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe_batch(v)}" for k, v in batch.items()) + "}"
    if isinstance(batch, tuple):
        return "(" + ", ".join(describe_batch(v) for v in batch) + ")"
    if isinstance(batch, torch.Tensor):
        return str(tuple(batch.shape))
    return type(batch).__name__


def call_model(model: torch.nn.Module, batch: Batch, forward: Callable[..., Any] | None) -> Any:
    """Run the model on a batch: ``forward(model, batch)`` if given, else ``model(**batch)``
    for a mapping, ``model(*batch)`` for a tuple, ``model(batch)`` for a tensor."""
    if forward is not None:
        return forward(model, batch)
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, tuple):
        return model(*batch)
    return model(batch)


def logits_of(output: Any) -> Any:
    """The scores in a model's output: a tensor as it is, the ``.logits`` of an object that has
    them (a Hugging Face ``ModelOutput``) or the ``"logits"`` of a mapping, the first element of
    a tuple or list; anything else is returned unchanged (and refused by the caller)."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return output


def _is_dataset(value: Any) -> bool:
    """A map-style dataset: a torch Dataset, or anything indexable with a length that is not
    itself a batch of inputs (a Hugging Face ``datasets.Dataset``)."""
    if isinstance(value, Dataset):
        return True
    if isinstance(value, (torch.Tensor, np.ndarray, Mapping, tuple, list, str, bytes)):
        return False
    return hasattr(value, "__getitem__") and hasattr(value, "__len__") and hasattr(value, "column_names")


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name} is a numpy array of Python objects; convert it to a numeric array")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(
        f"{name} must be a torch.Tensor, a numpy array, a mapping or tuple of them, or a torch Dataset, "
        f"got {type(x).__name__}"
    )


def _as_inputs(x: Any, name: str) -> Any:
    """Tensor inputs: one tensor, a dict of tensors or a tuple of tensors, each one row per sample."""
    if isinstance(x, Mapping):
        if not x:
            raise ValueError(f"{name} is an empty mapping; pass e.g. {{'input_ids': ids, 'attention_mask': mask}}")
        inputs: Any = {str(k): _as_tensor(v, f"{name}[{k!r}]") for k, v in x.items()}
        parts = inputs
    elif isinstance(x, (tuple, list)) and x and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in x):
        inputs = tuple(_as_tensor(v, f"{name}[{i}]") for i, v in enumerate(x))
        parts = {f"[{i}]": v for i, v in enumerate(inputs)}
    else:
        inputs = _as_tensor(x, name)
        parts = {"": inputs}
    sizes = {}
    for key, value in parts.items():
        if value.ndim == 0:
            raise ValueError(f"{name}{key} must have one row per sample, got a scalar")
        sizes[key] = len(value)
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the parts of {name} have different numbers of rows {sizes}; pass one row per sample in each")
    return inputs


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
    if isinstance(value, DataLoader):
        raise TypeError(
            f"{name} is a DataLoader; pass the Dataset it loads from, {name}=loader.dataset "
            "(nbdebug batches the samples itself, in order, so shuffling and augmentation do not change them)"
        )
    split = _split_unchecked(name, value, labelled)
    if len(split.labels) == 0:
        raise ValueError(f"{name} has no samples; pass at least one or leave {name} out")
    return split


def _dataset_labels(name: str, value: Any, n: int) -> np.ndarray:
    targets = getattr(value, "targets", None)  # torchvision datasets: no need to load every image
    if targets is not None and len(targets) == n:
        return _as_labels(np.asarray(targets), n, f"{name}.targets")
    for key in LABEL_KEYS:  # a Hugging Face datasets.Dataset reads one column at once
        if key in (getattr(value, "column_names", None) or ()):
            column = value[key]
            column = column.numpy() if isinstance(column, torch.Tensor) else np.asarray(column)
            return _as_labels(column, n, f"{name}[{key!r}]")
    labels = []
    for i in range(n):
        item = value[i]
        if isinstance(item, Mapping):
            found = next((k for k in LABEL_KEYS if k in item), None)
            if found is None:
                raise ValueError(
                    f"{name}[{i}] is a mapping without a 'labels' or 'label' key (it has {sorted(item)}); "
                    "add the label under 'labels', or make the items (inputs, label) pairs"
                )
            labels.append(int(item[found]))
        elif isinstance(item, (tuple, list)) and len(item) >= 2:
            labels.append(int(item[1]))
        else:
            raise ValueError(
                f"{name}[{i}] should be an (input, label) pair or a mapping with a 'labels' key, "
                f"got {type(item).__name__}"
            )
    return _as_labels(np.asarray(labels, dtype=np.int64), n, f"{name} labels")


def _split_unchecked(name: str, value: Any, labelled: bool) -> Split:
    if type(value) is TensorDataset and len(value.tensors) in (1, 2):
        # its items are rows of its tensors (a subclass may transform them): sliced, not read one by one
        if labelled and len(value.tensors) == 2:
            value = (value.tensors[0], value.tensors[1])
        elif not labelled:
            value = value.tensors[0]
    if _is_dataset(value):
        try:
            n = len(cast(Sized, value))
        except TypeError:
            raise TypeError(f"{name} is a Dataset without a length; nbdebug needs map-style datasets") from None
        if not labelled:
            return Split(name, value, np.full(n, -1, dtype=np.int64))
        return Split(name, value, _dataset_labels(name, value, n))
    if labelled:
        if isinstance(value, Mapping) and any(k in value for k in LABEL_KEYS):
            key = next(k for k in LABEL_KEYS if k in value)
            inputs = _as_inputs({k: v for k, v in value.items() if k not in LABEL_KEYS}, name)
            return Split(name, inputs, _as_labels(value[key], batch_size_of(inputs), f"{name}[{key!r}]"))
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(
                f"{name} must be an (inputs, labels) pair, a mapping of tensors with a 'labels' key, "
                "or a Dataset of (input, label) pairs or of mappings with a 'labels' key"
            )
        inputs = _as_inputs(value[0], f"{name}[0]")
        return Split(name, inputs, _as_labels(value[1], batch_size_of(inputs), f"{name}[1]"))
    inputs = _as_inputs(value, name)
    return Split(name, inputs, np.full(batch_size_of(inputs), -1, dtype=np.int64))


def check_thumbnails(thumbnails: Any, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """The thumbnails checked: uint8 (n, h, w) or (n, h, w, 1|3|4) images, one per sample of their split."""
    if thumbnails is None:
        return {}
    if not isinstance(thumbnails, dict):
        raise TypeError("thumbnails must be a dict of split name -> uint8 images, e.g. {'train': images}")
    checked = {}
    for name, images in thumbnails.items():
        if name not in sizes:
            raise ValueError(f"thumbnails has a split {name!r}; the recorded splits are {sorted(sizes)}")
        images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(
                f"thumbnails[{name!r}] must be uint8 (0-255), got {images.dtype}; "
                "scale and convert with (x * 255).astype(np.uint8)"
            )
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
            raise ValueError(f"thumbnails[{name!r}] must be (n, h, w) or (n, h, w, 3|4), got {images.shape}")
        if len(images) != sizes[name]:
            raise ValueError(f"thumbnails[{name!r}] has {len(images)} images for {sizes[name]} samples")
        checked[name] = np.ascontiguousarray(images)
    return checked
