"""Detection benchmark for nbdebug.Monitor: injected-bug trainings against healthy controls.

Every scenario is a small real training on CPU (make_circles, make_blobs, load_digits). Each
bug scenario names the codes that count as detecting it (``expect``) and the codes that are
legitimate side effects of the same bug (``related``, neither hit nor false positive).
A bug counts only if it manifests in its run:
  * static mistakes: always (the mistake is in the code);
  * unnormalized inputs: always (the inputs are out of range by construction);
  * overfitting: validation accuracy ends >= 3 points below its peak while training accuracy
    at the end is at least its value at the peak;
  * everything else: the training crashed, hit a non-finite loss, or its best validation
    accuracy is >= 5 points below the healthy reference on the same data.
Any warning on a healthy run makes that run a false positive.

    .venv/bin/python -m benchmarks.monitor_detect            # everything
    .venv/bin/python -m benchmarks.monitor_detect --only dying_relu healthy_digits_adam
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits, make_blobs, make_circles
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

from nbdebug.monitor import Monitor

from ._common import SmallCNN

logging.getLogger("nbdebug").setLevel(logging.CRITICAL)  # the table is the output


# ---------------------------------------------------------------- data


def dataset(name: str, seed: int, transform: str = "standard", label_noise: float = 0.0, n_train: int | None = None):
    """(Xtr, ytr, Xva, yva, n_classes) as tensors."""
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
    if transform == "standard":
        mean, std = Xtr.mean(0), Xtr.std(0) + 1e-8
        Xtr, Xva = (Xtr - mean) / std, (Xva - mean) / std
    elif transform == "x255":  # raw pixels: digits are 0..16, scaled to 0..255
        Xtr, Xva = Xtr * 255 / 16, Xva * 255 / 16
    elif transform == "nan":
        mean, std = Xtr.mean(0), Xtr.std(0) + 1e-8
        Xtr, Xva = (Xtr - mean) / std, (Xva - mean) / std
        rng = np.random.default_rng(seed)
        Xtr = Xtr.copy()
        Xtr[rng.random(len(Xtr)) < 0.03, 0] = np.nan
    n_classes = int(y.max()) + 1
    ytr = ytr.copy()
    if label_noise:
        rng = np.random.default_rng(seed + 1)
        flip = rng.random(len(ytr)) < label_noise
        ytr[flip] = rng.integers(0, n_classes, flip.sum())

    def t(a):
        return torch.tensor(a, dtype=torch.float32)

    return t(Xtr), torch.tensor(ytr), t(Xva), torch.tensor(yva), n_classes


# ---------------------------------------------------------------- models


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


# ---------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    name: str
    data: str
    build: Callable[[int, int], nn.Module]  # (d_in, n_classes) -> model
    opt: str = "adam"
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

    @property
    def healthy(self) -> bool:
        return not self.expect


def make_optimizer(s: Scenario, model: nn.Module):
    params = list(model.parameters())
    if s.only_head_in_opt:
        params = list(list(model.children())[-1].parameters())
    if s.opt == "adam":
        return torch.optim.Adam(params, lr=s.lr)
    if s.opt == "sgd":
        return torch.optim.SGD(params, lr=s.lr)
    if s.opt == "sgdm":
        return torch.optim.SGD(params, lr=s.lr, momentum=0.9)
    raise ValueError(s.opt)


LOSSES = {"ce": nn.CrossEntropyLoss, "bce": nn.BCELoss, "bcel": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}


def compute_loss(s: Scenario, loss_fn, out, yb, n_classes):
    if s.loss == "mse":
        return loss_fn(out, F.one_hot(yb, n_classes).float())
    if s.loss in ("bce", "bcel"):
        return loss_fn(out.squeeze(1), yb.float())
    return loss_fn(out, yb)


def predictions(s: Scenario, out):
    if s.loss in ("bce", "bcel"):
        cut = 0.5 if s.loss == "bce" else 0.0
        return (out.squeeze(1) > cut).long()
    return out.argmax(1)


def run(s: Scenario) -> dict:
    torch.manual_seed(s.seed)
    Xtr, ytr, Xva, yva, n_classes = dataset(s.data, s.seed, s.transform, s.label_noise, s.n_train)
    model = s.build(Xtr.shape[1], n_classes)
    opt = make_optimizer(s, model)
    loss_fn = LOSSES[s.loss]()
    gen = torch.Generator().manual_seed(s.seed)
    mon = Monitor(model, optimizer=opt, loss_fn=loss_fn)
    result = {
        "crashed": None,
        "nonfinite": False,
        "train": [],
        "val": [],
        "steps_per_epoch": math.ceil(len(Xtr) / s.batch),
    }
    try:
        for _ in range(s.epochs):
            model.train()
            perm = torch.randperm(len(Xtr), generator=gen)
            total, correct, n = 0.0, 0, 0
            for i in range(0, len(Xtr), s.batch):
                idx = perm[i : i + s.batch]
                xb, yb = Xtr[idx], ytr[idx]
                out = model(xb)
                loss = compute_loss(s, loss_fn, out, yb, n_classes)
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(loss=loss, inputs=xb, targets=yb, outputs=out)
                total += float(loss.detach()) * len(yb)
                correct += int((predictions(s, out.detach()) == yb).sum())
                n += len(yb)
            model.eval()
            with torch.no_grad():
                val_acc = float((predictions(s, model(Xva)) == yva).float().mean())
            train_loss, train_acc = total / n, correct / n
            result["nonfinite"] |= not math.isfinite(train_loss)
            result["train"].append(train_acc)
            result["val"].append(val_acc)
            mon.epoch_end(train_loss=train_loss, train_acc=train_acc, val_acc=val_acc)
    except Exception as exc:  # a crash is an outcome here (e.g. BCELoss on logits)
        result["crashed"] = f"{type(exc).__name__}: {str(exc)[:60]}"
    mon.detach()
    result["warnings"] = [(w.code, w.epoch, w.step) for w in mon.warnings]
    return result


def digits_mlp(d, k):
    return mlp(d, [64], k)


def scenarios() -> list[Scenario]:
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
            related=("abnormal_data", "nan_loss", "dying_relu", "oscillating_loss", "slow_convergence"),
        ),
        Scenario(
            "dying_relu",
            "digits",
            lambda d, k: negative_bias(mlp(d, [64, 64], k), -8.0),
            epochs=6,
            expect=("dying_relu",),
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
            related=("exploding_gradient", "abnormal_data", "dying_relu", "nan_loss", "slow_convergence"),
        ),
        Scenario("slow_convergence", "digits", digits_mlp, opt="sgd", lr=2e-5, epochs=6, expect=("slow_convergence",)),
        Scenario(
            "improper_output_activation",
            "digits",
            lambda d, k: SoftmaxMLP(d, k),
            opt="sgd",
            lr=0.05,
            epochs=6,
            expect=("improper_output_activation",),
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
            related=("slow_convergence",),
        ),
        Scenario(
            "abnormal_data",
            "digits",
            digits_mlp,
            transform="nan",
            epochs=4,
            expect=("abnormal_data",),
            related=("nan_loss", "exploding_gradient"),
        ),
        # SCRAM's three
        Scenario(
            "overfitting",
            "digits",
            lambda d, k: mlp(d, [512, 512], k),
            epochs=40,
            n_train=300,
            label_noise=0.4,
            manifest="overfit",
            expect=("overfitting",),
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
            related=(
                "abnormal_data",
                "exploding_gradient",
                "nan_loss",
                "oscillating_loss",
                "dying_relu",
                "slow_convergence",
            ),
        ),
        Scenario(
            "nan_loss",
            "digits",
            digits_mlp,
            opt="sgd",
            lr=1e10,
            epochs=2,
            expect=("nan_loss",),
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
        ),
        Scenario(
            "cross_entropy_one_output",
            "circles",
            lambda d, k: mlp(d, [16], 1),
            epochs=2,
            manifest="always",
            expect=("cross_entropy_one_output",),
        ),
        Scenario(
            "linear_without_activation",
            "circles",
            lambda d, k: nn.Sequential(nn.Linear(d, 32), nn.Linear(32, 32), nn.Linear(32, k)),
            epochs=4,
            manifest="always",
            expect=("linear_without_activation",),
            related=("slow_convergence", "oscillating_loss"),
        ),
        Scenario(
            "dropout_too_high",
            "digits",
            lambda d, k: mlp(d, [64], k, dropout=0.9),
            epochs=4,
            manifest="always",
            expect=("dropout_too_high",),
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
            related=(
                "nan_loss",
                "exploding_gradient",
                "dying_relu",
                "abnormal_data",
                "oscillating_loss",
                "slow_convergence",
            ),
        ),
        Scenario(
            "params_not_in_optimizer",
            "digits",
            digits_mlp,
            only_head_in_opt=True,
            epochs=4,
            manifest="always",
            expect=("params_not_in_optimizer",),
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
    return bugs + healthy


# ---------------------------------------------------------------- evaluation


def manifests(s: Scenario, r: dict, reference: dict[str, float]) -> bool:
    if s.manifest == "always":
        return True
    if s.manifest == "overfit":
        val, train = r["val"], r["train"]
        if not val:
            return False
        peak = int(np.argmax(val))
        return val[-1] <= val[peak] - 0.03 and train[-1] >= train[peak]
    if r["crashed"] or r["nonfinite"]:
        return True
    best = max((v for v in r["val"] if math.isfinite(v)), default=0.0)
    return best < reference[s.data] - 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only scenarios whose name starts with one of these")
    args = parser.parse_args()
    torch.set_num_threads(1)
    all_scenarios = scenarios()
    chosen = [s for s in all_scenarios if not args.only or any(s.name.startswith(p) for p in args.only)]
    # Healthy references for the manifest rule: the plain healthy run per dataset.
    reference = {"digits": None, "circles": None, "blobs": None, "noisy_circles": None}
    results = {}
    t0 = time.time()
    for s in chosen:
        results[s.name] = run(s)
    for data, ref_name in (
        ("digits", "healthy_digits_adam_s0"),
        ("circles", "healthy_circles_s0"),
        ("blobs", "healthy_blobs_tanh_s0"),
        ("noisy_circles", "hard_noisy_circles_s0"),
    ):
        r = results.get(ref_name) or run(next(s for s in all_scenarios if s.name == ref_name))
        reference[data] = max(r["val"])

    print(
        f"\n{'scenario':34s} {'manifest':8s} {'detected':8s} {'first hit (epoch/step)':22s} "
        f"{'in 1st epoch':12s} warnings"
    )
    hits, manifest_bugs = 0, 0
    fired = defaultdict(lambda: [0, 0])  # code -> [true firings, all firings]
    code_recall = defaultdict(lambda: [0, 0])  # code -> [detected, manifest runs]
    fp_runs = []
    for s in chosen:
        r = results[s.name]
        codes = [c for c, _, _ in r["warnings"]]
        if s.healthy:
            if codes:
                fp_runs.append(s.name)
            for c in codes:
                fired[c][1] += 1
            summary = "FP" if codes else "ok"
            print(
                f"{s.name:34s} {'-':8s} {summary:8s} {'':22s} {'':12s} {', '.join(codes)} "
                f"(best val {max(r['val']) if r['val'] else float('nan'):.3f})"
            )
            continue
        man = manifests(s, r, reference)
        hit_list = [(e, st) for c, e, st in r["warnings"] if c in s.expect]
        detected = bool(hit_list)
        for c in codes:
            fired[c][1] += 1
            if c in s.expect or c in s.related:
                fired[c][0] += 1
        if man:
            manifest_bugs += 1
            hits += detected
            code_recall[s.expect[0] if len(s.expect) == 1 else s.name][0] += detected
            code_recall[s.expect[0] if len(s.expect) == 1 else s.name][1] += 1
        first = min(hit_list, key=lambda h: h[1]) if hit_list else None
        first_txt = f"{first[0]}/{first[1]}" if first else "-"
        in_first = "yes" if first and first[1] <= r["steps_per_epoch"] else "no"
        extra = f" crashed: {r['crashed']}" if r["crashed"] else ""
        print(f"{s.name:34s} {man!s:8s} {detected!s:8s} {first_txt:22s} {in_first:12s} {', '.join(codes)}{extra}")

    print(f"\n{'code':34s} {'precision':>9s} {'recall':>7s} {'firings':>8s}")
    for code in sorted(set(fired) | set(code_recall)):
        tp, n = fired[code]
        det, man = code_recall.get(code, (0, 0))
        prec = f"{tp / n:.2f}" if n else "-"
        rec = f"{det / man:.2f}" if man else "-"
        print(f"{code:34s} {prec:>9s} {rec:>7s} {n:>8d}")
    n_healthy = sum(s.healthy for s in chosen)
    print(f"\nrecall over manifest bugs: {hits}/{manifest_bugs} = {hits / max(manifest_bugs, 1):.3f} (target >= 0.95)")
    print(
        f"false-positive rate: {len(fp_runs)}/{n_healthy} healthy runs = {len(fp_runs) / max(n_healthy, 1):.3f} "
        f"(target <= 0.05) {fp_runs if fp_runs else ''}"
    )
    print(f"wall time {time.time() - t0:.0f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
