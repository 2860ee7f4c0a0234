"""Live training monitor: watch a PyTorch training loop and explain what goes wrong.

``Monitor`` attaches to an unchanged model through hooks, lints the setup before the first
step, then checks every step cheaply (the loss) and every ``cadence`` steps more deeply
(per-layer gradient norms, layer outputs, inputs, batch accuracy), following AutoTrainer's
eight problems and SCRAM's three heuristics (see :mod:`nbdebug.monitor.checks`). AutoTrainer reports
most problems only while the best training accuracy is at most theta; once it is above, the
monitor stops hooking layers and reading gradients and keeps only the loss, input and
epoch-level checks. Warnings are merged per code, shown live in a notebook widget, and logged
to the ``nbdebug`` logger otherwise.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checks
from .checks import ERROR, MESSAGES, TrainingWarning, fmt_acc

logger = logging.getLogger("nbdebug")

_PARAMETRIC = (nn.Linear, nn.modules.conv._ConvNd)


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where a displayed widget shows the warnings)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell"


class Monitor:
    """Watch a training loop and report problems as :class:`~nbdebug.monitor.checks.TrainingWarning`.

    Parameters
    ----------
    model : the ``nn.Module`` being trained; it is not modified, only hooked.
    optimizer : its optimizer (optional, enables the learning-rate and parameter checks and
        reads gradients just before each optimizer step, whatever the loop order).
    loss_fn : the loss (an ``nn.Module`` such as ``nn.CrossEntropyLoss()`` or a function such
        as ``F.cross_entropy``); optional, enables the output-activation and loss checks.
    cadence : tensor statistics are computed every ``cadence`` steps (AutoTrainer's default 3);
        the loss is checked on every step.
    thresholds : overrides of :data:`nbdebug.monitor.checks.DEFAULT_THRESHOLDS`, e.g. ``{"theta": 0.9}``.
    task : "multiclass", "binary", "multilabel" or "regression"; inferred from targets and
        outputs when None.

    Call ``step(loss=..., inputs=..., targets=..., outputs=...)`` once per batch and
    ``epoch_end(train_loss=..., train_acc=..., val_loss=..., val_acc=...)`` once per epoch.
    Use it as a context manager (or call ``detach()``) to remove its hooks.
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
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(
                f"loss_fn must be a loss module or function (e.g. nn.CrossEntropyLoss()), got {type(loss_fn).__name__}"
            )
        if isinstance(cadence, bool) or not isinstance(cadence, int) or cadence < 1:
            raise ValueError(f"cadence must be a positive int (steps between tensor checks), got {cadence!r}")
        if task is not None and task not in checks.LOSS_SETS:
            raise ValueError(f"task must be one of {sorted(checks.LOSS_SETS)} or None to infer it, got {task!r}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.cadence = cadence
        self.thresholds = checks.validate_thresholds(thresholds)
        self.task = task
        self.loss_name = checks.loss_name(loss_fn)
        self.step_count = 0
        self.epoch = 0
        self.step_losses: list[float] = []
        self.epochs: list[dict[str, Any]] = []
        self._warnings: dict[str, TrainingWarning] = {}
        self._layers = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, _PARAMETRIC) and isinstance(getattr(m, "weight", None), torch.Tensor)
        ]
        # Only layers with their own parameters are hooked: their outputs carry the largest
        # values (activations only clip or squash them), and fewer hooks cost less per step.
        self._hooked = [
            (name, m)
            for name, m in checks.leaf_modules(model)
            if m is not model and any(True for _ in m.parameters(recurse=False))
        ]
        self._hook_fns = [(module, self._leaf_hook(name)) for name, module in self._hooked]
        leaves = checks.leaf_modules(model)
        self._last_module = leaves[-1][1] if isinstance(model, nn.Sequential) and leaves else None
        self._batch_acc_needed = True
        self._best_epoch_acc: float | None = None
        # Gradients read on capture steps: every layer's weight (for its norm), then per hidden
        # layer the bias (one value per neuron) or, without a bias, the weight again.
        # The output layer's bias tells a cleared gradient (all zero) from a dead network.
        self._n_layers = len(self._layers)
        self._neuron_bias = [isinstance(getattr(m, "bias", None), torch.Tensor) for _, m in self._layers[:-1]]
        out_bias = getattr(self._layers[-1][1], "bias", None) if self._layers else None
        self._norm_params = [m.weight for _, m in self._layers] + (
            [out_bias] if isinstance(out_bias, torch.Tensor) else []
        )
        self._grad_params = self._norm_params + [
            m.bias if has_bias else m.weight for (_, m), has_bias in zip(self._layers[:-1], self._neuron_bias)
        ]
        self._activation: str | None = None
        self._streak: dict[str, int] = {}
        self._epoch_correct = 0.0
        self._epoch_seen = 0
        self._acts: dict[str, torch.Tensor] = {}
        self._grad_refs: list[torch.Tensor | None] | None = None
        self._forward_handles: list[Any] = []
        self._armed = False
        self._detached = False
        self._widget = None
        self._in_notebook = _in_notebook()
        self._unshown: list[TrainingWarning] = []
        self._opt_handle = (
            optimizer.register_step_pre_hook(self._before_optimizer_step) if optimizer is not None else None
        )
        for code, evidence in checks.static_checks(model, optimizer, loss_fn, self.thresholds):
            self._report(code, evidence)
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
        if loss is not None:
            value = self._scalar(loss, "loss")
            self.step_losses.append(value)
            if not math.isfinite(value):
                self._report("nan_loss", {"loss": value})
        if self._armed:
            self._capture(inputs, targets, outputs)
            self._disarm()
        elif (self.step_count - 1) % self.cadence == 0 and inputs is not None:
            self._capture_inputs(inputs)
        if self.step_count % self.cadence == 0 and self._gated_checks_live():
            self._arm()
        if self._widget is not None:
            self._widget.refresh()

    def epoch_end(
        self, train_loss: Any = None, train_acc: Any = None, val_loss: Any = None, val_acc: Any = None
    ) -> None:
        """Record one finished epoch. Accuracies are fractions in [0, 1]; without
        ``train_acc`` the monitor uses the accuracy of the batches it sampled."""
        if self._detached:
            raise RuntimeError("this Monitor is detached; create a new Monitor to keep watching")
        if self._unshown:
            self._flush_unshown()
        values = {}
        for name, value in (
            ("train_loss", train_loss),
            ("train_acc", train_acc),
            ("val_loss", val_loss),
            ("val_acc", val_acc),
        ):
            values[name] = None if value is None else self._scalar(value, name)
            if name.endswith("acc") and values[name] is not None and not 0 <= values[name] <= 1:
                raise ValueError(
                    f"epoch_end({name}=...) must be a fraction in [0, 1], got {values[name]!r}; "
                    "pass correct / total, not a percentage"
                )
        if values["train_acc"] is None and self._epoch_seen:
            values["train_acc"] = self._epoch_correct / self._epoch_seen
        self._epoch_correct, self._epoch_seen = 0.0, 0
        if train_acc is not None:
            self._batch_acc_needed = False  # the loop reports accuracy itself
        self.epoch += 1
        self.epochs.append({"epoch": self.epoch, "step": self.step_count, **values})
        if values["train_acc"] is not None:
            self._best_epoch_acc = max(values["train_acc"], self._best_epoch_acc or 0.0)
        if values["train_loss"] is not None and not math.isfinite(values["train_loss"]):
            self._report("nan_loss", {"loss": values["train_loss"]})
        self._epoch_checks()
        if self._widget is not None:
            self._widget.refresh(force=True)

    def detach(self) -> None:
        """Remove every hook; the model and optimizer are left exactly as they were."""
        if self._widget is not None and not self._detached:
            self._widget.refresh(force=True)  # show the last steps the throttle held back
        self._disarm()
        if self._opt_handle is not None:
            self._opt_handle.remove()
            self._opt_handle = None
        self._detached = True

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    @property
    def widget(self):
        """The live notebook widget (created on first use; needs ipywidgets and plotly)."""
        if self._widget is None:
            from .widget import MonitorWidget

            self._widget = MonitorWidget(self)
        return self._widget

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        codes = ", ".join(w.code for w in self._warnings.values()) or "none"
        return f"Monitor({type(self.model).__name__}, steps={self.step_count}, epochs={self.epoch}, warnings: {codes})"

    # ------------------------------------------------------------ hooks

    def _arm(self) -> None:
        """Hook layer outputs for the next training forward pass (a capture step)."""
        if self._armed or self._detached:
            return
        self._armed = True
        for module, hook in self._hook_fns:
            self._forward_handles.append(module.register_forward_hook(hook))

    def _disarm(self) -> None:
        for handle in self._forward_handles:
            handle.remove()
        self._forward_handles.clear()
        self._armed = False
        # Drop every tensor reference: nothing outlives the check.
        self._acts.clear()
        self._grad_refs = None

    def _leaf_hook(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            # validation passes under no_grad are not training steps
            if torch.is_grad_enabled() and isinstance(output, torch.Tensor):
                self._acts[name] = output

        return hook

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        # Keep references to this step's gradients in case the loop clears them (zero_grad)
        # between optimizer.step() and monitor.step(); no copy, no computation.
        if self._armed:
            self._grad_refs = [p.grad for p in self._grad_params]

    def _gated_checks_live(self) -> bool:
        """Whether the accuracy-gated checks (VG, EG, DR, AD, IO, IL) can still fire.

        AutoTrainer reports them only while max(Acc) <= theta; max(Acc) never decreases, so
        once it passes theta their statistics (layer hooks, gradient norms) are not needed.
        """
        best = self._best_acc()
        return best is None or best <= self.thresholds["theta"]

    def _capture_inputs(self, inputs: torch.Tensor) -> None:
        """The capture step once the gated checks are over: SCRAM's input check only."""
        if inputs.is_floating_point() and inputs.numel() > 0:
            rms = torch.linalg.vector_norm(inputs).item() / math.sqrt(inputs.numel())
            self._input_checks(rms, inputs, self._best_acc())

    def _current_grads(self) -> list[torch.Tensor] | None:
        grads = [p.grad for p in self._grad_params]
        if any(g is None for g in grads):
            grads = self._grad_refs
        if not grads or any(g is None for g in grads):
            return None
        return grads

    # ------------------------------------------------------------ capture-step checks

    def _capture(self, inputs: torch.Tensor | None, targets: torch.Tensor | None, outputs: torch.Tensor | None) -> None:
        """Tensor statistics of one capture step, then the checks that use them.

        On small models PyTorch's per-operation overhead, not the arithmetic, is what the
        monitor costs, so every statistic comes from one call: the l2 norms of the weight
        gradients, the layer outputs and the inputs (``_foreach_norm``), copied out once.
        """
        grads = self._current_grads() if self._n_layers else None
        if targets is not None and outputs is not None and targets.shape[0] and outputs.shape[0] == targets.shape[0]:
            if self.task is None:
                self.task = checks.infer_task(targets, outputs)
            if self._activation is None:
                self._activation = checks.infer_output_activation(outputs, self._last_module)
        else:
            targets = None
        n_norms = len(self._norm_params) if grads else 0
        measured = grads[:n_norms] if grads else []
        names = [name for name, t in self._acts.items() if t.is_floating_point()]
        measured += [self._acts[name] for name in names]
        has_inputs = inputs is not None and inputs.is_floating_point() and inputs.numel() > 0
        if has_inputs:
            measured.append(inputs)
        if not measured:
            return
        with torch.no_grad():  # cheaper than detaching each tensor
            values = torch.stack(torch._foreach_norm(measured)).tolist()
        # l2 norm -> root-mean-square: the typical size of one value
        rms = [v / math.sqrt(t.numel()) for v, t in zip(values[n_norms:], measured[n_norms:])]
        if targets is not None and self._batch_acc_needed:
            correct = self._correct(targets, outputs)
            if correct is not None:
                self._epoch_correct += correct.item() / targets.shape[0]
                self._epoch_seen += 1
        best = self._best_acc()
        low_acc = best is None or best <= self.thresholds["theta"]
        if grads and any(values[:n_norms]):  # all zero: cleared by an in-place zero_grad(), skip
            self._gradient_checks(values[: self._n_layers], grads[n_norms:], best, low_acc)
        if has_inputs:
            self._input_checks(rms.pop(), inputs, best)
        self._activation_checks(names, rms, best, low_acc)

    def _correct(self, targets: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor | None:
        """Number of correct predictions in the batch (a 0-d tensor), None if not a classifier."""
        out = outputs.detach()
        if self.task == "multiclass" and out.dim() == 2:
            labels = targets.argmax(1) if targets.dim() == 2 else targets
            return (out.argmax(1) == labels).sum()
        if self.task == "binary":
            cut = 0.5 if self._activation in ("sigmoid", "softmax") else 0.0
            return ((out.reshape(-1) > cut) == (targets.reshape(-1) > 0.5)).sum()
        return None

    def _observed(self, code: str, present: bool, alpha: float | None = None) -> bool:
        """Count consecutive observations; True once more than ``alpha`` in a row."""
        self._streak[code] = self._streak.get(code, 0) + 1 if present else 0
        return self._streak[code] > (self.thresholds["alpha"] if alpha is None else alpha)

    def _gradient_checks(
        self, norms: list[float], neuron_grads: list[torch.Tensor], best: float | None, low_acc: bool
    ) -> None:
        t = self.thresholds
        if not all(math.isfinite(v) for v in norms):
            bad = [n for (n, _), v in zip(self._layers, norms) if not math.isfinite(v)]
            self._report(
                "exploding_gradient",
                {
                    "detail": f"Gradients are NaN or infinite in {', '.join(bad)} at step {self.step_count}.",
                    "layers": bad,
                    "best_acc": fmt_acc(best),
                },
                severity=ERROR,
            )
            return
        first, last = norms[0], norms[-1]
        ratio = first / last if last > 0 else (math.inf if first > 0 else 1.0)
        deep = len(norms) > 1 and low_acc
        vanishing = self._observed("vanishing_gradient", deep and ratio <= t["beta1"] and first <= t["beta2"])
        exploding = self._observed("exploding_gradient", deep and ratio >= t["beta3"])
        if vanishing or exploding:
            names = [name for name, _ in self._layers]
            evidence = {
                "first_layer": names[0],
                "last_layer": names[-1],
                "first_norm": first,
                "last_norm": last,
                "ratio": ratio,
                "best_acc": fmt_acc(best),
                "layer_norms": dict(zip(names, norms)),
            }
            if vanishing:
                self._report("vanishing_gradient", evidence)
            if exploding:
                self._report(
                    "exploding_gradient",
                    {
                        **evidence,
                        "detail": (
                            f"The gradient at the first layer ({names[0]}, norm {first:.3g}) is {ratio:.0f} times "
                            f"the one at the last layer ({names[-1]}) at step {self.step_count}."
                        ),
                    },
                )
        if not neuron_grads or not low_acc:
            return
        # A neuron's bias gradient sums its gradient over the batch: exactly 0 when it passed no
        # gradient for any sample (a dead ReLU), almost surely not otherwise. Without a bias,
        # the neuron's row of the weight gradient is used.
        per_neuron = torch.cat(
            [
                g if has_bias else torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1)
                for g, has_bias in zip(neuron_grads, self._neuron_bias)
            ]
        ).numpy()
        total = per_neuron.size
        dead = total - np.count_nonzero(per_neuron)
        if self._observed("dying_relu", total > 0 and dead / total >= t["gamma"]):
            per_layer, at = {}, 0
            for name, m in self._layers[:-1]:
                width = m.weight.shape[0]
                per_layer[name] = int(width - np.count_nonzero(per_neuron[at : at + width]))
                at += width
            self._report(
                "dying_relu",
                {
                    "dead": int(dead),
                    "total": total,
                    "dead_pct": 100 * dead / total,
                    "per_layer": per_layer,
                    "best_acc": fmt_acc(best),
                },
            )

    def _input_checks(self, rms: float, inputs: torch.Tensor, best: float | None) -> None:
        """SCRAM's range check. Deviation: instead of every value within [-1, 1], the batch's
        root-mean-square must stay below ``input_scale`` (standardized data legitimately has
        values beyond +-1), in two captures running so that one batch with rare outliers
        (z-scores of 20-40 occur in standardized pixel data) is not enough."""
        if not math.isfinite(rms):
            self._report(
                "abnormal_data",
                {
                    "detail": f"The input batch at step {self.step_count} contains NaN or infinite values.",
                    "best_acc": fmt_acc(best),
                },
            )
        elif self._observed("unnormalized_input", rms > self.thresholds["input_scale"], 1):
            x = inputs.detach()
            self._report(
                "unnormalized_input", {"rms": rms, "mean_abs": float(x.abs().mean()), "max_abs": float(x.abs().max())}
            )

    def _activation_checks(self, names: list[str], rms: list[float], best: float | None, low_acc: bool) -> None:
        """AutoTrainer AD on layer outputs. Deviation: the typical size (root-mean-square) is
        compared with omega instead of the largest output; on standardized data a few
        rare-valued inputs (z-scores of 20-40) push single outputs past omega in healthy runs."""
        worst = None
        for name, value in zip(names, rms):
            if not math.isfinite(value):
                worst = (name, value)
                break
            if value >= self.thresholds["omega"] and (worst is None or value > worst[1]):
                worst = (name, value)
        nonfinite = worst is not None and not math.isfinite(worst[1])
        if nonfinite or self._observed("abnormal_data", worst is not None and low_acc):
            name, value = worst
            what = "NaN or infinite values" if nonfinite else f"outputs of typical size {value:.3g} (root-mean-square)"
            self._report(
                "abnormal_data",
                {
                    "detail": f"Layer {name} produced {what} at step {self.step_count} "
                    f"(threshold {self.thresholds['omega']:g}).",
                    "layer": name,
                    "value": value,
                    "best_acc": fmt_acc(best),
                },
            )

    # ------------------------------------------------------------ epoch checks

    def _train_accs(self) -> list[float]:
        return [e["train_acc"] for e in self.epochs if e["train_acc"] is not None]

    def _best_acc(self) -> float | None:
        """max(Acc) of AutoTrainer: best epoch accuracy so far, including the running epoch."""
        best = self._best_epoch_acc
        if self._epoch_seen:
            current = self._epoch_correct / self._epoch_seen
            best = current if best is None else max(best, current)
        return best

    def _epoch_checks(self) -> None:
        t = self.thresholds
        accs = self._train_accs()
        best = max(accs) if accs else None
        low_acc = best is None or best <= t["theta"]
        shown = ", ".join(f"{a:.0%}" for a in accs[-8:])
        if len(accs) >= t["trend_epochs"]:
            swings = checks.oscillation(accs, t["zeta"])
            if len(swings) / len(accs) >= t["eta"]:
                self._report(
                    "oscillating_loss",
                    {
                        "epochs": len(accs),
                        "zeta": t["zeta"],
                        "swings": len(swings),
                        "amplitudes": ", ".join(f"{s:.0%}" for s in swings[-6:]),
                    },
                )
            if low_acc and checks.slow(accs, t["delta"]):
                self._report("slow_convergence", {"delta": t["delta"], "epochs": len(accs), "accs": shown})
        vals = [e["val_acc"] for e in self.epochs if e["val_acc"] is not None and e["train_acc"] is not None]
        trains = [e["train_acc"] for e in self.epochs if e["val_acc"] is not None and e["train_acc"] is not None]
        if checks.overfit(trains, vals, t["overfit_drop"], t["overfit_gap"]):
            self._report(
                "overfitting",
                {
                    "val": " → ".join(f"{v:.1%}" for v in vals[-3:]),
                    "train": " → ".join(f"{v:.1%}" for v in trains[-3:]),
                },
            )
        if self.task and self.loss_name and self._activation and low_acc:
            mismatch = checks.output_mismatch(self.task, self.loss_name, self._activation)
            if mismatch:
                self._report("improper_output_activation", {**mismatch, "best_acc": fmt_acc(best)})
            mismatch = checks.loss_mismatch(self.task, self.loss_name)
            if mismatch:
                self._report("improper_loss", {**mismatch, "best_acc": fmt_acc(best)})

    # ------------------------------------------------------------ reporting

    @staticmethod
    def _scalar(value: Any, name: str) -> float:
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"{name} must be a scalar (one number), got a tensor of shape {tuple(value.shape)}; "
                    f"pass e.g. loss (the mean over the batch), not the per-sample values"
                )
            return value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name} must be a number or a one-element tensor, got {type(value).__name__}")
        return float(value)

    def _report(self, code: str, evidence: dict[str, Any], severity: str | None = None) -> None:
        """Add a warning, or merge a repeated detection into the existing one."""
        message = MESSAGES[code]
        severity = severity or message.severity
        fields = {"step": self.step_count, "epoch": self.epoch, **evidence}
        existing = self._warnings.get(code)
        if existing is not None:
            existing.count += 1
            existing.last_step, existing.last_epoch = self.step_count, self.epoch
            if severity == ERROR and existing.severity != ERROR:
                existing.severity = ERROR
                self._emit(existing)
            return
        warning = TrainingWarning(
            code=code,
            severity=severity,
            title=message.title,
            explanation=message.explanation.format(**fields),
            fix=message.fix.format(**fields),
            epoch=self.epoch,
            step=self.step_count,
            evidence=evidence,
            last_epoch=self.epoch,
            last_step=self.step_count,
        )
        self._warnings[code] = warning
        self._emit(warning)

    def _emit(self, warning: TrainingWarning) -> None:
        if self._widget is not None:
            self._widget.refresh(force=True)
            logger.debug("%s", warning)
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
