"""One training of a :class:`~nbdebug.repair.setup.Setup`, as :func:`nbdebug.fit` runs it: the
epoch loop with its progress bar, evaluation, the monitor (and its widget in a notebook), the
recorder, the stop at the first problem the repairs handle, and the last healthy checkpoint."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .monitor import Monitor
from .monitor.monitor import _in_notebook
from .monitor.warning import TrainingWarning
from .record import Recorder
from .repair.data import Data
from .repair.log import RepairEntry, html_items
from .repair.scheduler import REPAIRABLE, Attempt, Checkpoint
from .repair.setup import Setup, output_activation, predictions
from .repair.solutions import Context
from .repair.surgery import Standardized, output_layer, trace


class Display:
    """In a notebook: one box in the cell showing the current training's monitor widget, with
    the repair log under it. Elsewhere nothing (the monitor logs its warnings)."""

    def __init__(self, enabled: bool):
        self.box: Any = None
        self.widget: Any = None
        self.entries: list[RepairEntry] = []
        if enabled and _in_notebook():
            import ipywidgets
            from IPython.display import display

            self.box = ipywidgets.VBox()
            display(self.box)

    def watch(self, monitor: Monitor) -> None:
        if self.box is not None:
            self.widget = monitor.widget
            self.widget.show_repairs(html_items(self.entries))
            self.box.children = [self.widget]

    def log(self, entries: list[RepairEntry]) -> None:
        self.entries = entries
        if self.widget is not None:
            self.widget.show_repairs(html_items(entries))


class Trainer:
    """Trains one attempt of a setup: the epoch loop, evaluation, monitor, recording."""

    def __init__(self, train: Data, val: Data | None, epochs: int, seed: int, device: torch.device, **options: Any):
        self.train_data, self.val, self.epochs, self.seed, self.device = train, val, epochs, seed, device
        self.monitor: bool = options["monitor"]
        self.stop_on_problem: bool = options["stop_on_problem"]
        self.thresholds: dict[str, float] = options["thresholds"]
        self.record: dict[str, Any] | None = options["record"]
        self.deadline: float | None = options["deadline"]
        self.display: Display = options["display"]
        self.count = 0
        self._activation = "linear"  # of the current training's outputs (binary predictions need it)

    @property
    def eval_data(self) -> Data:
        return self.val if self.val is not None else self.train_data

    def _evaluate(self, model: nn.Module, setup: Setup, data: Data) -> tuple[float, float, np.ndarray]:
        model.eval()
        total, preds = 0.0, []
        with torch.no_grad():
            for x, y in data.eval_batches():
                x, y = self._prepare(setup, x, y, train=False)
                out = model(x)
                total += float(setup.loss_value(out, y)) * len(y)
                preds.append(predictions(out, self._activation).cpu())
        pred = torch.cat(preds).numpy()
        labels = data.all_labels().numpy()
        return total / len(labels), float((pred == labels).mean()), pred

    def _prepare(
        self, setup: Setup, x: torch.Tensor, y: torch.Tensor, train: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = x.to(self.device), y.to(self.device)
        std = setup.standardize
        if std is not None:
            if train and std.drop_nonfinite and x.is_floating_point():
                keep = torch.isfinite(x.reshape(len(x), -1)).all(1)
                x, y = x[keep], y[keep]
            x = std.apply(x.float())
        return x, y

    def _recorder(self, model: nn.Module, setup: Setup) -> Recorder | None:
        if self.record is None:
            return None
        options = dict(self.record)
        calls = trace(model, self._prepare(setup, self.train_data.first_inputs(), torch.zeros(1), False)[0])
        head_at = output_layer(calls)
        if head_at is None and "head" not in options:
            raise ValueError(
                "record needs the model's head; the model has no Linear or Conv layer, pass record={'head': ...}"
            )
        user_model = Standardized(model, setup.standardize.mean, setup.standardize.std) if setup.standardize else model
        kinds = {"softmax": "probabilities", "sigmoid": "probabilities", "log_softmax": "log_probabilities"}
        options.setdefault("head", calls[head_at].module if head_at is not None else None)
        options.setdefault("output", kinds.get(self._activation, "logits"))

        def split(data: Data) -> Any:
            return (data.inputs, data.labels) if data.inputs is not None else data.dataset

        options.setdefault("train", split(self.train_data))
        if self.val is not None:
            options.setdefault("test", split(self.val))
        if self.count > 1:
            options["overwrite"] = True  # a retraining replaces the run of the attempt before
        return Recorder(user_model, **options)

    def __call__(self, setup: Setup, checkpoint: Checkpoint | None) -> Attempt:
        self.count += 1
        started = time.monotonic()
        torch.manual_seed(self.seed)
        model = copy.deepcopy(setup.model).to(self.device)
        optimizer = setup.make_optimizer(model.parameters())
        history: list[dict[str, Any]] = []
        first_epoch = 1
        if checkpoint is not None:
            model.load_state_dict(checkpoint.model_state)
            try:
                optimizer.load_state_dict(checkpoint.optimizer_state)
                for group in optimizer.param_groups:  # keep the repaired learning rate
                    group["lr"] = setup.lr
            except (ValueError, KeyError):
                pass  # another optimizer: it starts fresh
            history, first_epoch = [dict(h) for h in checkpoint.history], checkpoint.epoch + 1
        probe = self._prepare(setup, self.train_data.first_inputs(), torch.zeros(1), train=False)[0]
        with torch.no_grad():
            model.eval()
            out = model(probe)
        calls = trace(model, probe)
        self._activation = output_activation(out, calls[-1].module if calls else None, setup.loss_name)
        fired: list[TrainingWarning] = []
        recorder = self._recorder(model, setup)
        mon = (
            Monitor(model, optimizer=optimizer, loss_fn=setup.loss, thresholds=self.thresholds, recorder=recorder)
            if self.monitor
            else None
        )
        if mon is not None:
            seen = {w.code for w in mon.warnings}

            def on_change(change: str) -> None:
                if change == "warning":
                    for w in mon.warnings:
                        if w.code not in seen:
                            seen.add(w.code)
                            if w.code in REPAIRABLE:
                                fired.append(w)

            mon.on_change(on_change)
            self.display.watch(mon)
        last_healthy = checkpoint
        stopped = None
        generator = torch.Generator()
        n_batches = self.train_data.n_batches(setup.batch_size)
        bar = tqdm(total=n_batches, leave=False, disable=None)
        trained = 0
        try:
            for epoch in range(first_epoch, self.epochs + 1):
                generator.manual_seed(self.seed * 100_003 + epoch)  # the same shuffle whether resumed or not
                bar.reset(total=n_batches)
                bar.set_description(f"training {self.count} · epoch {epoch}/{self.epochs}")
                model.train()
                total = correct = seen_n = 0.0
                for x, y in self.train_data.batches(setup.batch_size, shuffle=True, generator=generator):
                    x, y = self._prepare(setup, x, y, train=True)
                    if len(y) == 0:
                        continue
                    out = model(x)
                    loss = setup.loss_value(out, y)
                    optimizer.zero_grad()
                    loss.backward()
                    if setup.clip_value is not None:
                        nn.utils.clip_grad_value_(model.parameters(), setup.clip_value)
                    optimizer.step()
                    if mon is not None:
                        mon.step(loss=loss, inputs=x, targets=y, outputs=out)
                    total += float(loss.detach()) * len(y)
                    correct += float((predictions(out.detach(), self._activation) == y).sum())
                    seen_n += len(y)
                    bar.update()
                    if fired and self.stop_on_problem:
                        break
                    if self.deadline is not None and time.monotonic() >= self.deadline:
                        stopped = "time limit"
                        break
                trained += 1
                train_loss = total / seen_n if seen_n else math.nan
                train_acc = correct / seen_n if seen_n else 0.0
                val_loss = val_acc = None
                if self.val is not None:
                    val_loss, val_acc, _ = self._evaluate(model, setup, self.val)
                if mon is not None:
                    mon.epoch_end(
                        train_loss=train_loss,
                        train_acc=train_acc,
                        val_loss=val_loss,
                        val_acc=val_acc,
                        train_n=int(seen_n) or None,
                        val_n=len(self.val) if self.val is not None else None,
                    )
                row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
                history.append({**row, "val_loss": val_loss, "val_acc": val_acc})
                bar.set_postfix(loss=f"{train_loss:.3g}", acc=f"{train_acc:.1%}")
                if recorder is not None:
                    metrics = {k: v for k, v in history[-1].items() if k != "epoch" and v is not None}
                    recorder.capture(epoch, metrics={k: v for k, v in metrics.items() if math.isfinite(v)})
                if (fired and self.stop_on_problem) or stopped:
                    break
                if not fired and math.isfinite(train_loss):
                    last_healthy = Checkpoint(
                        epoch,
                        copy.deepcopy(model.state_dict()),
                        copy.deepcopy(optimizer.state_dict()),
                        [dict(h) for h in history],
                    )
        finally:
            bar.close()
            if mon is not None:
                mon.detach()
        _, accuracy, preds = self._evaluate(model, setup, self.eval_data)
        return Attempt(
            setup=setup,
            model=model,
            history=history,
            warnings=mon.warnings if mon is not None else [],
            problem=fired[0] if fired else None,
            accuracy=accuracy,
            predictions=preds,
            epochs=trained,
            seconds=time.monotonic() - started,
            checkpoint=last_healthy,
            stopped=stopped,
        )


def make_context(trainer: Trainer, thresholds: dict[str, float]) -> Callable[[Setup, TrainingWarning], Context]:
    def build(setup: Setup, warning: TrainingWarning) -> Context:
        x = trainer._prepare(setup, trainer.train_data.first_inputs(), torch.zeros(1), train=False)[0]
        model = setup.model.to(trainer.device)
        calls = trace(model, x)
        with torch.no_grad():
            was = model.training
            out = model.eval()(x)
            model.train(was)
        activation = output_activation(out, calls[-1].module if calls else None, setup.loss_name)
        return Context(warning.code, warning.evidence, calls, activation, trainer.train_data, thresholds)

    return build
