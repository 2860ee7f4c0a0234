"""What recording costs: the demo run, capture time against training time, and lazy reading.

    .venv/bin/python -m benchmarks.record [--large-epochs 5]

1. The demo run (digits MLP, 30 epochs) recorded end to end, as `python -m nbdebug.demo` does.
2. The same training loop without the Recorder, so the ratio is capture overhead.
3. A large run: 60,000 samples x 512-d representations, a few epochs, then load_run and
   one epoch's representations read back while the process's peak memory is tracked, to
   show that reading never needs the whole run in memory.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import nbdebug
from nbdebug.demo import record_demo

from ._common import markdown_table, peak_rss_mb


def train_demo_without_recorder(epochs: int = 30) -> float:
    """The demo's training loop alone, timed like record_demo."""
    from sklearn.datasets import load_digits

    from nbdebug.demo import digits_mlp

    started = time.perf_counter()
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.from_numpy((digits.data / 16.0).astype(np.float32))[:1437]
    y = torch.from_numpy(digits.target)[:1437]
    model = digits_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(64):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            model(x[:360]).argmax(1)
    return time.perf_counter() - started


def large_run(folder: Path, epochs: int) -> dict[str, float]:
    n, features, dim = 60_000, 64, 512
    torch.manual_seed(0)
    x = torch.randn(n, features)
    y = torch.randint(0, 10, (n,))
    model = nn.Sequential(nn.Linear(features, dim), nn.ReLU(), nn.Linear(dim, 10))
    rec = nbdebug.Recorder(
        model,
        head=model[2],
        path=folder / "large",
        train=(x[:50_000], y[:50_000]),
        test=(x[50_000:], y[50_000:]),
        batch_size=2048,
    )
    started = time.perf_counter()
    for epoch in range(epochs):
        rec.capture(epoch)
    capture = (time.perf_counter() - started) / epochs
    del rec, model, x, y
    # Read back in a fresh process so its peak memory is the reading's alone.
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.record", "--read", str(folder / "large"), str(epochs - 1)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    load, read, growth = map(float, out.split())
    size = sum(f.stat().st_size for f in (folder / "large").rglob("*") if f.is_file()) / 2**20
    return {"capture_s": capture, "load_s": load, "read_epoch_s": read, "disk_mb": size, "peak_rss_growth_mb": growth}


def read_back(path: str, epoch: int) -> None:
    """Open a run and stream one epoch in chunks, as a projection would; print times and memory."""
    baseline = peak_rss_mb()
    started = time.perf_counter()
    run = nbdebug.load_run(path)
    load = time.perf_counter() - started
    started = time.perf_counter()
    reps = run.representations(epoch)
    for start in range(0, len(reps), 10_000):
        np.asarray(reps[start : start + 10_000], np.float32).sum()
    read = time.perf_counter() - started
    print(load, read, peak_rss_mb() - baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-epochs", type=int, default=5)
    parser.add_argument("--read", nargs=2, metavar=("PATH", "EPOCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        return read_back(args.read[0], int(args.read[1]))
    folder = Path(tempfile.mkdtemp(prefix="nbdebug-bench-"))
    try:
        started = time.perf_counter()
        record_demo(folder / "demo", progress=False)
        recorded = time.perf_counter() - started
        plain = train_demo_without_recorder()
        large = large_run(folder, args.large_epochs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    rows = [
        ["demo run recorded (digits MLP, 30 epochs, 1,797 samples)", f"{recorded:.2f} s"],
        ["same training without the Recorder", f"{plain:.2f} s"],
        ["ratio recorded / plain", f"{recorded / plain:.2f}x"],
        ["large run: capture of one epoch (60,000 x 512)", f"{large['capture_s']:.2f} s"],
        [f"large run: on disk for {args.large_epochs} epochs", f"{large['disk_mb']:.0f} MiB"],
        ["large run: load_run (validates every epoch)", f"{large['load_s'] * 1000:.0f} ms"],
        ["large run: stream one epoch's representations", f"{large['read_epoch_s'] * 1000:.0f} ms"],
        [
            "large run: peak memory growth while loading and reading",
            f"{large['peak_rss_growth_mb']:.0f} MiB (one epoch is {60_000 * 512 * 2 / 2**20:.0f} MiB)",
        ],
    ]
    print("\n".join(markdown_table(["measurement", "value"], rows)))


if __name__ == "__main__":
    main()
