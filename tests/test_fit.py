"""nbdebug.fit without repairs: the input forms, the inferred loss, the history, warnings and
recording, the user's model left alone, and errors that name the argument."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_circles
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nbdebug
from nbdebug.fit import _infer, _loss
from nbdebug.repair.data import Data


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = ((X - X.mean(0)) / (X.std(0) + 1e-8)).astype(np.float32)
    return (
        torch.from_numpy(X[:1200]),
        torch.from_numpy(y[:1200]),
        torch.from_numpy(X[1200:]),
        torch.from_numpy(y[1200:]),
    )


def mlp(d_in=64, d_out=10, final=None):
    torch.manual_seed(0)
    layers = [nn.Linear(d_in, 32), nn.ReLU(), nn.Linear(32, d_out)]
    return nn.Sequential(*layers, *([final] if final is not None else []))


def caplog_quiet():
    logger = logging.getLogger("nbdebug")

    class Quiet:
        def __enter__(self):
            self.level = logger.level
            logger.setLevel(logging.CRITICAL)

        def __exit__(self, *exc):
            logger.setLevel(self.level)

    return Quiet()


def snapshot(model):
    return repr(model), {k: v.clone() for k, v in model.state_dict().items()}


def assert_untouched(model, before):
    text, state = before
    assert repr(model) == text
    after = model.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], state[k]) for k in state)


@pytest.mark.parametrize("form", ["tensors", "arrays", "dataset", "loader"])
def test_every_input_form_trains_a_copy(digits, form):
    Xtr, ytr, Xva, yva = digits
    train = {
        "tensors": (Xtr, ytr),
        "arrays": (Xtr.numpy().astype(np.float64), ytr.numpy()),
        "dataset": TensorDataset(Xtr, ytr),
        "loader": DataLoader(TensorDataset(Xtr, ytr), batch_size=32, shuffle=True),
    }[form]
    model = mlp()
    before = snapshot(model)
    result = nbdebug.fit(model, train, (Xva.numpy(), yva.numpy()), epochs=4)
    assert_untouched(model, before)
    assert result.model is not model
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert set(result.history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}
    assert result.history[-1]["val_acc"] > 0.75 and result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.warnings == [] and result.repairs == [] and result.trainings == 1
    with torch.no_grad():
        acc = float((result.model(Xva).argmax(1) == yva).float().mean())
    assert acc == pytest.approx(result.history[-1]["val_acc"])


def test_binary_with_one_output_and_no_val():
    X, y = make_circles(n_samples=600, noise=0.1, factor=0.5, random_state=0)
    X = torch.tensor(X, dtype=torch.float32)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    result = nbdebug.fit(model, (X, torch.tensor(y)), epochs=15, lr=1e-2)
    assert result.history[-1]["val_acc"] is None and result.history[-1]["train_acc"] > 0.9
    assert result.model(X[:4]).shape == (4, 1)


def test_the_loss_is_inferred_from_the_output():
    X = torch.randn(16, 64)
    y = torch.arange(16) % 10
    cases = [
        (mlp(), nn.CrossEntropyLoss),
        (mlp(final=nn.LogSoftmax(dim=1)), nn.NLLLoss),
        (mlp(final=nn.Softmax(dim=1)), nn.CrossEntropyLoss),  # the monitor flags it
        (mlp(d_out=1), nn.BCEWithLogitsLoss),
        (mlp(d_out=1, final=nn.Sigmoid()), nn.BCELoss),
    ]
    for model, expected in cases:
        labels = y if model[2].out_features > 1 else y % 2
        _, activation, task, _ = _infer(model, Data.of("train", (X, labels)), torch.device("cpu"))
        assert isinstance(_loss(None, task, activation), expected), model
    # untrained logits of one unit that happen to lie in (0, 1) are still logits
    small = nn.Linear(64, 1)
    with torch.no_grad():
        small.weight.mul_(0.01)
        small.bias.fill_(0.5)
    _, activation, task, _ = _infer(small, Data.of("train", (X, y % 2)), torch.device("cpu"))
    assert (activation, task) == ("linear", "binary")
    assert isinstance(_loss("mse", "multiclass", "linear"), nn.MSELoss)
    assert isinstance(_loss("BCEWithLogitsLoss", "binary", "linear"), nn.BCEWithLogitsLoss)


def test_without_repair_a_bad_training_runs_to_the_end_with_its_warnings(digits, caplog):
    Xtr, ytr, Xva, yva = digits
    with caplog.at_level(logging.CRITICAL, logger="nbdebug"):
        result = nbdebug.fit(mlp(), (Xtr, ytr), (Xva, yva), epochs=3, optimizer="sgd", lr=1e10)
    assert len(result.history) == 3
    assert "nan_loss" in [w.code for w in result.warnings]
    assert result.repairs == [] and result.trainings == 1


def test_optimizer_callable_and_loss_module(digits):
    Xtr, ytr, Xva, yva = digits
    seen = []

    def make(params):
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
        seen.append(opt)
        return opt

    result = nbdebug.fit(mlp(), (Xtr, ytr), (Xva, yva), epochs=3, optimizer=make, loss=nn.CrossEntropyLoss())
    assert seen and all(o.param_groups[0]["lr"] == 0.1 for o in seen)
    assert result.history[-1]["val_acc"] > 0.85


def test_monitor_off_still_trains(digits):
    Xtr, ytr, Xva, yva = digits
    result = nbdebug.fit(mlp(), (Xtr, ytr), (Xva, yva), epochs=2, monitor=False)
    assert len(result.history) == 2 and result.warnings == []


def test_record_writes_a_run_with_every_epoch(digits, tmp_path):
    Xtr, ytr, Xva, yva = digits
    result = nbdebug.fit(mlp(), (Xtr, ytr), (Xva, yva), epochs=3, record=str(tmp_path / "run"))
    run = result.run
    assert run is not None and run.epochs == [1, 2, 3]
    assert run.n_samples == len(ytr) + len(yva)
    probs = run.probabilities(3)[len(ytr) :]
    assert float((probs.argmax(1) == yva.numpy()).mean()) == pytest.approx(result.history[-1]["val_acc"], abs=1e-6)
    assert isinstance(copy.copy(result).repair_log(), str)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        nbdebug.fit(mlp(), (Xtr, ytr), epochs=1, record=str(tmp_path / "run"))
    again = nbdebug.fit(mlp(), (Xtr, ytr), epochs=1, record={"path": tmp_path / "run", "overwrite": True})
    assert again.run.epochs == [1]


def test_show_is_the_landscape_of_the_run_with_its_saved_warnings(digits, tmp_path):
    Xtr, ytr, Xva, yva = digits
    with caplog_quiet():
        result = nbdebug.fit(mlp(), (Xtr, ytr), (Xva, yva), epochs=3, optimizer="sgd", lr=3.0, record=tmp_path / "r")
    first = result.warnings[0]
    assert (first.code, first.epoch) == ("learning_rate_range", 0)
    landscape = result.show()  # fit linked its monitor with the recorder: the warnings are in the run
    assert isinstance(landscape, nbdebug.Landscape) and landscape.session.run.path == result.run.path
    landscape.wait()
    shown = [(w["code"], w["title"], w["cause"]) for w in landscape.warnings]
    assert shown == [(w.code, w.title, w.cause) for w in result.warnings]
    assert landscape.warnings[0]["epoch"] == 1  # a static warning: before the first capture


def test_show_needs_a_recorded_run(digits):
    Xtr, ytr, _, _ = digits
    with pytest.raises(ValueError, match="record="):
        nbdebug.fit(mlp(), (Xtr, ytr), epochs=1).show()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "net"}, TypeError, "model must be a torch.nn.Module"),
        ({"epochs": 0}, ValueError, "epochs must be"),
        ({"batch_size": 0}, ValueError, "batch_size must be"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of"),
        ({"optimizer": 3}, TypeError, "optimizer must be a name or a callable"),
        ({"lr": -1.0}, ValueError, "lr must be"),
        ({"loss": "hinge"}, ValueError, "loss must be one of"),
        ({"loss": 3}, TypeError, "loss must be a name"),
        ({"record": 3}, TypeError, "record must be"),
        ({"repair": "yes"}, TypeError, "repair must be True"),
        ({"repair": {"budget": 3}}, ValueError, "repair has unknown keys"),
        ({"repair": {"order": {"nan_loss": ["S99"]}}}, ValueError, r"repair\['order'\]\['nan_loss'\] item must be"),
        ({"repair": {"order": {"typo": ["S6"]}}}, ValueError, r"repair\['order'\] key must be"),
        ({"repair": True, "monitor": False}, ValueError, "repair=True needs monitor=True"),
        ({"max_repairs": -1}, ValueError, "max_repairs must be"),
        ({"time_limit": 0}, ValueError, "time_limit must be"),
        ({"thresholds": {"tehta": 1}}, ValueError, "thresholds has an unknown name"),
        ({"train": torch.zeros(3)}, TypeError, "train must be an"),
        ({"train": (torch.zeros(4, 64), torch.zeros(3))}, ValueError, "train has 3 labels for 4 inputs"),
        ({"train": (torch.zeros(4, 64), torch.tensor([0.5, 1, 2, 3]))}, ValueError, r"train\[1\] must hold integer"),
        ({"train": (torch.zeros(4, 64), torch.tensor([0, 1, 2, 12]))}, ValueError, "train labels go up to 12"),
        ({"train": (torch.zeros(4, 5), torch.tensor([0, 1, 2, 3]))}, RuntimeError, "model failed on a batch of train"),
        ({"val": (torch.zeros(4, 64), torch.zeros(4, 2))}, ValueError, r"val\[1\] must hold one class index"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, match):
    args = {"model": mlp(), "train": (torch.randn(20, 64), torch.arange(20) % 10), "epochs": 1, **kwargs}
    with pytest.raises(error, match=match):
        nbdebug.fit(args.pop("model"), args.pop("train"), **args)


def test_one_output_with_many_classes_says_what_to_change():
    with pytest.raises(ValueError, match="one output unit"):
        nbdebug.fit(mlp(d_out=1), (torch.randn(20, 64), torch.arange(20) % 10), epochs=1)
