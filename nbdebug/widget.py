"""The notebook widget: every sample as a dot over the epochs of a run, with a timeline,
lasso selection and the samples-of-interest panel."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import traitlets

from ._validation import check_int
from .landscape.territories import PALETTE
from .monitor import Monitor
from .run import Run
from .session import Session

if TYPE_CHECKING:
    from .monitor.widget import MonitorWidget

STATIC = Path(__file__).parent / "static"
logger = logging.getLogger("nbdebug")

SPLIT_CODES = {"train": 0, "test": 1, "unlabeled": 2}


def _check_bundle(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(
            f"the nbdebug frontend bundle {path} is missing: build it with `npm ci && npm run build` "
            "in the nbdebug source tree (scripts/dev.sh does this)"
        )


def _frame_quality(session: Session) -> list[dict[str, float]]:
    """Per epoch, the share of neighbours kept on the canvas (NPR@15) and of predictions
    the painted territories preserve (PPR), training samples; NaN-free for JSON."""
    quality = session.faithfulness
    frames = []
    for i in range(len(quality["epochs"])):
        frame = {}
        for key, name in (("npr_train", "NPR"), ("ppr_train", "PPR")):
            if key in quality and np.isfinite(quality[key][i]):
                frame[name] = float(quality[key][i])
        frames.append(frame)
    return frames


def _buffer(value: Any) -> bytes:
    """A binary message from the page as bytes; anything else is refused."""
    if not isinstance(value, (bytes, memoryview)):
        raise traitlets.TraitError(f"expected a binary buffer, got {type(value).__name__}")
    return bytes(value)


def _indices_bytes(indices: Any) -> bytes:
    return np.asarray(indices, dtype=np.uint32).tobytes()


class Landscape(anywidget.AnyWidget):
    """Every sample as a dot coloured by its label, one frame per recorded epoch.

    ``epoch`` is the epoch shown (an epoch number of the run, not a frame index); set it
    from Python to move the timeline, or read it after moving the timeline in the page.
    ``selection`` holds the indices lassoed (or clicked) in the page. The panel lists the
    session's recommended samples; accepting or rejecting them (one by one, or the whole
    selection) goes to ``session.feedback`` and the list is re-ranked at once.

    Positions of all epochs travel once, as one float32 buffer; the browser animates
    between frames and reports only the epoch it settles on.
    """

    _esm = STATIC / "landscape.js"

    epoch = traitlets.Int().tag(sync=True)
    epochs = traitlets.List(traitlets.Int()).tag(sync=True)
    n_samples = traitlets.Int().tag(sync=True)
    positions = traitlets.Bytes().tag(sync=True)  # float32 (n_epochs, n_samples, 2), C order
    labels = traitlets.Bytes().tag(sync=True)  # int16 (n_samples,), -1 for none
    splits = traitlets.Bytes().tag(sync=True)  # uint8 (n_samples,), SPLIT_CODES
    bounds = traitlets.List(traitlets.Float(), minlen=4, maxlen=4).tag(sync=True)
    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    palette = traitlets.List(traitlets.Unicode()).tag(sync=True)
    epoch_metrics = traitlets.List(traitlets.Dict()).tag(sync=True)
    frame_quality = traitlets.List(traitlets.Dict()).tag(sync=True)  # per epoch: how faithful the frame is
    background = traitlets.Bytes(b"").tag(sync=True)  # uint8 RGBA (h, w, 4) over `bounds`, row 0 on top
    background_size = traitlets.List(traitlets.Int(), [0, 0]).tag(sync=True)  # [w, h]
    # uint32 indices, set by the lasso; the page sends a memoryview
    _selection = traitlets.Bytes(b"").tag(sync=True, from_json=lambda value, _widget: _buffer(value))
    _recommended = traitlets.Bytes(b"").tag(sync=True)  # uint32 indices, best first
    _accepted = traitlets.Bytes(b"").tag(sync=True)
    _rejected = traitlets.Bytes(b"").tag(sync=True)
    cards = traitlets.List(traitlets.Dict()).tag(sync=True)  # one per recommended sample
    card_thumbnails = traitlets.Bytes(b"").tag(sync=True)  # uint8 (k, h, w, c)
    thumbnail_shape = traitlets.List(traitlets.Int(), []).tag(sync=True)  # [h, w, c] or []
    importance = traitlets.Dict().tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)  # the last problem with a request from the page

    _stop_listening = None  # set while the widget follows the session's answers

    def __init__(self, session: Session, recommendations: int = 20, epoch: int | None = None, **kwargs: Any):
        _check_bundle(STATIC / "landscape.js")
        check_int("recommendations", recommendations, 0)
        run = session.run
        # Plain attributes first: trait observers run during super().__init__.
        self.session = session
        self.n_recommendations = recommendations
        self._thumbnails = {name: run.thumbnails(name) for name in run.splits}
        embedding = np.ascontiguousarray(session.embedding, dtype=np.float32)
        metrics = [{k: v for k, v in run.metrics(e).items() if v is not None} for e in run.epochs]
        splits = np.empty(run.n_samples, dtype=np.uint8)
        for name, where in run.splits.items():
            splits[where] = SPLIT_CODES[name]
        super().__init__(
            epochs=list(run.epochs),
            epoch=run.epochs[-1] if epoch is None else epoch,
            n_samples=run.n_samples,
            positions=embedding.tobytes(),
            labels=run.labels.astype(np.int16).tobytes(),
            splits=splits.tobytes(),
            bounds=list(session.bounds),
            classes=run.classes,
            palette=list(PALETTE),
            epoch_metrics=metrics,
            frame_quality=_frame_quality(session),
            **kwargs,
        )
        self.on_msg(self._on_message)
        if self.n_recommendations:  # answers given in Python show here too
            self._stop_listening = session.on_feedback(self._refresh_recommendations)
        self._refresh_recommendations()

    def close(self) -> None:
        """Close the widget; the session stops refreshing it after answers."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        super().close()

    # -- what the page may change ------------------------------------------------------

    @traitlets.validate("epoch")
    def _valid_epoch(self, proposal: dict) -> int:
        epoch = proposal["value"]
        if self.epochs and epoch not in self.epochs:
            raise traitlets.TraitError(f"epoch must be one of the recorded epochs {self.epochs}, got {epoch}")
        return epoch

    @traitlets.validate("_selection")
    def _valid_selection(self, proposal: dict) -> bytes:
        raw = bytes(proposal["value"])
        if len(raw) % 4:
            raise traitlets.TraitError("selection must be uint32 indices")
        indices = np.frombuffer(raw, dtype=np.uint32)
        if len(indices) and int(indices.max()) >= self.n_samples:
            raise traitlets.TraitError(f"selection holds an index >= {self.n_samples}")
        return np.unique(indices).astype(np.uint32).tobytes()

    @property
    def selection(self) -> np.ndarray:
        """Indices of the samples selected in the page (lasso or click), ascending."""
        return np.frombuffer(self._selection, dtype=np.uint32).astype(np.int64)

    @selection.setter
    def selection(self, indices: Any) -> None:
        array = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if array.size and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() >= self.n_samples):
            raise ValueError(f"selection must be sample indices in 0..{self.n_samples - 1}")
        self._selection = _indices_bytes(array)

    @traitlets.observe("epoch")
    def _epoch_changed(self, _change: dict) -> None:
        self._refresh_background()

    def _on_message(self, _widget: Any, content: Any, _buffers: list) -> None:
        """Requests from the page, validated before use."""
        if not isinstance(content, dict):
            return
        try:
            if content.get("type") == "feedback":
                accept, reject = content.get("accept", []), content.get("reject", [])
                for name, values in (("accept", accept), ("reject", reject)):
                    if not isinstance(values, list) or not all(
                        isinstance(v, int) and not isinstance(v, bool) for v in values
                    ):
                        raise ValueError(f"{name} must be a list of sample indices")
                self.session.feedback(accept=accept, reject=reject)
            elif content.get("type") == "new_intention":
                self.session.new_intention()
            else:
                return
        except (ValueError, TypeError, IndexError) as err:
            self.message = str(err)
            logger.warning("nbdebug widget: %s", err)
            return
        self.message = ""  # the session's on_feedback listener has refreshed the panel

    # -- what the kernel pushes --------------------------------------------------------

    def _refresh_background(self) -> None:
        image = np.ascontiguousarray(self.session.background(self.epoch), dtype=np.uint8)
        self.background = image.tobytes()
        self.background_size = [image.shape[1], image.shape[0]]

    def _refresh_recommendations(self) -> None:
        if not self.n_recommendations:
            return
        run, session = self.session.run, self.session
        recommended = np.asarray(session.recommend(self.n_recommendations), dtype=np.int64)
        answers = session.learner.answers  # per sample: 1 accepted, 0 rejected, -1 not judged
        probabilities = run.probabilities(run.epochs[-1])
        cards, thumbs = [], []
        for i in recommended:
            label = int(run.labels[i])
            cards.append(
                {
                    "index": int(i),
                    "split": str(run.split[i]),
                    "label": run.classes[label] if label >= 0 else "none",
                    "predicted": run.classes[int(np.argmax(probabilities[i]))],
                }
            )
            thumbs.append(self._thumbnail(int(i)))
        shapes = {t.shape for t in thumbs if t is not None}
        with self.hold_sync():
            images = [t for t in thumbs if t is not None]
            if len(shapes) == 1 and len(images) == len(thumbs):
                self.card_thumbnails = np.stack(images).tobytes()
                self.thumbnail_shape = list(images[0].shape)
            else:
                self.card_thumbnails, self.thumbnail_shape = b"", []
            self.cards = cards
            self._recommended = _indices_bytes(recommended)
            self._accepted = _indices_bytes(np.flatnonzero(answers == 1))
            self._rejected = _indices_bytes(np.flatnonzero(answers == 0))
            self.importance = {k: float(v) for k, v in session.importance.items()}

    def _thumbnail(self, index: int) -> np.ndarray | None:
        """The sample's image as (h, w, c) uint8, or None if its split has no thumbnails."""
        split = str(self.session.run.split[index])
        images = self._thumbnails.get(split)
        if images is None:
            return None
        image = np.asarray(images[index - self.session.run.splits[split].start])
        return image[..., None] if image.ndim == 2 else image


def show(obj: Run | Session | Monitor | str | Path, projection: Any = None, **kwargs: Any) -> Landscape | MonitorWidget:
    """Show a run in the notebook: ``nbdebug.show(run)``, ``show(session)`` or ``show("runs/demo")``;
    or the live view of a training monitor: ``nbdebug.show(monitor)``.

    ``projection`` ("visualizer", the default, or "pca") is passed to :class:`Session` when
    a run is given; other options (``epoch``, ``recommendations``) go to :class:`Landscape`."""
    if isinstance(obj, Monitor):
        if kwargs or projection is not None:
            raise TypeError("show(monitor) takes no options")
        return obj.widget
    if isinstance(obj, Session):
        if projection is not None:
            raise TypeError("show(session) uses the session's projection; pass projection= to Session")
        session = obj
    elif isinstance(obj, (Run, str, Path)):
        session = Session(obj, projection=projection)
    else:
        raise TypeError(f"show() takes a Run, a Session, a run directory path or a Monitor, got {type(obj).__name__}")
    return Landscape(session, **kwargs)
