"""The UMAP-style loss the time-travelling visualizer minimises, and its gradients written out.

UMAP's fuzzy-graph cross-entropy on canvas positions: each kNN edge attracts its two ends
with the edge's membership weight (:func:`fuzzy_weights`), random negatives repel, and the
canvas similarity of two points at distance d is q = 1 / (1 + a d^(2b)) (:func:`umap_curve`).
:func:`neighbourhood_loss` is the loss for autograd (the encoder's training);
:func:`frame_gradient` its gradient with respect to the positions, written out for the
per-frame refinement, where it is twice as fast as autograd's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F


def umap_curve(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """The (a, b) of UMAP's low-dimensional similarity 1 / (1 + a d^(2b)) for ``min_dist``.

    Fitted by least squares to the curve that is 1 up to ``min_dist`` and decays as
    exp(-(d - min_dist) / spread) after it, as UMAP does.
    """
    from scipy.optimize import curve_fit  # scikit-learn depends on scipy

    d = np.linspace(0, spread * 3, 300)
    target = np.where(d < min_dist, 1.0, np.exp(-(d - min_dist) / spread))
    (a, b), _ = curve_fit(lambda x, a, b: 1.0 / (1.0 + a * x ** (2 * b)), d, target, p0=(1.0, 1.0))
    return float(a), float(b)


def fuzzy_weights(distances: torch.Tensor, iterations: int = 40) -> torch.Tensor:
    """UMAP's membership strength of each kNN edge: exp(-(d - rho) / sigma), with rho the
    distance to the nearest neighbour and sigma chosen per row so the weights sum to log2(k)."""
    k = distances.shape[1]
    target = math.log2(k)
    rho = distances[:, :1]
    excess = (distances - rho).clamp_min(0)
    low = torch.zeros(len(distances), 1)
    high = torch.full((len(distances), 1), float("inf"))
    sigma = torch.ones(len(distances), 1)
    for _ in range(iterations):  # bisection on sigma, vectorised over rows
        total = torch.exp(-excess / sigma).sum(1, keepdim=True)
        too_big = total > target
        high = torch.where(too_big, sigma, high)
        low = torch.where(too_big, low, sigma)
        sigma = torch.where(torch.isinf(high), sigma * 2, (low + high) / 2)
    return torch.exp(-excess / sigma.clamp_min(1e-12))


def neg_log_q(d2: torch.Tensor, curve: tuple[float, float]) -> torch.Tensor:
    """The logit of UMAP's canvas similarity q = 1 / (1 + a d^2b) for squared distances ``d2``:
    softplus of it is -log q (attraction), softplus of its negation -log(1 - q) (repulsion)."""
    a, b = curve
    return math.log(a) + b * torch.log(d2 + 1e-6)


def neighbourhood_loss(
    y: torch.Tensor,
    sources: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    valid: torch.Tensor,
    negative_rate: int,
    curve: tuple[float, float],
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """UMAP's fuzzy-graph cross-entropy on canvas positions ``y`` (n, 2): attraction along the
    edges ``sources -> targets`` weighted by their membership, and repulsion from one random
    node per edge weighted by ``negative_rate`` (the expected gradient of UMAP's
    ``negative_rate`` negatives per edge, at a fraction of the cost). Returns (attraction,
    repulsion or None when ``negative_rate`` is 0); ``valid`` (n,) masks nodes out of repulsion."""

    def squared_distances(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        # index_select: its backward is several times faster than fancy indexing on CPU
        return (y.index_select(0, i) - y.index_select(0, j)).pow(2).sum(1)

    attract = (weight * F.softplus(neg_log_q(squared_distances(sources, targets), curve))).sum()
    attract = attract / weight.sum().clamp_min(1e-6)
    if not negative_rate:
        return attract, None
    others = torch.randint(len(y), (len(sources),), generator=generator).to(y.device)
    ok = (valid.index_select(0, sources) & valid.index_select(0, others)).float()
    repel = (ok * F.softplus(-neg_log_q(squared_distances(sources, others), curve))).sum()
    return attract, negative_rate * repel / ok.sum().clamp_min(1)


def _squared_and_similarity(difference: torch.Tensor, curve: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """For coordinate-major differences (2, ...): d² (+ the 1e-6 of neg_log_q) and u = a d^2b,
    so q = 1 / (1 + u); both ends of the written-out gradients need them."""
    a, b = curve
    d2 = torch.addcmul(difference[0] * difference[0], difference[1], difference[1]).add_(1e-6)
    return d2, d2.pow(b).mul_(a)


def attraction_gradient(
    difference: torch.Tensor, weight: torch.Tensor, total: float, curve: tuple[float, float]
) -> torch.Tensor:
    """Gradient of sum(weight · -log q(|difference|²)) / total with respect to the first end
    of each difference; ``difference`` is coordinate-major (2, ...), like the result."""
    d2, u = _squared_and_similarity(difference, curve)
    return difference * (weight * u / (d2 * (1 + u)) * (2 * curve[1] / total))


def frame_gradient(
    y: torch.Tensor,
    neighbours: torch.Tensor,
    weights: torch.Tensor,
    valid: torch.Tensor,
    negative_rate: int,
    curve: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """The gradient of :func:`neighbourhood_loss` (edges: each row to its ``neighbours``
    (n, k) with ``weights``) with respect to the canvas positions, written out.

    ``y`` and the result are coordinate-major (2, n): on CPU, gathering and summing 1-D
    rows is several times faster than (n, 2) rows, and this gradient is half the time of
    autograd's. It draws the same random negatives as neighbourhood_loss would."""
    n, k = neighbours.shape
    flat = neighbours.reshape(-1)
    pull = attraction_gradient(
        y.unsqueeze(2) - y.index_select(1, flat).view(2, n, k), weights, float(weights.sum().clamp_min(1e-6)), curve
    )
    grad = pull.sum(2)
    grad.index_add_(1, flat, pull.reshape(2, -1).neg())  # neg(): index_add_'s alpha is slow on CPU
    if not negative_rate:
        return grad
    others = torch.randint(n, (n * k,), generator=generator).to(y.device)
    ok = (valid.unsqueeze(1) & valid.index_select(0, others).view(n, k)).float()
    difference = y.unsqueeze(2) - y.index_select(1, others).view(2, n, k)
    d2, u = _squared_and_similarity(difference, curve)
    push = difference * (ok / (d2 * (1 + u)) * (-2 * curve[1] * negative_rate / float(ok.sum().clamp_min(1))))
    grad += push.sum(2)
    grad.index_add_(1, others, push.reshape(2, -1).neg())
    return grad
