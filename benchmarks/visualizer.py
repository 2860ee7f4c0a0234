"""Benchmark of the time-travelling visualizer against umap-learn and AlignedPCA.

    .venv/bin/python -m benchmarks.visualizer [--runs digits synthetic] [--methods umap aligned_umap pca nbdebug]
        [--umap-epochs N] [--aligned-epochs N] [--out /tmp/nbdebug-bench/visualizer]

Runs (recorded once into --out, see benchmarks/_common.py): the digits demo run
(1,437 train + 360 test, 30 epochs) and a ``make_classification`` run (10,000 train +
2,000 test, 64 features, 10 classes, MLP, 30 epochs); both have 128-d representations.
``--runs scale`` is the same kind of run at 60,000 train + 12,000 test x 100 epochs, to
show it fits in memory (``--methods nbdebug``; the measured column gives the peak memory).

Methods, each fitted on the training split and placing the test split as unseen samples:

umap          umap-learn UMAP per epoch (n_neighbors 15), frames aligned by orthogonal
              Procrustes; test samples by ``UMAP.transform``. ``--umap-epochs N`` fits only
              N evenly spaced epochs (fit time then also given extrapolated to all epochs).
aligned_umap  umap-learn AlignedUMAP over the first ``--aligned-epochs`` epochs (train only:
              it cannot place unseen samples).
pca           nbdebug's AlignedPCA, the linear baseline (PPR through its linear inverse).
nbdebug       nbdebug's TimeTravelVisualizer (no cache).

Columns: fit seconds; NPR@15 on train and test (mean over the fitted epochs, at most 2,000
query samples per epoch, neighbours among the whole split); PPR on train and test;
median displacement per frame relative to the spread; mean and max Procrustes rotation
between consecutive frames and the number of reflections; milliseconds to place one epoch
of new samples (the test split) and to paint the 256x256 class territories. Rows marked "same
epochs" restrict nbdebug's averages to the epochs a reduced baseline covered.

Below each table, nbdebug's NPR@15 as a ratio of each baseline's (over the epochs that
baseline covered) and how many times faster nbdebug fits all epochs.

Every result is also written to ``<out>/results.json``, merged with earlier invocations,
so slow baselines can be run once (``--table`` prints the stored tables); the last
column says when each row was measured.

umap-learn is a benchmark-only dependency; nbdebug never imports it.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from nbdebug.landscape.metrics import evaluate
from nbdebug.landscape.projection import AlignedPCA, procrustes_rotation
from nbdebug.landscape.territories import territories
from nbdebug.landscape.visualizer import TimeTravelVisualizer

from ._common import digits_run, markdown_table, peak_rss_mb, synthetic_run

K = 15
torch.set_num_threads(1)
# umap-learn says on every fit that random_state makes it single-threaded; we know.
warnings.filterwarnings("ignore", message="n_jobs value")


class Frames:
    """An embedding given directly, for :func:`nbdebug.landscape.metrics.evaluate`."""

    def __init__(self, embedding):
        self.embedding_ = embedding


def subset_run_view(run, epochs):
    """The run restricted to some epochs (read-only view for evaluate)."""
    view = type(run)(run.path, run.info, run.labels, list(epochs), run.dim)
    return view


def summarise(run, projection, epochs, ppr, seconds, place_ms, paint_ms, extra=None):
    view = subset_run_view(run, epochs)
    metrics = evaluate(view, projection, k=K, max_queries=2000, ppr=ppr)
    row = {
        "epochs": list(epochs),
        "fit_s": seconds,
        "place_ms": place_ms,
        "paint_ms": paint_ms,
        "per_epoch": {
            key: np.asarray(value, dtype=float).tolist() for key, value in metrics.items() if key != "epochs"
        },
    }
    row.update(extra or {})
    return row


def run_umap(run, epochs):
    import umap

    train, test = run.indices("train"), run.indices("test")
    frames = np.full((len(epochs), run.n_samples, 2), np.nan, dtype=np.float32)
    flips, seconds, place = 0, 0.0, []
    previous = None
    for i, epoch in enumerate(epochs):
        reps = np.asarray(run.representations(epoch), dtype=np.float32)
        started = time.perf_counter()
        model = umap.UMAP(n_neighbors=K, random_state=0).fit(reps[train])
        frame_train = model.embedding_.astype(np.float32)
        seconds += time.perf_counter() - started
        started = time.perf_counter()
        frame_test = model.transform(reps[test]).astype(np.float32)
        place.append((time.perf_counter() - started) * 1000)
        centre = frame_train.mean(0)
        frame_train, frame_test = frame_train - centre, frame_test - centre
        if previous is not None:
            q = procrustes_rotation(frame_train, previous)
            flips += int(np.linalg.det(q) < 0)
            frame_train, frame_test = frame_train @ q, frame_test @ q
        frames[i, train], frames[i, test] = frame_train, frame_test
        previous = frame_train
    return Frames(frames), seconds, float(np.median(place[1:] or place)), {"reflections_before_alignment": flips}


def run_aligned_umap(run, epochs):
    import umap

    train = run.indices("train")
    data = [np.asarray(run.representations(e), dtype=np.float32)[train] for e in epochs]
    relations = [{j: j for j in range(len(train))} for _ in range(len(epochs) - 1)]
    started = time.perf_counter()
    model = umap.AlignedUMAP(n_neighbors=K, random_state=0).fit(data, relations=relations)
    seconds = time.perf_counter() - started
    frames = np.full((len(epochs), run.n_samples, 2), np.nan, dtype=np.float32)
    for i, embedding in enumerate(model.embeddings_):
        frames[i, train] = embedding
    return Frames(frames), seconds


def timed_place_and_paint(projection, run):
    epoch = run.epochs[-1]
    reps = np.asarray(run.representations(epoch), dtype=np.float32)[run.indices("test")]
    projection.transform(epoch, reps[:10])  # warm-up
    started = time.perf_counter()
    projection.transform(epoch, reps)
    place_ms = (time.perf_counter() - started) * 1000
    points = projection.embedding_[-1]
    points = points[np.isfinite(points).all(1)]
    low, high = points.min(0), points.max(0)
    bounds = (float(low[0]), float(high[0]), float(low[1]), float(high[1]))
    territories(projection, run, epoch, bounds, resolution=32)  # warm-up
    started = time.perf_counter()
    territories(projection, run, epoch, bounds, resolution=256)
    paint_ms = (time.perf_counter() - started) * 1000
    return place_ms, paint_ms


def measure(run, method, args):
    epochs = list(run.epochs)
    if method == "umap":
        if args.umap_epochs and args.umap_epochs < len(epochs):
            epochs = [epochs[i] for i in np.linspace(0, len(epochs) - 1, args.umap_epochs).round().astype(int)]
        frames, seconds, place_ms, extra = run_umap(run, epochs)
        extra["fit_s_all_epochs_extrapolated"] = seconds * len(run.epochs) / len(epochs)
        return summarise(run, frames, epochs, False, seconds, place_ms, None, extra)
    if method == "aligned_umap":
        epochs = epochs[: args.aligned_epochs] if args.aligned_epochs else epochs
        frames, seconds = run_aligned_umap(run, epochs)
        return summarise(
            run,
            frames,
            epochs,
            False,
            seconds,
            None,
            None,
            {"fit_s_all_epochs_extrapolated": seconds * len(run.epochs) / len(epochs)},
        )
    if method == "pca":
        started = time.perf_counter()
        projection = AlignedPCA(progress=False).fit(run)
        seconds = time.perf_counter() - started
    else:
        started = time.perf_counter()
        projection = TimeTravelVisualizer(cache=False, progress=False, seed=0).fit(run)
        seconds = time.perf_counter() - started
    place_ms, paint_ms = timed_place_and_paint(projection, run)
    return summarise(run, projection, epochs, True, seconds, place_ms, paint_ms)


def mean_over(row, key, epochs=None):
    values = np.asarray(row["per_epoch"].get(key, []), dtype=float)
    if epochs is not None:
        keep = [row["epochs"].index(e) for e in epochs if e in row["epochs"]]
        values = values[keep]
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def fmt(value, spec):
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)


HEADER = [
    "method",
    "epochs",
    "fit s",
    "NPR@15 train",
    "NPR@15 test",
    "PPR train",
    "PPR test",
    "displacement",
    "rotation mean / max deg",
    "reflections",
    "place ms",
    "256² paint ms",
    "measured",
]


def table(name, rows):
    cells = []
    order = ["umap", "aligned_umap", "pca", "nbdebug"]
    for method in [m for m in order if m in rows]:
        row = rows[method]
        variants = [(method, None)]
        if method == "nbdebug":
            for base in ("umap", "aligned_umap"):
                if base in rows and rows[base]["epochs"] != row["epochs"]:
                    variants.append((f"nbdebug, same epochs as {base}", rows[base]["epochs"]))
        for label, epochs in variants:
            # Rotation and reflections are of consecutive fitted frames; not restricted to a subset.
            rotation = np.asarray(row["per_epoch"]["rotation"], dtype=float) if epochs is None else np.array([])
            rotation = rotation[np.isfinite(rotation)]
            fit = row["fit_s"]
            fit_text = fmt(fit, ".1f")
            if "fit_s_all_epochs_extrapolated" in row and len(row["epochs"]) < 30:
                fit_text += f" (all epochs ≈ {row['fit_s_all_epochs_extrapolated']:.0f})"
            reflections = int(np.nansum(row["per_epoch"]["reflection"])) if epochs is None else "—"
            if "reflections_before_alignment" in row:
                reflections = f"{reflections} ({row['reflections_before_alignment']} before Procrustes)"
            rotation_text = (
                f"{fmt(float(rotation.mean()) if len(rotation) else None, '.2f')} / "
                f"{fmt(float(rotation.max()) if len(rotation) else None, '.2f')}"
            )
            cells.append(
                [
                    label,
                    str(len(epochs or row["epochs"])),
                    fit_text if epochs is None else "—",
                    *(fmt(mean_over(row, key, epochs), ".3f") for key in ("npr_train", "npr_test")),
                    *(fmt(mean_over(row, key, epochs), ".3f") for key in ("ppr_train", "ppr_test")),
                    fmt(mean_over(row, "displacement", epochs), ".3f"),
                    rotation_text,
                    str(reflections),
                    fmt(row["place_ms"], ".1f"),
                    fmt(row["paint_ms"], ".0f"),
                    row.get("measured", ""),
                ]
            )
    lines = [f"\n### {name}\n", *markdown_table(HEADER, cells)]
    baselines = [m for m in ("umap", "aligned_umap", "pca") if m in rows]
    if "nbdebug" in rows and baselines:
        ours = rows["nbdebug"]
        ratio_cells = []
        for base in baselines:
            theirs, epochs = rows[base], rows[base]["epochs"]
            ratios = [mean_over(ours, key, epochs) / mean_over(theirs, key) for key in ("npr_train", "npr_test")]
            speedup = theirs.get("fit_s_all_epochs_extrapolated", theirs["fit_s"]) / ours["fit_s"]
            ratio_cells.append(
                [base, fmt(ratios[0], ".2f"), fmt(ratios[1], ".2f"), fmt(speedup, ".1f" if speedup >= 1 else ".3f")]
            )
        header = ["nbdebug against", "NPR@15 train ratio", "NPR@15 test ratio", "times faster (all epochs)"]
        lines += ["", *markdown_table(header, ratio_cells)]
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["digits", "synthetic"], choices=["digits", "synthetic", "scale"])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["umap", "aligned_umap", "pca", "nbdebug"],
        choices=["umap", "aligned_umap", "pca", "nbdebug"],
    )
    parser.add_argument("--umap-epochs", type=int, default=None, help="fit per-epoch UMAP on N evenly spaced epochs")
    parser.add_argument("--aligned-epochs", type=int, default=None, help="fit AlignedUMAP on the first N epochs")
    parser.add_argument("--synthetic-samples", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/nbdebug-bench/visualizer"))
    parser.add_argument("--table", action="store_true", help="only print the tables of results.json")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    stamp = datetime.now(timezone.utc).strftime("%H:%M")
    for name in [] if args.table else args.runs:
        if name == "digits":
            run = digits_run(args.out)
        elif name == "synthetic":
            run = synthetic_run(args.out, args.synthetic_samples)
        else:
            run = synthetic_run(args.out, 60000, epochs=100)
        key = f"{name} ({len(run.indices('train'))} train x {len(run.epochs)} epochs)"
        for method in args.methods:
            print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {key}: {method} ...", flush=True)
            row = measure(run, method, args)
            row["measured"] = f"{stamp}, peak {peak_rss_mb():.0f} MiB"
            # Re-read before writing: another invocation may have added rows meanwhile.
            results = json.loads(results_file.read_text()) if results_file.exists() else {}
            results.setdefault(key, {})[method] = row
            results_file.write_text(json.dumps(results, indent=1))
            print(f"    fit {row['fit_s']:.1f} s, NPR@15 train {mean_over(row, 'npr_train'):.3f}", flush=True)
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for key, rows in results.items():
        table(key, rows)


if __name__ == "__main__":
    main()
