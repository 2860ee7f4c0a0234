"""Recorder: what it captures, and the clear errors it gives for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import nbdebug
from nbdebug.record import NonFiniteWarning, _umask


class Net(nn.Module):
    """A classifier whose head is a named attribute, like model.fc in torchvision."""

    def __init__(self, features=6, hidden=16, classes=3, dropout=0.0):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc(self.body(x))


def train_epoch(model, x, y, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    loss = nn.functional.cross_entropy(model(torch.as_tensor(x)), torch.as_tensor(y))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_capture_stores_what_the_model_computes(tmp_path, blobs):
    torch.manual_seed(0)
    x, y = blobs()
    model = Net(dropout=0.5)
    rec = nbdebug.Recorder(
        model,
        head=model.fc,
        path=tmp_path / "run",
        train=(x[:100], y[:100]),
        test=(x[100:], y[100:]),
        unlabeled=x[:7],
        classes=["a", "b", "c"],
        metadata={"note": "blobs", "n": np.int64(3)},
    )
    for epoch in range(3):
        train_epoch(model, x[:100], y[:100])
        model.train()  # capture must not leave the model in eval mode
        rec.capture(epoch, metrics={"loss": torch.tensor(0.5), "acc": np.float32(0.9)})
        assert model.training

    run = nbdebug.load_run(tmp_path / "run")
    assert run.epochs == [0, 1, 2]
    assert run.n_samples == 127 and run.n_classes == 3 and run.classes == ["a", "b", "c"]
    assert list(run.split[[0, 99, 100, 119, 120, 126]]) == ["train", "train", "test", "test", "unlabeled", "unlabeled"]
    assert np.array_equal(run.labels[:120], y) and (run.labels[120:] == -1).all()
    assert run.metadata == {"note": "blobs", "n": 3}
    assert run.metrics(1) == {"loss": 0.5, "acc": pytest.approx(0.9)}

    # Representations are the head's input in eval mode (dropout off), stored as float16.
    model.eval()
    all_x = torch.from_numpy(np.concatenate([x, x[:7]]))
    with torch.no_grad():
        expected_reps = model.body(all_x).numpy()
        expected_probs = torch.softmax(model(all_x), 1).numpy()
    reps = run.representations(2)
    assert isinstance(reps, np.memmap) and reps.dtype == np.float16 and reps.shape == (127, 16)
    np.testing.assert_allclose(reps, expected_reps, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(run.probabilities(2), expected_probs, rtol=1e-5, atol=1e-6)

    # The head of an epoch is rebuilt with that epoch's weights.
    head = run.head(2)
    with torch.no_grad():
        np.testing.assert_allclose(
            head(torch.from_numpy(expected_reps)).numpy(),
            model.fc(torch.from_numpy(expected_reps)).numpy(),
            rtol=1e-5,
            atol=1e-5,
        )
    assert not torch.equal(run.head_state(0)["weight"], run.head_state(2)["weight"])


def test_datasets_and_sequential_head(tmp_path, blobs):
    x, y = blobs()
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)))
    train = TensorDataset(torch.from_numpy(x[:90]), torch.from_numpy(y[:90]))
    unlabeled = TensorDataset(torch.from_numpy(x[90:]))
    rec = nbdebug.Recorder(model, head=model[2], path=tmp_path / "run", train=train, unlabeled=unlabeled, batch_size=16)
    rec.capture(0)
    run = nbdebug.load_run(tmp_path / "run")
    assert run.classes == ["0", "1", "2"]  # named after the model's outputs
    assert np.array_equal(run.labels[:90], y[:90]) and run.dim == 8
    rebuilt = run.head(0)
    assert isinstance(rebuilt, nn.Sequential) and not rebuilt.training


def test_binary_sigmoid_output(tmp_path, blobs):
    x, y = blobs(classes=2)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 1))
    nbdebug.Recorder(model, head=model[2], path=tmp_path / "run", train=(x, y)).capture(0)
    probs = nbdebug.load_run(tmp_path / "run").probabilities(0)
    assert probs.shape == (120, 2)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-6)


def test_custom_head_needs_a_module_to_rebuild(tmp_path, blobs):
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 3))

        def forward(self, r):
            return r @ self.w

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = Head()

        def forward(self, x):
            return self.head(x)

    x, y = blobs()
    model = Model()
    # The warning gives the line that works later, and it does work (below).
    with pytest.warns(UserWarning, match=r"nbdebug.show\(run, head_module=model.head\)"):
        nbdebug.Recorder(model, head=model.head, path=tmp_path / "run", train=(x, y)).capture(0)
    run = nbdebug.load_run(tmp_path / "run")
    with pytest.raises(ValueError, match="module=MyHead"):
        run.head(0)
    assert torch.equal(run.head(0, module=Head()).w, model.head.w.detach())


def test_nonfinite_representations_are_stored_and_reported(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    with torch.no_grad():
        model.body[0].weight[0, 0] = float("nan")
    rec = nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    with pytest.warns(NonFiniteWarning, match="NaN or Inf"):
        rec.capture(0)
    run = nbdebug.load_run(tmp_path / "run")
    assert np.isnan(run.representations(0)).any()
    assert run.epoch_info(0)["nonfinite"]["representations"] > 0


def test_huge_representations_fall_back_to_float32(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    with torch.no_grad():
        model.body[0].weight.mul_(1e6)
    rec = nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    rec.capture(0)
    reps = nbdebug.load_run(tmp_path / "run").representations(0)
    assert reps.dtype == np.float32 and np.isfinite(reps).all()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(head=nn.Linear(16, 3)), ValueError, "not a submodule of model"),
        (dict(head="fc"), TypeError, "head must be the torch.nn.Module"),
        (dict(train=(np.zeros((10, 6), np.float32), np.zeros(9, int))), ValueError, "9 labels for 10 inputs"),
        (dict(train=(np.zeros((10, 6), np.float32), -np.ones(10, int))), ValueError, "negative label"),
        (dict(train=(np.zeros((10, 6), np.float32), np.full(10, 0.5))), ValueError, "integer class indices"),
        (dict(train=(np.zeros((10, 6), np.float32), np.zeros((10, 3)))), ValueError, "argmax"),
        (dict(train=[[0.0] * 6] * 10), TypeError, r"\(inputs, labels\) pair"),
        (dict(classes=["a", "b"]), ValueError, "classes names only 2"),
        (dict(metadata={"f": object()}), ValueError, "metadata must be JSON-serialisable"),
        (dict(thumbnails={"train": np.zeros((120, 8, 8))}), ValueError, "must be uint8"),
        (dict(thumbnails={"valid": np.zeros((120, 8, 8), np.uint8)}), ValueError, "recorded splits"),
        (dict(thumbnails={"train": np.zeros((3, 8, 8), np.uint8)}), ValueError, "3 images for 120"),
        (dict(batch_size=0), ValueError, "batch_size"),
    ],
)
def test_bad_arguments_name_the_argument_and_fix(tmp_path, kwargs, error, message, blobs):
    x, y = blobs()
    model = Net()
    args = dict(head=model.fc, path=tmp_path / "run", train=(x, y))
    args.update(kwargs)
    with pytest.raises(error, match=message):
        nbdebug.Recorder(model, **args)


def test_labels_beyond_the_model_outputs(tmp_path, blobs):
    x, y = blobs(classes=3)
    model = Net(classes=2)
    # Found by the trial forward pass, before any training.
    with pytest.raises(ValueError, match="labels go up to 2 but the model outputs 2 classes"):
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    three = Net(classes=3)
    with pytest.raises(ValueError, match="classes names 4 classes but the model outputs 3"):
        nbdebug.Recorder(three, head=three.fc, path=tmp_path / "run", train=(x, y), classes=list("abcd"))


def test_capture_twice_or_out_of_order(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    rec = nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    rec.capture(3)
    with pytest.raises(ValueError, match="epoch 3 was already captured"):
        rec.capture(3)
    with pytest.raises(ValueError, match="increasing order"):
        rec.capture(1)
    with pytest.raises(ValueError, match="non-negative integer"):
        rec.capture(-1)
    with pytest.raises(TypeError, match=r"metrics\['acc'\] must be a number"):
        rec.capture(4, metrics={"acc": "high"})
    assert rec.epochs == [3]


def test_head_not_called_or_bad_output_fail_before_training(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    model.extra = nn.Linear(16, 3)
    with pytest.raises(RuntimeError, match="head was called never"):
        nbdebug.Recorder(model, head=model.extra, path=tmp_path / "run", train=(x, y))

    class Stacked(Net):
        def forward(self, x):
            return super().forward(x)[:, None, :]

    stacked = Stacked()
    with pytest.raises(
        RuntimeError, match=r"shape \(batch, n_classes\), got \(2, 1, 3\); pass Recorder\(\.\.\., forward="
    ):
        nbdebug.Recorder(stacked, head=stacked.fc, path=tmp_path / "run2", train=(x, y))
    assert stacked.training  # the mode is restored even when the forward pass fails
    assert not stacked.fc._forward_pre_hooks and not model.extra._forward_pre_hooks


def test_every_submodule_keeps_its_mode_and_no_hook_stays(tmp_path, blobs):
    x, y = blobs()
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model.train()
    model[1].eval()  # a frozen BatchNorm while fine-tuning
    rec = nbdebug.Recorder(model, head=model[3], path=tmp_path / "run", train=(x, y))
    rec.capture(0)
    assert model.training and model[0].training and not model[1].training
    assert not model[3]._forward_pre_hooks


def test_float64_numpy_inputs_follow_the_model_dtype(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    rec = nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x.astype(np.float64), y))
    rec.capture(0)
    assert nbdebug.load_run(tmp_path / "run").representations(0).shape == (120, 16)


@pytest.mark.parametrize(
    "last, output", [(nn.Softmax(dim=1), "probabilities"), (nn.LogSoftmax(dim=1), "log_probabilities")]
)
def test_models_that_end_in_softmax(tmp_path, last, output, blobs):
    x, y = blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), last)
    with pytest.warns(UserWarning, match=f"pass output='{output}'"):
        nbdebug.Recorder(model, head=model[2], path=tmp_path / "warned", train=(x, y))
    nbdebug.Recorder(model, head=model[2], path=tmp_path / "run", train=(x, y), output=output).capture(0)
    with torch.no_grad():
        expected = torch.softmax(model[:3](torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(nbdebug.load_run(tmp_path / "run").probabilities(0), expected, rtol=1e-5, atol=1e-6)


def test_sigmoid_output(tmp_path, blobs):
    x, y = blobs(classes=2)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 1), nn.Sigmoid())
    nbdebug.Recorder(model, head=model[2], path=tmp_path / "run", train=(x, y), output="probabilities").capture(0)
    with torch.no_grad():
        p = model(torch.from_numpy(x)).numpy()[:, 0]
    np.testing.assert_allclose(nbdebug.load_run(tmp_path / "run").probabilities(0)[:, 1], p, rtol=1e-6)
    with pytest.raises(ValueError, match="output must be one of"):
        nbdebug.Recorder(model, head=model[2], path=tmp_path / "r2", train=(x, y), output="softmax")


def test_empty_split(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    with pytest.raises(ValueError, match="test has no samples"):
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y), test=(x[:0], y[:0]))


def test_dataset_targets_are_used_without_loading_items(tmp_path, blobs):
    x, y = blobs()

    class Images(TensorDataset):
        loads = 0

        def __getitem__(self, i):
            Images.loads += 1
            return super().__getitem__(i)

    data = Images(torch.from_numpy(x), torch.from_numpy(y))
    data.targets = y.tolist()
    model = Net()
    nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=data)
    assert Images.loads == 2  # only the trial forward pass


def test_an_epoch_already_on_disk_is_not_overwritten(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    rec = nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    rec.capture(0)
    rec._epochs.clear()  # as if interrupted between the rename and the bookkeeping
    with pytest.raises(ValueError, match="epoch 0 was already captured"):
        rec.capture(0)


def test_epochs_sort_as_numbers_and_are_readable_by_others(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    rec = nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    rec.capture(999_999)
    rec.capture(1_000_000)
    assert nbdebug.load_run(tmp_path / "run").epochs == [999_999, 1_000_000]
    mode = (tmp_path / "run" / "epochs" / "999999").stat().st_mode
    assert mode & 0o044 == (0o777 & ~_umask()) & 0o044


def test_existing_directory_is_protected(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y)).capture(0)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y), overwrite=True)
    with pytest.raises(nbdebug.RunFormatError, match="no captured epochs"):
        nbdebug.load_run(tmp_path / "run")

    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an nbdebug run"):
        nbdebug.Recorder(model, head=model.fc, path=other, train=(x, y), overwrite=True)
    assert (other / "keep.txt").exists()
