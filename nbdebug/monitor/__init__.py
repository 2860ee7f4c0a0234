"""The training monitor: hooks on a live training loop, AutoTrainer's and SCRAM's rules,
the static lint, the messages and the live widget."""

from .monitor import Monitor

__all__ = ["Monitor"]
