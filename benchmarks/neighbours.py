"""The kNN attributes' neighbour search, exact against approximate, at scale.

    .venv/bin/python -m benchmarks.neighbours [--sizes 10000 50000 200000] [--epochs 30]
        [--out /tmp/nbdebug-bench/widget]

On the runs of ``benchmarks.widget`` (``make_classification``, MLP representations, recorded
and fitted there when missing), the neighbours behind the kNN attributes of
:mod:`nbdebug.interest.features` are searched as that module does: every sample's 10 nearest
labelled training samples under cosine geometry, at the last epoch. Exact is scikit-learn's
``NearestNeighbors`` (used up to ``EXACT_NEIGHBOURS_MAX`` reference samples); approximate is
``clustered_reference_knn`` with 12 lists probed (used above). Printed: the seconds of each,
their ratio and the recall (the share of the exact neighbours the approximate search finds).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nbdebug import load_run
from nbdebug.interest import features

from ._common import markdown_table
from .widget import record_run

torch.set_num_threads(1)


def search(representations: np.ndarray, reference: np.ndarray, exact: bool) -> tuple[np.ndarray, float]:
    """The neighbour indices found, and the seconds taken."""
    started = time.perf_counter()
    _, indices, _ = features._neighbours(representations, reference, features.N_NEIGHBOURS, exact=exact)
    return indices, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 50_000, 200_000])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "nbdebug-bench" / "widget")
    args = parser.parse_args(argv)
    rows = []
    for n in args.sizes:
        run = load_run(record_run(args.out, n, args.epochs))
        representations = np.asarray(run.representations(run.epochs[-1]))
        train = run.indices("train")
        reference = train[run.labels[train] >= 0]
        exact, exact_s = search(representations, reference, exact=True)
        approximate, approximate_s = search(representations, reference, exact=False)
        found = [len(np.intersect1d(a, e)) for a, e in zip(approximate, exact, strict=True)]
        recall = sum(found) / exact.size
        print(f"{n} samples: exact {exact_s:.2f} s, approximate {approximate_s:.2f} s, recall {recall:.3f}", flush=True)
        rows.append(
            [
                f"{run.n_samples:,}",
                f"{len(reference):,}",
                f"{exact_s:.2f}",
                f"{approximate_s:.2f}",
                f"{exact_s / approximate_s:.1f}x",
                f"{recall:.3f}",
            ]
        )
    header = ["samples", "reference", "exact s", "approximate s", "speed-up", "recall@10"]
    print("\n" + "\n".join(markdown_table(header, rows)))


if __name__ == "__main__":
    main()
