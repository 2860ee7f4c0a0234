"""The run directory: what :class:`nbdebug.Recorder` writes and :func:`load_run` reads.

This docstring is the one description of the on-disk format (version 1)::

    <run>/
      run.json                  written once, when the Recorder is created
      labels.npy                int64 (n,): the label the model was trained with, -1 where none
      thumbnails/<split>.npy    optional uint8 images of one split, (n_split, h, w) or (n_split, h, w, c)
      epochs/
        000007/                 one directory per captured epoch, named by its number
          representations.npy   float16 (n, d): the input of the head, flattened per sample
                                (float32 when a value does not fit in float16)
          probabilities.npy     float32 (n, c): softmax of the model's output
                                (for a single output unit: [1 - sigmoid, sigmoid])
          head.npz              the head's state dict at this epoch, float32
          epoch.json            {"epoch", "metrics", "nonfinite": {...}, "seconds", "written"}
      epochs/.tmp-*             an epoch being written; readers ignore it
      feedback.jsonl            the user's accept / reject answers, appended as given
                                (written by Session; format in nbdebug.interest.feedback)
      warnings.jsonl            the training monitor's warnings, appended as reported when a
                                Monitor is linked with the Recorder; shown on the landscape's
                                timeline (format in nbdebug.monitor.journal)
      attributes-<mode>.npz     Session's per-sample attributes for mode "default" or "paper", a
                                cache: "scores" float32 (n, n_attributes), "names" str
                                (n_attributes,), "key" a JSON string of what they were computed
                                from (ATTRIBUTES_VERSION, mode, epochs, n_clusters, threshold, seed,
                                the run's fingerprint, hashes of labels.npy and of the embedding);
                                recomputed when the key differs; .tmp-attributes-* while written
      visualizer/               the fitted time-travelling visualizer, a cache written whole and
                                swapped in (format in nbdebug.landscape.cache); .tmp-visualizer-* while written

``run.json`` holds ``format``, ``n_samples``, ``n_classes``, ``classes``,
``splits`` (a list of ``{"name", "start", "stop"}``; samples are ordered
train, test, unlabeled), ``head`` (``{"path", "type", "spec"}``; spec is null
for a custom head), ``metadata`` and ``created``.

Crash safety: an epoch is written into ``epochs/.tmp-*``, every file is
flushed to disk, then the directory is renamed to its final name, which is
atomic on POSIX. A crash or Ctrl-C at any moment leaves every finished epoch
readable and no half-written epoch visible.

Safety: arrays are read with ``allow_pickle=False`` and everything else is
JSON, so opening a run from an untrusted source cannot execute code.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import head as head_module
from ._validation import check_choice

FORMAT = 1
RUN_FILE = "run.json"
LABELS_FILE = "labels.npy"
THUMBNAILS_DIR = "thumbnails"
EPOCHS_DIR = "epochs"
EPOCH_FILES = ("representations.npy", "probabilities.npy", "head.npz", "epoch.json")


class RunFormatError(ValueError):
    """A run directory is missing, incomplete or inconsistent."""


def epoch_dirname(epoch: int) -> str:
    return f"{epoch:06d}"


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        raise RunFormatError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFormatError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise RunFormatError(f"{path} should hold a JSON object")
    return value


def open_array(path: Path) -> np.ndarray:
    """Memory-map a .npy file without reading its data; never unpickles."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise RunFormatError(f"{path} is missing") from None
    except ValueError as err:
        raise RunFormatError(f"{path} is not a readable .npy array ({err})") from None


class Run:
    """A recorded training run, read lazily from its directory. Use :func:`load_run`."""

    def __init__(self, path: Path, info: dict[str, Any], labels: np.ndarray, epochs: list[int], dim: int):
        self.path = path
        self.info = info
        self.labels = labels
        self.epochs = epochs
        self.dim = dim

    def __repr__(self) -> str:
        first_last = f"{self.epochs[0]}..{self.epochs[-1]}" if self.epochs else "none"
        return (
            f"Run({str(self.path)!r}: {self.n_samples} samples, {self.n_classes} classes, "
            f"{len(self.epochs)} epochs ({first_last}), representation dim {self.dim})"
        )

    @property
    def n_samples(self) -> int:
        return int(self.info["n_samples"])

    @property
    def n_classes(self) -> int:
        return int(self.info["n_classes"])

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])

    @property
    def metadata(self) -> dict[str, Any]:
        return self.info["metadata"]

    @property
    def splits(self) -> dict[str, slice]:
        """Split name -> slice of sample indices, in sample order."""
        return {s["name"]: slice(s["start"], s["stop"]) for s in self.info["splits"]}

    @cached_property
    def split(self) -> np.ndarray:
        """Split name of every sample: 'train', 'test' or 'unlabeled'."""
        names = np.empty(self.n_samples, dtype="<U9")
        for name, where in self.splits.items():
            names[where] = name
        return names

    def indices(self, split: str) -> np.ndarray:
        """Sample indices of one split."""
        where = self.splits[check_choice("split", split, sorted(self.splits))]
        return np.arange(where.start, where.stop)

    def _epoch_path(self, epoch: int) -> Path:
        if epoch not in self.epochs:
            raise ValueError(f"epoch {epoch!r} was not captured; captured epochs are {self.epochs}")
        return self.path / EPOCHS_DIR / epoch_dirname(epoch)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the recorded data: sizes, creation time and a hash of every epoch's
        epoch.json plus its file sizes. A re-recorded or extended run changes it (the caches
        computed from a run keep it in their keys)."""
        epochs = {}
        for epoch in self.epochs:
            folder = self._epoch_path(epoch)
            digest = hashlib.sha256((folder / "epoch.json").read_bytes())
            for name in ("representations.npy", "probabilities.npy", "head.npz"):
                digest.update(f"{name}:{(folder / name).stat().st_size};".encode())
            epochs[str(epoch)] = digest.hexdigest()[:16]
        return {
            "n_samples": self.n_samples,
            "dim": self.dim,
            "n_classes": self.n_classes,
            "created": self.info.get("created"),
            "epochs": epochs,
        }

    def representations(self, epoch: int) -> np.ndarray:
        """(n_samples, dim) representations at ``epoch``, memory-mapped (float16 on disk)."""
        return open_array(self._epoch_path(epoch) / "representations.npy")

    def probabilities(self, epoch: int) -> np.ndarray:
        """(n_samples, n_classes) predicted probabilities at ``epoch``, memory-mapped."""
        return open_array(self._epoch_path(epoch) / "probabilities.npy")

    def epoch_info(self, epoch: int) -> dict[str, Any]:
        """What was stored with the epoch: metrics, non-finite counts, capture time."""
        return read_json(self._epoch_path(epoch) / "epoch.json")

    def metrics(self, epoch: int) -> dict[str, float]:
        """The metrics passed to ``capture`` for ``epoch``."""
        return self.epoch_info(epoch).get("metrics", {})

    def head_state(self, epoch: int) -> dict[str, torch.Tensor]:
        """The head's state dict at ``epoch``."""
        path = self._epoch_path(epoch) / "head.npz"
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return {name: torch.from_numpy(arrays[name].copy()) for name in arrays.files}
        except FileNotFoundError:
            raise RunFormatError(f"{path} is missing") from None
        except (ValueError, OSError, zipfile.BadZipFile) as err:
            raise RunFormatError(f"{path} is not a readable .npz of arrays ({err})") from None

    def head(self, epoch: int, module: nn.Module | None = None) -> nn.Module:
        """The head as it was at ``epoch``, in eval mode on the CPU.

        Heads made of common layers are rebuilt from the recorded description; for a
        custom head pass ``module``, an instance of its class, whose copy gets the weights.
        """
        spec = self.info["head"]["spec"]
        return head_module.rebuild(spec, self.head_state(epoch), module, what=f"the head ({self.info['head']['type']})")

    def thumbnails(self, split: str) -> np.ndarray | None:
        """uint8 images of one split as recorded, or None if none were given."""
        check_choice("split", split, sorted(self.splits))
        path = self.path / THUMBNAILS_DIR / f"{split}.npy"
        if not path.exists():
            return None
        images = open_array(path)
        where = self.splits[split]
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) != where.stop - where.start:
            raise RunFormatError(
                f"{path} should hold {where.stop - where.start} uint8 images, got {images.dtype} {images.shape}"
            )
        return images


def _check_run_info(info: dict[str, Any], where: Path) -> None:
    required = ("format", "n_samples", "n_classes", "classes", "splits", "head", "metadata")
    missing = [key for key in required if key not in info]
    if missing:
        raise RunFormatError(f"{where} lacks the keys {missing}")
    if info["format"] != FORMAT:
        raise RunFormatError(f"{where} has format {info['format']!r}; this nbdebug reads format {FORMAT}")
    n, c, classes = info["n_samples"], info["n_classes"], info["classes"]
    if not (isinstance(n, int) and n > 0 and isinstance(c, int) and c >= 2):
        raise RunFormatError(f"{where}: n_samples and n_classes must be positive integers, got {n!r}, {c!r}")
    if not (isinstance(classes, list) and len(classes) == c and all(isinstance(x, str) for x in classes)):
        raise RunFormatError(f"{where}: classes must be {c} names, got {classes!r}")
    if not (isinstance(info["head"], dict) and isinstance(info["metadata"], dict)):
        raise RunFormatError(f"{where}: head and metadata must be JSON objects")
    stop = 0
    for split in info["splits"] if isinstance(info["splits"], list) else [None]:
        if not (
            isinstance(split, dict)
            and split.get("name") in ("train", "test", "unlabeled")
            and split.get("start") == stop
            and isinstance(split.get("stop"), int)
            and split["stop"] > stop
        ):
            raise RunFormatError(f"{where}: splits must cover the samples in order, got {info['splits']!r}")
        stop = split["stop"]
    if stop != n:
        raise RunFormatError(f"{where}: splits cover {stop} samples but n_samples is {n}")


def load_run(path: str | Path) -> Run:
    """Open a run directory written by :class:`nbdebug.Recorder`, lazily and read-only.

    Checks that every captured epoch is complete and agrees in shape with the others
    and that the labels are in range; raises :class:`RunFormatError` naming the file
    at fault otherwise.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or pathlib.Path naming a run directory, got {type(path).__name__}")
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {str(path)!r} does not exist; record one with nbdebug.Recorder")
    if not (path / RUN_FILE).exists():
        raise RunFormatError(f"{path} is not an nbdebug run: {RUN_FILE} is missing")
    info = read_json(path / RUN_FILE)
    _check_run_info(info, path / RUN_FILE)

    epochs_dir = path / EPOCHS_DIR
    names = [p.name for p in epochs_dir.iterdir()] if epochs_dir.is_dir() else []
    epochs = sorted(int(name) for name in names if name.isdigit())
    if not epochs:
        raise RunFormatError(f"{path} has no captured epochs yet; call Recorder.capture(epoch) after each epoch")
    n, c = info["n_samples"], info["n_classes"]
    labels = np.asarray(open_array(path / LABELS_FILE))
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise RunFormatError(f"{path / LABELS_FILE} should hold {n} integers, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < -1 or labels.max() >= c):
        raise RunFormatError(f"{path / LABELS_FILE} has labels outside -1..{c - 1}")

    dim = None
    for epoch in epochs:
        folder = epochs_dir / epoch_dirname(epoch)
        for name in EPOCH_FILES:
            if not (folder / name).exists():
                raise RunFormatError(f"{folder / name} is missing: epoch {epoch} is incomplete")
        reps = open_array(folder / "representations.npy")
        probs = open_array(folder / "probabilities.npy")
        if reps.ndim != 2 or reps.shape[0] != n or (dim is not None and reps.shape[1] != dim):
            expected = f"({n}, {dim})" if dim is not None else f"({n}, dim)"
            raise RunFormatError(f"{folder / 'representations.npy'} has shape {reps.shape}, expected {expected}")
        if probs.shape != (n, c):
            raise RunFormatError(f"{folder / 'probabilities.npy'} has shape {probs.shape}, expected {(n, c)}")
        dim = reps.shape[1]
    assert dim is not None  # set by the first of the epochs, of which there is at least one
    return Run(path, info, labels, epochs, dim)
