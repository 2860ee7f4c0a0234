"""The repair log: one entry per solution tried, with the problem and its evidence, what changed,
where retraining started, accuracy before and after, and the side effects on validation
predictions (per-class accuracy, share of predictions that changed)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

# Outcomes of one entry. "improved" / "not improved": a further solution for a problem already
# solved, kept or undone by accuracy (see nbdebug.repair.scheduler).
SOLVED, NOT_SOLVED, SKIPPED, STOPPED = "solved", "not solved", "skipped", "stopped"
IMPROVED, NOT_IMPROVED = "improved", "not improved"


@dataclass
class RepairEntry:
    """One solution tried for one problem.

    ``changes`` is the readable diff (``model.2: ReLU -> LeakyReLU(0.01)``, ``lr: 1 -> 0.01``);
    ``start`` says where retraining began and ``epochs`` how many epochs it cost;
    ``per_class`` maps each class to its (before, after) accuracy and ``changed_predictions``
    is the share of evaluation samples whose prediction changed. Accuracies are on the
    validation split (``measured_on``), or on the training split when fit had no ``val``.
    """

    problem: str
    title: str
    evidence: str
    solution: str
    solution_title: str
    outcome: str
    reason: str = ""
    changes: list[str] = field(default_factory=list)
    start: str = ""
    epochs: int = 0
    seconds: float = 0.0
    acc_before: float | None = None
    acc_after: float | None = None
    per_class: dict[int, tuple[float, float]] = field(default_factory=dict)
    changed_predictions: float | None = None
    measured_on: str = "val"
    new_problem: str | None = None

    @property
    def solved(self) -> bool:
        return self.outcome == SOLVED

    def headline(self) -> str:
        """``nan_loss · S6 adjust the learning rate: solved (acc 10.0% -> 95.3%)``."""
        acc = ""
        if self.acc_after is not None:
            acc = f" ({self.measured_on} acc {_pct(self.acc_before)} -> {_pct(self.acc_after)})"
        return f"{self.problem} · {self.solution} {self.solution_title}: {self.outcome}{acc}"

    def lines(self) -> list[str]:
        """The entry as plain-text lines (what ``str()`` joins)."""
        out = [self.headline(), f"  problem: {self.title}. {self.evidence}"]
        out += [f"  change: {c}" for c in self.changes]
        if self.reason:
            out.append(f"  {'why' if self.outcome == SKIPPED else 'result'}: {self.reason}")
        if self.start:
            out.append(f"  retrained {self.epochs} epoch(s) from {self.start} in {self.seconds:.1f} s")
        if self.changed_predictions is not None:
            out.append(f"  side effects: {self.changed_predictions:.1%} of {self.measured_on} predictions changed")
            moved = sorted(self.per_class.items(), key=lambda kv: -abs(kv[1][1] - kv[1][0]))[:5]
            if moved:
                shown = ", ".join(f"class {k} {_pct(a)} -> {_pct(b)}" for k, (a, b) in moved)
                out.append(f"  per-class accuracy (largest changes): {shown}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.1%}"


def side_effects(
    before: np.ndarray, after: np.ndarray, labels: np.ndarray, n_classes: int
) -> tuple[dict[int, tuple[float, float]], float]:
    """Per-class accuracy (before, after) of two sets of predictions, and the share that changed."""
    per_class = {}
    for k in range(n_classes):
        mask = labels == k
        if mask.any():
            per_class[k] = (float((before[mask] == k).mean()), float((after[mask] == k).mean()))
    return per_class, float((before != after).mean()) if len(before) else 0.0


def format_log(entries: list[RepairEntry]) -> str:
    """The whole log as text (an empty log says so)."""
    if not entries:
        return "no repairs"
    return "\n".join(f"{i}. " + str(e) for i, e in enumerate(entries, 1))


def html_items(entries: list[RepairEntry]) -> list[tuple[str, str, str]]:
    """(headline, body, outcome) of each entry, escaped for HTML (what the monitor widget shows)."""
    return [(html.escape(e.headline()), html.escape("\n".join(e.lines()[1:])), e.outcome) for e in entries]
