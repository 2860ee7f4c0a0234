"""Which samples match a query: by given or predicted label, mispredicted, split, indices, or
a threshold on an attribute; and the query bar's text, parsed into the same arguments.

The text form is a list of terms, all of which must hold::

    label=3 predicted=cat,dog mispredicted split=test indices=4,17 forgetting>=3 "aum" < 0.5

Values with spaces go in quotes; ``label=none`` matches unlabeled samples.
"""

from __future__ import annotations

import operator
import re
import shlex
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import check_sample_indices

if TYPE_CHECKING:
    from .session import Session

OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_COMPARISON = re.compile(r"^(.+?)(>=|<=|==|!=|>|<)(.+)$")
OPERATOR_CHARS = "<>=!"
TEXT_KEYS = ("label", "predicted", "mispredicted", "split", "indices")


def matching(
    session: Session,
    epoch: int,
    *,
    label: Any = None,
    predicted: Any = None,
    mispredicted: bool | None = None,
    split: Any = None,
    indices: Any = None,
    where: Any = None,
) -> np.ndarray:
    """Indices (ascending, int64) of the samples matching every argument given (None: any).

    ``label`` and ``predicted`` (at ``epoch``) are a class index or name, or a list of them
    (``label`` also takes -1 or "none": unlabeled); ``mispredicted`` True keeps the labelled
    samples predicted otherwise at ``epoch``, False those predicted right; ``split`` is a
    split name or a list; ``indices`` a list of sample indices; ``where`` a condition on an
    attribute of ``session.attribute_names`` such as "forgetting >= 3", or a list of them.
    """
    run = session.run
    keep = np.ones(run.n_samples, dtype=bool)
    if label is not None:
        keep &= np.isin(run.labels, _classes(run.classes, label, "label", unlabeled=True))
    if predicted is not None or mispredicted is not None:
        guess = np.argmax(np.asarray(run.probabilities(epoch)), axis=1)
        if predicted is not None:
            keep &= np.isin(guess, _classes(run.classes, predicted, "predicted"))
        if mispredicted is not None:
            if not isinstance(mispredicted, (bool, np.bool_)):
                raise TypeError(f"mispredicted must be True, False or None, got {mispredicted!r}")
            wrong = (run.labels >= 0) & (guess != run.labels)
            keep &= wrong if mispredicted else (run.labels >= 0) & ~wrong
    if split is not None:
        names = [split] if isinstance(split, str) else list(split)
        unknown = [s for s in names if s not in run.splits]
        if unknown:
            raise ValueError(f"split must name splits of this run {sorted(run.splits)}, got {unknown}")
        keep &= np.isin(run.split, names)
    if indices is not None:
        chosen = np.zeros(run.n_samples, dtype=bool)
        chosen[check_sample_indices("indices", indices, run.n_samples)] = True
        keep &= chosen
    if where is not None:
        for condition in [where] if isinstance(where, str) else list(where):
            keep &= _condition(session, condition)
    return np.flatnonzero(keep)


def parse(text: str) -> dict[str, Any]:
    """The arguments of :func:`matching` that the query bar's ``text`` means (see the module's
    docstring); raises ValueError saying which term it cannot read."""
    if not isinstance(text, str) or len(text) > 10_000:
        raise ValueError("a query must be text of at most 10,000 characters")
    try:
        tokens = _tokens(text)
    except ValueError as err:
        raise ValueError(f"cannot read the query: {err}") from None
    query: dict[str, Any] = {}
    where = []
    k = 0
    while k < len(tokens):
        word = tokens[k]
        op = tokens[k + 1] if k + 1 < len(tokens) and set(tokens[k + 1]) <= set(OPERATOR_CHARS) else None
        if op is None:
            k += 1
            if word.lower() in ("and", "&"):
                continue
            if word != "mispredicted":
                raise ValueError(
                    f"cannot read {word!r} in the query; terms are label=, predicted=, mispredicted, split=, "
                    "indices= or an attribute comparison such as forgetting>=3"
                )
            query["mispredicted"] = True
            continue
        if k + 2 >= len(tokens):
            raise ValueError(f"the query ends at {word}{op} without a value")
        value = tokens[k + 2]
        k += 3
        if op == "=" and word in TEXT_KEYS:
            if word in query:
                raise ValueError(f"the query names {word} twice; give several values as {word}=a,b")
            query[word] = _value(word, value)
        elif op in OPERATORS:
            where.append(f"{word}{op}{value}")
        else:
            raise ValueError(f"cannot read {word}{op}{value!r}: {op} is not one of = {' '.join(OPERATORS)}")
    if where:
        query["where"] = where
    return query


def _tokens(text: str) -> list[str]:
    """Words, quoted strings (quotes removed, so values may hold spaces and operators) and
    runs of operator characters, in order."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=OPERATOR_CHARS)
    lexer.whitespace_split = True  # "4,17" and "big-dog" stay one word
    return list(lexer)


def _value(key: str, value: str) -> Any:
    parts = [part for part in value.split(",") if part]
    if key == "mispredicted":
        if value.lower() not in ("true", "false"):
            raise ValueError(f"mispredicted= takes true or false, got {value!r}")
        return value.lower() == "true"
    if key == "indices":
        if not all(part.isdigit() for part in parts):
            raise ValueError(f"indices= takes sample indices separated by commas, got {value!r}")
        return [int(part) for part in parts]
    return parts  # split names or classes


def _classes(classes: list[str], values: Any, name: str, unlabeled: bool = False) -> list[int]:
    """Class indices of ``values`` (an index, a name, or a list of them); -1 for "none" or -1
    where ``unlabeled`` is allowed."""
    items = [values] if isinstance(values, (str, int, np.integer)) else list(values)
    found = [_class_of(classes, item, unlabeled) for item in items]
    if not items or None in found:
        none = " (or -1 / 'none': unlabeled)" if unlabeled else ""
        raise ValueError(
            f"{name} must be class indices in 0..{len(classes) - 1} or names {classes}{none}, got {values!r}"
        )
    return [int(i) for i in found if i is not None]


def _class_of(classes: list[str], item: Any, unlabeled: bool) -> int | None:
    if isinstance(item, str):
        if item in classes:  # a name first, also where names look like numbers
            return classes.index(item)
        if unlabeled and item == "none":
            return -1
        if not item.lstrip("-").isdigit():
            return None
        item = int(item)
    is_index = isinstance(item, (int, np.integer)) and not isinstance(item, bool)
    return int(item) if is_index and (0 <= item < len(classes) or (unlabeled and item == -1)) else None


def _condition(session: Session, condition: Any) -> np.ndarray:
    """Per sample, whether ``condition`` ("name op number") holds."""
    match = _COMPARISON.match(condition.replace(" ", "")) if isinstance(condition, str) else None
    names = session.attribute_names
    if match is None:
        raise ValueError(f"where must be conditions like 'forgetting >= 3' on {names}, got {condition!r}")
    attribute, op, number = match.groups()
    if attribute not in names:
        raise ValueError(f"where: {attribute!r} is not an attribute; choose from session.attribute_names = {names}")
    try:
        threshold = float(number)
    except ValueError:
        raise ValueError(f"where: {condition!r} must compare with a number, got {number!r}") from None
    values = session.anomaly_scores[:, names.index(attribute)]
    return OPERATORS[op](values, threshold)
