"""The feedback log: every intention started and every answer given, kept in the run directory.

Format (version 1): ``<run>/feedback.jsonl``, append-only UTF-8 JSON Lines, one
event per line::

    {"event": "intention", "format": 1, "intention": 2, "mode": "default", "prior": "aum",
     "time": "2026-11-21T22:40:01.123456+00:00"}
    {"event": "answer", "intention": 2, "index": 117, "answer": "accept",
     "time": "2026-11-21T22:40:09.551002+00:00"}

* ``intention`` events start an intention session (numbered 1, 2, ... in order);
  ``mode`` and ``prior`` are the learner settings it started with (``prior`` null:
  chosen from the pool of the first recommendation).
* ``answer`` events belong to the intention they name; ``index`` is the sample
  index in the run, ``answer`` is ``"accept"`` or ``"reject"``. A later answer on
  the same sample within one intention replaces the earlier one (both stay in the log).
* ``time`` is UTC, ISO 8601.

Each feedback call appends its lines with one write, then flushes and fsyncs, so
an answer is on disk before the call returns and a kernel dying between two
clicks loses nothing. A line cut short by a crash mid-write is ignored on reading.
Only JSON is read back, never pickle.
"""

from __future__ import annotations

import json
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FILE = "feedback.jsonl"
FORMAT = 1


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


class FeedbackLog:
    """Appends events to, and reads them back from, ``<run>/feedback.jsonl``."""

    def __init__(self, run_path: str | Path):
        self.path = Path(run_path) / FILE

    def read(self) -> list[dict[str, Any]]:
        """All complete events, oldest first; unreadable lines are skipped with a warning."""
        if not self.path.exists():
            return []
        events = []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or event.get("event") not in ("intention", "answer"):
                if number < len(lines):  # not just the last line cut short by a crash
                    warnings.warn(f"{self.path} line {number} is not a feedback event; skipped", stacklevel=2)
                continue
            events.append(event)
        return events

    def append(self, events: list[dict[str, Any]]) -> None:
        """Write events durably: one write, flush, fsync."""
        if not events:
            return
        text = "".join(json.dumps(event, separators=(", ", ": ")) + "\n" for event in events)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise PermissionError(f"cannot save feedback to {self.path} ({err}); the run directory must be "
                                  "writable: copy the run somewhere writable and open the copy") from None


def last_intention(events: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[int, bool]]:
    """The latest intention event and its final answers (sample index -> accepted), in answer order."""
    intention = None
    answers: dict[int, bool] = {}
    for event in events:
        if event["event"] == "intention":
            intention, answers = event, {}
        elif intention is not None and event.get("intention") == intention.get("intention"):
            index = event.get("index")
            if isinstance(index, int) and event.get("answer") in ("accept", "reject"):
                answers.pop(index, None)
                answers[index] = event["answer"] == "accept"
    return intention, answers
