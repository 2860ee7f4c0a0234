"""A ready training loop for classifiers: ``nbdebug.fit`` trains with sensible defaults, watches
the training with the :class:`~nbdebug.Monitor`, optionally records it with the
:class:`~nbdebug.Recorder`, and with ``repair=True`` repairs what the monitor finds with
AutoTrainer's solution scheduler (:mod:`nbdebug.repair`), logging exactly what it changed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._validation import check_choice, check_int, check_number
from .loop import Display, Trainer, make_context
from .monitor.thresholds import validate_thresholds
from .monitor.warning import TrainingWarning
from .repair.data import Data
from .repair.log import RepairEntry, format_log
from .repair.scheduler import Scheduler, resolve_order
from .repair.setup import LOSSES, OPTIMIZERS, Setup, output_activation
from .repair.surgery import Standardized, trace
from .run import Run, load_run


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``model``: the trained model (a copy; with ``repair=True``, the repaired one, or the best
    seen when repair failed). ``history``: one dict per epoch with ``epoch``, ``train_loss``,
    ``train_acc``, ``val_loss``, ``val_acc``. ``warnings``: the monitor's warnings of that
    training. ``repairs``: the repair log (:class:`~nbdebug.repair.log.RepairEntry`).
    ``run``: the recorded run, when ``record`` was given. ``trainings``: how many trainings
    ran (1 without repairs).
    """

    model: nn.Module
    history: list[dict[str, Any]]
    warnings: list[TrainingWarning]
    repairs: list[RepairEntry] = field(default_factory=list)
    run: Run | None = None
    trainings: int = 1

    def show(self) -> Any:
        """The landscape of the recorded run, the monitor's warnings marked on its timeline
        (read from the run's ``warnings.jsonl``)."""
        if self.run is None:
            raise ValueError("show() needs a recorded run; pass record='runs/name' to nbdebug.fit")
        from .display import show

        return show(self.run)

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else {}
        acc = last.get("val_acc") if last.get("val_acc") is not None else last.get("train_acc")
        shown = "?" if acc is None else f"{acc:.1%}"
        return (
            f"FitResult({type(self.model).__name__}, epochs={len(self.history)}, acc={shown}, "
            f"warnings={[w.code for w in self.warnings]}, repairs={len(self.repairs)}, trainings={self.trainings})"
        )

    def repair_log(self) -> str:
        """The repair log as text."""
        return format_log(self.repairs)


def _infer(model: nn.Module, train: Data, device: torch.device) -> tuple[torch.Tensor, str, str, int]:
    """The model's outputs on a few training inputs, its output activation, the task and the
    number of classes; errors name the argument at fault."""
    x = train.first_inputs().to(device)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as err:
        raise RuntimeError(
            f"model failed on a batch of train inputs of shape {tuple(x.shape)} ({type(err).__name__}: {err}); "
            "check that train holds the inputs the model expects"
        ) from err
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or out.dim() not in (1, 2) or out.shape[0] != len(x):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return one row of class scores per sample, (batch, n_classes), got {shape}")
    labels = train.all_labels()
    top = int(labels.max())
    units = 1 if out.dim() == 1 else out.shape[1]
    if units == 1 and top > 1:
        raise ValueError(
            f"train labels go up to {top} but the model has one output unit (a binary classifier); "
            "give its last layer one output per class"
        )
    if units > 1 and top >= units:
        raise ValueError(f"train labels go up to {top} but the model outputs {units} class scores")
    calls = trace(model, x)
    last = calls[-1].module if calls else None
    activation = output_activation(out, last)
    return out, activation, "multiclass" if units > 1 else "binary", max(units, 2)


def _loss(loss: Any, task: str, activation: str) -> nn.Module:
    if loss is None:
        if task == "binary":
            return nn.BCELoss() if activation == "sigmoid" else nn.BCEWithLogitsLoss()
        # a softmax output still gets CrossEntropyLoss: the monitor says why it is a mistake
        return nn.NLLLoss() if activation == "log_softmax" else nn.CrossEntropyLoss()
    if isinstance(loss, str):
        by_class = {cls.__name__: cls for cls in LOSSES.values()}
        cls = LOSSES.get(loss) or by_class.get(loss)
        if cls is None:
            raise ValueError(f"loss must be one of {sorted(LOSSES)} or a loss module, got {loss!r}")
        return cls()
    if isinstance(loss, nn.Module):
        return loss
    raise TypeError(
        f"loss must be a name such as 'cross_entropy', an nn.Module loss or None, got {type(loss).__name__}"
    )


def _record_options(record: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    if isinstance(record, (str, Path)):
        return {"path": record}
    if isinstance(record, dict) and "path" in record:
        return dict(record)
    raise TypeError("record must be a run directory path ('runs/x') or a dict of Recorder arguments with a 'path'")


def fit(
    model: nn.Module,
    train: Any,
    val: Any = None,
    *,
    epochs: int = 20,
    optimizer: str | Callable[[Any], torch.optim.Optimizer] = "adam",
    lr: float | None = None,
    batch_size: int = 64,
    loss: Any = None,
    record: Any = None,
    monitor: bool = True,
    repair: bool | dict[str, Any] = False,
    max_repairs: int = 8,
    time_limit: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    thresholds: dict[str, float] | None = None,
) -> FitResult:
    """Train a classifier with sensible defaults, watched by the monitor; optionally repair what
    the monitor finds. The model passed in is never modified: training works on a deep copy.

    Parameters
    ----------
    model : the ``nn.Module``; it returns (batch, n_classes) scores, or one score per sample
        for a binary classifier.
    train, val : ``(X, y)`` tensors or arrays, a map-style ``Dataset`` of ``(input, label)``
        pairs, or a ``DataLoader`` (which keeps its own batch size). Labels are class indices.
    optimizer : ``"adam"``, ``"adamw"``, ``"sgd"`` (momentum 0.9), or ``params -> Optimizer``.
    lr : the learning rate; default 1e-3 for Adam(W), 1e-2 for SGD, the callable's own rate.
    loss : a name (``"cross_entropy"``, ``"nll"``, ``"bce"``, ``"bce_with_logits"``, ``"mse"``,
        ``"l1"``, ``"smooth_l1"``) or a loss module; None infers it from the model's output
        (CrossEntropyLoss for scores, NLLLoss after a log-softmax, BCEWithLogitsLoss for one
        score, BCELoss after a sigmoid).
    record : a run directory (``"runs/x"``) or a dict of :class:`~nbdebug.Recorder` arguments
        with ``path``; the head and output kind are inferred, train/val are the splits. With
        repairs, the run holds the last training (each retraining replaces it; one resumed
        from a checkpoint holds the epochs after it), which need not be the one returned.
    monitor : watch the training with :class:`~nbdebug.Monitor` (its widget in a notebook).
    repair : True to repair what the monitor finds (AutoTrainer's scheduler, see
        :mod:`nbdebug.repair`), or a dict ``{"order": {code: ["S6", "S3"], ...}}`` overriding
        the order of solutions per problem. The log is ``FitResult.repairs``.
    max_repairs : retrainings the whole repair search may use.
    time_limit : seconds for the whole call, repairs included; training stops when it is over.
    seed : seeds the shuffling and the training (the weights come from the model given).
    device : where to train; default the device of the model's parameters.
    thresholds : the monitor's thresholds (:data:`nbdebug.monitor.thresholds.DEFAULT_THRESHOLDS`);
        with repairs, ``zeta`` also says when a solved training has settled (see
        :mod:`nbdebug.repair.scheduler`).
    """
    started = time.monotonic()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
    check_int("max_repairs", max_repairs, 0)
    check_int("seed", seed, 0)
    if isinstance(optimizer, str):
        check_choice("optimizer", optimizer, sorted(OPTIMIZERS), hint="or pass a callable params -> Optimizer")
    elif not callable(optimizer):
        raise TypeError(f"optimizer must be a name or a callable params -> Optimizer, got {type(optimizer).__name__}")
    if lr is not None:
        check_number("lr", lr, 0, low_open=True)
    if time_limit is not None:
        check_number("time_limit", time_limit, 0, low_open=True, hint="seconds, or None for no limit")
    if not isinstance(repair, (bool, dict)):
        raise TypeError(f"repair must be True, False or a dict like {{'order': ...}}, got {type(repair).__name__}")
    if isinstance(repair, dict) and set(repair) - {"order"}:
        raise ValueError(f"repair has unknown keys {sorted(set(repair) - {'order'})}; the known key is 'order'")
    if repair and not monitor:
        raise ValueError("repair=True needs monitor=True: repairs start from what the monitor finds")
    order = resolve_order(repair.get("order") if isinstance(repair, dict) else None)
    record_options = _record_options(record)
    threshold_values = validate_thresholds(thresholds)
    if device is None:
        parameter = next(iter(model.parameters()), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    device = torch.device(device)
    train_data = Data.of("train", train)
    if train_data.loader is not None and train_data.loader.batch_size is not None:
        batch_size = train_data.loader.batch_size  # a DataLoader keeps its own
    val_data = Data.of("val", val) if val is not None else None

    work = copy.deepcopy(model).to(device)
    _, activation, task, n_classes = _infer(work, train_data, device)
    loss_module = _loss(loss, task, activation)
    if lr is None:  # the optimizer's default, or the callable's own rate
        lr = (
            OPTIMIZERS[optimizer][1]
            if isinstance(optimizer, str)
            else optimizer(work.parameters()).param_groups[0]["lr"]
        )
    setup = Setup(work, optimizer, float(lr), batch_size, loss_module, task)
    display = Display(monitor)
    trainer = Trainer(
        train_data,
        val_data,
        epochs,
        seed,
        device,
        monitor=monitor,
        stop_on_problem=bool(repair),
        thresholds=threshold_values,
        record=record_options,
        deadline=None if time_limit is None else started + time_limit,
        display=display,
    )
    first = trainer(setup, None)
    final, entries = first, []
    if repair and first.problem is not None:
        scheduler = Scheduler(
            order,
            max_repairs,
            trainer.deadline,
            trainer,
            make_context(trainer, threshold_values),
            trainer.eval_data.all_labels().numpy(),
            n_classes,
            "val" if val_data is not None else "train",
            on_entry=display.log,
            zeta=threshold_values["zeta"],
        )
        final = scheduler.run(first)
        entries = scheduler.entries
    std = final.setup.standardize
    trained = Standardized(final.model, std.mean, std.std) if std is not None else final.model
    run = load_run(record_options["path"]) if record_options is not None else None
    return FitResult(trained, final.history, final.warnings, entries, run, trainer.count)
