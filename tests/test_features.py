"""Per-sample attributes: the paper's dynamic features and the aggregated attributes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from nbdebug import load_run
from nbdebug.interest import features
from nbdebug.interest.features import (
    aggregate_attributes,
    confidence,
    dynamic_features,
    load_attributes,
    save_attributes,
    select_epochs,
)


def test_dynamic_features_follow_the_paper():
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(4, 6, 2)).astype(np.float32)
    conf = rng.random((4, 6))
    f = dynamic_features(embedding, conf)
    assert f["location"].shape == (6, 8) and f["velocity"].shape == (6, 6) and f["acceleration"].shape == (6, 4)
    # r_loc = (x1, y1, x2, y2, ...); v_i = l_{i+1} - l_i; ac_i = v_{i+1} - v_i.
    np.testing.assert_allclose(f["location"][2], embedding[:, 2].reshape(-1))
    np.testing.assert_allclose(f["velocity"][2, :2], embedding[1, 2] - embedding[0, 2], rtol=1e-6)
    np.testing.assert_allclose(
        f["acceleration"][2, :2], embedding[2, 2] - 2 * embedding[1, 2] + embedding[0, 2], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(f["confidence"], conf.T, rtol=1e-6)


def test_one_or_two_epochs_have_no_velocity_or_acceleration():
    one = dynamic_features(np.zeros((1, 3, 2)), np.ones((1, 3)))
    assert set(one) == {"location", "confidence"}
    two = dynamic_features(np.zeros((2, 3, 2)), np.ones((2, 3)))
    assert set(two) == {"location", "velocity", "confidence"}
    with pytest.raises(ValueError, match="embedding"):
        dynamic_features(np.zeros((2, 3)), np.ones((2, 3)))


def test_confidence_is_equation_one():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    np.testing.assert_allclose(confidence(p), [0.7, 0.6])
    np.testing.assert_allclose(confidence(p, labels=np.array([1, -1])), [0.2, 0.6])
    sigmoid = np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])  # recorded as [1 - p, p]
    np.testing.assert_allclose(confidence(sigmoid, sigmoid=True), [0.8, 0.2, 0.0])


def test_aggregated_attributes_on_a_real_run(digits_run_path):
    run = load_run(digits_run_path)
    attrs = aggregate_attributes(run)
    core = [
        "datamaps_confidence",
        "datamaps_variability",
        "aum",
        "forgetting",
        "knn_disagreement",
        "least_confidence",
        "margin",
        "entropy",
        "prediction_flips",
        "late_flip",
        "knn_distance",
    ]
    assert all(name in attrs for name in core)
    for name, values in attrs.items():
        assert values.shape == (run.n_samples,) and np.isfinite(values).all(), name
        assert values.min() >= 0 and values.max() <= 1, name
    # The class indicators are one-hot.
    labels = np.stack([attrs[f"label={c}"] for c in run.classes], axis=1)
    assert (labels.sum(axis=1) == 1).all()
    # Label-aware attributes find the flipped labels; the paper's measurements say so too.
    train = run.indices("train")
    noisy = np.isin(train, run.metadata["noisy"])
    for name in ("datamaps_confidence", "aum", "knn_disagreement"):
        assert roc_auc_score(noisy, attrs[name][train]) > 0.9, name


def test_aggregates_match_a_hand_computation(digits_run_path):
    run = load_run(digits_run_path)
    attrs = aggregate_attributes(run)
    probs = np.stack([run.probabilities(e) for e in run.epochs]).astype(np.float64)
    for i in (0, 5, int(run.metadata["noisy"][0])):
        y = run.labels[i]
        p = probs[:, i, y]
        other = np.delete(probs[:, i], y, axis=1).max(axis=1)
        assert attrs["datamaps_confidence"][i] == pytest.approx(1 - p.mean(), abs=1e-5)
        assert attrs["aum"][i] == pytest.approx((1 - (p - other).mean()) / 2, abs=1e-5)
        correct = probs[:, i].argmax(axis=1) == y
        forgotten = (correct[:-1] & ~correct[1:]).sum() / (len(correct) - 1)
        assert attrs["forgetting"][i] == pytest.approx(forgotten if correct.any() else 1.0)
        top = np.sort(probs[-1, i])[::-1]
        assert attrs["margin"][i] == pytest.approx(1 - (top[0] - top[1]), abs=1e-5)
        others = probs[:, i].mean(axis=0)
        others[y] = -1
        assert attrs[f"alternative={run.classes[others.argmax()]}"][i] == 1
        assert attrs["alternative_probability"][i] == pytest.approx(others.max(), abs=1e-5)


def test_the_alternative_names_the_true_class_of_a_flipped_label(digits_run_path):
    run = load_run(digits_run_path)
    attrs = aggregate_attributes(run)
    alternative = np.argmax(np.stack([attrs[f"alternative={c}"] for c in run.classes], axis=1), axis=1)
    noisy = np.asarray(run.metadata["noisy"])
    clean = np.asarray(run.metadata["clean_labels"])[noisy]
    assert (alternative[noisy] == clean).mean() > 0.8


def test_epochs_parameter(digits_run_path):
    run = load_run(digits_run_path)
    assert select_epochs(run) == run.epochs
    assert select_epochs(run, [run.epochs[-1], run.epochs[0]]) == [run.epochs[0], run.epochs[-1]]
    with pytest.raises(ValueError, match="epochs"):
        select_epochs(run, [999])
    with pytest.raises(ValueError, match="epochs"):
        select_epochs(run, [])
    last_only = aggregate_attributes(run, epochs=[run.epochs[-1]])
    assert (last_only["prediction_flips"] == 0).all()


def test_saved_attributes_come_back_only_under_the_same_key(tmp_path):
    attributes = {"aum": np.array([0.1, 0.9], np.float32), "label=a/b": np.array([1, 0], np.float32)}
    key = {"version": 1, "epochs": [1, 2], "embedding": "abc"}
    path = tmp_path / "attributes-default.npz"
    assert save_attributes(path, key, attributes)
    loaded = load_attributes(path, {"epochs": [1, 2], "embedding": "abc", "version": 1})  # key order is free
    assert list(loaded) == list(attributes)
    for name in attributes:
        np.testing.assert_array_equal(loaded[name], attributes[name])
    assert load_attributes(path, {**key, "epochs": [1, 2, 3]}) is None
    assert load_attributes(tmp_path / "missing.npz", key) is None
    assert [p.name for p in tmp_path.iterdir()] == ["attributes-default.npz"]  # no temporary file left
    # A directory that cannot be written (here: one that does not exist): False, no error.
    assert not save_attributes(tmp_path / "gone" / "attributes-default.npz", key, attributes)


def test_large_runs_search_neighbours_approximately_and_nearly_agree(digits_run_path, monkeypatch):
    run = load_run(digits_run_path)
    exact = aggregate_attributes(run)
    monkeypatch.setattr(features, "EXACT_NEIGHBOURS_MAX", 500)  # the 1,437 training samples are "many"
    approximate = aggregate_attributes(run)
    for name in ("knn_disagreement", "knn_distance"):
        assert not np.array_equal(exact[name], approximate[name]), name  # the other search was used
        assert np.abs(exact[name] - approximate[name]).mean() < 0.02, name
    assert all(np.array_equal(exact[n], approximate[n]) for n in exact if not n.startswith("knn_"))
