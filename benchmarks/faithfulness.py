"""How far the estimated faithfulness of each frame is from the exact value.

    .venv/bin/python -m benchmarks.faithfulness [--runs digits synthetic] [--queries 2000]
        [--out /tmp/nbdebug-bench/visualizer]

The widget shows, per epoch, NPR@15 and PPR of the training split estimated on one fixed
random subsample of ``--queries`` samples (the neighbours of each searched exactly among the
whole split), with ±1.96 standard errors. This compares them with the exact values (every
sample scored) on the runs of ``benchmarks.visualizer`` (the digits demo run, 1,437 + 360
samples, and the 10,000 + 2,000-sample ``make_classification`` run; both 30 epochs, the
default TimeTravelVisualizer, fitted once and cached in ``--out``): per split and figure, the
mean and largest |estimate - exact| over the epochs, the mean reported 95% half-width, the
share of epochs whose exact value lies within it, and the seconds each takes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from nbdebug.landscape.metrics import evaluate
from nbdebug.landscape.visualizer import TimeTravelVisualizer

from ._common import digits_run, markdown_table, synthetic_run

torch.set_num_threads(1)


def compare(run, queries: int) -> tuple[list[list[str]], float, float]:
    projection = TimeTravelVisualizer(progress=False).fit(run)  # cached in the run directory
    started = time.perf_counter()
    estimate = evaluate(run, projection, max_queries=queries)
    estimated_s = time.perf_counter() - started
    started = time.perf_counter()
    exact = evaluate(run, projection, max_queries=None)
    exact_s = time.perf_counter() - started
    rows = []
    for split in ("train", "test"):
        n = len(run.indices(split))
        for score in ("npr", "ppr"):
            key = f"{score}_{split}"
            error = np.abs(estimate[key] - exact[key])
            bound = 1.96 * estimate[f"{key}_se"]
            rows.append(
                [
                    f"{score.upper()} {split} ({n} samples, {min(queries, n)} scored)",
                    f"{np.mean(exact[key]):.4f}",
                    f"{np.mean(error):.4f}",
                    f"{np.max(error):.4f}",
                    f"{np.mean(bound):.4f}",
                    f"{np.mean(error <= bound + 1e-12):.0%}",
                ]
            )
    return rows, estimated_s, exact_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["digits", "synthetic"], choices=["digits", "synthetic"])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/nbdebug-bench/visualizer"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    header = ["figure", "exact (mean over epochs)", "mean abs error", "largest abs error", "mean ±95% bound", "within"]
    for name in args.runs:
        run = digits_run(args.out) if name == "digits" else synthetic_run(args.out)
        rows, estimated_s, exact_s = compare(run, args.queries)
        print(f"\n### {name} ({run.n_samples} samples x {len(run.epochs)} epochs)\n")
        print("\n".join(markdown_table(header, rows)))
        print(f"\nestimate {estimated_s:.1f} s, exact {exact_s:.1f} s ({exact_s / estimated_s:.1f}x)")


if __name__ == "__main__":
    main()
