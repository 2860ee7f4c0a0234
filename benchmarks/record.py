"""What recording costs: the demo run, capture time against training time, and lazy reading.

    .venv/bin/python -m benchmarks.record [--large-epochs 5] [--parts demo large ddp callbacks]

1. The demo run (digits MLP, 30 epochs) recorded end to end, as `python -m nbdebug.demo` does.
2. The same training loop without the Recorder, so the ratio is capture overhead.
3. A large run: 60,000 samples x 512-d representations, a few epochs, then load_run and
   one epoch's representations read back while the process's peak memory is tracked, to
   show that reading never needs the whole run in memory.
4. DDP: the capture of the same model and samples (60,000 x 512) by 2 processes (gloo, one
   thread each, started with torch.multiprocessing) against one process.
5. The callbacks: the extra time per epoch of Lightning's and the Hugging Face Trainer's
   RecordCallback and MonitorCallback, against the same training without them.
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


def _large_data() -> tuple[torch.Tensor, torch.Tensor, nn.Module]:
    torch.manual_seed(0)
    x, y = torch.randn(60_000, 64), torch.randint(0, 10, (60_000,))
    return x, y, nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 10))


def _timed_captures(path: Path, epochs: int) -> float:
    """Seconds per capture of the large model's 60,000 samples, in this process (or this rank)."""
    import torch.distributed as dist

    x, y, model = _large_data()
    rec = nbdebug.Recorder(model, head=model[2], path=path, train=(x, y), batch_size=2048)
    if dist.is_initialized():
        dist.barrier()
    started = time.perf_counter()
    for epoch in range(epochs):
        rec.capture(epoch)
    return (time.perf_counter() - started) / epochs


def _ddp_rank(rank: int, world: int, port: str, path: str, epochs: int, out: str) -> None:
    import os

    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", port
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)  # two processes on two cores
    seconds = _timed_captures(Path(path), epochs)
    if rank == 0:
        Path(out).write_text(str(seconds))
    dist.destroy_process_group()


def ddp_capture(folder: Path, epochs: int) -> dict[str, float]:
    """Seconds per capture of the same run by one process and by 2 DDP processes."""
    import socket

    import torch.multiprocessing as mp

    single = _timed_captures(folder / "single", epochs)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    out = folder / "ddp-seconds"
    mp.spawn(_ddp_rank, args=(2, port, str(folder / "ddp"), epochs, str(out)), nprocs=2)
    same = np.allclose(
        nbdebug.load_run(folder / "ddp").probabilities(0), nbdebug.load_run(folder / "single").probabilities(0)
    )
    return {"single_s": single, "ddp_s": float(out.read_text()), "same": float(same)}


HOOKS = (
    "on_train_start",
    "on_train_batch_end",
    "on_train_epoch_end",
    "teardown",
    "on_train_begin",
    "on_log",
    "on_step_end",
    "on_epoch_end",
    "on_evaluate",
    "on_train_end",
    "_read_batch",
)


def _timed(callbacks: list, spent: list[float]) -> list:
    """The callbacks with each of their hooks timed into ``spent[0]`` (seconds inside nbdebug's code)."""

    def timed(method):
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        return call

    for callback in callbacks:
        for name in HOOKS:
            if name in type(callback).__dict__:
                setattr(callback, name, timed(getattr(callback, name)))
    return callbacks


def _lightning_seconds(folder: Path, callbacks: str, epochs: int, spent: list[float]) -> float:
    import lightning
    from torch.utils.data import DataLoader, TensorDataset

    from nbdebug.integrations.lightning import MonitorCallback, RecordCallback

    class Classifier(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU())
            self.fc = nn.Linear(128, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.body(x))

        def training_step(self, batch: tuple, batch_idx: int) -> dict:
            x, y = batch
            logits = self(x)
            return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits.detach()}

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    torch.manual_seed(0)
    x, y = torch.randn(4096, 64), torch.randint(0, 10, (4096,))
    made = {
        "none": [],
        "record": [RecordCallback(folder / f"lit-{time.perf_counter_ns()}", head="fc")],
        "monitor": [MonitorCallback(loss_fn=nn.CrossEntropyLoss(), display=False)],
    }[callbacks]
    trainer = lightning.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        callbacks=_timed(made, spent),
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    started = time.perf_counter()
    trainer.fit(Classifier(), loader)
    return time.perf_counter() - started


def _huggingface_seconds(folder: Path, callbacks: str, epochs: int, spent: list[float]) -> float:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    from torch.utils.data import Dataset

    from nbdebug.integrations.huggingface import MonitorCallback, RecordCallback

    class Tokens(Dataset):
        def __init__(self, ids: torch.Tensor):
            self.ids, self.labels = ids, (ids[:, 1] > 50).long()

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, num_labels=2
    )
    made = {
        "none": [],
        "record": [RecordCallback(folder / f"hf-{time.perf_counter_ns()}", head="classifier")],
        "monitor": [MonitorCallback()],
    }[callbacks]
    args = transformers.TrainingArguments(
        output_dir=str(folder / "hf-out"),
        num_train_epochs=epochs,
        per_device_train_batch_size=32,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_steps=10_000,
    )
    model = transformers.BertForSequenceClassification(config)
    data = Tokens(torch.randint(1, 100, (1024, 32)))
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=_timed(made, spent))
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def callback_costs(folder: Path, epochs: int = 4, repeats: int = 3) -> list[list[str]]:
    """Per framework and callback, per epoch: the time spent in the callback's own code (its
    hooks, timed), and the whole training's time with it against without it (the best of
    ``repeats`` runs of each, interleaved; on a shared machine this difference is noisy)."""
    import warnings

    rows = []
    for name, run in (("Lightning", _lightning_seconds), ("HF Trainer", _huggingface_seconds)):
        totals: dict[str, list[float]] = {"none": [], "record": [], "monitor": []}
        inside: dict[str, list[float]] = {"none": [], "record": [], "monitor": []}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(folder, "none", 1, [0.0])  # warm-up: imports and first-call costs
            for _ in range(repeats):
                for kind in totals:
                    spent = [0.0]
                    totals[kind].append(run(folder, kind, epochs, spent) / epochs)
                    inside[kind].append(spent[0] / epochs)
        plain = min(totals["none"])
        for kind in ("record", "monitor"):
            best = min(totals[kind])
            rows.append(
                [
                    f"{name}: {kind.capitalize()}Callback per epoch, in its hooks / whole epoch with and without",
                    f"{min(inside[kind]) * 1000:.0f} ms / {best * 1000:.0f} ms vs {plain * 1000:.0f} ms "
                    f"({best / plain:.2f}x)",
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-epochs", type=int, default=5)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--read", nargs=2, metavar=("PATH", "EPOCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        return read_back(args.read[0], int(args.read[1]))
    folder = Path(tempfile.mkdtemp(prefix="nbdebug-bench-"))
    rows = []
    try:
        if "demo" in args.parts:
            started = time.perf_counter()
            record_demo(folder / "demo", progress=False)
            recorded = time.perf_counter() - started
            plain = train_demo_without_recorder()
            rows += [
                ["demo run recorded (digits MLP, 30 epochs, 1,797 samples)", f"{recorded:.2f} s"],
                ["same training without the Recorder", f"{plain:.2f} s"],
                ["ratio recorded / plain", f"{recorded / plain:.2f}x"],
            ]
        if "large" in args.parts:
            large = large_run(folder, args.large_epochs)
            rows += [
                ["large run: capture of one epoch (60,000 x 512)", f"{large['capture_s']:.2f} s"],
                [f"large run: on disk for {args.large_epochs} epochs", f"{large['disk_mb']:.0f} MiB"],
                ["large run: load_run (validates every epoch)", f"{large['load_s'] * 1000:.0f} ms"],
                ["large run: stream one epoch's representations", f"{large['read_epoch_s'] * 1000:.0f} ms"],
                [
                    "large run: peak memory growth while loading and reading",
                    f"{large['peak_rss_growth_mb']:.0f} MiB (one epoch is {60_000 * 512 * 2 / 2**20:.0f} MiB)",
                ],
            ]
        if "ddp" in args.parts:
            ddp = ddp_capture(folder, args.large_epochs)
            rows += [
                ["capture of one epoch (60,000 x 512), one process", f"{ddp['single_s']:.2f} s"],
                ["the same, 2 DDP processes (gloo, 1 thread each)", f"{ddp['ddp_s']:.2f} s"],
                ["ratio DDP / one process", f"{ddp['ddp_s'] / ddp['single_s']:.2f}x"],
                ["DDP run's probabilities equal the single process's", "yes" if ddp["same"] else "NO"],
            ]
        if "callbacks" in args.parts:
            rows += callback_costs(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n".join(markdown_table(["measurement", "value"], rows)))


PARTS = ("demo", "large", "ddp", "callbacks")


if __name__ == "__main__":
    main()
