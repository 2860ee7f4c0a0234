"""Exact and clustered k-nearest-neighbour search on real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_blobs

from nbdebug.landscape.neighbours import clustered_knn, clustered_reference_knn, knn


def brute_force(points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    d = torch.cdist(points.double(), points.double())
    d.fill_diagonal_(float("inf"))
    values, indices = d.topk(k, dim=1, largest=False)
    return values.float(), indices


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return torch.from_numpy(load_digits().data.astype(np.float32))


def test_knn_is_exact_and_excludes_the_row_itself(digits):
    distances, indices = knn(digits, 10, chunk=500)
    expected_d, _ = brute_force(digits, 10)
    torch.testing.assert_close(distances, expected_d, rtol=1e-4, atol=1e-3)
    # Ties (duplicate digits) may swap order; the distance to each found row must match.
    found = (digits[:, None, :] - digits[indices]).norm(dim=2)
    torch.testing.assert_close(found, expected_d, rtol=1e-4, atol=1e-3)
    assert not (indices == torch.arange(len(digits))[:, None]).any()


def test_knn_against_a_reference_set(digits):
    queries, reference = digits[:100], digits[100:]
    distances, indices = knn(queries, 3, reference=reference)
    full = torch.cdist(queries, reference)
    torch.testing.assert_close(distances, full.topk(3, dim=1, largest=False).values, rtol=1e-4, atol=1e-3)
    assert int(indices.max()) < len(reference)


def test_clustered_knn_finds_most_true_neighbours(digits):
    x, _ = make_blobs(n_samples=6000, n_features=32, centers=20, cluster_std=4.0, random_state=0)
    for points in (digits, torch.from_numpy(x.astype(np.float32))):
        distances, indices = clustered_knn(points, 15)
        _, exact = brute_force(points, 15)
        recall = (indices[:, :, None] == exact[:, None, :]).any(2).float().mean().item()
        assert recall > 0.9, recall
        assert not (indices == torch.arange(len(points))[:, None]).any()
        # Distances are those of the rows returned, nearest first.
        found = (points[:, None, :] - points[indices]).norm(dim=2)
        torch.testing.assert_close(distances, found, rtol=1e-3, atol=1e-2)
        assert (distances[:, 1:] >= distances[:, :-1] - 1e-4).all()


def test_clustered_knn_probes_more_lists_when_they_are_too_small():
    # 30 rows give 5 lists of about 6 rows: 8 neighbours need more than the own list.
    points = torch.from_numpy(load_digits().data[:30].astype(np.float32))
    distances, indices = clustered_knn(points, 8, probes=1)
    assert indices.shape == (30, 8)
    assert not (indices == torch.arange(30)[:, None]).any()
    assert len(set(indices[0].tolist())) == 8
    assert torch.isfinite(distances).all()


def test_clustered_reference_knn_finds_most_true_neighbours_of_other_rows():
    x, _ = make_blobs(n_samples=9000, n_features=32, centers=20, cluster_std=4.0, random_state=0)
    points = torch.from_numpy(x.astype(np.float32))
    queries, reference = points[:3000], points[3000:]
    distances, indices = clustered_reference_knn(queries, reference, 10, probes=12)
    _, exact = knn(queries, 10, reference=reference)
    recall = (indices[:, :, None] == exact[:, None, :]).any(2).float().mean().item()
    assert recall > 0.9, recall
    found = (queries[:, None, :] - reference[indices]).norm(dim=2)
    torch.testing.assert_close(distances, found, rtol=1e-3, atol=1e-2)
    assert (distances[:, 1:] >= distances[:, :-1] - 1e-4).all()
    # A query that is also a reference row finds itself first, at distance 0.
    itself, at = clustered_reference_knn(reference[:50], reference, 3)
    assert (at[:, 0] == torch.arange(50)).all() and (itself[:, 0] < 0.1).all()  # float32 cancellation
