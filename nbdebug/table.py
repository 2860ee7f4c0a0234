"""A session's samples as a pandas DataFrame, one row per sample."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import check_sample_indices

if TYPE_CHECKING:
    import pandas

    from .session import Session


def sample_table(session: Session, indices: Any = None, epoch: int | None = None) -> pandas.DataFrame:
    """Rows for ``indices`` (default every sample; e.g. ``widget.selection`` or a query's
    result), in that order. Columns: ``index``, ``split``, ``label`` (the given class name,
    missing if unlabeled), ``predicted`` and ``confidence`` (top-1 class and probability at
    ``epoch``, default the last), ``answer`` (1 accepted, 0 rejected, -1 not judged, in the
    current intention), ``relabel`` (the class name it should have, or missing), then one column
    per attribute of ``session.attribute_names``, by its name (the paper's ``confidence``
    feature as ``confidence_score``, beside the column above)."""
    try:
        import pandas
    except ImportError:
        raise ImportError("session.table() needs pandas: pip install pandas") from None
    run = session.run
    if indices is None:
        rows = np.arange(run.n_samples)
    else:
        check_sample_indices("indices", indices, run.n_samples)
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)  # in the order given
    epoch = run.epochs[-1] if epoch is None else epoch
    if epoch not in run.epochs:
        raise ValueError(f"epoch must be one of the recorded epochs {run.epochs}, got {epoch!r}")
    classes = np.array(run.classes, dtype=object)
    probabilities = np.asarray(run.probabilities(epoch))[rows].astype(np.float32)
    labels = run.labels[rows]
    relabels = session.relabels
    columns: dict[str, Any] = {
        "index": rows,
        "split": run.split[rows],
        "label": np.where(labels >= 0, classes[np.maximum(labels, 0)], None),
        "predicted": classes[np.argmax(probabilities, axis=1)],
        "confidence": probabilities.max(axis=1),
        "answer": session.answers[rows],
        "relabel": [run.classes[relabels[i]] if i in relabels else None for i in rows.tolist()],
    }
    scores = session.anomaly_scores[rows]
    for k, name in enumerate(session.attribute_names):
        columns[f"{name}_score" if name in columns else name] = scores[:, k]
    return pandas.DataFrame(columns)
