"""nbdebug for the Hugging Face ``Trainer``: record every epoch, and monitor every step.

::

    from nbdebug.integrations.huggingface import MonitorCallback, RecordCallback

    trainer = transformers.Trainer(model=model, args=args, train_dataset=train, eval_dataset=test,
                                   callbacks=[RecordCallback("runs/bert", head="classifier", test=test),
                                              MonitorCallback()])
    trainer.train()

``RecordCallback`` creates a :class:`nbdebug.Recorder` on the Trainer's model when training
begins (``train`` defaults to the Trainer's training dataset) and captures at the end of every
epoch, with the metrics logged during it; when the Trainer evaluates every epoch
(``eval_strategy="epoch"``) it captures right after that evaluation, so its ``eval_*``
metrics are stored with the epoch. Items of a Dataset are mappings of equal-length tensors with
a ``"labels"`` or ``"label"`` key (see :mod:`nbdebug.inputs`).

``MonitorCallback`` steps a :class:`nbdebug.Monitor` at each optimizer step (``on_step_end``).
The Trainer clears the gradients before that; the monitor keeps this step's from just before
the optimizer's step. The loss of a step is the ``loss`` the model returned for its batches (the
Trainer's own loss when the batches carry labels), the outputs checked are their ``logits``,
the targets their ``labels``; at each epoch end it gets the mean step loss and the evaluation's
``eval_loss`` and ``eval_accuracy`` (if ``compute_metrics`` gives an ``accuracy``).

Needs transformers: ``pip install 'nbdebug[huggingface]'``.
"""

from __future__ import annotations

from typing import Any

try:
    from transformers import TrainerCallback
except ImportError:
    from ._common import missing

    raise missing("transformers", "huggingface", "transformers") from None

import torch

from ..monitor import Monitor
from ..record import Recorder
from ._common import dataset_of, resolve_head, samples_in, scalars


def _evaluates_every_epoch(args: Any) -> bool:
    strategy = getattr(args, "eval_strategy", None) or getattr(args, "evaluation_strategy", None)
    return str(getattr(strategy, "value", strategy)) == "epoch"


class RecordCallback(TrainerCallback):
    """Record the Trainer's model with :class:`nbdebug.Recorder`, one capture per epoch.

    ``path`` and ``head`` (the head module or its dotted name in the model, e.g.
    ``"classifier"``, ``"classifier.out_proj"`` for RoBERTa) as for the Recorder; ``train``
    defaults to the Trainer's training dataset; other keyword arguments (``test``,
    ``unlabeled``, ``classes``, ``forward``, ...) go to the Recorder, created on the model when
    training begins (``callback.recorder``). Epochs are numbered from 0.
    """

    def __init__(self, path: Any, head: Any, train: Any = None, **recorder: Any):
        self.path, self.head, self.train = path, head, train
        self.options = recorder
        self.recorder: Recorder | None = None
        self._pending: int | None = None  # an epoch waiting for its evaluation
        self._logged: dict[str, float] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.recorder is not None:
            return
        train = self.train if self.train is not None else dataset_of(kwargs.get("train_dataloader"))
        if train is None:
            raise ValueError("RecordCallback found no training dataset; pass train= (a Dataset or (inputs, labels))")
        self.recorder = Recorder(
            model, head=resolve_head(model, self.head), path=self.path, train=train, **self.options
        )

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        self._logged.update(scalars(logs))

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._pending = round(state.epoch) - 1
        if not _evaluates_every_epoch(args):
            self._capture()

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        self._logged.update(scalars(metrics))
        self._capture()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._capture()  # an epoch whose evaluation never came

    def _capture(self) -> None:
        if self.recorder is None or self._pending is None:
            return
        epoch, self._pending = self._pending, None
        self.recorder.capture(epoch, metrics=self._logged)
        self._logged = {}


class MonitorCallback(TrainerCallback):
    """Watch the Trainer's training with :class:`nbdebug.Monitor`, stepped at every optimizer step.

    ``loss_fn``, ``cadence``, ``thresholds`` and ``task`` as for the Monitor; ``loss_fn``
    defaults to ``nn.CrossEntropyLoss()``, the loss a model computes whose config has
    ``num_labels`` > 1. Each epoch it gets the evaluation's ``eval_loss`` and
    ``eval_accuracy`` and the evaluation set's size (so that a fall must beat its sampling
    noise). The Monitor is ``callback.monitor`` once training began.
    """

    def __init__(
        self, loss_fn: Any = None, *, cadence: int = 3, thresholds: dict | None = None, task: str | None = None
    ):
        self.options = {"loss_fn": loss_fn, "cadence": cadence, "thresholds": thresholds, "task": task}
        self.monitor: Monitor | None = None
        self._hook: Any = None
        self._batches: list[tuple[float | None, Any, Any]] = []  # (loss, logits, labels) since the last step
        self._epoch_losses: list[float] = []
        self._epoch_ended = False

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        optimizer = kwargs.get("optimizer")
        optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
        if not isinstance(optimizer, torch.optim.Optimizer):
            optimizer = None
        options = dict(self.options)
        if options["loss_fn"] is None and getattr(getattr(model, "config", None), "num_labels", 0) > 1:
            options["loss_fn"] = torch.nn.CrossEntropyLoss()
        self.monitor = Monitor(model, optimizer=optimizer, **options)
        self._hook = model.register_forward_hook(self._read_batch, with_kwargs=True)

    def _read_batch(self, module: Any, args: Any, kwargs: Any, output: Any) -> None:
        if not (module.training and torch.is_grad_enabled()):
            return  # evaluation
        loss, logits = getattr(output, "loss", None), getattr(output, "logits", None)
        self._batches.append(
            (
                float(loss.detach()) if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None,
                logits if isinstance(logits, torch.Tensor) else None,
                kwargs.get("labels"),
            )
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.monitor is None:
            return
        losses = [loss for loss, _, _ in self._batches if loss is not None]
        loss = sum(losses) / len(losses) if losses else None
        _, logits, labels = self._batches[-1] if self._batches else (None, None, None)
        self._batches.clear()
        if loss is not None:
            self._epoch_losses.append(loss)
        if not (isinstance(logits, torch.Tensor) and isinstance(labels, torch.Tensor)):
            logits = labels = None
        self.monitor.step(loss=loss, targets=labels, outputs=logits)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epoch_ended = True
        if not _evaluates_every_epoch(args):
            self._end_epoch({})

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        self._end_epoch(scalars(metrics), samples_in(kwargs.get("eval_dataloader")))

    def _end_epoch(self, metrics: dict[str, float], val_n: int | None = None) -> None:
        """The epoch's figures to the monitor; ``val_n``: the evaluation set's size."""
        if self.monitor is None or not self._epoch_ended:
            return
        self._epoch_ended = False
        train_loss = sum(self._epoch_losses) / len(self._epoch_losses) if self._epoch_losses else None
        self._epoch_losses.clear()
        val_acc = metrics.get("eval_accuracy")
        self.monitor.epoch_end(
            train_loss=train_loss,
            val_loss=metrics.get("eval_loss"),
            val_acc=val_acc,
            val_n=val_n if val_acc is not None else None,
        )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._end_epoch({})
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.monitor is not None:
            self.monitor.detach()
