"""The notebook widget: every sample as a dot over the epochs of a run, with a timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from .run import Run
from .session import Session

STATIC = Path(__file__).parent / "static"

# Tableau 10, then 10 lighter partners: distinct for up to 20 classes, then reused.
PALETTE = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d",
    "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6", "#79706e",
]
SPLIT_CODES = {"train": 0, "test": 1, "unlabeled": 2}


def _check_bundle(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(
            f"the nbdebug frontend bundle {path} is missing: build it with `npm ci && npm run build` "
            "in the nbdebug source tree (scripts/dev.sh does this)")


class Landscape(anywidget.AnyWidget):
    """Every sample as a dot coloured by its label, one frame per recorded epoch.

    ``epoch`` is the epoch shown (an epoch number of the run, not a frame index); set it
    from Python to move the timeline, or read it after moving the timeline in the page.
    Positions of all epochs travel once, as one float32 buffer; the browser animates
    between frames and reports only the epoch it settles on.
    """

    _esm = STATIC / "landscape.js"

    epoch = traitlets.Int().tag(sync=True)
    epochs = traitlets.List(traitlets.Int()).tag(sync=True)
    n_samples = traitlets.Int().tag(sync=True)
    positions = traitlets.Bytes().tag(sync=True)  # float32 (n_epochs, n_samples, 2), C order
    labels = traitlets.Bytes().tag(sync=True)     # int16 (n_samples,), -1 for none
    splits = traitlets.Bytes().tag(sync=True)     # uint8 (n_samples,), SPLIT_CODES
    bounds = traitlets.List(traitlets.Float(), minlen=4, maxlen=4).tag(sync=True)
    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    palette = traitlets.List(traitlets.Unicode()).tag(sync=True)
    epoch_metrics = traitlets.List(traitlets.Dict()).tag(sync=True)

    def __init__(self, session: Session, **kwargs: Any):
        _check_bundle(STATIC / "landscape.js")
        run = session.run
        embedding = np.ascontiguousarray(session.embedding, dtype=np.float32)
        metrics = [{k: v for k, v in run.metrics(e).items() if v is not None} for e in run.epochs]
        super().__init__(
            epochs=list(run.epochs),
            epoch=run.epochs[-1],
            n_samples=run.n_samples,
            positions=embedding.tobytes(),
            labels=run.labels.astype(np.int16).tobytes(),
            splits=np.array([SPLIT_CODES[s] for s in run.split], dtype=np.uint8).tobytes(),
            bounds=list(session.bounds),
            classes=run.classes,
            palette=PALETTE,
            epoch_metrics=metrics,
            **kwargs,
        )
        self.session = session

    @traitlets.validate("epoch")
    def _valid_epoch(self, proposal: dict) -> int:
        epoch = proposal["value"]
        if self.epochs and epoch not in self.epochs:
            raise traitlets.TraitError(f"epoch must be one of the recorded epochs {self.epochs}, got {epoch}")
        return epoch


def show(obj: Run | Session | str | Path) -> Landscape:
    """Show a run in the notebook: ``nbdebug.show(run)``, ``show(session)`` or ``show("runs/demo")``."""
    if isinstance(obj, Session):
        session = obj
    elif isinstance(obj, (Run, str, Path)):
        session = Session(obj)
    else:
        raise TypeError(f"show() takes a Run, a Session or a run directory path, got {type(obj).__name__}")
    return Landscape(session)
