"""What the training monitor looks for: thresholds, messages, static lint and task inference.

The runtime symptoms follow AutoTrainer (Table 1, defaults from its §5.4) and SCRAM
(Table 1); the static checks are lint rules over the model, optimizer and loss before the
first step. Everything here works on plain numbers and module structure; collecting the
numbers from a live training is :mod:`nbdebug.monitor`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# Defaults, with where they come from. Keys are the names accepted by Monitor(thresholds=...).
DEFAULT_THRESHOLDS: dict[str, float] = {
    # AutoTrainer §5.4 Type-B: accuracy above which a training counts as good enough and the
    # gated problems (VG, EG, DR, IO, IL, AD) are no longer reported; task-dependent.
    "theta": 0.6,
    "beta1": 1e-3,  # VG: first-layer / last-layer gradient norm ratio at most this ...
    "beta2": 1e-4,  # ... and first-layer gradient norm at most this
    "beta3": 70.0,  # EG: first-layer / last-layer gradient norm ratio at least this
    "gamma": 0.7,  # DR: fraction of hidden neurons with exactly zero gradient
    "zeta": 0.03,  # OL: accuracy gap between a local maximum and the following minimum
    "eta": 0.2,  # OL: such gaps per epoch
    "delta": 0.01,  # SC: largest accuracy gain per epoch that still counts as "no progress"
    "omega": 10.0,  # AD: layer output size (root-mean-square here; l-inf in the paper)
    "alpha": 0,  # VG/EG/DR/AD: extra consecutive observations needed (paper: 0)
    # Deviations (see module docs of the checks using them):
    "trend_epochs": 4,  # OL/SC need this many epochs of accuracy before judging a trend
    "input_scale": 3.0,  # SCRAM range check: root-mean-square of a batch above this is "unnormalized"
    "overfit_drop": 0.02,  # SCRAM overfitting: validation accuracy must fall by at least this ...
    "overfit_gap": 0.05,  # ... and end at least this far below training accuracy
    "dropout_max": 0.5,  # static: dropout probability above this
}

# A learning rate outside [low, high] is flagged for these optimizers (static check).
LR_RANGES: dict[str, tuple[float, float]] = {
    "SGD": (1e-5, 1.0),
    "Adam": (1e-6, 3e-2),
    "AdamW": (1e-6, 3e-2),
    "Adamax": (1e-6, 3e-2),
    "NAdam": (1e-6, 3e-2),
    "RAdam": (1e-6, 3e-2),
    "RMSprop": (1e-6, 3e-2),
    "Adagrad": (1e-5, 1.0),
    "Adadelta": (1e-3, 10.0),
}

ERROR, WARNING = "error", "warning"


@dataclass
class TrainingWarning:
    """One problem the monitor found; repeated detections update ``count`` and ``last_*``.

    ``epoch`` and ``step`` are where it was first seen (0, 0 for static checks, before the
    first step); ``evidence`` holds the numbers and layer names that triggered it.
    """

    code: str
    severity: str
    title: str
    explanation: str
    fix: str
    epoch: int
    step: int
    evidence: dict[str, Any] = field(default_factory=dict)
    count: int = 1
    last_epoch: int = 0
    last_step: int = 0

    def __str__(self) -> str:
        return (
            f"[{self.severity}] {self.code} (epoch {self.epoch}, step {self.step}): {self.title}\n"
            f"{self.explanation}\nFix:\n{self.fix}"
        )


@dataclass(frozen=True)
class _Message:
    severity: str
    title: str
    explanation: str  # str.format template over the evidence
    fix: str


MESSAGES: dict[str, _Message] = {
    "vanishing_gradient": _Message(
        WARNING,
        "Gradients vanish before they reach the first layers",
        "The gradient reaching the first layer ({first_layer}, norm {first_norm:.2e}) is "
        "{ratio:.1e} times the one at the last layer ({last_layer}), and accuracy is still low "
        "(best {best_acc}). The early layers then barely learn. This is typical of deep stacks "
        "of sigmoid or tanh activations; it may also be a badly scaled initialisation.",
        "# ReLU-family activations and batch normalization keep gradients alive\n"
        "nn.Sequential(nn.Linear(d_in, 64), nn.BatchNorm1d(64), nn.ReLU(),\n"
        "              nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),\n"
        "              nn.Linear(64, n_classes))",
    ),
    "exploding_gradient": _Message(
        WARNING,
        "Gradients grow out of control",
        "{detail} Accuracy is still low (best {best_acc}). Updates this large throw the "
        "weights around instead of improving them. The usual causes are a learning rate that "
        "is too high or a weight initialisation that is too large.",
        "loss.backward()\n"
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
        "optimizer.step()\n"
        "# and/or lower the learning rate, e.g. for Adam:\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)",
    ),
    "dying_relu": _Message(
        WARNING,
        "Most ReLU units have stopped learning",
        "{dead_pct:.0f}% of the hidden units ({dead} of {total}) got exactly zero gradient at "
        "step {step} while accuracy is still low (best {best_acc}). A ReLU that outputs 0 for "
        "every input passes no gradient back, so it may never recover. A learning rate that "
        "is too high, or large negative biases, often cause this.",
        "# LeakyReLU keeps a small gradient for negative inputs\n"
        "nn.LeakyReLU(0.01)  # instead of nn.ReLU()\n"
        "# and/or a smaller learning rate and He initialisation:\n"
        "nn.init.kaiming_normal_(layer.weight, nonlinearity='relu'); nn.init.zeros_(layer.bias)",
    ),
    "oscillating_loss": _Message(
        WARNING,
        "Training accuracy swings up and down",
        "Over {epochs} epochs the training accuracy rose and fell again by at least "
        "{zeta:.0%} {swings} times (swings: {amplitudes}). Steady training climbs more or "
        "less smoothly; large swings usually mean the learning rate is too high for the batch "
        "size, though a very noisy dataset can look similar.",
        "# a smaller learning rate (and/or a larger batch) usually steadies training\n"
        "for group in optimizer.param_groups:\n"
        "    group['lr'] *= 0.1\n"
        "loader = DataLoader(train_set, batch_size=128, shuffle=True)",
    ),
    "slow_convergence": _Message(
        WARNING,
        "Accuracy is barely improving",
        "Training accuracy has not gained more than {delta:.0%} in any epoch for {epochs} "
        "epochs (accuracy by epoch: {accs}) and is still low. The model may be stuck; "
        "a learning rate that is too small is the most common cause, but it could also be "
        "the initialisation or the optimizer.",
        "# try a larger learning rate or an adaptive optimizer\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)",
    ),
    "improper_output_activation": _Message(
        WARNING,
        "The last layer's activation does not fit the task and loss",
        "The targets look like a {task} task and the loss is {loss}, which expects {expected}, "
        "but the model's outputs look like they come from {activation} (seen at step {step}). "
        "With accuracy still low (best {best_acc}) this mismatch is a likely reason.",
        "{fix}",
    ),
    "improper_loss": _Message(
        WARNING,
        "The loss function does not fit the task",
        "The targets and outputs look like a {task} task, but the loss is {loss}; usual "
        "choices are {expected}. Accuracy is still low (best {best_acc}), which this mismatch "
        "would explain. If your task really is different, ignore this.",
        "{fix}",
    ),
    "abnormal_data": _Message(
        WARNING,
        "Abnormal values flow through the network",
        "{detail} Accuracy is still low (best {best_acc}). NaN or Inf values in the data, or "
        "data on a very large scale, make training hard to converge.",
        "# drop samples with NaN/Inf and standardize features using training statistics\n"
        "keep = torch.isfinite(X_train).all(dim=1)\n"
        "X_train, y_train = X_train[keep], y_train[keep]\n"
        "mean, std = X_train.mean(0), X_train.std(0).clamp_min(1e-8)\n"
        "X_train, X_val = (X_train - mean) / std, (X_val - mean) / std",
    ),
    "overfitting": _Message(
        WARNING,
        "The model may be overfitting",
        "Validation accuracy fell over the last two epochs ({val}) while training accuracy "
        "rose ({train}). The model is probably memorizing the training data instead of "
        "learning patterns that generalize, although a small or noisy validation set can "
        "also wobble like this.",
        "# regularize: weight decay, dropout, a smaller model, or stop early\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n"
        "nn.Dropout(0.3)  # between hidden layers\n"
        "# keep the weights of the epoch with the best validation accuracy",
    ),
    "unnormalized_input": _Message(
        WARNING,
        "Inputs do not look normalized",
        "The input batch at step {step} has a typical size (root-mean-square) of {rms:.3g}, mean "
        "|x| = {mean_abs:.3g} and largest |x| = {max_abs:.3g}; inputs are conventionally scaled to "
        "about [-1, 1] or standardized. "
        "Raw pixel values (0-255) are a common cause. If the scale is intentional, ignore this.",
        "# scale with statistics of the training set\n"
        "X_train = X_train / 255.0  # images stored as 0-255\n"
        "# or standardize each feature:\n"
        "mean, std = X_train.mean(0), X_train.std(0).clamp_min(1e-8)\n"
        "X_train, X_val = (X_train - mean) / std, (X_val - mean) / std",
    ),
    "nan_loss": _Message(
        ERROR,
        "The loss became NaN or infinite",
        "The loss was {loss} at step {step} (epoch {epoch}). Once the loss is NaN the weights "
        "are usually NaN too and training cannot recover. Most often a hyperparameter is out "
        "of range, typically the learning rate; NaN/Inf in the data or a log of zero in a "
        "custom loss are other causes.",
        "# lower the learning rate (often by 10x or more) and restart from fresh weights\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.01)\n"
        "# check the data: torch.isfinite(X_train).all()",
    ),
    "softmax_before_cross_entropy": _Message(
        WARNING,
        "Softmax before CrossEntropyLoss",
        "The model ends with {layer} (Softmax), but nn.CrossEntropyLoss applies log-softmax "
        "itself. Softmax applied twice squashes the gradients and slows or stalls learning.",
        "# return raw scores (logits); apply softmax only to read probabilities\n"
        "model = nn.Sequential(..., nn.Linear(64, n_classes))  # no nn.Softmax at the end\n"
        "probs = model(x).softmax(dim=1)  # at prediction time",
    ),
    "bce_without_sigmoid": _Message(
        ERROR,
        "BCELoss without a sigmoid",
        "The loss is nn.BCELoss, which expects probabilities in [0, 1], but the model ends "
        "with {layer} ({layer_type}), not a sigmoid. If your forward() applies torch.sigmoid "
        "itself, ignore this; otherwise use BCEWithLogitsLoss, which is also more stable.",
        "loss_fn = nn.BCEWithLogitsLoss()  # takes raw scores, applies the sigmoid itself",
    ),
    "cross_entropy_one_output": _Message(
        ERROR,
        "CrossEntropyLoss with a single output unit",
        "The last layer {layer} has one output unit, but nn.CrossEntropyLoss needs one score "
        "per class; with one unit the softmax is always 1 and nothing is learned.",
        "# two classes: either two output units with CrossEntropyLoss ...\n"
        "nn.Linear(64, 2)\n"
        "# ... or one unit with BCEWithLogitsLoss and float targets\n"
        "loss_fn = nn.BCEWithLogitsLoss(); loss = loss_fn(model(x).squeeze(1), y.float())",
    ),
    "linear_without_activation": _Message(
        WARNING,
        "Linear layers with no nonlinearity between them",
        "{pairs} follow each other with no activation in between. Two linear layers in a row "
        "collapse into one linear map, so the extra layer adds no expressive power.",
        "nn.Sequential(nn.Linear(d_in, 64), nn.ReLU(), nn.Linear(64, n_classes))",
    ),
    "dropout_too_high": _Message(
        WARNING,
        "Dropout probability above 0.5",
        "{layers} drop more than half of the units on every step. That much noise usually "
        "slows or prevents learning; 0.1-0.5 is the usual range.",
        "nn.Dropout(0.3)",
    ),
    "learning_rate_range": _Message(
        WARNING,
        "Learning rate outside the usual range",
        "{optimizer} has lr = {lr:g}; the usual range for it is about {low:g} to {high:g}. "
        "{consequence} This range is a rule of thumb, not a law.",
        "optimizer = torch.optim.{optimizer}(model.parameters(), lr={suggested:g})",
    ),
    "params_not_in_optimizer": _Message(
        WARNING,
        "Some trainable parameters are not in the optimizer",
        "{n} parameter tensor(s) require gradients but the optimizer does not hold them "
        "({names}). They will get gradients but never change. If you froze them on purpose, "
        "set requires_grad=False instead.",
        "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # all of them\n"
        "# or freeze explicitly: for p in layer.parameters(): p.requires_grad_(False)",
    ),
}

RUNTIME_CODES = (
    "vanishing_gradient",
    "exploding_gradient",
    "dying_relu",
    "oscillating_loss",
    "slow_convergence",
    "improper_output_activation",
    "improper_loss",
    "abnormal_data",
    "overfitting",
    "unnormalized_input",
    "nan_loss",
)
STATIC_CODES = (
    "softmax_before_cross_entropy",
    "bce_without_sigmoid",
    "cross_entropy_one_output",
    "linear_without_activation",
    "dropout_too_high",
    "learning_rate_range",
    "params_not_in_optimizer",
)


def validate_thresholds(thresholds: dict | None) -> dict[str, float]:
    """Defaults overridden by ``thresholds``; unknown names and bad values fail clearly."""
    merged = dict(DEFAULT_THRESHOLDS)
    if thresholds is None:
        return merged
    if not isinstance(thresholds, dict):
        raise TypeError(f"thresholds must be a dict like {{'theta': 0.8}}, got {type(thresholds).__name__}")
    for key, value in thresholds.items():
        if key not in merged:
            raise ValueError(f"thresholds has an unknown name {key!r}; known names: {sorted(merged)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"thresholds[{key!r}] must be a finite number >= 0, got {value!r}")
        merged[key] = value
    return merged


# ---------------------------------------------------------------- static checks

# Modules that neither add nor remove nonlinearity between two linear layers.
TRANSPARENT = (nn.Dropout, nn.Identity, nn.Flatten, nn.BatchNorm1d, nn.LayerNorm)


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Named modules without children, in registration order."""
    return [
        (name or type(model).__name__, m) for name, m in model.named_modules() if not any(True for _ in m.children())
    ]


def loss_name(loss_fn: Any) -> str | None:
    """The loss's class name (``CrossEntropyLoss``) or functional name, None if unknown."""
    if loss_fn is None:
        return None
    if isinstance(loss_fn, nn.Module):
        return type(loss_fn).__name__
    name = getattr(loss_fn, "__name__", None)
    return _FUNCTIONAL_LOSSES.get(name)


_FUNCTIONAL_LOSSES = {
    "cross_entropy": "CrossEntropyLoss",
    "nll_loss": "NLLLoss",
    "mse_loss": "MSELoss",
    "l1_loss": "L1Loss",
    "binary_cross_entropy": "BCELoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "smooth_l1_loss": "SmoothL1Loss",
    "huber_loss": "HuberLoss",
    "kl_div": "KLDivLoss",
    "multi_margin_loss": "MultiMarginLoss",
}


def static_checks(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, loss_fn: Any, thresholds: dict[str, float]
) -> list[tuple[str, dict[str, Any]]]:
    """Lint the setup before the first step; returns (code, evidence) pairs."""
    found: list[tuple[str, dict[str, Any]]] = []
    loss = loss_name(loss_fn)
    leaves = leaf_modules(model)
    last_name, last = leaves[-1] if leaves else ("", None)
    last_linear = next(((n, m) for n, m in reversed(leaves) if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))), None)
    # Registration order is execution order only for Sequential models; the output-layer rules
    # therefore apply to Sequential models or models whose last registered leaf is unambiguous.
    sequential = isinstance(model, nn.Sequential)

    if loss == "CrossEntropyLoss" and isinstance(last, nn.Softmax) and sequential:
        found.append(("softmax_before_cross_entropy", {"layer": last_name}))
    if loss == "BCELoss" and sequential and last is not None and not isinstance(last, nn.Sigmoid):
        found.append(("bce_without_sigmoid", {"layer": last_name, "layer_type": type(last).__name__}))
    if loss in ("CrossEntropyLoss", "NLLLoss") and last_linear is not None:
        name, layer = last_linear
        units = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        if units == 1:
            found.append(("cross_entropy_one_output", {"layer": name}))

    pairs = []
    for container_name, container in model.named_modules():
        if not isinstance(container, nn.Sequential):
            continue
        previous = None
        for child_name, child in container.named_children():
            full = f"{container_name}.{child_name}" if container_name else child_name
            if isinstance(child, nn.Linear):
                if previous is not None:
                    pairs.append(f"{previous} and {full}")
                previous = full
            elif not isinstance(child, TRANSPARENT):
                previous = None
    if pairs:
        found.append(("linear_without_activation", {"pairs": "; ".join(pairs)}))

    high = [
        f"{n} (p={m.p:g})"
        for n, m in leaves
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > thresholds["dropout_max"]
    ]
    if high:
        found.append(("dropout_too_high", {"layers": ", ".join(high)}))

    if optimizer is not None:
        opt_name = type(optimizer).__name__
        lr = optimizer.param_groups[0].get("lr")
        if isinstance(lr, torch.Tensor):
            lr = float(lr)
        if opt_name in LR_RANGES and isinstance(lr, (int, float)):
            low, high_lr = LR_RANGES[opt_name]
            if lr > high_lr or lr < low:
                too_high = lr > high_lr
                found.append(
                    (
                        "learning_rate_range",
                        {
                            "optimizer": opt_name,
                            "lr": lr,
                            "low": low,
                            "high": high_lr,
                            "suggested": 1e-3 if opt_name != "SGD" else 0.01,
                            "consequence": (
                                "Too high a rate makes the loss jump around or become NaN."
                                if too_high
                                else "Too low a rate makes training crawl."
                            ),
                        },
                    )
                )
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            found.append(("params_not_in_optimizer", {"n": len(missing), "names": shown}))
    return found


# ---------------------------------------------------------------- task inference

# AutoTrainer's ActSet / LossSet: what each task and loss expects from the last layer.
LOSS_SETS = {
    "multiclass": ("CrossEntropyLoss", "NLLLoss", "MultiMarginLoss"),
    "binary": ("BCEWithLogitsLoss", "BCELoss", "SoftMarginLoss"),
    "multilabel": ("BCEWithLogitsLoss", "BCELoss", "MultiLabelSoftMarginLoss"),
    "regression": ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss"),
}
EXPECTED_ACTIVATION = {
    "CrossEntropyLoss": ("none (raw logits)", ("linear", "log_softmax")),
    "NLLLoss": ("log-softmax", ("log_softmax",)),
    "BCEWithLogitsLoss": ("none (raw logits)", ("linear",)),
    "BCELoss": ("a sigmoid", ("sigmoid",)),
}
ACTIVATION_FIX = {
    "CrossEntropyLoss": "# CrossEntropyLoss wants raw scores: end the model with the Linear layer\n"
    "model = nn.Sequential(..., nn.Linear(64, n_classes))",
    "NLLLoss": "# NLLLoss wants log-probabilities\n"
    "model = nn.Sequential(..., nn.Linear(64, n_classes), nn.LogSoftmax(dim=1))",
    "BCEWithLogitsLoss": "# BCEWithLogitsLoss wants raw scores: drop the final activation\n"
    "model = nn.Sequential(..., nn.Linear(64, 1))",
    "BCELoss": "# BCELoss wants probabilities; better, switch to BCEWithLogitsLoss and drop it\n"
    "model = nn.Sequential(..., nn.Linear(64, 1), nn.Sigmoid())",
}
LOSS_FIX = {
    "multiclass": "loss_fn = nn.CrossEntropyLoss()  # integer class targets, raw logits",
    "binary": "loss_fn = nn.BCEWithLogitsLoss()  # float 0/1 targets, one raw score per sample",
    "multilabel": "loss_fn = nn.BCEWithLogitsLoss()  # multi-hot float targets",
    "regression": "loss_fn = nn.MSELoss()",
}
ACTIVATION_LAYERS = {
    nn.Softmax: "softmax",
    nn.LogSoftmax: "log_softmax",
    nn.Sigmoid: "sigmoid",
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.LeakyReLU: "relu",
}


def infer_task(targets: torch.Tensor, outputs: torch.Tensor) -> str | None:
    """AutoTrainer's T((x, y), O): the prediction task from one batch of targets and outputs."""
    if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        if targets.dim() == 1 and outputs.dim() >= 2 and outputs.shape[1] >= 2:
            return "multiclass"
        if targets.dim() == 1 and (outputs.dim() == 1 or outputs.shape[-1] == 1) and targets.max() <= 1:
            return "binary"
        return "multiclass" if targets.dim() == 1 else None
    if targets.dtype.is_floating_point:
        binary_values = bool(((targets == 0) | (targets == 1)).all())
        if not binary_values:
            return "regression"
        if targets.dim() == 1 or targets.shape[-1] == 1:
            return "binary"
        if targets.dim() == 2 and bool((targets.sum(1) == 1).all()):
            return "multiclass"  # one-hot targets
        return "multilabel"
    return None


def infer_output_activation(outputs: torch.Tensor, last_module: nn.Module | None) -> str:
    """Which activation produced ``outputs``: the last executed layer if it is an activation,
    otherwise read from the values (softmax rows sum to 1, sigmoid lies in (0, 1), ...)."""
    for cls, name in ACTIVATION_LAYERS.items():
        if isinstance(last_module, cls):
            return name
    out = outputs.detach().float()
    if out.numel() == 0 or not bool(torch.isfinite(out).all()):
        return "linear"
    lo, hi = float(out.min()), float(out.max())
    if out.dim() >= 2 and out.shape[1] >= 2:
        sums = out.sum(1)
        if lo >= 0 and hi <= 1 and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3)):
            return "softmax"
        lse = torch.logsumexp(out, 1)
        if hi <= 0 and bool(torch.allclose(lse, torch.zeros_like(lse), atol=1e-3)):
            return "log_softmax"
    if lo > 0 and hi < 1:
        return "sigmoid"
    if lo >= 0 and float((out == 0).float().mean()) >= 0.05:
        return "relu"
    return "linear"


def output_mismatch(task: str, loss: str, activation: str) -> dict[str, Any] | None:
    """Evidence when ``activation`` is not in the ActSet of (task, loss), else None."""
    if loss not in EXPECTED_ACTIVATION or loss not in LOSS_SETS.get(task, ()):
        return None
    expected, allowed = EXPECTED_ACTIVATION[loss]
    if activation in allowed:
        return None
    return {
        "task": task,
        "loss": loss,
        "expected": expected,
        "activation": {"linear": "no activation"}.get(activation, f"a {activation}"),
        "fix": ACTIVATION_FIX[loss],
    }


def loss_mismatch(task: str, loss: str) -> dict[str, Any] | None:
    """Evidence when ``loss`` is not in the LossSet of ``task``, else None."""
    if task not in LOSS_SETS or loss in LOSS_SETS[task]:
        return None
    known = {name for names in LOSS_SETS.values() for name in names}
    if loss not in known:
        return None  # custom losses are the user's business (AutoTrainer §4.2)
    return {"task": task, "loss": loss, "expected": ", ".join(LOSS_SETS[task]), "fix": LOSS_FIX[task]}


# ---------------------------------------------------------------- epoch-level trends


def oscillation(accs: list[float], zeta: float) -> list[float]:
    """AutoTrainer OL: gaps A[i] - B[i] >= zeta between the i-th local maximum and minimum."""
    peaks, troughs = [], []
    for i in range(1, len(accs) - 1):
        if accs[i] > accs[i - 1] and accs[i] >= accs[i + 1]:
            peaks.append(accs[i])
        elif accs[i] < accs[i - 1] and accs[i] <= accs[i + 1]:
            troughs.append(accs[i])
    if len(accs) >= 2 and accs[-1] < accs[-2]:
        troughs.append(accs[-1])  # a fall at the end is a trough we can already see
    return [a - b for a, b in zip(peaks, troughs) if a - b >= zeta]


def slow(accs: list[float], delta: float) -> bool:
    """AutoTrainer SC: no epoch improved accuracy by more than ``delta``."""
    return all(b - a <= delta for a, b in zip(accs, accs[1:]))


def overfit(train: list[float], val: list[float], drop: float, gap: float) -> bool:
    """SCRAM overfitting: validation accuracy fell over two epochs while training accuracy rose.

    Deviation: the fall must total ``drop`` and validation must end ``gap`` below training
    accuracy, so that a small validation set wobbling on a hard dataset is not reported.
    """
    if len(train) < 3 or len(val) < 3:
        return False
    v0, v1, v2 = val[-3:]
    t0, t1, t2 = train[-3:]
    return v2 < v1 < v0 and v0 - v2 >= drop and t2 > t1 > t0 and t2 - v2 >= gap


def fmt_acc(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1%}"
