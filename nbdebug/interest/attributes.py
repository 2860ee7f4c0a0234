"""The attributes of a session's samples under one embedding: the paper's anomaly scores of
their trajectories and confidence and, in default mode, the aggregated attributes of
:mod:`nbdebug.interest.features`. They are computed once and kept in the run directory
(``attributes-<mode>.npz``) under a key of everything they depend on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..head import is_single_unit
from ..run import Run
from .anomaly import AnomalyDetector
from .features import (
    ATTRIBUTES_VERSION,
    PROGRESS_MIN_SAMPLES,
    aggregate_attributes,
    confidence,
    dynamic_features,
    load_attributes,
    load_probabilities,
    save_attributes,
)

PAPER_ATTRIBUTES = ("location", "velocity", "acceleration", "confidence")


class SampleAttributes:
    """Computes and caches the attributes of ``run``'s samples over ``epochs`` in ``mode``,
    fitting ``detector`` (the paper's) on the training split on the way; ``seed`` is the
    session's (part of the cache key)."""

    def __init__(self, run: Run, epochs: list[int], mode: str, detector: AnomalyDetector, seed: int):
        self.run, self.epochs, self.mode, self.detector, self.seed = run, epochs, mode, detector, seed

    @cached_property
    def single_unit(self) -> bool:
        """Whether the run's head has one output unit (read from the run once)."""
        return is_single_unit(self.run)

    def features(self, positions: np.ndarray, probabilities: np.ndarray, labels) -> dict[str, np.ndarray]:
        """The paper's raw feature vectors of samples from their ``positions`` over the chosen
        epochs, ``probabilities`` at the same epochs and given ``labels`` (None: none, see
        :func:`~nbdebug.interest.features.confidence`)."""
        return dynamic_features(positions, confidence(probabilities, labels, self.single_unit))

    def seen(self) -> np.ndarray:
        """The samples the anomaly detector learns normality from: the training split."""
        return self.run.indices("train") if "train" in self.run.splits else np.arange(self.run.n_samples)

    def fit_detector(self, embedding: np.ndarray) -> None:
        """Fit the detector alone (when the attributes came from the cache)."""
        probabilities = load_probabilities(self.run, self.epochs)
        self.detector.fit(self.features(embedding, probabilities, self.run.labels), self.seen())

    def steps(self) -> int:
        """How many steps :meth:`compute` reports: each epoch read, each feature clustered and,
        in default mode, the aggregated attributes."""
        n_features = 2 + min(len(self.epochs) - 1, 2)  # location, confidence, velocity?, acceleration?
        return len(self.epochs) + n_features + (self.mode == "default")

    def compute(self, embedding: np.ndarray, progress: bool, on_step: Callable[[], None] | None = None):
        """Attribute name -> (n_samples,) float32 scores (fitting the detector). A progress bar
        is shown for large runs when ``progress``; ``on_step()`` follows each of :meth:`steps`."""

        def step() -> None:
            bar.update()
            if on_step is not None:
                on_step()

        show = progress and self.run.n_samples >= PROGRESS_MIN_SAMPLES
        with tqdm(total=self.steps(), desc="computing attributes", disable=not show) as bar:
            probs = load_probabilities(self.run, self.epochs, on_epoch=step)
            # The aggregated attributes (numpy and torch, which release the GIL) are computed
            # beside the clustering (mostly Python, which holds it), so the two overlap. One
            # BLAS thread each: OpenBLAS's own threads, called from two threads at once beside
            # scikit-learn's OpenMP loops, printed "Detect OpenMP Loop and this application may
            # hang" in notebooks, and the machine has no cores to spare for them anyway.
            with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(1) as pool:
                aggregated = None
                if self.mode == "default":
                    aggregated = pool.submit(
                        aggregate_attributes, self.run, self.epochs, progress=False, probabilities=probs
                    )
                features = self.features(embedding, probs, self.run.labels)
                seen = self.seen()
                self.detector.fit(features, seen, on_feature=step)
                scores = self.detector.score_all(features, seen).T
                attributes = {name: values.astype(np.float32) for name, values in zip(features, scores, strict=True)}
                if aggregated is not None:
                    attributes.update(aggregated.result())
                    step()
        return attributes

    def key(self, embedding: np.ndarray) -> dict:
        """What the cached attributes depend on: the recorded data, the labels, the embedding of
        the chosen epochs, the parameters and the attribute code's version."""
        return {
            "version": ATTRIBUTES_VERSION,
            "mode": self.mode,
            "epochs": self.epochs,
            "n_clusters": self.detector.n_clusters,
            "threshold": self.detector.threshold,
            "seed": self.seed,
            "run": self.run.fingerprint(),
            "labels": hashlib.sha256(np.ascontiguousarray(self.run.labels).tobytes()).hexdigest(),
            "embedding": hashlib.sha256(np.ascontiguousarray(embedding).tobytes()).hexdigest(),
        }

    def load_or_compute(
        self, embedding: np.ndarray, progress: bool, on_step: Callable[[], None] | None = None
    ) -> tuple[dict[str, np.ndarray], bool]:
        """The attributes from the cache, else computed (:meth:`compute`) and cached; and
        whether they were computed (which fitted the detector)."""
        path = self.run.path / f"attributes-{self.mode}.npz"
        key = self.key(embedding)
        attributes = load_attributes(path, key)
        if attributes is not None:
            return attributes, False
        attributes = self.compute(embedding, progress, on_step)
        save_attributes(path, key, attributes)  # a read-only run directory is left as it is
        return attributes, True
