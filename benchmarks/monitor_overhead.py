"""Overhead of nbdebug.Monitor: wall-clock ratio of a training loop with and without it.

Two identical models train side by side on load_digits; epochs of the plain loop and of the
monitored loop alternate (and swap which goes first every round), so machine load affects
both alike. The loop is a typical notebook loop over in-memory tensors (no DataLoader, which
would hide the overhead): forward, loss, zero_grad, backward, step, running loss/accuracy.
The small MLP is the worst case (least work per step to hide the monitor behind).

    .venv/bin/python benchmarks/monitor_overhead.py [--rounds 30]
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

logging.getLogger("nbdebug").setLevel(logging.CRITICAL)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        x = x.view(-1, 1, 8, 8)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def epoch(model, opt, X, y, batch, mon=None) -> float:
    """One epoch; returns its wall-clock seconds."""
    start = time.perf_counter()
    total, correct = 0.0, 0
    for i in range(0, len(X), batch):
        xb, yb = X[i:i + batch], y[i:i + batch]
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(loss=loss, inputs=xb, targets=yb, outputs=out)
        total += loss.item() * len(yb)
        correct += int((out.argmax(1) == yb).sum())
    if mon is not None:
        mon.epoch_end(train_loss=total / len(X), train_acc=correct / len(X))
    return time.perf_counter() - start


def measure(name, build, X, y, batch, cadence, rounds) -> dict:
    torch.manual_seed(0)
    plain = build()
    watched = copy.deepcopy(plain)
    opt_plain = torch.optim.Adam(plain.parameters(), lr=1e-3)
    opt_watched = torch.optim.Adam(watched.parameters(), lr=1e-3)
    mon = Monitor(watched, optimizer=opt_watched, loss_fn=nn.CrossEntropyLoss(), cadence=cadence)
    epoch(plain, opt_plain, X, y, batch)  # warm-up both
    epoch(watched, opt_watched, X, y, batch, mon)
    t_plain, t_watched = [], []
    for r in range(rounds):
        if r % 2 == 0:
            t_plain.append(epoch(plain, opt_plain, X, y, batch))
            t_watched.append(epoch(watched, opt_watched, X, y, batch, mon))
        else:
            t_watched.append(epoch(watched, opt_watched, X, y, batch, mon))
            t_plain.append(epoch(plain, opt_plain, X, y, batch))
    mon.detach()
    steps = -(-len(X) // batch)
    return {
        "name": name, "cadence": cadence, "batch": batch,
        "plain_ms_per_step": 1e3 * statistics.median(t_plain) / steps,
        "ratio_total": sum(t_watched) / sum(t_plain),
        "ratio_median": statistics.median(w / p for w, p in zip(t_watched, t_plain)),
        "warnings": [w.code for w in mon.warnings],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="epochs per variant (alternating)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / (X.std(0) + 1e-8), dtype=torch.float32)
    y = torch.tensor(y)
    mlp = lambda: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    rows = []
    for cadence in (3, 1, 10):
        rows.append(measure("MLP 64-64-10", mlp, X, y, 32, cadence, args.rounds))
        rows.append(measure("CNN 2 conv + fc", SmallCNN, X, y, 32, cadence, args.rounds))
    print(f"\n{'model':16s} {'cadence':>7s} {'batch':>5s} {'plain ms/step':>13s} {'ratio (sum)':>11s} "
          f"{'ratio (median)':>14s}  default target <= 1.03")
    for r in rows:
        mark = "  <- default" if r["cadence"] == 3 else ""
        print(f"{r['name']:16s} {r['cadence']:7d} {r['batch']:5d} {r['plain_ms_per_step']:13.3f} "
              f"{r['ratio_total']:11.3f} {r['ratio_median']:14.3f}{mark}")
    leaked = {r["name"]: r["warnings"] for r in rows if r["warnings"]}
    print(f"warnings raised on these healthy trainings: {leaked or 'none'}")


if __name__ == "__main__":
    main()
