"""gloo's abort at process exit, which the torch.distributed tests repeat a run once for.

gloo sometimes aborts a rank as its process exits ("terminate called without an active
exception", SIGABRT), after the rank's work is done: seen in about one CI run in four, in the
DDP recording test and the README's DDP snippet. Once a DDP wrapper has been built,
``destroy_process_group`` leaves gloo's threads running until the process exits (torch 2.13), and
the barrier before it has not ended the aborts. A run that dies of it is repeated once.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

GLOO_EXIT_ABORT = "terminate called without an active exception"


def run_repeating_gloo_exit_abort(
    run: Callable[[Path], subprocess.CompletedProcess], folder: Path
) -> tuple[subprocess.CompletedProcess, Path]:
    """``run(folder)``, and once more in a fresh folder if a rank died of gloo's exit abort; the
    result and the folder it ran in."""
    result = run(folder)
    if result.returncode != 0 and GLOO_EXIT_ABORT in result.stderr:
        folder = folder / "again"
        folder.mkdir()
        result = run(folder)
    return result, folder
