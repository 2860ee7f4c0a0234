"""What goes between the kernel and the page: frames of positions within the message size,
indices as binary buffers, and the checks of what the page sends."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import traitlets

# No message to the page is larger: epochs' positions go a few at a time (or one in parts).
MAX_MESSAGE_BYTES = 10_000_000


def send_frames(widget: Any, positions: np.ndarray, indices: list[int]) -> None:
    """Send ``widget``'s page the positions of the frames ``indices`` (float32 (n, 2) each of
    ``positions``), as many per message as keep it within MAX_MESSAGE_BYTES; a frame larger
    than that goes in parts of consecutive samples ("frame_part" messages, each saying its
    first sample)."""
    frame_bytes = max(positions[0].nbytes, 1)
    per_message = MAX_MESSAGE_BYTES // frame_bytes
    if per_message == 0:
        samples = MAX_MESSAGE_BYTES // positions[0][:1].nbytes
        for i in indices:
            for first in range(0, len(positions[i]), samples):
                part = positions[i, first : first + samples]
                widget.send({"type": "frame_part", "index": i, "first": first}, buffers=[part.data])
        return
    for start in range(0, len(indices), per_message):
        chunk = indices[start : start + per_message]
        widget.send({"type": "frames", "indices": chunk}, buffers=[positions[i].data for i in chunk])


def frame_quality(quality: dict) -> list[dict[str, float]]:
    """Per epoch, the share of neighbours kept on the canvas (NPR@15) and of predictions the
    painted territories preserve (PPR) for training samples, each with the half-width of its
    95% interval (``NPR_error``) where it is known; NaN-free for JSON."""
    frames = []
    for i in range(len(quality["epochs"])):
        frame = {}
        for key, name in (("npr_train", "NPR"), ("ppr_train", "PPR")):
            if key not in quality or not np.isfinite(quality[key][i]):
                continue
            frame[name] = float(quality[key][i])
            se = quality[f"{key}_se"][i] if f"{key}_se" in quality else math.nan
            if np.isfinite(se):
                frame[f"{name}_error"] = 1.96 * float(se)
        frames.append(frame)
    return frames


def from_page_buffer(value: Any) -> bytes:
    """A binary message from the page as bytes; anything else is refused."""
    if not isinstance(value, (bytes, memoryview)):
        raise traitlets.TraitError(f"expected a binary buffer, got {type(value).__name__}")
    return bytes(value)


def indices_bytes(indices: Any) -> bytes:
    return np.asarray(indices, dtype=np.uint32).tobytes()


def page_indices(values: Any, name: str, stop: int, distinct: bool = False) -> list[int]:
    """A list of ints in 0..stop-1 sent by the page (each once, if ``distinct``); raises
    ValueError naming ``name``."""
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a list of indices")
    if any(not 0 <= v < stop for v in values):
        raise ValueError(f"{name} holds an index outside 0..{stop - 1}")
    if distinct and len(set(values)) < len(values):
        raise ValueError(f"{name} holds an index twice")
    return values
