"""Anomaly scores of samples a session has not seen, placed by centroid and radius
(DeepDebugger §4.2.2); see :meth:`nbdebug.Session.score_unseen`."""

from __future__ import annotations

import numpy as np
import torch

from .. import head
from ..run import Run
from .anomaly import AnomalyDetector
from .attributes import SampleAttributes


def score_unseen(
    run: Run,
    epochs: list[int],
    projection,
    attributes: SampleAttributes,
    detector: AnomalyDetector,
    head_module,
    representations,
    labels=None,
    probabilities=None,
) -> np.ndarray:
    """(m, n_features) float32 scores of the new samples; ``head_module`` is the session's (None:
    the run's own heads), the arguments after it are those of
    :meth:`nbdebug.Session.score_unseen`, ``projection`` fitted."""
    reps = _per_epoch(epochs, representations, "representations", run.dim)
    m = reps.shape[1]
    if probabilities is None:
        head_module = head.check_rebuild(run, head_module)
        probs = np.empty((len(epochs), m, run.n_classes), dtype=np.float32)
        for i, epoch in enumerate(epochs):
            with torch.no_grad():
                probs[i] = head.probabilities(head.load_head(run, epoch, head_module)(torch.from_numpy(reps[i])))
    else:
        probs = _per_epoch(epochs, probabilities, "probabilities", run.n_classes)
        if probs.shape[1] != m:
            raise ValueError(
                f"probabilities hold {probs.shape[1]} samples per epoch but representations hold "
                f"{m}; pass both for the same samples"
            )
    if labels is not None:
        labels = np.asarray(labels)
        if (
            labels.shape != (m,)
            or labels.dtype.kind not in "iu"
            or (labels < -1).any()
            or (labels >= run.n_classes).any()
        ):
            raise ValueError(
                f"labels must be {m} integer class indices in -1..{run.n_classes - 1} "
                f"(-1: no label), got {labels.dtype} {labels.shape}"
            )
    positions = np.stack([projection.transform(epoch, reps[i]) for i, epoch in enumerate(epochs)])
    features = attributes.features(positions, probs, labels)
    return detector.score_unseen(features).astype(np.float32)


def _per_epoch(epochs: list[int], values, name: str, width: int) -> np.ndarray:
    """(n_epochs, m, width) float32 from an array or a dict keyed by epoch; raises naming ``name``."""
    if isinstance(values, dict):
        missing = [e for e in epochs if e not in values]
        if missing:
            raise ValueError(f"{name} lacks epochs {missing}; give one array per epoch of session.epochs = {epochs}")
        values = [np.asarray(values[e], dtype=np.float32) for e in epochs]
        if len({v.shape for v in values}) > 1:
            raise ValueError(
                f"{name} must hold arrays of one shape (m, {width}) for every epoch, "
                f"got {sorted({v.shape for v in values})}"
            )
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 3 or array.shape[0] != len(epochs) or array.shape[2] != width:
        raise ValueError(
            f"{name} must have shape (n_epochs={len(epochs)}, m, {width}), one (m, {width}) "
            f"array per epoch of session.epochs, got {array.shape}"
        )
    return np.ascontiguousarray(array)
