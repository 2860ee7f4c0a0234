"""Detection benchmark for nbdebug.Monitor: injected bugs against healthy runs, split by program
family, with the monitor's thresholds tuned leave-one-family-out.

Families: "mlp" (plain MLPs and a small CNN on circles, blobs and digits, see
benchmarks.monitor_scenarios) and resnet, transformer, rnn, bnmlp, dropcnn on digits (see
benchmarks.monitor_families). Every scenario is one short real training on CPU.

Scoring. A healthy run with any warning is a false positive. A bug counts only if it manifests
in its run:
  * static mistakes: always (the mistake is in the code): the mlp family's lint cases, an
    optimizer built on a copy of the model, a final nn.Softmax in an nn.Sequential;
  * unnormalized inputs: always (the inputs are out of range by construction);
  * overfitting: validation accuracy ends >= 3 points below its peak while training accuracy
    at the end is at least its value at the peak;
  * everything else: the training crashed, hit a non-finite loss, or its best validation
    accuracy is >= 5 points below its healthy reference run (seed 0: the family's plain Adam
    run; in the mlp family the plain run on the same data, see MLP_REFERENCES).
A manifest bug is detected when a warning with one of its codes fired, and diagnosed when one
such warning also names one of its causes (TrainingWarning.cause). Recall and diagnosis
accuracy are both out of the manifest bugs ("bugs" counts every bug run); warnings with a bug's
``related`` codes are legitimate side effects, neither hits nor false positives.

Tuning. Each training has one monitor per threshold setting attached (alpha x noise_z, the
default included), so every setting sees the identical training. Leave-one-family-out: for each
family, the setting that is best on all other families (fewest false-positive healthy runs,
then most diagnosed bugs, then most detected; ties go to the default) is scored on it
("held-out"); "within-family" scores every family with the setting picked on all of them.

    .venv/bin/python -m benchmarks.monitor_detect                       # everything
    .venv/bin/python -m benchmarks.monitor_detect --families resnet --settings default
    .venv/bin/python -m benchmarks.monitor_detect --only healthy_rnn dying_relu
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time
from dataclasses import astuple, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nbdebug.monitor import Monitor
from nbdebug.monitor.thresholds import DEFAULT_THRESHOLDS

from ._common import markdown_table
from .monitor_families import FAMILIES, describe_skipped, family_scenarios

# benchmarks.repair reuses the mlp family through these names
from .monitor_scenarios import Scenario, dataset, digits_mlp, mlp, scenarios

__all__ = ["Scenario", "dataset", "digits_mlp", "main", "mlp", "scenarios"]

logging.getLogger("nbdebug").setLevel(logging.CRITICAL)  # the table is the output

DEFAULT = {"alpha": DEFAULT_THRESHOLDS["alpha"], "noise_z": DEFAULT_THRESHOLDS["noise_z"]}
GRID = [{"alpha": a, "noise_z": z} for a in (0, 1, 2, 3) for z in (1.0, 2.0, 3.0)]
if DEFAULT not in GRID:
    GRID.append(DEFAULT)
TARGETS = {"fp_rate": 0.02, "recall": 0.95, "diagnosis": 0.85}


def label(setting: dict) -> str:
    return f"alpha={setting['alpha']:g} noise_z={setting['noise_z']:g}"


def all_scenarios() -> list[Scenario]:
    return scenarios() + [s for name in FAMILIES for s in family_scenarios(name)]


# ---------------------------------------------------------------- one training, several monitors


def make_optimizer(s: Scenario, model: nn.Module) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if s.only_head_in_opt:
        params = list(list(model.children())[-1].parameters())
    if s.optimizer_on_copy:  # the optimizer updates a copy the model never sees
        params = list(copy.deepcopy(model).parameters())
    wd = s.weight_decay
    if s.opt == "adam":
        return torch.optim.Adam(params, lr=s.lr, weight_decay=wd)
    if s.opt == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=wd)
    if s.opt in ("sgd", "sgdm"):
        return torch.optim.SGD(params, lr=s.lr, momentum=0.9 if s.opt == "sgdm" else 0.0, weight_decay=wd)
    raise ValueError(s.opt)


def make_schedule(s: Scenario, opt: torch.optim.Optimizer):
    if s.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs)
    if s.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, s.epochs // 3), gamma=0.3)
    return None


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


def run(s: Scenario, settings: list[dict]) -> dict:
    """Train ``s`` once with one monitor per setting; the accuracies and each monitor's warnings."""
    torch.manual_seed(s.seed)
    Xtr, ytr, Xva, yva, n_classes = dataset(s.data, s.seed, s.transform, s.label_noise, s.n_train)
    model = s.build(Xtr.shape[1], n_classes)
    opt = make_optimizer(s, model)
    schedule = make_schedule(s, opt)
    loss_fn = LOSSES[s.loss]()
    gen = torch.Generator().manual_seed(s.seed)
    monitors = [Monitor(model, optimizer=opt, loss_fn=loss_fn, thresholds=t) for t in settings]
    result = {"crashed": None, "nonfinite": False, "train": [], "val": [], "cpu": 0.0}
    started = time.process_time()  # CPU time: the machine may be shared
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
                for mon in monitors:
                    mon.step(loss=loss, inputs=xb, targets=yb, outputs=out)
                total += float(loss.detach()) * len(yb)
                correct += int((predictions(s, out.detach()) == yb).sum())
                n += len(yb)
            model.eval()
            with torch.no_grad():
                out_va = model(Xva)
                val_loss = float(compute_loss(s, loss_fn, out_va, yva, n_classes))
                val_acc = float((predictions(s, out_va) == yva).float().mean())
            train_loss, train_acc = total / n, correct / n
            result["nonfinite"] |= not math.isfinite(train_loss)
            result["train"].append(train_acc)
            result["val"].append(val_acc)
            for mon in monitors:
                mon.epoch_end(
                    train_loss=train_loss,
                    train_acc=train_acc,
                    val_loss=val_loss,
                    val_acc=val_acc,
                    train_n=n,
                    val_n=len(yva),
                )
            if schedule is not None:
                schedule.step()
    except Exception as exc:  # a crash is an outcome here (e.g. BCELoss on logits)
        result["crashed"] = f"{type(exc).__name__}: {str(exc)[:60]}"
    result["cpu"] = time.process_time() - started
    for mon in monitors:
        mon.detach()
    result["warnings"] = [[(w.code, w.cause, w.epoch, w.step) for w in mon.warnings] for mon in monitors]
    return result


# ---------------------------------------------------------------- scoring


def best_val(r: dict) -> float:
    return max((v for v in r["val"] if math.isfinite(v)), default=0.0)


def manifests(s: Scenario, r: dict, reference: float) -> bool:
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
    return best_val(r) < reference - 0.05


def judge(s: Scenario, warnings: list[tuple]) -> tuple[bool, bool, tuple | None]:
    """(detected, diagnosed, first hit as (epoch, step)) of a bug run's warnings."""
    hits = [(e, st) for code, _, e, st in warnings if code in s.expect]
    diagnosed = any(code in s.expect and cause in s.causes for code, cause, _, _ in warnings)
    return bool(hits), diagnosed, min(hits, key=lambda h: h[1]) if hits else None


@dataclass
class Tally:
    healthy: int = 0
    fp: int = 0
    injected: int = 0  # bug runs, manifest or not
    bugs: int = 0  # manifest bugs
    detected: int = 0
    diagnosed: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def rates(self) -> dict[str, float]:
        return {
            "fp_rate": self.fp / self.healthy if self.healthy else math.nan,
            "recall": self.detected / self.bugs if self.bugs else math.nan,
            "diagnosis": self.diagnosed / self.bugs if self.bugs else math.nan,
        }

    def rank(self) -> tuple[int, int, int]:
        """Smaller is better: false positives, then diagnosed and detected bugs (more is better)."""
        return (self.fp, -self.diagnosed, -self.detected)


def tallies(chosen: list[Scenario], results: dict, man: dict[str, bool], n_settings: int) -> dict:
    """family -> one Tally per setting."""
    out: dict[str, list[Tally]] = {}
    for s in chosen:
        row = out.setdefault(s.family, [Tally() for _ in range(n_settings)])
        for t, warnings in zip(row, results[s.name]["warnings"], strict=True):
            if s.healthy:
                t.healthy += 1
                t.fp += bool(warnings)
                continue
            t.injected += 1
            if man[s.name]:
                detected, diagnosed, _ = judge(s, warnings)
                t.bugs += 1
                t.detected += detected
                t.diagnosed += diagnosed
    return out


def pick(per_family: dict[str, list[Tally]], families: list[str], settings: list[dict]) -> int:
    """The index of the best setting summed over ``families``; ties go to the default, then grid order."""
    totals = [sum((per_family[f][i] for f in families), Tally()) for i in range(len(settings))]
    return min(range(len(settings)), key=lambda i: (totals[i].rank(), settings[i] != DEFAULT, i))


def fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


def tally_cells(name: str, t: Tally, setting: str) -> list[str]:
    r = t.rates()
    counts = [str(t.healthy), str(t.fp), fmt(r["fp_rate"]), str(t.injected), str(t.bugs), str(t.detected)]
    return [name, *counts, fmt(r["recall"]), str(t.diagnosed), fmt(r["diagnosis"]), setting]


def family_table(per_family: dict[str, list[Tally]], chosen_setting: dict[str, int], settings: list[dict]):
    """The markdown lines of one row per family (scored with its chosen setting) and the total."""
    header = ["family", "healthy", "FP", "FP rate", "bugs", "manifest", "detected", "recall", "diagnosed"]
    header += ["diagnosis acc", "setting"]
    rows, total = [], Tally()
    for f, row in per_family.items():
        total += row[chosen_setting[f]]
        rows.append(tally_cells(f, row[chosen_setting[f]], label(settings[chosen_setting[f]])))
    rows.append(tally_cells("**total**", total, ""))
    return markdown_table(header, rows), total


def listing(chosen: list[Scenario], results: dict, man: dict[str, bool], at: int) -> list[str]:
    """One row per scenario under setting ``at``: what fired, with its cause."""
    rows = []
    for s in chosen:
        r = results[s.name]
        warnings = r["warnings"][at]
        fired = ", ".join(f"{code}({cause or '?'})" for code, cause, _, _ in warnings) or "-"
        if s.healthy:
            cells = ["-", "FP" if warnings else "ok", "-", "-"]
        else:
            detected, diagnosed, first = judge(s, warnings)
            first_txt = f"{first[0]}/{first[1]}" if first else "-"
            cells = ["yes" if man[s.name] else "no", "yes" if detected else "no", "yes" if diagnosed else "no"]
            cells.append(first_txt)
        crash = f" crashed: {r['crashed']}" if r["crashed"] else ""
        rows.append([s.name, s.family, *cells, f"{best_val(r):.3f}", f"{r['cpu']:.1f}", fired + crash])
    header = ["scenario", "family", "manifests", "detected", "diagnosed", "first hit (epoch/step)", "best val"]
    return markdown_table([*header, "cpu s", "warnings (cause)"], rows)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only scenarios whose name starts with one of these")
    parser.add_argument("--families", nargs="*", choices=["mlp", *FAMILIES], help="run only these families")
    parser.add_argument(
        "--settings", choices=["grid", "default"], default="grid", help="the tuning grid, or the default only (fast)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = GRID if args.settings == "grid" else [DEFAULT]
    at_default = settings.index(DEFAULT)
    everything = all_scenarios()
    by_name = {s.name: s for s in everything}
    chosen = [
        s
        for s in everything
        if (not args.families or s.family in args.families)
        and (not args.only or any(s.name.startswith(p) for p in args.only))
    ]
    results = {}
    t0, cpu0 = time.monotonic(), time.process_time()
    for i, s in enumerate(chosen, 1):
        results[s.name] = run(s, settings)
        r = results[s.name]
        print(f"[{i}/{len(chosen)}] {s.name}: best val {best_val(r):.3f}, {r['cpu']:.1f} s CPU", flush=True)
    # The healthy references of the manifest rule, trained without monitors when not chosen.
    for name in {s.reference for s in chosen} - set(results):
        results[name] = run(by_name[name], [])
    man = {s.name: not s.healthy and manifests(s, results[s.name], best_val(results[s.reference])) for s in chosen}
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0

    print(f"\n## Scenarios, default setting ({label(DEFAULT)}); '?' = no cause given\n")
    print("\n".join(listing(chosen, results, man, at_default)))
    print("\nskipped bug kinds: " + "; ".join(describe_skipped()))

    per_family = tallies(chosen, results, man, len(settings))
    families = list(per_family)
    held_out = {f: pick(per_family, [g for g in families if g != f] or [f], settings) for f in families}
    overall = pick(per_family, families, settings)
    print(
        f"\n## Held out: each family scored with the setting picked on the other families ({len(settings)} settings)\n"
    )
    lines, held = family_table(per_family, held_out, settings)
    print("\n".join(lines))
    print(
        f"\n## Within-family: every family scored with the setting picked on all of them ({label(settings[overall])})\n"
    )
    lines, within = family_table(per_family, dict.fromkeys(families, overall), settings)
    print("\n".join(lines))
    print(f"\n## Default setting ({label(DEFAULT)}) on every family\n")
    lines, default = family_table(per_family, dict.fromkeys(families, at_default), settings)
    print("\n".join(lines))

    print("\n## Every setting on all families together\n")
    header = ["setting", "healthy", "FP", "FP rate", "bugs", "manifest", "detected", "recall", "diagnosed"]
    rows = []
    for i, setting in enumerate(settings):
        total = sum((per_family[f][i] for f in families), Tally())
        name = label(setting) + (" (picked on all)" if i == overall else "")
        rows.append(tally_cells(name, total, "")[:-1])
    print("\n".join(markdown_table([*header, "diagnosis acc"], rows)))

    h, w, d = held.rates(), within.rates(), default.rates()
    rows = []
    for key, name, sense in (
        ("fp_rate", "false-positive rate", "<="),
        ("recall", "detection recall", ">="),
        ("diagnosis", "diagnosis accuracy", ">="),
    ):
        ok = h[key] <= TARGETS[key] if sense == "<=" else h[key] >= TARGETS[key]
        gap = w[key] - h[key]
        rows.append([name, fmt(h[key]), f"{sense} {TARGETS[key]}", "yes" if ok else "no", fmt(w[key])])
        rows[-1] += ["-" if math.isnan(gap) else f"{gap:+.3f}", fmt(d[key])]
    print("\n## Held-out totals vs targets, within-family totals, gap (within minus held-out)\n")
    header = ["metric", "held-out", "target", "met", "within-family", "gap", "default setting"]
    print("\n".join(markdown_table(header, rows)))
    print(f"\n{len(chosen)} scenarios, {len(settings)} monitors per training: wall time {wall:.0f} s, CPU {cpu:.0f} s")


if __name__ == "__main__":
    main()
