"""k-nearest-neighbour search: exact for metrics and small sets, clustered for large graphs."""

from __future__ import annotations

import math

import numpy as np
import torch


def knn(
    points: torch.Tensor,
    k: int,
    reference: torch.Tensor | None = None,
    queries: np.ndarray | None = None,
    chunk: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours, in float32.

    With ``reference``: for every row of ``points``, its k nearest rows of ``reference``.
    Without: for the rows ``queries`` of ``points`` (default all), their k nearest other
    rows of ``points`` (a row is not its own neighbour). Returns (distances, indices into
    the reference rows), both (number of queries, k), nearest first. Cost queries ·
    len(reference) · dim, in chunks of ``chunk`` queries so memory stays chunk · len(reference).
    """
    itself = reference is None
    among = points if reference is None else reference
    rows = torch.arange(len(points)) if queries is None else torch.as_tensor(queries)
    squared = (among * among).sum(1)
    distances, indices = [], []
    for start in range(0, len(rows), chunk):
        q = rows[start : start + chunk]
        query = points[q]
        # |r|² - 2 q·r in one fused pass; |q|² is the same along a row, so it is added
        # only to the k values kept (a third of the time at 10,000 x 10,000 rows
        # of the 10,000-sample run of python -m benchmarks.visualizer --runs synthetic).
        d2 = torch.addmm(squared[None, :], query, among.T, alpha=-2.0)
        if itself:
            d2[torch.arange(len(q)), q] = float("inf")
        values, index = d2.topk(k, dim=1, largest=False)
        distances.append((values + (query * query).sum(1, keepdim=True)).clamp_min(0).sqrt())
        indices.append(index)
    return torch.cat(distances), torch.cat(indices)


def clustered_knn(
    points: torch.Tensor, k: int, probes: int = 8, iterations: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate k nearest other rows of ``points``, the same result layout as :func:`knn`.

    The rows are split into about √n lists by k-means; the rows of a list are searched
    exactly among the rows of the ``probes`` lists whose centroids are nearest to its
    own (an inverted-file index probed per list rather than per row). Cost about
    n · probes · √n · dim instead of n² · dim: at 10,000 rows and 8 probes, a tenth.
    Neighbours across a list border that is not probed are missed.
    """
    lists = _lists(points, iterations, seed)
    squared = (points * points).sum(1)
    return _search(lists[1], points, squared, points, lists, probes, k, own_rows=True)


def clustered_reference_knn(
    queries: torch.Tensor, reference: torch.Tensor, k: int, probes: int = 8, iterations: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate k nearest rows of ``reference`` for every row of ``queries`` (the layout of
    :func:`knn` with a reference): the index of :func:`clustered_knn` built on the reference,
    each query searched among the ``probes`` lists nearest to the list its nearest centroid
    leads. Needs more than k reference rows."""
    lists = _lists(reference, iterations, seed)
    assign = knn(queries, 1, reference=lists[0])[1][:, 0]
    counts = torch.bincount(assign, minlength=len(lists[0])).tolist()
    by_list = torch.split(torch.argsort(assign, stable=True), counts)  # the queries of each list
    return _search(by_list, queries, (queries * queries).sum(1), reference, lists, probes, k, own_rows=False)


def _lists(points: torch.Tensor, iterations: int, seed: int) -> tuple[torch.Tensor, tuple, list[int]]:
    """About √n lists of the rows by Lloyd's k-means: (centroids, each list's row indices,
    each list's size); an emptied list keeps its centroid."""
    n = len(points)
    n_lists = max(1, round(math.sqrt(n)))
    generator = torch.Generator().manual_seed(seed)
    centroids = points[torch.randperm(n, generator=generator)[:n_lists]].clone()
    for _ in range(iterations):
        assign = knn(points, 1, reference=centroids)[1][:, 0]
        counts = torch.bincount(assign, minlength=n_lists)
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    assign = knn(points, 1, reference=centroids)[1][:, 0]
    sizes: list[int] = torch.bincount(assign, minlength=n_lists).tolist()
    return centroids, torch.split(torch.argsort(assign, stable=True), sizes), sizes


def _search(
    query_lists,
    queries: torch.Tensor,
    query_squared: torch.Tensor,
    reference: torch.Tensor,
    lists,
    probes: int,
    k: int,
    own_rows: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest reference rows of the queries of each list (``query_lists[list]``),
    searched among the rows of the ``probes`` lists nearest to it. With ``own_rows``, a
    list's queries are its own reference rows, which are not their own neighbours."""
    centroids, members, sizes = lists
    probes = min(probes, len(centroids))
    lists_by_distance = knn(centroids, len(centroids), reference=centroids)[1].tolist()
    squared = (reference * reference).sum(1)
    distances = torch.empty(len(queries), k)
    indices = torch.empty(len(queries), k, dtype=torch.long)
    for own, rows in enumerate(query_lists):
        if not len(rows):
            continue
        candidates = _probed(own, lists_by_distance[own], members, sizes, probes, k)  # own rows first
        d2 = torch.addmm(squared[candidates][None, :], queries[rows], reference[candidates].T, alpha=-2.0)
        if own_rows:
            d2[torch.arange(len(rows)), torch.arange(len(rows))] = float("inf")  # itself
        values, nearest = d2.topk(k, dim=1, largest=False)
        distances[rows] = (values + query_squared[rows, None]).clamp_min(0).sqrt()
        indices[rows] = candidates[nearest]
    return distances, indices


def _probed(own: int, nearest_lists: list[int], members: tuple, sizes: list[int], probes: int, k: int) -> torch.Tensor:
    """The rows searched for the queries of list ``own``: its own rows first, then those of
    the lists nearest to it, until ``probes`` lists and more than k rows."""
    chosen, size = [members[own]], sizes[own]
    for other in nearest_lists:
        if len(chosen) >= probes and size > k:
            break
        if other != own:
            chosen.append(members[other])
            size += sizes[other]
    return torch.cat(chosen)
