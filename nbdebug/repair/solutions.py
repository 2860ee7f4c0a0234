"""AutoTrainer's nine solutions (§4.4) as changes of a :class:`~nbdebug.repair.setup.Setup`, and
the default order in which the scheduler tries them for each problem (Table 6, left to right).

Each solution returns a :class:`Change` (the new setup, a readable diff, and whether training
may resume from the last healthy checkpoint) or a :class:`Skip` with the reason it cannot
apply. Only the learning rate (S6) and gradient clipping (S3) resume: they change the updates
from now on, and the weights up to a healthy epoch are as good a start as any. Every other
solution changes the architecture, the initial weights, the data, the batches, the optimizer
or the loss, and retrains from the pre-training weights as the paper does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .data import Data
from .setup import SGD_FAMILY, Setup, Standardization, default_lr
from .surgery import (
    HIDDEN_ACTIVATIONS,
    NORMS,
    OUTPUT_ACTIVATIONS,
    PARAMETRIC,
    Call,
    ToLogits,
    batch_norm_for,
    describe,
    get_module,
    init_layer,
    output_layer,
    set_module,
)

CLIP_VALUE = 10.0  # S3: every gradient value clipped to [-10, 10] (AutoTrainer, after [34, 35])
SATURATING = (nn.Sigmoid, nn.Tanh, nn.Softsign, nn.Hardtanh, nn.Hardsigmoid, nn.LogSigmoid)
RESUMES = "it changes only the updates from here on, so the weights of the last healthy epoch are kept"
RESTARTS = "AutoTrainer's way: this change needs a fresh start"


@dataclass(frozen=True)
class Context:
    """What a solution may look at: the problem, the layers in the order they run, the model's
    output activation (inferred from its outputs), the training data and the thresholds."""

    problem: str
    evidence: dict[str, Any]
    calls: list[Call]
    activation: str
    train: Data
    thresholds: dict[str, float]


@dataclass(frozen=True)
class Change:
    setup: Setup
    diff: list[str]
    resume: bool = False


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Solution:
    """A named solution; ``apply(setup, context)`` returns a Change or a Skip."""

    name: str
    title: str
    apply: Callable[[Setup, Context], Change | Skip] = field(repr=False)


def _grouped(edits: list[tuple[str, str, str]]) -> list[str]:
    """Diff lines of (path, before, after) edits, one line per identical edit:
    ``model.1, model.3: Sigmoid() -> ReLU()``."""
    groups: dict[tuple[str, str], list[str]] = {}
    for path, before, after in edits:
        groups.setdefault((before, after), []).append(f"model.{path}")
    return [f"{', '.join(paths)}: {before} -> {after}" for (before, after), paths in groups.items()]


def _runs(change: Change, context: Context) -> Change | Skip:
    """The change, or a Skip when the repaired model no longer runs on training inputs."""
    probe = change.setup.model
    x = context.train.first_inputs()
    try:
        with torch.no_grad():
            was = probe.training
            probe.train()
            probe(x)
            probe.train(was)
    except Exception as err:  # any failure of the user's forward() means the surgery does not fit
        return Skip(f"the changed model does not run ({type(err).__name__}: {err})")
    return change


def s1_batch_norm(setup: Setup, context: Context) -> Change | Skip:
    """S1: batch normalization after every hidden Linear/Conv layer, i.e. before its activation."""
    calls, out = context.calls, output_layer(context.calls)
    if out is None:
        return Skip("the model has no Linear or Conv layer")
    new, reasons, done = setup.but(), [], set()
    diff: list[tuple[str, str, str]] = []
    for i, call in enumerate(calls[:out]):
        if not isinstance(call.module, PARAMETRIC) or call.path in done:
            continue
        done.add(call.path)
        following = calls[i + 1].module if i + 1 < len(calls) else None
        if isinstance(following, NORMS):
            reasons.append(f"{call.path} is already followed by {type(following).__name__}")
            continue
        norm = batch_norm_for(call)
        if isinstance(norm, str):
            reasons.append(f"{call.path}: {norm}")
            continue
        layer = get_module(new.model, call.path)
        set_module(new.model, call.path, nn.Sequential(layer, norm))
        diff.append((call.path, describe(layer), f"{describe(layer)} + {describe(norm)}"))
    if not diff:
        return Skip("; ".join(reasons) or "the model has no hidden Linear or Conv layer")
    return _runs(Change(new, _grouped(diff)), context)


def _output_target(loss: str) -> str | None:
    return {
        "CrossEntropyLoss": "none",
        "BCEWithLogitsLoss": "none",
        "NLLLoss": "log_softmax",
        "BCELoss": "sigmoid",
    }.get(loss)


def _hidden_activations(setup: Setup, context: Context) -> Change | Skip:
    calls, out = context.calls, output_layer(context.calls)
    hidden: dict[str, nn.Module] = {
        c.path: c.module for c in calls[: out or 0] if isinstance(c.module, HIDDEN_ACTIVATIONS)
    }
    if not hidden:
        return Skip(
            "no activation module runs before the output layer; activations applied in forward() "
            "(e.g. F.relu) cannot be replaced by model surgery"
        )
    saturating: dict[str, nn.Module] = {p: m for p, m in hidden.items() if isinstance(m, SATURATING)}
    relus: dict[str, nn.Module] = {p: m for p, m in hidden.items() if type(m) in (nn.ReLU, nn.ReLU6)}
    targets: dict[str, nn.Module]
    make: Callable[[], nn.Module]
    if saturating:
        targets, make = saturating, nn.ReLU
    elif relus:
        targets, make = relus, lambda: nn.LeakyReLU(0.01)
    else:
        kinds = ", ".join(sorted({type(m).__name__ for m in hidden.values()}))
        return Skip(f"the hidden activations ({kinds}) neither saturate nor are plain ReLUs")
    new = setup.but()
    diff: list[tuple[str, str, str]] = []
    for path, module in targets.items():
        replacement = make()
        set_module(new.model, path, replacement)
        diff.append((path, describe(module), describe(replacement)))
    if saturating:
        # PyTorch's default init scales each ReLU layer's signal by about 1/6 (Keras's Glorot
        # default, under which AutoTrainer measured S2, by 1/2), so deep stacks still vanish:
        # the layers feeding the new ReLUs get He initialization, the init made for ReLU.
        for i, call in enumerate(calls[: out or 0]):
            if call.path in targets:
                feeding = next((c for c in reversed(calls[:i]) if isinstance(c.module, PARAMETRIC)), None)
                if feeding is not None and not any(d[0] == feeding.path for d in diff):
                    init_layer(get_module(new.model, feeding.path), "he")
                    diff.append((feeding.path, "initial weights", "kaiming_normal_ (He, for ReLU), zero biases"))
    return _runs(Change(new, _grouped(diff)), context)


def _output_activation(setup: Setup, context: Context) -> Change | Skip:
    loss, calls = setup.loss_name, context.calls
    wanted = _output_target(loss)
    if wanted is None:
        return Skip(f"nbdebug knows no output activation for {loss}")
    out = output_layer(calls)
    after = [c for c in calls[(out + 1 if out is not None else 0) :] if isinstance(c.module, OUTPUT_ACTIVATIONS)]
    new = setup.but()
    if after:
        last = after[-1]
        replacement: nn.Module = {"none": nn.Identity(), "log_softmax": nn.LogSoftmax(dim=1), "sigmoid": nn.Sigmoid()}[
            wanted
        ]
        set_module(new.model, last.path, replacement)
        return _runs(Change(new, [f"model.{last.path}: {describe(last.module)} -> {describe(replacement)}"]), context)
    act = context.activation
    if act == "softmax" and loss in ("CrossEntropyLoss", "NLLLoss"):
        wrapped, what = ToLogits(new.model, "log"), "log(softmax) = log_softmax, which " + loss + " takes"
    elif act == "sigmoid" and loss == "BCEWithLogitsLoss":
        wrapped, what = ToLogits(new.model, "logit"), "log(p / (1 - p)), the logit BCEWithLogitsLoss takes"
    else:
        return Skip(f"the output activation ({act}) is applied in forward(), and nbdebug cannot undo it there")
    diff = [f"model: output {act} applied in forward() -> wrapped in ToLogits: {what}"]
    return _runs(Change(setup.but(model=wrapped), diff), context)


def s2_activations(setup: Setup, context: Context) -> Change | Skip:
    """S2: saturating hidden activations -> ReLU (plain ReLUs -> LeakyReLU(0.01)); for an improper
    output activation, the output activation the loss expects."""
    if context.problem == "improper_output_activation":
        return _output_activation(setup, context)
    return _hidden_activations(setup, context)


def s3_clip(setup: Setup, context: Context) -> Change | Skip:
    """S3: clip every gradient value to [-10, 10]."""
    if setup.clip_value is not None:
        return Skip(f"gradients are already clipped to [-{setup.clip_value:g}, {setup.clip_value:g}]")
    diff = [f"gradient clipping: none -> each value clipped to [-{CLIP_VALUE:g}, {CLIP_VALUE:g}]"]
    return Change(setup.but(clip_value=CLIP_VALUE), diff, resume=True)


def s4_init(setup: Setup, context: Context) -> Change | Skip:
    """S4: re-initialize every Linear/Conv layer (Xavier uniform weights, zero biases)."""
    new = setup.but()
    layers = [m for m in new.model.modules() if isinstance(m, PARAMETRIC)]
    if not layers:
        return Skip("the model has no Linear or Conv layer to re-initialize")
    for layer in layers:
        init_layer(layer)
    kinds = ", ".join(sorted({type(m).__name__ for m in layers}))
    return Change(new, [f"init: {len(layers)} layers ({kinds}) -> xavier_uniform_ weights, zero biases"])


def s5_batch_size(setup: Setup, context: Context) -> Change | Skip:
    """S5: double the batch size (at least 32, at most 256)."""
    fixed = context.train.fixed_batches
    if fixed:
        return Skip(fixed)
    if setup.batch_size >= 256:
        return Skip(f"the batch size is already {setup.batch_size} (AutoTrainer stops doubling at 256)")
    size = min(256, max(32, 2 * setup.batch_size))
    return Change(setup.but(batch_size=size), [f"batch_size: {setup.batch_size} -> {size}"])


def s6_learning_rate(setup: Setup, context: Context) -> Change | Skip:
    """S6: the optimizer's default rate, or 10x up (slow convergence) or down (everything else)."""
    up = context.problem == "slow_convergence"
    base = default_lr(setup.optimizer_class())
    lr = setup.lr
    new = (base if lr < base else lr * 10) if up else (base if lr > base else lr / 10)
    return Change(setup.but(lr=new), [f"lr: {lr:g} -> {new:g}"], resume=True)


def s7_optimizer(setup: Setup, context: Context) -> Change | Skip:
    """S7: another optimizer with momentum at its default rate: SGD -> Adam, otherwise SGD(momentum 0.9)."""
    before = setup.optimizer_label()
    if setup.optimizer_class() in SGD_FAMILY:
        new = setup.but(optimizer="adam", lr=1e-3, momentum=None)
    else:
        new = setup.but(optimizer="sgd", lr=1e-2, momentum=0.9)
    return Change(new, [f"optimizer: {before} -> {new.optimizer_label()}"])


def s8_loss(setup: Setup, context: Context) -> Change | Skip:
    """S8: the loss of the task: CrossEntropyLoss (NLLLoss after a log-softmax) for several classes,
    BCEWithLogitsLoss (BCELoss after a sigmoid) for one output unit."""
    task = context.evidence.get("task", setup.task)
    if task == "multiclass":
        loss: nn.Module = nn.NLLLoss() if context.activation == "log_softmax" else nn.CrossEntropyLoss()
    elif task == "binary":
        loss = nn.BCELoss() if context.activation == "sigmoid" else nn.BCEWithLogitsLoss()
    else:
        return Skip(f"fit() trains classifiers; no loss is known for a {task} task")
    if type(loss).__name__ == setup.loss_name:
        return Skip(f"the loss is already {setup.loss_name}")
    return Change(setup.but(loss=loss), [f"loss: {setup.loss_name} -> {type(loss).__name__}"])


def s9_data(setup: Setup, context: Context) -> Change | Skip:
    """S9: standardize the inputs with the training split's per-feature mean and std, and drop
    the training samples that hold NaN or Inf."""
    if not context.train.first_inputs().is_floating_point():
        return Skip("the inputs are not floating point (e.g. token ids); there is nothing to standardize")
    if setup.standardize is not None:
        return Skip("the inputs are already standardized by an earlier repair")
    mean, std, n, bad, rms = context.train.statistics()
    if not bad and rms <= context.thresholds["input_scale"]:
        return Skip(f"the training inputs are finite and on a normal scale (root-mean-square {rms:.3g})")
    diff = [f"inputs: standardized with the per-feature mean and std of the {n} training samples (rms was {rms:.3g})"]
    if bad:
        diff.append(f"train: {bad} samples holding NaN/Inf dropped; elsewhere NaN/Inf become the mean")
    standardize = Standardization(mean, std, n, bad, drop_nonfinite=bool(bad))
    return Change(setup.but(standardize=standardize), diff)


SOLUTIONS: dict[str, Solution] = {
    s.name: s
    for s in (
        Solution("S1", "add batch normalization before the activations", s1_batch_norm),
        Solution("S2", "substitute activation functions", s2_activations),
        Solution("S3", "clip gradients", s3_clip),
        Solution("S4", "substitute the initializer", s4_init),
        Solution("S5", "adjust the batch size", s5_batch_size),
        Solution("S6", "adjust the learning rate", s6_learning_rate),
        Solution("S7", "substitute the optimizer", s7_optimizer),
        Solution("S8", "substitute the loss", s8_loss),
        Solution("S9", "normalize and clean the input data", s9_data),
    )
}

# AutoTrainer's Table 6, left to right, for its eight problems. Deviation: abnormal data also
# tries S1, S4 and S6, since on clean inputs (S9 skipped) its large layer outputs come from the
# weights (normalized by S1, or replaced from the start by S4; AutoTrainer's §4.4 names a bad
# initialization as a cause of several problems) or a learning rate that blows them up. SCRAM's
# NaN loss tries clean data, a lower learning rate, then clipping; unnormalized input S9.
DEFAULT_ORDER: dict[str, tuple[str, ...]] = {
    "vanishing_gradient": ("S2", "S1"),
    "exploding_gradient": ("S2", "S1", "S3"),
    "dying_relu": ("S2", "S1", "S4"),
    "oscillating_loss": ("S7", "S6", "S4", "S5"),
    "slow_convergence": ("S7", "S6", "S4"),
    "improper_output_activation": ("S2",),
    "improper_loss": ("S8",),
    "abnormal_data": ("S9", "S1", "S4", "S6"),
    "nan_loss": ("S9", "S6", "S3"),
    "unnormalized_input": ("S9",),
}
