"""What the widget shows about one sample: its trail over the epochs, its prediction and
confidence at each, its attributes, answer and relabel; and its thumbnail."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .session import Session


def sample_detail(session: Session, index: int, scored: bool = True) -> dict[str, Any]:
    """JSON-able facts about sample ``index``: ``trail`` (its canvas position at each epoch,
    None where it has none), ``predicted`` and ``confidence`` per epoch, ``label``, ``split``,
    ``relabel`` (class index or None) and, if ``scored`` (the attributes are computed; else
    this would wait for them), ``answer`` and ``attributes`` {name: value}."""
    run = session.run
    trail = [
        [float(x), float(y)] if math.isfinite(x) and math.isfinite(y) else None
        for x, y in session.embedding[:, index].tolist()
    ]
    probabilities = np.stack([np.asarray(run.probabilities(e)[index], dtype=np.float32) for e in run.epochs])
    detail: dict[str, Any] = {
        "index": int(index),
        "split": str(run.split[index]),
        "label": int(run.labels[index]),
        "relabel": session.relabels.get(int(index)),
        "epochs": list(run.epochs),
        "trail": trail,
        "predicted": probabilities.argmax(axis=1).tolist(),
        "confidence": [round(float(c), 4) for c in probabilities.max(axis=1)],
    }
    if scored:
        detail["answer"] = int(session.answers[index])
        names = session.attribute_names
        values = session.anomaly_scores[index]
        detail["attributes"] = {
            name: round(float(v), 4) for name, v in zip(names, values, strict=True) if math.isfinite(v)
        }
    return detail
