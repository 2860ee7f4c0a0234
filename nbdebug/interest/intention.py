"""The intention learner (DeepDebugger §4.3): learn what the user is looking for from
accept / reject answers and re-rank the samples not yet judged.

Both learners rank by the linear interest ``IE(s) = sum_i c_i a_i + c_0`` of the attributes,
stored in a :class:`~nbdebug.interest.index.ScoringIndex`, and refit a ridge regression on
the judged samples (accept = 1, reject = 0) from running sums after every answer, in
O(answers_new x d^2 + d^3). :func:`make_learner` builds one by mode name:

``"paper"`` (:class:`PaperLearner`)
    As in the paper: the attributes as given, the coefficients starting equal and summing
    to 1, the ridge penalty pulling them toward 0. While the answers are one-sided there is
    nothing to regress on, so the coefficients stay as they are.

``"default"`` (:class:`DefaultLearner`)
    The same model on standardised attributes, with changes that mattered in simulated
    feedback on recorded runs (precision against every single attribute as a static ranking,
    for noisy labels, mispredicted unlabeled samples, out-of-distribution samples and one
    confusion: ``python -m benchmarks.recommend --parts open``; settings chosen on runs other
    than the reported ones, see ``benchmarks/recommend.py``):

    * the first round is the top-k of a strong prior: the standardised sum of
      ``datamaps_confidence`` and ``knn_disagreement`` when most candidates carry a label;
      of ``margin``, ``knn_disagreement`` and ``knn_distance`` when most are unlabeled, which
      covers mispredicted and out-of-distribution samples;
    * its last ``HEDGE`` places go to the prior's best sample of each of the cells (given
      label and alternative, see :mod:`nbdebug.interest.index`) with the most candidates
      whose label differs from their prediction: a systematic confusion is such a cell whose
      members the prior ranks below the scattered noisy labels, and one accept there is
      enough for the cell correction to take the cell up;
    * the ridge penalty pulls the coefficients toward that prior, scaled by how far its own
      picks were accepted (a prior that does not match the intention stops holding the
      learner back); it stays strong, so that the first accepts set a direction instead of
      fitting noise;
    * every refit adds pseudo-negatives, the unjudged population labelled 0 and weighted as
      ``n_pseudo * pseudo_weight`` samples (its moments enter the normal equations directly),
      so that one-sided or mistaken answers cannot drag a good ranking down;
    * each cell gets a correction, the shrunk mean residual of its judged samples: a linear
      model cannot single out one confusion, this lets two or three accepts in a cell pull
      the rest of it up;
    * while answers are given but none is an accept, each round explores, so that feedback
      can find an intention the prior does not rank: half of it goes to the cells with the
      most open samples (a confusion the model has memorised is such a cell, ranked low by
      the prior), the other half to the top of every other attribute. The first accept ends
      exploring.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from scipy.linalg.lapack import dposv  # scipy comes with scikit-learn

from .._validation import check_choice, check_int, check_number
from .index import ScoringIndex, top_k

# The first round's prior where most candidates carry a label, and where most do not (see the
# module docstring; chosen on runs other than the reported ones).
PRIOR_LABELLED = "datamaps_confidence+knn_disagreement"
PRIOR_UNLABELLED = "margin+knn_disagreement+knn_distance"
# The prior's slope on a standardised attribute (shared by the attributes it sums), about
# what a regression of 0/1 answers on a strong attribute yields.
PRIOR_SLOPE = 0.25
# The first round gives its last places to the prior's best confused sample (label unlike
# prediction) of each of the HEDGE cells with the most, at least HEDGE_MIN_CELL, if the
# prior ranks it within its top HEDGE_REACH x k (chosen on runs other than the reported ones).
HEDGE = 2
HEDGE_MIN_CELL = 5
HEDGE_REACH = 3
# Share of an exploring round that goes to the largest cells (the rest to the top of every
# other attribute; chosen on runs other than the reported ones).
EXPLORE_CELLS = 0.5


class IntentionLearner(ABC):
    """Ranks samples by learned interest; the answers, their running sums and the ridge
    solve shared by :class:`PaperLearner` and :class:`DefaultLearner`.

    Parameters
    ----------
    attributes : (n_samples, n_attributes) array
        One score per attribute and sample (higher = more unusual).
    names : list of str
        Attribute names, one per column.
    prior : str, optional
        The attribute ranking the first round, or several joined by "+" (kept and reported
        by every learner; only :class:`DefaultLearner` ranks by it).
    labelled : (n_samples,) bool array, optional
        Which samples carry a label; default all.
    alpha : float, optional
        Ridge penalty; default the learner's ``default_alpha``.
    seed : int
        Seeds tie-breaking.
    """

    default_alpha: ClassVar[float]

    def __init__(
        self,
        attributes: np.ndarray,
        names: list[str],
        *,
        prior: str | None = None,
        labelled: np.ndarray | None = None,
        alpha: float | None = None,
        seed: int = 0,
    ):
        self.index = self._build_index(attributes, names, seed)
        self.names = list(names)
        self.n, self.d = self.index.n, self.index.d
        self.labelled = np.ones(self.n, bool) if labelled is None else np.asarray(labelled, bool)
        if self.labelled.shape != (self.n,):
            raise ValueError(f"labelled must hold one bool per sample, shape ({self.n},); got {self.labelled.shape}")
        self.seed = seed
        self.alpha = self.default_alpha if alpha is None else float(alpha)
        self.reset(prior)

    @abstractmethod
    def _build_index(self, attributes: np.ndarray, names: list[str], seed: int) -> ScoringIndex:
        """The index the learner scores with."""

    @abstractmethod
    def _initial_coefficients(self, prior: str | None) -> np.ndarray:
        """The coefficients before any answer, (n_attributes,) float64."""

    @abstractmethod
    def _fit(self, sw: Any, sy: Any, sx: np.ndarray, sxx: np.ndarray, sxy: np.ndarray) -> None:
        """Set ``coef_`` and ``intercept_`` from the sums over the answers (at least one): their
        count, of y, of x, of x x^T and of x y."""

    def reset(self, prior: str | None = None) -> None:
        """Forget all answers and restore the initial coefficients (a new intention whose
        first round is ranked by ``prior``, by default chosen when first recommending)."""
        self.check_prior(prior)
        self.requested_prior = prior
        self._set_initial(self.requested_prior)
        self.answers = np.full(self.n, -1, dtype=np.int8)  # -1 unjudged, 0 rejected, 1 accepted
        self._open = np.ones(self.n, dtype=bool)  # per position: not judged in this intention
        # Running sums over the answers, all in one matrix z^T z with z = [x, 1, y] per answer:
        # x x^T, then x (sum of x) and x y in the last two columns, count and sum of y below.
        self._sums = np.zeros((self.d + 2, self.d + 2))
        self._judged = np.zeros(0, dtype=np.int64)  # in answer order
        self._judged_at = np.zeros(0, dtype=np.intp)  # their positions

    def _set_initial(self, prior: str | None) -> None:
        self.initial_coef_ = self._initial_coefficients(prior)
        self.prior = prior
        self.coef_ = self.initial_coef_.copy()
        self.intercept_ = 0.0

    def check_prior(self, prior: Any) -> None:
        """Raise unless ``prior`` is None or names attributes of this learner."""
        if prior is not None and not is_prior(prior, self.names):
            raise ValueError(
                f"prior must be an attribute name, or names joined by '+', from {self.names}; got {prior!r}"
            )

    def prior_for(self, candidates: np.ndarray | None) -> str | None:
        """The prior the first round is ranked by (``candidates``: the pool, a bool mask)."""
        return self.prior

    def resolve_prior(self, candidates: np.ndarray | None) -> None:
        """Fix the prior (see :meth:`prior_for`) if it is not fixed yet."""
        if self.prior is None:
            prior = self.prior_for(candidates)
            if prior is not None:
                self._set_initial(prior)

    @property
    def judged(self) -> np.ndarray:
        """Indices judged so far in this intention, in answer order."""
        return self._judged.copy()

    def check_indices(self, values: Any, name: str) -> np.ndarray:
        """Validate sample indices given by the user (sorted, unique); raises naming ``name``."""
        return self.index.check_indices(values, name)

    def check_answers(self, accept: Any, reject: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated, de-duplicated ``accept`` and ``reject`` indices; a sample in both raises."""
        accept = self.check_indices(accept, "accept")
        reject = self.check_indices(reject, "reject")
        both = sorted(set(accept.tolist()) & set(reject.tolist())) if accept.size and reject.size else []
        if both:
            raise ValueError(f"samples {both[:5]} are in both accept and reject; give each sample one answer per call")
        return accept, reject

    def feedback(self, accept: Any = (), reject: Any = ()) -> None:
        """Record answers (a later answer on a sample replaces an earlier one) and refit."""
        self.record(*self.check_answers(accept, reject))

    def record(self, accept: np.ndarray, reject: np.ndarray) -> None:
        """:meth:`feedback` for answers that :meth:`check_answers` returned."""
        self._store_answers(accept, reject)
        self.refit()

    def _store_answers(self, accept: np.ndarray, reject: np.ndarray) -> None:
        """Enter answers into ``answers``, the judged samples and the running sums."""
        self.resolve_prior(None)
        indices = np.concatenate([accept, reject])
        answers = np.zeros(len(indices))
        answers[: len(accept)] = 1
        again = self.answers[indices] >= 0
        redo = again.any()
        if redo:  # take the earlier answers out of the sums
            self._accumulate(indices[again], self.answers[indices[again]].astype(np.float64), -1.0)
        self._accumulate(indices, answers, 1.0)
        self.answers[indices] = answers
        self._open[self.index.position[indices]] = False
        if redo:  # a sample answered again moves to the end
            self._judged = self._judged[~np.isin(self._judged, indices[again])]
        self._judged = np.concatenate([self._judged, indices])
        self._judged_at = self.index.position[self._judged]

    def _accumulate(self, indices: np.ndarray, y: np.ndarray, sign: float) -> None:
        z = np.empty((len(indices), self.d + 2))
        z[:, : self.d] = self.index.rows(indices)
        z[:, self.d] = 1
        z[:, self.d + 1] = y
        self._sums += sign * (z.T @ z)

    def refit(self) -> None:
        """Fit the coefficients to the answers given so far."""
        d, sums = self.d, self._sums
        if sums[d, d] <= 0:
            self.coef_, self.intercept_ = self.initial_coef_.copy(), 0.0
        else:
            self._fit(sums[d, d], sums[d, d + 1], sums[:d, d], sums[:d, :d], sums[:d, d + 1])

    def _solve_ridge(
        self, sw: Any, sy: Any, sx: np.ndarray, sxx: np.ndarray, sxy: np.ndarray, target: np.ndarray
    ) -> None:
        """Set ``coef_`` and ``intercept_``: the ridge regression with intercept of the sums,
        its penalty ``alpha`` pulling the coefficients toward ``target``."""
        d = self.d
        mean_x = sx / sw
        # Centred normal equations plus the ridge penalty (sw * outer(mean_x, mean_x) is outer(sx, mean_x)).
        gram = sxx - np.outer(sx, mean_x)
        gram.flat[:: d + 1] += self.alpha
        # The system is symmetric positive definite for alpha > 0: a Cholesky solve, called
        # directly (np.linalg.solve's checks cost more than the solve at this size).
        _, coef, info = dposv(gram, sxy - mean_x * sy + self.alpha * target)
        if info:
            raise np.linalg.LinAlgError(
                f"the ridge system is singular (LAPACK info {info}); alpha must be > 0, got {self.alpha}"
            )
        self.coef_ = coef
        self.intercept_ = float((sy - sx @ coef) / sw)

    def scores(self) -> np.ndarray:
        """Interest of every sample under the current coefficients (plus the tie-breaking jitter)."""
        return self._score()[self.index.position]

    def _score(self) -> np.ndarray:
        """Like :meth:`scores`, per position, in the index's reused buffer (valid until the next call)."""
        return self.index.score(self.coef_)

    def recommend(self, k: int = 50, candidates: np.ndarray | None = None) -> np.ndarray:
        """The ``k`` unjudged samples of most interest, best first.

        ``candidates`` is a boolean mask (n,) restricting the pool; default all samples.
        """
        check_int("k", k, 0)
        if candidates is not None:
            candidates = np.asarray(candidates)
        open_ = self._open if candidates is None else self.index.at_positions(candidates, "candidates") & self._open
        k = min(int(k), int(np.count_nonzero(open_)))
        if k == 0:  # before the prior is chosen: an empty pool says nothing about it
            return np.zeros(0, dtype=np.int64)
        self.resolve_prior(candidates)
        return self.index.order[self._rank(open_, k, candidates is not None)]

    def _rank(self, open_: np.ndarray, k: int, restricted: bool) -> np.ndarray:
        """The k open positions to recommend (at least k are open), best first; ``restricted``:
        ``open_`` is narrower than the unjudged samples."""
        scores = self._score()
        if restricted:
            return top_k(scores, k, open_)
        scores[self._judged_at] = -np.inf  # cheaper than a mask over all samples
        return top_k(scores, k)

    @property
    def importance(self) -> dict[str, float]:
        """Attribute name -> current coefficient (:class:`DefaultLearner`: per standard deviation)."""
        return {name: float(c) for name, c in zip(self.names, self.coef_, strict=True)}


class PaperLearner(IntentionLearner):
    """DeepDebugger §4.3 as written: the attributes as given, equal coefficients summing to 1
    at the start, and a ridge regression toward 0 on the judged samples after every answer
    (alpha 1 by default); one-sided answers leave the coefficients as they are.
    Parameters as for :class:`IntentionLearner`."""

    default_alpha = 1.0

    def _build_index(self, attributes: np.ndarray, names: list[str], seed: int) -> ScoringIndex:
        return ScoringIndex(attributes, names, seed=seed)

    def _initial_coefficients(self, prior: str | None) -> np.ndarray:
        return np.full(self.d, 1 / self.d)  # §4.3.2: equal, summing to 1

    def _fit(self, sw: Any, sy: Any, sx: np.ndarray, sxx: np.ndarray, sxy: np.ndarray) -> None:
        if sy == 0 or sy == sw:
            return  # one-sided: a regression would only learn the intercept
        self._solve_ridge(sw, sy, sx, sxx, sxy, np.zeros(self.d))


class DefaultLearner(IntentionLearner):
    """The default learner (see the module docstring): a prior, a hedged first round,
    pseudo-negatives, a ridge target scaled by the prior's credibility, per-cell corrections
    and exploring rounds.

    Parameters (``options``: ``prior``, ``labelled``, ``alpha``, ``seed``) as for
    :class:`IntentionLearner`, where ``prior`` is by default chosen when first recommending,
    from whether most candidates are labelled (see ``labelled``), and ``alpha`` is 100
    (toward the prior scaled by its credibility); and

    n_pseudo, pseudo_weight : int, float
        Pseudo-negatives count as ``n_pseudo`` samples of weight ``pseudo_weight``.
    cell_prior : float
        How many residual-0 samples each cell's correction is shrunk with (> 0; inf turns
        the correction off).
    """

    default_alpha = 100.0

    def __init__(
        self,
        attributes: np.ndarray,
        names: list[str],
        *,
        n_pseudo: int = 20,
        pseudo_weight: float = 0.5,
        cell_prior: float = 10.0,
        **options: Any,
    ):
        check_number("cell_prior", cell_prior, 0, low_open=True, finite=False, hint="inf turns the correction off")
        self.cell_prior = cell_prior
        self.pseudo = n_pseudo * pseudo_weight
        super().__init__(attributes, names, **options)
        # The pseudo-negatives' share of the sums of x and x x^T.
        self._pseudo_x = self.pseudo * self.index.row_mean
        self._pseudo_xx = self.pseudo * self.index.row_products / self.n

    def _build_index(self, attributes: np.ndarray, names: list[str], seed: int) -> ScoringIndex:
        return ScoringIndex(attributes, names, seed=seed, standardise=True, moments=True, exploring=True)

    def _initial_coefficients(self, prior: str | None) -> np.ndarray:
        coef = np.zeros(self.d)
        if prior is not None:
            parts = prior.split("+")
            for name in parts:
                coef[self.names.index(name)] = PRIOR_SLOPE / len(parts)
        return coef

    def prior_for(self, candidates: np.ndarray | None) -> str | None:
        """The prior the first round is ranked by: the one named, else chosen from the share
        of labelled ``candidates`` (bool mask, not empty; None: all samples)."""
        if self.prior is not None:
            return self.prior
        labelled = self.labelled if candidates is None else self.labelled[candidates]
        choice = PRIOR_LABELLED if labelled.mean() >= 0.5 else PRIOR_UNLABELLED
        present = [name for name in choice.split("+") if name in self.names]  # a custom set may lack some
        return "+".join(present) if present else self.names[0]

    def _store_answers(self, accept: np.ndarray, reject: np.ndarray) -> None:
        super()._store_answers(accept, reject)
        # What the cell corrections read of the judged samples.
        self._judged_combinations = self.index.combination_at[self._judged_at]
        self._judged_cells = self.index.cell_of[self._judged_combinations]
        self._judged_answers = self.answers[self._judged].astype(np.float32)
        # Per cell: 1 / (its judged samples + cell_prior), the shrunk mean's denominator.
        judged_per_cell = np.bincount(self._judged_cells, minlength=self.index.n_cells)
        self._cell_shrink = 1 / (judged_per_cell + np.float32(self.cell_prior))

    def _fit(self, sw: Any, sy: Any, sx: np.ndarray, sxx: np.ndarray, sxy: np.ndarray) -> None:
        credibility = min(1.0, 2 * sy / sw)  # trust the prior as far as its own picks were accepted
        target = self.initial_coef_ * credibility
        self._solve_ridge(sw + self.pseudo, sy, sx + self._pseudo_x, sxx + self._pseudo_xx, sxy, target)

    def _score(self) -> np.ndarray:
        return self.index.score(self.coef_, self._cell_correction if len(self._judged) else None)

    def _cell_correction(self, dense_scores: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Per combination of class codes: the mean residual under the linear model of the
        judged samples of its cell, shrunk as if ``cell_prior`` more had residual 0."""
        residual = (
            self._judged_answers
            - dense_scores[self._judged_at]
            - table[self._judged_combinations]
            - np.float32(self.intercept_)
        )
        per_cell = np.bincount(self._judged_cells, residual, self.index.n_cells) * self._cell_shrink
        return per_cell[self.index.cell_of].astype(np.float32)

    def _rank(self, open_: np.ndarray, k: int, restricted: bool) -> np.ndarray:
        if len(self._judged) and self._sums[self.d, self.d + 1] == 0:
            return self._explore(open_, k)
        off_diagonal = self.index.off_diagonal
        if not len(self._judged) and off_diagonal is not None:
            return self._hedge(open_, k, off_diagonal)
        return super()._rank(open_, k, restricted)

    def _hedge(self, open_: np.ndarray, k: int, off_diagonal: np.ndarray) -> np.ndarray:
        """The first round (positions): the prior's top k, whose last places go to the prior's
        best open sample with a label unlike its prediction (``off_diagonal``, per combination)
        in each of the HEDGE cells with the most such samples, if within its reach."""
        index = self.index
        scores = self._score()
        at = np.flatnonzero(open_)
        reach = top_k(scores, min(HEDGE_REACH * k, len(at)), open_)
        top = reach[:k]
        confused = at[off_diagonal[index.combination_at[at]]]
        cell = index.cell_of[index.combination_at[confused]]
        sizes = np.bincount(cell, minlength=index.n_cells)
        extra = []
        for c in np.argsort(-sizes, kind="stable")[: min(HEDGE, k // 10)]:  # at most a tenth of the round
            if sizes[c] >= HEDGE_MIN_CELL:
                members = confused[cell == c]
                best = members[np.argmax(scores[members])]
                if best not in top and scores[best] >= scores[reach[-1]]:
                    extra.append(best)
        return np.concatenate([top[: k - len(extra)], np.array(extra, dtype=top.dtype)])

    def _explore(self, open_: np.ndarray, k: int) -> np.ndarray:
        """An exploring round (positions, like ``open_``, of which recommend made sure at
        least k are open): a random open sample of each of the largest cells, then the top
        of every other attribute in turn; without such attributes, the rest by the scores.
        A random member shows what a cell typically holds; the prior's best member would
        resemble the round that was rejected."""
        chosen = self.index.random_open_of_largest_cells(open_, int(EXPLORE_CELLS * k))
        rest = open_.copy()
        rest[chosen] = False
        chosen = np.concatenate([chosen, self.index.top_open_in_turn(rest, k - len(chosen))])
        if len(chosen) < k:
            rest[chosen] = False
            chosen = np.concatenate([chosen, top_k(self._score(), k - len(chosen), rest)])
        return chosen


# The learners by mode name.
LEARNERS: dict[str, type[IntentionLearner]] = {"default": DefaultLearner, "paper": PaperLearner}
MODES = tuple(LEARNERS)


def make_learner(attributes: np.ndarray, names: list[str], mode: str = "default", **options: Any) -> IntentionLearner:
    """The learner of ``mode`` ("default" or "paper", see :data:`LEARNERS`) over ``attributes``;
    ``options`` as that learner takes them."""
    check_choice("mode", mode, MODES)
    return LEARNERS[mode](attributes, names, **options)


def is_prior(prior: Any, names: list[str]) -> bool:
    """Whether ``prior`` is an attribute name, or names joined by "+", from ``names``."""
    return isinstance(prior, str) and set(prior.split("+")) <= set(names)
