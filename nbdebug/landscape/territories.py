"""Class territories: the canvas grid decoded to representations and classified by an
epoch's recorded head, painted in the class colours (DeepDebugger §2.2.1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import head
from .._validation import check_int
from ..run import Run

# Tableau 10, then 10 lighter partners: distinct for up to 20 classes, then reused.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#a0cbe8",
    "#ffbe7d",
    "#ff9d9a",
    "#86bcb6",
    "#8cd17d",
    "#f1ce63",
    "#d4a6c8",
    "#fabfd2",
    "#d7b5a6",
    "#79706e",
)
# Grid points decoded and classified at a time.
CHUNK = 16384


@dataclass
class Territories:
    """The class territories of one frame: ``image`` (H, W, 4) uint8 RGBA, ``predicted``
    (H, W) int64 class, ``confidence`` (H, W) float32 top-1 probability, ``gap`` (H, W)
    top-1 minus top-2. Row 0 is the top of the canvas (y_max), column 0 its left (x_min);
    pixel centres cover ``bounds`` = (x_min, x_max, y_min, y_max)."""

    image: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    gap: np.ndarray
    bounds: tuple[float, float, float, float]


def grid_points(bounds: tuple[float, float, float, float], resolution: int) -> np.ndarray:
    """(resolution², 2) canvas points of a resolution x resolution grid, row-major, top row first."""
    x_min, x_max, y_min, y_max = bounds
    xs = np.linspace(x_min, x_max, resolution, dtype=np.float32)
    ys = np.linspace(y_max, y_min, resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def paint(
    probabilities: np.ndarray, resolution: int, boundary_width: float = 0.1, palette: Sequence[str] = PALETTE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Colour a grid of class probabilities (resolution², C): the predicted class's colour,
    faded towards white as confidence drops to chance and white where the top-1/top-2
    gap falls below ``boundary_width`` (the decision boundaries). Returns the image and the
    grid's predicted class, confidence and gap (see :class:`Territories`)."""
    colours = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in palette], dtype=np.float32)
    n_classes = probabilities.shape[1]
    top2 = -np.sort(-probabilities, axis=1)[:, :2]
    predicted = probabilities.argmax(axis=1)
    confidence = top2[:, 0]
    gap = top2[:, 0] - top2[:, 1]
    # 1 at full confidence, 0.25 at chance: low confidence is lighter, never invisible.
    depth = 0.25 + 0.75 * np.clip((confidence - 1 / n_classes) / (1 - 1 / n_classes), 0, 1)
    depth *= np.clip(gap / boundary_width, 0, 1)
    base = colours[predicted % len(colours)]
    rgb = 255 - (255 - base) * depth[:, None]
    image = np.empty((resolution * resolution, 4), dtype=np.uint8)
    image[:, :3] = np.round(rgb).astype(np.uint8)
    image[:, 3] = 255
    shape = (resolution, resolution)
    return (
        image.reshape(*shape, 4),
        predicted.reshape(shape).astype(np.int64),
        confidence.reshape(shape).astype(np.float32),
        gap.reshape(shape).astype(np.float32),
    )


def territories(
    projection: Any,
    run: Run,
    epoch: int,
    bounds: tuple[float, float, float, float],
    resolution: int = 256,
    head_module: nn.Module | None = None,
    boundary_width: float = 0.1,
) -> Territories:
    """The class territories of ``epoch`` over ``bounds`` = (x_min, x_max, y_min, y_max).

    Works with any fitted projection offering ``inverse_transform(epoch, points)``: the
    grid is decoded to representations and the epoch's recorded head predicts them.
    """
    check_int("resolution", resolution, 2, 4096, hint="it is the side of the image in pixels")
    values = tuple(float(b) for b in bounds)
    if (
        len(values) != 4
        or not all(math.isfinite(b) for b in values)
        or values[0] >= values[1]
        or values[2] >= values[3]
    ):
        raise ValueError(
            f"bounds must be finite (x_min, x_max, y_min, y_max) with x_min < x_max and "
            f"y_min < y_max, got {values}; Session.bounds gives the canvas bounds"
        )
    box = (values[0], values[1], values[2], values[3])
    classifier = head.load_head(run, epoch, head_module)
    points = grid_points(box, int(resolution))
    probabilities = []
    with torch.no_grad():
        for chunk in np.array_split(points, max(1, len(points) // CHUNK)):
            reps = torch.as_tensor(np.asarray(projection.inverse_transform(epoch, chunk), dtype=np.float32))
            probabilities.append(head.probabilities(classifier(reps)).numpy())
    image, predicted, confidence, gap = paint(np.concatenate(probabilities), int(resolution), boundary_width)
    return Territories(image, predicted, confidence, gap, box)
