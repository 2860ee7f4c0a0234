"""The intention learner: the paper's ridge loop and the default learner, on a real run."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from nbdebug import load_run
from nbdebug.interest.index import top_k
from nbdebug.interest.intention import HEDGE, HEDGE_REACH, PRIOR_UNLABELLED, DefaultLearner, PaperLearner, make_learner
from nbdebug.session import PAPER_ATTRIBUTES, Session


@pytest.fixture(scope="module")
def digits(digits_run_path):
    """(attributes, names, run, train mask, noisy mask) of the shared digits run."""
    run = load_run(digits_run_path)
    session = Session(run, progress=False)
    train = np.zeros(run.n_samples, bool)
    train[run.indices("train")] = True
    noisy = np.zeros(run.n_samples, bool)
    noisy[run.metadata["noisy"]] = True
    return session.anomaly_scores, session.attribute_names, run, train, noisy


def rounds(learner, target, pool, n_rounds=3, flip=0.0, k=50, seed=0):
    rng = np.random.default_rng(seed)
    hits = []
    for _ in range(n_rounds):
        rec = learner.recommend(k, pool)
        assert len(set(rec.tolist())) == len(rec) and pool[rec].all()
        truth = target[rec]
        answer = truth ^ (rng.random(len(rec)) < flip)
        learner.feedback(accept=rec[answer], reject=rec[~answer])
        hits.append(truth.sum())
    return np.array(hits)


def paper_learner(digits):
    a, names, _run, _, _ = digits
    cols = [names.index(n) for n in PAPER_ATTRIBUTES]
    return PaperLearner(a[:, cols], list(PAPER_ATTRIBUTES)), a[:, cols]


def test_paper_mode_starts_equal_and_refits_ridge(digits):
    learner, x = paper_learner(digits)
    np.testing.assert_allclose(learner.coef_, 0.25)
    assert learner.coef_.sum() == pytest.approx(1)
    # One-sided answers leave the coefficients as they are.
    first = learner.recommend(10)
    learner.feedback(reject=first)
    np.testing.assert_allclose(learner.coef_, 0.25)
    # Two-sided answers: the ridge regression of the paper (alpha 1, intercept).
    second = learner.recommend(10)
    learner.feedback(accept=second[:4], reject=second[4:])
    judged = np.concatenate([first, second])
    y = np.r_[np.zeros(10), np.ones(4), np.zeros(6)]
    reference = Ridge(alpha=1.0).fit(x[judged].astype(np.float64), y)
    np.testing.assert_allclose(learner.coef_, reference.coef_, atol=1e-5)
    assert learner.intercept_ == pytest.approx(reference.intercept_, abs=1e-5)


def test_paper_mode_first_round_is_the_most_abnormal(digits):
    learner, x = paper_learner(digits)
    rec = learner.recommend(50)
    interest = x.mean(axis=1)
    assert interest[rec].min() >= np.sort(interest)[-50] - 1e-5


def test_default_first_round_is_the_prior_top_k_hedged_on_the_largest_confusions(digits):
    a, names, run, train, _noisy = digits
    learner = DefaultLearner(a, names, labelled=run.labels >= 0)
    rec = learner.recommend(50, train)
    assert learner.prior == "datamaps_confidence+knn_disagreement"
    z = (a - a.mean(axis=0)) / a.std(axis=0)
    prior = z[:, names.index("datamaps_confidence")] + z[:, names.index("knn_disagreement")]
    # The last places go to the prior's best sample with a label unlike its last prediction
    # in each of the two (label, alternative) cells with the most such samples, taken from
    # within the prior's top 150.
    label, predicted, alternative = _cells(a, names, run, ("label", "predicted", "alternative"))
    cell = np.where(train & (label != predicted), label * len(run.classes) + alternative, -1)
    largest = np.argsort(-np.bincount(cell[cell >= 0]), kind="stable")[:HEDGE]
    best = [np.flatnonzero(cell == c)[np.argmax(prior[cell == c])] for c in largest]
    rank = np.argsort(np.argsort(-np.where(train, prior, -np.inf), kind="stable"), kind="stable")
    hedged = [i for i in best if 50 <= rank[i] < HEDGE_REACH * 50]
    assert hedged and set(rec[-len(hedged) :].tolist()) == set(hedged)
    head = rec[: -len(hedged)]
    others = np.setdiff1d(np.flatnonzero(train), rec)
    assert prior[head].min() >= prior[others].max() - 1e-4
    # One accept there takes its cell up in the next round.
    pair = label * len(run.classes) + alternative
    learner.feedback(accept=rec[-1:], reject=rec[:-1])
    nxt = learner.recommend(10, train)
    assert (pair[nxt] == pair[rec[-1]]).sum() >= 5
    learner = DefaultLearner(a, names, prior="knn_distance")
    rec = learner.recommend(5)
    column = a[:, names.index("knn_distance")]
    assert column[rec].min() >= np.sort(column)[-5]
    # Mostly unlabeled candidates: an uncertainty prior; of it, what a custom set of attributes has.
    unlabelled = DefaultLearner(a, names, labelled=np.zeros(run.n_samples, bool))
    unlabelled.recommend(5)
    assert unlabelled.prior == PRIOR_UNLABELLED
    some = [names.index("knn_distance"), names.index("least_confidence")]
    custom = DefaultLearner(a[:, some], ["knn_distance", "least_confidence"], labelled=np.zeros(run.n_samples, bool))
    custom.recommend(5)
    assert custom.prior == "knn_distance"


def test_default_mode_finds_noisy_labels_and_resists_mistakes(digits):
    a, names, run, train, noisy = digits
    clean = rounds(DefaultLearner(a, names, labelled=run.labels >= 0), noisy, train).sum()
    mistaken = rounds(DefaultLearner(a, names, labelled=run.labels >= 0), noisy, train, flip=0.1).sum()
    best_static = max(
        noisy[top_k(np.where(train, a[:, names.index(name)], -np.inf), 150)].sum()
        for name in ("aum", "datamaps_confidence", "knn_disagreement")
    )
    assert clean >= 0.95 * best_static and mistaken >= 0.9 * best_static
    paper = rounds(paper_learner(digits)[0], noisy, train).sum()
    assert paper > 3 * 150 * noisy[train].mean()  # several times random


def test_one_sided_answers_explore_then_learn(digits):
    # An intention the prior does not rank (out-of-the-way test samples): the first
    # round is all rejects, exploration reaches other attributes, accepts then steer.
    a, names, run, _, _ = digits
    target = a[:, names.index("knn_distance")] > np.quantile(a[:, names.index("knn_distance")], 0.95)
    learner = DefaultLearner(a, names)
    hits = rounds(learner, target, np.ones(run.n_samples, bool), n_rounds=4)
    assert hits[0] <= 5 and hits[1:].sum() >= 0.45 * target.sum()
    assert learner.importance["knn_distance"] == max(learner.importance.values())


def test_answers_can_change_and_sums_stay_exact(digits):
    a, names, _run, _train, _noisy = digits
    learner = DefaultLearner(a, names)
    rec = learner.recommend(20)
    learner.feedback(accept=rec[:10], reject=rec[10:])
    learner.feedback(accept=rec[10:12], reject=rec[:2])  # the user changed their mind on four
    fresh = DefaultLearner(a, names)
    fresh.recommend(20)
    fresh.feedback(accept=np.r_[rec[2:10], rec[10:12]], reject=np.r_[rec[:2], rec[12:]])
    np.testing.assert_allclose(learner.coef_, fresh.coef_, atol=1e-8)
    assert (learner.answers[rec[:2]] == 0).all() and (learner.answers[rec[10:12]] == 1).all()
    assert set(learner.recommend(50).tolist()).isdisjoint(rec.tolist())


def test_compressed_scores_equal_the_full_product(digits):
    a, names, run, _, _noisy = digits
    learner = DefaultLearner(a, names)
    assert learner.index.groups  # the class indicators are stored as codes
    rng = np.random.default_rng(0)
    learner.coef_ = rng.normal(size=len(names))
    full = learner.index.rows(np.arange(run.n_samples)) @ learner.coef_.astype(np.float32)
    np.testing.assert_allclose(learner.scores(), full, atol=2e-4)


def test_a_sample_without_a_last_prediction_keeps_the_class_indicators_compressed(digits):
    a, names, run, train, _ = digits
    a = a.copy()
    predicted = [j for j, name in enumerate(names) if name.startswith("predicted=")]
    a[0, predicted] = 0  # what features.py gives a sample whose last epoch is unusable
    learner = DefaultLearner(a, names, labelled=run.labels >= 0)
    assert len(learner.index.grouped_columns) == sum("=" in name for name in names)  # no group fell back to dense
    assert learner.index.off_diagonal is not None  # so the first round is still hedged
    assert not learner.index.off_diagonal[learner.index.combination_at[learner.index.position[0]]]
    np.testing.assert_allclose(
        learner.index.rows(np.arange(run.n_samples))[:, predicted],
        a[:, predicted] - a[:, predicted].mean(axis=0),
        atol=1e-6,
    )
    learner.coef_ = np.random.default_rng(0).normal(size=len(names))
    full = learner.index.rows(np.arange(run.n_samples)) @ learner.coef_.astype(np.float32)
    np.testing.assert_allclose(learner.scores(), full, atol=2e-4)
    assert len(learner.recommend(50, train)) == 50


def test_bad_feedback_raises_clear_errors(digits):
    a, names, run, _, _ = digits
    learner = DefaultLearner(a, names)
    with pytest.raises(ValueError, match="both accept and reject"):
        learner.feedback(accept=[1, 2], reject=[2])
    with pytest.raises(IndexError, match=r"accept.*outside"):
        learner.feedback(accept=[run.n_samples])
    with pytest.raises(IndexError, match=r"reject.*outside"):
        learner.feedback(reject=[-1])
    with pytest.raises(TypeError, match="accept"):
        learner.feedback(accept=[1.5])
    with pytest.raises(TypeError, match="reject"):
        learner.feedback(reject=[True])
    with pytest.raises(ValueError, match="k must"):
        learner.recommend(-1)
    with pytest.raises(ValueError, match="prior"):
        DefaultLearner(a, names, prior="nope")
    with pytest.raises(ValueError, match="mode"):
        make_learner(a, names, mode="magic")
    with pytest.raises(ValueError, match="cell_prior"):
        DefaultLearner(a, names, cell_prior=0)
    with pytest.raises(ValueError, match="labelled"):
        DefaultLearner(a, names, labelled=np.ones(5, bool))
    for bad in (np.ones(run.n_samples, int), np.ones(5, bool)):
        with pytest.raises(ValueError, match="candidates must be a bool mask"):
            learner.recommend(5, bad)
    assert (learner.answers == -1).all()  # nothing was recorded by the failed calls
    # An empty pool returns nothing and leaves the prior to the first real pool.
    assert len(learner.recommend(5, np.zeros(run.n_samples, bool))) == 0 and learner.prior is None
    learner.recommend(5)
    assert learner.prior == "datamaps_confidence+knn_disagreement"


def test_reset_starts_a_new_intention(digits):
    a, names, _run, train, noisy = digits
    learner = DefaultLearner(a, names)
    rec = learner.recommend(50, train)
    learner.feedback(accept=rec[noisy[rec]], reject=rec[~noisy[rec]])
    learner.reset(prior="knn_distance")
    assert (learner.answers == -1).all() and len(learner.judged) == 0
    assert learner.importance["knn_distance"] == 0.25 and learner.importance["aum"] == 0


def test_top_k_matches_a_full_sort_among_open_samples():
    rng = np.random.default_rng(0)
    for n, k, share in ((100_000, 50, 0.9), (5_000, 300, 0.5), (1_000, 7, 0.01), (40, 40, 1.0)):
        scores = rng.normal(size=n).astype(np.float32)
        among = rng.random(n) < share
        among[:k] = True  # at least k allowed
        reference = np.flatnonzero(among)[np.argsort(-scores[among], kind="stable")][:k]
        np.testing.assert_array_equal(top_k(scores, k, among), reference)
        np.testing.assert_array_equal(top_k(scores, k), np.argsort(-scores, kind="stable")[:k])
    # The threshold is set by the allowed samples only: many high but excluded scores do not hide any.
    scores = np.arange(10_000, dtype=np.float32)
    among = np.zeros(10_000, bool)
    among[::500] = True
    np.testing.assert_array_equal(top_k(scores, 5, among), [9500, 9000, 8500, 8000, 7500])


def _cells(a, names, run, groups):
    """Per sample, its class in each group (given label, last-epoch prediction, alternative),
    read back from the class indicators."""
    return tuple(np.argmax(a[:, [names.index(f"{group}={c}") for c in run.classes]], axis=1) for group in groups)


def test_a_few_accepts_in_one_confusion_cell_lift_the_rest_of_it(digits):
    # The intention is one confusion: the (label, alternative) cell with the most samples
    # whose label differs from their prediction.
    a, names, run, train, _noisy = digits
    label, predicted, alternative = _cells(a, names, run, ("label", "predicted", "alternative"))
    pair = label * len(run.classes) + alternative
    off = np.flatnonzero(train & (label != predicted))
    pairs, counts = np.unique(pair[off], return_counts=True)
    cell = off[pair[off] == pairs[counts.argmax()]]
    assert len(cell) >= 8
    found, rank = {}, {}  # cell members among the next 10; their mean rank among the open samples
    for cell_prior in (10.0, np.inf):  # inf: no per-cell correction, the linear model alone
        learner = DefaultLearner(a, names, labelled=run.labels >= 0, cell_prior=cell_prior)
        first = learner.recommend(20, train)
        learner.feedback(accept=cell[:2], reject=np.setdiff1d(first, cell))
        found[cell_prior] = np.isin(learner.recommend(10, train), cell).sum()
        open_scores = np.where(train & (learner.answers < 0), learner.scores(), -np.inf)
        rank[cell_prior] = np.mean([(open_scores > open_scores[i]).sum() for i in cell[2:]])
        if cell_prior == 10.0:
            # The correction is the shrunk mean residual of the cell's judged samples.
            judged = learner.judged
            residual = learner.answers[judged] - (learner.index.rows(judged) @ learner.coef_ + learner.intercept_)
            in_cell = pair[judged] == pair[cell[0]]
            expected = residual[in_cell].sum() / (in_cell.sum() + cell_prior)
            linear = learner.index.rows(cell[2:]) @ learner.coef_
            np.testing.assert_allclose(learner.scores()[cell[2:]] - linear, expected, atol=1e-4)
    assert found[10.0] >= max(found[np.inf], 2) and rank[10.0] < rank[np.inf] / 2


@pytest.mark.parametrize("sparse", [False, True])
def test_all_rejects_explore_the_largest_cells_and_every_other_attribute(digits, sparse):
    a, names, run, train, _noisy = digits
    pool = train.copy()
    if sparse:  # a pool without whole classes, and thin: exploring reads far into its orders
        pool &= (run.labels < 5) & (np.random.default_rng(0).random(run.n_samples) < 0.3)
    learner = DefaultLearner(a, names, labelled=run.labels >= 0)
    learner.feedback(reject=learner.recommend(50, pool))
    open_ = np.flatnonzero(pool & (learner.answers < 0))
    assert not learner.coef_.any()  # all rejects: nothing learned, the scores are the seeded jitter
    jitter = learner.scores()
    explored = learner.recommend(50, pool)
    assert len(np.unique(explored)) == 50 and np.isin(explored, open_).all()
    # Half the round: a random open sample (the jitter's best) of each of the 25 largest
    # (label, alternative) cells.
    label, alternative = _cells(a, names, run, ("label", "alternative"))
    _, cell, size = np.unique((label * len(run.classes) + alternative)[open_], return_inverse=True, return_counts=True)
    # The 25 largest, leaving out ties at the edge (the thin pool has fewer cells: all of them).
    largest = np.flatnonzero(size > np.sort(size)[-26]) if len(size) > 25 else np.arange(len(size))
    assert len(largest) >= 15
    for c in largest:
        members = open_[cell.reshape(-1) == c]
        assert members[np.argmax(jitter[members])] in explored
    # The other half: the best open sample of every other attribute.
    for j, name in enumerate(names):
        if "=" not in name:
            column = np.full(run.n_samples, -np.inf)
            column[open_] = a[open_, j]
            assert column[explored].max() == column.max()
    learner.feedback(accept=explored[:1], reject=explored[1:])
    exploit = learner.recommend(50, pool)  # one accept ends exploring: the learned ranking
    np.testing.assert_array_equal(exploit, top_k(learner.scores(), 50, pool & (learner.answers < 0)))


def test_exploring_fills_the_round_without_attributes_besides_the_class_indicators(digits):
    a, names, run, train, _noisy = digits
    indicators = [j for j, name in enumerate(names) if "=" in name]
    learner = DefaultLearner(a[:, indicators], [names[j] for j in indicators], labelled=run.labels >= 0)
    learner.feedback(reject=learner.recommend(50, train))
    explored = learner.recommend(50, train)
    assert len(np.unique(explored)) == 50 and (learner.answers[explored] < 0).all() and train[explored].all()


def test_a_candidate_mask_changed_in_place_is_honoured(digits):
    # The learner keeps the last pool reordered to its storage order; a mask edited between
    # two calls must still restrict the next recommendation.
    a, names, run, train, _noisy = digits
    learner = DefaultLearner(a, names, labelled=run.labels >= 0)
    pool = train.copy()
    first = learner.recommend(20, pool)
    learner.feedback(accept=first[:5], reject=first[5:])
    assert train[learner.recommend(20, pool)].all()
    pool[:] = False
    pool[run.indices("test")] = True
    again = learner.recommend(20, pool)
    assert pool[again].all() and not train[again].any()
    np.testing.assert_array_equal(again, top_k(learner.scores(), 20, pool & (learner.answers < 0)))
