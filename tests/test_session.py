"""Session: attributes, recommendations, feedback persistence, and bad runs, on recorded runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nbdebug import load_run
from nbdebug.interest.attributes import SampleAttributes
from nbdebug.interest.feedback import FILE
from nbdebug.interest.intention import PRIOR_UNLABELLED
from nbdebug.session import Session


def test_existing_api_and_attributes(digits_run_path):
    run = load_run(digits_run_path)
    session = Session(run, progress=False)
    assert session.embedding.shape == (len(run.epochs), run.n_samples, 2)
    assert len(session.bounds) == 4 and session.run is run and session.projection is not None
    names = session.attribute_names
    assert names[:4] == ["location", "velocity", "acceleration", "confidence"]
    assert {"aum", "datamaps_confidence", "forgetting", "knn_disagreement", "margin"} <= set(names)
    scores = session.anomaly_scores
    assert scores.shape == (run.n_samples, len(names)) and np.isfinite(scores).all()
    assert session.anomalous.shape == (run.n_samples,)
    paper = Session(run, mode="paper", progress=False)
    assert paper.attribute_names == ["location", "velocity", "acceleration", "confidence"]
    assert paper.importance == pytest.approx({n: 0.25 for n in paper.attribute_names})
    with pytest.raises(ValueError, match="mode"):
        Session(run, mode="fast")


def test_feedback_is_saved_and_restored(digits_copy):
    session = Session(digits_copy, progress=False)
    noisy = set(load_run(digits_copy).metadata["noisy"])
    first = session.recommend(20, among="train")
    accept = [int(i) for i in first if i in noisy]
    reject = [int(i) for i in first if i not in noisy]
    session.feedback(accept=accept, reject=reject)
    if reject:
        session.feedback(accept=[reject[0]])  # a changed mind
    lines = (digits_copy / FILE).read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert events[0]["event"] == "intention" and events[0]["intention"] == 1
    assert {e["answer"] for e in events[1:]} <= {"accept", "reject"} and all("time" in e for e in events)
    after = session.recommend(20, among="train")
    importance = session.importance

    # The kernel restarts: a new Session on the same directory picks up where it was.
    restored = Session(digits_copy, progress=False)
    answers = restored.learner.answers
    assert (answers[accept] == 1).all()
    if reject:
        assert answers[reject[0]] == 1 and (answers[reject[1:]] == 0).all()
    np.testing.assert_array_equal(restored.recommend(20, among="train"), after)
    assert restored.importance == pytest.approx(importance)
    # Refitting the projection recomputes the attributes but keeps the answers.
    restored.fit()
    assert (restored.learner.answers[accept] == 1).all()


def test_new_intention_resets_and_persists(digits_copy):
    session = Session(digits_copy, progress=False)
    rec = session.recommend(10)
    session.feedback(accept=rec[:3], reject=rec[3:])
    session.new_intention(prior="knn_distance")
    assert (session.learner.answers == -1).all()
    assert session.importance["knn_distance"] == 0.25
    restored = Session(digits_copy, progress=False)
    assert (restored.learner.answers == -1).all() and restored.learner.prior == "knn_distance"
    restored.feedback(reject=[int(restored.recommend(1)[0])])
    events = [json.loads(line) for line in (digits_copy / FILE).read_text().splitlines()]
    assert [e["intention"] for e in events if e["event"] == "intention"] == [1, 2]
    assert events[-1]["intention"] == 2
    with pytest.raises(ValueError, match="prior"):
        session.new_intention(prior="no such attribute")


def test_the_prior_of_an_intention_survives_a_restart(tmp_path, digits_copy, record_tiny):
    # Chosen by the user, of several attributes.
    session = Session(digits_copy, progress=False)
    session.new_intention(prior="margin+knn_distance")
    session.feedback(reject=session.recommend(3))
    assert Session(digits_copy, progress=False).learner.prior == "margin+knn_distance"
    # Chosen by nbdebug: from all samples when answers come first (mostly labelled), from the
    # pool of the first recommendation otherwise (here unlabeled).
    path = record_tiny(tmp_path / "run")
    unlabeled = load_run(path).indices("unlabeled")
    for pool, prior in ((None, "datamaps_confidence+knn_disagreement"), ("unlabeled", PRIOR_UNLABELLED)):
        session = Session(path, progress=False)
        session.new_intention()
        if pool:
            session.recommend(5, among=pool)
        session.feedback(accept=unlabeled[:1], reject=unlabeled[1:5])
        restored = Session(path, progress=False)
        assert session.learner.prior == restored.learner.prior == prior
        np.testing.assert_array_equal(restored.recommend(10), session.recommend(10))
        np.testing.assert_array_equal(restored.learner.judged, session.learner.judged)  # in answer order


def test_an_intention_that_cannot_be_saved_leaves_the_current_one(digits_copy):
    session = Session(digits_copy, progress=False)
    rec = session.recommend(5)
    session.feedback(accept=rec[:2], reject=rec[2:])
    (digits_copy / FILE).unlink()
    (digits_copy / FILE).mkdir()  # appending to it fails, and not for want of permission
    with pytest.raises(OSError, match="cannot save feedback"):
        session.new_intention()
    assert (session.learner.answers[rec[:2]] == 1).all() and (session.learner.answers[rec[2:]] == 0).all()


def test_a_crash_mid_write_loses_only_the_cut_line(digits_copy):
    session = Session(digits_copy, progress=False)
    rec = session.recommend(4)
    session.feedback(accept=rec[:2], reject=rec[2:])
    with open(digits_copy / FILE, "a") as f:
        f.write('{"event": "answer", "intention": 1, "ind')  # the kernel died mid-line
    restored = Session(digits_copy, progress=False)
    assert (restored.learner.answers[rec[:2]] == 1).all() and (restored.learner.answers[rec[2:]] == 0).all()
    # The next answer after the crash starts a line of its own, so it survives the next restart.
    more = restored.recommend(1)
    restored.feedback(accept=more)
    with pytest.warns(UserWarning, match="line 6 is not a feedback event"):  # the cut line, now ended
        answers = Session(digits_copy, progress=False).learner.answers
    assert answers[more[0]] == 1 and (answers[rec[:2]] == 1).all()


def test_bad_feedback_is_refused_and_not_saved(digits_copy):
    session = Session(digits_copy, progress=False)
    n = session.run.n_samples
    with pytest.raises(ValueError, match="both accept and reject"):
        session.feedback(accept=[3], reject=[3])
    with pytest.raises(IndexError, match="accept"):
        session.feedback(accept=[n])
    with pytest.raises(ValueError, match="split"):
        session.recommend(5, among="validation")
    assert not (digits_copy / FILE).exists()


@pytest.mark.parametrize("epochs", [1, 2])
def test_runs_with_one_or_two_epochs(tmp_path, epochs, record_tiny):
    session = Session(record_tiny(tmp_path / "run", epochs=epochs), progress=False)
    names = session.attribute_names
    assert "acceleration" not in names and ("velocity" in names) == (epochs == 2)
    assert np.isfinite(session.anomaly_scores).all()
    rec = session.recommend(5)
    session.feedback(accept=rec[:2], reject=rec[2:])
    assert len(session.recommend(100)) == session.run.n_samples - 5


def test_single_class_sigmoid_run(tmp_path, record_tiny):
    # One sigmoid output and every label the same class.
    session = Session(record_tiny(tmp_path / "run", n_outputs=1, labels=np.zeros(60, int)), progress=False)
    scores = session.anomaly_scores
    assert np.isfinite(scores).all()
    assert (scores[:, session.attribute_names.index("knn_disagreement")][session.run.indices("train")] == 0).all()
    assert len(session.recommend(10)) == 10


def test_run_without_labels(tmp_path, record_tiny):
    path = record_tiny(tmp_path / "run")
    np.save(path / "labels.npy", np.full(80, -1, dtype=np.int64))  # the run as if nothing were labelled
    session = Session(path, progress=False)
    assert np.isfinite(session.anomaly_scores).all()
    rec = session.recommend(10)
    assert session.learner.prior == PRIOR_UNLABELLED
    session.feedback(accept=rec[:5], reject=rec[5:])
    assert len(set(session.recommend(10).tolist()) & set(rec.tolist())) == 0


def test_nan_in_a_trajectory(tmp_path, record_tiny):
    session = Session(record_tiny(tmp_path / "run", nan_row=7), progress=False)
    assert np.isnan(session.embedding[:, 7]).all()
    scores = session.anomaly_scores
    assert np.isfinite(scores).all()
    dense = [j for j, n in enumerate(session.attribute_names) if "=" not in n]
    assert (scores[7, dense] == 1).all()  # a sample that blew up is always worth a look
    names, classes = session.attribute_names, session.run.classes
    label, alternative = (
        np.argmax(scores[7, [names.index(f"{group}={c}") for c in classes]]) for group in ("label", "alternative")
    )
    assert alternative != label  # another class, even with no usable epoch
    assert session.anomalous[7]
    assert 7 in session.recommend(10).tolist()


def test_attributes_are_cached_in_the_run_and_recomputed_when_it_changes(digits_copy, monkeypatch):
    computed = []
    original = SampleAttributes.compute

    def counting(self, *args, **kwargs):
        computed.append(self.mode)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SampleAttributes, "compute", counting)

    first = Session(digits_copy, projection="pca", progress=False)
    scores = first.anomaly_scores
    assert computed == ["default"] and (digits_copy / "attributes-default.npz").exists()
    again = Session(digits_copy, projection="pca", progress=False)
    np.testing.assert_array_equal(again.anomaly_scores, scores)  # read back, not recomputed
    assert again.attribute_names == first.attribute_names and computed == ["default"]
    with np.load(digits_copy / "attributes-default.npz", allow_pickle=False) as saved:
        assert set(saved.files) == {"scores", "names", "key"}

    # Other parameters, another mode, changed labels, a longer run: recomputed.
    Session(digits_copy, projection="pca", n_clusters=10, progress=False).anomaly_scores
    Session(digits_copy, projection="pca", mode="paper", progress=False).anomaly_scores
    assert computed == ["default", "default", "paper"]
    run = load_run(digits_copy)
    last = digits_copy / "epochs" / f"{run.epochs[-1]:06d}"
    shutil.move(last, digits_copy / "aside")  # the run as it was one epoch earlier
    shorter = Session(digits_copy, projection="pca", progress=False)
    assert len(shorter.anomaly_scores) == run.n_samples and len(computed) == 4
    shutil.move(digits_copy / "aside", last)  # training went on: one more epoch
    Session(digits_copy, projection="pca", progress=False).anomaly_scores
    labels = run.labels.copy()
    labels[:5] = (labels[:5] + 1) % run.n_classes
    np.save(digits_copy / "labels.npy", labels)
    Session(digits_copy, projection="pca", progress=False).anomaly_scores
    assert len(computed) == 6

    # A damaged cache file is recomputed, not trusted.
    (digits_copy / "attributes-default.npz").write_bytes(b"not a zip")
    np.testing.assert_array_equal(
        Session(digits_copy, projection="pca", progress=False).anomaly_scores.shape, scores.shape
    )
    assert len(computed) == 7


def test_score_unseen_places_a_new_batch_by_centroid_and_radius(digits_copy):
    run = load_run(digits_copy)
    session = Session(run, progress=False)
    scores = session.anomaly_scores
    n_paper = sum(name in ("location", "velocity", "acceleration", "confidence") for name in session.attribute_names)
    # The test split as if it were a new batch: the session placed it as unseen, so the
    # batch must score exactly as the session's own test rows.
    test = run.indices("test")
    reps = {epoch: np.asarray(run.representations(epoch))[test] for epoch in run.epochs}
    probs = {epoch: np.asarray(run.probabilities(epoch))[test] for epoch in run.epochs}
    restored = Session(run, progress=False)  # attributes from the cache: the detector is fitted on demand
    np.testing.assert_array_equal(
        restored.score_unseen(reps, labels=run.labels[test], probabilities=probs), scores[test, :n_paper]
    )
    from_head = restored.score_unseen(np.stack([reps[e] for e in run.epochs]), labels=run.labels[test])
    assert (from_head == scores[test, :n_paper]).all(axis=1).mean() >= 0.95
    # The same samples with their representation's features shuffled are mostly anomalous.
    rng = np.random.default_rng(0)
    shuffled = restored.score_unseen({e: rng.permuted(r, axis=1) for e, r in reps.items()})
    assert shuffled.shape == (len(test), n_paper) and shuffled.dtype == np.float32
    assert restored.detector.is_anomalous(shuffled).mean() > 2 * restored.detector.is_anomalous(from_head).mean()

    with pytest.raises(ValueError, match=rf"representations lacks epochs \[{run.epochs[-1]}\]"):
        restored.score_unseen({e: reps[e] for e in run.epochs[:-1]})
    with pytest.raises(ValueError, match="representations must have shape"):
        restored.score_unseen(np.stack([reps[e][:, :-1] for e in run.epochs]))
    with pytest.raises(ValueError, match="labels must be"):
        restored.score_unseen(reps, labels=np.full(len(test), run.n_classes))
    with pytest.raises(ValueError, match="probabilities hold"):
        restored.score_unseen(reps, probabilities={e: p[:3] for e, p in probs.items()})
