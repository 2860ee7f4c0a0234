"""AutoTrainer's solution scheduler (§4.3): when a training shows a problem, try the next untried
solution for it, retrain, and keep the change only if it solved the problem.

A problem counts as solved when the retraining no longer shows it and, if it shows no problem
at all, its accuracy did not fall. A new problem starts its own sequence on top of the kept
changes; a solution that failed is undone. ``max_repairs`` retrainings and the time limit
bound the whole search; when a problem has no solution left, the best training seen is
returned with the full log.

Deviation from AutoTrainer, which stops at the first solution that removes the symptom
(§4.3): when the training that solved a problem has not settled, the problem's remaining
solutions are tried on top of the kept change, each kept only if it raises the accuracy. A
symptom can go while its cause stays: batch normalization (S1) hides the large layer outputs
of over-scaled initial weights, but weights that large shrink its effective learning rate, so
the training is still climbing steeply when the epochs run out; a ReLU swap (S2) can leave a
training that collapses in its last epoch. "Not settled" uses the paper's own measure of a
significant accuracy change, the oscillation threshold zeta (§4.2; 0.03 by §5.4): the
accuracy rose by more than zeta in the last epoch or ended more than zeta below the
training's best epoch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from .._validation import check_choice
from ..monitor.thresholds import DEFAULT_THRESHOLDS
from ..monitor.warning import TrainingWarning
from .log import IMPROVED, NOT_IMPROVED, NOT_SOLVED, SKIPPED, SOLVED, STOPPED, RepairEntry, side_effects
from .setup import Setup
from .solutions import DEFAULT_ORDER, RESTARTS, RESUMES, SOLUTIONS, Change, Context, Skip, Solution

REPAIRABLE = tuple(DEFAULT_ORDER)


@dataclass
class Checkpoint:
    """The weights and optimizer state at the end of the last epoch without a problem."""

    epoch: int
    model_state: dict[str, Any]
    optimizer_state: dict[str, Any]
    history: list[dict[str, Any]]


@dataclass
class Attempt:
    """One training: its setup, trained model, history, warnings, the problem that stopped it
    (None: healthy), accuracy and predictions on the evaluation split, and its cost."""

    setup: Setup
    model: nn.Module
    history: list[dict[str, Any]]
    warnings: list[TrainingWarning]
    problem: TrainingWarning | None
    accuracy: float | None
    predictions: np.ndarray
    epochs: int
    seconds: float
    checkpoint: Checkpoint | None
    stopped: str | None = None  # "time limit" when the deadline ended it


def _score(attempt: Attempt) -> float:
    return -1.0 if attempt.accuracy is None or not np.isfinite(attempt.accuracy) else attempt.accuracy


def unsettled(history: list[dict[str, Any]], zeta: float) -> str | None:
    """Why a training that shows no problem has not settled (None: it has): its accuracy
    (validation, or training without ``val``) rose by more than ``zeta`` in the last epoch, or
    ended more than ``zeta`` below its best epoch."""
    key = "val_acc" if history and history[-1].get("val_acc") is not None else "train_acc"
    accs = [h[key] for h in history if h.get(key) is not None and math.isfinite(h[key])]
    if len(accs) < 2:
        return None
    if accs[-1] - accs[-2] > zeta:
        return f"its accuracy still rose {accs[-1] - accs[-2]:.1%} in the last epoch"
    if max(accs) - accs[-1] > zeta:
        return f"its accuracy ended {max(accs) - accs[-1]:.1%} below its best epoch"
    return None


def resolve_order(order: Any) -> dict[str, tuple[Solution, ...]]:
    """The default order overridden per problem by ``order`` ({code: [names or Solutions]})."""
    resolved = {code: tuple(SOLUTIONS[n] for n in names) for code, names in DEFAULT_ORDER.items()}
    if order is None:
        return resolved
    if not isinstance(order, dict):
        raise TypeError(f"repair['order'] must be a dict of problem code -> solution names, got {type(order).__name__}")
    for code, names in order.items():
        check_choice("repair['order'] key", code, REPAIRABLE)
        if isinstance(names, (str, Solution)) or not hasattr(names, "__iter__"):
            raise TypeError(f"repair['order'][{code!r}] must be a list of solution names like ['S6', 'S3']")
        items = []
        for name in names:
            if isinstance(name, Solution):
                items.append(name)
            else:
                items.append(SOLUTIONS[check_choice(f"repair['order'][{code!r}] item", name, sorted(SOLUTIONS))])
        resolved[code] = tuple(items)
    return resolved


class Scheduler:
    """Runs the search. ``train(setup, checkpoint)`` trains one attempt; ``context(setup,
    warning)`` builds what solutions look at; ``on_entry(entries)`` hears each new entry;
    ``zeta`` is the accuracy change that counts as significant (see :func:`unsettled`)."""

    def __init__(
        self,
        order: dict[str, tuple[Solution, ...]],
        max_repairs: int,
        deadline: float | None,
        train: Callable[[Setup, Checkpoint | None], Attempt],
        context: Callable[[Setup, TrainingWarning], Context],
        labels: np.ndarray,
        n_classes: int,
        measured_on: str,
        on_entry: Callable[[list[RepairEntry]], None] = lambda entries: None,
        zeta: float = DEFAULT_THRESHOLDS["zeta"],
    ):
        self.order, self.max_repairs, self.deadline = order, max_repairs, deadline
        self.train, self.context, self.on_entry = train, context, on_entry
        self.labels, self.n_classes, self.measured_on = labels, n_classes, measured_on
        self.zeta = zeta
        self.entries: list[RepairEntry] = []
        self.attempts: list[Attempt] = []

    def _add(self, entry: RepairEntry) -> None:
        self.entries.append(entry)
        self.on_entry(self.entries)

    def _stop(self, problem: TrainingWarning, reason: str) -> None:
        self._add(RepairEntry(problem.code, problem.title, problem.explanation, "-", "", STOPPED, reason))

    def run(self, first: Attempt) -> Attempt:
        """Repair until no problem is left or the budget ends; the attempt to return."""
        base, self.attempts = first, [first]
        tried: dict[str, set[str]] = defaultdict(set)
        retrainings = 0
        while base.problem is not None:
            problem = base.problem
            left = [s for s in self.order.get(problem.code, ()) if s.name not in tried[problem.code]]
            if not left:
                self._stop(problem, f"every solution for {problem.code} was tried; returning the best training seen")
                break
            if retrainings >= self.max_repairs:
                self._stop(problem, f"max_repairs={self.max_repairs} retrainings reached")
                break
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self._stop(problem, "time_limit reached")
                break
            solution = left[0]
            tried[problem.code].add(solution.name)
            result = solution.apply(base.setup, self.context(base.setup, problem))
            entry = self._entry(problem, solution)
            if isinstance(result, Skip):
                entry.reason = result.reason
                self._add(entry)
                continue
            retrainings += 1
            new = self._retrain(entry, base, result)
            if new is None:
                continue
            if new.stopped:
                entry.outcome, entry.reason = STOPPED, "time_limit reached during the retraining"
            elif new.problem is not None and new.problem.code == problem.code:
                entry.outcome = NOT_SOLVED
                entry.reason = f"{problem.code} again (step {new.problem.step} of the retraining); change undone"
            elif new.problem is None and _score(new) < _score(base):
                entry.outcome, entry.reason = NOT_SOLVED, "no problem, but the accuracy fell; change undone"
            else:
                entry.outcome, base = SOLVED, new
                if new.problem is not None:
                    entry.new_problem = new.problem.code
                    entry.reason = f"{problem.code} is gone; a new problem, {new.problem.code}, starts its own sequence"
            self._add(entry)
            if new.stopped:
                break
            if entry.outcome == SOLVED and new.problem is None:
                base, retrainings = self._refine(problem, base, tried[problem.code], retrainings)
        if base.problem is None:
            return base
        return max(self.attempts, key=_score)

    def _entry(self, problem: TrainingWarning, solution: Solution) -> RepairEntry:
        """The log entry of trying ``solution`` on ``problem``; skipped until its outcome is known."""
        return RepairEntry(
            problem.code,
            problem.title,
            problem.explanation,
            solution.name,
            solution.title,
            SKIPPED,
            measured_on=self.measured_on,
        )

    def _out_of_budget(self, retrainings: int) -> bool:
        return retrainings >= self.max_repairs or (self.deadline is not None and time.monotonic() >= self.deadline)

    def _refine(
        self, problem: TrainingWarning, base: Attempt, tried: set[str], retrainings: int
    ) -> tuple[Attempt, int]:
        """While ``base`` (which solved ``problem``) has not settled, try the problem's untried
        solutions on top of it, keeping one only if the accuracy rises; the budget still bounds it."""
        for solution in self.order.get(problem.code, ()):
            why = unsettled(base.history, self.zeta)
            if why is None or self._out_of_budget(retrainings):
                break
            if solution.name in tried:
                continue
            tried.add(solution.name)
            result = solution.apply(base.setup, self.context(base.setup, problem))
            entry = self._entry(problem, solution)
            tried_because = f"{problem.code} was solved, but {why}; this solution was tried on top"
            if isinstance(result, Skip):
                entry.reason = f"{tried_because}, and cannot apply: {result.reason}"
                self._add(entry)
                continue
            retrainings += 1
            # In full: the training refined ran to its end, so its last checkpoint leaves no epochs.
            new = self._retrain(entry, base, dataclasses.replace(result, resume=False), failed=NOT_IMPROVED)
            if new is None:
                continue
            if result.resume:
                entry.start = "the pre-training weights (the training it refines ran to its last epoch)"
            if new.stopped:
                entry.outcome, entry.reason = STOPPED, "time_limit reached during the retraining"
            elif new.problem is not None:
                entry.outcome = NOT_IMPROVED
                entry.reason = f"{tried_because}; it showed {new.problem.code} (step {new.problem.step}); change undone"
            elif _score(new) <= _score(base):
                entry.outcome, entry.reason = NOT_IMPROVED, f"{tried_because}; the accuracy did not rise; change undone"
            else:
                entry.outcome, entry.reason, base = IMPROVED, f"{tried_because}; the accuracy rose; change kept", new
            self._add(entry)
            if new.stopped:
                break
        return base, retrainings

    def _retrain(self, entry: RepairEntry, base: Attempt, change: Change, failed: str = NOT_SOLVED) -> Attempt | None:
        checkpoint = base.checkpoint if change.resume else None
        if checkpoint is not None:
            entry.start = f"the checkpoint of epoch {checkpoint.epoch}, the last healthy one ({RESUMES})"
        elif change.resume:
            entry.start = "the pre-training weights (no epoch ended before the problem)"
        else:
            entry.start = f"the pre-training weights ({RESTARTS})"
        entry.changes = change.diff
        started = time.monotonic()
        try:
            new = self.train(change.setup, checkpoint)
        except Exception as err:  # a repaired setup that cannot train is a failed solution, not a crash
            entry.outcome, entry.reason = failed, f"the retraining failed ({type(err).__name__}: {err})"
            entry.seconds = time.monotonic() - started
            self._add(entry)
            return None
        self.attempts.append(new)
        entry.epochs, entry.seconds = new.epochs, new.seconds
        entry.acc_before, entry.acc_after = base.accuracy, new.accuracy
        entry.per_class, entry.changed_predictions = side_effects(
            base.predictions, new.predictions, self.labels, self.n_classes
        )
        return new
