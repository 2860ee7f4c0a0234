"""The kernel-side state of one debugging session over a recorded run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .projection import AlignedPCA
from .run import Run, load_run


class Session:
    """Holds a run and what nbdebug computes from it: the 2-D landscape of every epoch
    (and, as they land, anomaly scores, recommendations and the user's feedback).

    Parameters
    ----------
    run : Run, str or Path
        A run from :func:`nbdebug.load_run`, or the path of a run directory.
    projection : optional
        The projection placing samples on the canvas; default :class:`AlignedPCA`.
        Anything with ``fit(run)``, ``embedding_``, ``transform`` and
        ``inverse_transform`` (see :mod:`nbdebug.projection`) fits here.
    """

    def __init__(self, run: Run | str | Path, projection=None):
        if isinstance(run, (str, Path)):
            run = load_run(run)
        if not isinstance(run, Run):
            raise TypeError(f"run must be a Run from nbdebug.load_run or a run directory path, "
                            f"got {type(run).__name__}")
        self.run = run
        self.projection = projection if projection is not None else AlignedPCA()
        self._fitted = False

    def __repr__(self) -> str:
        return f"Session({self.run!r}, projection={type(self.projection).__name__}, fitted={self._fitted})"

    def fit(self) -> Session:
        """Fit the projection over every recorded epoch."""
        self.projection.fit(self.run)
        self._fitted = True
        return self

    @property
    def embedding(self) -> np.ndarray:
        """(n_epochs, n_samples, 2) float32 canvas positions; NaN for non-finite samples."""
        if not self._fitted:
            self.fit()
        return self.projection.embedding_

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the canvas: every epoch's points with a margin."""
        points = self.embedding.reshape(-1, 2)
        points = points[np.isfinite(points).all(axis=1)]
        if not len(points):
            return (-1.0, 1.0, -1.0, 1.0)
        low, high = points.min(axis=0), points.max(axis=0)
        margin = np.maximum((high - low) * 0.05, 1e-6)
        low, high = low - margin, high + margin
        return (float(low[0]), float(high[0]), float(low[1]), float(high[1]))
