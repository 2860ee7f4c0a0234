"""Faithfulness metrics: known answers on constructed data, then on a real run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nbdebug import load_run
from nbdebug.landscape.metrics import (
    evaluate,
    neighbor_preserving_rate,
    prediction_preserving_rate,
    procrustes_angle,
    temporal_smoothness,
)
from nbdebug.landscape.projection import AlignedPCA


def rotate(points, degrees):
    t = np.radians(degrees)
    return points @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])


def test_npr_is_one_for_an_isometry_and_near_chance_for_noise():
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(300, 2))
    high = np.concatenate([plane, np.zeros((300, 5))], axis=1)  # the plane embedded in 7-D
    assert neighbor_preserving_rate(high, rotate(plane, 40) * 3, k=10).mean() == 1.0
    noise = neighbor_preserving_rate(high, rng.normal(size=(300, 2)), k=10).mean()
    assert noise < 0.15  # chance is k / n = 0.033
    some = neighbor_preserving_rate(high, plane, k=10, queries=np.array([3, 7]))
    assert some.shape == (2,)
    with pytest.raises(ValueError, match="k must be an integer between 1 and n - 1"):
        neighbor_preserving_rate(high, plane, k=300)


def test_ppr_counts_agreeing_predictions():
    head = nn.Linear(3, 4)
    reps = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    assert prediction_preserving_rate(head, reps, reps) == 1.0
    constant = np.repeat(reps[:1], 50, axis=0)
    with torch.no_grad():
        predicted = head(torch.from_numpy(reps)).argmax(1).numpy()
    assert prediction_preserving_rate(head, reps, constant) == pytest.approx((predicted == predicted[0]).mean())


def test_procrustes_angle_finds_rotations_and_flips():
    points = np.random.default_rng(2).normal(size=(100, 2))
    assert procrustes_angle(points, rotate(points, 30)) == (pytest.approx(30, abs=1e-6), False)
    assert procrustes_angle(points, points + 5) == (pytest.approx(0, abs=1e-6), False)
    assert procrustes_angle(points, points * [1, -1])[1] is True


def test_temporal_smoothness_of_still_moving_and_turning_frames():
    frame = np.random.default_rng(3).normal(size=(200, 2))
    still = temporal_smoothness(np.stack([frame, frame, frame]))
    np.testing.assert_allclose(still["displacement"], 0, atol=1e-12)
    np.testing.assert_allclose(still["rotation"], 0, atol=1e-6)
    turning = temporal_smoothness(np.stack([frame, rotate(frame, 90)]))
    assert turning["rotation"][0] == pytest.approx(90)
    assert turning["displacement"][0] > 1
    with_nan = np.stack([frame, frame]).copy()
    with_nan[1, :10] = np.nan
    assert temporal_smoothness(with_nan)["displacement"][0] == 0


def test_evaluate_reports_every_epoch_of_a_real_run(digits_run_path):
    run = load_run(digits_run_path)
    pca = AlignedPCA(progress=False).fit(run)
    metrics = evaluate(run, pca, k=15, max_queries=300)
    n = len(run.epochs)
    assert metrics["epochs"] == run.epochs
    for key in ("npr_train", "npr_test", "ppr_train", "ppr_test", "displacement", "rotation", "reflection"):
        assert metrics[key].shape == (n,), key
    for key in ("npr_train", "npr_test", "ppr_train", "ppr_test"):
        assert ((metrics[key] > 0) & (metrics[key] <= 1)).all(), key
    assert np.isnan(metrics["rotation"][0]) and (metrics["rotation"][1:] < 90).all()
    assert not metrics["reflection"].any()  # AlignedPCA aligns each frame to the previous
    with pytest.raises(ValueError, match="fit the projection on this run"):
        evaluate(run, type("P", (), {"embedding_": np.zeros((1, 3, 2))})())


def test_faithfulness_is_estimated_with_its_standard_error(digits_run_path):
    run = load_run(digits_run_path)
    pca = AlignedPCA(progress=False).fit(run)
    exact = evaluate(run, pca, max_queries=None)
    estimate = evaluate(run, pca, max_queries=300)
    for key in ("npr_train", "ppr_train", "npr_test", "ppr_test"):
        assert (exact[f"{key}_se"] == 0).all(), key  # every sample measured: no sampling error
        se = estimate[f"{key}_se"]
        assert ((se > 0) & (se < 0.05)).all(), key
        # Within four standard errors of the exact value at every epoch (a 1-in-15,000 miss).
        assert (np.abs(estimate[key] - exact[key]) <= 4 * se).all(), key
    # The subsample is drawn once, not per epoch: the last epoch alone scores as it does in the run.
    last = type(run)(run.path, run.info, run.labels, run.epochs[-1:], run.dim)
    frames = type("P", (), {"embedding_": pca.embedding_[-1:], "inverse_transform": pca.inverse_transform})()
    alone = evaluate(last, frames, max_queries=300)
    assert alone["npr_train"][0] == estimate["npr_train"][-1] and alone["ppr_train"][0] == estimate["ppr_train"][-1]
