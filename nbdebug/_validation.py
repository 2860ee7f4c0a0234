"""Checks of the settings users pass, all failing with one message format:

    <name> must be <rule>, got <value>[; <hint>]

Each check returns the value it was given, unchanged (``check_scalar``: as a float).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def fail(name: str, rule: str, value: Any, hint: str = "") -> ValueError:
    """The error for ``value`` breaking ``rule``, in the message format above (raise it)."""
    return ValueError(f"{name} must be {rule}, got {value!r}" + (f"; {hint}" if hint else ""))


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None, hint: str = "") -> Any:
    """``value`` must be an integer (not a bool) in ``[low, high]``."""
    if low == 0 and high is None:
        rule = "a non-negative integer"
    elif low is not None and high is not None:
        rule = f"an integer between {low} and {high}"
    else:
        rule = f"an integer {_bounds(low, high, False, False)}".rstrip()
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        raise fail(name, rule, value, hint)
    return value


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
    hint: str = "",
) -> Any:
    """``value`` must be a real number (not a bool) within the bounds; finite unless ``finite=False``.

    The rule reads "in (0, 1)" with both bounds, "a finite number >= 0" with one."""
    bounds = _bounds(low, high, low_open, high_open)
    if low is not None and high is not None:
        rule = bounds
    else:
        rule = f"{'a finite' if finite else 'a'} number {bounds}".rstrip()
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        number = float(value)
        ok = not math.isnan(number) and (math.isfinite(number) or not finite)
        ok = ok and (low is None or (number > low if low_open else number >= low))
        ok = ok and (high is None or (number < high if high_open else number <= high))
    if not ok:
        raise fail(name, rule, value, hint)
    return value


def check_choice(name: str, value: T, choices: Sequence[Any], hint: str = "") -> T:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise fail(name, f"one of {choices}", value, hint)
    return value


def check_sample_indices(name: str, values: Any, n: int) -> np.ndarray:
    """Sample indices given by the user (a list or array of ints in 0..n-1; whole floats
    pass), sorted and unique, as int64; raises TypeError or IndexError naming ``name``."""
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
    if ints.size and (ints[0] < 0 or ints[-1] >= n):
        bad = ints[(ints < 0) | (ints >= n)]
        raise IndexError(f"{name} holds {bad[:5].tolist()}, outside 0..{n - 1}; pass indices of samples of this run")
    return ints


def check_scalar(name: str, value: Any) -> float:
    """A number or a one-element tensor (e.g. a loss), as a float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a scalar (one number), got a tensor of shape {tuple(value.shape)}; "
                f"pass e.g. loss (the mean over the batch), not the per-sample values"
            )
        return value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number or a one-element tensor, got {type(value).__name__}")
    return float(value)
