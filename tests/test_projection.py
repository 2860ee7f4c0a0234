"""AlignedPCA, the linear projection, and the Session around it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import nbdebug
from nbdebug.landscape.projection import AlignedPCA, procrustes_rotation


def test_procrustes_undoes_a_rotation_and_a_flip():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 2))
    angle = 0.7
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ rotate @ np.diag([1, -1])
    q = procrustes_rotation(moved, points)
    np.testing.assert_allclose(moved @ q, points, atol=1e-10)


def test_frames_are_aligned_scaled_and_invertible(digits_run_path):
    run = nbdebug.load_run(digits_run_path)
    projection = AlignedPCA(progress=False).fit(run)
    emb = projection.embedding_
    assert emb.shape == (6, 1797, 2) and emb.dtype == np.float32 and np.isfinite(emb).all()
    train = run.indices("train")
    # Unit spread per frame, whatever the scale of the representations.
    spread = np.sqrt((emb[:, train] ** 2).sum(-1).mean(-1))
    np.testing.assert_allclose(spread, 1, atol=1e-3)
    # Consecutive frames are already aligned: the best further rotation is the identity.
    for a, b in itertools.pairwise(emb):
        np.testing.assert_allclose(procrustes_rotation(b[train], a[train]), np.eye(2), atol=1e-3)
    # transform() places samples where fit() put them; inverse_transform maps back to the plane.
    reps = np.asarray(run.representations(4), dtype=np.float32)
    np.testing.assert_allclose(projection.transform(4, reps[:10]), emb[3, :10], atol=1e-4)
    back = projection.inverse_transform(4, emb[3, :10])
    np.testing.assert_allclose(projection.transform(4, back), emb[3, :10], atol=1e-4)
    with pytest.raises(ValueError, match="was not fitted"):
        projection.transform(99, reps[:1])


def test_session_accepts_paths_and_runs(digits_run_path):
    session = nbdebug.Session(str(digits_run_path))
    assert session.embedding.shape == (6, 1797, 2)
    x0, x1, y0, y1 = session.bounds
    emb = session.embedding
    assert x0 < emb[..., 0].min() and x1 > emb[..., 0].max()
    assert y0 < emb[..., 1].min() and y1 > emb[..., 1].max()
    with pytest.raises(TypeError, match="run must be a Run"):
        nbdebug.Session(3)


def test_a_frame_after_nan_rows_still_aligns(tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    x, y = torch.randn(80, 5), torch.randint(0, 3, (80,))
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    rec = nbdebug.Recorder(model, head=model[2], path=tmp_path / "run", train=(x, y))
    rec.capture(0)
    x[:4] = float("nan")  # a few samples diverge for one epoch, then recover
    with pytest.warns(nbdebug.NonFiniteWarning):
        rec.capture(1)
    x[:4] = 0.0
    rec.capture(2)
    emb = AlignedPCA(progress=False).fit(nbdebug.load_run(tmp_path / "run")).embedding_
    assert np.isnan(emb[1, :4]).all() and np.isfinite(emb[2]).all()
