"""Writing files so that a crash never leaves one half-written.

The fsync policy, in one place:

* What cannot be computed again -- the recorded run (``run.json``, labels, thumbnails,
  every epoch) and the user's answers -- is durable: every file is flushed and fsynced,
  and so is the directory that names it, before the call returns.
* Caches (the fitted visualizer, attributes, faithfulness figures) are only atomic:
  written whole under a temporary name and renamed into place, never fsynced. After a
  power cut a cache may be old or missing, and its reader then computes it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

FLOAT16_MAX = float(np.finfo(np.float16).max)

# Names a writer uses while a file or directory is not finished; readers skip them.
TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (a file created or renamed in it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def write_durably(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` in place, flushed and fsynced: for a file inside a directory that is
    itself made visible atomically (an epoch), or that the run's last file (``run.json``)
    makes valid."""
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write_atomically(path: Path, write: Callable[[IO[bytes]], Any], *, durable: bool) -> None:
    """Write ``path`` whole: into a temporary file beside it, renamed over it once complete
    (durable: the file and its directory are fsynced too). On failure the temporary file
    is removed and the error raised; ``path`` keeps its old content."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def json_bytes(value: Any, indent: int | None = 1) -> bytes:
    """``value`` as UTF-8 JSON, indented by ``indent`` (None: on one line)."""
    return json.dumps(value, indent=indent).encode("utf-8")


def write_json(path: Path, value: Any, *, durable: bool, indent: int | None = 1) -> None:
    """:func:`write_atomically` of ``value`` as UTF-8 JSON (see :func:`json_bytes`)."""
    write_atomically(path, lambda f: f.write(json_bytes(value, indent)), durable=durable)


def save_array(f: IO[bytes], array: np.ndarray) -> None:
    """``np.save`` without pickle, for the writers above."""
    np.save(f, array, allow_pickle=False)


def publish_dir(tmp: Path, final: Path, *, replace: bool) -> None:
    """Rename the finished directory ``tmp`` to ``final``, which appears whole or not at all.

    With ``replace``, an existing ``final`` is moved aside first and removed after, so a crash
    leaves the old directory, the new one, or (between the two renames) neither; without,
    an existing non-empty ``final`` makes the rename fail. For a durable directory, fsync
    ``tmp`` (:func:`fsync_dir`) before and its parent after.
    """
    old = None
    if replace and final.exists():
        old = final.with_name(f"{TMP_PREFIX}old-{final.name}-{os.getpid()}")
        os.replace(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class RowWriter:
    """Rows of one epoch streamed batch by batch into a .npy file, so a capture never holds
    the epoch in memory. ``compact`` stores float16, widened to float32 if a value does not fit."""

    def __init__(self, path: Path, n_rows: int, compact: bool):
        self.path, self.n_rows, self.compact = path, n_rows, compact
        self.array: np.memmap | None = None
        self.nonfinite = 0

    def write(self, rows: np.ndarray, start: int) -> None:
        """Write ``rows`` as the rows from ``start`` on."""
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
        array[start : start + len(rows)] = rows

    def _widen(self, narrow: np.memmap) -> np.memmap:
        wide_path = self.path.with_name(f"{TMP_PREFIX}wide-{self.path.name}")
        wide = np.lib.format.open_memmap(wide_path, mode="w+", dtype=np.float32, shape=narrow.shape)
        wide[:] = narrow  # rows not written yet are zeros in both
        os.replace(wide_path, self.path)  # the narrow map keeps its file, unnamed now, until released
        self.array = wide
        return wide

    def close(self) -> None:
        if self.array is not None:
            self.array.flush()
            self.array = None
        fsync_file(self.path)
