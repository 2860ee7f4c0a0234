"""Per-sample attributes computed from a run's training dynamics.

Two families, each an ``(n_samples,)`` score where higher means "more worth a look":

* the paper's dynamic features (DeepDebugger §4.1): ``location``, ``velocity``,
  ``acceleration`` (from the 2-D canvas trajectories) and ``confidence`` (eq. 1:
  the softmax probability of the sample's label -- the given one, or the
  predicted class where there is none -- and ``2|p - 0.5|`` for a sigmoid output).
  They are raw vectors here (:func:`dynamic_features`); the anomaly detector
  (:mod:`nbdebug.interest.anomaly`) turns each into a cluster-rarity score.
* aggregated attributes (:func:`aggregate_attributes`), each in [0, 1]:

  =============================  =================================================================
  ``datamaps_confidence``        1 - mean over epochs of p(label) (Data Maps)
  ``datamaps_variability``       2 x standard deviation over epochs of p(label)
  ``aum``                        (1 - mean over epochs of the margin p(label) - max other p) / 2
  ``forgetting``                 learned-then-forgotten events / (epochs - 1); 1 if never learned
  ``knn_disagreement``           share of the 10 nearest training samples (last-epoch
                                 representation, cosine) whose given label differs from label
  ``least_confidence``           1 - max p, last epoch
  ``margin``                     1 - (top p - second p), last epoch
  ``entropy``                    prediction entropy / log(n_classes), last epoch
  ``prediction_flips``           changes of the predicted class / (epochs - 1)
  ``late_flip``                  how late the prediction last changed (0 never, 1 at the last epoch)
  ``knn_distance``               half the cosine-space distance to the 10th nearest training sample
  ``alternative_probability``    mean over epochs of p(alternative), the class other
                                 than label that the model believed in most
  ``label=<c>``                  1 if the given label is class c (only for <= 32 classes)
  ``predicted=<c>``              1 if the last epoch predicts class c (only for <= 32 classes)
  ``alternative=<c>``            1 if the alternative is class c (only for <= 32 classes)
  =============================  =================================================================

  "label" is the given label where there is one and the last epoch's prediction
  for unlabeled samples, so the label-aware attributes become uncertainty
  measures on an unlabeled pool. The class indicators let a linear learner pick
  out one confusion ("true 3 labelled 8"), also where the model has memorised the
  wrong label: the alternative then still names the true class, since the model
  believed it for a while.

Non-finite values (a sample whose representation or prediction blew up) get the
score 1: such a sample is always worth a look.

:func:`save_attributes` and :func:`load_attributes` keep computed attributes in the run
directory under a key of what they were computed from (the file is described in
:mod:`nbdebug.run`).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import IO

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors  # at import: see the note in anomaly.py
from tqdm.auto import tqdm

from .._io import write_atomically
from ..landscape.neighbours import clustered_reference_knn
from ..run import Run

# The class indicators take three columns per class; above this many classes they are left
# out, which bounds the attributes at about a hundred columns.
MAX_INDICATOR_CLASSES = 32
# The training samples the k-NN attributes compare a sample with: a small neighbourhood keeps
# knn_disagreement and knn_distance local.
N_NEIGHBOURS = 10
# Above this many samples a progress bar is shown while attributes are computed.
PROGRESS_MIN_SAMPLES = 5000
# Above this many labelled training samples, the neighbours of the kNN attributes are searched
# approximately (clustered_reference_knn, 12 lists probed): python -m benchmarks.neighbours
# measured 7.3 s exact against 0.9 s at a recall of 0.964 for 55,000 samples among 50,000,
# and 114 s against 6.6 s at 0.945 for 220,000 among 200,000. The runs of
# python -m benchmarks.recommend stay exact.
EXACT_NEIGHBOURS_MAX = 20_000


def select_epochs(run: Run, epochs=None) -> list[int]:
    """The epoch numbers to use: all recorded ones by default, else a checked subset."""
    if epochs is None:
        return list(run.epochs)
    epochs = [int(e) for e in epochs]
    missing = [e for e in epochs if e not in run.epochs]
    if missing:
        raise ValueError(f"epochs {missing} were not captured; pass a subset of run.epochs = {run.epochs}")
    if not epochs:
        raise ValueError("epochs must name at least one captured epoch, got an empty list")
    return sorted(set(epochs))


def confidence(probabilities: np.ndarray, labels: np.ndarray | None = None, sigmoid: bool = False) -> np.ndarray:
    """Eq. 1 of the paper, (..., n) from (..., n, n_classes) probabilities.

    Softmax: the probability of the sample's label (``labels``, -1 = none: the
    predicted class), or of the predicted class when no labels are given.
    Sigmoid: ``2|p - 0.5|`` of the positive-class probability p.
    """
    if sigmoid:
        return 2 * np.abs(probabilities[..., 1] - 0.5)
    top = np.nan_to_num(probabilities, nan=-1.0).argmax(axis=-1)
    if labels is not None:
        labels = np.asarray(labels)
        top = np.where(labels >= 0, labels, top)
    return np.take_along_axis(probabilities, top[..., None], axis=-1)[..., 0]


def dynamic_features(embedding: np.ndarray, confidences: np.ndarray) -> dict[str, np.ndarray]:
    """The paper's raw feature vectors per sample.

    Parameters
    ----------
    embedding : (n_epochs, n, 2) canvas positions over the chosen epochs.
    confidences : (n_epochs, n) eq. 1 confidence.

    Returns ``{"location": (n, 2E), "velocity": (n, 2(E-1)), "acceleration": (n, 2(E-2)),
    "confidence": (n, E)}``; velocity needs two epochs and acceleration three, and
    they are left out when the run has fewer.
    """
    embedding = np.asarray(embedding, dtype=np.float32)
    if embedding.ndim != 3 or embedding.shape[2] != 2:
        raise ValueError(f"embedding must have shape (n_epochs, n_samples, 2), got {embedding.shape}")
    trajectory = embedding.transpose(1, 0, 2)  # (n, E, 2)
    n, n_epochs = trajectory.shape[:2]
    features = {"location": trajectory.reshape(n, -1)}
    if n_epochs >= 2:
        velocity = np.diff(trajectory, axis=1)
        features["velocity"] = velocity.reshape(n, -1)
        if n_epochs >= 3:
            features["acceleration"] = np.diff(velocity, axis=1).reshape(n, -1)
    features["confidence"] = np.asarray(confidences, dtype=np.float32).T.copy()
    return features


def load_probabilities(run: Run, epochs: list[int], progress: bool = False, on_epoch=None) -> np.ndarray:
    """(len(epochs), n_samples, n_classes) float32 probabilities; ``on_epoch()`` is called
    after each epoch is read (for a caller's own progress bar)."""
    probs = np.empty((len(epochs), run.n_samples, run.n_classes), dtype=np.float32)
    for i, epoch in enumerate(tqdm(epochs, desc="reading predictions", disable=not progress)):
        probs[i] = run.probabilities(epoch)
        if on_epoch is not None:
            on_epoch()
    return probs


def _neighbours(representations: np.ndarray, reference: np.ndarray, k: int, exact: bool | None = None):
    """Distances and indices (into ``reference``) of each sample's k nearest reference
    samples under cosine geometry, a sample never being its own neighbour; searched exactly
    or approximately as ``exact`` says (default: exactly up to EXACT_NEIGHBOURS_MAX
    reference samples)."""
    reps = np.asarray(representations, dtype=np.float32)
    finite = np.asarray(np.isfinite(reps).all(axis=1))
    reps = np.where(finite[:, None], reps, 0)
    reps /= np.maximum(np.linalg.norm(reps, axis=1, keepdims=True), 1e-12)
    reference = reference[finite[reference]]
    n = len(reps)
    dist = np.full((n, k), np.nan, dtype=np.float32)
    idx = np.full((n, k), -1, dtype=np.int64)
    if len(reference) < 2:
        return dist, idx, finite
    k_fit = min(k + 1, len(reference))
    if exact is None:
        exact = len(reference) <= EXACT_NEIGHBOURS_MAX
    if not exact:
        found = clustered_reference_knn(
            torch.from_numpy(reps[finite]), torch.from_numpy(reps[reference]), k_fit, probes=12
        )
        d, j = found[0].numpy(), found[1].numpy()
    else:
        d, j = NearestNeighbors(n_neighbors=k_fit).fit(reps[reference]).kneighbors(reps[finite])
    j = reference[j]
    rows = np.flatnonzero(finite)
    # Drop the sample itself where it is among its neighbours, else the farthest one.
    is_self = j == rows[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k_fit - 1)
    keep = np.ones_like(is_self)
    keep[np.arange(len(rows)), drop] = False
    width = k_fit - 1
    dist[finite, :width] = d[keep].reshape(-1, width)
    idx[finite, :width] = j[keep].reshape(-1, width)
    return dist, idx, finite


def aggregate_attributes(
    run: Run, epochs=None, progress: bool | None = None, probabilities: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The aggregated attributes of every sample (see the module docstring), each (n,) float32.

    ``probabilities`` (n_epochs, n, n_classes) may be passed when already loaded.
    """
    epochs = select_epochs(run, epochs)
    if progress is None:
        progress = run.n_samples >= PROGRESS_MIN_SAMPLES
    probs = load_probabilities(run, epochs, progress) if probabilities is None else probabilities
    n_epochs, n, c = probs.shape
    bad = ~np.isfinite(probs).all(axis=2)  # (E, n) epochs where a sample's prediction is unusable
    safe = np.where(bad[..., None], np.nan, probs)
    last = probs[-1]
    last_bad = bad[-1]

    predicted = np.where(bad, -1, np.nan_to_num(probs).argmax(axis=2))  # (E, n)
    given = np.asarray(run.labels)
    label = np.where(given >= 0, given, np.maximum(predicted[-1], 0))
    rows = np.arange(n)

    # Samples whose every epoch is unusable give all-NaN slices; they are set to 1 below.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_label = safe[:, rows, label]  # (E, n)
        others = safe.copy()
        others[:, rows, label] = -np.inf
        best_other = others.max(axis=2) if c > 1 else np.zeros((n_epochs, n))
        margin_label = p_label - np.where(np.isfinite(best_other), best_other, 0)
        attrs = {
            "datamaps_confidence": 1 - np.nanmean(p_label, axis=0),
            "datamaps_variability": 2 * np.nanstd(p_label, axis=0),
            "aum": (1 - np.nanmean(margin_label, axis=0)) / 2,
        }
        correct = (predicted == label) & ~bad
        if n_epochs > 1:
            forgotten = (correct[:-1] & ~correct[1:]).sum(axis=0) / (n_epochs - 1)
        else:
            forgotten = (~correct[0]).astype(np.float64)
        attrs["forgetting"] = np.where(correct.any(axis=0), forgotten, 1.0)

        train = run.indices("train") if "train" in run.splits else np.arange(n)
        reference = train[given[train] >= 0]
        if len(reference) < 2:  # no labels to compare with: use the predictions instead
            reference = train
        dist, idx, finite = _neighbours(run.representations(epochs[-1]), reference, N_NEIGHBOURS)
        found = idx >= 0
        disagree = (label[np.maximum(idx, 0)] != label[:, None]) & found
        attrs["knn_disagreement"] = np.where(
            found.any(axis=1), disagree.sum(axis=1) / np.maximum(found.sum(axis=1), 1), 1.0
        )
        kth = np.where(found, dist, np.nan)
        attrs["knn_distance"] = np.where(found.any(axis=1), np.nanmax(kth, axis=1) / 2, 1.0)

        # The alternative: the class other than label with the highest mean probability.
        mean_others = np.nanmean(others, axis=0)  # (n, c), -inf at label
        # A class with no usable epoch (NaN) still ranks above the label.
        alternative = np.nan_to_num(mean_others, nan=-1.0, neginf=-np.inf).argmax(axis=1)
        attrs["alternative_probability"] = mean_others[rows, alternative] if c > 1 else np.zeros(n)

        top2 = -np.sort(-np.nan_to_num(last, nan=0.0), axis=1)[:, :2]
        second = top2[:, 1] if c > 1 else 0.0
        attrs["least_confidence"] = 1 - top2[:, 0]
        attrs["margin"] = 1 - (top2[:, 0] - second)
        entropy = -(np.where(last > 0, last * np.log(np.where(last > 0, last, 1)), 0)).sum(axis=1)
        attrs["entropy"] = entropy / np.log(c) if c > 1 else np.zeros(n)
        for name in ("least_confidence", "margin", "entropy"):
            attrs[name] = np.where(last_bad, 1.0, attrs[name])

        if n_epochs > 1:
            changes = predicted[1:] != predicted[:-1]  # (E-1, n)
            attrs["prediction_flips"] = changes.sum(axis=0) / (n_epochs - 1)
            position = np.arange(1, n_epochs)[:, None] * changes
            attrs["late_flip"] = position.max(axis=0) / (n_epochs - 1)
        else:
            attrs["prediction_flips"] = np.zeros(n)
            attrs["late_flip"] = np.zeros(n)

    any_bad = bad.any(axis=0) | ~finite
    out = {}
    for name, values in attrs.items():
        values = np.asarray(values, dtype=np.float32)
        out[name] = np.where(np.isfinite(values) & ~any_bad, np.clip(values, 0, 1), 1.0).astype(np.float32)
    if c <= MAX_INDICATOR_CLASSES:
        for group, classes in (("label", label), ("predicted", predicted[-1]), ("alternative", alternative)):
            for k, name in enumerate(run.classes):
                out[f"{group}={name}"] = (classes == k).astype(np.float32)
    return out


# -- the cache in the run directory --------------------------------------------------------

# Bump when an attribute's definition changes: attributes cached by older code are recomputed.
ATTRIBUTES_VERSION = 4


def save_attributes(path, key: dict, attributes: dict[str, np.ndarray]) -> bool:
    """Write ``attributes`` and the ``key`` they were computed under to ``path`` (.npz: a
    (n, n_attributes) float32 ``scores`` array, the ``names`` and the key as JSON text;
    nothing pickled). A cache, so written atomically but not durably (see
    :mod:`nbdebug._io`). Returns False, writing nothing, when the directory is not writable."""

    def write(f: IO[bytes]) -> None:
        np.savez(
            f,
            scores=np.stack(list(attributes.values()), axis=1).astype(np.float32),
            names=np.array(list(attributes), dtype=str),
            key=np.array(json.dumps(key, sort_keys=True)),
        )

    try:
        write_atomically(Path(path), write, durable=False)
    except OSError:
        return False
    return True


def load_attributes(path, key: dict) -> dict[str, np.ndarray] | None:
    """The attributes saved at ``path`` under exactly ``key``; None when there are none, they
    were computed under another key, or the file is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            if json.loads(str(saved["key"])) != json.loads(json.dumps(key, sort_keys=True)):
                return None
            scores, names = saved["scores"], [str(name) for name in saved["names"]]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if scores.ndim != 2 or scores.shape[1] != len(names):
        return None
    return {name: scores[:, j].copy() for j, name in enumerate(names)}
