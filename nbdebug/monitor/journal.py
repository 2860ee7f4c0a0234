"""The monitor's warnings kept in a run directory, so the landscape can show them on its timeline.

Format (version 1): ``<run>/warnings.jsonl``, append-only UTF-8 JSON Lines, one line each time
a linked :class:`~nbdebug.Monitor` reports a warning (a new one, or one escalated to an error)::

    {"event": "warning", "format": 1, "code": "overfitting", "severity": "warning",
     "title": "...", "explanation": "...", "fix": "...", "cause": "no_regularization",
     "epoch": 7, "step": 210, "after_capture": 6, "time": "2026-12-02T10:02:11.5+00:00"}

``epoch`` and ``step`` are the monitor's (epochs finished and steps taken when it fired);
``after_capture`` is the last epoch the recorder had captured by then, null before the first.
A warning belongs to the first captured epoch after ``after_capture``: the snapshot that shows
the training it fired in (:func:`landscape_epoch`). Written and read like the feedback log
(:func:`nbdebug._io.append_json_lines`): durable before the call returns, a line cut short by a
crash ignored, only JSON read back. The text fields are plain text, never HTML; the
landscape shows them on its timeline (:func:`landscape_warnings`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import append_json_lines, read_json_lines
from ..interest.feedback import now
from .warning import TrainingWarning

FILE = "warnings.jsonl"
FORMAT = 1
TEXT_FIELDS = ("code", "severity", "title", "explanation", "fix", "cause")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_record(record: dict) -> bool:
    after = record.get("after_capture")
    return (
        record.get("event") == "warning"
        and all(isinstance(record.get(name), str) for name in TEXT_FIELDS)
        and all(_is_int(record.get(name)) for name in ("epoch", "step"))
        and (after is None or _is_int(after))
    )


def append_warning(run_dir: str | Path, warning: TrainingWarning, after_capture: int | None) -> None:
    """Append one reported warning to ``<run_dir>/warnings.jsonl`` (durable on return)."""
    record: dict[str, Any] = {"event": "warning", "format": FORMAT}
    record.update({name: str(getattr(warning, name)) for name in TEXT_FIELDS})
    record.update({"epoch": warning.epoch, "step": warning.step, "after_capture": after_capture, "time": now()})
    append_json_lines(Path(run_dir) / FILE, [record], "warnings")


def read_warnings(run_dir: str | Path) -> list[dict[str, Any]]:
    """The warnings saved in ``run_dir``, oldest first (none if the file is missing)."""
    return read_json_lines(Path(run_dir) / FILE, _is_record, "a warning")


def landscape_epoch(record: dict[str, Any], epochs: Sequence[int]) -> int | None:
    """The recorded epoch a saved warning belongs to: the first of ``epochs`` (sorted) captured
    after its ``after_capture``; the last epoch when it fired after the last capture (the run
    stopped), the first when it fired before any. None without epochs."""
    if not epochs:
        return None
    after = record.get("after_capture")
    if after is None:
        return epochs[0]
    at = bisect.bisect_right(epochs, after)
    return epochs[min(at, len(epochs) - 1)]


def landscape_warnings(run_dir: str | Path, epochs: Sequence[int]) -> list[dict[str, Any]]:
    """The warnings saved in ``run_dir`` as the landscape's timeline shows them, oldest first:
    plain JSON, each the recorded epoch it belongs to (:func:`landscape_epoch`) and its text
    fields. None without ``epochs``."""
    placed = []
    for record in read_warnings(run_dir):
        epoch = landscape_epoch(record, epochs)
        if epoch is not None:
            placed.append({"epoch": epoch} | {name: record[name] for name in TEXT_FIELDS})
    return placed
