"""The warnings the monitor reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainingWarning:
    """One problem the monitor found; repeated detections update ``count`` and ``last_*``.

    ``epoch`` and ``step`` are where it was first seen (epochs finished and steps taken; 0, 0
    for static checks, before the first step); ``evidence`` holds the numbers and layer names
    that triggered it; ``cause`` names the most likely of the problem's known causes (e.g.
    ``"learning_rate"``, see :data:`nbdebug.monitor.causes.CAUSES`), which the explanation
    states and the fix addresses.
    """

    code: str
    severity: str
    title: str
    explanation: str
    fix: str
    epoch: int
    step: int
    evidence: dict[str, Any] = field(default_factory=dict)
    cause: str = ""
    count: int = 1
    last_epoch: int = 0
    last_step: int = 0

    def __str__(self) -> str:
        return (
            f"[{self.severity}] {self.code} (epoch {self.epoch}, step {self.step}): {self.title}\n"
            f"{self.explanation}\nFix:\n{self.fix}"
        )
