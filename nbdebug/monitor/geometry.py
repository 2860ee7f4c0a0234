"""Checks of the recorded representations: what only a monitor linked with a Recorder can see.

Pure functions of arrays (a captured epoch's representations of the training samples, their
given labels and predictions in, numbers or a finding out), and :class:`RepresentationWatch`,
which feeds them a run's epochs as they are captured. Two problems:

* **class collapse**: the share of the representations' spread that the class centroids
  explain (between-class over total scatter, tr(S_B) / tr(S_T)) falls far below its best, or
  the spread vanishes: the features that told the classes apart are being lost;
* **memorizing noisy labels**: samples whose given label their nearest neighbours contradict
  (``suspect_agreement``: at most this share of their k neighbours shares it, and one other
  class holds the majority) are, at a later epoch, predicted as that given label. Memorized
  noise moves a sample into its given class, where its neighbours then agree, so a sample
  stays a suspect once it has been one. Reported when they reach ``memorized_share`` of the
  training samples and have at least doubled since their fewest (the epoch after that is when
  it started).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..run import load_run
from .rules import Finding, Thresholds

NEIGHBOURS = 10
# At most this many training samples are compared (all pairs): a sample of a large run.
TRACKED = 3000


def tracked_samples(n: int, seed: int = 0) -> np.ndarray:
    """The training samples the checks follow: all of them, or a fixed random ``TRACKED``."""
    if n <= TRACKED:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, TRACKED, replace=False))


def separation(reps: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(tr(S_B) / tr(S_T), tr(S_T) / n): the share of the spread the class centroids explain,
    and the spread itself (mean squared distance to the overall mean)."""
    x = torch.as_tensor(np.asarray(reps, dtype=np.float32))
    y = torch.as_tensor(labels, dtype=torch.long)
    centred = x - x.mean(0)
    total = float(centred.pow(2).sum())
    if total <= 0 or not np.isfinite(total):
        return 0.0, 0.0 if total <= 0 else float("inf")
    n_classes = int(y.max()) + 1
    sums = torch.zeros(n_classes, x.shape[1]).index_add_(0, y, centred)
    counts = torch.bincount(y, minlength=n_classes).clamp_min(1).unsqueeze(1)
    between = float((sums.pow(2) / counts).sum())
    return between / total, total / len(x)


def suspects(reps: np.ndarray, labels: np.ndarray, t: Thresholds) -> np.ndarray:
    """Samples whose given label their ``NEIGHBOURS`` nearest neighbours (Euclidean, in the
    representation) contradict: at most ``suspect_agreement`` of them share it and one other
    class holds more than half of them."""
    x = torch.as_tensor(np.asarray(reps, dtype=np.float32))
    y = torch.as_tensor(labels, dtype=torch.long)
    k = min(NEIGHBOURS, len(x) - 1)
    if k < 1 or not bool(torch.isfinite(x).all()):
        return np.zeros(len(x), dtype=bool)
    distances = torch.cdist(x, x)
    distances.fill_diagonal_(float("inf"))
    near = y[distances.topk(k, largest=False).indices]  # (n, k) neighbour labels
    n_classes = int(y.max()) + 1
    votes = torch.zeros(len(x), n_classes).scatter_add_(1, near, torch.ones_like(near, dtype=torch.float32))
    own = votes.gather(1, y.unsqueeze(1)).squeeze(1)
    votes.scatter_(1, y.unsqueeze(1), 0.0)
    other = votes.max(1).values
    return ((own <= t["suspect_agreement"] * k) & (other > k / 2)).numpy()


def class_collapse(history: Sequence[tuple[int, float, float]], t: Thresholds) -> Finding | None:
    """Class collapse from the (epoch, separation, spread) of each captured epoch so far."""
    if len(history) < 2:
        return None
    epoch, now, spread = history[-1]
    best_epoch, best, _ = max(history[:-1], key=lambda h: h[1])
    collapsed = spread == 0 or now < t["collapse_ratio"] * best
    if best < t["collapse_min"] or not collapsed:
        return None
    return Finding(
        "class_collapse",
        {"epoch": epoch, "separation": now, "best": best, "best_epoch": best_epoch, "spread": spread},
    )


def memorizing_noisy_labels(
    counts: Sequence[tuple[int, int]], scale: float, n_train: int, t: Thresholds
) -> Finding | None:
    """Memorization from the (epoch, memorized suspects among the tracked samples) of each
    captured epoch; ``scale`` turns tracked counts into training-set counts."""
    if len(counts) < 2:
        return None
    epoch, count = counts[-1]
    floor_at = min(range(len(counts) - 1), key=lambda i: (counts[i][1], -i))
    floor = counts[floor_at][1]
    estimated = round(count * scale)
    if estimated < t["memorized_share"] * n_train or count < 2 * max(floor, 1):
        return None
    return Finding(
        "memorizing_noisy_labels",
        {
            "count": estimated,
            "share": estimated / n_train,
            "started": counts[floor_at + 1][0],
            "floor": round(floor * scale),
            "epoch": epoch,
        },
    )


class RepresentationWatch:
    """The geometry checks over a run being recorded: the tracked training samples, the
    suspects so far, and each captured epoch's separation and memorized count. Reads the
    captured epochs from the run directory (the run is readable from its first epoch on)."""

    def __init__(self, path: Path, t: Thresholds):
        self.path, self.t = path, t
        self.n_train = 0
        self.tracked = self.labels = np.arange(0)
        self.suspected = np.zeros(0, dtype=bool)
        self.history: list[tuple[int, float, float]] = []
        self.counts: list[tuple[int, int]] = []

    def check(self, epoch: int) -> list[Finding]:
        """Check one captured epoch: its training samples' representations and predictions."""
        run = load_run(self.path)
        if not self.history:  # the first captured epoch: the run can be read now
            labels = run.labels[run.splits["train"]]
            self.n_train, self.tracked = len(labels), tracked_samples(len(labels))
            self.labels, self.suspected = labels[self.tracked], np.zeros(len(self.tracked), dtype=bool)
        rows = run.indices("train")[self.tracked]
        x = np.asarray(run.representations(epoch)[rows], dtype=np.float32)
        if not np.isfinite(x).all():
            return []  # a diverged epoch: the loss and gradient checks speak for it
        predictions = np.asarray(run.probabilities(epoch)[rows]).argmax(1)
        self.history.append((epoch, *separation(x, self.labels)))
        self.suspected |= suspects(x, self.labels, self.t)
        self.counts.append((epoch, int((self.suspected & (predictions == self.labels)).sum())))
        found = [
            class_collapse(self.history, self.t),
            memorizing_noisy_labels(self.counts, self.n_train / len(self.tracked), self.n_train, self.t),
        ]
        return [f for f in found if f is not None]
