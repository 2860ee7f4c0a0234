"""The kernel-side state of one debugging session over a recorded run."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from . import head
from ._validation import check_choice
from .interest import feedback as feedback_log
from .interest.anomaly import AnomalyDetector
from .interest.attributes import PAPER_ATTRIBUTES, SampleAttributes
from .interest.features import select_epochs
from .interest.intention import MODES, IntentionLearner, is_prior, make_learner
from .interest.relabels import Relabels
from .interest.unseen import score_unseen
from .landscape.choice import make_projection
from .landscape.metrics import evaluate
from .landscape.territories import Territories
from .landscape.territories import territories as paint_territories
from .landscape.trust import misplaced
from .run import Run, load_run
from .table import sample_table


@dataclass
class _Derived:
    """What a Session derives from the fitted projection; :meth:`Session.fit` starts it afresh
    (the attributes come from the embedding, and the learner and detector from them)."""

    bounds: tuple[float, float, float, float] | None = None
    faithfulness: dict | None = None
    attributes: dict[str, np.ndarray] | None = None
    detector_fitted: bool = False
    learner: IntentionLearner | None = None
    misplaced: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # per epoch


class Session:
    """Holds a run and what nbdebug computes from it: the 2-D landscape of every epoch,
    per-sample attributes and anomaly scores, and the samples-of-interest loop
    (recommendations refined by the user's accept / reject answers).

    Answers and relabels are saved in the run directory as they are given (see
    :mod:`nbdebug.interest.feedback` and :mod:`nbdebug.interest.relabels`) and restored when
    the run is opened again. The attributes
    are cached there too (``attributes-<mode>.npz``), and recomputed when the run, the
    embedding or the parameters below change.

    Parameters
    ----------
    run : Run, str or Path
        A run from :func:`nbdebug.load_run`, or the path of a run directory.
    projection : "visualizer", "pca" or a projection object, optional
        What places samples on the canvas: by default the time-travelling
        :class:`~nbdebug.landscape.visualizer.TimeTravelVisualizer` (fitted once, cached in the run
        directory); "pca" is the fast :class:`~nbdebug.landscape.projection.AlignedPCA`. Anything with
        ``fit(run)``, ``embedding_``, ``transform`` and ``inverse_transform`` fits here.
    mode : "default" or "paper"
        "paper" recommends from the paper's four anomaly scores alone, as DeepDebugger
        does; "default" adds the aggregated attributes of :mod:`nbdebug.interest.features` and
        the robust learner of :mod:`nbdebug.interest.intention`.
    epochs : list of int, optional
        The epochs the attributes are computed from; default all recorded ones.
    n_clusters, threshold : int, float
        The anomaly detector's k and ``th_ab`` (30 and 0.98 in the paper).
    seed : int
        Seeds clustering subsets and tie-breaking.
    progress : bool
        Show progress bars while fitting the projection (when it is made from ``projection``
        = None or a name; an object given keeps its own setting) and computing attributes.
    head_module : torch.nn.Module, optional
        For a custom head: an instance of its class (e.g. ``model.head``) to load each epoch's
        weights into. Without, such a run opens without territories (:attr:`has_territories`).
    """

    def __init__(
        self,
        run: Run | str | Path,
        projection=None,
        *,
        mode: str = "default",
        epochs=None,
        n_clusters: int = 30,
        threshold: float = 0.98,
        seed: int = 0,
        progress: bool = True,
        head_module: nn.Module | None = None,
    ):
        if isinstance(run, (str, Path)):
            run = load_run(run)
        if not isinstance(run, Run):
            raise TypeError(
                f"run must be a Run from nbdebug.load_run or a run directory path, got {type(run).__name__}"
            )
        check_choice("mode", mode, MODES)
        self.run = run
        self.projection = make_projection(projection, progress, head_module)
        self.head_module = getattr(self.projection, "head_module", None) if head_module is None else head_module
        self.progress = progress
        self.mode = mode
        self.epochs = select_epochs(run, epochs)
        self._detector = AnomalyDetector(n_clusters, threshold, seed)
        self._sample_attributes = SampleAttributes(run, self.epochs, mode, self._detector, seed)
        self.seed = seed
        # One thread at a time computes derived state (a widget prepares it in the background):
        # the attributes and the learner under one lock, the faithfulness figures, which
        # nothing else needs, under their own.
        self._lock = threading.RLock()
        self._faithfulness_lock = threading.Lock()
        self._fitted = False
        self._derived = _Derived()
        self._log = feedback_log.FeedbackLog(run.path)
        self._relabels = Relabels(run)
        self._intention: dict | None = None  # the current intention's event, once logged
        self._listeners: list = []  # called after every answer or new intention (the widgets)

    def __repr__(self) -> str:
        return f"Session({self.run!r}, projection={type(self.projection).__name__}, fitted={self._fitted})"

    def fit(self) -> Session:
        """Fit the projection over every recorded epoch."""
        with self._lock:
            self.projection.fit(self.run)
            self._fitted = True
            self._derived = _Derived()
        return self

    @property
    def embedding(self) -> np.ndarray:
        """(n_epochs, n_samples, 2) float32 canvas positions; NaN for non-finite samples."""
        if not self._fitted:  # once fitted, read without waiting for work in progress
            with self._lock:
                if not self._fitted:
                    self.fit()
        return self.projection.embedding_

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the canvas: every epoch's points with a margin."""
        if self._derived.bounds is None:
            points = self.embedding.reshape(-1, 2)
            points = points[np.isfinite(points).all(axis=1)]
            if not len(points):
                return (-1.0, 1.0, -1.0, 1.0)
            low, high = points.min(axis=0), points.max(axis=0)
            margin = np.maximum((high - low) * 0.05, 1e-6)
            low, high = low - margin, high + margin
            self._derived.bounds = (float(low[0]), float(high[0]), float(low[1]), float(high[1]))
        return self._derived.bounds

    # -- class territories and faithfulness ---------------------------------------------

    def territories(
        self, epoch: int, resolution: int = 256, bounds: tuple[float, float, float, float] | None = None
    ) -> Territories:
        """The class territories of ``epoch`` over ``bounds`` (x_min, x_max, y_min, y_max;
        default :attr:`bounds`, the whole canvas): the grid decoded to representations and
        classified by that epoch's head. ``.image`` is (H, W, 4) RGBA (row 0 at the top),
        ``.predicted`` and ``.confidence`` the grid's classes and top-1 probabilities (for
        tooltips), ``.gap`` the top-1 / top-2 margin."""
        module = head.check_rebuild(self.run, self.head_module)
        box = self.bounds if bounds is None else bounds  # fits the projection if needed
        return paint_territories(self.projection, self.run, epoch, box, resolution, head_module=module)

    @property
    def has_territories(self) -> bool:
        """Whether the run's head can be rebuilt (from the run, or from ``head_module``) to paint
        class territories and measure PPR."""
        return head.can_rebuild(self.run, self.head_module)

    def background(
        self, epoch: int, resolution: int = 256, bounds: tuple[float, float, float, float] | None = None
    ) -> np.ndarray:
        """(resolution, resolution, 4) uint8 RGBA over ``bounds`` (default :attr:`bounds`):
        the class colour, lighter where the head is less confident, white at decision
        boundaries (DeepDebugger §2.2.1). Any rectangle can be painted, e.g. a zoomed view."""
        return self.territories(epoch, resolution, bounds).image

    @property
    def faithfulness(self) -> dict:
        """How far to trust each frame, per epoch: NPR@15 (``npr_train``, ``npr_test``),
        PPR (``ppr_train``, ``ppr_test``), each estimated on up to 2,000 samples of the split
        with its standard error (``npr_train_se``, ...), and ``displacement``, ``rotation``,
        ``reflection`` (see :func:`nbdebug.landscape.metrics.evaluate`)."""
        return self._faithfulness()

    def misplaced(self, epoch: int) -> dict[str, np.ndarray]:
        """Which dots the canvas misplaces at ``epoch``, per sample: ``territory`` (the
        territory painted under the dot is not the model's prediction; none without
        :attr:`has_territories`) and ``neighbours`` (it kept fewer than 2 of its 15 nearest
        neighbours); see :mod:`nbdebug.landscape.trust`."""
        positions = self.embedding[self.run.epochs.index(check_choice("epoch", epoch, self.run.epochs))]
        with self._faithfulness_lock:
            if epoch not in self._derived.misplaced:
                self._derived.misplaced[epoch] = misplaced(
                    self.run, self.projection, epoch, positions, self.head_module, self.has_territories
                )
            return self._derived.misplaced[epoch]

    def _faithfulness(self, on_epoch: Callable[[], None] | None = None) -> dict:
        _ = self.embedding  # fits the projection if needed
        with self._faithfulness_lock:
            derived = self._derived  # a fit() meanwhile starts a new one
            if derived.faithfulness is None:
                if hasattr(self.projection, "faithfulness"):  # cached in the run directory
                    derived.faithfulness = self.projection.faithfulness(self.run, on_epoch=on_epoch)
                else:
                    module, ppr = self.head_module, self.has_territories
                    derived.faithfulness = evaluate(
                        self.run, self.projection, head_module=module, ppr=ppr, on_epoch=on_epoch
                    )
            return derived.faithfulness

    # -- attributes -------------------------------------------------------------------

    def _chosen_embedding(self) -> np.ndarray:
        """(len(epochs), n_samples, 2): the embedding of the epochs the attributes use."""
        return self.embedding[[self.run.epochs.index(e) for e in self.epochs]]

    def _attributes(self, on_step: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
        """Attribute name -> (n_samples,) float32 scores, from the cache or computed once."""
        with self._lock:
            if self._derived.attributes is None:
                # A caller reporting the steps shows its own progress: one bar, not two.
                attributes, computed = self._sample_attributes.load_or_compute(
                    self._chosen_embedding(), self.progress and on_step is None, on_step
                )
                self._derived.attributes = attributes
                self._derived.detector_fitted = computed
            return self._derived.attributes

    @property
    def attribute_names(self) -> list[str]:
        """Names of the columns of :attr:`anomaly_scores`: the paper's four dynamic features
        (those the run's epochs allow) and, in default mode, the aggregated attributes."""
        return list(self._attributes())

    @property
    def anomaly_scores(self) -> np.ndarray:
        """(n_samples, n_attributes) float32, higher = more unusual; see :attr:`attribute_names`."""
        return np.stack(list(self._attributes().values()), axis=1)

    @property
    def anomalous(self) -> np.ndarray:
        """Boolean per sample: any of the paper's feature scores exceeds ``th_ab`` (§4.2.2)."""
        attributes = self._attributes()
        scores = np.stack([values for name, values in attributes.items() if name in PAPER_ATTRIBUTES], axis=1)
        return self._detector.is_anomalous(scores)

    @property
    def detector(self) -> AnomalyDetector:
        """The paper's anomaly detector, fitted on the training split's dynamic features (§4.2);
        fitted on first use when the attributes came from the cache (a few seconds)."""
        with self._lock:
            self._attributes()
            if not self._derived.detector_fitted:
                self._sample_attributes.fit_detector(self._chosen_embedding())
                self._derived.detector_fitted = True
            return self._detector

    def prepare(
        self,
        recommendations: bool = True,
        faithfulness: bool = True,
        on_progress: Callable[[str, float], None] | None = None,
    ) -> Session:
        """Compute now what is slow: the attributes and the learner behind the recommendations,
        then every frame's faithfulness (each unless False). A widget does this in the
        background; ``on_progress(task, fraction)`` reports the share of each task done
        ("recommendations", "faithfulness"), from 0 when it starts."""

        def counter(task: str, total: int) -> Callable[[], None] | None:
            """The step function of ``task``, which is starting (None without ``on_progress``:
            the computations show their own progress bars)."""
            if on_progress is None:
                return None
            done = [0]
            on_progress(task, 0.0)

            def step() -> None:
                done[0] += 1
                on_progress(task, min(done[0] / max(total, 1), 1.0))

            return step

        if recommendations:
            self._attributes(counter("recommendations", self._sample_attributes.steps()))
            _ = self.learner  # built from the attributes and the saved answers
        if faithfulness:
            self._faithfulness(counter("faithfulness", len(self.run.epochs)))
        return self

    def score_unseen(self, representations, labels=None, probabilities=None) -> np.ndarray:
        """Anomaly scores of samples the session has not seen (a new batch, samples added
        after recording), placed by centroid and radius as in DeepDebugger §4.2.2.

        Their trajectories come from the session's projection (``projection.transform``) and
        their confidence from the recorded head of each epoch, so what is needed is each new
        sample's head input at every epoch of :attr:`epochs`, e.g. computed with the
        checkpoints saved at those epochs.

        Parameters
        ----------
        representations : (n_epochs, m, dim) array, or dict {epoch: (m, dim) array}
            The new samples' representations (the head's input) at each of ``session.epochs``.
        labels : (m,) int array, optional
            Their given labels (-1 for none), used by the confidence feature; default: none,
            the predicted class.
        probabilities : (n_epochs, m, n_classes) array or dict, optional
            Their predicted probabilities per epoch, if already at hand; by default the
            recorded head of each epoch is applied to ``representations`` (its outputs taken
            as logits, as the visualizer does).

        Returns
        -------
        (m, n_features) float32
            One score per paper feature, in the order of the first columns of
            :attr:`attribute_names` (``location``, ``velocity``, ``acceleration``,
            ``confidence``, those the epochs allow). A sample outside every cluster of a
            feature scores ``1 - 1/(n + 1)``; ``session.detector.is_anomalous(scores)``
            applies ``th_ab``.
        """
        _ = self.embedding  # fits the projection if needed
        return score_unseen(
            self.run,
            self.epochs,
            self.projection,
            self._sample_attributes,
            self.detector,
            self.head_module,
            representations,
            labels,
            probabilities,
        )

    # -- samples of interest ----------------------------------------------------------

    @property
    def learner(self) -> IntentionLearner:
        """The intention learner of the current intention (answers restored from the run directory)."""
        with self._lock:
            if self._derived.learner is None:
                names = self.attribute_names
                # Every answer is in the log, so the learner is rebuilt from it (after a kernel
                # restart, or after fit() changed the embedding the attributes come from).
                self._intention, restored, prior = feedback_log.last_intention(self._log.read())
                learner = self._derived.learner = make_learner(
                    self.anomaly_scores,
                    names,
                    mode=self.mode,
                    prior=prior if is_prior(prior, names) else None,
                    labelled=self.run.labels >= 0,
                    seed=self.seed,
                )
                valid = [(i, a) for i, a in restored.items() if 0 <= i < self.run.n_samples]
                none = np.zeros(0, dtype=np.int64)
                # Replayed in answer order, a run of equal answers at a time.
                for accepted, answers in itertools.groupby(valid, key=lambda answer: answer[1]):
                    indices = np.array([i for i, _ in answers], dtype=np.int64)
                    learner.record(indices if accepted else none, none if accepted else indices)
            return self._derived.learner

    def _candidates(self, among) -> np.ndarray | None:
        if among is None:
            return None
        mask = np.zeros(self.run.n_samples, dtype=bool)
        mask[self.run.indices(among) if isinstance(among, str) else self.learner.check_indices(among, "among")] = True
        return mask

    def recommend(self, k: int = 50, among=None) -> np.ndarray:
        """The ``k`` samples most likely of interest that are not yet judged, best first.

        ``among`` restricts the pool: a split name ("train", "test", "unlabeled") or indices.
        """
        with self._lock:
            return self.learner.recommend(k, self._candidates(among))

    def feedback(self, accept=(), reject=()) -> None:
        """Record the user's answers on samples (indices), save them, and refit the learner.

        Answering a sample again replaces its earlier answer; a sample in both lists raises.
        """
        with self._lock:
            learner = self.learner
            accept_idx, reject_idx = learner.check_answers(accept, reject)
            events = []
            if self._intention is None:
                events.append(self._intention_event(1, learner.requested_prior))
            intention = (self._intention or events[0])["intention"]
            time = feedback_log.now()
            prior = learner.prior_for(None)  # what recording the answers fixes, if not fixed yet
            events += [
                {
                    "event": "answer",
                    "intention": intention,
                    "index": int(i),
                    "answer": "accept" if ok else "reject",
                    "prior": prior,
                    "time": time,
                }
                for indices, ok in ((accept_idx, True), (reject_idx, False))
                for i in indices
            ]
            self._log.append(events)
            if self._intention is None:
                self._intention = events[0]
            learner.record(accept_idx, reject_idx)
        self._notify()

    def new_intention(self, prior: str | None = None) -> None:
        """Start a new intention: forget the answers (they stay in the log) and reset the
        coefficients. ``prior`` (default mode) names the attribute ranking the first round;
        by default it is chosen from the pool of the first recommendation."""
        with self._lock:
            learner = self.learner
            learner.check_prior(prior)
            number = (self._intention["intention"] + 1) if self._intention else 1
            event = self._intention_event(number, prior)
            self._log.append([event])  # first: if saving fails, the current intention goes on
            learner.reset(prior)
            self._intention = event
        self._notify()

    def on_feedback(self, callback):
        """Call ``callback()`` after every answer, new intention and relabel, wherever it came from
        (a widget's buttons or Python), so every view of the session stays current.
        Returns a function that stops the calls (a closed widget calls it)."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self) -> None:
        for callback in self._listeners:
            callback()

    def _intention_event(self, number: int, prior: str | None) -> dict:
        return {
            "event": "intention",
            "format": feedback_log.FORMAT,
            "intention": number,
            "mode": self.mode,
            "prior": prior,
            "time": feedback_log.now(),
        }

    @property
    def importance(self) -> dict[str, float]:
        """Attribute name -> learned coefficient of the current intention."""
        return self.learner.importance

    @property
    def answers(self) -> np.ndarray:
        """(n_samples,) int8 answers of the current intention: 1 accepted, 0 rejected, -1 not judged."""
        with self._lock:
            return self.learner.answers.copy()

    # -- data repair ------------------------------------------------------------------

    def relabel(self, relabels: dict) -> None:
        """Say which label samples should have: ``{index: class index or name}`` (None takes a
        relabel back). Saved in the run directory at once (``relabels.jsonl``), restored when
        the run is opened again, and shown in every widget of the session."""
        self._relabels.set(relabels)
        self._notify()

    @property
    def relabels(self) -> dict[int, int]:
        """Sample index -> the class index the user says it should have."""
        return self._relabels.labels

    def corrected_labels(self) -> np.ndarray:
        """(n_samples,) int64: the given labels with :attr:`relabels` applied (-1: unlabeled),
        e.g. to retrain on: ``labels[run.indices("train")]``."""
        return self._relabels.corrected()

    def table(self, indices=None, epoch: int | None = None):
        """A pandas DataFrame of the samples ``indices`` (default all), see
        :func:`nbdebug.table.sample_table`: index, split, label, predicted, confidence,
        answer, relabel and every attribute."""
        return sample_table(self, indices, epoch)
