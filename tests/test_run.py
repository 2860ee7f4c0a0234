"""The run directory: crash safety, validation on load, no pickle."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nbdebug
from nbdebug.run import RunFormatError


def test_digits_run_reads_back(digits_run_path):
    run = nbdebug.load_run(digits_run_path)
    assert run.epochs == [1, 2, 3, 4, 5, 6]
    assert run.n_samples == 1797 and run.dim == 128 and run.n_classes == 10
    assert (run.split == "train").sum() == 1437 and (run.split == "test").sum() == 360
    assert run.thumbnails("train").shape == (1437, 8, 8)
    clean = np.array(run.metadata["clean_labels"])
    noisy = np.array(run.metadata["noisy"])
    assert len(noisy) == round(0.1 * 1437)
    assert (run.labels[noisy] != clean[noisy]).all()
    assert np.array_equal(np.flatnonzero(run.labels[:1437] != clean), np.sort(noisy))
    assert run.metrics(6)["test_acc"] > 0.8
    assert "1797 samples" in repr(run)


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np, torch
    from torch import nn
    import nbdebug, nbdebug.record as record

    torch.manual_seed(0)
    x = torch.randn(50, 4); y = torch.randint(0, 3, (50,))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    rec = nbdebug.Recorder(model, head=model[2], path=sys.argv[1], train=(x, y))
    rec.capture(0); rec.capture(1)

    real_close = record._RowWriter.close
    def dying_close(self):
        real_close(self)
        if self.path.name == "representations.npy":
            os._exit(9)  # the process dies half-way through writing epoch 2
    record._RowWriter.close = dying_close
    rec.capture(2)
""")


def test_process_killed_mid_epoch_leaves_finished_epochs_readable(tmp_path):
    path = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(path)], capture_output=True)
    assert result.returncode == 9, result.stderr.decode()
    leftovers = [p.name for p in (path / "epochs").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers, "the crash should have left a half-written temporary epoch behind"
    run = nbdebug.load_run(path)
    assert run.epochs == [0, 1]
    assert run.representations(1).shape == (50, 8)


def test_interrupted_capture_cleans_up(tmp_path, monkeypatch):
    import torch
    from torch import nn

    import nbdebug.record as record

    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    model = nn.Sequential(nn.Linear(4, 2))
    rec = nbdebug.Recorder(model, head=model[0], path=tmp_path / "run", train=(x, y))
    rec.capture(0)
    real_write = record._RowWriter.write

    def interrupted(self, rows, start):
        if self.path.name == "probabilities.npy":
            raise KeyboardInterrupt
        real_write(self, rows, start)

    monkeypatch.setattr(record._RowWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rec.capture(1)
    assert sorted(p.name for p in (tmp_path / "run" / "epochs").iterdir()) == ["000000"]
    assert rec.epochs == [0]
    monkeypatch.setattr(record._RowWriter, "write", real_write)
    rec.capture(1)  # the same epoch can be captured again after the interruption
    assert nbdebug.load_run(tmp_path / "run").epochs == [0, 1]


def test_missing_epoch_file_is_named(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    (path / "epochs" / "000003" / "probabilities.npy").unlink()
    with pytest.raises(RunFormatError, match=r"000003/probabilities.npy is missing: epoch 3 is incomplete"):
        nbdebug.load_run(path)


def test_shapes_must_agree_across_epochs(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    np.save(path / "epochs" / "000004" / "representations.npy", np.zeros((1797, 64), np.float16))
    with pytest.raises(
        RunFormatError,
        match=r"000004/representations.npy has shape \(1797, 64\), "
        r"expected \(1797, 128\)",
    ):
        nbdebug.load_run(path)
    np.save(path / "epochs" / "000004" / "representations.npy", np.zeros((1797, 128), np.float16))
    np.save(path / "epochs" / "000005" / "probabilities.npy", np.zeros((1797, 9), np.float32))
    with pytest.raises(RunFormatError, match=r"000005/probabilities.npy has shape"):
        nbdebug.load_run(path)


def test_labels_out_of_range(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    labels = np.load(path / "labels.npy")
    labels[5] = 10
    np.save(path / "labels.npy", labels)
    with pytest.raises(RunFormatError, match=r"labels.npy has labels outside -1..9"):
        nbdebug.load_run(path)


def test_pickled_arrays_are_refused(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    np.save(path / "labels.npy", np.array([object()] * 1797, dtype=object), allow_pickle=True)
    with pytest.raises(RunFormatError, match="labels.npy is not a readable .npy array"):
        nbdebug.load_run(path)


def test_missing_or_foreign_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; record one with nbdebug.Recorder"):
        nbdebug.load_run(tmp_path / "nowhere")
    with pytest.raises(RunFormatError, match="run.json is missing"):
        nbdebug.load_run(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunFormatError, match="not valid JSON"):
        nbdebug.load_run(tmp_path)
    with pytest.raises(TypeError, match="path must be a str"):
        nbdebug.load_run(42)


def test_newer_format_is_refused(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    info = json.loads((path / "run.json").read_text())
    info["format"] = 99
    (path / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunFormatError, match="format 99"):
        nbdebug.load_run(path)


def test_unknown_epoch_and_split(digits_run_path):
    run = nbdebug.load_run(digits_run_path)
    with pytest.raises(ValueError, match=r"epoch 0 was not captured; captured epochs are \[1, 2"):
        run.representations(0)
    with pytest.raises(ValueError, match="split must be one of"):
        run.indices("valid")
    assert run.thumbnails("test").shape == (360, 8, 8)


@pytest.mark.parametrize(
    "change",
    [
        {"splits": [1]},
        {"n_classes": "10"},
        {"classes": ["a"]},
        {"n_samples": -3},
        {"metadata": []},
        {"splits": [{"name": "train", "start": 0, "stop": 5}]},
    ],
)
def test_malformed_run_json_is_named(digits_run_path, change, copy_run):
    path = copy_run(digits_run_path)
    info = json.loads((path / "run.json").read_text())
    info.update(change)
    (path / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunFormatError, match="run.json"):
        nbdebug.load_run(path)


def test_corrupt_head_file_is_named(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    (path / "epochs" / "000002" / "head.npz").write_bytes(b"not a zip")
    run = nbdebug.load_run(path)
    with pytest.raises(RunFormatError, match="000002/head.npz is not a readable"):
        run.head(2)
