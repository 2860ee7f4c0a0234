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

Pools larger than ``training.EXACT_GRAPH_MAX`` get approximate kNN graphs
(:func:`nbdebug.landscape.neighbours.clustered_knn`), as UMAP's are.

Where the parts live: the losses in :mod:`~nbdebug.landscape.umap_loss`, the networks in
:mod:`~nbdebug.landscape.autoencoder`, training in :mod:`~nbdebug.landscape.training`, the
painted territories in :mod:`~nbdebug.landscape.territories`, and the cache of the fitted
model in the run directory (reused for the same settings and unchanged epochs, extended
when epochs were added at the end, refitted otherwise) in :mod:`~nbdebug.landscape.cache`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import head
from .._validation import check_int, check_number
from ..run import Run
from . import cache, metrics
from .autoencoder import AutoEncoder
from .neighbours import knn
from .territories import Territories, territories
from .training import Trainer

# Nearest pool samples that place a sample outside the training pool (see _place).
INTERPOLATED_NEIGHBOURS = 8
# How faithfulness is estimated (2: one subsample per split, with standard errors); others are redone.
ESTIMATOR = 2
# Constructor arguments that do not change the fitted model: left out of the cache key.
NOT_FITTING = ("device", "head_module", "n_threads", "cache", "progress")


class TimeTravelVisualizer:
    """Encoder/decoder over all recorded epochs of a run; the same interface as
    :class:`nbdebug.landscape.projection.AlignedPCA` plus :meth:`territories`.

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
        epoch); every sample of every split is projected. Up to ``training.EXACT_GRAPH_MAX``
        pool samples the kNN graphs are exact, above it clustered (about pool^1.5 · dim per
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
        10,000-sample run 0.1 raised PPR from 0.914 (1.0) to 0.951 at the same NPR@15 (0.235;
        ``python -m benchmarks.visualizer --runs synthetic --methods nbdebug``); with 1.0,
        the 5% of samples predicted unlike most of their neighbours (label noise the model
        learned) sat inside another class's territory.
    refine_steps : int
        Steps of the local refinement per epoch (``training.FIRST_FRAME_FACTOR`` times as many
        for the first); 0 leaves the encoder's layout as it is. The encoder learns the layout of the
        whole run, but a small network trained for seconds cannot hold every sample's
        neighbourhood (on the digits run NPR@15 stalls near 0.44 with ``refine_steps=0``,
        against 0.56 for per-epoch UMAP: ``python -m benchmarks.visualizer --runs digits``).
        The refinement gives each training-pool sample of each epoch an offset from its
        encoded position, optimised on the same neighbourhood loss and tied (more loosely,
        ``training.REFINE_TEMPORAL_FACTOR``) to the previous frame. Other samples are placed
        from the encoder and their nearest pool samples in representation space, so unseen
        samples still need no refitting.
    seed : int
        Seeds initialisation and sampling; the same seed gives the same embedding.
    device : str or torch.device, optional
        Where to train, e.g. "cuda"; default CPU.
    head_module : torch.nn.Module, optional
        For runs whose head is a custom module: an instance of its class (see ``Run.head``).
    n_threads : int or None
        CPU threads torch uses while fitting (restored afterwards); None keeps torch's
        setting. The default 1 is fastest for these small networks when cores are shared:
        with 2 threads on 2 busy cores a step was 5-10x slower (the fit time of
        ``python -m benchmarks.visualizer --runs digits --methods nbdebug`` beside another
        job, with ``n_threads=2``).
    cache : bool
        Reuse, extend or write the fitted model in ``<run>/visualizer/``.
    progress : bool
        Show a progress bar while fitting.
    """

    # Learned by fit (named with a trailing underscore, as in scikit-learn).
    epochs_: list[int]
    embedding_: np.ndarray  # (n_epochs, n_samples, 2) float32, NaN where a representation is not finite
    from_cache_: str | None  # "reused" or "extended" from <run>/visualizer/, None when fitted afresh
    fit_seconds_: float | None  # how long the fit took (as cached, when reused)

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

    # ----------------------------------------------------------------- settings

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every constructor argument and its current value, as scikit-learn estimators give
        them (``deep`` is accepted for compatibility; no argument is itself an estimator)."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def _fitting_params(self) -> dict[str, Any]:
        """The settings that change the fitted model, which key its cache: every constructor
        argument but NOT_FITTING, so a new argument cannot silently reuse a stale cache."""
        return {name: value for name, value in self.get_params().items() if name not in NOT_FITTING}

    def _check_params(self) -> None:
        check_int("n_neighbors", self.n_neighbors, 2)
        if self.steps is not None:
            check_int("steps", self.steps, 1)
        for name, low in (
            ("batch_size", 16),
            ("max_samples", 16),
            ("hidden", 2),
            ("epoch_dim", 0),
            ("negative_rate", 0),
            ("refine_steps", 0),
            ("seed", 0),
        ):
            check_int(name, getattr(self, name), low)
        if self.n_threads is not None:
            check_int("n_threads", self.n_threads, 1)
        for name in ("temporal_weight", "reconstruction_weight", "prediction_weight"):
            check_number(name, getattr(self, name), low=0)
        check_number("learning_rate", self.learning_rate, 0, 1, low_open=True, high_open=True, hint="about 1e-2 works")
        check_number("cross_edge_weight", self.cross_edge_weight, 0, 1, hint="1 keeps UMAP's graph")
        check_number("min_dist", self.min_dist, 0, 1, low_open=True, high_open=True, hint="UMAP's default is 0.1")

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
        fingerprint = run.fingerprint()
        key = cache.cache_key(self._fitting_params())
        cached = cache.read_fit(run, key, fingerprint) if self.cache else None
        started = time.perf_counter()
        if cached is not None and cached.epochs == list(run.epochs):
            self._restore(run, cached)
            self.embedding_ = cached.embedding
            self.from_cache_ = "reused"
            return self

        can = head.can_rebuild(run, self.head_module)  # if not: no head, the recorded predictions
        heads = [head.load_head(run, epoch, self.head_module) if can else None for epoch in run.epochs]
        self.epochs_ = list(run.epochs)
        self.dim_ = run.dim
        self.n_classes_ = run.n_classes
        if cached is not None:
            self._restore(run, cached)
            old = len(cached.epochs)
            self._grow(old)
            new_pairs = [p for p in self._pairs() if p[1] >= old]
            self.from_cache_ = "extended"
        else:
            self._initialise(run)
            new_pairs = self._pairs()
            old = 0
            self.from_cache_ = None
        trainer = Trainer(self, self._pairs(), self._device)
        data = trainer.prepare(run, heads)
        prepared = time.perf_counter()
        self.loss_history_ = trainer.train(data, heads, new_pairs, replay=old > 1)
        trained = time.perf_counter()
        self.offsets_, refined = trainer.refine(data)
        trainer.fit_decoder(data, heads, refined)
        refined_at = time.perf_counter()
        self.embedding_ = self._project_all(run)
        self.timings_ = {
            "graphs": prepared - started,
            "training": trained - prepared,
            "refinement": refined_at - trained,
            "projection": time.perf_counter() - refined_at,
        }
        self.fit_seconds_ = time.perf_counter() - started
        if self.cache:
            cache.write_fit(
                run,
                key=key,
                config=self._fitting_params(),
                fingerprint=fingerprint,
                model=self.model_,
                arrays={"mean": self.mean_, "scale": self.scale_, "pool": self.pool_, "offsets": self.offsets_},
                embedding=self.embedding_,
                epochs=self.epochs_,
                seconds=self.fit_seconds_,
            )
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
            self.model_ = AutoEncoder(self.dim_, len(self.epochs_), self.hidden, self.epoch_dim)
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
        say; the second puts the sample among its neighbours (it raised the digits run's test
        NPR@15 from 0.63, the first alone, to 0.65: ``python -m benchmarks.visualizer --runs
        digits --methods nbdebug``).
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
        for i, epoch in enumerate(tqdm(self.epochs_, desc="placing samples", disable=not self.progress, leave=False)):
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

    def territories(
        self,
        run: Run,
        epoch: int,
        bounds: tuple[float, float, float, float],
        resolution: int = 256,
        boundary_width: float = 0.1,
    ) -> Territories:
        """Class territories of ``epoch`` over ``bounds``; see :func:`nbdebug.landscape.territories.territories`."""
        self._index(epoch)
        return territories(self, run, epoch, bounds, resolution, self.head_module, boundary_width)

    def faithfulness(
        self, run: Run, k: int = 15, max_queries: int | None = 2000, on_epoch: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Per-epoch NPR@k, PPR (train and test, estimated on ``max_queries`` samples with their
        standard errors) and temporal smoothness of this fit, from
        :func:`nbdebug.landscape.metrics.evaluate` (``on_epoch`` as there); kept in
        ``<run>/visualizer/metrics.json`` next to the cached model (with ``cache=True``) and
        reused while that model is."""
        self._check_fitted()
        if list(run.epochs) != self.epochs_:
            raise ValueError(
                f"the run has epochs {run.epochs} but the visualizer was fitted on {self.epochs_}; call fit(run) first"
            )
        key = cache.cache_key(self._fitting_params())
        settings = {"key": key, "epochs": self.epochs_, "k": k, "max_queries": max_queries, "estimator": ESTIMATOR}
        stored = cache.read_faithfulness(run, settings) if self.cache else None
        if stored is not None:
            return stored
        ppr, module = head.can_rebuild(run, self.head_module), self.head_module
        result = metrics.evaluate(run, self, k, max_queries=max_queries, head_module=module, ppr=ppr, on_epoch=on_epoch)
        if self.cache:
            cache.write_faithfulness(run, settings, result)
        return result

    def _restore(self, run: Run, cached: cache.CachedFit) -> None:
        self.epochs_ = list(run.epochs)
        self.dim_ = run.dim
        self.n_classes_ = run.n_classes
        self.pool_ = cached.pool.astype(np.int64)
        self.mean_, self.scale_ = cached.mean.astype(np.float32), cached.scale.astype(np.float32)
        self.offsets_ = cached.offsets.astype(np.float32)
        n_cached = len(cached.epochs)
        self.model_ = AutoEncoder(self.dim_, n_cached, self.hidden, self.epoch_dim)
        self.model_.load_state_dict(cached.state)
        self.model_.to(self._device).eval()
        self.fit_seconds_ = cached.seconds
