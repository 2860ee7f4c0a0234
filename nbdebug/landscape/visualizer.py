"""The time-travelling visualizer: one encoder/decoder pair trained over every recorded epoch.

The encoder φ places a representation of epoch ``e`` on a 2-D canvas; the decoder ψ
maps a canvas point back to a representation of epoch ``e``, which that epoch's
recorded head turns into the class territories painted behind the samples
(DeepDebugger §2.2, after TimeVis and DVI). Both networks are shared by all epochs
and told the epoch through a small learned epoch embedding, so one model is trained
once for the whole run and consecutive frames stay continuous.

Each training step takes one pair of adjacent epochs and minimises

* a UMAP fuzzy-graph loss on each epoch's k-nearest-neighbour graph (attraction
  along kNN edges weighted by their fuzzy membership, weaker between samples the
  epoch's head predicts differently, repulsion from random negatives),
* a temporal loss tying every sample to itself in the other epoch of the pair,
  weighted by how much its neighbourhood stayed the same (so samples whose
  neighbourhood changed may move: smooth, not frozen),
* reconstruction through the decoder, and
* prediction preservation: KL(head_e(r) || head_e(ψ(φ(r)))), DVI's property that
  the painted territory of a sample is the class the model predicts for it.

Representations of each epoch are centred and scaled to unit RMS before they reach
the networks, so epochs whose representations differ in scale look alike.

A small network trained for seconds keeps the layout but not every neighbourhood, so
each frame is then refined: every training-pool sample gets an offset from its encoded
position, optimised on the same neighbourhood and temporal losses (epoch by epoch, each
starting from the previous frame), and the decoder is fitted again on the refined
positions. Samples outside the pool (test, unlabeled, new) are placed from the encoder
and their nearest pool samples in representation space, without refitting.

Pools larger than EXACT_GRAPH_MAX get approximate kNN graphs
(:func:`nbdebug.landscape.neighbours.clustered_knn`), as UMAP's are.

The fitted model and its embedding are cached in ``<run>/visualizer/`` (see
:meth:`TimeTravelVisualizer.fit`); nothing is pickled. The folder is written whole as
``<run>/.visualizer-*`` and swapped in with ``os.replace``:

* ``visualizer.json``: ``format``, ``key`` (hash of the settings), ``config``, ``epochs``,
  ``fingerprint`` (n_samples, dim, n_classes, the run's creation time and, per epoch, a
  hash of ``epoch.json`` and the file sizes), ``seconds``, ``written``;
* ``model.npz``: the networks' weights as ``model/<name>`` float32 arrays, the per-epoch
  ``mean`` (E, dim) and ``scale`` (E,), ``pool`` (indices of the samples trained on) and
  ``offsets`` (E, len(pool), 2), the refinement of each pool sample's position;
* ``embedding.npy``: float32 (E, n_samples, 2), NaN where a representation is not finite;
* ``metrics.json``: the faithfulness figures, once computed (NaN stored as null).

Same settings and unchanged epochs reuse the cache; epochs added at the end extend it;
anything else refits.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..run import EPOCHS_DIR, Run, epoch_dirname
from . import metrics
from .neighbours import clustered_knn, knn

CACHE_DIR = "visualizer"
CACHE_FORMAT = 3

# The encoder's output is multiplied by this: Adam moves weights by about the learning
# rate per step, so a larger output scale reaches a UMAP-sized layout (spread of a few
# units) in fewer steps. Measured on the digits run: +0.015 NPR@15 at 300 steps.
OUTPUT_SCALE = 4.0
# Samples decoded per epoch and step for the reconstruction and prediction losses: the
# decoder is a regression that needs far fewer samples than the neighbourhood loss.
DECODED_PER_STEP = 512
# Nearest pool samples that place a sample outside the training pool (see _place).
INTERPOLATED_NEIGHBOURS = 8
# Adam's step size on the refinement offsets, in canvas units (layouts span about ±10).
REFINE_LEARNING_RATE = 0.05
# The first frame starts from the encoder alone, the others from the frame before, so
# the first gets this many times the steps (on the 10,000-sample run, epoch 1's NPR@15
# rose from 0.19 to 0.22 with 8x rather than 1x).
FIRST_FRAME_FACTOR = 8
# The refinement's temporal tie is temporal_weight times this. The encoder already keeps
# frames continuous; a full-strength tie held each frame near the last and cost NPR@15
# (digits 0.531 -> 0.542, 10,000 samples 0.210 -> 0.221 with 0.3; rotation stays < 0.3°).
REFINE_TEMPORAL_FACTOR = 0.3
# Decoder-only training steps per epoch after the refinement.
DECODER_STEPS_PER_EPOCH = 15
# Largest pool whose kNN graphs are searched exactly; above it, by clustered_knn (an
# exact 10,000-sample graph took 0.8-1.0 s per epoch here, the clustered one 0.2-0.3 s
# at a recall of 0.89-0.95).
EXACT_GRAPH_MAX = 4096


# --------------------------------------------------------------------------- helpers


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


def head_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Probabilities from a head's logits, as the Recorder stores them (one unit: sigmoid)."""
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def head_log_probabilities(logits: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        return torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=1)
    return torch.log_softmax(logits, dim=1)


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


def load_heads(run: Run, head_module: nn.Module | None = None) -> list[nn.Module]:
    """The recorded head of every epoch, frozen, checked to output one logit per class."""
    heads = []
    for epoch in run.epochs:
        head = run.head(epoch, module=head_module)
        for parameter in head.parameters():
            parameter.requires_grad_(False)
        with torch.no_grad():
            out = head(torch.zeros(2, run.dim))
        n_out = out.shape[-1] if out.ndim == 2 else None
        if n_out is None or not (n_out == run.n_classes or (n_out == 1 and run.n_classes == 2)):
            shape = tuple(out.shape)
            raise ValueError(
                f"the head of epoch {epoch} maps a batch of 2 representations to shape {shape}, but the run "
                f"has {run.n_classes} classes; head_module must map (batch, {run.dim}) representations to "
                f"(batch, {run.n_classes}) logits (or (batch, 1) for a binary sigmoid head). Pass an instance "
                "of the head's class as recorded, e.g. head_module=MyHead(...)"
            )
        heads.append(head)
    return heads


def run_fingerprint(run: Run) -> dict[str, Any]:
    """What identifies the recorded data: sizes, creation time and a hash of every epoch's
    epoch.json plus its file sizes. A re-recorded or extended run changes it."""
    epochs = {}
    for epoch in run.epochs:
        folder = run.path / EPOCHS_DIR / epoch_dirname(epoch)
        digest = hashlib.sha256((folder / "epoch.json").read_bytes())
        for name in ("representations.npy", "probabilities.npy", "head.npz"):
            digest.update(f"{name}:{(folder / name).stat().st_size};".encode())
        epochs[str(epoch)] = digest.hexdigest()[:16]
    return {
        "n_samples": run.n_samples,
        "dim": run.dim,
        "n_classes": run.n_classes,
        "created": run.info.get("created"),
        "epochs": epochs,
    }


# --------------------------------------------------------------------------- the networks


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
    )


class _AutoEncoder(nn.Module):
    """Encoder and decoder shared by all epochs, each told the epoch by a learned embedding."""

    def __init__(self, dim: int, n_epochs: int, hidden: int, epoch_dim: int):
        super().__init__()
        self.epoch = nn.Embedding(n_epochs, epoch_dim)
        nn.init.normal_(self.epoch.weight, std=0.1)
        self.encoder = _mlp(dim + epoch_dim, hidden, 2)
        self.decoder = _mlp(2 + epoch_dim, hidden, dim)

    def _with_epoch(self, x: torch.Tensor, index: int) -> torch.Tensor:
        code = self.epoch.weight[index].expand(len(x), -1)
        return torch.cat([x, code], dim=1)

    def encode(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return OUTPUT_SCALE * self.encoder(self._with_epoch(x, index))

    def decode(self, y: torch.Tensor, index: int) -> torch.Tensor:
        return self.decoder(self._with_epoch(y, index))


# --------------------------------------------------------------------------- training data


class _EpochData:
    """What training needs of one epoch, restricted to the training pool (fixed rows)."""

    def __init__(
        self,
        x: torch.Tensor,
        valid: torch.Tensor,
        neighbours: torch.Tensor,
        weights: torch.Tensor,
        log_target: torch.Tensor,
    ):
        self.x = x  # (P, dim) normalised representations, float16 (0 where invalid)
        self.valid = valid  # (P,) bool: finite representation
        self.neighbours = neighbours  # (P, k) pool indices
        self.weights = weights  # (P, k) fuzzy membership, 0 for invalid rows
        self.log_target = log_target  # (P, C) the head's log-probabilities on the true representation


@dataclass
class Background:
    """A painted frame: ``image`` (H, W, 4) uint8 RGBA, ``predicted`` (H, W) int64 class,
    ``confidence`` (H, W) float32 top-1 probability, ``gap`` (H, W) top-1 minus top-2.
    Row 0 is the top of the canvas (y_max), column 0 its left (x_min); pixel centres
    cover ``bounds`` = (x_min, x_max, y_min, y_max)."""

    image: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    gap: np.ndarray
    bounds: tuple[float, float, float, float]


def grid_points(bounds: tuple[float, float, float, float], resolution: int) -> np.ndarray:
    """(resolution², 2) canvas points of a resolution x resolution grid, row-major, top row first."""
    x_min, x_max, y_min, y_max = bounds
    xs = np.linspace(x_min, x_max, resolution, dtype=np.float32)
    ys = np.linspace(y_max, y_min, resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def paint(
    probabilities: np.ndarray, resolution: int, boundary_width: float = 0.1, palette: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Colour a grid of class probabilities (resolution², C): the predicted class's colour,
    faded towards white as confidence drops to chance and white where the top-1/top-2
    gap falls below ``boundary_width`` (the decision boundaries)."""
    if palette is None:
        from ..widget import PALETTE as palette  # imported here: widget imports session, which imports us
    colours = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in palette], dtype=np.float32)
    n_classes = probabilities.shape[1]
    top2 = -np.sort(-probabilities, axis=1)[:, :2]
    predicted = probabilities.argmax(axis=1)
    confidence = top2[:, 0]
    gap = top2[:, 0] - top2[:, 1]
    # 1 at full confidence, 0.25 at chance: low confidence is lighter, never invisible.
    depth = 0.25 + 0.75 * np.clip((confidence - 1 / n_classes) / (1 - 1 / n_classes), 0, 1)
    depth *= np.clip(gap / boundary_width, 0, 1)
    base = colours[predicted % len(colours)]
    rgb = 255 - (255 - base) * depth[:, None]
    image = np.empty((resolution * resolution, 4), dtype=np.uint8)
    image[:, :3] = np.round(rgb).astype(np.uint8)
    image[:, 3] = 255
    shape = (resolution, resolution)
    return (
        image.reshape(*shape, 4),
        predicted.reshape(shape).astype(np.int64),
        confidence.reshape(shape).astype(np.float32),
        gap.reshape(shape).astype(np.float32),
    )


def background(
    projection: Any,
    run: Run,
    epoch: int,
    bounds: tuple[float, float, float, float],
    resolution: int = 256,
    head_module: nn.Module | None = None,
    boundary_width: float = 0.1,
) -> Background:
    """Paint the class territories of ``epoch`` over ``bounds`` = (x_min, x_max, y_min, y_max).

    Works with any fitted projection offering ``inverse_transform(epoch, points)``: the
    grid is decoded to representations and the epoch's recorded head predicts them.
    """
    if not isinstance(resolution, (int, np.integer)) or isinstance(resolution, bool) or not 2 <= resolution <= 4096:
        raise ValueError(f"resolution must be an integer between 2 and 4096 pixels, got {resolution!r}")
    bounds = tuple(float(b) for b in bounds)
    if (
        len(bounds) != 4
        or not all(math.isfinite(b) for b in bounds)
        or bounds[0] >= bounds[1]
        or bounds[2] >= bounds[3]
    ):
        raise ValueError(
            f"bounds must be finite (x_min, x_max, y_min, y_max) with x_min < x_max and "
            f"y_min < y_max, got {bounds}; Session.bounds gives the canvas bounds"
        )
    head = run.head(epoch, module=head_module)
    points = grid_points(bounds, int(resolution))
    probabilities = []
    with torch.no_grad():
        for chunk in np.array_split(points, max(1, len(points) // 16384)):
            reps = torch.as_tensor(np.asarray(projection.inverse_transform(epoch, chunk), dtype=np.float32))
            logits = head(reps)
            if logits.ndim != 2 or not (
                logits.shape[1] == run.n_classes or (logits.shape[1] == 1 and run.n_classes == 2)
            ):
                raise ValueError(
                    f"the head of epoch {epoch} outputs shape {tuple(logits.shape)} for "
                    f"{len(reps)} representations but the run has {run.n_classes} classes; "
                    "pass head_module, an instance of the recorded head's class"
                )
            probabilities.append(head_probabilities(logits.float()).numpy())
    image, predicted, confidence, gap = paint(np.concatenate(probabilities), int(resolution), boundary_width)
    return Background(image, predicted, confidence, gap, bounds)


# --------------------------------------------------------------------------- the visualizer


class TimeTravelVisualizer:
    """Encoder/decoder over all recorded epochs of a run; the same interface as
    :class:`nbdebug.landscape.projection.AlignedPCA` plus :meth:`background`.

    Parameters
    ----------
    n_neighbors : int
        k of the kNN graph built per epoch on the training pool.
    steps : int or None
        Training steps, each one adjacent epoch pair; default 4 per pair (at least 100),
        so fitting time grows linearly with the number of epochs.
    batch_size : int
        Most training samples per epoch in one step. Up to this many, a step uses every
        pool sample and every kNN edge of both epochs; above it, a random subset of this
        size and the kNN edges among it.
    max_samples : int
        Most training samples to fit on (the pool, sampled once, the same for every
        epoch); every sample of every split is projected. Up to EXACT_GRAPH_MAX pool
        samples the kNN graphs are exact, above it clustered (about pool^1.5 · dim per
        epoch); above max_samples fitting time grows only with epochs.
    hidden, epoch_dim : int
        Width of the encoder's and decoder's two hidden layers; size of the epoch embedding.
    learning_rate : float
        Adam's initial learning rate, decayed to 1% by a cosine schedule.
    negative_rate : int
        Weight of the repulsion from random negatives relative to the kNN attraction
        (UMAP's negatives per edge); each edge draws one negative.
    min_dist : float
        UMAP's min_dist: how tightly neighbours may pack on the canvas.
    temporal_weight, reconstruction_weight, prediction_weight : float
        Weights of the temporal, reconstruction and prediction-preserving losses
        relative to the neighbourhood loss.
    cross_edge_weight : float
        Factor on the membership of a kNN edge between two samples the epoch's head
        predicts differently (1 keeps UMAP's graph). Like UMAP's supervised mode with the
        model's predictions as labels: samples of one predicted class keep together, so
        the decoder can paint each sample inside its predicted territory. On the
        10,000-sample run 0.1 raised PPR from 0.914 to 0.951 at the same NPR@15 (0.235);
        without it, the 5% of samples predicted unlike most of their neighbours (label
        noise the model learned) sat inside another class's territory.
    refine_steps : int
        Steps of the local refinement per epoch (FIRST_FRAME_FACTOR times as many for the
        first); 0 leaves the encoder's layout as it is. The encoder learns the layout of the
        whole run, but a small network trained for seconds cannot hold every sample's
        neighbourhood (on the digits run NPR@15 stalls near 0.44, against 0.56 for
        per-epoch UMAP). The refinement gives each training-pool sample of each epoch an
        offset from its encoded position, optimised on the same neighbourhood loss and tied
        (more loosely, REFINE_TEMPORAL_FACTOR) to the previous frame. Other samples are
        placed from the encoder and their nearest pool samples in representation space, so
        unseen samples still need no refitting.
    seed : int
        Seeds initialisation and sampling; the same seed gives the same embedding.
    device : str or torch.device, optional
        Where to train, e.g. "cuda"; default CPU.
    head_module : torch.nn.Module, optional
        For runs whose head is a custom module: an instance of its class (see ``Run.head``).
    n_threads : int or None
        CPU threads torch uses while fitting (restored afterwards); None keeps torch's
        setting. The default 1 is fastest for these small networks when cores are shared:
        with 2 threads on 2 busy cores a step was 5-10x slower.
    cache : bool
        Reuse, extend or write the fitted model in ``<run>/visualizer/``.
    progress : bool
        Show a progress bar while fitting.
    """

    def __init__(
        self,
        *,
        n_neighbors: int = 15,
        steps: int | None = None,
        batch_size: int = 4096,
        max_samples: int = 10000,
        hidden: int = 128,
        epoch_dim: int = 8,
        learning_rate: float = 1e-2,
        negative_rate: int = 5,
        min_dist: float = 0.1,
        temporal_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        prediction_weight: float = 1.0,
        cross_edge_weight: float = 0.1,
        refine_steps: int = 40,
        seed: int = 0,
        device: str | torch.device | None = None,
        head_module: nn.Module | None = None,
        n_threads: int | None = 1,
        cache: bool = True,
        progress: bool = True,
    ):
        self.n_neighbors = n_neighbors
        self.steps = steps
        self.batch_size = batch_size
        self.max_samples = max_samples
        self.hidden = hidden
        self.epoch_dim = epoch_dim
        self.learning_rate = learning_rate
        self.negative_rate = negative_rate
        self.min_dist = min_dist
        self.temporal_weight = temporal_weight
        self.reconstruction_weight = reconstruction_weight
        self.prediction_weight = prediction_weight
        self.cross_edge_weight = cross_edge_weight
        self.refine_steps = refine_steps
        self.seed = seed
        self.device = device
        self.head_module = head_module
        self.n_threads = n_threads
        self.cache = cache
        self.progress = progress

    # ----------------------------------------------------------------- validation

    def _config(self) -> dict[str, Any]:
        """The settings that change the fitted model (the cache key)."""
        return {
            "n_neighbors": self.n_neighbors,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "max_samples": self.max_samples,
            "hidden": self.hidden,
            "epoch_dim": self.epoch_dim,
            "learning_rate": self.learning_rate,
            "negative_rate": self.negative_rate,
            "min_dist": self.min_dist,
            "temporal_weight": self.temporal_weight,
            "reconstruction_weight": self.reconstruction_weight,
            "prediction_weight": self.prediction_weight,
            "cross_edge_weight": self.cross_edge_weight,
            "refine_steps": self.refine_steps,
            "seed": self.seed,
        }

    def _check_params(self) -> None:
        def positive_int(name: str, value: Any, low: int = 1) -> None:
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

        def non_negative(name: str, value: Any) -> None:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

        positive_int("n_neighbors", self.n_neighbors, 2)
        if self.steps is not None:
            positive_int("steps", self.steps)
        positive_int("batch_size", self.batch_size, 16)
        positive_int("max_samples", self.max_samples, 16)
        positive_int("hidden", self.hidden, 2)
        positive_int("epoch_dim", self.epoch_dim, 0)
        positive_int("negative_rate", self.negative_rate, 0)
        positive_int("refine_steps", self.refine_steps, 0)
        positive_int("seed", self.seed, 0)
        if self.n_threads is not None:
            positive_int("n_threads", self.n_threads)
        for name in ("temporal_weight", "reconstruction_weight", "prediction_weight"):
            non_negative(name, getattr(self, name))
        if not isinstance(self.learning_rate, (int, float)) or not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate!r}; about 1e-2 works")
        if not isinstance(self.cross_edge_weight, (int, float)) or not 0 <= self.cross_edge_weight <= 1:
            raise ValueError(
                f"cross_edge_weight must be in [0, 1], got {self.cross_edge_weight!r}; 1 keeps UMAP's graph"
            )
        if not isinstance(self.min_dist, (int, float)) or not 0 < self.min_dist < 1:
            raise ValueError(f"min_dist must be in (0, 1), got {self.min_dist!r}; UMAP's default is 0.1")

    # ----------------------------------------------------------------- fitting

    def fit(self, run: Run) -> TimeTravelVisualizer:
        """Train the encoder and decoder over every epoch of ``run`` and project every sample.

        With ``cache=True`` a model cached in ``<run>/visualizer/`` by the same settings is
        reused when the run is unchanged, and extended (trained further on the new epochs,
        then every frame re-projected) when epochs were added since; otherwise it is refitted.
        """
        if not isinstance(run, Run):
            raise TypeError(f"run must be a Run from nbdebug.load_run, got {type(run).__name__}")
        self._check_params()
        self._device = torch.device(self.device) if self.device is not None else torch.device("cpu")
        threads = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(self.n_threads)
        try:
            return self._fit(run)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, run: Run) -> TimeTravelVisualizer:
        self._run = run  # placing new samples reads the pool's representations
        self._pool_cache: tuple[int, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        fingerprint = run_fingerprint(run)
        cached = self._read_cache(run, fingerprint) if self.cache else None
        started = time.perf_counter()
        if cached is not None and cached["epochs"] == list(run.epochs):
            self._restore(run, cached)
            self.embedding_ = cached["embedding"]
            self.from_cache_ = "reused"
            return self

        heads = load_heads(run, self.head_module)
        self.epochs_ = list(run.epochs)
        self.dim_ = run.dim
        self.n_classes_ = run.n_classes
        if cached is not None:
            self._restore(run, cached)
            old = len(cached["epochs"])
            self._grow(old)
            new_pairs = [p for p in self._pairs() if p[1] >= old]
            self.from_cache_ = "extended"
        else:
            self._initialise(run)
            new_pairs = self._pairs()
            old = 0
            self.from_cache_ = None
        data = self._prepare(run, heads)
        prepared = time.perf_counter()
        self._train(data, heads, new_pairs, replay=old > 1)
        trained = time.perf_counter()
        self._fit_decoder(data, heads, self._refine(data))
        refined = time.perf_counter()
        self.embedding_ = self._project_all(run)
        self.timings_ = {
            "graphs": prepared - started,
            "training": trained - prepared,
            "refinement": refined - trained,
            "projection": time.perf_counter() - refined,
        }
        self.fit_seconds_ = time.perf_counter() - started
        if self.cache:
            self._write_cache(run, fingerprint)
        return self

    def _initialise(self, run: Run) -> None:
        rng = np.random.default_rng(self.seed)
        train = run.indices("train")
        if len(train) > self.max_samples:
            train = np.sort(rng.choice(train, self.max_samples, replace=False))
        self.pool_ = train.astype(np.int64)
        if len(self.pool_) <= self.n_neighbors:
            raise ValueError(
                f"the run has {len(self.pool_)} training samples; the visualizer needs more than "
                f"n_neighbors={self.n_neighbors}: record more samples or lower n_neighbors"
            )
        self.mean_ = np.zeros((len(self.epochs_), self.dim_), dtype=np.float32)
        self.scale_ = np.ones(len(self.epochs_), dtype=np.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model_ = _AutoEncoder(self.dim_, len(self.epochs_), self.hidden, self.epoch_dim)
        self.model_.to(self._device)

    def _grow(self, old: int) -> None:
        """Make room for epochs added since the cached fit: each new epoch starts from the
        last known epoch's embedding and normalisation."""
        n = len(self.epochs_)
        weight = self.model_.epoch.weight.data
        grown = nn.Embedding(n, weight.shape[1]).to(weight.device)
        grown.weight.data[:old] = weight
        grown.weight.data[old:] = weight[old - 1]
        self.model_.epoch = grown
        self.mean_ = np.concatenate([self.mean_, np.zeros((n - old, self.dim_), np.float32)])
        self.scale_ = np.concatenate([self.scale_, np.ones(n - old, np.float32)])

    def _pairs(self) -> list[tuple[int, int]]:
        n = len(self.epochs_)
        return [(i, i + 1) for i in range(n - 1)] if n > 1 else [(0, 0)]

    def _prepare(self, run: Run, heads: list[nn.Module]) -> list[_EpochData | None]:
        """Normalise the pool's representations of every epoch, build its kNN graph (edges
        between samples predicted differently weakened by ``cross_edge_weight``) and the
        head's predictions (all epochs: extending replays the old ones too)."""
        data: list[_EpochData | None] = []
        k = self.n_neighbors
        for i, epoch in enumerate(tqdm(self.epochs_, desc="neighbour graphs", disable=not self.progress, leave=False)):
            reps = np.asarray(run.representations(epoch)[self.pool_], dtype=np.float32)
            valid = np.isfinite(reps).all(axis=1)
            if valid.sum() <= k:
                warnings.warn(
                    f"epoch {epoch} has {int(valid.sum())} training samples with finite "
                    f"representations, too few for a {k}-neighbour graph; its samples are "
                    "placed by the encoder but it does not shape the training",
                    stacklevel=3,
                )
            if valid.any():
                self.mean_[i] = reps[valid].mean(axis=0)
                centred = reps[valid] - self.mean_[i]
                self.scale_[i] = float(np.sqrt((centred**2).mean())) or 1.0
            if valid.sum() <= k:
                data.append(None)
                continue
            x = np.zeros_like(reps)
            x[valid] = (reps[valid] - self.mean_[i]) / self.scale_[i]
            x = torch.from_numpy(x)
            rows = torch.from_numpy(np.flatnonzero(valid))
            search = knn if len(rows) <= EXACT_GRAPH_MAX else clustered_knn
            distances, local = search(x[rows], k)
            neighbours = torch.zeros(len(x), k, dtype=torch.long)
            weights = torch.zeros(len(x), k)
            neighbours[rows] = rows[local]
            weights[rows] = fuzzy_weights(distances)
            with torch.no_grad():
                logits = heads[i](torch.from_numpy(np.nan_to_num(reps)))
                log_target = head_log_probabilities(logits.float())
            predicted = log_target.argmax(1)
            same = predicted[:, None] == predicted[neighbours]
            weights = torch.where(same, weights, weights * self.cross_edge_weight)
            # float16 halves the memory of many epochs; the networks see float32.
            data.append(
                _EpochData(
                    x.half().to(self._device),
                    torch.from_numpy(valid).to(self._device),
                    neighbours.to(self._device),
                    weights.to(self._device),
                    log_target.to(self._device),
                )
            )
        return data

    def _schedule(self, pairs: list[tuple[int, int]], replay: bool, rng: np.random.Generator) -> list[tuple[int, int]]:
        """The pair of each step: every pair equally often, shuffled in rounds. When extending,
        half the steps replay earlier pairs so the old frames keep their layout."""
        n_steps = self.steps if self.steps is not None else max(100, 4 * len(self._pairs()))
        if replay:
            n_steps = max(50, n_steps * len(pairs) // len(self._pairs()))
        old = [p for p in self._pairs() if p not in pairs] if replay else []
        order: list[tuple[int, int]] = []
        while len(order) < n_steps:
            round_ = [pairs[j] for j in rng.permutation(len(pairs))]
            if old:
                round_ = [p for pair in round_ for p in (pair, old[rng.integers(len(old))])]
            order.extend(round_)
        return order[:n_steps]

    def _train(
        self, data: list[_EpochData | None], heads: list[nn.Module], pairs: list[tuple[int, int]], replay: bool
    ) -> None:
        rng = np.random.default_rng(self.seed + 1)
        generator = torch.Generator().manual_seed(self.seed + 2)
        pairs_usable = [p for p in pairs if data[p[0]] is not None or data[p[1]] is not None]
        if not pairs_usable:
            raise ValueError(
                "no epoch of the run has enough training samples with finite representations "
                f"(more than n_neighbors={self.n_neighbors}); nothing to fit the visualizer on"
            )
        schedule = self._schedule(pairs_usable, replay, rng)
        schedule = [p for p in schedule if data[p[0]] is not None or data[p[1]] is not None]
        self._curve = umap_curve(self.min_dist)
        self._kept: dict[tuple[int, int], torch.Tensor] = {}
        model = self.model_.train()
        heads = [h.to(self._device) for h in heads]
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate, fused=True)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=len(schedule), eta_min=self.learning_rate * 0.01
        )
        history = []
        for first, second in tqdm(schedule, desc="fitting visualizer", disable=not self.progress):
            loss, parts = self._step_loss(data, heads, first, second, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            history.append(parts)
        names = dict.fromkeys(name for parts in history for name in parts)
        self.loss_history_ = {
            name: np.array([h.get(name, np.nan) for h in history], dtype=np.float32) for name in names
        }
        model.eval()

    def _refine(self, data: list[_EpochData | None]) -> dict[int, torch.Tensor]:
        """Set ``offsets_`` (E, P, 2): per epoch, how far each pool sample moves from its
        encoded position. Epochs are refined in order, each starting from the previous
        epoch's offsets, on the neighbourhood loss of its kNN graph plus the temporal loss
        towards the previous refined frame, so frames stay as continuous as the encoder's.
        Returns the refined positions (P, 2) of each epoch with a graph, for the decoder."""
        n_epochs, n_pool = len(self.epochs_), len(self.pool_)
        self.offsets_ = np.zeros((n_epochs, n_pool, 2), dtype=np.float32)
        refined: dict[int, torch.Tensor] = {}
        if not self.refine_steps:
            return refined
        generator = torch.Generator().manual_seed(self.seed + 3)
        temporal_weight = self.temporal_weight * REFINE_TEMPORAL_FACTOR
        offsets = torch.zeros(2, n_pool, device=self._device)  # coordinate-major: see frame_gradient
        previous: tuple[int, torch.Tensor] | None = None  # (epoch index, refined positions)
        for i in tqdm(range(n_epochs), desc="refining frames", disable=not self.progress, leave=False):
            d = data[i]
            if d is None:  # too few finite samples: keep the last offsets
                self.offsets_[i] = offsets.T.cpu().numpy()
                continue
            with torch.no_grad():
                base = self.model_.encode(d.x.float(), i).T.contiguous()
            delta = offsets.clone()  # its gradient is written out (frame_gradient), not autograd's
            optimizer = torch.optim.Adam([delta], lr=REFINE_LEARNING_RATE, fused=True)
            kept = self._kept_neighbours(data, previous[0], i) if previous is not None else None
            tied = float((kept > 0).sum().clamp_min(1)) if kept is not None else 1.0
            for _ in range(self.refine_steps * (1 if previous is not None else FIRST_FRAME_FACTOR)):
                y = base + delta
                grad = frame_gradient(y, d.neighbours, d.weights, d.valid, self.negative_rate, self._curve, generator)
                if kept is not None and temporal_weight:
                    grad += temporal_weight * attraction_gradient(y - previous[1], kept, tied, self._curve)
                delta.grad = grad
                optimizer.step()
            offsets = torch.where(d.valid[None, :], delta, offsets)
            self.offsets_[i] = offsets.T.cpu().numpy()
            previous = (i, base + offsets)
            refined[i] = previous[1].T
        return refined

    def _decoder_loss(
        self, d: _EpochData, head: nn.Module, index: int, positions: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reconstruction and prediction-preserving losses of decoding ``positions`` (len(rows), 2)
        of the pool rows ``rows`` of epoch ``index``; the second is None without prediction_weight."""
        x = d.x.index_select(0, rows).float()
        valid = d.valid.index_select(0, rows).float()
        decoded = self.model_.decode(positions, index)
        recon = (((decoded - x) ** 2).mean(1) * valid).sum() / valid.sum().clamp_min(1)
        if not self.prediction_weight:
            return recon, None
        reps = decoded * float(self.scale_[index]) + torch.from_numpy(self.mean_[index]).to(self._device)
        log_p = head_log_probabilities(head(reps).float())
        target = d.log_target.index_select(0, rows)
        kl = (target.exp() * (target - log_p)).sum(1)
        return recon, (kl * valid).sum() / valid.sum().clamp_min(1)

    def _fit_decoder(
        self, data: list[_EpochData | None], heads: list[nn.Module], refined: dict[int, torch.Tensor]
    ) -> None:
        """Train the decoder (only) on the ``refined`` positions of each epoch: the territories
        painted behind a refined frame must be those of the positions shown, not of the encoder's."""
        usable = list(refined)
        if not usable or not (self.reconstruction_weight or self.prediction_weight):
            return
        generator = torch.Generator().manual_seed(self.seed + 4)
        rng = np.random.default_rng(self.seed + 5)
        order = np.concatenate([rng.permutation(usable) for _ in range(DECODER_STEPS_PER_EPOCH)])
        decoder = list(self.model_.decoder.parameters())
        optimizer = torch.optim.Adam(decoder, lr=self.learning_rate, fused=True)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=len(order), eta_min=self.learning_rate * 0.001
        )
        self.model_.train()
        for i in tqdm(order, desc="fitting decoder", disable=not self.progress, leave=False):
            rows = torch.randperm(len(self.pool_), generator=generator)[:DECODED_PER_STEP].to(self._device)
            recon, preserve = self._decoder_loss(data[i], heads[i], int(i), refined[i].index_select(0, rows), rows)
            loss = self.reconstruction_weight * recon
            if preserve is not None:
                loss = loss + self.prediction_weight * preserve
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        self.model_.zero_grad(set_to_none=True)  # the epoch codes got gradients too, unused
        self.model_.eval()

    def _kept_neighbours(self, data: list[_EpochData | None], i: int, j: int) -> torch.Tensor:
        """(P,) fraction of each pool sample's kNN shared by epochs i and j (0 if invalid in
        either): the strength of its temporal edge, so samples whose neighbourhood changed
        are free to move. Computed once per pair."""
        key = (i, j)
        if key not in self._kept:
            same = (data[i].neighbours[:, :, None] == data[j].neighbours[:, None, :]).any(2).float().mean(1)
            self._kept[key] = same * (data[i].valid & data[j].valid).float()
        return self._kept[key]

    def _step_loss(
        self, data: list[_EpochData | None], heads: list[nn.Module], first: int, second: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one step on the adjacent epochs ``first`` and ``second`` (equal for a one-epoch run)."""
        epochs = [i for i in dict.fromkeys((first, second)) if data[i] is not None]
        n_pool = len(self.pool_)
        k = self.n_neighbors
        dev = self._device
        if n_pool <= self.batch_size:
            nodes = torch.arange(n_pool, device=dev)
        else:
            # A random node subset and the kNN edges inside it (an induced subgraph): every
            # encoded sample still brings about k * batch_size / n_pool edges, where sampling
            # edges would encode two samples per edge.
            nodes = torch.randperm(n_pool, generator=generator)[: self.batch_size].sort().values.to(dev)
        local = torch.full((n_pool,), -1, dtype=torch.long, device=dev)
        local[nodes] = torch.arange(len(nodes), device=dev)

        attract, repel, recon, preserve = [], [], [], []
        positions = {}
        for i in epochs:
            d = data[i]
            x = d.x.index_select(0, nodes).float()
            y = self.model_.encode(x, i)
            positions[i] = y
            valid = d.valid.index_select(0, nodes)
            sources = torch.arange(len(nodes), device=dev)[:, None].expand(-1, k).reshape(-1)
            targets = local.index_select(0, d.neighbours.index_select(0, nodes).reshape(-1))
            weight = d.weights.index_select(0, nodes).reshape(-1) * (targets >= 0).float()
            targets = targets.clamp_min(0)
            pull, push = neighbourhood_loss(
                y, sources, targets, weight, valid, self.negative_rate, self._curve, generator
            )
            attract.append(pull)
            if push is not None:
                repel.append(push)
            if self.reconstruction_weight or self.prediction_weight:
                some = torch.randperm(len(nodes), generator=generator)[:DECODED_PER_STEP].to(dev)
                loss_recon, loss_preserve = self._decoder_loss(
                    d, heads[i], i, y.index_select(0, some), nodes.index_select(0, some)
                )
                recon.append(loss_recon)
                if loss_preserve is not None:
                    preserve.append(loss_preserve)
        total = torch.stack(attract).mean()
        parts = {"neighbours": float(total.detach())}
        if repel:
            term = torch.stack(repel).mean()
            total = total + term
            parts["negatives"] = float(term.detach())
        if len(epochs) == 2 and self.temporal_weight:
            i, j = epochs
            weight = self._kept_neighbours(data, i, j).index_select(0, nodes)
            d2 = (positions[i] - positions[j]).pow(2).sum(1)
            term = (weight * F.softplus(neg_log_q(d2, self._curve))).sum() / (weight > 0).float().sum().clamp_min(1)
            total = total + self.temporal_weight * term
            parts["temporal"] = float(term.detach())
        if recon:
            term = torch.stack(recon).mean()
            total = total + self.reconstruction_weight * term
            parts["reconstruction"] = float(term.detach())
        if preserve:
            term = torch.stack(preserve).mean()
            total = total + self.prediction_weight * term
            parts["prediction"] = float(term.detach())
        return total, parts

    # ----------------------------------------------------------------- using the model

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("this TimeTravelVisualizer is not fitted yet; call fit(run) first")

    def _index(self, epoch: int) -> int:
        self._check_fitted()
        if epoch not in self.epochs_:
            raise ValueError(
                f"epoch {epoch!r} was not fitted; fitted epochs are {self.epochs_}. "
                "Call fit(run) again after recording more epochs"
            )
        return self.epochs_.index(epoch)

    def _normalised(self, index: int, reps: np.ndarray, chunk: int):
        """The finite rows of ``reps`` (m, dim) of epoch ``index`` in chunks: (row indices,
        their representations normalised as the networks saw them in training)."""
        finite = np.flatnonzero(np.isfinite(reps).all(axis=1))
        mean = torch.from_numpy(self.mean_[index]).to(self._device)
        for start in range(0, len(finite), chunk):
            rows = finite[start : start + chunk]
            x = torch.from_numpy(np.asarray(reps[rows], dtype=np.float32)).to(self._device) - mean
            yield rows, x / float(self.scale_[index])

    def _encode(self, index: int, reps: np.ndarray, chunk: int = 16384) -> np.ndarray:
        out = np.full((len(reps), 2), np.nan, dtype=np.float32)
        with torch.no_grad():
            for rows, x in self._normalised(index, reps, chunk):
                out[rows] = self.model_.encode(x, index).float().cpu().numpy()
        return out

    def _pool_reference(
        self, index: int, pool_reps: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The normalised finite pool representations of epoch ``index``, their offsets and
        their refined positions, which samples outside the pool are placed by (the last
        epoch asked for is kept). ``pool_reps``: the pool's representations, when the caller
        has already read them from the run."""
        if self._pool_cache is None or self._pool_cache[0] != index:
            reps = pool_reps if pool_reps is not None else self._run.representations(self.epochs_[index])[self.pool_]
            reps = np.asarray(reps, dtype=np.float32)
            finite = np.isfinite(reps).all(axis=1)
            x = torch.from_numpy((reps[finite] - self.mean_[index]) / self.scale_[index]).to(self._device)
            offsets = torch.from_numpy(self.offsets_[index][finite]).to(self._device)
            with torch.no_grad():
                refined = self.model_.encode(x, index) + offsets
            self._pool_cache = (index, x, offsets, refined)
        return self._pool_cache[1:]

    def _place(
        self, index: int, reps: np.ndarray, pool_reps: np.ndarray | None = None, chunk: int = 4096
    ) -> np.ndarray:
        """Canvas positions (m, 2) of representations (m, dim) of epoch ``index`` outside the
        training pool, NaN where not finite (``pool_reps`` as for :meth:`_pool_reference`).

        Without refinement these are the encoder's positions. With it, each is the mean of
        two placements: the encoded position moved by the mean offset of the sample's nearest
        pool samples, and the mean of those samples' refined positions (both weighted by
        inverse squared distance in representation space). The first keeps the encoder's
        say; the second puts the sample among its neighbours (on the digits run it raised
        the test split's NPR@15 from 0.63 to 0.65).
        """
        if not self.refine_steps:
            return self._encode(index, reps)
        reference, offsets, refined = self._pool_reference(index, pool_reps)
        k = min(INTERPOLATED_NEIGHBOURS, len(reference))
        if k == 0:
            return self._encode(index, reps)
        out = np.full((len(reps), 2), np.nan, dtype=np.float32)
        with torch.no_grad():
            for rows, x in self._normalised(index, reps, chunk):  # one normalisation for both uses
                distances, nearest = knn(x, k, reference)
                weights = 1.0 / (distances.pow(2) + 1e-8)
                weights = (weights / weights.sum(1, keepdim=True))[:, :, None]
                moved = self.model_.encode(x, index).float() + (weights * offsets[nearest]).sum(1)
                among = (weights * refined[nearest]).sum(1)
                out[rows] = (0.5 * (moved + among)).cpu().numpy()
        return out

    def _project_all(self, run: Run) -> np.ndarray:
        embedding = np.full((len(self.epochs_), run.n_samples, 2), np.nan, dtype=np.float32)
        outside = np.setdiff1d(np.arange(run.n_samples), self.pool_)
        for i, epoch in enumerate(self.epochs_):
            reps = np.asarray(run.representations(epoch), dtype=np.float32)
            pool_reps = reps[self.pool_]
            # the pool's refined positions, encoded once for both the pool and the placement
            finite = self.pool_[np.isfinite(pool_reps).all(axis=1)]
            embedding[i, finite] = self._pool_reference(i, pool_reps)[2].cpu().numpy()
            embedding[i, outside] = self._place(i, reps[outside], pool_reps)
        return embedding

    def transform(self, epoch: int, representations: np.ndarray) -> np.ndarray:
        """Place samples of ``epoch`` (m, dim) on the canvas (m, 2), without refitting, as
        unseen samples (see ``refine_steps``). Rows with non-finite values get NaN."""
        index = self._index(epoch)
        reps = np.asarray(representations, dtype=np.float32)
        if reps.ndim != 2 or reps.shape[1] != self.dim_:
            raise ValueError(f"representations must have shape (m, {self.dim_}) like the run's, got {reps.shape}")
        return self._place(index, reps)

    def inverse_transform(self, epoch: int, points: np.ndarray) -> np.ndarray:
        """Map canvas points (m, 2) back to representations (m, dim) of ``epoch``."""
        index = self._index(epoch)
        pts = np.asarray(points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must have shape (m, 2), got {pts.shape}")
        with torch.no_grad():
            decoded = self.model_.decode(torch.from_numpy(pts).to(self._device), index).float().cpu().numpy()
        return decoded * self.scale_[index] + self.mean_[index]

    def background(
        self,
        run: Run,
        epoch: int,
        bounds: tuple[float, float, float, float],
        resolution: int = 256,
        boundary_width: float = 0.1,
    ) -> Background:
        """Class territories of ``epoch`` over ``bounds``; see :func:`background`."""
        self._index(epoch)
        return background(self, run, epoch, bounds, resolution, self.head_module, boundary_width)

    def faithfulness(self, run: Run, k: int = 15, max_queries: int | None = 2000) -> dict[str, Any]:
        """Per-epoch NPR@k, PPR (train and test) and temporal smoothness of this fit, from
        :func:`nbdebug.landscape.metrics.evaluate`; kept in ``<run>/visualizer/metrics.json`` next to
        the cached model (with ``cache=True``) and reused while that model is."""
        self._check_fitted()
        if list(run.epochs) != self.epochs_:
            raise ValueError(
                f"the run has epochs {run.epochs} but the visualizer was fitted on {self.epochs_}; call fit(run) first"
            )
        file = run.path / CACHE_DIR / "metrics.json"
        settings = {"key": self._cache_key(), "epochs": self.epochs_, "k": k, "max_queries": max_queries}
        if self.cache and file.exists():
            try:
                stored = json.loads(file.read_text(encoding="utf-8"))
                if stored.get("settings") == settings:
                    return {
                        name: (
                            value
                            if name == "epochs"
                            else np.array(
                                [np.nan if v is None else v for v in value],
                                dtype=bool if name == "reflection" else float,
                            )
                        )
                        for name, value in stored["metrics"].items()
                    }
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable: recompute and overwrite
        result = metrics.evaluate(run, self, k=k, max_queries=max_queries, head_module=self.head_module)
        if self.cache and (run.path / CACHE_DIR).is_dir():
            serialisable = {
                name: (
                    value
                    if name == "epochs"
                    else [
                        None if isinstance(v, float) and not math.isfinite(v) else v for v in np.asarray(value).tolist()
                    ]
                )
                for name, value in result.items()
            }
            try:
                tmp = file.with_suffix(".json.tmp")
                tmp.write_text(json.dumps({"settings": settings, "metrics": serialisable}), encoding="utf-8")
                os.replace(tmp, file)
            except OSError as err:
                warnings.warn(f"cannot cache the faithfulness metrics in {file} ({err})", stacklevel=2)
        return result

    # ----------------------------------------------------------------- the cache

    def _cache_key(self) -> str:
        config = dict(self._config(), format=CACHE_FORMAT)
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]

    def _read_cache(self, run: Run, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
        """The cached fit, if it was made with these settings on this run or on an earlier
        state of it (a prefix of its epochs with identical files); else None."""
        folder = run.path / CACHE_DIR
        if not (folder / "visualizer.json").exists():
            return None
        try:
            with open(folder / "visualizer.json", encoding="utf-8") as f:
                info = json.load(f)
            if info.get("format") != CACHE_FORMAT or info.get("key") != self._cache_key():
                return None
            old = info["fingerprint"]
            cached_epochs = [int(e) for e in info["epochs"]]
            same_run = all(old[key] == fingerprint[key] for key in ("n_samples", "dim", "n_classes", "created"))
            prefix = cached_epochs == list(run.epochs)[: len(cached_epochs)]
            same_epochs = all(old["epochs"].get(str(e)) == fingerprint["epochs"].get(str(e)) for e in cached_epochs)
            if not (same_run and prefix and same_epochs):
                return None
            with np.load(folder / "model.npz", allow_pickle=False) as arrays:
                state = {
                    name[len("model/") :]: torch.from_numpy(arrays[name].copy())
                    for name in arrays.files
                    if name.startswith("model/")
                }
                mean, scale, pool = arrays["mean"].copy(), arrays["scale"].copy(), arrays["pool"].copy()
                offsets = arrays["offsets"].copy()
            embedding = np.load(folder / "embedding.npy", allow_pickle=False)
            if (
                embedding.shape != (len(cached_epochs), run.n_samples, 2)
                or mean.shape != (len(cached_epochs), run.dim)
                or offsets.shape != (len(cached_epochs), len(pool), 2)
            ):
                raise ValueError("shapes disagree with visualizer.json")
        except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as err:
            warnings.warn(f"ignoring the unreadable visualizer cache in {folder} ({err}); refitting", stacklevel=3)
            return None
        return {
            "epochs": cached_epochs,
            "state": state,
            "mean": mean,
            "scale": scale,
            "pool": pool,
            "offsets": offsets,
            "embedding": embedding,
            "info": info,
        }

    def _restore(self, run: Run, cached: dict[str, Any]) -> None:
        self.epochs_ = list(run.epochs)
        self.dim_ = run.dim
        self.n_classes_ = run.n_classes
        self.pool_ = cached["pool"].astype(np.int64)
        self.mean_, self.scale_ = cached["mean"].astype(np.float32), cached["scale"].astype(np.float32)
        self.offsets_ = cached["offsets"].astype(np.float32)
        n_cached = len(cached["epochs"])
        self.model_ = _AutoEncoder(self.dim_, n_cached, self.hidden, self.epoch_dim)
        self.model_.load_state_dict(cached["state"])
        self.model_.to(self._device).eval()
        self.fit_seconds_ = cached["info"].get("seconds")

    def _write_cache(self, run: Run, fingerprint: dict[str, Any]) -> None:
        """Write ``<run>/visualizer/`` whole: into a temporary directory, then swapped in,
        so a crash leaves either the old cache, the new one or none."""
        folder = run.path / CACHE_DIR
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_DIR}-", dir=run.path))
        except OSError as err:
            warnings.warn(
                f"cannot cache the visualizer in {run.path} ({err}); it will be refitted next time", stacklevel=3
            )
            return
        try:
            arrays = {f"model/{name}": value.detach().cpu().numpy() for name, value in self.model_.state_dict().items()}
            arrays.update(mean=self.mean_, scale=self.scale_, pool=self.pool_, offsets=self.offsets_)
            with open(tmp / "model.npz", "wb") as f:
                np.savez(f, **arrays)
            np.save(tmp / "embedding.npy", self.embedding_, allow_pickle=False)
            info = {
                "format": CACHE_FORMAT,
                "key": self._cache_key(),
                "config": self._config(),
                "epochs": self.epochs_,
                "fingerprint": fingerprint,
                "seconds": self.fit_seconds_,
                "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            with open(tmp / "visualizer.json", "w", encoding="utf-8") as f:
                json.dump(info, f, indent=1)
            old = None
            if folder.exists():
                old = run.path / f".{CACHE_DIR}-old-{os.getpid()}"
                os.replace(folder, old)
            os.replace(tmp, folder)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            warnings.warn(
                f"cannot cache the visualizer in {folder} ({err}); it will be refitted next time", stacklevel=3
            )
