"""The scoring index the intention learners rank with (:mod:`nbdebug.interest.intention`).

It stores the samples' attributes so that scoring every sample under a coefficient vector
is fast, and knows nothing of answers or of how the coefficients are learned:

* the one-hot groups of class indicators (``label=<c>``, ``predicted=<c>``,
  ``alternative=<c>``, see :func:`one_hot_groups`) are kept as one code per sample, the
  combination of its classes in every group. Samples are stored sorted by that code
  (``order`` maps a storage position to its sample, ``position`` is its inverse), so the
  groups' part of the scores is one value per combination, spread with one ``np.repeat``,
  and the members of a cell are one run of positions;
* a cell is a combination of given label and alternative (``CELL_GROUPS``; for an
  unlabeled sample, prediction and alternative): one confusion ("true 3 labelled 8") is
  one cell, whether the model predicts the true class or has memorised the wrong label;
* the other (dense) attributes are stored attribute-major in blocks, with a last row of
  tiny random numbers that breaks ties between equal scores;
* optionally the attributes are standardised (class indicators only centred), the mean and
  sum of products of the stored rows are kept, and the orders an exploring round reads
  are sorted once.

Scoring (:meth:`ScoringIndex.score`) is one product of the coefficients with the blocks,
plus a table lookup per combination of classes; :func:`top_k` then takes the best few
from a threshold set on a strided sample of the scores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_sample_indices

# Samples per attribute-major block. np.matmul scores the blocks with one single-threaded
# BLAS call each: on a busy machine BLAS threads wait for each other, and one threaded
# product over all samples took 10x longer (the refit + re-rank rows of python -m
# benchmarks.recommend --parts latency, without OPENBLAS_NUM_THREADS=1, beside another job).
BLOCK = 8192
# top_k sets its threshold from every STRIDE-th allowed score: a read of 1/32 of the scores
# that leaves a few hundred samples for the exact partial sort.
STRIDE = 32
# Class indicators are only centred, not scaled: unscaled, the ridge penalty makes a class
# matter only when the answers clearly point at it.
INDICATOR_SCALE = 1.0
# The class groups whose combination is a cell (see the module docstring); where one is
# missing, a cell is a whole combination of classes.
CELL_GROUPS = ("label", "alternative")
# Groups are coded together while their combinations fit one lookup table of this many
# rows; a group beyond that stays dense.
MAX_COMBINATIONS = 1 << 20
# The tie-breaking jitter is below any difference of attribute values that matters.
JITTER = 1e-6

# A per-combination correction of the scores: (dense part of the scores per position,
# groups' part per combination) -> values to add per combination.
Correction = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ScoringIndex:
    """The samples' attributes stored for scoring (see the module docstring).

    Parameters
    ----------
    attributes : (n_samples, n_attributes) array
        One score per attribute and sample; non-finite values count as 1.
    names : list of str
        Attribute names, one per column.
    seed : int
        Seeds the tie-breaking jitter.
    standardise : bool
        Store every attribute minus its mean, divided by its standard deviation (class
        indicators only centred); else as given.
    moments : bool
        Keep ``row_mean`` and ``row_products``, the mean and the sum of x x^T over the stored
        rows (float64).
    exploring : bool
        Sort the orders that :meth:`random_open_of_largest_cells` and :meth:`top_open_in_turn`
        read.

    Attributes
    ----------
    order, position : (n,) int arrays
        The sample at each storage position, and the position of each sample.
    groups : list of (columns, table)
        Per one-hot group stored as class codes: its columns, and per class (and "none")
        the values of those columns.
    grouped_columns, dense_columns : int arrays
        The columns stored as class codes, and the others.
    combination_at, combination_counts, combination_rows
        Per position its combination of classes; per combination how many samples have it,
        and the values of the grouped columns.
    cell_of, n_cells
        Per combination its cell, and the number of cells.
    off_diagonal : (n_combinations,) bool array or None
        Per combination whether the given label differs from the prediction (both known);
        None without both groups.
    """

    def __init__(
        self,
        attributes: np.ndarray,
        names: list[str],
        *,
        seed: int = 0,
        standardise: bool = False,
        moments: bool = False,
        exploring: bool = False,
    ):
        attributes = np.asarray(attributes, dtype=np.float32)
        if attributes.ndim != 2 or attributes.shape[1] != len(names) or not len(names):
            raise ValueError(
                f"attributes must have shape (n_samples, len(names)) with at least one attribute, "
                f"got {attributes.shape} for {len(names)} names"
            )
        self.names = list(names)
        self.n, self.d = attributes.shape
        attributes = np.where(np.isfinite(attributes), attributes, 1.0)
        one_hot = one_hot_groups(attributes, self.names)
        self.mean, self.scale = np.zeros(self.d), np.ones(self.d)
        if standardise:
            self.mean, std = attributes.mean(axis=0), attributes.std(axis=0)
            self.scale = np.where(std > 0, std, 1)
            self.scale[[j for columns, _ in one_hot.values() for j in columns]] = INDICATOR_SCALE
            attributes = (attributes - self.mean) / self.scale
        if moments:  # the population's moments, what pseudo-negatives add to a learner's sums
            x = attributes.astype(np.float64)
            self.row_mean = x.mean(axis=0)
            self.row_products = x.T @ x
        self._index_classes(one_hot)
        dense = self._store_dense(attributes, seed)
        if exploring:
            self._sort_exploring_orders(dense)
        self._candidates: tuple[np.ndarray, np.ndarray] | None = None  # the last mask, and per position

    def _index_classes(self, one_hot: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Sorts the samples by their combination of classes in the one-hot groups, and makes
        the tables a score, a cell and the off-diagonal read per combination."""
        # Per group: its columns, and a table whose row c holds those columns (standardised)
        # for a sample of class c (a last row of all "off" if some sample is in none).
        self.groups: list[tuple[np.ndarray, np.ndarray]] = []
        group_prefixes = []
        code = np.zeros(self.n, dtype=np.int32)  # all groups' classes in one mixed-radix number
        n_combinations = 1
        cell_groups_first = sorted(
            one_hot, key=lambda g: CELL_GROUPS.index(g) if g in CELL_GROUPS else len(CELL_GROUPS)
        )
        for prefix in cell_groups_first:
            columns, classes_of_group = one_hot[prefix]
            mean, scale = self.mean[columns], self.scale[columns]
            off, on = (0 - mean) / scale, (1 - mean) / scale
            n_classes = len(columns) + int((classes_of_group == len(columns)).any())  # + none
            if n_combinations * n_classes > MAX_COMBINATIONS:
                continue  # stays dense
            n_combinations *= n_classes
            code = code * n_classes + classes_of_group
            table = np.where(np.eye(n_classes, len(columns), dtype=bool), on, off)
            self.groups.append((columns, table.astype(np.float32)))
            group_prefixes.append(prefix)
        self.grouped_columns = np.concatenate([columns for columns, _ in self.groups] or [np.zeros(0, np.int64)])
        self.dense_columns = np.setdiff1d(np.arange(self.d), self.grouped_columns)
        self.order = np.argsort(code, kind="stable")
        self.position = np.empty(self.n, dtype=np.intp)
        self.position[self.order] = np.arange(self.n)
        self.combination_counts = np.bincount(code, minlength=n_combinations)
        self.combination_at = np.repeat(np.arange(n_combinations), self.combination_counts)  # per position
        # Per combination: each group's class, and all groups' columns (standardised) in one row.
        classes = np.unravel_index(np.arange(n_combinations), [len(table) for _, table in self.groups] or [1])
        self.combination_rows = np.concatenate(
            # without groups, classes holds one axis of zeros: nothing to zip
            [table[c] for (_, table), c in zip(self.groups, classes, strict=False)] or [np.zeros((n_combinations, 0))],
            axis=1,
        ).astype(np.float32)
        # Per combination: whether the given label differs from the prediction (both known);
        # None without both groups.
        self.off_diagonal: np.ndarray | None = None
        if {"label", "predicted"} <= set(group_prefixes):

            def class_names(group: str) -> tuple[np.ndarray, np.ndarray]:
                """Per combination: the class name in ``group``, and whether it has one."""
                i = group_prefixes.index(group)
                columns = self.groups[i][0]
                known = classes[i] < len(columns)
                names = np.array([self.names[j].split("=", 1)[1] for j in columns])
                return names[np.where(known, classes[i], 0)], known

            (label, has_label), (predicted, has_prediction) = class_names("label"), class_names("predicted")
            self.off_diagonal = (label != predicted) & has_label & has_prediction
        # Per combination: its cell (CELL_GROUPS come first in the code, so a cell is a run of
        # combinations), else the whole combination.
        per_cell = 1
        if group_prefixes[: len(CELL_GROUPS)] == list(CELL_GROUPS):
            per_cell = n_combinations // int(np.prod([len(table) for _, table in self.groups[: len(CELL_GROUPS)]]))
        self.cell_of = np.arange(n_combinations) // per_cell
        self.n_cells = n_combinations // per_cell
        # All groups' tables side by side (block-diagonal), so one product gives every part.
        self._group_values = np.zeros((sum(len(table) for _, table in self.groups), len(self.grouped_columns)))
        self._group_parts = []  # each group's slice of that product
        start = column = 0
        for columns, table in self.groups:
            self._group_parts.append(slice(start, start + len(table)))
            self._group_values[self._group_parts[-1], column : column + len(columns)] = table
            start, column = start + len(table), column + len(columns)

    def _store_dense(self, attributes: np.ndarray, seed: int) -> np.ndarray:
        """Stores the dense attributes (all but the one-hot groups) attribute-major, with the
        jitter as a last row whose coefficient stays 1: (n_blocks, n_dense + 1, BLOCK).
        Returns them with the jitter per position, (n, n_dense + 1) float64."""
        jitter = np.random.default_rng(seed).random(self.n) * JITTER
        dense = np.column_stack([attributes[:, self.dense_columns], jitter])[self.order]
        n_blocks = -(-self.n // BLOCK)
        padded = np.zeros((n_blocks * BLOCK, len(self.dense_columns) + 1), dtype=np.float32)
        padded[: self.n] = dense
        self._blocks = np.ascontiguousarray(padded.reshape(n_blocks, BLOCK, -1).transpose(0, 2, 1))
        self._buffer = np.empty((n_blocks, BLOCK), dtype=np.float32)  # scores land here
        self._coef = np.ones(len(self.dense_columns) + 1, dtype=np.float32)
        return dense

    def _sort_exploring_orders(self, dense: np.ndarray) -> None:
        """From the dense rows with the jitter per position: per dense attribute, its positions
        from the highest value down, ties broken by the jitter (in float64, which keeps it
        whole); per cell, its positions by the jitter alone (a random order), and where each
        cell starts."""
        self.attribute_orders = np.argsort(-(dense[:, :-1] + dense[:, -1:]).T, axis=1).astype(np.int32)
        cell_at = self.cell_of[self.combination_at]
        self.cell_starts = np.searchsorted(cell_at, np.arange(self.n_cells + 1))
        self.cell_random_order = np.lexsort((-dense[:, -1], cell_at)).astype(np.int32)

    def score(self, coef: np.ndarray, correction: Correction | None = None) -> np.ndarray:
        """Scores per position under ``coef`` (one per attribute) plus the jitter, float32, in a
        reused buffer (valid until the next call). ``correction``, given the dense part and
        the groups' part per combination, returns an addition per combination."""
        self._coef[:-1] = coef[self.dense_columns]
        np.matmul(self._coef, self._blocks, out=self._buffer)
        out = self._buffer.reshape(-1)[: self.n]
        if self.groups:
            # A group's part of a score depends only on the sample's class in it; the table
            # holds the sum over groups for every combination of classes.
            parts = self._group_values @ coef[self.grouped_columns]
            table = parts[self._group_parts[0]]
            for part in self._group_parts[1:]:
                table = np.add.outer(table, parts[part]).reshape(-1)
            table = table.astype(np.float32)
            if correction is not None:
                table += correction(out, table)
            out += np.repeat(table, self.combination_counts)
        return out

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The stored (standardised) attributes of some samples, (len(indices), n_attributes) float32."""
        return self.rows_at(self.position[np.asarray(indices)])

    def rows_at(self, positions: np.ndarray) -> np.ndarray:
        """Like :meth:`rows`, for storage positions."""
        x = np.empty((len(positions), self.d), dtype=np.float32)
        x[:, self.dense_columns] = self._blocks[positions // BLOCK, :-1, positions % BLOCK]
        x[:, self.grouped_columns] = self.combination_rows[self.combination_at[positions]]
        return x

    def check_indices(self, values: Any, name: str) -> np.ndarray:
        """Sample indices given by the user, validated, sorted and unique; raises naming ``name``."""
        return check_sample_indices(name, values, self.n)

    def at_positions(self, mask: np.ndarray, name: str) -> np.ndarray:
        """A (n,) bool mask over samples, per position; raises naming ``name`` if it is not one.
        The last one is kept, since a pool is usually the same from one round to the next and
        comparing masks is cheaper than reordering one."""
        if mask.dtype != bool or mask.shape != (self.n,):
            raise ValueError(
                f"{name} must be a bool mask of shape ({self.n},), got {mask.dtype} {mask.shape}; "
                f"from indices: np.isin(np.arange({self.n}), indices)"
            )
        if self._candidates is None or not np.array_equal(mask, self._candidates[0]):
            self._candidates = (np.array(mask, dtype=bool), mask[self.order])
        return self._candidates[1]

    def random_open_of_largest_cells(self, open_: np.ndarray, k: int) -> np.ndarray:
        """A random open position (first in the cell's random order) of each of the k cells
        with the most open positions, fewer if fewer cells have one (exploring orders)."""
        if not self.groups or not k:
            return np.zeros(0, dtype=np.int64)
        starts, ends = self.cell_starts[:-1], self.cell_starts[1:]
        sizes = np.zeros(self.n_cells, dtype=np.int64)  # open positions per cell
        filled = starts < ends
        sizes[filled] = np.add.reduceat(open_, starts[filled], dtype=np.int64)
        chosen = []
        for cell in np.argsort(-sizes, kind="stable")[:k]:
            if not sizes[cell]:
                break
            chosen.append(_first_open(self.cell_random_order[starts[cell] : ends[cell]], open_))
        return np.array(chosen, dtype=np.int64)

    def top_open_in_turn(self, open_: np.ndarray, k: int) -> np.ndarray:
        """k open positions (fewer without dense attributes): the best of every dense attribute
        in turn, then the second best of each, and so on (exploring orders)."""
        tops = [_first_open(order, open_, k).tolist() for order in self.attribute_orders]
        chosen: dict[int, None] = {}
        for depth in range(k):
            chosen.update(dict.fromkeys(column_top[depth] for column_top in tops))
            if len(chosen) >= k:
                break
        return np.fromiter(chosen, dtype=np.int64, count=len(chosen))[:k]


def one_hot_groups(attributes: np.ndarray, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The groups of 0/1 columns named ``<prefix>=<class>`` ("label=0", "label=1", ...) in which
    every sample is in at most one class: prefix -> (columns, each sample's class, where
    ``len(columns)`` stands for none, as for a sample without a usable last prediction).

    The index keeps such a group as one class code per sample: its part of a score is then
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
    part = (
        np.argpartition(values, len(values) - k)[len(values) - k :] if k < len(candidates) else np.arange(len(values))
    )
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
