"""Record a training run: representations, predictions and head weights of every epoch."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import distributed
from . import head as head_module
from ._io import TMP_PREFIX, fsync_dir, json_bytes, plain_json, publish_dir, save_array, write_durably, write_json
from ._io import RowWriter as _RowWriter
from ._validation import check_choice, check_int
from .inputs import batch_size_of, call_model, check_thumbnails, make_split, to_device
from .run import EPOCHS_DIR, FORMAT, LABELS_FILE, RUN_FILE, THUMBNAILS_DIR, epoch_dirname
from .trial import checked_logits, run_trial


class NonFiniteWarning(UserWarning):
    """A captured epoch holds NaN or Inf representations or probabilities."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Recorder:
    """Record a PyTorch classifier's training, one epoch at a time, into a run directory.

    The representation of a sample is the input of ``head``, the module that maps
    representations to logits; a forward pre-hook reads it, so the model is not changed.
    The model runs once on the first two training samples when the Recorder is created (the
    trial pass of :mod:`nbdebug.trial`), so a wrong ``head``, ``output``, input or label range
    fails before training starts.

    Under ``torch.distributed`` (see :mod:`nbdebug.distributed`) every rank creates the same
    Recorder and calls ``capture`` at the same points; each rank runs the model on its share
    of the samples and rank 0 writes the run.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; for a batch it returns (batch, n_classes) scores, or (batch, 1)
        for a binary classifier: a tensor, a tuple whose first element is that tensor, or an
        object with ``.logits`` (a Hugging Face ``ModelOutput``). It may be wrapped in
        ``DistributedDataParallel``; the module inside is run.
    head : torch.nn.Module
        A submodule of ``model`` (of ``model.module`` under DDP) that maps (batch, dim)
        representations to logits, e.g. ``model.fc``, ``model.classifier``.
    path : str or Path
        The run directory to create. See :mod:`nbdebug.run` for its format.
    train, test : (inputs, labels), mapping or Dataset
        Samples to track with the labels the model sees (noisy labels included).
        Inputs may be a tensor or numpy array, a mapping of them (passed as ``model(**batch)``)
        or a tuple of them (``model(*batch)``); a mapping may hold the labels under "labels".
        A Dataset yields (input, label) pairs or mappings with a "labels" or "label" key,
        and should apply the evaluation transform (no random augmentation).
        See :mod:`nbdebug.inputs`.
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
    forward : callable, optional
        ``forward(model, batch) -> logits`` for a model called some other way, or whose
        output holds its logits elsewhere; ``batch`` is a batch of inputs as described above.
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
        forward: Callable[[nn.Module, Any], Any] | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        model = distributed.unwrap(model)
        if forward is not None and not callable(forward):
            raise TypeError(f"forward must be a function forward(model, batch) -> logits, got {type(forward).__name__}")
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

        metadata = plain_json(metadata if metadata is not None else {}, "metadata")
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        thumbs = check_thumbnails(thumbnails, {s.name: len(s.labels) for s in splits})

        self.model = model
        self.head = head
        self.path = Path(path)
        self.output = output
        self.batch_size = batch_size
        self.forward = forward
        self._splits = splits
        self._labels = labels
        self._epochs: list[int] = []
        self._listeners: list[Callable[[int], None]] = []

        # A trial forward pass on two samples: fails now, not after the first epoch of training.
        trial = self._trial(head_path)
        self.n_outputs, self._dim = trial.n_outputs, trial.dim
        n_classes = self._check_classes(classes)
        if classes is None:
            classes = [str(i) for i in range(n_classes)]
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
        self._stamp = distributed.on_writer(partial(self._write_run, overwrite, thumbs))

    def _write_run(self, overwrite: bool, thumbs: dict[str, np.ndarray]) -> tuple[int, int, int]:
        """Create the run directory (rank 0 only); returns the stamp that tells it from a run
        written at the same path later (see :meth:`_check_still_ours`)."""
        self._prepare_directory(overwrite)
        # run.json comes last: until it is there, the directory is not a run.
        write_durably(self.path / LABELS_FILE, partial(save_array, array=self._labels))
        for name, images in thumbs.items():
            (self.path / THUMBNAILS_DIR).mkdir(exist_ok=True)
            write_durably(self.path / THUMBNAILS_DIR / f"{name}.npy", partial(save_array, array=images))
        write_json(self.path / RUN_FILE, self._info, durable=True)
        return self._run_file_stamp()

    def _run_file_stamp(self) -> tuple[int, int, int]:
        stat = (self.path / RUN_FILE).stat()
        return (stat.st_dev, stat.st_ino, stat.st_mtime_ns)

    def _check_still_ours(self) -> None:
        """Refuse to write into a directory whose run was replaced since this Recorder made it."""
        try:
            same = self._run_file_stamp() == self._stamp
        except FileNotFoundError:
            same = False
        if not same:
            raise RuntimeError(
                f"the run at {str(self.path)!r} was replaced or removed after this Recorder created it "
                "(by another Recorder with overwrite=True?); this Recorder no longer writes there: "
                "create a new Recorder, or give each run its own path"
            )

    def _trial(self, head_path: str) -> Any:
        batch = next(self._splits[0].batches(2, 0, 2))
        device, dtype = self._device_and_dtype()
        modes = self._eval_mode()
        try:
            return run_trial(
                self.model, self.head, head_path, to_device(batch, device, dtype), self.forward, self.output
            )
        finally:
            self._restore_modes(modes)

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
        return n_classes

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

    @property
    def split_sizes(self) -> dict[str, int]:
        """The number of samples of each split recorded ("train", and "test", "unlabeled" if given)."""
        return {split.name: len(split.labels) for split in self._splits}

    def on_capture(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(epoch)`` after each epoch is written (on rank 0 under
        torch.distributed), e.g. a linked Monitor's checks of the representations. Returns a
        function that stops the calls."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def capture(self, epoch: int, metrics: dict[str, float] | None = None) -> None:
        """Run the model on every tracked sample and store this epoch atomically.

        The model runs in eval mode under ``torch.no_grad()``; every submodule gets its
        previous mode back. ``metrics`` (e.g. ``{"train_acc": 0.93}``) are stored with the
        epoch. NaN or Inf in the representations are stored as they are and reported with
        a :class:`NonFiniteWarning`. Under ``torch.distributed`` call it on every rank: each
        computes its share of the samples, rank 0 writes the epoch (with rank 0's metrics).
        """
        epoch = int(check_int("epoch", epoch, 0))
        final = self.path / EPOCHS_DIR / epoch_dirname(epoch)
        if epoch in self._epochs:
            raise self._captured_twice(epoch)
        if self._epochs and epoch < self._epochs[-1]:
            raise ValueError(
                f"epoch {epoch} comes before the last captured epoch {self._epochs[-1]}; "
                "capture epochs in increasing order"
            )
        checked = self._check_metrics(metrics)
        distributed.on_writer(partial(self._check_destination, epoch, final))

        started = time.perf_counter()
        if not distributed.is_writer():
            for _ in self._blocks():  # sends this rank's share to rank 0
                pass
            if distributed.broadcast_from_writer(None) is None:
                raise RuntimeError(f"rank 0 could not write epoch {epoch}; its error says why")
            self._epochs.append(epoch)
            return
        try:
            nonfinite = self._write_epoch(epoch, final, checked, started)
        except BaseException:
            if distributed.active():  # tell the other ranks, if they can still hear it
                with contextlib.suppress(Exception):
                    distributed.broadcast_from_writer(None)
            raise
        distributed.broadcast_from_writer(nonfinite)  # the other ranks learn that it was written
        self._epochs.append(epoch)
        for listener in list(self._listeners):
            listener(epoch)
        if nonfinite["representations"] or nonfinite["probabilities"]:
            warnings.warn(
                f"epoch {epoch}: {nonfinite['representations']} samples have NaN or Inf representations and "
                f"{nonfinite['probabilities']} have NaN or Inf predictions. They were stored as they are. "
                "Training has probably diverged: try a lower learning rate or gradient clipping.",
                NonFiniteWarning,
                stacklevel=2,
            )

    @staticmethod
    def _captured_twice(epoch: int) -> ValueError:
        return ValueError(
            f"epoch {epoch} was already captured; capture each epoch once, "
            "e.g. rec.capture(epoch) at the end of each epoch"
        )

    def _check_destination(self, epoch: int, final: Path) -> None:
        self._check_still_ours()
        if final.exists():
            raise self._captured_twice(epoch)

    def _write_epoch(self, epoch: int, final: Path, metrics: dict, started: float) -> dict[str, int]:
        """Write the epoch into a temporary directory and publish it whole (rank 0 only); returns
        the numbers of non-finite rows."""
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{epoch_dirname(epoch)}-", dir=self.path / EPOCHS_DIR))
        try:
            n = len(self._labels)
            reps = _RowWriter(tmp / "representations.npy", n, compact=True)
            probs = _RowWriter(tmp / "probabilities.npy", n, compact=False)
            for start, batch_reps, batch_probs in self._blocks():
                if batch_probs.shape[1] != self._info["n_classes"]:
                    raise RuntimeError(
                        f"the model now outputs {batch_probs.shape[1]} classes; the run has {self._info['n_classes']}"
                    )
                reps.write(batch_reps, start)
                probs.write(batch_probs, start)
            reps.close()
            probs.close()
            state = {name: t.detach().cpu().float().numpy() for name, t in self.head.state_dict().items()}
            write_durably(tmp / "head.npz", lambda f: np.savez(f, **state))
            nonfinite = {"representations": reps.nonfinite, "probabilities": probs.nonfinite}
            info = {
                "epoch": epoch,
                "metrics": metrics,
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
        fsync_dir(final.parent)  # make the rename itself durable
        return nonfinite

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

    def _device_and_dtype(self) -> tuple[torch.device, torch.dtype]:
        params = [p for p in self.model.parameters() if p.is_floating_point()]
        if not params:
            return torch.device("cpu"), torch.float32
        return params[0].device, params[0].dtype

    def _eval_mode(self) -> dict[nn.Module, bool]:
        modes = {module: module.training for module in self.model.modules()}
        self.model.eval()
        return modes

    @staticmethod
    def _restore_modes(modes: dict[nn.Module, bool]) -> None:
        for module, training in modes.items():
            module.training = training

    def _blocks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first sample, representations, probabilities) of every batch, in sample order.

        Under ``torch.distributed`` every rank computes its share and rank 0 gets every
        rank's batches, round by round (the other ranks yield nothing)."""
        n = len(self._labels)
        if not distributed.active():
            yield from self._forward(0, n)
            return
        world, me = distributed.world_size(), distributed.rank()
        shares = [distributed.share(n, r, world) for r in range(world)]
        rounds = max(self._n_batches(*s) for s in shares)
        width = self._dim + self._info["n_classes"]
        mine = self._forward(*shares[me])
        starts = [start for start, _ in shares]
        for _ in range(rounds):
            block = next(mine, None)
            rows = None if block is None else np.concatenate([block[1], block[2]], axis=1)
            gathered = distributed.gather_rows(rows, width, self.batch_size)
            for r, got in enumerate(gathered or []):
                if len(got):
                    yield starts[r], got[:, : self._dim], got[:, self._dim :]
                    starts[r] += len(got)

    def _n_batches(self, start: int, stop: int) -> int:
        """Batches ``_forward(start, stop)`` yields: a batch never spans two splits."""
        count, first = 0, 0
        for split in self._splits:
            last = first + len(split.labels)
            overlap = min(stop, last) - max(start, first)
            count += max(0, math.ceil(overlap / self.batch_size))
            first = last
        return count

    def _forward(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first sample, representations, probabilities) of each batch of the samples
        ``[start, stop)`` (numbered across the splits in order), model in eval mode."""
        captured: list[torch.Tensor] = []

        def grab(_module: nn.Module, inputs: tuple) -> None:
            captured.append(inputs[0].detach())

        device, dtype = self._device_and_dtype()
        modes = self._eval_mode()
        hook = self.head.register_forward_pre_hook(grab)
        try:
            with torch.no_grad():
                first = 0
                for split in self._splits:
                    last = first + len(split.labels)
                    at = max(start, first)
                    for batch in split.batches(self.batch_size, at - first, min(stop, last) - first):
                        rows = batch_size_of(batch)
                        captured.clear()
                        output = call_model(self.model, to_device(batch, device, dtype), self.forward)
                        reps = self._representation(captured, rows)
                        probs = head_module.probabilities(checked_logits(output, rows), self.output).cpu().numpy()
                        yield at, reps, probs
                        at += rows
                    first = last
        finally:
            hook.remove()
            self._restore_modes(modes)

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
