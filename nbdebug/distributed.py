"""Recording and monitoring under ``torch.distributed``: which process writes, how the work of
one capture is shared, and how per-rank statistics are combined.

Under an initialised process group of more than one process every rank makes the same calls
(``Recorder(...)``, ``capture(epoch)``, ``Monitor.step(...)``); rank 0 writes and reports. A
capture splits the samples into one contiguous share per rank; each rank runs the model on its
share, batch by batch, and the batches are gathered on rank 0, which streams them into the
epoch it publishes. Outside a process group (or with one process) nothing here communicates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


def active() -> bool:
    """True under an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_writer() -> bool:
    """Whether this process writes the run and reports warnings (rank 0, or the only process)."""
    return rank() == 0


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DistributedDataParallel`` (or ``DataParallel``); the model otherwise.

    Recording runs the inner module, so a capture, whose share of samples differs between
    ranks, never triggers the wrapper's collective calls (buffer broadcasts)."""
    inner = getattr(model, "module", None)
    wrapped = isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel))
    return inner if wrapped and isinstance(inner, torch.nn.Module) else model


def on_writer(work: Callable[[], T]) -> T | None:
    """Run ``work`` on rank 0 only; an error it raises is raised on every rank (the same type
    where it can be rebuilt from its message), so no rank goes on to wait for the others."""
    if not active():
        return work()
    result, error = None, None
    if is_writer():
        try:
            result = work()
        except Exception as err:
            error = err
    message = [None if error is None else (type(error), str(error))]
    dist.broadcast_object_list(message, src=0)
    if error is not None:
        raise error
    if message[0] is not None:
        kind, text = message[0]
        try:
            rebuilt = kind(text)
        except Exception:
            rebuilt = RuntimeError(text)
        raise rebuilt
    return result


def share(n: int, of_rank: int, world: int) -> tuple[int, int]:
    """The samples ``[start, stop)`` that rank ``of_rank`` of ``world`` computes: contiguous
    shares of ``ceil(n / world)`` samples (the last ones shorter)."""
    size = math.ceil(n / world)
    return min(of_rank * size, n), min((of_rank + 1) * size, n)


def _device() -> torch.device:
    """Where the backend takes tensors: the current GPU for NCCL, the CPU otherwise."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(rows: np.ndarray | None, width: int, capacity: int) -> list[np.ndarray] | None:
    """Every rank's ``rows`` (float32, at most ``capacity`` rows of ``width``; None for none)
    on rank 0, in rank order; None on the other ranks. Every rank must call it, once per round."""
    device = _device()
    count = 0 if rows is None else len(rows)
    padded = torch.zeros(capacity, width, dtype=torch.float32, device=device)
    if count:
        padded[:count] = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
    counts = torch.tensor([count], dtype=torch.int64, device=device)
    writer = is_writer()
    all_counts = [torch.zeros_like(counts) for _ in range(world_size())] if writer else None
    all_rows = [torch.zeros_like(padded) for _ in range(world_size())] if writer else None
    dist.gather(counts, all_counts, dst=0)
    dist.gather(padded, all_rows, dst=0)
    if all_counts is None or all_rows is None:
        return None
    return [block[: int(c)].cpu().numpy() for c, block in zip(all_counts, all_rows, strict=True)]


def broadcast_from_writer(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_across_ranks(value: float) -> float:
    """The mean of ``value`` over the ranks (NaN on any rank gives NaN)."""
    if not active():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_device())
    dist.all_reduce(tensor)
    return float(tensor.item()) / world_size()
