"""Record the demo run: an MLP learning sklearn's digits with 10% of its train labels flipped.

    python -m nbdebug.demo runs/demo [--epochs 30] [--noise 0.1] [--seed 0]

The clean train labels and the indices of the flipped ones are kept in the run's
metadata (``clean_labels``, ``noisy``) as ground truth for finding mislabeled samples.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .record import Recorder


def flip_labels(labels: np.ndarray, rate: float, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Symmetric label noise: a ``rate`` fraction of labels moved to another class, uniformly."""
    noisy = labels.copy()
    flipped = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    noisy[flipped] = (labels[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return noisy


def digits_mlp(hidden: int = 128) -> nn.Sequential:
    """The demo classifier; its last layer (index 4) is the head."""
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def demo_data(noise: float = 0.1, seed: int = 0) -> dict[str, np.ndarray]:
    """The demo run's data: scikit-learn's digits scaled to [0, 1], split 80/20, with a share
    ``noise`` of the training labels flipped. Keys: ``x_train``, ``y_train`` (the given, noisy
    labels), ``clean`` (the true training labels), ``x_test``, ``y_test``, and the
    ``train_images`` / ``test_images`` thumbnails."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    images = (255 - digits.images * 255 / 16).round().astype(np.uint8)  # dark ink on white
    idx_train, idx_test = train_test_split(np.arange(len(x)), test_size=0.2, random_state=seed, stratify=digits.target)
    clean = digits.target[idx_train]
    return {
        "x_train": x[idx_train],
        "y_train": flip_labels(clean, noise, 10, rng),
        "clean": clean,
        "x_test": x[idx_test],
        "y_test": digits.target[idx_test],
        "train_images": images[idx_train],
        "test_images": images[idx_test],
    }


def record_demo(
    path: str | Path, epochs: int = 30, noise: float = 0.1, seed: int = 0, overwrite: bool = True, progress: bool = True
) -> Path:
    """Train the digits MLP for ``epochs`` epochs on :func:`demo_data`, capturing each one into ``path``."""
    torch.manual_seed(seed)
    data = demo_data(noise, seed)
    clean, noisy = data["clean"], data["y_train"]

    model = digits_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x_train, y_train = torch.from_numpy(data["x_train"]), torch.from_numpy(noisy)
    x_test, y_test = torch.from_numpy(data["x_test"]), torch.from_numpy(data["y_test"])

    recorder = Recorder(
        model,
        head=model[4],
        path=path,
        train=(x_train, y_train),
        test=(x_test, y_test),
        classes=[str(d) for d in range(10)],
        thumbnails={"train": data["train_images"], "test": data["test_images"]},
        metadata={
            "dataset": "sklearn load_digits",
            "label_noise": noise,
            "seed": seed,
            "clean_labels": clean.tolist(),
            "noisy": np.flatnonzero(noisy != clean).tolist(),
        },
        overwrite=overwrite,
    )
    generator = torch.Generator().manual_seed(seed)
    for epoch in tqdm(range(1, epochs + 1), desc="training digits MLP", disable=not progress):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for batch in torch.randperm(len(x_train), generator=generator).split(64):
            logits = model(x_train[batch])
            loss = loss_fn(logits, y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(batch)
            correct += (logits.argmax(1) == y_train[batch]).sum().item()
            total += len(batch)
        model.eval()
        with torch.no_grad():
            test_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        recorder.capture(
            epoch, metrics={"train_loss": loss_sum / total, "train_acc": correct / total, "test_acc": test_acc}
        )
    return Path(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nbdebug.demo", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="runs/demo", help="run directory to write (replaced)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--noise", type=float, default=0.1, help="fraction of train labels flipped")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if not 0 <= args.noise < 1:
        parser.error("--noise must be in [0, 1)")
    started = time.perf_counter()
    path = record_demo(args.path, epochs=args.epochs, noise=args.noise, seed=args.seed)
    print(f"recorded {args.epochs} epochs into {path} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
