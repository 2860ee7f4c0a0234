"""Record a training run: representations, predictions and head weights of every epoch."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import head as head_module
from ._io import TMP_PREFIX, fsync_dir, fsync_file, json_bytes, publish_dir, save_array, write_durably, write_json
from ._validation import check_choice, check_int
from .inputs import make_split
from .run import EPOCHS_DIR, FORMAT, LABELS_FILE, RUN_FILE, THUMBNAILS_DIR, epoch_dirname

FLOAT16_MAX = float(np.finfo(np.float16).max)


class NonFiniteWarning(UserWarning):
    """A captured epoch holds NaN or Inf representations or probabilities."""


def _jsonable(value: Any, name: str) -> Any:
    """Round-trip through JSON, turning numpy scalars and arrays into plain values."""

    def default(obj: Any) -> Any:
        if isinstance(obj, (np.ndarray, np.generic)):
            return obj.tolist()
        if isinstance(obj, torch.Tensor):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(value, default=default, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be JSON-serialisable (numbers, strings, lists, dicts): {err}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _RowWriter:
    """Rows of one epoch streamed batch by batch into a .npy file, so a capture never holds
    the epoch in memory. ``compact`` stores float16, widened to float32 if a value does not fit."""

    def __init__(self, path: Path, n_rows: int, compact: bool):
        self.path, self.n_rows, self.compact = path, n_rows, compact
        self.array: np.memmap | None = None
        self.filled = 0
        self.nonfinite = 0

    def write(self, rows: np.ndarray) -> None:
        if self.array is None:
            dtype = np.float16 if self.compact else np.float32
            self.array = np.lib.format.open_memmap(
                self.path, mode="w+", dtype=dtype, shape=(self.n_rows, rows.shape[1])
            )
        array = self.array
        if rows.shape[1] != array.shape[1]:
            raise RuntimeError(
                f"{self.path.stem} changed width within one epoch ({array.shape[1]} then {rows.shape[1]})"
            )
        finite = np.isfinite(rows)
        self.nonfinite += int((~finite).any(axis=1).sum())
        if array.dtype == np.float16 and finite.any() and float(np.abs(rows[finite]).max()) > FLOAT16_MAX:
            array = self._widen(array)
        array[self.filled : self.filled + len(rows)] = rows
        self.filled += len(rows)

    def _widen(self, narrow: np.memmap) -> np.memmap:
        wide_path = self.path.with_name(f"{TMP_PREFIX}wide-{self.path.name}")
        wide = np.lib.format.open_memmap(wide_path, mode="w+", dtype=np.float32, shape=narrow.shape)
        wide[: self.filled] = narrow[: self.filled]
        os.replace(wide_path, self.path)  # the narrow map keeps its file, unnamed now, until released
        self.array = wide
        return wide

    def close(self) -> None:
        if self.array is not None:
            self.array.flush()
            self.array = None
        fsync_file(self.path)


def _checked_probabilities(output: Any, batch: int, kind: str) -> np.ndarray:
    """(batch, n_classes) probabilities from the model's output, once checked to hold one row per sample."""
    if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != batch:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise RuntimeError(f"the model must return one row of scores per sample, shape (batch, n_classes), got {shape}")
    return head_module.probabilities(output, kind).cpu().numpy()


class Recorder:
    """Record a PyTorch classifier's training, one epoch at a time, into a run directory.

    The representation of a sample is the input of ``head``, the module that maps
    representations to logits; a forward pre-hook reads it, so the model is not changed.
    The model runs once on a couple of samples when the Recorder is created, so a wrong
    ``head``, output shape or label range fails before training starts.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; for a batch it returns (batch, n_classes) scores, or (batch, 1)
        for a binary classifier.
    head : torch.nn.Module
        A submodule of ``model`` that maps representations to logits, e.g. ``model.fc``.
    path : str or Path
        The run directory to create. See :mod:`nbdebug.run` for its format.
    train, test : (inputs, labels) or Dataset
        Samples to track with the labels the model sees (noisy labels included).
        Inputs and labels may be tensors or numpy arrays; a Dataset yields (input, label)
        and should apply the evaluation transform (no random augmentation).
    unlabeled : inputs or Dataset, optional
        Samples without labels, e.g. a pool for active learning.
    classes : list of str, optional
        Class names; default "0", "1", ...
    thumbnails : dict of split name -> uint8 array, optional
        Small images shown for samples, one per sample of that split: (n, h, w) or (n, h, w, 3|4).
    metadata : dict, optional
        Anything JSON-serialisable to keep with the run (e.g. the clean labels).
    output : "logits", "probabilities" or "log_probabilities"
        What the model returns: raw scores (softmax, or sigmoid for one unit, is applied),
        or already probabilities (a model ending in Softmax or Sigmoid), or log-probabilities.
    batch_size : int
        Samples per forward pass when capturing.
    overwrite : bool
        Replace an existing run at ``path`` instead of refusing.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        head: nn.Module,
        path: str | Path,
        train: Any,
        test: Any = None,
        unlabeled: Any = None,
        classes: list[str] | None = None,
        thumbnails: dict[str, np.ndarray] | None = None,
        metadata: dict[str, Any] | None = None,
        output: str = "logits",
        batch_size: int = 512,
        overwrite: bool = False,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(head, nn.Module):
            raise TypeError(
                f"head must be the torch.nn.Module inside model that maps representations "
                f"to logits (e.g. head=model.fc), got {type(head).__name__}"
            )
        head_path = next((name for name, module in model.named_modules() if module is head), None)
        if head_path is None:
            raise ValueError(
                "head is not a submodule of model; pass the layer of this model that maps "
                "representations to logits, e.g. head=model.fc"
            )
        check_choice("output", output, head_module.OUTPUTS)
        check_int("batch_size", batch_size, 1)
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path must be a str or pathlib.Path, got {type(path).__name__}")

        splits = [make_split("train", train, labelled=True)]
        if test is not None:
            splits.append(make_split("test", test, labelled=True))
        if unlabeled is not None:
            splits.append(make_split("unlabeled", unlabeled, labelled=False))
        labels = np.concatenate([s.labels for s in splits])

        if classes is not None:
            classes = [str(c) for c in classes]
            if len(classes) < 2:
                raise ValueError(f"classes must name at least two classes, got {classes}")
            if labels.max(initial=-1) >= len(classes):
                raise ValueError(
                    f"labels go up to {labels.max()} but classes names only {len(classes)} "
                    "classes; pass one name per class"
                )

        metadata = _jsonable(metadata if metadata is not None else {}, "metadata")
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        thumbs = self._check_thumbnails(thumbnails, {s.name: len(s.labels) for s in splits})

        self.model = model
        self.head = head
        self.path = Path(path)
        self.output = output
        self.batch_size = batch_size
        self._splits = splits
        self._labels = labels
        self._epochs: list[int] = []

        # A trial forward pass on two samples: fails now, not after the first epoch of training.
        self.n_outputs = next(self._forward(limit=2, raw=True)).shape[1]
        n_classes = self._check_classes(classes)
        if classes is None:
            classes = [str(i) for i in range(n_classes)]

        self._prepare_directory(overwrite)
        start = 0
        split_info = []
        for s in splits:
            split_info.append({"name": s.name, "start": start, "stop": start + len(s.labels)})
            start += len(s.labels)
        self._info = {
            "format": FORMAT,
            "n_samples": len(labels),
            "n_classes": n_classes,
            "classes": classes,
            "splits": split_info,
            "head": {"path": head_path, "type": type(head).__name__, "spec": head_module.describe(head)},
            "metadata": metadata,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        # run.json comes last: until it is there, the directory is not a run.
        write_durably(self.path / LABELS_FILE, partial(save_array, array=labels))
        for name, images in thumbs.items():
            (self.path / THUMBNAILS_DIR).mkdir(exist_ok=True)
            write_durably(self.path / THUMBNAILS_DIR / f"{name}.npy", partial(save_array, array=images))
        write_json(self.path / RUN_FILE, self._info, durable=True)

    def _check_classes(self, classes: list[str] | None) -> int:
        n_classes = head_module.n_classes_of(self.n_outputs)
        top = int(self._labels.max(initial=-1))
        if top >= n_classes:
            raise ValueError(
                f"labels go up to {top} but the model outputs {n_classes} classes; "
                "labels must be class indices 0..n_classes-1"
            )
        if classes is not None and len(classes) != n_classes:
            raise ValueError(f"classes names {len(classes)} classes but the model outputs {n_classes}")
        last = list(self.model.modules())[-1]
        if self.output == "logits" and isinstance(last, (nn.Softmax, nn.Sigmoid, nn.LogSoftmax)):
            kind = "log_probabilities" if isinstance(last, nn.LogSoftmax) else "probabilities"
            warnings.warn(
                f"the model ends with nn.{type(last).__name__}, so its outputs are not logits; "
                f"pass output={kind!r} to Recorder, or the recorded probabilities will be wrong",
                stacklevel=3,
            )
        return n_classes

    @staticmethod
    def _check_thumbnails(thumbnails: Any, sizes: dict[str, int]) -> dict[str, np.ndarray]:
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

    def _prepare_directory(self, overwrite: bool) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"path {str(path)!r} is a file; choose a directory for the run")
        if path.is_dir() and any(path.iterdir()):
            if not (path / RUN_FILE).exists():
                raise FileExistsError(
                    f"path {str(path)!r} is a non-empty directory that is not an nbdebug run; "
                    "choose a new or empty directory"
                )
            if not overwrite:
                raise FileExistsError(
                    f"path {str(path)!r} already holds a run; pass overwrite=True to replace it or choose another path"
                )
            shutil.rmtree(path)
        (path / EPOCHS_DIR).mkdir(parents=True, exist_ok=True)

    @property
    def epochs(self) -> list[int]:
        """The epochs captured so far."""
        return list(self._epochs)

    def capture(self, epoch: int, metrics: dict[str, float] | None = None) -> None:
        """Run the model on every tracked sample and store this epoch atomically.

        The model runs in eval mode under ``torch.no_grad()``; every submodule gets its
        previous mode back. ``metrics`` (e.g. ``{"train_acc": 0.93}``) are stored with the
        epoch. NaN or Inf in the representations are stored as they are and reported with
        a :class:`NonFiniteWarning`.
        """
        epoch = int(check_int("epoch", epoch, 0))
        final = self.path / EPOCHS_DIR / epoch_dirname(epoch)
        if epoch in self._epochs or final.exists():
            raise ValueError(
                f"epoch {epoch} was already captured; capture each epoch once, "
                "e.g. rec.capture(epoch) at the end of each epoch"
            )
        if self._epochs and epoch < self._epochs[-1]:
            raise ValueError(
                f"epoch {epoch} comes before the last captured epoch {self._epochs[-1]}; "
                "capture epochs in increasing order"
            )
        checked = self._check_metrics(metrics)

        started = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{epoch_dirname(epoch)}-", dir=self.path / EPOCHS_DIR))
        try:
            n = len(self._labels)
            reps = _RowWriter(tmp / "representations.npy", n, compact=True)
            probs = _RowWriter(tmp / "probabilities.npy", n, compact=False)
            for batch_reps, batch_probs in self._forward():
                if batch_probs.shape[1] != self._info["n_classes"]:
                    raise RuntimeError(
                        f"the model now outputs {batch_probs.shape[1]} classes; the run has {self._info['n_classes']}"
                    )
                reps.write(batch_reps)
                probs.write(batch_probs)
            reps.close()
            probs.close()
            state = {name: t.detach().cpu().float().numpy() for name, t in self.head.state_dict().items()}
            write_durably(tmp / "head.npz", lambda f: np.savez(f, **state))
            nonfinite = {"representations": reps.nonfinite, "probabilities": probs.nonfinite}
            info = {
                "epoch": epoch,
                "metrics": checked,
                "nonfinite": nonfinite,
                "seconds": round(time.perf_counter() - started, 4),
                "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            write_durably(tmp / "epoch.json", lambda f: f.write(json_bytes(info)))
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; a run is shared like its files
            fsync_dir(tmp)
            publish_dir(tmp, final, replace=False)  # the epoch appears whole or not at all
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._epochs.append(epoch)
        fsync_dir(final.parent)  # make the rename itself durable
        if nonfinite["representations"] or nonfinite["probabilities"]:
            warnings.warn(
                f"epoch {epoch}: {nonfinite['representations']} samples have NaN or Inf representations and "
                f"{nonfinite['probabilities']} have NaN or Inf predictions. They were stored as they are. "
                "Training has probably diverged: try a lower learning rate or gradient clipping.",
                NonFiniteWarning,
                stacklevel=2,
            )

    @staticmethod
    def _check_metrics(metrics: Any) -> dict[str, float | None]:
        if metrics is None:
            return {}
        if not isinstance(metrics, dict):
            raise TypeError(f"metrics must be a dict of name -> number, got {type(metrics).__name__}")
        checked = {}
        for name, value in metrics.items():
            if not isinstance(name, str):
                raise TypeError(f"metrics names must be strings, got {name!r}")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"metrics[{name!r}] must be a number, got {type(value).__name__}") from None
            checked[name] = number if math.isfinite(number) else None
        return checked

    def _forward(self, limit: int | None = None, raw: bool = False) -> Iterator[Any]:
        """(representations, probabilities) per batch over every split, model in eval mode.

        ``limit`` runs only the first samples of the first split; ``raw`` yields the
        model's outputs as they are, once checked (the trial pass).
        """
        captured: list[torch.Tensor] = []

        def grab(_module: nn.Module, inputs: tuple) -> None:
            captured.append(inputs[0].detach())

        params = [p for p in self.model.parameters() if p.is_floating_point()]
        device = params[0].device if params else torch.device("cpu")
        dtype = params[0].dtype if params else torch.float32
        modes = {module: module.training for module in self.model.modules()}
        hook = self.head.register_forward_pre_hook(grab)
        try:
            self.model.eval()
            with torch.no_grad():
                for split in self._splits[:1] if limit else self._splits:
                    for batch in split.batches(self.batch_size, limit):
                        batch = batch.to(device, dtype) if batch.is_floating_point() else batch.to(device)
                        captured.clear()
                        output = self.model(batch)
                        reps = self._representation(captured, len(batch))
                        probs = _checked_probabilities(output, len(batch), self.output)
                        yield output if raw else (reps, probs)
        finally:
            hook.remove()
            for module, training in modes.items():
                module.training = training

    @staticmethod
    def _representation(captured: list[torch.Tensor], batch: int) -> np.ndarray:
        if len(captured) != 1:
            raise RuntimeError(
                "head was called "
                + ("never" if not captured else f"{len(captured)} times")
                + " in one forward pass; head must be the module called once per forward that maps "
                "representations to logits"
            )
        rep = captured[0]
        if rep.shape[0] != batch:
            raise RuntimeError(
                f"head's input has {rep.shape[0]} rows for a batch of {batch}; "
                "head must see one representation per sample"
            )
        return rep.reshape(batch, -1).float().cpu().numpy()

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, {self._info['n_samples']} samples, epochs captured: {self._epochs})"
