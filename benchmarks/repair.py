"""Repair benchmark for nbdebug.fit(repair=True): injected-bug trainings repaired by AutoTrainer's
scheduler, against a random choice of fix and a small hyperparameter search on the same budget.

The bugs are the monitor's injected-bug suite (benchmarks.monitor_detect, reused, not copied),
without the two it cannot express through fit (params_not_in_optimizer: fit's optimizer sees
the copy's parameters; overfitting: not one of the problems repairs handle), plus injected
bugs in two architectures that suite does not have: a small ResNet-style CNN with BatchNorm
and a small transformer encoder over the rows of a digit. Healthy controls: seed 0 of the
suite's healthy and hard-but-healthy runs, and the two new architectures unharmed.

For each bug: the buggy setup trained in full without repairs ("before"; "detected" means the
monitor reported a problem that repairs handle), then three repairs, each with at most
``--budget`` retrainings and the same stop rule (a problem is solved when the retraining no
longer shows it and accuracy does not fall):
  * nbdebug: the solutions in AutoTrainer's order for the problem found;
  * random: the same nine solutions in a random order (per problem, seeded);
  * hpsearch: learning rate x optimizer x batch size (3 x 2 x 2) in a random order.
"Healthy" is the validation accuracy of the healthy configuration: the same training with the
injected bug taken out (``TWINS``: the same data, epochs and, unless the bug is the optimizer,
the same optimizer). A training counts as repaired when it ends within 5 points of it (the
margin by which the detection benchmark says a bug manifests), and "gap" is healthy minus
repaired accuracy (negative: the repair beat the healthy configuration).

    .venv/bin/python -m benchmarks.repair            # everything (about 15 minutes on 2 cores)
    .venv/bin/python -m benchmarks.repair --quick    # a third of the bugs, fewer healthy runs
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

import nbdebug
from nbdebug.repair import SOLUTIONS, Solution
from nbdebug.repair.scheduler import REPAIRABLE
from nbdebug.repair.setup import Setup
from nbdebug.repair.solutions import Change, Context

from ._common import markdown_table
from .monitor_detect import Scenario, dataset, digits_mlp, mlp, scenarios

logging.getLogger("nbdebug").setLevel(logging.CRITICAL)  # the table is the output
MARGIN = 0.05
SKIPPED_SCENARIOS = ("params_not_in_optimizer", "overfitting")


# ---------------------------------------------------------------- two more architectures


class Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    """Stem conv + BatchNorm + ReLU, two residual blocks, global average pooling, a linear head."""

    def __init__(self, k: int, c: int = 16, final: nn.Module | None = None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(Block(c), Block(c))
        self.head = nn.Linear(c, k)
        self.final = final if final is not None else nn.Identity()

    def forward(self, x):
        return self.final(self.head(self.blocks(self.stem(x.view(-1, 1, 8, 8))).mean((2, 3))))


class Encoder(nn.Module):
    """Each of a digit's 8 rows is a token: linear embedding plus learned positions, one
    transformer encoder layer (d=32, 4 heads), mean pooling, a linear head."""

    def __init__(self, k: int, softmax: bool = False):
        super().__init__()
        self.embed = nn.Linear(8, 32)
        self.position = nn.Parameter(torch.zeros(1, 8, 32))
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(32, k)
        self.softmax = softmax

    def forward(self, x):
        out = self.head(self.encoder(self.embed(x.view(-1, 8, 8)) + self.position).mean(1))
        return F.softmax(out, dim=1) if self.softmax else out


def more_scenarios() -> list[Scenario]:
    def res(**kw):
        return lambda d, k: ResNet(k, **kw)

    def enc(**kw):
        return lambda d, k: Encoder(k, **kw)

    common = {"data": "digits", "epochs": 8}
    rep = {"related": ()}
    return [
        Scenario("resnet_lr_blowup", build=res(), opt="sgdm", lr=5.0, expect=REPAIRABLE, **common, **rep),
        Scenario("resnet_raw_pixels", build=res(), opt="sgd", lr=0.05, transform="x255", expect=REPAIRABLE, **common),
        Scenario("resnet_slow", build=res(), opt="sgd", lr=1e-5, expect=REPAIRABLE, **common),
        Scenario(
            "resnet_softmax_ce", build=res(final=nn.Softmax(dim=1)), opt="sgd", lr=0.05, expect=REPAIRABLE, **common
        ),
        Scenario("encoder_lr_blowup", build=enc(), lr=0.5, expect=REPAIRABLE, **common),
        Scenario("encoder_raw_pixels", build=enc(), opt="sgd", lr=0.05, transform="x255", expect=REPAIRABLE, **common),
        Scenario("encoder_slow", build=enc(), opt="sgd", lr=1e-5, expect=REPAIRABLE, **common),
        Scenario("encoder_mse", build=enc(), opt="sgd", lr=0.01, loss="mse", expect=REPAIRABLE, **common),
        Scenario("encoder_softmax_ce", build=enc(softmax=True), opt="sgd", lr=0.05, expect=REPAIRABLE, **common),
        Scenario("healthy_resnet", build=res(), **common),
        Scenario("healthy_encoder", build=enc(), **common),
    ]


def _res(d: int, k: int) -> nn.Module:
    return ResNet(k)


def _enc(d: int, k: int) -> nn.Module:
    return Encoder(k)


# The healthy configuration of each bug: the scenario with these fields changed. A learning
# rate out of range becomes the optimizer's default (AutoTrainer's: 0.01 for SGD, 1e-3 for
# Adam); too deep a network for its initialization becomes the suite's 64-unit MLP.
TWINS: dict[str, dict] = {
    "vanishing_gradient": {"build": lambda d, k: mlp(d, [32, 32], k)},
    "exploding_gradient": {"build": digits_mlp},
    "dying_relu": {"build": lambda d, k: mlp(d, [64, 64], k)},
    "oscillating_loss": {"lr": 0.01},
    "slow_convergence": {"lr": 0.01},
    "improper_output_activation": {"build": digits_mlp},
    "improper_loss": {"loss": "ce"},
    "abnormal_data": {"transform": "standard"},
    "unnormalized_input": {"transform": "standard"},
    "nan_loss": {"lr": 0.01},
    "lr_blowup_in_range": {"lr": 0.01},
    "softmax_before_cross_entropy": {"build": digits_mlp},
    "bce_without_sigmoid": {"loss": "bcel"},
    "cross_entropy_one_output": {"build": lambda d, k: mlp(d, [16], k)},
    "linear_without_activation": {"build": lambda d, k: mlp(d, [32, 32], k)},
    "dropout_too_high": {"build": digits_mlp},
    "learning_rate_range": {"lr": 1e-3},
    "resnet_lr_blowup": {"lr": 0.01},
    "resnet_raw_pixels": {"transform": "standard"},
    "resnet_slow": {"lr": 0.01},
    "resnet_softmax_ce": {"build": _res},
    "encoder_lr_blowup": {"lr": 1e-3},
    "encoder_raw_pixels": {"transform": "standard"},
    "encoder_slow": {"lr": 0.01},
    "encoder_mse": {"loss": "ce"},
    "encoder_softmax_ce": {"build": _enc},
}


# ---------------------------------------------------------------- running one method


def optimizer_of(s: Scenario):
    if s.opt == "adam":
        return lambda params: torch.optim.Adam(params, lr=s.lr)
    momentum = 0.9 if s.opt == "sgdm" else 0.0
    return lambda params: torch.optim.SGD(params, lr=s.lr, momentum=momentum)


LOSS_NAMES = {"ce": "cross_entropy", "bce": "bce", "bcel": "bce_with_logits", "mse": "mse"}


def hyperparameter_solutions(seed: int) -> list[Solution]:
    """The 12 grid points as solutions (applied to the setup the problem showed in), shuffled."""
    grid = [(opt, lr, bs) for opt in ("adam", "sgd") for lr in (1e-3, 1e-2, 1e-1) for bs in (32, 128)]
    random.Random(seed).shuffle(grid)

    def point(opt: str, lr: float, bs: int) -> Solution:
        def apply(setup: Setup, context: Context) -> Change:
            new = setup.but(optimizer=opt, lr=lr, batch_size=bs, momentum=None)
            return Change(new, [f"{opt} lr={lr:g} batch_size={bs}"])

        return Solution(f"H:{opt},{lr:g},{bs}", "hyperparameters", apply)

    return [point(*p) for p in grid]


def repair_option(method: str, seed: int):
    if method == "nbdebug":
        return True
    if method == "random":
        rng = random.Random(seed)
        return {"order": {code: rng.sample(sorted(SOLUTIONS), len(SOLUTIONS)) for code in REPAIRABLE}}
    return {"order": dict.fromkeys(REPAIRABLE, hyperparameter_solutions(seed))}


@dataclass
class Outcome:
    acc: float
    trainings: int
    seconds: float
    detected: str = ""
    crashed: str = ""


def final_acc(result) -> float:
    acc = result.history[-1]["val_acc"] if result.history else None
    return acc if acc is not None and math.isfinite(acc) else 0.0


def train(s: Scenario, repair, budget: int) -> Outcome:
    torch.manual_seed(s.seed)
    Xtr, ytr, Xva, yva, k = dataset(s.data, s.seed, s.transform, s.label_noise, s.n_train)
    model = s.build(Xtr.shape[1], k)
    started = time.monotonic()
    try:
        result = nbdebug.fit(
            model,
            (Xtr, ytr),
            (Xva, yva),
            epochs=s.epochs,
            optimizer=optimizer_of(s),
            batch_size=s.batch,
            loss=LOSS_NAMES[s.loss],
            repair=repair,
            max_repairs=budget,
            seed=s.seed,
        )
    except Exception as err:  # a crash is an outcome here (e.g. BCELoss on logits)
        return Outcome(0.0, 1, time.monotonic() - started, crashed=f"{type(err).__name__}")
    codes = [w.code for w in result.warnings if w.code in REPAIRABLE]
    first = result.repairs[0].problem if result.repairs else (codes[0] if codes else "")
    return Outcome(final_acc(result), result.trainings, time.monotonic() - started, detected=first)


# ---------------------------------------------------------------- the table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every third bug, one seed, four healthy runs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per bug (data split and initial weights)")
    parser.add_argument("--budget", type=int, default=8, help="retrainings per repair (max_repairs)")
    parser.add_argument("--only", nargs="*", help="only scenarios whose name starts with one of these")
    args = parser.parse_args()
    torch.set_num_threads(1)
    suite = [s for s in scenarios() if s.name not in SKIPPED_SCENARIOS]
    bugs = [s for s in suite if not s.healthy] + [s for s in more_scenarios() if not s.healthy]
    healthy = [s for s in suite if s.healthy] + [s for s in more_scenarios() if s.healthy]
    seeds = range(1 if args.quick else args.seeds)
    if args.quick:
        bugs, healthy = bugs[::3], [s for s in healthy if s.name.endswith("_s0")][::4] + healthy[-2:]
    twin_of: dict[str, str] = {}
    expanded = []
    for s in bugs:
        for seed in seeds:
            name = f"{s.name}_s{seed}"
            twin_of[name] = s.name
            expanded.append(replace(s, name=name, seed=seed))
    chosen = [s for s in expanded + healthy if not args.only or any(s.name.startswith(p) for p in args.only)]

    def healthy_acc(s: Scenario, before: Outcome) -> float:
        if s.healthy:
            return before.acc
        twin = replace(s, name=f"{s.name}_healthy", expect=(), **TWINS[twin_of[s.name]])
        return train(twin, False, 0).acc

    methods = ("nbdebug", "random", "hpsearch")
    rows, records = [], []
    t0 = time.monotonic()
    for i, s in enumerate(chosen):
        before = train(s, False, 0)
        ref = healthy_acc(s, before)
        outcomes = {m: train(s, repair_option(m, 1000 + i), args.budget) for m in methods}
        records.append((s, ref, before, outcomes))
        cells = [s.name, before.detected or ("crash: " + before.crashed if before.crashed else "-"), f"{ref:.3f}"]
        cells.append(f"{before.acc:.3f}")
        for m in methods:
            o = outcomes[m]
            ok = "yes" if o.acc >= ref - MARGIN else "no"
            cells += [f"{ok} {o.acc:.3f}", str(o.trainings - 1), f"{o.seconds:.1f}"]
        rows.append(cells)
        print(" | ".join(cells), flush=True)
    header = ["scenario", "detected (before)", "healthy", "before"]
    for m in methods:
        header += [f"{m}: repaired, acc", "retrain", "s"]
    print()
    print("\n".join(markdown_table(header, rows)))

    print(f"\nbudget {args.budget} retrainings; repaired = within {MARGIN:.0%} of the healthy configuration\n")
    sick = [r for r in records if not r[0].healthy]
    detected = [r for r in sick if r[2].detected]
    manifest = [r for r in sick if r[2].acc < r[1] - MARGIN]
    print(f"bugs: {len(sick)}; manifest (before < healthy - {MARGIN:.0%}): {len(manifest)}; ", end="")
    print(f"detected: {len(detected)} ({sum(1 for r in manifest if r[2].detected)} of the manifest ones)")
    summary = []
    for m in methods:
        fixed = [r for r in detected if r[3][m].acc >= r[1] - MARGIN]
        fixed_manifest = [r for r in manifest if r[2].detected and r[3][m].acc >= r[1] - MARGIN]
        gaps = [r[1] - r[3][m].acc for r in fixed]
        retrain = [r[3][m].trainings - 1 for r in detected]
        seconds = sum(r[3][m].seconds for r in sick)
        summary.append(
            [
                m,
                f"{len(fixed)}/{len(detected)} = {len(fixed) / max(len(detected), 1):.2f}",
                f"{len(fixed_manifest)}/{sum(1 for r in manifest if r[2].detected)}",
                f"{sum(gaps) / max(len(gaps), 1) * 100:+.1f}",
                f"{sum(retrain) / max(len(retrain), 1):.2f}",
                f"{sum(retrain)}",
                f"{seconds:.0f}",
            ]
        )
    print(
        "\n".join(
            markdown_table(
                [
                    "method",
                    "repaired / detected",
                    "repaired / detected manifest",
                    "mean gap to healthy (points, repaired)",
                    "retrainings per detected bug",
                    "retrainings",
                    "time on bugs (s)",
                ],
                summary,
            )
        )
    )
    calm = [r for r in records if r[0].healthy]
    for m in methods:
        touched = [r[0].name for r in calm if r[3][m].trainings > 1]
        print(f"healthy runs retrained by {m}: {len(touched)}/{len(calm)} {touched if touched else ''}")
    print(f"wall time {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
