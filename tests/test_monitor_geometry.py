"""The checks of the recorded representations: pure functions on arrays, then a Monitor linked
with a Recorder on real digits trainings, with and without flipped labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

import nbdebug
from nbdebug.monitor import Monitor, geometry
from nbdebug.monitor.journal import read_warnings
from nbdebug.monitor.thresholds import DEFAULT_THRESHOLDS as T


def clusters(n_per=40, seed=0):
    """Three well-separated Gaussian clusters in 5 dimensions, labelled by cluster."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 5) * 10
    x = np.concatenate([c + rng.normal(size=(n_per, 5)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), n_per)


def test_separation_is_the_share_of_spread_the_centroids_explain():
    x, y = clusters()
    share, spread = geometry.separation(x, y)
    assert share > 0.9 and spread > 1
    rng = np.random.default_rng(1)
    assert geometry.separation(x, rng.permutation(y))[0] < 0.1  # labels unrelated to the positions
    assert geometry.separation(np.zeros_like(x), y) == (0.0, 0.0)  # every sample in one point


def test_suspects_are_the_samples_their_neighbours_contradict():
    x, y = clusters()
    flipped = y.copy()
    flipped[[0, 50, 100]] = [1, 2, 0]
    found = geometry.suspects(x, flipped, T)
    assert set(np.flatnonzero(found)) == {0, 50, 100}
    assert not geometry.suspects(x, y, T).any()


@pytest.mark.parametrize(
    "history, fires",
    [
        ([(1, 0.6, 1.0), (2, 0.7, 1.0), (3, 0.34, 1.0)], True),  # below half its best (0.7)
        ([(1, 0.6, 1.0), (2, 0.7, 1.0), (3, 0.36, 1.0)], False),  # just above half
        ([(1, 0.15, 1.0), (2, 0.05, 1.0)], False),  # never separated (best below collapse_min)
        ([(1, 0.6, 1.0), (2, 0.0, 0.0)], True),  # the spread vanished
        ([(1, 0.6, 1.0)], False),  # one epoch: nothing to compare
    ],
)
def test_class_collapse(history, fires):
    finding = geometry.class_collapse(history, T)
    assert (finding is not None) == fires
    if fires:
        assert finding.code == "class_collapse" and finding.evidence["best"] == max(h[1] for h in history[:-1])


@pytest.mark.parametrize(
    "counts, fires, started",
    [
        ([(1, 5), (2, 8), (3, 21)], True, 2),  # 21 of 1000 >= 2%, and more than twice the fewest (5)
        ([(1, 5), (2, 8), (3, 19)], False, None),  # 1.9%: below memorized_share
        ([(1, 15), (2, 12), (3, 23)], False, None),  # not yet twice the fewest (12)
        ([(1, 15), (2, 12), (3, 24)], True, 3),  # twice: it started after epoch 2's minimum
        ([(1, 30)], False, None),  # one epoch
    ],
)
def test_memorizing_noisy_labels(counts, fires, started):
    finding = geometry.memorizing_noisy_labels(counts, 1.0, 1000, T)
    assert (finding is not None) == fires
    if fires:
        assert finding.evidence["started"] == started and finding.evidence["count"] == counts[-1][1]


def test_a_large_run_is_followed_through_a_fixed_sample():
    tracked = geometry.tracked_samples(50_000)
    assert len(tracked) == geometry.TRACKED and np.array_equal(tracked, geometry.tracked_samples(50_000))
    assert np.array_equal(geometry.tracked_samples(100), np.arange(100))


def record_digits(path, flip, epochs=12, seed=0):
    """A wide digits MLP trained with a Monitor linked to its Recorder; ``flip`` of the training
    labels are changed to another class. Returns the monitor and the flipped mask."""
    X, y = load_digits(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    mean, std = Xtr.mean(0), Xtr.std(0) + 1e-8
    Xt = torch.tensor((Xtr - mean) / std, dtype=torch.float32)
    Xv = torch.tensor((Xva - mean) / std, dtype=torch.float32)
    rng = np.random.default_rng(1)
    flipped = rng.random(len(ytr)) < flip
    ytr = ytr.copy()
    ytr[flipped] = (ytr[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    yt, yv = torch.tensor(ytr), torch.tensor(yva)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rec = nbdebug.Recorder(model, head=model[-1], path=path, train=(Xt, yt), test=(Xv, yv))
    with Monitor(model, optimizer, nn.CrossEntropyLoss(), recorder=rec) as mon:
        for epoch in range(1, epochs + 1):
            correct = 0
            for idx in torch.randperm(len(Xt)).split(32):
                out = model(Xt[idx])
                loss = F.cross_entropy(out, yt[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                mon.step(loss=loss, inputs=Xt[idx], targets=yt[idx], outputs=out)
                correct += int((out.argmax(1) == yt[idx]).sum())
            with torch.no_grad():
                val_acc = float((model(Xv).argmax(1) == yv).float().mean())
            mon.epoch_end(train_acc=correct / len(Xt), val_acc=val_acc)  # val_n: the run's test split
            rec.capture(epoch)
    return mon, flipped


def test_memorized_label_noise_is_reported_and_saved_for_the_timeline(tmp_path):
    mon, flipped = record_digits(tmp_path / "noisy", flip=0.2)
    w = next(w for w in mon.warnings if w.code == "memorizing_noisy_labels")
    assert w.cause == "label_noise" and 1 < w.evidence["started"] <= w.epoch
    assert 0.02 * len(flipped) <= w.evidence["count"] <= flipped.sum()
    assert mon.epochs[-1]["val_n"] == 540  # taken from the recorder's test split
    saved = read_warnings(tmp_path / "noisy")
    assert [r["code"] for r in saved] == [w.code for w in mon.warnings]
    record = next(r for r in saved if r["code"] == "memorizing_noisy_labels")
    assert record["after_capture"] == w.epoch - 1  # fired in the capture of epoch w.epoch


def test_clean_labels_give_no_geometry_warning(tmp_path):
    mon, _ = record_digits(tmp_path / "clean", flip=0.0)
    assert [w.code for w in mon.warnings] == []
    assert read_warnings(tmp_path / "clean") == []
