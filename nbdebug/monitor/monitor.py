"""Live training monitor: watch a PyTorch training loop and explain what goes wrong.

``Monitor`` attaches to an unchanged model through hooks, lints the setup before the first
step, then checks every step cheaply (the loss) and every ``cadence`` steps more deeply
(per-layer gradient norms, layer outputs, inputs, batch accuracy), following AutoTrainer's
eight problems and SCRAM's three heuristics (see :mod:`nbdebug.monitor.rules`). AutoTrainer
reports most problems only while the best training accuracy is at most theta; once it is
above, the monitor stops hooking layers and reading gradients and keeps only the loss, input
and epoch-level checks. Warnings are merged per code, shown live in a notebook widget, and
logged to the ``nbdebug`` logger otherwise.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from .. import distributed
from .._validation import check_choice, check_int, check_scalar
from ..record import Recorder
from . import diagnosis, journal, rules
from .causes import CAUSE_TEXT, fix_for
from .geometry import RepresentationWatch
from .hooks import CaptureStats, LayerHooks, batch_correct, input_magnitudes, input_rms
from .lint import leaf_modules, loss_name, static_checks
from .messages import DETAILS, ERROR, MESSAGES
from .rules import Finding
from .thresholds import validate_thresholds
from .warning import TrainingWarning

if TYPE_CHECKING:
    from .widget import MonitorWidget

logger = logging.getLogger("nbdebug")

# What a listener is told (see Monitor.on_change).
Change = Literal["step", "epoch_end", "warning", "detach"]


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where a displayed widget shows the warnings)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell"


class Monitor:
    """Watch a training loop and report problems as :class:`~nbdebug.monitor.warning.TrainingWarning`.

    Parameters
    ----------
    model : the ``nn.Module`` being trained; it is not modified, only hooked.
    optimizer : its optimizer (optional, enables the learning-rate and parameter checks and
        reads gradients just before each optimizer step, whatever the loop order).
    loss_fn : the loss (an ``nn.Module`` such as ``nn.CrossEntropyLoss()`` or a function such
        as ``F.cross_entropy``); optional, enables the output-activation and loss checks.
    cadence : tensor statistics are computed every ``cadence`` steps (AutoTrainer's default 3);
        the loss is checked on every step.
    thresholds : overrides of :data:`nbdebug.monitor.thresholds.DEFAULT_THRESHOLDS`, e.g. ``{"theta": 0.9}``.
    task : "multiclass", "binary", "multilabel" or "regression"; inferred from targets and
        outputs when None.
    recorder : the :class:`~nbdebug.Recorder` recording this training, optional. Linked, the
        monitor also checks each captured epoch's representations (classes collapsing together,
        the model memorizing samples whose labels their neighbours contradict: see
        :mod:`nbdebug.monitor.geometry`), saves its warnings in the run directory for the
        landscape's timeline (:mod:`nbdebug.monitor.journal`), and takes the size of the run's
        test split as the validation set's when ``epoch_end`` is not given ``val_n``.

    Each warning names the most likely of its problem's known causes (``warning.cause``,
    :mod:`nbdebug.monitor.diagnosis`) and gives that cause's fix for this kind of model.

    Call ``step(loss=..., inputs=..., targets=..., outputs=...)`` once per batch and
    ``epoch_end(train_loss=..., train_acc=..., val_loss=..., val_acc=...)`` once per epoch.
    Use it as a context manager (or call ``detach()``) to remove its hooks.

    Under ``torch.distributed`` create it on every rank and call ``step`` and ``epoch_end``
    on every rank with the same arguments given (None on one rank is None on all): the
    losses and the epoch's figures are averaged across the ranks (a NaN loss on any rank is
    a NaN loss), gradients are the ones DDP already averaged, and only rank 0 reports warnings.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        loss_fn: Any = None,
        *,
        cadence: int = 3,
        thresholds: dict | None = None,
        task: str | None = None,
        recorder: Recorder | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(
                f"loss_fn must be a loss module or function (e.g. nn.CrossEntropyLoss()), got {type(loss_fn).__name__}"
            )
        check_int("cadence", cadence, low=1, hint="the number of steps between tensor checks")
        check_choice("task", task, [*sorted(rules.LOSS_SETS), None], hint="None infers it from targets and outputs")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.cadence = cadence
        self.thresholds = validate_thresholds(thresholds)
        self.task = task
        self.loss_name = loss_name(loss_fn)
        self.step_count = 0
        self.epoch = 0
        self.step_losses: list[float] = []
        self.epochs: list[dict[str, Any]] = []
        self._warnings: dict[str, TrainingWarning] = {}
        leaves = leaf_modules(model)
        self._last_module = leaves[-1][1] if isinstance(model, nn.Sequential) and leaves else None
        self._batch_acc_needed = True
        self._best_epoch_acc: float | None = None
        self._activation: str | None = None
        self._streak: dict[str, int] = {}  # consecutive observations per code
        self._epoch_correct = 0.0
        self._epoch_seen = 0
        self._detached = False
        self._widget: MonitorWidget | None = None
        self._listeners: list[Callable[[Change], None]] = []
        self._in_notebook = _in_notebook()
        self._unshown: list[TrainingWarning] = []
        self._hooks = LayerHooks(model, optimizer)
        self._arch = diagnosis.describe(model, optimizer)
        self._seen = diagnosis.Seen()
        self._first_judged: dict[str, int] = {}  # step of each rule's first observation
        self._streak_start: dict[str, int] = {}
        self._epoch_samples = 0
        self._recorder: Recorder | None = None
        self._last_capture: int | None = None
        self._watch: RepresentationWatch | None = None
        self._unlink: Callable[[], None] | None = None
        self._run_val_n: int | None = None
        if recorder is not None:
            self._link(recorder)  # first: the static warnings are saved too
        for finding in static_checks(model, optimizer, loss_fn, self.thresholds):
            self._report(finding)
        self._arm()

    # ------------------------------------------------------------ public API

    @property
    def warnings(self) -> list[TrainingWarning]:
        """Warnings found so far, one per code, in the order first seen."""
        return list(self._warnings.values())

    def step(
        self,
        loss: Any = None,
        inputs: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        outputs: torch.Tensor | None = None,
    ) -> None:
        """Record one training batch: call after ``loss.backward()`` (before or after
        ``optimizer.step()``). All arguments are optional; more arguments enable more checks."""
        if self._detached:
            raise RuntimeError("this Monitor is detached; create a new Monitor to keep watching")
        for name, value in (("inputs", inputs), ("targets", targets), ("outputs", outputs)):
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(f"step({name}=...) must be a torch.Tensor or None, got {type(value).__name__}")
        self.step_count += 1
        if self._unshown:
            self._flush_unshown()
        batch = targets if targets is not None else inputs
        if batch is not None and batch.dim():
            self._seen.batch_size = n = batch.shape[0]
            self._epoch_samples += n
        if loss is not None:
            loss_value = distributed.mean_across_ranks(check_scalar("loss", loss))
            self.step_losses.append(loss_value)
            if not math.isfinite(loss_value) and inputs is not None and inputs.is_floating_point():
                self._seen.nonfinite_input |= not bool(torch.isfinite(inputs).all())  # why: data?
            self._report(rules.nonfinite_loss(loss_value))
        if self._hooks.armed:
            self._capture(inputs, targets, outputs)
            self._hooks.disarm()
        elif (self.step_count - 1) % self.cadence == 0 and inputs is not None:
            rms = input_rms(inputs)  # the capture step once the gated checks are over: inputs only
            if rms is not None:
                self._input_checks(rms, inputs, self._best_acc())
        if self.step_count % self.cadence == 0 and self._gated_checks_live():
            self._arm()
        self._notify("step")

    def epoch_end(
        self,
        train_loss: Any = None,
        train_acc: Any = None,
        val_loss: Any = None,
        val_acc: Any = None,
        *,
        train_n: int | None = None,
        val_n: int | None = None,
    ) -> None:
        """Record one finished epoch. Accuracies are fractions in [0, 1]; without
        ``train_acc`` the monitor uses the accuracy of the batches it sampled.

        ``train_n`` and ``val_n`` are the numbers of samples the accuracies were measured on
        (on all ranks together); a fall or swing of accuracy is reported only when it exceeds
        what that many samples can wobble by. Without them ``train_n`` is the number of samples
        the steps saw (on this rank) and ``val_n`` the size of the linked recorder's test split;
        without either only the fixed margins of the thresholds apply."""
        if self._detached:
            raise RuntimeError("this Monitor is detached; create a new Monitor to keep watching")
        if self._unshown:
            self._flush_unshown()
        values: dict[str, float | None] = {}
        for name, value in (
            ("train_loss", train_loss),
            ("train_acc", train_acc),
            ("val_loss", val_loss),
            ("val_acc", val_acc),
        ):
            number = None if value is None else distributed.mean_across_ranks(check_scalar(name, value))
            if name.endswith("acc") and number is not None and not 0 <= number <= 1:
                raise ValueError(
                    f"epoch_end({name}=...) must be a fraction in [0, 1], got {number!r}; "
                    "pass correct / total, not a percentage"
                )
            values[name] = number
        for name, n in (("train_n", train_n), ("val_n", val_n)):
            if n is not None:
                check_int(name, n, low=1, hint="the number of samples the accuracy was measured on")
        if values["train_acc"] is None and self._epoch_seen:
            values["train_acc"] = self._epoch_correct / self._epoch_seen
        sizes = {"train_n": train_n or self._epoch_samples or None, "val_n": val_n or self._run_val_n}
        self._epoch_correct, self._epoch_seen, self._epoch_samples = 0.0, 0, 0
        if train_acc is not None:
            self._batch_acc_needed = False  # the loop reports accuracy itself
        self.epoch += 1
        self.epochs.append({"epoch": self.epoch, "step": self.step_count, **values, **sizes})
        if values["train_acc"] is not None:
            self._best_epoch_acc = max(values["train_acc"], self._best_epoch_acc or 0.0)
        if values["train_loss"] is not None:
            self._report(rules.nonfinite_loss(values["train_loss"]))
        self._epoch_checks()
        self._notify("epoch_end")

    def detach(self) -> None:
        """Remove every hook; the model and optimizer are left exactly as they were."""
        if not self._detached:
            self._notify("detach")  # e.g. the widget shows the last steps its throttle held back
        self._hooks.remove()
        if self._unlink is not None:
            self._unlink()
            self._unlink = None
        self._detached = True

    def on_change(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``callback(change)`` whenever the monitor changes: ``"step"`` after every step,
        ``"epoch_end"`` after every epoch, ``"warning"`` for a new warning or one escalated to
        an error, ``"detach"`` once when it is detached. Returns a function that stops the calls
        (a closed widget calls it)."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    @property
    def widget(self) -> MonitorWidget:
        """The live notebook widget (created on first use; needs ipywidgets and plotly)."""
        if self._widget is None:
            from .widget import MonitorWidget  # here: plotly stays out of `import nbdebug`

            self._widget = MonitorWidget(self)
        return self._widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        codes = ", ".join(w.code for w in self._warnings.values()) or "none"
        return f"Monitor({type(self.model).__name__}, steps={self.step_count}, epochs={self.epoch}, warnings: {codes})"

    def _notify(self, change: Change) -> None:
        for callback in list(self._listeners):
            callback(change)

    # ------------------------------------------------------------ capture steps

    def _arm(self) -> None:
        if not self._detached:
            self._hooks.arm()

    def _gated_checks_live(self) -> bool:
        """Whether the accuracy-gated checks (VG, EG, DR, AD, IO, IL) can still fire.

        AutoTrainer reports them only while max(Acc) <= theta; max(Acc) never decreases, so
        once it passes theta their statistics (layer hooks, gradient norms) are not needed.
        """
        return rules.accuracy_is_low(self._best_acc(), self.thresholds)

    def _capture(self, inputs: torch.Tensor | None, targets: torch.Tensor | None, outputs: torch.Tensor | None) -> None:
        """The statistics of one capture step, the batch accuracy, then the rules that use them."""
        if targets is not None and outputs is not None and targets.shape[0] and outputs.shape[0] == targets.shape[0]:
            if self.task is None:
                self.task = rules.infer_task(targets, outputs)
            if self._activation is None:
                self._activation = rules.infer_output_activation(outputs, self._last_module)
        else:
            targets = None
        stats = self._hooks.capture(inputs)
        if stats is None:
            return
        if targets is not None and outputs is not None and self._batch_acc_needed:
            correct = batch_correct(self.task, self._activation, targets, outputs)
            if correct is not None:
                self._epoch_correct += correct.item() / targets.shape[0]
                self._epoch_seen += 1
        best = self._best_acc()
        if stats.grad_norms is not None:
            self._gradient_checks(stats, stats.grad_norms, best)
        if inputs is not None and stats.input_rms is not None:
            self._input_checks(stats.input_rms, inputs, best)
        self._output_checks(stats, best)

    def _observed(self, code: str, present: bool, alpha: float | None = None) -> bool:
        """Count consecutive observations; True once more than ``alpha`` in a row."""
        self._first_judged.setdefault(code, self.step_count)
        streak = self._streak.get(code, 0) + 1 if present else 0
        if streak == 1:
            self._streak_start[code] = self.step_count
        self._streak[code] = streak
        return streak > (self.thresholds["alpha"] if alpha is None else alpha)

    def _gradient_checks(self, stats: CaptureStats, norms: list[float], best: float | None) -> None:
        t, names = self.thresholds, self._hooks.layer_names
        nonfinite = rules.nonfinite_gradient(names, norms, self.step_count, best)
        if nonfinite is not None:  # reported at once, and the other gradient rules do not count it
            self._report(nonfinite)
            return
        vanishing = rules.vanishing_gradient(names, norms, best, t)
        exploding = rules.exploding_gradient(names, norms, self.step_count, best, t)
        report_vanishing = self._observed("vanishing_gradient", vanishing is not None)
        report_exploding = self._observed("exploding_gradient", exploding is not None)
        if report_vanishing:
            self._report(vanishing)
        if report_exploding:
            self._report(exploding)
        if not stats.has_hidden_layers or not rules.accuracy_is_low(best, t) or stats.zero_scale:
            return  # a zero-initialised branch passes no gradient until its scale moves: not dead
        dying = rules.dying_relu(stats.per_neuron_grads(), self._hooks.hidden_widths, best, t)
        if self._observed("dying_relu", dying is not None):
            self._report(dying)

    def _input_checks(self, rms: float, inputs: torch.Tensor, best: float | None) -> None:
        nonfinite = rules.nonfinite_input(rms, self.step_count, best)
        self._seen.input_rms = rms
        if nonfinite is not None:
            self._seen.nonfinite_input = True
            self._report(nonfinite)
            return
        unnormalized = rules.unnormalized_input(rms, self.thresholds)
        # two captures running (see rules.unnormalized_input), whatever the alpha of the paper's rules
        if self._observed("unnormalized_input", unnormalized is not None, 1) and unnormalized is not None:
            self._report(Finding(unnormalized.code, {**unnormalized.evidence, **input_magnitudes(inputs)}))

    def _output_checks(self, stats: CaptureStats, best: float | None) -> None:
        args = (stats.output_names, stats.output_rms, self.step_count, best, self.thresholds)
        nonfinite = rules.nonfinite_layer_output(*args)
        if nonfinite is not None:  # reported at once, without counting
            self._report(nonfinite)
            return
        large = rules.large_layer_output(*args)
        if self._observed("abnormal_data", large is not None):
            self._report(large)

    # ------------------------------------------------------------ epoch checks

    def _best_acc(self) -> float | None:
        """max(Acc) of AutoTrainer: best epoch accuracy so far, including the running epoch."""
        best = self._best_epoch_acc
        if self._epoch_seen:
            current = self._epoch_correct / self._epoch_seen
            best = current if best is None else max(best, current)
        return best

    def _epoch_checks(self) -> None:
        t = self.thresholds
        accs = [e["train_acc"] for e in self.epochs if e["train_acc"] is not None]
        last = self.epochs[-1]
        self._report(rules.oscillating_accuracy(accs, t, last["train_n"]))
        self._report(rules.slow_convergence(accs, t))
        both = [e for e in self.epochs if e["val_acc"] is not None and e["train_acc"] is not None]
        train, val = [e["train_acc"] for e in both], [e["val_acc"] for e in both]
        self._report(rules.overfitting(train, val, t, last["val_n"]))
        if self.task and self.loss_name and self._activation:
            best = max(accs) if accs else None
            self._report(rules.improper_output_activation(self.task, self.loss_name, self._activation, best, t))
            self._report(rules.improper_loss(self.task, self.loss_name, best, t))

    # ------------------------------------------------------------ a linked recorder

    def _link(self, recorder: Recorder) -> None:
        if not isinstance(recorder, Recorder):
            raise TypeError(
                f"recorder must be the nbdebug.Recorder recording this training, or None; got {type(recorder).__name__}"
            )
        self._recorder = recorder
        captured = recorder.epochs
        self._last_capture = captured[-1] if captured else None
        if distributed.is_writer():  # rank 0 reads the recorded epochs
            self._watch = RepresentationWatch(recorder.path, self.thresholds)
            self._run_val_n = recorder.split_sizes.get("test")
            self._unlink = recorder.on_capture(self._captured)

    def _captured(self, epoch: int) -> None:
        """The checks of a freshly captured epoch's representations (their warnings belong to
        this epoch: saved as after the capture before it)."""
        for finding in self._watch.check(epoch) if self._watch is not None else []:
            self._seen.noisy_labels |= finding.code == "memorizing_noisy_labels"
            self._report(finding)
        self._last_capture = epoch

    # ------------------------------------------------------------ reporting

    def _report(self, finding: Finding | None) -> None:
        """Add a warning for ``finding``, or merge a repeated detection into the existing one.
        None (nothing found) reports nothing."""
        if finding is None:
            return
        code, evidence = finding.code, finding.evidence
        message = MESSAGES[code]
        severity = finding.severity or message.severity
        fields = {"step": self.step_count, "epoch": self.epoch, **evidence}
        existing = self._warnings.get(code)
        if existing is not None:
            existing.count += 1
            existing.last_step, existing.last_epoch = self.step_count, self.epoch
            if severity == ERROR and existing.severity != ERROR:
                existing.severity = ERROR
                self._emit(existing)
            return
        self._seen.from_start = self._streak_start.get(code) == self._first_judged.get(code, -1)
        cause = diagnosis.diagnose(code, evidence, self._arch, self._seen, self.thresholds["input_scale"])
        said = CAUSE_TEXT.get(code, {}).get(cause)
        warning = TrainingWarning(
            code=code,
            severity=severity,
            title=message.title,
            explanation=message.explanation.format(**fields) + (DETAILS["cause"].format(text=said) if said else ""),
            fix=(fix_for(code, cause, self._arch.family) or message.fix).format(**fields),
            cause=cause,
            epoch=self.epoch,
            step=self.step_count,
            evidence=evidence,
            last_epoch=self.epoch,
            last_step=self.step_count,
        )
        self._warnings[code] = warning
        self._emit(warning)

    def _emit(self, warning: TrainingWarning) -> None:
        if not distributed.is_writer():
            return  # under torch.distributed rank 0 reports, every rank keeps the warnings
        if self._recorder is not None:
            journal.append_warning(self._recorder.path, warning, self._last_capture)
        self._notify("warning")
        if self._widget is not None:
            logger.debug("%s", warning)  # the widget shows it
        elif self._in_notebook and self.step_count == 0 and self.epoch == 0:
            # Static warnings in a notebook: the widget, usually displayed right after the
            # constructor, will show them; log them at the first step only if it was not.
            self._unshown.append(warning)
        else:
            self._log(warning)

    def _flush_unshown(self) -> None:
        if self._unshown:
            if self._widget is None:
                for warning in self._unshown:
                    self._log(warning)
            self._unshown.clear()

    @staticmethod
    def _log(warning: TrainingWarning) -> None:
        logger.log(logging.ERROR if warning.severity == ERROR else logging.WARNING, "%s", warning)
