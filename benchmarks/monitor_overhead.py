"""Overhead of nbdebug.Monitor: wall-clock ratio of a training loop with and without it.

Two identical models train side by side on load_digits. Their loops alternate in short
blocks (a multiple of the cadence, so every monitored block holds the same number of
capture steps), and the order within each pair of blocks swaps every round, so machine load
(this machine is shared) hits both alike. Reported: the ratio of summed wall-clock times, the
median of per-pair wall-clock ratios, and the ratio of thread CPU times (least sensitive to
other processes). The loop is a typical notebook loop over in-memory tensors (no DataLoader,
which would hide the overhead): forward, loss, zero_grad, backward, step, running
loss/accuracy, epoch_end after each pass. The small MLP is the worst case (least work per step
to hide the monitor behind). Each measurement starts from a fresh model; after a warm-up of two
blocks the rest of its first epoch (accuracy-gated statistics still on) is measured too.

    .venv/bin/python -m benchmarks.monitor_overhead [--blocks 300]
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import time

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from nbdebug.monitor import Monitor

from ._common import SmallCNN

logging.getLogger("nbdebug").setLevel(logging.CRITICAL)


class Loop:
    """One model's training loop, run a block of steps at a time."""

    def __init__(self, model, X, y, batch, mon_cadence=None, thresholds=None):
        self.model, self.X, self.y, self.batch = model, X, y, batch
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.mon = (
            Monitor(
                model, optimizer=self.opt, loss_fn=nn.CrossEntropyLoss(), cadence=mon_cadence, thresholds=thresholds
            )
            if mon_cadence
            else None
        )
        self.pos, self.total, self.correct = 0, 0.0, 0

    def block(self, steps: int) -> tuple[float, float]:
        """Run ``steps`` training steps; returns (wall seconds, thread CPU seconds)."""
        wall, cpu = time.perf_counter(), time.thread_time()
        X, y, b, mon = self.X, self.y, self.batch, self.mon
        for _ in range(steps):
            xb, yb = X[self.pos : self.pos + b], y[self.pos : self.pos + b]
            out = self.model(xb)
            loss = F.cross_entropy(out, yb)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if mon is not None:
                mon.step(loss=loss, inputs=xb, targets=yb, outputs=out)
            self.total += loss.item() * len(yb)
            self.correct += int((out.argmax(1) == yb).sum())
            self.pos += b
            if self.pos >= len(X):  # end of an epoch
                if mon is not None:
                    mon.epoch_end(train_loss=self.total / len(X), train_acc=self.correct / len(X))
                self.pos, self.total, self.correct = 0, 0.0, 0
        return time.perf_counter() - wall, time.thread_time() - cpu


def measure(name, build, X, y, batch, cadence, blocks, full=False) -> dict:
    """``full``: theta = 1.0, so the accuracy-gated statistics (layer hooks, gradient norms)
    never stop; by default they stop once training accuracy passes theta (0.6)."""
    torch.manual_seed(0)
    model = build()
    plain = Loop(model, X, y, batch)
    watched = Loop(copy.deepcopy(model), X, y, batch, mon_cadence=cadence, thresholds={"theta": 1.0} if full else None)
    steps = 6 * cadence if cadence < 6 else cadence  # whole capture cycles per block
    for loop in (plain, watched):  # warm-up
        loop.block(2 * steps)
    pw, pc, ww, wc = [], [], [], []
    for r in range(blocks):
        first, second = (plain, watched) if r % 2 == 0 else (watched, plain)
        a, b = first.block(steps), second.block(steps)
        (p, w) = (a, b) if first is plain else (b, a)
        pw.append(p[0])
        pc.append(p[1])
        ww.append(w[0])
        wc.append(w[1])
    watched.mon.detach()
    return {
        "name": name,
        "cadence": cadence,
        "batch": batch,
        "stats": "full" if full else "gated",
        "plain_ms_per_step": 1e3 * statistics.median(pw) / steps,
        "ratio_total": sum(ww) / sum(pw),
        "ratio_median": statistics.median(w / p for w, p in zip(ww, pw, strict=True)),
        "ratio_cpu": sum(wc) / sum(pc),
        "warnings": [w.code for w in watched.mon.warnings],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=300, help="blocks of steps per variant (alternating)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / (X.std(0) + 1e-8), dtype=torch.float32)
    y = torch.tensor(y)

    def mlp():
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    rows = []
    for cadence, full in ((3, False), (3, True), (1, True), (10, True)):
        rows.append(measure("MLP 64-64-10", mlp, X, y, 32, cadence, args.blocks, full))
        rows.append(measure("CNN 2 conv + fc", SmallCNN, X, y, 32, cadence, args.blocks, full))
    print(
        f"\n{'model':16s} {'cadence':>7s} {'stats':>5s} {'batch':>5s} {'plain ms/step':>13s} {'wall (sum)':>10s} "
        f"{'wall (median)':>13s} {'thread CPU':>10s}   ratios monitored/plain; target <= 1.03 at the default"
    )
    for r in rows:
        mark = "  <- default" if r["cadence"] == 3 and r["stats"] == "gated" else ""
        print(
            f"{r['name']:16s} {r['cadence']:7d} {r['stats']:>5s} {r['batch']:5d} {r['plain_ms_per_step']:13.3f} "
            f"{r['ratio_total']:10.3f} {r['ratio_median']:13.3f} {r['ratio_cpu']:10.3f}  "
            f"warnings: {', '.join(r['warnings']) or 'none'}{mark}"
        )
    print(
        "stats: gated = defaults (layer hooks and gradient norms stop once training accuracy passes "
        "theta = 0.6, here during the first epoch); full = theta 1.0, all statistics all along"
    )


if __name__ == "__main__":
    main()
