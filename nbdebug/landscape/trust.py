"""Which dots of a frame the canvas misplaces: the per-sample side of the faithfulness figures.

* ``territory``: the territory painted under the dot (its position decoded back to a
  representation and classified by the epoch's head) is not the class the model predicts
  for the sample: the per-sample side of PPR.
* ``neighbours``: the sample kept fewer than ``min_kept`` of its ``k`` nearest neighbours in
  representation space among its ``k`` nearest on the canvas (neighbours within its split):
  the per-sample side of NPR@k.

Every sample is scored: neighbours are searched exactly up to 20,000 samples a split, and
by the clustered search of :mod:`nbdebug.landscape.neighbours` above (recall@10 about 0.96 at
50,000, ``python -m benchmarks.neighbours``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..head import load_head
from ..run import Run
from .metrics import prediction_preserved
from .neighbours import clustered_knn, knn

K = 15
MIN_KEPT = 2  # fewer of the 15 kept neighbours than this: the dot's surroundings are not its own
EXACT_MAX = 20_000  # as nbdebug.interest.features.EXACT_NEIGHBOURS_MAX


def misplaced(
    run: Run,
    projection,
    epoch: int,
    positions: np.ndarray,
    head_module: torch.nn.Module | None = None,
    territories: bool = True,
    k: int = K,
    min_kept: int = MIN_KEPT,
) -> dict[str, np.ndarray]:
    """Per sample of ``run`` at ``epoch`` (``positions``: its (n, 2) canvas positions), whether
    the canvas misplaces it: ``{"territory": bool (n,), "neighbours": bool (n,)}``. Samples
    without a finite position or representation are not flagged, nor is any territory
    without ``territories`` (a head that cannot be rebuilt paints none)."""
    reps = np.asarray(run.representations(epoch), dtype=np.float32)
    positions = np.asarray(positions, dtype=np.float32)
    finite = np.isfinite(reps).all(axis=1) & np.isfinite(positions).all(axis=1)
    territory = np.zeros(run.n_samples, dtype=bool)
    neighbours = np.zeros(run.n_samples, dtype=bool)
    rows = np.flatnonzero(finite)
    if territories and hasattr(projection, "inverse_transform") and len(rows):
        head = load_head(run, epoch, head_module)
        rebuilt = projection.inverse_transform(epoch, positions[rows])
        territory[rows] = ~prediction_preserved(head, reps[rows], rebuilt)
    for split in run.splits:
        rows = run.indices(split)
        rows = rows[finite[rows]]
        if len(rows) > k:
            neighbours[rows] = kept_neighbours(reps[rows], positions[rows], k) < min_kept
    return {"territory": territory, "neighbours": neighbours}


def kept_neighbours(high: np.ndarray, low: np.ndarray, k: int = K) -> np.ndarray:
    """Per row, how many of its ``k`` nearest rows in ``high`` are among its ``k`` nearest in ``low``."""
    search = knn if len(high) <= EXACT_MAX else clustered_knn
    near_high = search(torch.from_numpy(np.ascontiguousarray(high)), k)[1].numpy()
    near_low = search(torch.from_numpy(np.ascontiguousarray(low)), k)[1].numpy()
    return (near_high[:, :, None] == near_low[:, None, :]).any(axis=2).sum(axis=1)
