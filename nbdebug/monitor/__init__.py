"""The training monitor, one concept per module: ``thresholds`` (the defaults and their
sources), ``messages`` (the text of every warning), ``rules`` (AutoTrainer's and SCRAM's
runtime rules as pure functions), ``lint`` (the static checks), ``hooks`` (what a capture
step measures), ``monitor`` (the ``Monitor``: streaks, reporting, listeners), ``warning``
(``TrainingWarning``) and ``widget`` (the live notebook view)."""

from .monitor import Monitor

__all__ = ["Monitor"]
