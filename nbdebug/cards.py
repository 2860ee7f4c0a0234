"""The cards of the recommended samples in the widget's panel, with their thumbnails."""

from __future__ import annotations

import numpy as np

from .run import Run


class Thumbnails:
    """The recorded thumbnails of a run's splits, as (h, w, c) uint8 images per sample."""

    def __init__(self, run: Run):
        self.run = run
        self._images = {name: run.thumbnails(name) for name in run.splits}

    def of(self, index: int) -> np.ndarray | None:
        """The sample's image as (h, w, c) uint8, or None if its split has no thumbnails."""
        split = str(self.run.split[index])
        images = self._images.get(split)
        if images is None:
            return None
        image = np.asarray(images[index - self.run.splits[split].start])
        return image[..., None] if image.ndim == 2 else image


def cards(
    run: Run,
    recommended: np.ndarray,
    accepted: np.ndarray,
    thumbnails: Thumbnails,
    scores: np.ndarray,
    relabels: dict[int, int],
) -> tuple[list[dict], bytes]:
    """One card per sample of ``recommended`` (``kind`` "recommended"), then of ``accepted``
    ("accepted", to relabel), and the thumbnails' pixels, one after another. A card holds the
    sample's index, split, label, last prediction, ``score`` (what the learner ranks by),
    ``relabel`` (a class name or None) and, where the sample has one, ``thumbnail``: [offset,
    h, w, c] into the pixels. Names come from data: the page shows them as text."""
    probabilities = run.probabilities(run.epochs[-1])
    made, pixels, offset = [], [], 0
    kinds = ["recommended"] * len(recommended) + ["accepted"] * len(accepted)
    for i, kind in zip((int(i) for i in np.concatenate([recommended, accepted])), kinds, strict=True):
        label = int(run.labels[i])
        card: dict = {
            "index": i,
            "kind": kind,
            "split": str(run.split[i]),
            "label": run.classes[label] if label >= 0 else "none",
            "predicted": run.classes[int(np.argmax(probabilities[i]))],
            "score": round(float(scores[i]), 4),
            "relabel": run.classes[relabels[i]] if i in relabels else None,
            "thumbnail": None,
        }
        image = thumbnails.of(i)
        if image is not None:
            card["thumbnail"] = [offset, *image.shape]
            pixels.append(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
            offset += image.size
        made.append(card)
    return made, b"".join(pixels)
