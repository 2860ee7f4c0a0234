"""The feedback log: every intention started and every answer given, kept in the run directory.

Format (version 1): ``<run>/feedback.jsonl``, append-only UTF-8 JSON Lines, one
event per line::

    {"event": "intention", "format": 1, "intention": 2, "mode": "default", "prior": "aum",
     "time": "2026-11-21T22:40:01.123456+00:00"}
    {"event": "answer", "intention": 2, "index": 117, "answer": "accept", "prior": "aum",
     "time": "2026-11-21T22:40:09.551002+00:00"}

* ``intention`` events start an intention session (numbered 1, 2, ... in order);
  ``mode`` and ``prior`` are the learner settings it started with (``prior`` null:
  chosen from the pool of the first recommendation).
* ``answer`` events belong to the intention they name; ``index`` is the sample
  index in the run, ``answer`` is ``"accept"`` or ``"reject"``. A later answer on
  the same sample within one intention replaces the earlier one (both stay in the log).
  ``prior`` is the prior the intention's learner ranked its first round by, as chosen
  (null in the paper mode); it may be missing from logs of earlier versions.
* ``time`` is UTC, ISO 8601.

Each feedback call appends its lines with one write, then flushes and fsyncs, so
an answer is on disk before the call returns and a kernel dying between two
clicks loses nothing. A line cut short by a crash mid-write is ignored on reading,
and the next write starts on a line of its own. Only JSON is read back, never pickle.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._io import append_json_lines, read_json_lines

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
        return read_json_lines(
            self.path, lambda event: event.get("event") in ("intention", "answer"), "a feedback event"
        )

    def append(self, events: list[dict[str, Any]]) -> None:
        """Write events durably: one write, flush, fsync."""
        append_json_lines(self.path, events, "feedback")


def last_intention(events: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[int, bool], str | None]:
    """The latest intention event, its final answers (sample index -> accepted) in answer
    order, and the prior its answers name (else the intention event's, which may be null)."""
    intention, prior = None, None
    answers: dict[int, bool] = {}
    for event in events:
        if event["event"] == "intention":
            intention, answers, prior = event, {}, event.get("prior")
        elif intention is not None and event.get("intention") == intention.get("intention"):
            index = event.get("index")
            if isinstance(index, int) and event.get("answer") in ("accept", "reject"):
                answers.pop(index, None)
                answers[index] = event["answer"] == "accept"
                prior = event.get("prior", prior)
    return intention, answers, prior
