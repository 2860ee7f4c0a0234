"""Writing files so that a crash never leaves one half-written.

The fsync policy, in one place:

* What cannot be computed again -- the recorded run (``run.json``, labels, thumbnails,
  every epoch), the user's answers and relabels -- is durable: every file is flushed and fsynced,
  and so is the directory that names it, before the call returns.
* Caches (the fitted visualizer, attributes, faithfulness figures) are only atomic:
  written whole under a temporary name and renamed into place, never fsynced. After a
  power cut a cache may be old or missing, and its reader then computes it again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import warnings
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


def plain_json(value: Any, name: str) -> Any:
    """``value`` round-tripped through JSON, numpy and torch scalars and arrays (what has a
    ``tolist()``) turned into plain values; anything else fails, naming ``name``."""

    def default(obj: Any) -> Any:
        if callable(getattr(obj, "tolist", None)):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(value, default=default, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be JSON-serialisable (numbers, strings, lists, dicts): {err}") from None


def append_json_lines(path: Path, records: list[dict[str, Any]], what: str) -> None:
    """Append ``records`` to the JSON Lines file ``path`` durably: one write, flush, fsync (and
    the directory, when the file is new), so they are on disk before the call returns. A line
    cut short by a crash mid-write is ended first, so the new records start on lines of their
    own. ``what`` names the records in errors ("feedback", "relabels")."""
    if not records:
        return
    data = "".join(json.dumps(record, separators=(", ", ": ")) + "\n" for record in records).encode("utf-8")
    try:
        created = not path.exists()
        with open(path, "a+b") as f:  # writes go to the end; reading checks how the file ends
            end = f.seek(0, os.SEEK_END)
            if end:
                f.seek(end - 1)
                if f.read(1) != b"\n":  # a line cut short by a crash: end it first
                    data = b"\n" + data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if created:
            fsync_dir(path.parent)  # the file's name is durable too
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise PermissionError(
                f"cannot save {what} to {path} ({err}); the run directory must be "
                "writable: copy the run somewhere writable and open the copy"
            ) from None
        raise OSError(err.errno, f"cannot save {what} to {path}: {err.strerror}") from err


def read_json_lines(path: Path, is_record: Callable[[Any], bool], what: str) -> list[dict[str, Any]]:
    """The complete records of the JSON Lines file ``path`` (none if it is missing), oldest
    first: a line that is not JSON or fails ``is_record`` is skipped, with a warning unless it
    is the last line (cut short by a crash). Only JSON is read, never pickle."""
    if not path.exists():
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not is_record(record):
            if number < len(lines):  # not just the last line cut short by a crash
                warnings.warn(f"{path} line {number} is not {what}; skipped", stacklevel=3)
            continue
        records.append(record)
    return records


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
