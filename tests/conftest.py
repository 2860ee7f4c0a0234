"""Shared fixtures: small real runs recorded once per test session, and helpers as fixtures
(``copy_run``, ``record_tiny``, ``blobs``) since test modules do not import each other."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from torch import nn

from nbdebug import Recorder, Session
from nbdebug.demo import record_demo

# The Hugging Face tests build tiny models from configs: nothing may try the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def digits_run_path(tmp_path_factory):
    """A real digits run: MLP, 10% flipped train labels, 6 epochs, test split and thumbnails,
    with the default visualizer fitted and cached.

    Treat it as read-only; take a ``copy_run`` (or ``digits_copy``) before changing anything on disk.
    """
    path = tmp_path_factory.mktemp("runs") / "digits"
    record_demo(path, epochs=6, noise=0.1, seed=0, progress=False)
    # Fit the default visualizer once: it is cached in the run, so every Session and
    # widget on this run (or a copy of it) reuses it instead of fitting again.
    Session(path, progress=False).fit()
    return path


@pytest.fixture
def copy_run(tmp_path):
    """``copy_run(src, name="run")``: a writable copy of the run directory ``src`` in the test's tmp_path."""

    def copy(src: Path, name: str = "run") -> Path:
        return Path(shutil.copytree(src, tmp_path / name))

    return copy


@pytest.fixture
def digits_copy(digits_run_path, copy_run):
    """A writable copy of the digits run (its cached visualizer included)."""
    return copy_run(digits_run_path, "digits")


def _record_tiny(path, epochs=3, n_outputs=3, labels=None, nan_row=None, seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 60) if labels is None else np.asarray(labels)
    x = (rng.normal(size=(60, 4)) + np.eye(3, 4)[rng.integers(0, 3, 60)] * 3).astype(np.float32)
    if nan_row is not None:
        x[nan_row] = np.nan
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, n_outputs))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    finite = torch.isfinite(xt).all(dim=1)
    rec = Recorder(
        model,
        head=model[2],
        path=path,
        train=(x, y),
        test=(x[:10], y[:10]),
        unlabeled=x[10:20],
        classes=None if n_outputs > 1 else ["no", "yes"],
    )
    for epoch in range(epochs):
        out = model(xt[finite])
        loss = (
            nn.functional.binary_cross_entropy_with_logits(out[:, 0], yt[finite].float())
            if n_outputs == 1
            else nn.functional.cross_entropy(out, yt[finite])
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec.capture(epoch)
    return path


@pytest.fixture
def record_tiny():
    """``record_tiny(path, epochs=3, n_outputs=3, labels=None, nan_row=None, seed=0)``: a small
    real run (an MLP on 60 random points in 3 clusters, recorded every epoch, with test and
    unlabeled splits); ``n_outputs=1`` makes it a binary sigmoid classifier, ``nan_row`` gives
    that sample NaN inputs. Returns ``path``."""
    return _record_tiny


@pytest.fixture
def blobs():
    """``blobs(n=120, classes=3, features=6, seed=0)``: (x float32, y int) of sklearn's make_blobs."""

    def make(n=120, classes=3, features=6, seed=0):
        x, y = make_blobs(n_samples=n, centers=classes, n_features=features, random_state=seed)
        return x.astype(np.float32), y

    return make


def _text_task(n=48, length=8, vocab=30, classes=3, seed=0):
    """Token ids whose class shows in which tokens they hold (class c draws most of its tokens
    from its own band of the vocabulary), with padding at the end of some sequences."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    band = (vocab - 3) // classes
    ids = 3 + y[:, None] * band + rng.integers(0, band, (n, length))
    noise = rng.random((n, length)) < 0.2
    ids[noise] = rng.integers(3, vocab, noise.sum())
    ids[:, 0] = 1  # [CLS]-like first token
    lengths = rng.integers(length // 2, length + 1, n)
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, ids, 0)
    return torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask), torch.from_numpy(y.astype(np.int64))


@pytest.fixture
def text_task():
    """``text_task(n=48, length=8, vocab=30, classes=3, seed=0)``: (input_ids, attention_mask, labels)
    int64 tensors of a small learnable token-classification task."""
    return _text_task


def _tiny_transformer(kind="bert", classes=3, vocab=30, seed=0):
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(seed)
    sizes = dict(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=classes,
    )
    if kind == "bert":
        return BertForSequenceClassification(BertConfig(max_position_embeddings=16, **sizes))
    # RoBERTa numbers positions from padding_idx + 1.
    return RobertaForSequenceClassification(RobertaConfig(max_position_embeddings=16 + 2, pad_token_id=0, **sizes))


@pytest.fixture
def tiny_transformer():
    """``tiny_transformer(kind="bert"|"roberta", classes=3, vocab=30, seed=0)``: a randomly initialised
    BertForSequenceClassification or RobertaForSequenceClassification with one 16-wide layer."""
    return _tiny_transformer
