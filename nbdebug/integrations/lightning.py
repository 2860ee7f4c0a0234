"""nbdebug for the Lightning ``Trainer``: record every epoch, and monitor every step.

::

    from nbdebug.integrations.lightning import MonitorCallback, RecordCallback

    trainer = lightning.Trainer(max_epochs=20, callbacks=[
        RecordCallback("runs/lit", head="fc", train=(X, y), test=(X_test, y_test)),
        MonitorCallback(loss_fn=nn.CrossEntropyLoss()),
    ])
    trainer.fit(module, train_loader)

``RecordCallback`` creates a :class:`nbdebug.Recorder` on the LightningModule when training
starts and captures at the end of every training epoch, with the logged metrics (after
validation, so they include the validation metrics of that epoch).

``MonitorCallback`` steps a :class:`nbdebug.Monitor` at ``on_train_batch_end``. Lightning runs
the backward pass inside ``optimizer.step(closure)``, so a ``mon.step`` written in
``training_step`` would read the previous step's gradients; at ``on_train_batch_end`` the
gradients are this step's. The loss is the one ``training_step`` returns (a tensor or the
``"loss"`` of a dict, whose ``"logits"`` if present are the outputs the monitor checks); the
batch is read as ``(inputs, targets)`` when it is a pair of tensors.

Needs Lightning: ``pip install 'nbdebug[lightning]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:
    from ._common import missing

    raise missing("Lightning", "lightning", "lightning") from None

import torch

from ..monitor import Monitor
from ..monitor.monitor import _in_notebook
from ..record import Recorder
from ._common import dataset_of, resolve_head, samples_in, scalars


class RecordCallback(Callback):
    """Record the LightningModule's training with :class:`nbdebug.Recorder`, one capture per epoch.

    ``path`` and ``head`` (the head module or its dotted name in the LightningModule, e.g.
    ``"fc"``) as for the Recorder; ``train`` defaults to the dataset of the Trainer's training
    DataLoader; other keyword arguments (``test``, ``unlabeled``, ``classes``, ``output``,
    ``forward``, ...) go to the Recorder. ``every_n_epochs`` captures one epoch in so many.
    The Recorder is ``callback.recorder`` once training started.
    """

    def __init__(self, path: Any, head: Any, train: Any = None, *, every_n_epochs: int = 1, **recorder: Any):
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be an integer >= 1, got {every_n_epochs!r}")
        self.path, self.head, self.train = path, head, train
        self.every_n_epochs = every_n_epochs
        self.options = recorder
        self.recorder: Recorder | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.recorder is not None:
            return  # a second fit() goes on recording into the same run
        train = self.train if self.train is not None else dataset_of(trainer.train_dataloader)
        head = resolve_head(pl_module, self.head)
        self.recorder = Recorder(pl_module, head=head, path=self.path, train=train, **self.options)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = trainer.current_epoch
        if self.recorder is None or trainer.sanity_checking or epoch % self.every_n_epochs:
            return
        self.recorder.capture(epoch, metrics=scalars(trainer.callback_metrics))


class MonitorCallback(Callback):
    """Watch the training with :class:`nbdebug.Monitor`, stepped after every training batch.

    ``loss_fn``, ``cadence``, ``thresholds`` and ``task`` as for the Monitor. At each epoch
    end the monitor gets the logged ``train_acc``, ``val_loss`` and ``val_acc`` (their names
    in ``self.log`` given by the arguments of the same names; None skips one) and, unless a
    ``train_loss`` is logged, the mean of the epoch's step losses; with a validation accuracy,
    the size of the validation set (so that a fall must beat its sampling noise). ``display`` shows the live
    widget when training starts (default: in a notebook). The Monitor is ``callback.monitor``.
    """

    def __init__(
        self,
        loss_fn: Any = None,
        *,
        cadence: int = 3,
        thresholds: dict | None = None,
        task: str | None = None,
        train_loss: str | None = "train_loss",
        train_acc: str | None = "train_acc",
        val_loss: str | None = "val_loss",
        val_acc: str | None = "val_acc",
        display: bool | None = None,
    ):
        self.options = {"loss_fn": loss_fn, "cadence": cadence, "thresholds": thresholds, "task": task}
        self.names = {"train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc}
        self.display = display
        self.monitor: Monitor | None = None
        self._losses: list[float] = []

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        optimizers = [opt for opt in trainer.optimizers if isinstance(opt, torch.optim.Optimizer)]
        self.monitor = Monitor(pl_module, optimizer=optimizers[0] if optimizers else None, **self.options)
        if self.display or (self.display is None and _in_notebook()):
            from IPython.display import display

            display(self.monitor)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.monitor is None:
            return
        loss, logits = outputs, None
        if isinstance(outputs, Mapping):
            loss, logits = outputs.get("loss"), outputs.get("logits")
        inputs = targets = None
        if isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch):
            inputs, targets = batch
        if not isinstance(logits, torch.Tensor):
            logits, targets = None, None
        if isinstance(loss, torch.Tensor):
            self._losses.append(float(loss.detach()))
        self.monitor.step(loss=loss, inputs=inputs, targets=targets, outputs=logits)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is None or trainer.sanity_checking:
            return
        logged = scalars(trainer.callback_metrics)
        values: dict[str, Any] = {key: logged.get(name) if name else None for key, name in self.names.items()}
        if values["train_loss"] is None and self._losses:
            values["train_loss"] = sum(self._losses) / len(self._losses)
        self._losses.clear()
        val_n = samples_in(trainer.val_dataloaders) if values["val_acc"] is not None else None
        self.monitor.epoch_end(**values, val_n=val_n)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.monitor is not None:
            self.monitor.detach()
