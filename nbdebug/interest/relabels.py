"""The relabels: the label a user says a sample should have, kept in the run directory.

Format (version 1): ``<run>/relabels.jsonl``, append-only UTF-8 JSON Lines, one event per
relabel::

    {"event": "relabel", "format": 1, "index": 117, "label": 3, "time": "2026-12-01T10:02:11.5+00:00"}

``index`` is the sample index in the run, ``label`` the class index it should have, or null
where the relabel was taken back (the given label stands again). A later event on the same
sample replaces the earlier one; all stay in the file. Written and read like the feedback
log (:func:`nbdebug._io.append_json_lines`): durable before the call returns, a line cut
short by a crash ignored, only JSON read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._io import append_json_lines, read_json_lines
from ..run import Run
from .feedback import now

FILE = "relabels.jsonl"
FORMAT = 1


def _is_event(event: dict) -> bool:
    label = event.get("label")
    return (
        event.get("event") == "relabel"
        and isinstance(event.get("index"), int)
        and (label is None or (isinstance(label, int) and not isinstance(label, bool)))
    )


class Relabels:
    """The relabels of one run: read from ``relabels.jsonl`` when made, saved as they are given."""

    def __init__(self, run: Run):
        self.run = run
        self.path = run.path / FILE
        self._labels: dict[int, int] = {}
        for event in read_json_lines(self.path, _is_event, "a relabel event"):
            index, label = event["index"], event["label"]
            if not 0 <= index < run.n_samples or (label is not None and not 0 <= label < run.n_classes):
                continue  # not of this run
            self._labels.pop(index, None)
            if label is not None:
                self._labels[index] = label

    @property
    def labels(self) -> dict[int, int]:
        """Sample index -> the class index it should have, in the order given."""
        return dict(self._labels)

    def set(self, relabels: Any) -> None:
        """Save ``relabels`` ({index: class index, class name, or None to take a relabel back});
        all are checked before any is saved. Relabelling a sample to its given label takes its
        relabel back."""
        if not isinstance(relabels, Mapping):
            raise TypeError(
                f"relabel takes a dict {{sample index: label}}, e.g. {{17: 3}} or {{17: {self.run.classes[0]!r}}}, "
                f"got {type(relabels).__name__}"
            )
        given = self.run.labels
        changes = {}
        for index, label in relabels.items():
            if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
                raise TypeError(f"relabel's keys must be sample indices (int), got {index!r}")
            index = int(index)
            if not 0 <= index < self.run.n_samples:
                raise ValueError(f"relabel: sample index {index} is outside 0..{self.run.n_samples - 1}")
            if given[index] < 0:
                raise ValueError(
                    f"relabel: sample {index} is unlabeled ({self.run.split[index]} split); only samples "
                    "with a given label can be relabelled"
                )
            new = None if label is None else self._class_index(label)
            changes[index] = None if new == given[index] else new
        append_json_lines(
            self.path,
            [
                {"event": "relabel", "format": FORMAT, "index": i, "label": label, "time": now()}
                for i, label in changes.items()
            ],
            "relabels",
        )
        for index, label in changes.items():
            self._labels.pop(index, None)
            if label is not None:
                self._labels[index] = label

    def corrected(self) -> np.ndarray:
        """(n_samples,) int64: the given labels with the relabels applied, -1 where unlabeled."""
        labels = self.run.labels.astype(np.int64)
        for index, label in self._labels.items():
            labels[index] = label
        return labels

    def _class_index(self, label: Any) -> int:
        classes = self.run.classes
        if isinstance(label, str):
            if label not in classes:
                raise ValueError(f"relabel: {label!r} is not a class of this run; its classes are {classes}")
            return classes.index(label)
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < len(classes):
            return int(label)
        raise ValueError(
            f"relabel: a label must be a class index in 0..{len(classes) - 1}, a class name, or None "
            f"(take the relabel back), got {label!r}"
        )
