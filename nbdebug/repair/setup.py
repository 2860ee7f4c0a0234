"""What one training is made of, and what repairs change: the untrained model, the optimizer,
learning rate, batch size, loss, gradient clipping and the input standardization.

A :class:`Setup` is never changed in place: a repair makes a new one with :meth:`Setup.but`,
and each training deep-copies ``Setup.model`` (the pre-training weights), so neither the
user's model nor an earlier attempt is touched.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..monitor import rules
from ..monitor.lint import loss_name

# Named optimizers and their default learning rates (AutoTrainer S6: 0.01 for SGD, 0.001 for
# adaptive optimizers). "sgd" is SGD with momentum 0.9, the usual choice (AutoTrainer S7).
OPTIMIZERS: dict[str, tuple[Callable[..., torch.optim.Optimizer], float, dict[str, Any]]] = {
    "adam": (torch.optim.Adam, 1e-3, {}),
    "adamw": (torch.optim.AdamW, 1e-3, {}),
    "sgd": (torch.optim.SGD, 1e-2, {"momentum": 0.9}),
}
SGD_FAMILY = ("SGD", "ASGD")  # default lr 0.01; every other optimizer counts as adaptive (0.001)

# Loss names fit() accepts, with the class each stands for.
LOSSES: dict[str, type[nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "nll": nn.NLLLoss,
    "bce": nn.BCELoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
    "mse": nn.MSELoss,
    "l1": nn.L1Loss,
    "smooth_l1": nn.SmoothL1Loss,
}
_BINARY_LOSSES = ("BCELoss", "BCEWithLogitsLoss", "SoftMarginLoss")
_REGRESSION_LOSSES = ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss")


def default_lr(optimizer_name: str) -> float:
    """AutoTrainer's default learning rate for an optimizer class name."""
    return 1e-2 if optimizer_name in SGD_FAMILY else 1e-3


@dataclass(frozen=True)
class Standardization:
    """Per-feature mean and std of the training split (S9), and whether training drops the
    samples holding NaN or Inf (evaluation replaces them by the mean instead)."""

    mean: torch.Tensor
    std: torch.Tensor
    n_samples: int
    n_dropped: int
    drop_nonfinite: bool

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num((x - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass(frozen=True)
class Setup:
    """One training configuration. ``optimizer`` is a name of :data:`OPTIMIZERS` or a callable
    ``params -> Optimizer``; ``lr`` is the learning rate actually used (for a callable, every
    group's rate is scaled so that the first group's is ``lr``)."""

    model: nn.Module  # the pre-training weights; copied for every training
    optimizer: str | Callable[[Any], torch.optim.Optimizer]
    lr: float
    batch_size: int
    loss: nn.Module
    task: str  # "multiclass" or "binary"
    clip_value: float | None = None
    standardize: Standardization | None = None
    momentum: float | None = None  # set by S7 when it picks SGD with momentum

    def but(self, **changes: Any) -> Setup:
        """A copy with ``changes`` (the model is deep-copied, so surgery on it is safe)."""
        changes.setdefault("model", copy.deepcopy(self.model))
        return dataclasses.replace(self, **changes)

    @property
    def loss_name(self) -> str:
        return loss_name(self.loss) or type(self.loss).__name__

    def make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        params = list(params)
        if isinstance(self.optimizer, str):
            cls, _, extra = OPTIMIZERS[self.optimizer]
            if self.momentum is not None:
                extra = {"momentum": self.momentum}
            return cls(params, lr=self.lr, **extra)
        opt = self.optimizer(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must return a torch.optim.Optimizer when called with the parameters, "
                f"got {type(opt).__name__}"
            )
        base = float(opt.param_groups[0]["lr"])
        if base > 0 and base != self.lr:
            for group in opt.param_groups:
                group["lr"] = float(group["lr"]) * self.lr / base
        return opt

    def optimizer_label(self) -> str:
        """E.g. ``SGD(lr=1, momentum=0.9)``: the optimizer as shown in repair diffs."""
        opt = self.make_optimizer([nn.Parameter(torch.zeros(1))])
        momentum = opt.param_groups[0].get("momentum")
        extra = f", momentum={momentum:g}" if momentum else ""
        return f"{type(opt).__name__}(lr={self.lr:g}{extra})"

    def optimizer_class(self) -> str:
        return type(self.make_optimizer([nn.Parameter(torch.zeros(1))])).__name__

    def loss_value(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of a batch, with the labels in the form the loss takes."""
        return self.loss(outputs, loss_targets(self.loss_name, outputs, labels))


def loss_targets(name: str, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Class-index labels as ``name`` wants them: float 0/1 shaped like the outputs for the
    binary losses, one-hot floats for regression losses on several outputs, indices otherwise."""
    if name in _BINARY_LOSSES:
        return labels.to(outputs.dtype).reshape(outputs.shape)
    if name in _REGRESSION_LOSSES:
        if outputs.dim() == 2 and outputs.shape[1] > 1:
            return F.one_hot(labels, outputs.shape[1]).to(outputs.dtype)
        return labels.to(outputs.dtype).reshape(outputs.shape)
    return labels


def output_activation(outputs: torch.Tensor, last: nn.Module | None, loss: str | None = None) -> str:
    """The activation behind a model's outputs, as the monitor reads it, except that one output
    unit counts as a sigmoid only after an ``nn.Sigmoid`` module or with BCELoss: untrained logits
    often lie in (0, 1) by chance (a sigmoid applied in forward() is not seen; pass loss="bce")."""
    activation = rules.infer_output_activation(outputs, last)
    one_unit = outputs.dim() == 1 or outputs.shape[1] == 1
    if one_unit and activation == "sigmoid" and not isinstance(last, nn.Sigmoid) and loss != "BCELoss":
        return "linear"
    return activation


def predictions(outputs: torch.Tensor, activation: str) -> torch.Tensor:
    """Predicted class indices: argmax over several outputs; for one output, above 0.5 when it
    is a probability (``activation`` "sigmoid") and above 0 when it is a logit."""
    if outputs.dim() == 2 and outputs.shape[1] > 1:
        return outputs.argmax(1)
    cut = 0.5 if activation in ("sigmoid", "softmax") else 0.0
    return (outputs.reshape(-1) > cut).long()
