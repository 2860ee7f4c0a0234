"""What the benchmarks share: recorded runs (reused when already on disk), small models,
markdown tables and the process's peak memory."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from nbdebug import Recorder, load_run
from nbdebug.demo import record_demo
from nbdebug.run import Run, RunFormatError


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table of already formatted cells."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


class SmallCNN(nn.Module):
    """Two 3x3 convolutions and a linear layer over 8x8 images (digits as 64 features)."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 2 * 2, n_classes)

    def forward(self, x):
        x = x.view(-1, 1, 8, 8)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


# -- recorded runs, reused when already on disk ---------------------------------------------


def existing_run(path: Path, epochs: int) -> Run | None:
    """The run at ``path`` if it holds ``epochs`` captured epochs, else None."""
    try:
        run = load_run(path)
    except (FileNotFoundError, RunFormatError):
        return None
    return run if len(run.epochs) == epochs else None


def digits_run(root: Path, epochs: int = 30) -> Run:
    """The digits demo run: MLP 64-128-128-10, 10% label noise, 1,437 train + 360 test."""
    path = root / f"digits-{epochs}"
    return existing_run(path, epochs) or load_run(record_demo(path, epochs=epochs, noise=0.1, seed=0))


def classification_data(n: int, n_features: int, seed: int, n_redundant: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``make_classification``'s 10 classes (12 informative features, 2 clusters per class,
    5% of labels flipped, class_sep 2): standardised float32 inputs and their labels."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n,
        n_features=n_features,
        n_informative=12,
        n_redundant=n_redundant,
        n_classes=10,
        n_clusters_per_class=2,
        flip_y=0.05,
        class_sep=2.0,
        random_state=seed,
    )
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32), y


def synthetic_run(root: Path, n_samples: int = 10000, epochs: int = 30, seed: int = 0) -> Run:
    """``make_classification`` (64 features, 12 informative, 10 classes, 2 clusters per class,
    5% of labels flipped) learned by an MLP 64-128-128-10; ``n_samples`` train plus 20% as
    many test samples; 128-d representations."""
    path = root / f"classification-{n_samples}-{epochs}"
    run = existing_run(path, epochs)
    if run is not None:
        return run
    n_test = n_samples // 5
    x, y = classification_data(n_samples + n_test, 64, seed, n_redundant=8)
    x_train, y_train = torch.from_numpy(x[:n_samples]), torch.from_numpy(y[:n_samples])
    x_test, y_test = torch.from_numpy(x[n_samples:]), torch.from_numpy(y[n_samples:])
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rec = Recorder(
        model,
        head=model[4],
        path=path,
        train=(x_train, y_train),
        test=(x_test, y_test),
        metadata={"dataset": "make_classification", "seed": seed},
        overwrite=True,
    )
    generator = torch.Generator().manual_seed(seed)
    for epoch in tqdm(range(1, epochs + 1), desc=f"training synthetic MLP ({n_samples})"):
        model.train()
        for batch in torch.randperm(n_samples, generator=generator).split(128):
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        rec.capture(epoch, metrics={"test_acc": acc})
    return load_run(path)
