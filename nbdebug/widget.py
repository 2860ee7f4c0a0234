"""The notebook widget: every sample as a dot over the epochs of a run, with a timeline (the
monitor's warnings marked on it), pan and zoom, lasso and box selection, queries, a per-sample
panel with its trail, the samples-of-interest panel, and relabelling.

The first frame comes first: ``show()`` returns once the dots of the epoch shown and its
class territories can be drawn, and what is slow (the attributes and learner behind the
recommendations, every frame's faithfulness) is computed in a background thread, with its
progress in the widget and in a progress bar, filling in when ready.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets
from tqdm.auto import tqdm

from . import cards as card_maker
from . import query as queries
from ._validation import check_int
from .head import rebuild_note
from .inspect import sample_detail
from .landscape.territories import PALETTE
from .monitor.journal import TEXT_FIELDS, landscape_warnings
from .session import Session
from .transport import frame_quality, from_page_buffer, indices_bytes, page_indices, send_frames

STATIC = Path(__file__).parent / "static"
logger = logging.getLogger("nbdebug")

SPLIT_NAMES = ("train", "test", "unlabeled")  # a sample's split code indexes this
# Positions the page keeps by default; a longer run's epochs are sent around the one shown.
POSITION_BUDGET = 64 * 2**20
RENDERERS = ("pixels", "canvas")
# A view set from Python or the page spans at least this share of the canvas, at most this
# multiple of it (the page zooms between 1/1000 and 10 times the canvas's width).
VIEW_SPAN = (1e-6, 1e3)
TASKS = {"recommendations": "computing recommendations", "faithfulness": "estimating how faithful each frame is"}
ACCEPTED_CARDS = 50  # the most recently accepted samples listed, to relabel


def _check_bundle(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(
            f"the nbdebug frontend bundle {path} is missing: build it with `npm ci && npm run build` "
            "in the nbdebug source tree (scripts/dev.sh does this)"
        )


class Landscape(anywidget.AnyWidget):
    """Every sample as a dot coloured by its label, one frame per recorded epoch.

    ``epoch`` is the epoch shown (an epoch number of the run, not a frame index); set it
    from Python to move the timeline, or read it after moving the timeline in the page.
    ``view`` is the rectangle (x_min, x_max, y_min, y_max) of the canvas shown: the wheel
    zooms around the cursor, the middle button or Shift + drag pans, a double click resets
    it; set it from Python to move there. The class territories are painted for the view,
    so zooming in sharpens them. ``selection`` holds the indices lassoed (or clicked) in the
    page, decided in data coordinates. The panel lists the session's recommended samples;
    accepting or rejecting them (one by one, or the whole selection) goes to
    ``session.feedback`` and the list is re-ranked at once.

    The page asks for each epoch's positions as it needs them, the shown one first, and
    keeps at most ``position_budget`` bytes of them, and two frames at least (messages stay
    under 10 MB); it animates between frames and reports only the epoch and the view it
    settles on. ``status`` says what is still being computed; :meth:`wait` waits for it.
    ``warnings`` are the monitor's warnings saved in the run (``warnings.jsonl``, read when the
    widget is made; :func:`nbdebug.monitor.journal.landscape_warnings`), marked on the timeline
    at their epochs; ``shown_warnings_epoch`` is the epoch whose warnings the page shows in its
    panel (a click on a marker sets it and moves there), -1 for none. ``renderer`` is
    "pixels" (the default: one image buffer per frame, fast on any machine) or "canvas"
    (Canvas 2D paths). The page reads ``renderer`` and ``position_budget`` when it draws the
    widget: give them to ``show()``.

    The background job and the kernel's thread both write traits; ``_sync`` lets one at a
    time do so, and is never held while waiting for the session.
    """

    _esm = STATIC / "landscape.js"

    epoch = traitlets.Int().tag(sync=True)
    epochs = traitlets.List(traitlets.Int()).tag(sync=True)
    n_samples = traitlets.Int().tag(sync=True)
    labels = traitlets.Bytes().tag(sync=True)  # int16 (n_samples,), -1 for none
    splits = traitlets.Bytes().tag(sync=True)  # uint8 (n_samples,), an index into split_names
    split_names = traitlets.List(traitlets.Unicode(), list(SPLIT_NAMES)).tag(sync=True)
    bounds = traitlets.List(traitlets.Float(), minlen=4, maxlen=4).tag(sync=True)  # the whole canvas
    view = traitlets.List(traitlets.Float(), minlen=4, maxlen=4).tag(sync=True)
    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    palette = traitlets.List(traitlets.Unicode()).tag(sync=True)
    epoch_metrics = traitlets.List(traitlets.Dict()).tag(sync=True)
    frame_quality = traitlets.List(traitlets.Dict()).tag(sync=True)  # per epoch: how faithful the frame is
    background = traitlets.Bytes(b"").tag(sync=True)  # uint8 RGBA (h, w, 4) over background_bounds, row 0 on top
    background_size = traitlets.List(traitlets.Int(), [0, 0]).tag(sync=True)  # [w, h]
    background_bounds = traitlets.List(traitlets.Float(), [0.0, 1.0, 0.0, 1.0]).tag(sync=True)
    # uint32 indices, set by the lasso; the page sends a memoryview
    _selection = traitlets.Bytes(b"").tag(sync=True, from_json=lambda value, _widget: from_page_buffer(value))
    _recommended = traitlets.Bytes(b"").tag(sync=True)  # uint32 indices, best first
    _accepted = traitlets.Bytes(b"").tag(sync=True)
    _rejected = traitlets.Bytes(b"").tag(sync=True)
    cards = traitlets.List(traitlets.Dict()).tag(sync=True)  # one per recommended sample
    card_thumbnails = traitlets.Bytes(b"").tag(sync=True)  # uint8 pixels, at each card's thumbnail offset
    importance = traitlets.Dict().tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)  # the last problem with a request from the page
    status = traitlets.Unicode("").tag(sync=True)  # what is still being computed
    position_budget = traitlets.Int(POSITION_BUDGET).tag(sync=True)
    renderer = traitlets.Unicode("pixels").tag(sync=True)
    # A query's matches (uint32 indices) stay highlighted across epochs, the rest greyed.
    highlighting = traitlets.Bool(False).tag(sync=True)
    _highlighted = traitlets.Bytes(b"").tag(sync=True)
    query_text = traitlets.Unicode("").tag(sync=True)  # the query bar's last query
    hidden_splits = traitlets.List(traitlets.Unicode()).tag(sync=True)
    inspected = traitlets.Int(-1).tag(sync=True)  # the sample whose trail and panel are shown
    inspected_detail = traitlets.Dict().tag(sync=True)
    # Per sample at predictions_epoch: the predicted class (uint16) and confidence (uint8, 255 = 1).
    predictions_epoch = traitlets.Int(-1).tag(sync=True)
    _predicted = traitlets.Bytes(b"").tag(sync=True)
    _confidence = traitlets.Bytes(b"").tag(sync=True)
    relabelled = traitlets.List(traitlets.List(traitlets.Int())).tag(sync=True)  # [index, class] pairs
    # Outline the dots the canvas misplaces at misplaced_epoch (uint32 indices of each kind).
    show_misplaced = traitlets.Bool(False).tag(sync=True)
    misplaced_epoch = traitlets.Int(-1).tag(sync=True)
    _misplaced_territory = traitlets.Bytes(b"").tag(sync=True)
    _misplaced_neighbours = traitlets.Bytes(b"").tag(sync=True)
    # Per saved warning: {"epoch", "code", "severity", "title", "explanation", "fix", "cause"}, all text.
    warnings = traitlets.List(traitlets.Dict()).tag(sync=True)
    shown_warnings_epoch = traitlets.Int(-1).tag(sync=True)

    _stop_listening = None  # set while the widget follows the session's answers and relabels
    _ready = False  # set once the first frame's state is in place
    _scored = False  # set once the attributes are computed (reading them earlier would wait)

    def __init__(self, session: Session, recommendations: int = 20, epoch: int | None = None, **kwargs: Any):
        _check_bundle(STATIC / "landscape.js")
        check_int("recommendations", recommendations, 0)
        run = session.run
        # Plain attributes first: trait observers run during super().__init__.
        self.session = session
        self.n_recommendations = recommendations
        self._thumbnails = card_maker.Thumbnails(run)
        self._positions = np.ascontiguousarray(session.embedding, dtype=np.float32)  # fits if needed
        self._error: BaseException | None = None
        self._sync = threading.RLock()
        splits = np.empty(run.n_samples, dtype=np.uint8)
        for name, where in run.splits.items():
            splits[where] = SPLIT_NAMES.index(name)
        kwargs.setdefault("view", list(session.bounds))
        super().__init__(
            epochs=list(run.epochs),
            epoch=run.epochs[-1] if epoch is None else epoch,
            n_samples=run.n_samples,
            labels=run.labels.astype(np.int16).tobytes(),
            splits=splits.tobytes(),
            bounds=list(session.bounds),
            classes=run.classes,
            palette=list(PALETTE),
            epoch_metrics=[{k: v for k, v in run.metrics(e).items() if v is not None} for e in run.epochs],
            warnings=landscape_warnings(run.path, run.epochs),
            status=f"{TASKS['recommendations' if recommendations else 'faithfulness']}…",
            **kwargs,
        )
        self._ready = True
        self._refresh_background()
        self._refresh_predictions()
        self._refresh_relabels()
        self.on_msg(self._on_message)
        self._misplaced_job: threading.Thread | None = None
        # Answers and relabels given in Python, or in another widget, show here too.
        self._stop_listening = session.on_feedback(self._session_changed)
        # Created here, so that in a notebook the bar shows under this cell; moved by the job.
        self._bar = tqdm(total=100, desc="nbdebug: preparing the landscape", disable=not session.progress)
        self._job = threading.Thread(target=self._prepare, name="nbdebug-landscape", daemon=True)
        self._job.start()

    def wait(self, timeout: float | None = None) -> Landscape:
        """Wait until the recommendations and the faithfulness figures are in (the background
        job is done); raises what the job raised, if it failed."""
        self._job.join(timeout)
        if self._job.is_alive():
            raise TimeoutError(f"the landscape is still being prepared after {timeout} s")
        if self._error is not None:
            raise self._error
        return self

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

    @traitlets.validate("warnings")
    def _valid_warnings(self, proposal: dict) -> list[dict]:
        for w in proposal["value"]:
            fields_ok = set(w) == {"epoch", *TEXT_FIELDS} and all(isinstance(w[name], str) for name in TEXT_FIELDS)
            if not fields_ok or w["epoch"] not in self.epochs:
                raise traitlets.TraitError(f"warnings must be landscape_warnings() records at recorded epochs, got {w}")
        return proposal["value"]

    @traitlets.validate("shown_warnings_epoch")
    def _valid_shown_warnings(self, proposal: dict) -> int:
        epochs = sorted({w["epoch"] for w in self.warnings})
        if proposal["value"] != -1 and proposal["value"] not in epochs:
            raise traitlets.TraitError(
                f"shown_warnings_epoch must be -1 (none) or an epoch with warnings {epochs}, got {proposal['value']}"
            )
        return proposal["value"]

    @traitlets.validate("view")
    def _valid_view(self, proposal: dict) -> list[float]:
        x0, x1, y0, y1 = (float(v) for v in proposal["value"])
        b0, b1, c0, c1 = self.bounds or (x0, x1, y0, y1)
        canvas = max(b1 - b0, c1 - c0)
        low, high = VIEW_SPAN[0] * canvas, VIEW_SPAN[1] * canvas
        if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or not (
            low <= x1 - x0 <= high and low <= y1 - y0 <= high
        ):
            raise traitlets.TraitError(
                f"view must be finite (x_min, x_max, y_min, y_max) with each side between {low:.3g} and "
                f"{high:.3g} long, got {proposal['value']}; widget.bounds is the whole canvas"
            )
        return [x0, x1, y0, y1]

    @traitlets.validate("position_budget")
    def _valid_budget(self, proposal: dict) -> int:
        if proposal["value"] < 0:
            raise traitlets.TraitError(f"position_budget must be a number of bytes >= 0, got {proposal['value']}")
        return proposal["value"]

    @traitlets.validate("renderer")
    def _valid_renderer(self, proposal: dict) -> str:
        if proposal["value"] not in RENDERERS:
            raise traitlets.TraitError(f"renderer must be one of {RENDERERS}, got {proposal['value']!r}")
        return proposal["value"]

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
        self._set(_selection=indices_bytes(array))

    @traitlets.validate("hidden_splits")
    def _valid_hidden_splits(self, proposal: dict) -> list[str]:
        unknown = [s for s in proposal["value"] if s not in self.split_names]
        if unknown:
            raise traitlets.TraitError(f"hidden_splits must name splits {self.split_names}, got {unknown}")
        return list(proposal["value"])

    @traitlets.validate("inspected")
    def _valid_inspected(self, proposal: dict) -> int:
        if not -1 <= proposal["value"] < self.n_samples:
            raise traitlets.TraitError(f"inspected must be a sample index in 0..{self.n_samples - 1} or -1 (none)")
        return proposal["value"]

    @property
    def highlighted(self) -> np.ndarray | None:
        """Indices of the samples the last query matched (highlighted, the rest greyed), or None."""
        return np.frombuffer(self._highlighted, dtype=np.uint32).astype(np.int64) if self.highlighting else None

    def query(self, label=None, predicted=None, mispredicted=None, split=None, indices=None, where=None) -> np.ndarray:
        """Highlight the samples matching every argument given, at the epoch shown, and return
        their indices; they stay highlighted across epochs, the rest greyed. ``query()``
        without arguments clears the highlight. See :func:`nbdebug.query.matching` for the
        arguments (e.g. ``query(label=3, mispredicted=True, where="forgetting >= 3")``)."""
        kwargs = {"label": label, "predicted": predicted, "mispredicted": mispredicted, "split": split}
        return self._highlight(kwargs | {"indices": indices, "where": where}, text="")

    def _highlight(self, query: dict[str, Any], text: str) -> np.ndarray:
        """Highlight what ``query`` matches; ``text`` is the query bar's (one message to the page)."""
        found = queries.matching(self.session, self.epoch, **query)
        active = any(value is not None for value in query.values())
        matches = indices_bytes(found if active else [])
        self._set(highlighting=active, _highlighted=matches, query_text=text, message="")
        return found

    @traitlets.observe("epoch", "view")
    def _shown_changed(self, change: dict) -> None:
        if not self._ready:
            return
        self._refresh_background()
        if change["name"] == "epoch":
            self._refresh_predictions()
            self._refresh_misplaced()

    @traitlets.observe("inspected")
    def _inspected_changed(self, _change: dict) -> None:
        self._refresh_inspected()

    @traitlets.observe("show_misplaced")
    def _show_misplaced_changed(self, _change: dict) -> None:
        self._refresh_misplaced()

    def set_state(self, sync_data: dict) -> None:
        """Changes from the page (ipywidgets calls this), one writer at a time."""
        with self._sync:
            super().set_state(sync_data)

    def _set(self, **values: Any) -> None:
        """Set traits from either thread, one writer at a time, sent in one message."""
        with self._sync, self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)

    def _on_message(self, _widget: Any, content: Any, _buffers: list) -> None:
        """Requests from the page, validated before use."""
        if not isinstance(content, dict):
            return
        try:
            if content.get("type") == "frames":
                send_frames(
                    self,
                    self._positions,
                    page_indices(content.get("indices"), "indices", len(self.epochs), distinct=True),
                )
                return
            if content.get("type") == "feedback":
                accept = page_indices(content.get("accept", []), "accept", self.n_samples)
                reject = page_indices(content.get("reject", []), "reject", self.n_samples)
                self.session.feedback(accept=accept, reject=reject)
            elif content.get("type") == "new_intention":
                self.session.new_intention()
            elif content.get("type") == "query":
                text = str(content.get("text", ""))
                self._highlight(queries.parse(text), text)
            elif content.get("type") == "relabel":
                index = page_indices([content.get("index")], "index", self.n_samples)[0]
                self.session.relabel({index: content.get("label")})
            elif content.get("type") == "thumbnail":
                self._send_thumbnail(page_indices([content.get("index")], "index", self.n_samples)[0])
                return
            else:
                return
        except (ValueError, TypeError, IndexError) as err:
            self._set(message=str(err))
            logger.warning("nbdebug widget: %s", err)
            return
        self._set(message="")  # the session's on_feedback listener has refreshed the panel

    # -- what the kernel pushes --------------------------------------------------------

    def _send_thumbnail(self, index: int) -> None:
        """Sample ``index``'s thumbnail for the tooltip: its shape [h, w, c] and pixels, or no shape."""
        image = self._thumbnails.of(index)
        if image is None:
            self.send({"type": "thumbnail", "index": index, "shape": None})
            return
        pixels = np.ascontiguousarray(image, dtype=np.uint8)
        self.send({"type": "thumbnail", "index": index, "shape": list(pixels.shape)}, buffers=[pixels.data])

    def _refresh_predictions(self) -> None:
        """Every sample's predicted class and confidence at the epoch shown, for the tooltip."""
        probabilities = np.asarray(self.session.run.probabilities(self.epoch), dtype=np.float32)
        self._set(
            _predicted=probabilities.argmax(axis=1).astype(np.uint16).tobytes(),
            _confidence=np.round(probabilities.max(axis=1) * 255).astype(np.uint8).tobytes(),
            predictions_epoch=self.epoch,
        )

    def _refresh_relabels(self) -> None:
        self._set(relabelled=[[i, label] for i, label in self.session.relabels.items()])

    def _refresh_inspected(self) -> None:
        index = self.inspected
        self._set(inspected_detail=sample_detail(self.session, index, self._scored) if index >= 0 else {})

    def _session_changed(self) -> None:
        """After an answer, a new intention or a relabel, wherever it was given."""
        self._refresh_relabels()
        if self._scored:
            self._refresh_recommendations()
        if self.inspected >= 0:
            self._refresh_inspected()

    def _refresh_misplaced(self) -> None:
        """Outline the dots the canvas misplaces at the epoch shown (when asked to), computed in a
        thread (a few seconds at 50,000 samples); the page says so until misplaced_epoch is the
        epoch shown."""
        if not self.show_misplaced or self.misplaced_epoch == self.epoch:
            return
        if self._misplaced_job is not None and self._misplaced_job.is_alive():
            return  # it looks at the epoch shown again when done

        def work() -> None:
            try:
                while self.show_misplaced and self.misplaced_epoch != self.epoch:
                    epoch = self.epoch
                    flags = self.session.misplaced(epoch)
                    self._set(
                        _misplaced_territory=indices_bytes(np.flatnonzero(flags["territory"])),
                        _misplaced_neighbours=indices_bytes(np.flatnonzero(flags["neighbours"])),
                        misplaced_epoch=epoch,
                    )
            except Exception as err:  # shown in the widget
                self._set(message=f"could not find the misplaced dots: {err}")
                logger.warning("nbdebug widget: %s", err)

        self._misplaced_job = threading.Thread(target=work, name="nbdebug-misplaced", daemon=True)
        self._misplaced_job.start()

    def _refresh_background(self) -> None:
        """The class territories of the epoch shown, painted over the view."""
        x0, x1, y0, y1 = self.view
        if not self.session.has_territories:  # a head nbdebug cannot rebuild: dots only
            self._set(background=b"", background_size=[0, 0], background_bounds=[x0, x1, y0, y1])
            return
        image = np.ascontiguousarray(self.session.background(self.epoch, bounds=(x0, x1, y0, y1)), dtype=np.uint8)
        self._set(
            background=image.tobytes(),
            background_size=[image.shape[1], image.shape[0]],
            background_bounds=[x0, x1, y0, y1],
        )

    def _prepare(self) -> None:
        """The background job: everything slow, with progress in ``status`` and the bar."""
        weights = {"recommendations": 1.0 if self.n_recommendations else 0.0, "faithfulness": 1.0}
        done = dict.fromkeys(weights, 0.0)

        def progress(task: str, fraction: float) -> None:
            done[task] = fraction
            overall = sum(weights[t] * done[t] for t in done) / sum(weights.values())
            self._bar.n = round(100 * overall)
            self._bar.refresh()
            self._set(status=f"{TASKS[task]}… {fraction:.0%}")

        try:
            if self.n_recommendations:  # shown as soon as they are ready
                self.session.prepare(faithfulness=False, on_progress=progress)
                self._scored = True
                self._refresh_recommendations()
                if self.inspected >= 0:
                    self._refresh_inspected()
            self.session.prepare(recommendations=False, on_progress=progress)
            self._set(
                frame_quality=frame_quality(self.session.faithfulness),
                status=rebuild_note(self.session.run, self.session.head_module),
            )
            self._bar.update(100 - self._bar.n)  # done, also when everything came from the cache
        except Exception as err:  # shown in the widget; wait() raises it
            self._error = err
            self._set(status=f"could not prepare the landscape: {err}")
            logger.warning("nbdebug widget: %s", self.status)
        finally:
            self._bar.close()

    def _refresh_recommendations(self) -> None:
        if not self.n_recommendations:
            return
        session = self.session
        recommended = np.asarray(session.recommend(self.n_recommendations), dtype=np.int64)
        learner = session.learner
        answers = learner.answers  # per sample: 1 accepted, 0 rejected, -1 not judged
        latest_first = dict.fromkeys(learner.judged[::-1].tolist())
        accepted = np.array([i for i in latest_first if answers[i] == 1][:ACCEPTED_CARDS], dtype=np.int64)
        scores = learner.scores()
        made, pixels = card_maker.cards(session.run, recommended, accepted, self._thumbnails, scores, session.relabels)
        importance = {k: float(v) for k, v in session.importance.items()}
        self._set(
            card_thumbnails=pixels,
            cards=made,
            _recommended=indices_bytes(recommended),
            _accepted=indices_bytes(np.flatnonzero(answers == 1)),
            _rejected=indices_bytes(np.flatnonzero(answers == 0)),
            importance=importance,
        )
