"""Which projection places a session's samples on the canvas: named, or an object given."""

from __future__ import annotations

from torch import nn

from .projection import AlignedPCA
from .visualizer import TimeTravelVisualizer

PROJECTIONS = {"visualizer": TimeTravelVisualizer, "pca": AlignedPCA}


def make_projection(projection, progress: bool, head_module: nn.Module | None = None):
    """The projection a Session's ``projection=`` names: None or "visualizer" (the
    :class:`TimeTravelVisualizer`, rebuilding heads into ``head_module`` if given), "pca", or
    an object with ``fit``, ``transform`` and ``inverse_transform``, returned as it is."""
    if projection is None or projection == "visualizer":
        return TimeTravelVisualizer(progress=progress, head_module=head_module)
    if isinstance(projection, str):
        if projection not in PROJECTIONS:
            raise ValueError(
                f"projection must be one of {sorted(PROJECTIONS)} or a projection object, got {projection!r}"
            )
        return PROJECTIONS[projection](progress=progress)
    missing = [name for name in ("fit", "transform", "inverse_transform") if not hasattr(projection, name)]
    if missing:
        raise TypeError(
            f"projection lacks {missing}; pass 'visualizer', 'pca' or an object like "
            "nbdebug.landscape.projection.AlignedPCA"
        )
    return projection
