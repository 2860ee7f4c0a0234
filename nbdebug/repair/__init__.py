"""Repair of what the monitor finds, after AutoTrainer (§4.3-4.4), one concept per module:
``setup`` (what a training is made of and repairs change), ``data`` (the input forms fit()
takes), ``surgery`` (edits of any ``nn.Module`` tree), ``solutions`` (S1-S9 and their default
order per problem), ``scheduler`` (the search) and ``log`` (the repair entries)."""

from .log import RepairEntry
from .solutions import DEFAULT_ORDER, SOLUTIONS, Solution

__all__ = ["DEFAULT_ORDER", "SOLUTIONS", "RepairEntry", "Solution"]
