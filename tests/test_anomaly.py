"""The Birch anomaly detector: the paper's worked example, the unseen-sample rule, real runs."""

from __future__ import annotations

import numpy as np
import pytest

from nbdebug import load_run
from nbdebug.interest.anomaly import MAX_INCOMPRESSIBLE, AnomalyDetector, FeatureDetector, abnormality
from nbdebug.interest.features import confidence, dynamic_features
from nbdebug.session import Session


def test_paper_worked_example_cluster_sizes():
    # §4.2.1: clusters of 45,000 / 4,500 / 500 samples score 0.1 / 0.91 / 0.99.
    np.testing.assert_allclose(abnormality([45_000, 4_500, 500]), [0.1, 0.91, 0.99])


def blobs(sizes, seed=0):
    """Well-separated groups of directions (the detector works in cosine geometry)."""
    rng = np.random.default_rng(seed)
    directions = np.eye(len(sizes), 5)
    return np.concatenate([d + rng.normal(0, 0.01, (s, 5)) for d, s in zip(directions, sizes, strict=True)])


def test_worked_example_through_birch():
    # The same proportions, a tenth of the size, clustered by Birch end to end.
    x = blobs([4_500, 450, 50])
    detector = FeatureDetector(n_clusters=3).fit(x)
    assert sorted(detector.sizes_) == [50, 450, 4_500]
    scores = detector.scores_
    np.testing.assert_allclose(np.sort(np.unique(scores.round(6))), [0.1, 0.91, 0.99])
    np.testing.assert_allclose(scores[:4_500], 0.1)
    np.testing.assert_allclose(scores[-50:], 0.99)
    assert (scores > 0.98).sum() == 50  # th_ab = 0.98 reports the smallest cluster only


def test_unseen_sample_rule():
    x = blobs([400, 40, 10])
    detector = FeatureDetector(n_clusters=3).fit(x)
    n = len(x)
    # Inside a cluster's radius: that cluster's score.
    near = np.array([[1, 0.001, 0, 0, 0], [0, 0, 1, 0.001, 0]])
    np.testing.assert_allclose(detector.score_unseen(near), [1 - 400 / n, 1 - 10 / n])
    # Outside every cluster: a new cluster, scoring 1 - 1/(n+1), close to 1 and anomalous.
    far = np.array([[0, 0, 0, 1, 0], [0, 0, 0, 0, 1]])
    assert (detector.assign(far) == -1).all()
    np.testing.assert_allclose(detector.score_unseen(far), 1 - 1 / (n + 1))
    assert (detector.score_unseen(far) > detector.threshold).all()
    # The radius is the largest member distance (eq. 3): a point just beyond it is new.
    j = int(np.argmax(detector.sizes_))
    centre = detector.centroids_[j]
    other = np.zeros(5)
    other[np.argmin(np.abs(centre))] = 1
    step = other - centre @ other * centre
    step /= np.linalg.norm(step)
    for factor, expect_inside in ((0.5, True), (1.5, False)):
        angle = factor * detector.radii_[j]
        point = centre / np.linalg.norm(centre) * np.cos(angle) + step * np.sin(angle)
        assert (detector.assign(point[None])[0] == j) == expect_inside


def test_vectors_birch_cannot_compress_are_clustered_from_a_probe():
    # Random directions in 40-D: every sample is its own Birch subcluster, so the clusters
    # are learned from a probe of MAX_INCOMPRESSIBLE samples and the others join them.
    x = np.random.default_rng(0).normal(size=(MAX_INCOMPRESSIBLE + 1_000, 40))
    detector = FeatureDetector(n_clusters=30).fit(x)
    assert detector.n_learned_from_ == MAX_INCOMPRESSIBLE
    assert len(detector.sizes_) == 30 and detector.sizes_.sum() == len(x)
    np.testing.assert_allclose(detector.scores_, 1 - detector.sizes_[detector.labels_] / len(x))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    distance = np.linalg.norm(unit - detector.centroids_[detector.labels_], axis=1)
    assert (distance <= detector.radii_[detector.labels_] + 1e-9).all()
    assert (detector.assign(x) >= 0).all()  # seen vectors lie within their cluster's radius
    # Vectors that compress are learned from all of them.
    compressible = blobs([MAX_INCOMPRESSIBLE, 900, 100])
    detector = FeatureDetector(n_clusters=3).fit(compressible)
    assert detector.n_learned_from_ == len(compressible)
    assert sorted(detector.sizes_) == [100, 900, MAX_INCOMPRESSIBLE]


def test_nonfinite_rows_are_anomalous_and_skipped():
    x = blobs([100, 20])
    x[3] = np.nan
    detector = FeatureDetector(n_clusters=2).fit(x)
    assert detector.scores_[3] == 1.0 and detector.labels_[3] == -1
    assert detector.sizes_.sum() == len(x) - 1
    assert detector.assign(x[3:4])[0] == -1


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="n_clusters"):
        FeatureDetector(n_clusters=0)
    with pytest.raises(ValueError, match="threshold"):
        AnomalyDetector(threshold=1.5)
    with pytest.raises(ValueError, match="cluster_sizes"):
        abnormality([])
    with pytest.raises(ValueError, match="finite"):
        FeatureDetector().fit(np.full((5, 2), np.nan))
    detector = FeatureDetector(n_clusters=2).fit(blobs([30, 10]))
    with pytest.raises(ValueError, match="shape"):
        detector.assign(np.zeros((2, 3)))


def test_real_run_scores_share_clusters(digits_run_path):
    run = load_run(digits_run_path)
    session = Session(run)
    probs = np.stack([run.probabilities(e) for e in run.epochs])
    features = dynamic_features(session.embedding, confidence(probs, run.labels))
    train = run.indices("train")
    detector = AnomalyDetector(n_clusters=30)
    scores = detector.fit_score_all(features, train)
    assert scores.shape == (run.n_samples, 4)
    for j, name in enumerate(detector.names_):
        fitted = detector.detectors_[name]
        assert len(fitted.sizes_) <= 30 and fitted.sizes_.sum() == len(train)
        # Every training sample scores 1 - |its cluster| / n.
        expected = 1 - fitted.sizes_[fitted.labels_] / len(train)
        np.testing.assert_allclose(scores[train, j], expected)
    # Test samples are placed as unseen: their scores are cluster scores or the new-cluster score.
    test = run.indices("test")
    allowed = set(np.round(detector.detectors_["location"].cluster_scores_, 9)) | {
        round(detector.detectors_["location"].new_cluster_score, 9)
    }
    assert set(np.round(scores[test, 0], 9)) <= allowed
