"""How far to trust each frame of a projection: neighbourhood, prediction and time faithfulness.

* NPR@k (neighbour preserving rate, DVI/TimeVis): for a sample, the fraction of its k
  nearest neighbours in representation space that are also among its k nearest on the
  canvas; neighbours are searched within the same split.
* PPR (prediction preserving rate, DVI): the fraction of samples for which the epoch's
  head predicts the same class from the reconstruction ψ(φ(r)) as from r.
* Temporal smoothness between consecutive frames: the median displacement of a sample
  relative to the canvas spread, and the rotation (degrees) and reflection of the
  orthogonal Procrustes map from one frame to the next. A frame flip shows as a large
  rotation or a reflection.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..head import load_head, predicted_class
from ..run import Run
from .neighbours import knn
from .projection import procrustes_rotation


def neighbor_preserving_rate(
    high: np.ndarray, low: np.ndarray, k: int = 15, queries: np.ndarray | None = None
) -> np.ndarray:
    """Per-query NPR@k between ``high`` (n, d) representations and ``low`` (n, 2) positions.

    ``queries`` (indices into the rows) limits the samples scored; their neighbours are
    still searched among all n rows. Rows must be finite.
    """
    high, low = np.ascontiguousarray(high, dtype=np.float32), np.ascontiguousarray(low, dtype=np.float32)
    if high.ndim != 2 or low.ndim != 2 or len(high) != len(low):
        raise ValueError(f"high and low must be 2-D with the same number of rows, got {high.shape} and {low.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1 or k >= len(high):
        raise ValueError(f"k must be an integer between 1 and n - 1 = {len(high) - 1}, got {k!r}")
    queries = np.arange(len(high)) if queries is None else np.asarray(queries, dtype=np.int64)
    near_high = knn(torch.from_numpy(high), k, queries=queries, chunk=1024)[1].numpy()
    near_low = knn(torch.from_numpy(low), k, queries=queries, chunk=1024)[1].numpy()
    shared = (near_high[:, :, None] == near_low[:, None, :]).any(axis=2).sum(axis=1)
    return shared / k


def prediction_preserved(head: torch.nn.Module, representations: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per row, whether ``head`` predicts the same class for the reconstruction as for the
    representation (bool)."""
    with torch.no_grad():
        original = head(torch.as_tensor(np.asarray(representations, dtype=np.float32)))
        rebuilt = head(torch.as_tensor(np.asarray(reconstructions, dtype=np.float32)))
    return (predicted_class(original) == predicted_class(rebuilt)).numpy()


def prediction_preserving_rate(
    head: torch.nn.Module, representations: np.ndarray, reconstructions: np.ndarray
) -> float:
    """Fraction of rows where ``head`` predicts the same class for the reconstruction as
    for the representation."""
    same = prediction_preserved(head, representations, reconstructions)
    return float(same.mean()) if len(same) else float("nan")


def procrustes_angle(source: np.ndarray, target: np.ndarray) -> tuple[float, bool]:
    """Rotation in degrees (0..180) and whether a reflection is needed, of the orthogonal
    map that best carries the centred ``source`` (n, 2) onto the centred ``target``."""
    a = source - source.mean(axis=0)
    b = target - target.mean(axis=0)
    q = procrustes_rotation(a, b)
    reflected = bool(np.linalg.det(q) < 0)
    if reflected:  # angle of the rotation part once the reflection is removed
        q = q @ np.diag([1.0, -1.0])
    return float(abs(np.degrees(np.arctan2(q[1, 0], q[0, 0])))), reflected


def temporal_smoothness(embedding: np.ndarray) -> dict[str, np.ndarray]:
    """Frame-to-frame motion of an (n_epochs, n, 2) embedding.

    Returns arrays of length n_epochs - 1 (transition e -> e+1): ``displacement``, the
    median distance a sample moves divided by the RMS spread of frame e;
    ``rotation``, degrees; ``reflection``, bool. Samples not finite in both frames are skipped.
    """
    embedding = np.asarray(embedding, dtype=np.float64)
    if embedding.ndim != 3 or embedding.shape[2] != 2:
        raise ValueError(f"embedding must have shape (n_epochs, n_samples, 2), got {embedding.shape}")
    displacement, rotation, reflection = [], [], []
    for before, after in itertools.pairwise(embedding):
        ok = np.isfinite(before).all(axis=1) & np.isfinite(after).all(axis=1)
        if ok.sum() < 3:
            displacement.append(np.nan)
            rotation.append(np.nan)
            reflection.append(False)
            continue
        b, a = before[ok], after[ok]
        spread = np.sqrt(((b - b.mean(axis=0)) ** 2).sum(axis=1).mean()) or 1.0
        displacement.append(float(np.median(np.linalg.norm(a - b, axis=1)) / spread))
        angle, flipped = procrustes_angle(b, a)
        rotation.append(angle)
        reflection.append(flipped)
    return {
        "displacement": np.array(displacement),
        "rotation": np.array(rotation),
        "reflection": np.array(reflection, dtype=bool),
    }


def standard_error(values: np.ndarray, population: int) -> float:
    """Standard error of the mean of ``values``, a sample drawn without replacement from
    ``population`` values: their standard deviation over √m, times √(1 - m / population)
    (0 when the sample is the whole population)."""
    m = len(values)
    if m < 2:
        return float("nan")
    return float(np.std(values, ddof=1) / np.sqrt(m) * np.sqrt(max(0.0, 1 - m / population)))


def evaluate(
    run: Run,
    projection: Any,
    k: int = 15,
    splits: tuple[str, ...] = ("train", "test"),
    max_queries: int | None = 2000,
    seed: int = 0,
    head_module: torch.nn.Module | None = None,
    ppr: bool = True,
    on_epoch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Faithfulness of a fitted projection, per epoch of ``run``.

    Returns ``{"epochs": [...], "npr_<split>": (n_epochs,), "ppr_<split>": (n_epochs,),
    "npr_<split>_se", "ppr_<split>_se", "displacement": (n_epochs,), "rotation": (n_epochs,),
    "reflection": (n_epochs,)}``; the temporal entries of the first epoch are NaN / False
    (nothing before it).

    NPR and PPR of a split are estimated on one random subsample of at most ``max_queries``
    of its samples (drawn once with ``seed``, the same samples at every epoch; None: every
    sample), the neighbours of each searched exactly among the whole split. ``*_se`` is the
    standard error of each estimate (:func:`standard_error`; 0 when it is exact), so
    ±1.96 se bounds the exact value with 95% confidence. PPR needs
    ``projection.inverse_transform``; pass ``ppr=False`` for a projection without one.
    Splits absent from the run are skipped. ``on_epoch()`` is called after each epoch.
    """
    embedding = np.asarray(projection.embedding_)
    if embedding.shape[:2] != (len(run.epochs), run.n_samples):
        raise ValueError(
            f"projection.embedding_ has shape {embedding.shape} but the run has "
            f"{len(run.epochs)} epochs and {run.n_samples} samples; fit the projection on this run"
        )
    rng = np.random.default_rng(seed)
    present = [s for s in splits if s in run.splits and len(run.indices(s)) > k]
    chosen = {}  # per split: whether each of its samples is in the subsample
    for split in present:
        n = len(run.indices(split))
        chosen[split] = np.zeros(n, dtype=bool)
        if max_queries is None or n <= max_queries:
            chosen[split][:] = True
        else:
            chosen[split][rng.choice(n, max_queries, replace=False)] = True
    scores = ["npr", "ppr"] if ppr else ["npr"]
    result: dict[str, Any] = {"epochs": list(run.epochs)}
    for split in present:
        for score in scores:
            result[f"{score}_{split}"] = np.full(len(run.epochs), np.nan)
            result[f"{score}_{split}_se"] = np.full(len(run.epochs), np.nan)
    for i, epoch in enumerate(run.epochs):
        reps = np.asarray(run.representations(epoch), dtype=np.float32)
        head = load_head(run, epoch, head_module) if ppr else None
        for split in present:
            rows = run.indices(split)
            finite = np.isfinite(reps[rows]).all(axis=1) & np.isfinite(embedding[i, rows]).all(axis=1)
            rows, queries = rows[finite], np.flatnonzero(chosen[split][finite])
            if len(rows) <= k or not len(queries):
                continue
            kept = neighbor_preserving_rate(reps[rows], embedding[i, rows], k, queries)
            result[f"npr_{split}"][i] = kept.mean()
            result[f"npr_{split}_se"][i] = standard_error(kept, len(rows))
            if head is not None:  # PPR asked for
                sample = rows[queries]
                rebuilt = projection.inverse_transform(epoch, embedding[i, sample])
                same = prediction_preserved(head, reps[sample], rebuilt).astype(np.float64)
                result[f"ppr_{split}"][i] = same.mean()
                result[f"ppr_{split}_se"][i] = standard_error(same, len(rows))
        if on_epoch is not None:
            on_epoch()
    smooth = temporal_smoothness(embedding)
    result["displacement"] = np.concatenate([[np.nan], smooth["displacement"]])
    result["rotation"] = np.concatenate([[np.nan], smooth["rotation"]])
    result["reflection"] = np.concatenate([[False], smooth["reflection"]])
    return result
