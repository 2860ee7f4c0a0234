"""DeepDebugger's anomaly detector (§4.2): cluster rarity of each dynamic feature.

For one feature, the seen samples (the training split) are clustered by Birch
into ``k`` clusters (cosine geometry: vectors are L2-normalised first). Every
sample of a cluster ``cls`` gets the abnormality ``1 - |cls| / n``. An unseen
sample (test, unlabeled, a new batch) joins the cluster whose centroid is within
that cluster's radius (the largest member distance, eq. 2-3), the nearest such
centroid if several; if none holds it, it forms a new cluster of one and scores
``1 - 1 / (n + 1)``, close to 1. A sample is anomalous for a feature when its
score exceeds ``threshold`` (``th_ab``, 0.98), and anomalous overall when it is
for any feature.

Clustering: Birch's CF tree (subcluster threshold 0.05, shrunk until there are at
least k subclusters), its subclusters agglomerated into k clusters; every seen
sample then joins its nearest cluster centroid, and centroids and radii are
computed from the members. Large or incompressible feature sets are clustered from
a random subset (``MAX_BIRCH_SAMPLES``, ``MAX_INCOMPRESSIBLE``). Feature vectors with
NaN or Inf take no part and score 1.
"""

from __future__ import annotations

import numpy as np

# Imported here, not in the functions: the widget's background job clusters in one thread while
# another computes kNN attributes, and two threads importing scikit-learn for the first time at
# once can fail ("partially initialized module").
from sklearn.cluster import AgglomerativeClustering, Birch

from .._validation import check_int, check_number

# Birch's CF tree is built in Python; above this many seen samples it is built on a
# random subset and the other seen samples join their nearest cluster centroid.
MAX_BIRCH_SAMPLES = 5000
# Agglomerating the subclusters costs the square of their number. Vectors that Birch does
# not compress (velocity and acceleration: nearly every sample is its own subcluster, as a
# probe of this many samples shows) are clustered from the probe alone, about 67 samples per
# cluster at k = 30; from 5,000, a 10,000-sample run's attributes took 5-7 s instead of 2.3-3
# (the "computing all attributes" row of python -m benchmarks.recommend --parts latency).
MAX_INCOMPRESSIBLE = 2000


def abnormality(cluster_sizes) -> np.ndarray:
    """``1 - |cls| / n`` per cluster, n being the total size (§4.2.1)."""
    sizes = np.asarray(cluster_sizes, dtype=np.float64)
    if sizes.ndim != 1 or not len(sizes) or (sizes < 0).any() or sizes.sum() <= 0:
        raise ValueError(f"cluster_sizes must be non-negative counts with a positive total, got {cluster_sizes!r}")
    return 1 - sizes / sizes.sum()


def _birch(points: np.ndarray, k: int):
    """Birch's CF tree of unit vectors; the subcluster radius threshold shrinks until there
    are at least k subclusters."""
    threshold = 0.05
    while True:
        birch = Birch(n_clusters=None, threshold=threshold).fit(points)
        if len(birch.subcluster_centers_) >= k or threshold < 1e-6:
            return birch
        threshold /= 4


def _distinct_rows(x: np.ndarray, enough: int) -> int:
    """How many distinct rows ``x`` has, or any number >= ``enough`` once that many are seen:
    the first rows usually settle it, where counting all of a large set takes a sort of it."""
    head = len(np.unique(x[: 64 * enough], axis=0))
    return head if head >= enough else len(np.unique(x, axis=0))


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


class FeatureDetector:
    """Birch cluster rarity for one dynamic feature.

    Parameters
    ----------
    n_clusters : int
        k, the number of Birch clusters (30 in the paper).
    threshold : float
        ``th_ab``: scores above it are anomalous.
    seed : int
        Seeds the random subsets the clusters are learned from (see the module docstring).

    After ``fit``, ``n_learned_from_`` says how many seen samples the clusters were learned
    from (the others joined the nearest cluster).
    """

    def __init__(self, n_clusters: int = 30, threshold: float = 0.98, seed: int = 0):
        check_int("n_clusters", n_clusters, 1, hint="k, the number of Birch clusters (30 in the paper)")
        check_number("threshold", threshold, 0, 1, hint="th_ab, above which a score is anomalous (0.98 in the paper)")
        self.n_clusters = n_clusters
        self.threshold = threshold
        self.seed = seed

    def fit(self, vectors: np.ndarray) -> FeatureDetector:
        """Cluster the seen samples' feature vectors (n, d); rows with NaN or Inf are skipped."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (n_samples, n_dims), got shape {vectors.shape}")
        finite = np.isfinite(vectors).all(axis=1)
        x = _normalise(vectors[finite])
        if len(x) == 0:
            raise ValueError("no seen sample has a finite feature vector; nothing to learn normality from")
        k = min(self.n_clusters, _distinct_rows(x.round(9), self.n_clusters))
        rng = np.random.default_rng(self.seed)
        subset = x[rng.choice(len(x), MAX_BIRCH_SAMPLES, replace=False)] if len(x) > MAX_BIRCH_SAMPLES else x
        # Birch's CF tree, then the paper's k clusters by agglomerating its subclusters; a
        # probe first tells whether the vectors compress (see MAX_INCOMPRESSIBLE).
        probe = (
            subset[rng.choice(len(subset), MAX_INCOMPRESSIBLE, replace=False)]
            if len(subset) > MAX_INCOMPRESSIBLE
            else subset
        )
        birch = _birch(probe, k)
        if len(birch.subcluster_centers_) < 0.95 * len(probe) and len(probe) < len(subset):
            birch = _birch(subset, k)
        else:
            subset = probe
        k = min(k, len(birch.subcluster_centers_))
        groups = (
            AgglomerativeClustering(n_clusters=k).fit_predict(birch.subcluster_centers_)
            if k > 1
            else np.zeros(len(birch.subcluster_centers_), dtype=int)
        )
        subset_labels = groups[birch.predict(subset)]
        centres = np.array([subset[subset_labels == j].mean(axis=0) for j in np.unique(subset_labels)])
        labels = self._nearest(x, centres)
        used = np.unique(labels)
        labels = np.searchsorted(used, labels)
        self.centroids_ = np.array([x[labels == j].mean(axis=0) for j in range(len(used))])  # eq. 2
        self.sizes_ = np.bincount(labels, minlength=len(used))
        distance = np.linalg.norm(x - self.centroids_[labels], axis=1)
        self.radii_ = np.zeros(len(used))
        np.maximum.at(self.radii_, labels, distance)  # eq. 3
        self.n_seen_ = len(x)
        self.n_learned_from_ = len(subset)
        self.cluster_scores_ = abnormality(self.sizes_)
        self.labels_ = np.full(len(vectors), -1)
        self.labels_[finite] = labels
        self.scores_ = np.ones(len(vectors))
        self.scores_[finite] = self.cluster_scores_[labels]
        return self

    @staticmethod
    def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
        d2 = (x**2).sum(1)[:, None] - 2 * x @ centres.T + (centres**2).sum(1)[None, :]
        return d2.argmin(axis=1)

    @property
    def new_cluster_score(self) -> float:
        """The score of an unseen sample outside every cluster: a cluster of one among n + 1."""
        return 1 - 1 / (self.n_seen_ + 1)

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """Cluster of each unseen sample by centroid and radius (§4.2.2); -1 for a new cluster."""
        x = np.asarray(vectors)
        if x.ndim != 2 or x.shape[1] != self.centroids_.shape[1]:
            raise ValueError(
                f"vectors must have shape (n, {self.centroids_.shape[1]}) like the fitted ones, got {x.shape}"
            )
        finite = np.isfinite(x).all(axis=1)
        x = _normalise(np.where(finite[:, None], x, 0))
        c = self.centroids_
        d = np.sqrt(np.maximum((x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :], 0))
        inside = d <= self.radii_[None, :] + 1e-9
        d_inside = np.where(inside, d, np.inf)
        labels = np.where(inside.any(axis=1), d_inside.argmin(axis=1), -1)
        return np.where(finite, labels, -1)

    def score_unseen(self, vectors: np.ndarray) -> np.ndarray:
        """Abnormality of samples treated as unseen: their cluster's score, or the new-cluster score."""
        labels = self.assign(vectors)
        return np.where(labels >= 0, self.cluster_scores_[np.maximum(labels, 0)], self.new_cluster_score)


class AnomalyDetector:
    """One :class:`FeatureDetector` per dynamic feature, learned on the seen samples.

    ``fit_score_all(features, seen)`` returns the (n, n_features) scores of all samples:
    seen samples score by their own cluster, the others are placed as unseen.
    """

    def __init__(self, n_clusters: int = 30, threshold: float = 0.98, seed: int = 0):
        FeatureDetector(n_clusters, threshold, seed)  # validates the arguments
        self.n_clusters = n_clusters
        self.threshold = threshold
        self.seed = seed

    def fit(self, features: dict[str, np.ndarray], seen: np.ndarray, on_feature=None) -> AnomalyDetector:
        """Learn normality per feature from the rows ``seen`` (indices) of each feature array;
        ``on_feature()`` is called after each feature (progress reporting)."""
        seen = np.asarray(seen)
        if not len(seen):
            raise ValueError("seen must index at least one sample (normally the training split)")
        self.names_ = list(features)
        self.detectors_ = {}
        for name, values in features.items():
            self.detectors_[name] = FeatureDetector(self.n_clusters, self.threshold, self.seed).fit(values[seen])
            if on_feature is not None:
                on_feature()
        return self

    def score_unseen(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """(n, n_features) scores of samples treated as unseen."""
        return np.stack([self.detectors_[name].score_unseen(features[name]) for name in self.names_], axis=1)

    def score_all(self, features: dict[str, np.ndarray], seen: np.ndarray) -> np.ndarray:
        """(n, n_features) scores of every sample after :meth:`fit`: the ``seen`` rows (as
        passed to fit) by their own cluster, the others placed as unseen."""
        scores = self.score_unseen(features)
        for j, name in enumerate(self.names_):
            scores[seen, j] = self.detectors_[name].scores_
        return scores

    def fit_score_all(self, features: dict[str, np.ndarray], seen: np.ndarray) -> np.ndarray:
        """Fit on ``seen`` and score every sample (seen ones by their own cluster, see :meth:`score_all`)."""
        return self.fit(features, seen).score_all(features, seen)

    def is_anomalous(self, scores: np.ndarray) -> np.ndarray:
        """A sample is anomalous when any of its feature scores exceeds ``th_ab``."""
        return np.asarray((np.asarray(scores) > self.threshold).any(axis=1))
