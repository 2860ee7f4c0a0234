"""The time-travelling visualizer on real recorded runs (tiny fits: few steps, small pool)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from nbdebug import Recorder, load_run
from nbdebug.landscape import training
from nbdebug.landscape.cache import CACHE_DIR
from nbdebug.landscape.metrics import evaluate, neighbor_preserving_rate
from nbdebug.landscape.neighbours import knn
from nbdebug.landscape.umap_loss import frame_gradient, fuzzy_weights, neighbourhood_loss, umap_curve
from nbdebug.landscape.visualizer import TimeTravelVisualizer
from nbdebug.run import EPOCHS_DIR, epoch_dirname

FAST = dict(steps=25, max_samples=300, hidden=32, progress=False)


@pytest.fixture(scope="module")
def fitted(digits_run_path):
    run = load_run(digits_run_path)
    return run, TimeTravelVisualizer(cache=False, **FAST).fit(run)


def test_embedding_covers_every_sample_of_every_epoch(fitted):
    run, vis = fitted
    assert vis.epochs_ == run.epochs
    assert vis.embedding_.shape == (len(run.epochs), run.n_samples, 2)
    assert vis.embedding_.dtype == np.float32
    assert np.isfinite(vis.embedding_).all()
    # Frames are spread out, not collapsed onto a point.
    assert (vis.embedding_.std(axis=1) > 0.1).all()
    epoch = run.epochs[2]
    reps = np.asarray(run.representations(epoch)[:7], dtype=np.float32)
    np.testing.assert_allclose(vis.transform(epoch, reps), vis.embedding_[2, :7], atol=1e-5)
    back = vis.inverse_transform(epoch, vis.embedding_[2, :7])
    assert back.shape == (7, run.dim) and back.dtype == np.float32


def test_test_samples_are_placed_without_refitting(fitted):
    run, vis = fitted
    test = run.indices("test")
    assert not np.isin(vis.pool_, test).any(), "the visualizer must train on training samples only"
    before = {name: p.detach().clone() for name, p in vis.model_.state_dict().items()}
    epoch = run.epochs[-1]
    reps = np.asarray(run.representations(epoch)[test], dtype=np.float32)
    placed = vis.transform(epoch, reps)
    np.testing.assert_allclose(placed, vis.embedding_[-1, test], atol=1e-5)
    # A later-added sample (a perturbed test sample) lands near the sample it came from.
    moved = vis.transform(epoch, reps[:20] * 1.01)
    spread = np.linalg.norm(vis.embedding_[-1] - vis.embedding_[-1].mean(0), axis=1).mean()
    assert np.median(np.linalg.norm(moved - placed[:20], axis=1)) < 0.1 * spread
    for name, p in vis.model_.state_dict().items():
        assert torch.equal(p, before[name])
    with pytest.raises(ValueError, match=r"representations must have shape \(m, 128\)"):
        vis.transform(epoch, reps[:, :10])
    with pytest.raises(ValueError, match="was not fitted"):
        vis.transform(999, reps)


def test_same_seed_same_embedding_other_seed_differs(digits_run_path):
    run = load_run(digits_run_path)
    kwargs = dict(FAST, steps=10, cache=False)
    first = TimeTravelVisualizer(seed=3, **kwargs).fit(run).embedding_
    again = TimeTravelVisualizer(seed=3, **kwargs).fit(run).embedding_
    other = TimeTravelVisualizer(seed=4, **kwargs).fit(run).embedding_
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_territories_show_the_decoded_classes(fitted):
    run, vis = fitted
    bounds = (-5.0, 5.0, -4.0, 6.0)
    bg = vis.territories(run, run.epochs[-1], bounds, resolution=32)
    assert bg.image.shape == (32, 32, 4) and bg.image.dtype == np.uint8
    assert (bg.image[..., 3] == 255).all()
    assert bg.predicted.shape == (32, 32) and bg.confidence.shape == (32, 32)
    assert ((bg.confidence >= 0) & (bg.confidence <= 1)).all()
    with pytest.raises(ValueError, match="resolution"):
        vis.territories(run, run.epochs[-1], bounds, resolution=1)
    with pytest.raises(ValueError, match="bounds"):
        vis.territories(run, run.epochs[-1], (1.0, 0.0, 0.0, 1.0))


def record_toy(path):
    """A real 2-class run: an MLP learning two interleaved half-moons, 3 epochs."""
    from sklearn.datasets import make_moons

    x, y = make_moons(600, noise=0.1, random_state=0)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rec = Recorder(model, head=model[4], path=path, train=(x[:500], y[:500]), test=(x[500:], y[500:]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: threads only add overhead on shared cores
    try:
        for epoch in range(3):
            for _ in range(50):
                loss = nn.functional.cross_entropy(model(x[:500]), y[:500])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            rec.capture(epoch)
    finally:
        torch.set_num_threads(threads)
    return load_run(path)


def test_toy_territory_boundary_is_where_the_model_decision_changes(tmp_path):
    run = record_toy(tmp_path / "moons")
    vis = TimeTravelVisualizer(steps=120, hidden=64, cache=False, progress=False, seed=0).fit(run)
    epoch = run.epochs[-1]
    points = vis.embedding_[-1]
    low, high = points.min(0), points.max(0)
    bounds = (float(low[0]), float(high[0]), float(low[1]), float(high[1]))
    res = 96
    bg = vis.territories(run, epoch, bounds, resolution=res)
    assert set(np.unique(bg.predicted)) == {0, 1}

    # Each sample's pixel has the class the model predicts for that sample.
    col = np.clip(np.round((points[:, 0] - low[0]) / (high[0] - low[0]) * (res - 1)), 0, res - 1).astype(int)
    row = np.clip(np.round((high[1] - points[:, 1]) / (high[1] - low[1]) * (res - 1)), 0, res - 1).astype(int)
    predicted = np.asarray(run.probabilities(epoch)).argmax(1)
    agree = (bg.predicted[row, col] == predicted).mean()
    assert agree > 0.95, f"only {agree:.0%} of samples sit on a pixel of their predicted class"

    # Pixels where the painted class changes are white-ish; the territories are not.
    change = np.zeros((res, res), bool)
    change[:, 1:] |= bg.predicted[:, 1:] != bg.predicted[:, :-1]
    change[1:, :] |= bg.predicted[1:, :] != bg.predicted[:-1, :]
    lightness = bg.image[..., :3].astype(float).mean(2)
    assert change.any()
    assert lightness[change].mean() > lightness[~change].mean() + 20
    assert bg.gap[change].mean() < 0.3 < bg.gap[~change].mean()


def test_cache_is_reused_refitted_on_new_settings_and_extended_with_new_epochs(digits_run_path, tmp_path, copy_run):
    path = copy_run(digits_run_path)
    last = load_run(path).epochs[-1]
    held = tmp_path / "held"
    shutil.move(path / EPOCHS_DIR / epoch_dirname(last), held)

    run = load_run(path)
    first = TimeTravelVisualizer(**FAST).fit(run)
    assert first.from_cache_ is None
    folder = path / CACHE_DIR
    assert {p.name for p in folder.iterdir()} >= {"visualizer.json", "model.npz", "embedding.npy"}
    info = json.loads((folder / "visualizer.json").read_text())
    assert info["epochs"] == run.epochs

    again = TimeTravelVisualizer(**FAST).fit(load_run(path))
    assert again.from_cache_ == "reused"
    np.testing.assert_array_equal(again.embedding_, first.embedding_)
    reps = np.asarray(run.representations(run.epochs[0])[:5], dtype=np.float32)
    np.testing.assert_allclose(again.transform(run.epochs[0], reps), first.transform(run.epochs[0], reps), atol=1e-6)

    other = TimeTravelVisualizer(**dict(FAST, seed=1)).fit(run)
    assert other.from_cache_ is None

    shutil.move(held, path / EPOCHS_DIR / epoch_dirname(last))
    grown = load_run(path)
    extended = TimeTravelVisualizer(**dict(FAST, seed=1)).fit(grown)
    assert extended.from_cache_ == "extended"
    assert extended.embedding_.shape == (len(grown.epochs), grown.n_samples, 2)
    assert np.isfinite(extended.embedding_).all()
    assert json.loads((folder / "visualizer.json").read_text())["epochs"] == grown.epochs
    assert TimeTravelVisualizer(**dict(FAST, seed=1)).fit(grown).from_cache_ == "reused"


def test_a_run_with_one_epoch_fits(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    for epoch in load_run(path).epochs[1:]:
        shutil.rmtree(path / EPOCHS_DIR / epoch_dirname(epoch))
    run = load_run(path)
    vis = TimeTravelVisualizer(cache=False, **FAST).fit(run)
    assert vis.embedding_.shape == (1, run.n_samples, 2)
    metrics = evaluate(run, vis, max_queries=200)
    assert np.isnan(metrics["rotation"][0])
    assert 0 < metrics["npr_train"][0] <= 1


def test_nan_representations_get_nan_positions(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    run = load_run(path)
    bad_epoch = run.epochs[1]
    file = path / EPOCHS_DIR / epoch_dirname(bad_epoch) / "representations.npy"
    reps = np.load(file)
    reps[[0, 5, 1500]] = np.nan  # two train samples and a test sample
    np.save(file, reps)
    empty_epoch = run.epochs[3]  # an epoch that diverged entirely
    file = path / EPOCHS_DIR / epoch_dirname(empty_epoch) / "representations.npy"
    np.save(file, np.full_like(np.load(file), np.nan))

    run = load_run(path)
    with pytest.warns(UserWarning, match=f"epoch {empty_epoch} has 0 training samples with finite"):
        vis = TimeTravelVisualizer(cache=False, **FAST).fit(run)
    frame = vis.embedding_[1]
    assert np.isnan(frame[[0, 5, 1500]]).all()
    assert np.isfinite(np.delete(frame, [0, 5, 1500], axis=0)).all()
    assert np.isnan(vis.embedding_[3]).all()
    assert np.isfinite(vis.embedding_[[0, 2, 4, 5]]).all()
    assert np.isnan(vis.transform(bad_epoch, reps[:2].astype(np.float32))[0]).all()


class PaddedHead(nn.Linear):
    """Same weights as the recorded Linear head, but one logit too many."""

    def forward(self, x):
        out = super().forward(x)
        return torch.cat([out, out[:, :1]], dim=1)


def test_head_with_wrong_output_size_is_refused(digits_run_path):
    run = load_run(digits_run_path)
    vis = TimeTravelVisualizer(cache=False, head_module=PaddedHead(run.dim, run.n_classes), **FAST)
    with pytest.raises(ValueError, match=r"has 10 classes; head_module must map \(batch, 128\)"):
        vis.fit(run)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_neighbors=1), "n_neighbors must be an integer >= 2"),
        (dict(learning_rate=5.0), "learning_rate must be in"),
        (dict(temporal_weight=-1), "temporal_weight must be a finite number >= 0"),
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(cross_edge_weight=2.0), "cross_edge_weight must be in"),
    ],
)
def test_bad_settings_are_named(digits_run_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TimeTravelVisualizer(cache=False, progress=False, **kwargs).fit(load_run(digits_run_path))


def test_misuse_is_explained(digits_run_path):
    with pytest.raises(TypeError, match="run must be a Run"):
        TimeTravelVisualizer().fit(str(digits_run_path))
    with pytest.raises(RuntimeError, match="not fitted yet"):
        TimeTravelVisualizer().transform(1, np.zeros((1, 128), np.float32))


def test_faithfulness_is_computed_once_and_cached(digits_run_path, copy_run):
    run = load_run(copy_run(digits_run_path))
    vis = TimeTravelVisualizer(**FAST).fit(run)
    first = vis.faithfulness(run, max_queries=200)
    assert (run.path / CACHE_DIR / "metrics.json").exists()
    assert first["npr_train"].shape == (len(run.epochs),)
    assert ((first["ppr_train"] > 0.2) & (first["ppr_train"] <= 1)).all()  # tiny fit; chance is 0.1
    again = TimeTravelVisualizer(**FAST).fit(run).faithfulness(run, max_queries=200)
    for key in ("npr_train", "npr_test", "ppr_test", "rotation"):
        np.testing.assert_array_equal(again[key], first[key])


def test_refinement_sharpens_neighbourhoods_of_pool_and_outside_samples(digits_run_path):
    run = load_run(digits_run_path)
    plain = TimeTravelVisualizer(cache=False, **dict(FAST, refine_steps=0)).fit(run)
    refined = TimeTravelVisualizer(cache=False, **FAST).fit(run)
    assert not plain.offsets_.any() and np.abs(refined.offsets_).max() > 0.1
    # Same network (the refinement comes after training): pool samples sit at encoder + offset.
    np.testing.assert_allclose(
        refined.embedding_[:, refined.pool_] - refined.offsets_, plain.embedding_[:, plain.pool_], atol=1e-4
    )
    outside = np.setdiff1d(run.indices("train"), refined.pool_)
    last = np.asarray(run.representations(run.epochs[-1]), dtype=np.float32)
    for rows in (refined.pool_, outside):
        before = neighbor_preserving_rate(last[rows], plain.embedding_[-1, rows]).mean()
        after = neighbor_preserving_rate(last[rows], refined.embedding_[-1, rows]).mean()
        assert after > before + 0.05, (len(rows), before, after)


def test_refinement_gradient_is_the_neighbourhood_loss_gradient(digits_run_path):
    run = load_run(digits_run_path)
    x = torch.from_numpy(np.asarray(run.representations(run.epochs[-1]), dtype=np.float32))
    distances, neighbours = knn(x, 15)
    weights = fuzzy_weights(distances)
    valid = torch.ones(len(x), dtype=torch.bool)
    valid[:40] = False  # rows without a finite representation: no edges, no repulsion
    weights[:40] = 0
    curve = umap_curve(0.1)
    y = torch.randn(len(x), 2, generator=torch.Generator().manual_seed(0)) * 3
    leaf = y.clone().requires_grad_(True)
    attract, repel = neighbourhood_loss(
        leaf,
        torch.arange(len(x)).repeat_interleave(15),
        neighbours.reshape(-1),
        weights.reshape(-1),
        valid,
        5,
        curve,
        torch.Generator().manual_seed(1),
    )
    (attract + repel).backward()
    written = frame_gradient(y.T.contiguous(), neighbours, weights, valid, 5, curve, torch.Generator().manual_seed(1))
    torch.testing.assert_close(written.T, leaf.grad, rtol=1e-4, atol=1e-7)


def test_large_pools_get_clustered_graphs_that_keep_neighbourhoods(digits_run_path, monkeypatch):
    run = load_run(digits_run_path)
    exact = TimeTravelVisualizer(cache=False, **dict(FAST, max_samples=1000)).fit(run)
    monkeypatch.setattr(training, "EXACT_GRAPH_MAX", 500)  # this pool of 1,000 is then "large"
    clustered = TimeTravelVisualizer(cache=False, **dict(FAST, max_samples=1000)).fit(run)
    assert not np.allclose(clustered.embedding_, exact.embedding_)  # the other graph was used
    last = np.asarray(run.representations(run.epochs[-1]), dtype=np.float32)
    rows = exact.pool_
    npr = [neighbor_preserving_rate(last[rows], v.embedding_[-1, rows]).mean() for v in (exact, clustered)]
    assert npr[1] > npr[0] - 0.05, npr


def test_weaker_edges_across_predictions_keep_samples_in_their_predicted_territory(digits_run_path):
    run = load_run(digits_run_path)
    ppr = {}
    for factor in (1.0, 0.0):
        vis = TimeTravelVisualizer(cache=False, **dict(FAST, max_samples=1437, cross_edge_weight=factor)).fit(run)
        ppr[factor] = np.mean(evaluate(run, vis, splits=("train",))["ppr_train"])
    assert ppr[0.0] > ppr[1.0] + 0.01, ppr
