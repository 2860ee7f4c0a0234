"""AlignedPCA: PCA to 2-D per epoch, aligned frame to frame; a fast projection, and the
linear baseline the time-travelling visualizer is measured against.

Every projection used by :class:`nbdebug.Session` offers the same interface:
``fit(run)`` returns self and sets ``embedding_`` (n_epochs, n_samples, 2);
``transform(epoch, representations)`` places new samples; and
``inverse_transform(epoch, points)`` maps canvas points back to representations
(the decoder used to paint class territories).
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..run import Run


def procrustes_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal 2x2 matrix Q (rotation or reflection) minimising ||source @ Q - target||."""
    u, _, vt = np.linalg.svd(source.T @ target)
    return u @ vt


class AlignedPCA:
    """PCA to 2-D per epoch; each frame is rotated (or mirrored) onto the previous one by
    orthogonal Procrustes and scaled to unit spread, so consecutive frames do not flip
    and epochs whose representations differ in scale look alike.

    Fitted on the training split; every sample is projected.
    """

    def __init__(self, progress: bool = True):
        self.progress = progress

    def fit(self, run: Run) -> AlignedPCA:
        train = run.indices("train")
        n_epochs = len(run.epochs)
        self.epochs_ = list(run.epochs)
        self.mean_ = np.zeros((n_epochs, run.dim), dtype=np.float32)
        self.weights_ = np.zeros((n_epochs, run.dim, 2), dtype=np.float32)  # orthonormal columns, times scale
        self.embedding_ = np.full((n_epochs, run.n_samples, 2), np.nan, dtype=np.float32)
        previous = None
        for i, epoch in enumerate(tqdm(run.epochs, desc="projecting epochs", disable=not self.progress)):
            reps = np.asarray(run.representations(epoch), dtype=np.float32)
            finite = np.all(np.isfinite(reps), axis=1)
            fit_rows = train[finite[train]]
            if len(fit_rows) < 2:
                raise ValueError(
                    f"epoch {epoch} has fewer than two training samples with finite representations; nothing to project"
                )
            mean = reps[fit_rows].mean(axis=0)
            centred = reps[fit_rows] - mean
            # Top-2 principal axes from the (small) covariance matrix.
            _, vectors = np.linalg.eigh(centred.T @ centred)
            axes = vectors[:, ::-1][:, :2].copy()
            if axes.shape[1] < 2:  # representation of dimension 1
                axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
            points = centred @ axes
            spread = float(np.sqrt((points**2).sum(axis=1).mean())) or 1.0
            axes /= spread
            if previous is not None:
                # Align on the samples placed in both frames (a frame may have NaN rows).
                both = fit_rows[np.isfinite(previous[fit_rows]).all(axis=1)]
                if len(both) >= 2:
                    axes = axes @ procrustes_rotation((reps[both] - mean) @ axes, previous[both])
            self.mean_[i], self.weights_[i] = mean, axes
            frame = np.full((run.n_samples, 2), np.nan, dtype=np.float32)
            frame[finite] = (reps[finite] - mean) @ axes
            self.embedding_[i] = frame
            previous = frame
        return self

    def _index(self, epoch: int) -> int:
        if epoch not in self.epochs_:
            raise ValueError(f"epoch {epoch!r} was not fitted; fitted epochs are {self.epochs_}")
        return self.epochs_.index(epoch)

    def transform(self, epoch: int, representations: np.ndarray) -> np.ndarray:
        """Place samples of ``epoch`` (n, dim) on the canvas (n, 2)."""
        i = self._index(epoch)
        return (np.asarray(representations, dtype=np.float32) - self.mean_[i]) @ self.weights_[i]

    def inverse_transform(self, epoch: int, points: np.ndarray) -> np.ndarray:
        """Map canvas points (n, 2) back to representations (n, dim) of ``epoch``."""
        i = self._index(epoch)
        weights = self.weights_[i]
        # weights = axes * (1/spread) @ Q has orthogonal columns of equal norm, so its
        # pseudo-inverse is its transpose divided by that norm squared.
        norm2 = float((weights[:, 0] ** 2).sum()) or 1.0
        return np.asarray(points, dtype=np.float32) @ weights.T / norm2 + self.mean_[i]
