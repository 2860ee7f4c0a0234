"""The scenarios of the monitor's detection benchmark (benchmarks.monitor_detect): what a
scenario is, the bug kinds and what counts as finding them, the data, and the "mlp" family
(plain MLPs and a small CNN on circles, blobs and digits; the suite's original scenarios).

A bug scenario names the codes that detect it (``expect``), the causes that diagnose it
(``causes``: a warning with an expected code and one of these causes is the right diagnosis)
and the codes that are legitimate side effects of the same bug (``related``: neither hit nor
false positive). A healthy scenario expects nothing; any warning on it is a false positive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.datasets import load_digits, make_blobs, make_circles
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

from ._common import SmallCNN

# ---------------------------------------------------------------- scenarios and bug kinds


@dataclass
class Scenario:
    name: str
    data: str
    build: Callable[[int, int], nn.Module]  # (d_in, n_classes) -> model
    opt: str = "adam"  # "adam", "adamw", "sgd", "sgdm" (momentum 0.9)
    lr: float = 1e-3
    epochs: int = 12
    batch: int = 32
    loss: str = "ce"
    transform: str = "standard"
    label_noise: float = 0.0
    n_train: int | None = None
    expect: tuple = ()  # codes that detect the bug; empty for healthy runs
    related: tuple = ()
    manifest: str = "failure"  # "failure", "always", "overfit"
    only_head_in_opt: bool = False
    seed: int = 0
    family: str = "mlp"
    causes: tuple = ()  # causes that, with an expected code, diagnose the bug
    weight_decay: float = 0.0
    schedule: str | None = None  # None, "cosine" or "step" (per epoch)
    optimizer_on_copy: bool = False  # the optimizer holds a deep copy's parameters
    reference: str = ""  # the healthy run whose best validation accuracy the manifest rule compares with

    @property
    def healthy(self) -> bool:
        return not self.expect


@dataclass(frozen=True)
class BugKind:
    """What detects a kind of injected bug, the causes that diagnose it, and its side effects."""

    detect: tuple[str, ...]
    causes: tuple[str, ...]
    related: tuple[str, ...] = ()
    manifest: str = "failure"


# The bug kinds injected into every family (where they make sense, see monitor_families).
KINDS: dict[str, BugKind] = {
    "lr_too_high": BugKind(
        (
            "exploding_gradient",
            "nan_loss",
            "oscillating_loss",
            "dying_relu",
            "abnormal_data",
            "class_collapse",
            "learning_rate_range",
        ),
        ("learning_rate",),
        ("slow_convergence", "vanishing_gradient"),
    ),
    "lr_too_low": BugKind(("slow_convergence", "learning_rate_range"), ("learning_rate",)),
    "sigmoid_stack": BugKind(
        ("vanishing_gradient", "slow_convergence", "saturating_activations"),
        ("saturating_activations",),
        ("class_collapse",),
    ),
    "large_init": BugKind(
        ("exploding_gradient", "nan_loss", "abnormal_data", "dying_relu", "oscillating_loss"),
        ("initialization",),
        ("slow_convergence", "vanishing_gradient", "class_collapse"),
    ),
    "negative_bias": BugKind(
        ("dying_relu",), ("initialization",), ("slow_convergence", "vanishing_gradient", "class_collapse")
    ),
    "raw_inputs": BugKind(
        ("unnormalized_input",),
        ("raw_pixels",),
        (
            "abnormal_data",
            "exploding_gradient",
            "nan_loss",
            "oscillating_loss",
            "dying_relu",
            "slow_convergence",
            "class_collapse",
        ),
        manifest="always",
    ),
    "wrong_loss": BugKind(("improper_loss",), ("loss",), ("slow_convergence",)),
    "softmax_output": BugKind(
        ("improper_output_activation", "softmax_before_cross_entropy"), ("output_activation",), ("slow_convergence",)
    ),
    "nan_data": BugKind(
        ("abnormal_data", "nan_loss"), ("nan_in_data",), ("exploding_gradient", "slow_convergence", "class_collapse")
    ),
    "frozen_backbone": BugKind(
        ("slow_convergence", "params_not_in_optimizer", "frozen_parameters"), ("frozen_parameters",)
    ),
    "optimizer_on_copy": BugKind(
        ("params_not_in_optimizer",),
        ("optimizer_parameters",),
        ("slow_convergence", "class_collapse"),
        manifest="always",
    ),
    "overfitting": BugKind(
        ("overfitting",),
        # the runs flip 30% of their labels (see monitor_families), so this cause is right too
        ("no_regularization", "label_noise"),
        ("oscillating_loss",),
        manifest="overfit",
    ),
}


def bug(name: str, kind: str, **fields) -> Scenario:
    """A scenario of bug ``kind``: its codes, cause and manifest rule from :data:`KINDS`."""
    k = KINDS[kind]
    fields.setdefault("manifest", k.manifest)
    return Scenario(name, expect=k.detect, causes=k.causes, related=k.related, **fields)


# ---------------------------------------------------------------- data


def dataset(name: str, seed: int, transform: str = "standard", label_noise: float = 0.0, n_train: int | None = None):
    """(Xtr, ytr, Xva, yva, n_classes) as tensors: a stratified 70/30 split of ``name``.

    ``transform``: "standard" (standardised with training statistics), "x255" (digits' raw
    0..16 pixels scaled to 0..255, unstandardised), "nan" (standardised, then 3% of the
    training rows get a NaN in their first feature) or "tokens" (digits' raw pixel values
    0..16 as integer tokens)."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
    elif name == "circles":
        X, y = make_circles(n_samples=1000, noise=0.1, factor=0.5, random_state=seed)
    elif name == "noisy_circles":
        X, y = make_circles(n_samples=1000, noise=0.25, factor=0.6, random_state=seed)
    elif name == "blobs":
        X, y = make_blobs(n_samples=1200, centers=4, n_features=8, cluster_std=2.5, random_state=seed)
    else:
        raise ValueError(name)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    if n_train:
        Xtr, ytr = Xtr[:n_train], ytr[:n_train]
    if transform in ("standard", "nan"):
        mean, std = Xtr.mean(0), Xtr.std(0) + 1e-8
        Xtr, Xva = (Xtr - mean) / std, (Xva - mean) / std
    elif transform == "x255":  # raw pixels: digits are 0..16, scaled to 0..255
        Xtr, Xva = Xtr * 255 / 16, Xva * 255 / 16
    if transform == "nan":
        rng = np.random.default_rng(seed)
        Xtr = Xtr.copy()
        Xtr[rng.random(len(Xtr)) < 0.03, 0] = np.nan
    n_classes = int(y.max()) + 1
    ytr = ytr.copy()
    if label_noise:
        rng = np.random.default_rng(seed + 1)
        flip = rng.random(len(ytr)) < label_noise
        ytr[flip] = rng.integers(0, n_classes, flip.sum())
    dtype = torch.long if transform == "tokens" else torch.float32
    Xtr, Xva = torch.tensor(Xtr, dtype=dtype), torch.tensor(Xva, dtype=dtype)
    return Xtr, torch.tensor(ytr), Xva, torch.tensor(yva), n_classes


# ---------------------------------------------------------------- models of the mlp family


def mlp(d_in, widths, d_out, act=nn.ReLU, final=None, dropout=0.0, bn=False):
    layers, d = [], d_in
    for w in widths:
        layers.append(nn.Linear(d, w))
        if bn:
            layers.append(nn.BatchNorm1d(w))
        layers.append(act())
        if dropout:
            layers.append(nn.Dropout(dropout))
        d = w
    layers.append(nn.Linear(d, d_out))
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class SoftmaxMLP(nn.Module):
    """Applies softmax in forward(): invisible to structure-only lint."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, 64), nn.Linear(64, d_out)

    def forward(self, x):
        return F.softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


def scaled_init(model, gain):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, gain / math.sqrt(m.in_features))
    return model


def negative_bias(model, value):
    """Set the biases of every hidden Linear layer (all but the last) to ``value``."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for m in linears[:-1]:
            m.bias.fill_(value)
    return model


def digits_mlp(d, k):
    return mlp(d, [64], k)


# ---------------------------------------------------------------- the mlp family

# The healthy run each dataset's bugs are compared with (the manifest rule).
MLP_REFERENCES = {
    "digits": "healthy_digits_adam_s0",
    "circles": "healthy_circles_s0",
    "blobs": "healthy_blobs_tanh_s0",
    "noisy_circles": "hard_noisy_circles_s0",
}


def scenarios() -> list[Scenario]:
    """The mlp family: AutoTrainer's eight problems, SCRAM's three, the static mistakes, and
    healthy and hard-but-healthy runs (three seeds each)."""
    lr_side_effects = ("exploding_gradient", "abnormal_data", "dying_relu", "nan_loss", "slow_convergence")
    bugs = [
        # AutoTrainer's eight
        Scenario(
            "vanishing_gradient",
            "circles",
            lambda d, k: mlp(d, [16] * 10, k, act=nn.Sigmoid),
            opt="sgd",
            lr=0.05,
            epochs=8,
            expect=("vanishing_gradient",),
            causes=("saturating_activations",),
            related=("slow_convergence",),
        ),
        Scenario(
            "exploding_gradient",
            "digits",
            lambda d, k: scaled_init(mlp(d, [64] * 8, k), 2.5),
            opt="sgd",
            lr=0.05,
            epochs=3,
            expect=("exploding_gradient",),
            causes=("initialization",),
            related=("abnormal_data", "nan_loss", "dying_relu", "oscillating_loss", "slow_convergence"),
        ),
        Scenario(
            "dying_relu",
            "digits",
            lambda d, k: negative_bias(mlp(d, [64, 64], k), -8.0),
            epochs=6,
            expect=("dying_relu",),
            causes=("initialization",),
            related=("slow_convergence", "vanishing_gradient"),
        ),
        Scenario(
            "oscillating_loss",
            "digits",
            digits_mlp,
            opt="sgd",
            lr=1.0,
            epochs=12,
            batch=16,
            expect=("oscillating_loss",),
            causes=("learning_rate",),
            related=lr_side_effects,
        ),
        Scenario(
            "slow_convergence",
            "digits",
            digits_mlp,
            opt="sgd",
            lr=2e-5,
            epochs=6,
            expect=("slow_convergence",),
            causes=("learning_rate",),
        ),
        Scenario(
            "improper_output_activation",
            "digits",
            lambda d, k: SoftmaxMLP(d, k),
            opt="sgd",
            lr=0.05,
            epochs=6,
            expect=("improper_output_activation",),
            causes=("output_activation",),
            related=("slow_convergence",),
        ),
        Scenario(
            "improper_loss",
            "digits",
            digits_mlp,
            opt="sgd",
            lr=0.01,
            loss="mse",
            epochs=6,
            expect=("improper_loss",),
            causes=("loss",),
            related=("slow_convergence",),
        ),
        Scenario(
            "abnormal_data",
            "digits",
            digits_mlp,
            transform="nan",
            epochs=4,
            expect=("abnormal_data",),
            causes=("nan_in_data",),
            related=("nan_loss", "exploding_gradient"),
        ),
        # SCRAM's three; the overfitting run has 40% label noise, so either cause is right
        Scenario(
            "overfitting",
            "digits",
            lambda d, k: mlp(d, [512, 512], k),
            epochs=40,
            n_train=300,
            label_noise=0.4,
            manifest="overfit",
            expect=("overfitting",),
            causes=("no_regularization", "label_noise"),
            related=("oscillating_loss",),
        ),
        Scenario(
            "unnormalized_input",
            "digits",
            digits_mlp,
            transform="x255",
            opt="sgd",
            lr=0.01,
            epochs=4,
            manifest="always",
            expect=("unnormalized_input",),
            causes=("raw_pixels",),
            related=(*lr_side_effects, "oscillating_loss"),
        ),
        Scenario(
            "nan_loss",
            "digits",
            digits_mlp,
            opt="sgd",
            lr=1e10,
            epochs=2,
            expect=("nan_loss",),
            causes=("learning_rate",),
            related=("learning_rate_range", "exploding_gradient", "abnormal_data", "dying_relu"),
        ),
        # static mistakes
        Scenario(
            "softmax_before_cross_entropy",
            "digits",
            lambda d, k: mlp(d, [64], k, final=nn.Softmax(dim=1)),
            opt="sgd",
            lr=0.05,
            epochs=4,
            manifest="always",
            expect=("softmax_before_cross_entropy",),
            causes=("output_activation",),
            related=("improper_output_activation", "slow_convergence"),
        ),
        Scenario(
            "bce_without_sigmoid",
            "circles",
            lambda d, k: mlp(d, [16], 1),
            loss="bce",
            epochs=2,
            manifest="always",
            expect=("bce_without_sigmoid",),
            causes=("output_activation",),
        ),
        Scenario(
            "cross_entropy_one_output",
            "circles",
            lambda d, k: mlp(d, [16], 1),
            epochs=2,
            manifest="always",
            expect=("cross_entropy_one_output",),
            causes=("output_layer",),
        ),
        Scenario(
            "linear_without_activation",
            "circles",
            lambda d, k: nn.Sequential(nn.Linear(d, 32), nn.Linear(32, 32), nn.Linear(32, k)),
            epochs=4,
            manifest="always",
            expect=("linear_without_activation",),
            causes=("missing_activation",),
            related=("slow_convergence", "oscillating_loss"),
        ),
        Scenario(
            "dropout_too_high",
            "digits",
            lambda d, k: mlp(d, [64], k, dropout=0.9),
            epochs=4,
            manifest="always",
            expect=("dropout_too_high",),
            causes=("dropout",),
            related=("slow_convergence", "oscillating_loss"),
        ),
        Scenario(
            "learning_rate_range",
            "digits",
            digits_mlp,
            lr=1.0,
            epochs=4,
            manifest="always",
            expect=("learning_rate_range",),
            causes=("learning_rate",),
            related=(*lr_side_effects, "oscillating_loss"),
        ),
        Scenario(
            "params_not_in_optimizer",
            "digits",
            digits_mlp,
            only_head_in_opt=True,
            epochs=4,
            manifest="always",
            expect=("params_not_in_optimizer",),
            causes=("optimizer_parameters",),
        ),
        # a learning-rate blow-up that static lint accepts (lr within the SGD range)
        Scenario(
            "lr_blowup_in_range",
            "digits",
            lambda d, k: mlp(d, [128, 128, 128], k),
            opt="sgdm",
            lr=1.0,
            epochs=4,
            expect=("nan_loss", "exploding_gradient", "dying_relu", "abnormal_data", "oscillating_loss"),
            causes=("learning_rate",),
            related=("slow_convergence",),
        ),
    ]
    healthy = []
    for seed in (0, 1, 2):
        healthy += [
            Scenario(f"healthy_digits_adam_s{seed}", "digits", digits_mlp, seed=seed),
            Scenario(
                f"healthy_digits_sgdm_s{seed}",
                "digits",
                lambda d, k: mlp(d, [128, 64], k),
                opt="sgdm",
                lr=0.05,
                seed=seed,
            ),
            Scenario(f"healthy_digits_cnn_s{seed}", "digits", lambda d, k: SmallCNN(k), seed=seed, epochs=10),
            Scenario(f"healthy_circles_s{seed}", "circles", lambda d, k: mlp(d, [32, 32], k), lr=1e-2, seed=seed),
            Scenario(f"healthy_blobs_tanh_s{seed}", "blobs", lambda d, k: mlp(d, [64], k, act=nn.Tanh), seed=seed),
            # hard but healthy
            Scenario(
                f"hard_noisy_circles_s{seed}", "noisy_circles", lambda d, k: mlp(d, [32, 32], k), lr=1e-2, seed=seed
            ),
            Scenario(f"hard_label_noise_s{seed}", "digits", digits_mlp, label_noise=0.3, epochs=10, seed=seed),
            Scenario(f"hard_small_batch_s{seed}", "digits", digits_mlp, batch=4, epochs=5, seed=seed),
            Scenario(f"hard_slow_sgd_s{seed}", "digits", digits_mlp, opt="sgd", lr=0.01, epochs=15, seed=seed),
            Scenario(
                f"hard_deep_bn_dropout_s{seed}",
                "digits",
                lambda d, k: mlp(d, [128] * 4, k, dropout=0.3, bn=True),
                seed=seed,
            ),
            Scenario(
                f"hard_bce_circles_s{seed}",
                "circles",
                lambda d, k: mlp(d, [32, 32], 1),
                loss="bcel",
                lr=1e-2,
                seed=seed,
            ),
        ]
    return [replace(s, reference=MLP_REFERENCES[s.data]) for s in bugs + healthy]
