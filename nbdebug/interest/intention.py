"""The intention learner (DeepDebugger §4.3): learn what the user is looking for from
accept / reject answers and re-rank the samples not yet judged.

Two modes:

``"paper"``
    As in the paper: interest ``IE(s) = sum_i c_i a_i + c_0`` over the attributes,
    the coefficients starting equal and summing to 1; every answer (accept = 1,
    reject = 0) refits a ridge regression on the judged samples. While the answers
    are one-sided there is nothing to regress on, so the coefficients stay as they are.

``"default"``
    The same linear ridge model on standardised attributes, with changes that the
    measurements behind issue 4 showed to matter:

    * the first round is the top-k of a strong prior: the sum of the standardised
      ``datamaps_confidence`` and ``knn_disagreement`` when most candidates carry a
      label; ``margin``, ``knn_disagreement`` and ``knn_distance`` when most are
      unlabeled, which covers both mispredicted and out-of-distribution samples
      (chosen on benchmark runs other than the reported ones, see
      ``benchmarks/recommend.py``);
    * a cell is a combination of given label and alternative (``CELL_GROUPS``; for an
      unlabeled sample, prediction and alternative): one confusion ("true 3 labelled
      8") is one cell, whether the model predicts the true class or has memorised the
      wrong label;
    * where candidates carry labels, the first round's last ``HEDGE`` places (at most a
      tenth of the round) go to the prior's best sample in each of the cells with the
      most candidates whose label differs from their last prediction, if the prior ranks
      it within its top ``HEDGE_REACH x k``. A systematic confusion is such a cell whose
      members the prior ranks below the scattered noisy labels; one accept there is
      enough for the cell correction below to take the cell up;
    * the ridge penalty pulls the coefficients toward that prior instead of toward
      zero, the prior scaled by how far its own picks were accepted (a prior that does
      not match the intention stops holding the learner back). The penalty itself stays
      strong, so that the first few accepts set a direction instead of fitting noise;
    * every refit adds pseudo-negatives: the unjudged population, labelled 0 and
      weighted as ``n_pseudo * pseudo_weight`` samples (its mean and covariance enter
      the normal equations directly, so no sampling and no per-round cost). One-sided
      or mistaken answers then cannot drag a good ranking down;
    * besides the class indicators (``label=<c>``, ``predicted=<c>``,
      ``alternative=<c>``), each cell gets a correction: the mean residual of its judged
      samples, shrunk toward 0 as if ``cell_prior`` more samples had residual 0. A
      linear model cannot single out one confusion; this lets two or three accepts in a
      cell pull the rest of it up;
    * while answers are given but none is an accept, each recommendation explores, so
      that feedback can find an intention the prior does not rank: half of it
      (``EXPLORE_CELLS``) is a random open sample of each of the cells with the most
      open samples, the other half the top open samples of every attribute other than
      the class indicators in turn. The first accept ends exploring. A confusion the
      model has memorised is such a large cell that the prior ranks low.

A refit costs O(answers_new x d^2 + d^3) from running sums of the answers. A re-rank
is one product of the coefficients with the attribute-major attribute blocks, one value
per combination of classes for the class indicators (samples are stored sorted by it, so
that is one np.repeat; the cell corrections cost O(answers)), and a partial sort of the
few hundred open samples above a threshold taken from a strided sample of the scores.
An exploring round reads orders sorted once at the start (each dense attribute's, and a
random one per cell) from their beginning until it meets enough open samples.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dposv  # scipy comes with scikit-learn

MODES = ("default", "paper")
PRIOR_LABELLED = "datamaps_confidence+knn_disagreement"
PRIOR_UNLABELLED = "margin+knn_disagreement+knn_distance"
BLOCK = 8192
# The top-k search first takes a threshold from every STRIDE-th open sample.
STRIDE = 32
INDICATOR_SCALE = 1.0
# The first round gives its last places to the prior's best confused sample (label unlike
# prediction) of each of the HEDGE cells with the most, at least HEDGE_MIN_CELL, if the
# prior ranks it within its top HEDGE_REACH x k (chosen on runs other than the reported ones).
HEDGE = 2
HEDGE_MIN_CELL = 5
HEDGE_REACH = 3
# The class groups whose combination is a cell (see the module docstring); where one is
# missing, a cell is a whole combination of classes.
CELL_GROUPS = ("label", "alternative")
# Share of an exploring round that goes to the largest cells (the rest to the top of every
# other attribute; chosen on runs other than the reported ones).
EXPLORE_CELLS = 0.5


class IntentionLearner:
    """Ranks samples by learned interest.

    Parameters
    ----------
    attributes : (n_samples, n_attributes) array
        One score per attribute and sample (higher = more unusual).
    names : list of str
        Attribute names, one per column.
    mode : "default" or "paper"
    prior : str, optional
        Default mode: the attribute ranking the first round, or several joined by "+"
        (their standardised sum); by default chosen when first recommending, from
        whether most candidates are labelled (see ``labelled``).
    labelled : (n_samples,) bool array, optional
        Which samples carry a label; default all.
    alpha : float, optional
        Ridge penalty (paper mode: 1, toward 0; default mode: 100, toward the prior scaled by
        its credibility).
    n_pseudo, pseudo_weight : int, float
        Default mode: pseudo-negatives count as ``n_pseudo`` samples of weight ``pseudo_weight``.
    cell_prior : float
        Default mode: how many residual-0 samples each cell's correction is shrunk with
        (> 0; a cell is a (label, alternative) pair, see the module docstring).
    seed : int
        Seeds tie-breaking.
    """

    def __init__(
        self,
        attributes: np.ndarray,
        names: list[str],
        mode: str = "default",
        prior: str | None = None,
        labelled: np.ndarray | None = None,
        alpha: float | None = None,
        n_pseudo: int = 20,
        pseudo_weight: float = 0.5,
        cell_prior: float = 10.0,
        seed: int = 0,
    ):
        attributes = np.asarray(attributes, dtype=np.float32)
        if attributes.ndim != 2 or attributes.shape[1] != len(names) or not len(names):
            raise ValueError(
                f"attributes must have shape (n_samples, len(names)) with at least one attribute, "
                f"got {attributes.shape} for {len(names)} names"
            )
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.names = list(names)
        self.mode = mode
        self.n, self.d = attributes.shape
        self.labelled = np.ones(self.n, bool) if labelled is None else np.asarray(labelled, bool)
        if self.labelled.shape != (self.n,):
            raise ValueError(f"labelled must hold one bool per sample, shape ({self.n},); got {self.labelled.shape}")
        self.pseudo = n_pseudo * pseudo_weight if mode == "default" else 0.0
        if not cell_prior > 0:
            raise ValueError(f"cell_prior must be > 0 (inf turns the per-cell correction off), got {cell_prior!r}")
        self.cell_prior = cell_prior
        self.seed = seed
        self.alpha = (1.0 if mode == "paper" else 100.0) if alpha is None else float(alpha)
        attributes = np.where(np.isfinite(attributes), attributes, 1.0)
        one_hot = one_hot_groups(attributes, self.names)
        mean, scale = np.zeros(self.d), np.ones(self.d)
        if mode == "default":
            mean, std = attributes.mean(axis=0), attributes.std(axis=0)
            scale = np.where(std > 0, std, 1)
            # Class indicators are only centred: unscaled, the ridge penalty makes a class
            # matter only when the answers clearly point at it.
            scale[[j for columns, _ in one_hot.values() for j in columns]] = INDICATOR_SCALE
            attributes = (attributes - mean) / scale
        x = attributes.astype(np.float64)
        # The pseudo-negatives' share of the sums of x and x x^T.
        self._pseudo_x = self.pseudo * x.mean(axis=0)
        self._pseudo_xx = self.pseudo * (x.T @ x) / self.n
        self._index_classes(one_hot, mean, scale)
        self._store_dense(attributes)
        self._candidates = None  # the last candidate mask, and per position
        self.reset(prior)

    def _index_classes(self, one_hot: dict, mean: np.ndarray, scale: np.ndarray) -> None:
        """Stores the samples sorted by their combination of classes in the one-hot groups, with
        the tables a score, a cell and the first round's hedge read per combination."""
        # Per group: its columns, and a table whose row c holds those columns (standardised)
        # for a sample of class c (a last row of all "off" if some sample is in none).
        self._groups: list[tuple[np.ndarray, np.ndarray]] = []
        group_prefixes = []
        code = np.zeros(self.n, dtype=np.int32)  # all groups' classes in one mixed-radix number
        n_combinations = 1
        cell_groups_first = sorted(
            one_hot, key=lambda g: CELL_GROUPS.index(g) if g in CELL_GROUPS else len(CELL_GROUPS)
        )
        for prefix in cell_groups_first:
            columns, classes_of_group = one_hot[prefix]
            off, on = (0 - mean[columns]) / scale[columns], (1 - mean[columns]) / scale[columns]
            n_classes = len(columns) + int((classes_of_group == len(columns)).any())  # + none
            if n_combinations * n_classes > 1 << 20:
                continue  # too many combinations for one lookup table: stays dense
            n_combinations *= n_classes
            code = code * n_classes + classes_of_group
            table = np.where(np.eye(n_classes, len(columns), dtype=bool), on, off)
            self._groups.append((columns, table.astype(np.float32)))
            group_prefixes.append(prefix)
        self._grouped = np.concatenate([columns for columns, _ in self._groups] or [np.zeros(0, np.int64)])
        self._dense = np.setdiff1d(np.arange(self.d), self._grouped)
        # Samples are stored sorted by their combination of class codes, so the groups' part
        # of the scores is a run of one value per combination (np.repeat) instead of a
        # gather over all samples, and the members of a cell (below) are one run of positions.
        # _order[position] is the sample there, _position its inverse.
        self._order = np.argsort(code, kind="stable")
        self._position = np.empty(self.n, dtype=np.intp)
        self._position[self._order] = np.arange(self.n)
        self._counts = np.bincount(code, minlength=n_combinations)
        self._code_at = np.repeat(np.arange(n_combinations), self._counts)  # per position
        # Per combination: each group's class, and all groups' columns (standardised) in one row.
        classes = np.unravel_index(np.arange(n_combinations), [len(table) for _, table in self._groups] or [1])
        self._combination_rows = np.concatenate(
            [table[c] for (_, table), c in zip(self._groups, classes)] or [np.zeros((n_combinations, 0))], axis=1
        ).astype(np.float32)
        # Per combination: whether the given label differs from the prediction (both known).
        self._off_diagonal = None
        if {"label", "predicted"} <= set(group_prefixes):

            def class_names(group):  # per combination: the class name in group, and whether it has one
                i = group_prefixes.index(group)
                columns = self._groups[i][0]
                known = classes[i] < len(columns)
                names = np.array([self.names[j].split("=", 1)[1] for j in columns])
                return names[np.where(known, classes[i], 0)], known

            (label, has_label), (predicted, has_prediction) = class_names("label"), class_names("predicted")
            self._off_diagonal = (label != predicted) & has_label & has_prediction
        # Per combination: its cell, the given label and the alternative where both groups
        # exist (they come first in the code), else the whole combination. One confusion
        # ("true 3 labelled 8") is one cell whether the model predicts the true class or has
        # memorised the wrong label.
        per_cell = 1
        if group_prefixes[: len(CELL_GROUPS)] == list(CELL_GROUPS):
            per_cell = n_combinations // np.prod([len(table) for _, table in self._groups[: len(CELL_GROUPS)]])
        self._cell_of = np.arange(n_combinations) // per_cell
        self._n_cells = n_combinations // per_cell
        # All groups' tables side by side (block-diagonal), so one product gives every part.
        self._group_values = np.zeros((sum(len(table) for _, table in self._groups), len(self._grouped)))
        self._group_parts = []  # each group's slice of that product
        start = column = 0
        for columns, table in self._groups:
            self._group_parts.append(slice(start, start + len(table)))
            self._group_values[self._group_parts[-1], column : column + len(columns)] = table
            start, column = start + len(table), column + len(columns)

    def _store_dense(self, attributes: np.ndarray) -> None:
        """Stores the dense attributes (all but the one-hot groups) attribute-major for the
        product that scores, and the orders an exploring round reads."""
        # The dense attributes, plus a last row of tiny random numbers with coefficient 1
        # that breaks the many ties of cluster scores at random inside the product, are
        # kept attribute-major in blocks of BLOCK samples: (n_blocks, n_dense + 1, BLOCK).
        # One np.matmul then scores every block with a single-threaded BLAS call each (on
        # a busy machine BLAS threads wait for each other and a product takes 10x longer).
        jitter = np.random.default_rng(self.seed).random(self.n) * 1e-6
        dense = np.column_stack([attributes[:, self._dense], jitter])[self._order]
        n_blocks = -(-self.n // BLOCK)
        padded = np.zeros((n_blocks * BLOCK, len(self._dense) + 1), dtype=np.float32)
        padded[: self.n] = dense
        self._blocks = np.ascontiguousarray(padded.reshape(n_blocks, BLOCK, -1).transpose(0, 2, 1))
        self._buffer = np.empty((n_blocks, BLOCK), dtype=np.float32)  # scores land here
        self._coef = np.ones(len(self._dense) + 1, dtype=np.float32)  # the jitter's stays 1
        if self.mode == "default":
            # For exploring (see _explore), per dense attribute: its positions from the highest
            # value down, ties broken by the jitter (in float64, which keeps it whole); per
            # cell, its positions by the jitter alone (a random order), and where cells start.
            self._attribute_orders = np.argsort(-(dense[:, :-1] + dense[:, -1:]).T, axis=1).astype(np.int32)
            cell_at = self._cell_of[self._code_at]
            self._cell_starts = np.searchsorted(cell_at, np.arange(self._n_cells + 1))
            self._cell_random_order = np.lexsort((-dense[:, -1], cell_at)).astype(np.int32)

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
        if self.mode == "paper":
            self.initial_coef_ = np.full(self.d, 1 / self.d)  # §4.3.2: equal, summing to 1
        else:
            # The prior's slope on a standardised attribute, about what a regression of
            # 0/1 answers on a strong attribute yields.
            self.initial_coef_ = np.zeros(self.d)
            if prior is not None:
                parts = prior.split("+")
                for name in parts:
                    self.initial_coef_[self.names.index(name)] = 0.25 / len(parts)
        self.prior = prior
        self.coef_ = self.initial_coef_.copy()
        self.intercept_ = 0.0

    def check_prior(self, prior) -> None:
        """Raise unless ``prior`` is None or names attributes of this learner."""
        if prior is not None and not is_prior(prior, self.names):
            raise ValueError(
                f"prior must be an attribute name, or names joined by '+', from {self.names}; got {prior!r}"
            )

    def prior_for(self, candidates: np.ndarray | None) -> str | None:
        """The prior the first round is ranked by: the one named, else (default mode) chosen
        from the share of labelled ``candidates`` (bool mask, not empty; None: all samples)."""
        if self.mode == "paper" or self.prior is not None:
            return self.prior
        labelled = self.labelled if candidates is None else self.labelled[candidates]
        choice = PRIOR_LABELLED if labelled.mean() >= 0.5 else PRIOR_UNLABELLED
        present = [name for name in choice.split("+") if name in self.names]  # a custom set may lack some
        return "+".join(present) if present else self.names[0]

    def resolve_prior(self, candidates: np.ndarray | None) -> None:
        """Fix the prior (see :meth:`prior_for`) if it is not fixed yet."""
        if self.prior is None and self.mode == "default":
            self._set_initial(self.prior_for(candidates))

    @property
    def judged(self) -> np.ndarray:
        """Indices judged so far in this intention, in answer order."""
        return self._judged.copy()

    def check_indices(self, values, name: str) -> np.ndarray:
        """Validate sample indices given by the user; raises naming ``name``."""
        array = np.asarray([] if values is None else values)
        if array.ndim > 1:
            raise ValueError(f"{name} must be a flat list of sample indices, got shape {array.shape}")
        array = array.reshape(-1)
        if (
            array.dtype.kind not in "iu"
            and array.size
            and (array.dtype.kind != "f" or not np.all(np.isfinite(array) & (array == np.round(array))))
        ):
            raise TypeError(f"{name} must hold integer sample indices, got {array[:5].tolist()}")
        ints = np.unique(array.astype(np.int64, copy=False))  # sorted: the range check reads the ends
        if ints.size and (ints[0] < 0 or ints[-1] >= self.n):
            bad = ints[(ints < 0) | (ints >= self.n)]
            raise IndexError(
                f"{name} holds {bad[:5].tolist()}, outside 0..{self.n - 1}; pass indices of samples of this run"
            )
        return ints

    def check_answers(self, accept, reject) -> tuple[np.ndarray, np.ndarray]:
        """Validated, de-duplicated ``accept`` and ``reject`` indices; a sample in both raises."""
        accept = self.check_indices(accept, "accept")
        reject = self.check_indices(reject, "reject")
        both = sorted(set(accept.tolist()) & set(reject.tolist())) if accept.size and reject.size else []
        if both:
            raise ValueError(f"samples {both[:5]} are in both accept and reject; give each sample one answer per call")
        return accept, reject

    def feedback(self, accept=(), reject=()) -> None:
        """Record answers (a later answer on a sample replaces an earlier one) and refit."""
        self.record(*self.check_answers(accept, reject))

    def record(self, accept: np.ndarray, reject: np.ndarray) -> None:
        """:meth:`feedback` for answers that :meth:`check_answers` returned."""
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
        self._open[self._position[indices]] = False
        if redo:  # a sample answered again moves to the end
            self._judged = self._judged[~np.isin(self._judged, indices[again])]
        self._judged = np.concatenate([self._judged, indices])
        self._judged_at = self._position[self._judged]
        self._judged_combinations = self._code_at[self._judged_at]
        self._judged_cells = self._cell_of[self._judged_combinations]
        self._judged_answers = self.answers[self._judged].astype(np.float32)
        # Per cell: 1 / (its judged samples + cell_prior), the shrunk mean's denominator.
        self._cell_shrink = 1 / (np.bincount(self._judged_cells, minlength=self._n_cells) + np.float32(self.cell_prior))
        self.refit()

    def _accumulate(self, indices: np.ndarray, y: np.ndarray, sign: float) -> None:
        z = np.empty((len(indices), self.d + 2))
        z[:, : self.d] = self.rows(indices)
        z[:, self.d] = 1
        z[:, self.d + 1] = y
        self._sums += sign * (z.T @ z)

    def refit(self) -> None:
        """Fit the coefficients to the answers given so far."""
        d = self.d
        sw, sy = self._sums[d, d], self._sums[d, d + 1]
        if sw <= 0:
            self.coef_, self.intercept_ = self.initial_coef_.copy(), 0.0
            return
        sxx, sx, sxy = self._sums[:d, :d], self._sums[:d, d], self._sums[:d, d + 1]
        if self.mode == "paper":
            if sy == 0 or sy == sw:
                return  # one-sided: a regression would only learn the intercept
            target = np.zeros(self.d)
        else:
            # Trust the prior as far as its own picks were accepted.
            credibility = min(1.0, 2 * sy / sw)
            sw, sx, sxx = sw + self.pseudo, sx + self._pseudo_x, sxx + self._pseudo_xx
            target = self.initial_coef_ * credibility
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
        return self._score()[self._position]

    def _score(self) -> np.ndarray:
        """Like :meth:`scores`, per position, in a reused buffer (valid until the next call)."""
        self._coef[:-1] = self.coef_[self._dense]
        np.matmul(self._coef, self._blocks, out=self._buffer)
        out = self._buffer.reshape(-1)[: self.n]
        if self._groups:
            # A group's part of a score depends only on the sample's class in it; the table
            # holds the sum over groups for every combination of classes.
            parts = self._group_values @ self.coef_[self._grouped]
            table = parts[self._group_parts[0]]
            for part in self._group_parts[1:]:
                table = np.add.outer(table, parts[part]).reshape(-1)
            table = table.astype(np.float32)
            if self.mode == "default" and len(self._judged):
                table += self._cell_correction(out, table)
            out += np.repeat(table, self._counts)
        return out

    def _cell_correction(self, dense_scores: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Per combination of class codes: the mean residual under the linear model of the
        judged samples of its cell, shrunk as if ``cell_prior`` more had residual 0."""
        residual = (
            self._judged_answers
            - dense_scores[self._judged_at]
            - table[self._judged_combinations]
            - np.float32(self.intercept_)
        )
        per_cell = np.bincount(self._judged_cells, residual, self._n_cells) * self._cell_shrink
        return per_cell[self._cell_of].astype(np.float32)

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The (standardised) attributes of some samples, (len(indices), n_attributes) float32."""
        return self._rows_at(self._position[np.asarray(indices)])

    def _rows_at(self, positions: np.ndarray) -> np.ndarray:
        x = np.empty((len(positions), self.d), dtype=np.float32)
        x[:, self._dense] = self._blocks[positions // BLOCK, :-1, positions % BLOCK]
        x[:, self._grouped] = self._combination_rows[self._code_at[positions]]
        return x

    def recommend(self, k: int = 50, candidates: np.ndarray | None = None) -> np.ndarray:
        """The ``k`` unjudged samples of most interest, best first.

        ``candidates`` is a boolean mask (n,) restricting the pool; default all samples.
        """
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        if candidates is not None:
            candidates = np.asarray(candidates)
            if candidates.dtype != bool or candidates.shape != (self.n,):
                raise ValueError(
                    f"candidates must be a bool mask of shape ({self.n},), got {candidates.dtype} "
                    f"{candidates.shape}; from indices: np.isin(np.arange({self.n}), indices)"
                )
        open_ = self._open if candidates is None else self._in_positions(candidates) & self._open
        k = min(int(k), int(np.count_nonzero(open_)))
        if k == 0:  # before the prior is chosen: an empty pool says nothing about it
            return np.zeros(0, dtype=np.int64)
        self.resolve_prior(candidates)
        if self.mode == "default" and len(self._judged) and self._sums[self.d, self.d + 1] == 0:
            return self._order[self._explore(open_, k)]
        if self.mode == "default" and not len(self._judged) and self._off_diagonal is not None:
            return self._order[self._hedge(open_, k)]
        scores = self._score()
        if candidates is not None:
            return self._order[top_k(scores, k, open_)]
        scores[self._judged_at] = -np.inf  # cheaper than a mask over all samples
        return self._order[top_k(scores, k)]

    def _in_positions(self, candidates: np.ndarray) -> np.ndarray:
        """The candidate mask per position; kept, since the pool is usually the same from
        one round to the next and comparing masks is cheaper than reordering one."""
        if self._candidates is None or not np.array_equal(candidates, self._candidates[0]):
            self._candidates = (np.array(candidates, dtype=bool), candidates[self._order])
        return self._candidates[1]

    def _hedge(self, open_: np.ndarray, k: int) -> np.ndarray:
        """The first round (positions): the prior's top k, whose last places go to the prior's
        best open sample with a label unlike its prediction in each of the HEDGE cells with
        the most such samples, if within its reach."""
        scores = self._score()
        at = np.flatnonzero(open_)
        reach = top_k(scores, min(HEDGE_REACH * k, len(at)), open_)
        top = reach[:k]
        confused = at[self._off_diagonal[self._code_at[at]]]  # label differs from prediction
        cell = self._cell_of[self._code_at[confused]]
        sizes = np.bincount(cell, minlength=self._n_cells)
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
        of every other attribute; without such attributes, the rest by the scores."""
        chosen = self._explore_cells(open_, int(EXPLORE_CELLS * k))
        rest = open_.copy()
        rest[chosen] = False
        chosen = np.concatenate([chosen, self._explore_attributes(rest, k - len(chosen))])
        if len(chosen) < k:
            rest[chosen] = False
            chosen = np.concatenate([chosen, top_k(self._score(), k - len(chosen), rest)])
        return chosen

    def _explore_cells(self, open_: np.ndarray, k: int) -> np.ndarray:
        """A random open sample of each of the k cells with the most open samples (positions).
        A random member shows what the cell typically holds; the prior's best member would
        resemble the round that was rejected."""
        if not self._groups or not k:
            return np.zeros(0, dtype=np.int64)
        starts, ends = self._cell_starts[:-1], self._cell_starts[1:]
        sizes = np.zeros(self._n_cells, dtype=np.int64)  # open samples per cell
        filled = starts < ends
        sizes[filled] = np.add.reduceat(open_, starts[filled], dtype=np.int64)
        chosen = []
        for cell in np.argsort(-sizes, kind="stable")[:k]:
            if not sizes[cell]:
                break
            members = self._cell_random_order[starts[cell] : ends[cell]]
            chosen.append(_first_open(members, open_))
        return np.array(chosen, dtype=np.int64)

    def _explore_attributes(self, open_: np.ndarray, k: int) -> np.ndarray:
        """The top open samples of every attribute other than the class indicators in turn;
        positions, like ``open_``."""
        tops = [_first_open(order, open_, k).tolist() for order in self._attribute_orders]
        chosen: dict[int, None] = {}
        for depth in range(k):
            chosen.update(dict.fromkeys(column_top[depth] for column_top in tops))
            if len(chosen) >= k:
                break
        return np.fromiter(chosen, dtype=np.int64, count=len(chosen))[:k]

    @property
    def importance(self) -> dict[str, float]:
        """Attribute name -> current coefficient (default mode: per standard deviation)."""
        return {name: float(c) for name, c in zip(self.names, self.coef_)}


def is_prior(prior, names: list[str]) -> bool:
    """Whether ``prior`` is an attribute name, or names joined by "+", from ``names``."""
    return isinstance(prior, str) and set(prior.split("+")) <= set(names)


def one_hot_groups(attributes: np.ndarray, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The groups of 0/1 columns named ``<prefix>=<class>`` ("label=0", "label=1", ...) in which
    every sample is in at most one class: prefix -> (columns, each sample's class, where
    ``len(columns)`` stands for none, as for a sample without a usable last prediction).

    The learner keeps such a group as one class code per sample: its part of a score is then
    a table lookup, which keeps the matrix read per re-rank (and so its memory traffic) small.
    """
    prefixes: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        if "=" in name:
            prefixes.setdefault(name.split("=", 1)[0], []).append(j)
    groups = {}
    for prefix, columns in prefixes.items():
        block = attributes[:, columns]
        in_class = block.sum(axis=1)
        if len(columns) > 1 and np.isin(block, (0, 1)).all() and (in_class <= 1).all():
            classes = np.where(in_class == 1, block.argmax(axis=1), len(columns))
            groups[prefix] = (np.array(columns), classes.astype(np.int16))
    return groups


def top_k(scores: np.ndarray, k: int, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k largest scores, largest first; ``among`` (bool mask) restricts the
    choice to those samples, of which there must be at least k.

    A threshold taken from every STRIDE-th allowed score leaves a few hundred candidates
    for the exact partial sort, instead of all n; if too few pass it, all allowed samples are.
    """
    n = len(scores)
    candidates = None
    sample = scores[::STRIDE] if among is None else scores[::STRIDE][among[::STRIDE]]
    depth = 4 * k // STRIDE + 8  # about 4k + 8 x STRIDE samples pass the threshold
    if len(sample) > depth:
        threshold = np.partition(sample, len(sample) - depth)[len(sample) - depth]
        candidates = np.flatnonzero(scores >= threshold)
        if among is not None:
            candidates = candidates[among[candidates]]
    if candidates is None or len(candidates) < k:
        candidates = np.arange(n) if among is None else np.flatnonzero(among)
    values = scores[candidates]
    if k < len(candidates):
        part = np.argpartition(values, len(values) - k)[len(values) - k :]
    else:
        part = np.arange(len(values))
    return candidates[part[np.argsort(-values[part], kind="stable")]]


def _first_open(order: np.ndarray, open_: np.ndarray, k: int | None = None):
    """The first open entry of ``order`` (k=None), or its first k open entries; read in
    growing prefixes, since the open samples are usually nearly all of them."""
    want = 1 if k is None else k
    length = 2 * want + 64
    while True:
        prefix = order[:length]
        found = prefix[open_[prefix]]
        if len(found) >= want or length >= len(order):
            return found[0] if k is None else found[:k]
        length *= 4
