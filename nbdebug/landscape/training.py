"""Training the time-travelling visualizer: the per-epoch graphs, the encoder/decoder steps,
the per-frame refinement and the decoder's final fit (see :mod:`nbdebug.landscape.visualizer`
for what each loss does). A :class:`Trainer` reads its settings from the visualizer it
trains for and works on that visualizer's networks and normalisation in place."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..head import log_probabilities
from ..run import Run
from .autoencoder import AutoEncoder
from .neighbours import clustered_knn, knn
from .umap_loss import attraction_gradient, frame_gradient, fuzzy_weights, neg_log_q, neighbourhood_loss, umap_curve

if TYPE_CHECKING:
    from .visualizer import TimeTravelVisualizer

# Samples decoded per epoch and step for the reconstruction and prediction losses: the
# decoder is a regression that needs far fewer samples than the neighbourhood loss.
DECODED_PER_STEP = 512
# Adam's step size on the refinement offsets, in canvas units (layouts span about ±10).
REFINE_LEARNING_RATE = 0.05
# The first frame starts from the encoder alone, the others from the frame before, so
# the first gets this many times the steps: epoch 1's NPR@15 rose from 0.19 (1x) to 0.22
# (python -m benchmarks.visualizer --runs synthetic --methods nbdebug, the 10,000-sample run).
FIRST_FRAME_FACTOR = 8
# The refinement's temporal tie is temporal_weight times this. The encoder already keeps
# frames continuous; a full-strength tie held each frame near the last and cost NPR@15:
# digits 0.531 at 1.0 against 0.542 at 0.3, the 10,000-sample run 0.210 against 0.221, the
# largest rotation staying below 0.3° (python -m benchmarks.visualizer --methods nbdebug).
REFINE_TEMPORAL_FACTOR = 0.3
# Decoder-only training steps per epoch after the refinement.
DECODER_STEPS_PER_EPOCH = 15
# Largest pool whose kNN graphs are searched exactly; above it, by clustered_knn, as UMAP
# approximates its graphs: on the 10,000-sample run (python -m benchmarks.visualizer --runs
# synthetic) an exact graph took 0.8-1.0 s per epoch on this 2-core machine, the clustered
# one 0.2-0.3 s at a recall of 0.89-0.95 (timings_["graphs"] of a fit, and knn against
# clustered_knn on its representations of epochs 1, 15 and 30).
EXACT_GRAPH_MAX = 4096


class EpochData:
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


class Trainer:
    """Fits the model of ``settings`` (a :class:`~nbdebug.landscape.visualizer.TimeTravelVisualizer`
    whose parameters it reads, initialised for the run) on its training pool. The
    visualizer's per-epoch normalisation, ``mean_`` (E, dim) and ``scale_`` (E,), is set in
    place by :meth:`prepare`. ``pairs`` are all adjacent epoch pairs of the run (one
    ``(0, 0)`` for a one-epoch run)."""

    def __init__(self, settings: TimeTravelVisualizer, pairs: list[tuple[int, int]], device: torch.device):
        self.settings = settings
        # The visualizer's own model and arrays, not copies.
        self.model: AutoEncoder = settings.model_
        self.pool, self.mean, self.scale = settings.pool_, settings.mean_, settings.scale_
        self.pairs, self.device = pairs, device
        self.curve = umap_curve(settings.min_dist)
        self.kept: dict[tuple[int, int], torch.Tensor] = {}  # see kept_neighbours

    def prepare(self, run: Run, heads: list[nn.Module | None]) -> list[EpochData | None]:
        """Normalise the pool's representations of every epoch (setting ``mean`` and ``scale``),
        build its kNN graph (edges between samples predicted differently weakened by
        ``cross_edge_weight``) and the head's predictions (all epochs: extending replays the
        old ones too; the recorded probabilities where a head is None, one that cannot be
        rebuilt). None for an epoch with too few finite samples for a graph."""
        s = self.settings
        data: list[EpochData | None] = []
        k = s.n_neighbors
        for i, epoch in enumerate(tqdm(run.epochs, desc="neighbour graphs", disable=not s.progress, leave=False)):
            reps = np.asarray(run.representations(epoch)[self.pool], dtype=np.float32)
            valid = np.isfinite(reps).all(axis=1)
            if valid.sum() <= k:
                warnings.warn(
                    f"epoch {epoch} has {int(valid.sum())} training samples with finite "
                    f"representations, too few for a {k}-neighbour graph; its samples are "
                    "placed by the encoder but it does not shape the training",
                    stacklevel=3,
                )
            if valid.any():
                self.mean[i] = reps[valid].mean(axis=0)
                centred = reps[valid] - self.mean[i]
                self.scale[i] = float(np.sqrt((centred**2).mean())) or 1.0
            if valid.sum() <= k:
                data.append(None)
                continue
            normalised = np.zeros_like(reps)
            normalised[valid] = (reps[valid] - self.mean[i]) / self.scale[i]
            x = torch.from_numpy(normalised)
            rows = torch.from_numpy(np.flatnonzero(valid))
            search = knn if len(rows) <= EXACT_GRAPH_MAX else clustered_knn
            distances, local = search(x[rows], k)
            neighbours = torch.zeros(len(x), k, dtype=torch.long)
            weights = torch.zeros(len(x), k)
            neighbours[rows] = rows[local]
            weights[rows] = fuzzy_weights(distances)
            classifier = heads[i]
            if classifier is None:
                recorded = np.asarray(run.probabilities(epoch)[self.pool], dtype=np.float32)
                log_target = torch.from_numpy(np.log(np.clip(np.nan_to_num(recorded), 1e-12, 1.0)))
            else:
                with torch.no_grad():
                    logits = classifier(torch.from_numpy(np.nan_to_num(reps)))
                    log_target = log_probabilities(logits.float())
            predicted = log_target.argmax(1)
            same = predicted[:, None] == predicted[neighbours]
            weights = torch.where(same, weights, weights * s.cross_edge_weight)
            # float16 halves the memory of many epochs; the networks see float32.
            data.append(
                EpochData(
                    x.half().to(self.device),
                    torch.from_numpy(valid).to(self.device),
                    neighbours.to(self.device),
                    weights.to(self.device),
                    log_target.to(self.device),
                )
            )
        return data

    def schedule(self, pairs: list[tuple[int, int]], replay: bool, rng: np.random.Generator) -> list[tuple[int, int]]:
        """The pair of each step: every pair equally often, shuffled in rounds. When extending,
        half the steps replay earlier pairs so the old frames keep their layout."""
        s, every_pair = self.settings, self.pairs
        n_steps = s.steps if s.steps is not None else max(100, 4 * len(every_pair))
        if replay:
            n_steps = max(50, n_steps * len(pairs) // len(every_pair))
        old = [p for p in every_pair if p not in pairs] if replay else []
        order: list[tuple[int, int]] = []
        while len(order) < n_steps:
            round_ = [pairs[j] for j in rng.permutation(len(pairs))]
            if old:
                round_ = [p for pair in round_ for p in (pair, old[rng.integers(len(old))])]
            order.extend(round_)
        return order[:n_steps]

    def train(
        self, data: list[EpochData | None], heads: list[nn.Module | None], pairs: list[tuple[int, int]], replay: bool
    ) -> dict[str, np.ndarray]:
        """Train the encoder and decoder on the adjacent epoch ``pairs`` (``replay``: also on
        the earlier pairs, when extending a cached fit). Returns each loss term per step."""
        s = self.settings
        rng = np.random.default_rng(s.seed + 1)
        generator = torch.Generator().manual_seed(s.seed + 2)
        pairs_usable = [p for p in pairs if data[p[0]] is not None or data[p[1]] is not None]
        if not pairs_usable:
            raise ValueError(
                "no epoch of the run has enough training samples with finite representations "
                f"(more than n_neighbors={s.n_neighbors}); nothing to fit the visualizer on"
            )
        schedule = self.schedule(pairs_usable, replay, rng)
        schedule = [p for p in schedule if data[p[0]] is not None or data[p[1]] is not None]
        model = self.model.train()
        heads = [None if h is None else h.to(self.device) for h in heads]
        optimizer = torch.optim.Adam(model.parameters(), lr=s.learning_rate, fused=True)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=len(schedule), eta_min=s.learning_rate * 0.01
        )
        history = []
        for first, second in tqdm(schedule, desc="fitting visualizer", disable=not s.progress):
            loss, parts = self.step_loss(data, heads, first, second, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            history.append(parts)
        names = dict.fromkeys(name for parts in history for name in parts)
        model.eval()
        return {name: np.array([h.get(name, np.nan) for h in history], dtype=np.float32) for name in names}

    def refine(self, data: list[EpochData | None]) -> tuple[np.ndarray, dict[int, torch.Tensor]]:
        """The offsets (E, P, 2): per epoch, how far each pool sample moves from its
        encoded position. Epochs are refined in order, each starting from the previous
        epoch's offsets, on the neighbourhood loss of its kNN graph plus the temporal loss
        towards the previous refined frame, so frames stay as continuous as the encoder's.
        Also returns the refined positions (P, 2) of each epoch with a graph, for the decoder."""
        s = self.settings
        n_epochs, n_pool = len(data), len(self.pool)
        all_offsets = np.zeros((n_epochs, n_pool, 2), dtype=np.float32)
        refined: dict[int, torch.Tensor] = {}
        if not s.refine_steps:
            return all_offsets, refined
        generator = torch.Generator().manual_seed(s.seed + 3)
        temporal_weight = s.temporal_weight * REFINE_TEMPORAL_FACTOR
        offsets = torch.zeros(2, n_pool, device=self.device)  # coordinate-major: see frame_gradient
        previous: tuple[int, torch.Tensor, EpochData] | None = None  # epoch index, refined positions, data
        for i in tqdm(range(n_epochs), desc="refining frames", disable=not s.progress, leave=False):
            d = data[i]
            if d is None:  # too few finite samples: keep the last offsets
                all_offsets[i] = offsets.T.cpu().numpy()
                continue
            with torch.no_grad():
                base = self.model.encode(d.x.float(), i).T.contiguous()
            delta = offsets.clone()  # its gradient is written out (frame_gradient), not autograd's
            optimizer = torch.optim.Adam([delta], lr=REFINE_LEARNING_RATE, fused=True)
            # the temporal tie to the previous refined frame: its positions, each sample's weight, their count
            tie = None
            if previous is not None:
                kept = self.kept_neighbours(previous[0], i, previous[2], d)
                tie = (previous[1], kept, float((kept > 0).sum().clamp_min(1)))
            for _ in range(s.refine_steps * (1 if tie is not None else FIRST_FRAME_FACTOR)):
                y = base + delta
                grad = frame_gradient(y, d.neighbours, d.weights, d.valid, s.negative_rate, self.curve, generator)
                if tie is not None and temporal_weight:
                    grad += temporal_weight * attraction_gradient(y - tie[0], tie[1], tie[2], self.curve)
                delta.grad = grad
                optimizer.step()
            offsets = torch.where(d.valid[None, :], delta, offsets)
            all_offsets[i] = offsets.T.cpu().numpy()
            previous = (i, base + offsets, d)
            refined[i] = previous[1].T
        return all_offsets, refined

    def decoder_loss(
        self, d: EpochData, head: nn.Module | None, index: int, positions: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reconstruction and prediction-preserving losses of decoding ``positions`` (len(rows), 2)
        of the pool rows ``rows`` of epoch ``index``; the second is None without prediction_weight
        or without a head."""
        s = self.settings
        x = d.x.index_select(0, rows).float()
        valid = d.valid.index_select(0, rows).float()
        decoded = self.model.decode(positions, index)
        recon = (((decoded - x) ** 2).mean(1) * valid).sum() / valid.sum().clamp_min(1)
        if not s.prediction_weight or head is None:
            return recon, None
        reps = decoded * float(self.scale[index]) + torch.from_numpy(self.mean[index]).to(self.device)
        log_p = log_probabilities(head(reps).float())
        target = d.log_target.index_select(0, rows)
        kl = (target.exp() * (target - log_p)).sum(1)
        return recon, (kl * valid).sum() / valid.sum().clamp_min(1)

    def fit_decoder(
        self, data: list[EpochData | None], heads: list[nn.Module | None], refined: dict[int, torch.Tensor]
    ) -> None:
        """Train the decoder (only) on the ``refined`` positions of each epoch: the territories
        painted behind a refined frame must be those of the positions shown, not of the encoder's."""
        s = self.settings
        usable = list(refined)
        if not usable or not (s.reconstruction_weight or s.prediction_weight):
            return
        generator = torch.Generator().manual_seed(s.seed + 4)
        rng = np.random.default_rng(s.seed + 5)
        order = np.concatenate([rng.permutation(usable) for _ in range(DECODER_STEPS_PER_EPOCH)])
        decoder = list(self.model.decoder.parameters())
        optimizer = torch.optim.Adam(decoder, lr=s.learning_rate, fused=True)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=len(order), eta_min=s.learning_rate * 0.001
        )
        self.model.train()
        for i in tqdm(order, desc="fitting decoder", disable=not s.progress, leave=False):
            rows = torch.randperm(len(self.pool), generator=generator)[:DECODED_PER_STEP].to(self.device)
            recon, preserve = self.decoder_loss(data[i], heads[i], int(i), refined[i].index_select(0, rows), rows)
            loss = s.reconstruction_weight * recon
            if preserve is not None:
                loss = loss + s.prediction_weight * preserve
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        self.model.zero_grad(set_to_none=True)  # the epoch codes got gradients too, unused
        self.model.eval()

    def kept_neighbours(self, i: int, j: int, first: EpochData, second: EpochData) -> torch.Tensor:
        """(P,) fraction of each pool sample's kNN shared by epochs i and j (``first`` and
        ``second``; 0 if invalid in either): the strength of its temporal edge, so samples
        whose neighbourhood changed are free to move. Computed once per pair."""
        key = (i, j)
        if key not in self.kept:
            same = (first.neighbours[:, :, None] == second.neighbours[:, None, :]).any(2).float().mean(1)
            self.kept[key] = same * (first.valid & second.valid).float()
        return self.kept[key]

    def step_loss(
        self,
        data: list[EpochData | None],
        heads: list[nn.Module | None],
        first: int,
        second: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one step on the adjacent epochs ``first`` and ``second`` (equal for a one-epoch run),
        and the value of each of its terms."""
        s = self.settings
        usable = {i: d for i in dict.fromkeys((first, second)) if (d := data[i]) is not None}
        n_pool = len(self.pool)
        k = s.n_neighbors
        dev = self.device
        if n_pool <= s.batch_size:
            nodes = torch.arange(n_pool, device=dev)
        else:
            # A random node subset and the kNN edges inside it (an induced subgraph): every
            # encoded sample still brings about k * batch_size / n_pool edges, where sampling
            # edges would encode two samples per edge.
            nodes = torch.randperm(n_pool, generator=generator)[: s.batch_size].sort().values.to(dev)
        local = torch.full((n_pool,), -1, dtype=torch.long, device=dev)
        local[nodes] = torch.arange(len(nodes), device=dev)

        attract, repel, recon, preserve = [], [], [], []
        positions = {}
        for i, d in usable.items():
            x = d.x.index_select(0, nodes).float()
            y = self.model.encode(x, i)
            positions[i] = y
            valid = d.valid.index_select(0, nodes)
            sources = torch.arange(len(nodes), device=dev)[:, None].expand(-1, k).reshape(-1)
            targets = local.index_select(0, d.neighbours.index_select(0, nodes).reshape(-1))
            weight = d.weights.index_select(0, nodes).reshape(-1) * (targets >= 0).float()
            targets = targets.clamp_min(0)
            pull, push = neighbourhood_loss(y, sources, targets, weight, valid, s.negative_rate, self.curve, generator)
            attract.append(pull)
            if push is not None:
                repel.append(push)
            if s.reconstruction_weight or s.prediction_weight:
                some = torch.randperm(len(nodes), generator=generator)[:DECODED_PER_STEP].to(dev)
                loss_recon, loss_preserve = self.decoder_loss(
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
        if len(usable) == 2 and s.temporal_weight:
            i, j = usable
            weight = self.kept_neighbours(i, j, usable[i], usable[j]).index_select(0, nodes)
            d2 = (positions[i] - positions[j]).pow(2).sum(1)
            term = (weight * F.softplus(neg_log_q(d2, self.curve))).sum() / (weight > 0).float().sum().clamp_min(1)
            total = total + s.temporal_weight * term
            parts["temporal"] = float(term.detach())
        if recon:
            term = torch.stack(recon).mean()
            total = total + s.reconstruction_weight * term
            parts["reconstruction"] = float(term.detach())
        if preserve:
            term = torch.stack(preserve).mean()
            total = total + s.prediction_weight * term
            parts["prediction"] = float(term.detach())
        return total, parts
