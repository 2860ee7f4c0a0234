"""Repairs on real trainings: every solution leaves a model that trains (or says why it cannot
apply), buggy trainings get repaired with a readable log, healthy ones are left alone, the
user's model is never touched, and the budget bounds the search."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_circles
from torch import nn
from torch.nn import functional as F

import nbdebug
from nbdebug.monitor import Monitor
from nbdebug.monitor.thresholds import DEFAULT_THRESHOLDS
from nbdebug.monitor.widget import MonitorWidget
from nbdebug.repair import SOLUTIONS
from nbdebug.repair.data import Data
from nbdebug.repair.log import IMPROVED, NOT_IMPROVED, SKIPPED, html_items
from nbdebug.repair.scheduler import unsettled
from nbdebug.repair.setup import Setup
from nbdebug.repair.solutions import Change, Context, Skip
from nbdebug.repair.surgery import Standardized, trace


@pytest.fixture(autouse=True)
def quiet(caplog):
    with caplog.at_level(logging.CRITICAL, logger="nbdebug"):
        yield


def _split(X, y, scale=None):
    n = int(0.7 * len(X))
    Xtr, Xva = X[:n], X[n:]
    if scale is None:
        mean, std = Xtr.mean(0), Xtr.std(0) + 1e-8
        Xtr, Xva = (Xtr - mean) / std, (Xva - mean) / std
    else:
        Xtr, Xva = Xtr * scale, Xva * scale
    t = lambda a: torch.tensor(a, dtype=torch.float32)
    return t(Xtr), torch.tensor(y[:n]), t(Xva), torch.tensor(y[n:])


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return _split(X, y)


@pytest.fixture(scope="module")
def circles():
    X, y = make_circles(n_samples=1000, noise=0.1, factor=0.5, random_state=0)
    return _split(X, y)


def mlp(d_in, widths, d_out, act=nn.ReLU, final=None, seed=0):
    torch.manual_seed(seed)
    layers, d = [], d_in
    for w in widths:
        layers += [nn.Linear(d, w), act()]
        d = w
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers, *([final] if final is not None else []))


class Nested(nn.Module):
    """Attributes and a sub-Sequential, activations as modules, called from forward()."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(64, 32), nn.Tanh())
        self.fc, self.act, self.out = nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 10)

    def forward(self, x):
        return self.out(self.act(self.fc(self.encoder(x))))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    """A ResNet-style CNN over 8x8 digits: a stem, one residual block with BatchNorm, a head."""

    def __init__(self, c=8):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU())
        self.block = Block(c)
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        return self.head(self.block(self.stem(x.view(-1, 1, 8, 8))).mean((2, 3)))


class Encoder(nn.Module):
    """A small transformer encoder over the 8 rows of a digit."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(8, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x.view(-1, 8, 8))).mean(1))


def snapshot(model):
    return repr(model), {k: v.clone() for k, v in model.state_dict().items()}


def assert_untouched(model, before):
    text, state = before
    assert repr(model) == text
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], state[k]) for k in state)


def _setup(model, loss=None):
    return Setup(model, "sgd", 0.05, 32, loss or nn.CrossEntropyLoss(), "multiclass")


@pytest.mark.parametrize("build", [lambda: mlp(64, [32] * 4, 10, act=nn.Sigmoid), Nested, ResNet, Encoder])
@pytest.mark.parametrize("problem", ["vanishing_gradient", "improper_output_activation"])
def test_each_solution_leaves_a_model_that_trains_or_says_why_not(digits, build, problem):
    Xtr, ytr, _, _ = digits
    X255 = Xtr * 40 + 80  # on the raw scale, so that S9 applies
    data = Data.of("train", (X255, ytr))
    model = build()
    before = snapshot(model)
    setup = _setup(model)
    context = Context(problem, {"task": "multiclass"}, trace(model, Xtr[:8]), "linear", data, DEFAULT_THRESHOLDS)
    for name, solution in SOLUTIONS.items():
        result = solution.apply(setup, context)
        assert_untouched(model, before)
        if isinstance(result, Skip):
            assert len(result.reason) > 10, name
            continue
        assert isinstance(result, Change) and result.diff, name
        new = result.setup
        net = Standardized(new.model, new.standardize.mean, new.standardize.std) if new.standardize else new.model
        opt = new.make_optimizer(net.parameters())
        x = X255[:128] if new.standardize else Xtr[:128]
        losses = []
        for i in range(0, 128, 32):
            out = net(x[i : i + 32])
            loss = new.loss_value(out, ytr[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        assert out.shape == (32, 10) and np.isfinite(losses).all(), (name, result.diff)


def test_surgery_reads_the_architecture(digits):
    Xtr, ytr, _, _ = digits
    data = Data.of("train", (Xtr, ytr))

    def apply(name, model, problem="vanishing_gradient"):
        context = Context(problem, {}, trace(model, Xtr[:8]), "linear", data, DEFAULT_THRESHOLDS)
        return SOLUTIONS[name].apply(_setup(model), context)

    resnet = apply("S1", ResNet())  # the block's convs already have BatchNorm; only the stem gets one
    assert resnet.diff == ["model.stem.0: Conv2d(1, 8, (3, 3)) -> Conv2d(1, 8, (3, 3)) + BatchNorm2d(8)"]
    encoder = apply("S1", Encoder())
    assert isinstance(encoder, Skip) and "shape (8, 8, 16)" in encoder.reason
    nested = apply("S2", Nested())
    assert nested.diff == [
        "model.encoder.1: Tanh() -> ReLU()",
        "model.act: Sigmoid() -> ReLU()",
        "model.encoder.0, model.fc: initial weights -> kaiming_normal_ (He, for ReLU), zero biases",
    ]
    relu = apply("S2", mlp(64, [32], 10), "dying_relu")
    assert relu.diff == ["model.1: ReLU() -> LeakyReLU(0.01)"]
    skip = apply("S2", Encoder())
    assert isinstance(skip, Skip) and "F.relu" in skip.reason
    assert apply("S9", mlp(64, [32], 10)).reason.startswith("the training inputs are finite and on a normal scale")
    assert apply("S6", mlp(64, [32], 10), "slow_convergence").diff == ["lr: 0.05 -> 0.5"]
    assert apply("S6", mlp(64, [32], 10), "oscillating_loss").diff == ["lr: 0.05 -> 0.01"]


def _fit(model, data, **kwargs):
    Xtr, ytr, Xva, yva = data
    before = snapshot(model)
    result = nbdebug.fit(model, (Xtr, ytr), (Xva, yva), **{"repair": True, **kwargs})
    assert_untouched(model, before)
    return result


def sgd(lr, momentum=0.0):
    return lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum)


def _check_log(result, first_problem, first_change, gain=0.2):
    entries = result.repairs
    assert entries[0].problem == first_problem
    assert any(first_change in c for e in entries for c in e.changes), [e.changes for e in entries]
    tried = [e for e in entries if e.start]
    assert tried and all(e.epochs > 0 and e.evidence and e.acc_after is not None for e in tried)
    assert all(0 <= e.changed_predictions <= 1 and e.per_class for e in tried)
    solved = [e for e in entries if e.solved]
    assert solved and "solved" in str(solved[-1])
    # after the solve, only the refinements of a training that had not settled
    assert all(e.outcome in (IMPROVED, NOT_IMPROVED, SKIPPED) for e in entries[entries.index(solved[-1]) + 1 :])
    assert result.trainings == len(tried) + 1
    assert result.history[-1]["val_acc"] > entries[0].acc_before + gain


def test_deep_sigmoid_mlp_gets_relus_with_he_initialization(circles):
    result = _fit(mlp(2, [16] * 10, 2, act=nn.Sigmoid), circles, optimizer=sgd(0.05), epochs=8)
    _check_log(result, "vanishing_gradient", "Sigmoid() -> ReLU()")
    odd, even = (", ".join(f"model.{i}" for i in range(start, 20, 2)) for start in (1, 0))
    assert result.repairs[0].changes == [
        f"{odd}: Sigmoid() -> ReLU()",
        f"{even}: initial weights -> kaiming_normal_ (He, for ReLU), zero biases",
    ]
    assert result.history[-1]["val_acc"] > 0.8


def test_relu_net_with_a_bad_initialization(digits):
    model = mlp(64, [64, 64], 10)
    with torch.no_grad():
        model[0].bias.fill_(-8.0)
        model[2].bias.fill_(-8.0)
    result = _fit(model, digits, epochs=8)
    _check_log(result, "dying_relu", "ReLU() -> LeakyReLU(0.01)")


def test_batch_norm_cnn_on_raw_pixels_and_the_returned_model_standardizes(digits):
    Xtr, ytr, Xva, yva = digits
    raw = (Xtr * 40 + 80, ytr, Xva * 40 + 80, yva)
    result = _fit(ResNet(), raw, epochs=6, optimizer="sgd", lr=0.05)
    _check_log(result, "unnormalized_input", "inputs: standardized")  # named before its large outputs
    assert isinstance(result.model, Standardized)
    with torch.no_grad():
        acc = float((result.model.eval()(raw[2]).argmax(1) == yva).float().mean())
    assert acc == pytest.approx(result.history[-1]["val_acc"])


def test_unnormalized_input_to_an_mlp(digits):
    Xtr, ytr, Xva, yva = digits
    result = _fit(mlp(64, [64], 10), (Xtr * 40 + 80, ytr, Xva * 40 + 80, yva), epochs=6, optimizer="adam")
    assert result.repairs[0].solution == "S9" and result.repairs[0].solved
    # abnormal_data has S1, S4 and S6 left, but the training settled: nothing is tried on top
    assert len(result.repairs) == 1 and result.trainings == 2


def test_softmax_before_cross_entropy(digits):
    model = mlp(64, [64], 10, final=nn.Softmax(dim=1))
    result = _fit(model, digits, epochs=8, optimizer=sgd(0.05), loss="cross_entropy")
    _check_log(result, "improper_output_activation", "model.3: Softmax(dim=1) -> Identity()")


def test_softmax_inside_forward_is_wrapped(digits):
    class SoftmaxMLP(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc1, self.fc2 = nn.Linear(64, 64), nn.Linear(64, 10)

        def forward(self, x):
            return F.softmax(self.fc2(F.relu(self.fc1(x))), dim=1)

    result = _fit(SoftmaxMLP(), digits, epochs=8, optimizer="adam", loss="cross_entropy")
    assert "wrapped in ToLogits" in result.repairs[0].changes[0]
    assert result.history[-1]["val_acc"] > 0.85


def test_wrong_loss_for_the_task(digits):
    result = _fit(mlp(64, [64], 10), digits, epochs=8, optimizer=sgd(0.01), loss="mse")
    _check_log(result, "improper_loss", "loss: MSELoss -> CrossEntropyLoss")


def test_a_training_has_settled_unless_its_accuracy_still_moves_by_more_than_zeta():
    def history(*accs, key="val_acc"):
        return [{"train_acc": a, "val_acc": a if key == "val_acc" else None} for a in accs]

    assert unsettled(history(0.49, 0.66, 0.77), 0.03) == "its accuracy still rose 11.0% in the last epoch"
    assert unsettled(history(0.90, 0.97, 0.91), 0.03) == "its accuracy ended 6.0% below its best epoch"
    assert unsettled(history(0.90, 0.95, 0.97), 0.03) is None
    assert unsettled(history(0.90, 0.95, 0.93), 0.03) is None
    assert unsettled(history(0.2), 0.03) is None
    assert unsettled(history(0.2, 0.6, key="train_acc"), 0.03) == "its accuracy still rose 40.0% in the last epoch"


def test_a_solve_that_leaves_the_cause_is_refined_on_top(digits):
    # Initial weights 1.8x He's scale on 8 ReLU layers: the layer outputs are too large at the
    # first step (abnormal data on clean inputs). Batch normalization removes the symptom, but
    # over the large weights it learns slowly; Xavier weights on top of it restore the accuracy.
    # alpha 0 (AutoTrainer's): the outputs are reported at step 1, before the loss turns NaN.
    torch.manual_seed(0)
    model = mlp(64, [64] * 8, 10)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0, 2.5 / layer.in_features**0.5)
    result = _fit(model, digits, epochs=3, optimizer=sgd(0.05), thresholds={"alpha": 0})
    entries = result.repairs
    assert [(e.solution, e.outcome) for e in entries[:3]] == [("S9", SKIPPED), ("S1", "solved"), ("S4", IMPROVED)]
    s1, s4 = entries[1], entries[2]
    assert "abnormal_data was solved, but its accuracy still rose" in s4.reason and "change kept" in s4.reason
    assert s4.changes[0].startswith("init: 9 layers (Linear) -> xavier_uniform_")
    assert s4.acc_before == s1.acc_after and s4.acc_after > s1.acc_after + 0.05
    assert s4.start.startswith("the pre-training weights")
    # later refinements only ever undo themselves; the result is the best training kept
    assert all(e.outcome in (NOT_IMPROVED, SKIPPED) for e in entries[3:])
    assert result.history[-1]["val_acc"] == pytest.approx(s4.acc_after)
    assert result.trainings == 1 + sum(1 for e in entries if e.start)


def test_a_learning_rate_change_resumes_from_the_last_healthy_checkpoint(digits):
    order = {"oscillating_loss": ["S6"]}
    result = _fit(mlp(64, [64], 10), digits, epochs=12, optimizer=sgd(1.0), batch_size=16, repair={"order": order})
    (entry,) = result.repairs
    assert entry.changes == ["lr: 1 -> 0.01"] and entry.start.startswith("the checkpoint of epoch")
    resumed = int(entry.start.split("epoch ")[1].split(",")[0])
    assert entry.epochs == 12 - resumed
    assert [h["epoch"] for h in result.history] == list(range(1, 13))


def test_a_healthy_run_is_never_retrained(digits):
    result = _fit(mlp(64, [64], 10), digits, epochs=6)
    assert result.repairs == [] and result.trainings == 1 and result.warnings == []


def test_max_repairs_bounds_the_search_and_the_best_model_is_returned(digits):
    zero = _fit(mlp(64, [64], 10), digits, epochs=3, optimizer="sgd", lr=1e10, max_repairs=0)
    assert zero.trainings == 1 and "max_repairs=0" in zero.repairs[-1].reason
    # only a larger batch for a NaN loss at lr 1e10: it cannot work, the best training is returned
    order = {"nan_loss": ["S5", "S9"]}
    result = _fit(mlp(64, [64], 10), digits, epochs=3, optimizer="sgd", lr=1e10, repair={"order": order})
    assert [e.outcome for e in result.repairs] == ["not solved", "skipped", "stopped"]
    assert result.repairs[0].changes == ["batch_size: 64 -> 128"]
    first = result.repairs[0]
    assert result.history[-1]["val_acc"] == pytest.approx(max(first.acc_before, first.acc_after))
    assert "every solution for nan_loss was tried" in result.repairs[-1].reason
    assert result.trainings == 2


def test_time_limit_bounds_the_whole_fit(digits):
    started = time.monotonic()
    result = _fit(mlp(64, [64], 10), digits, epochs=1000, optimizer=sgd(2e-5), time_limit=2.0)
    assert time.monotonic() - started < 6.0
    assert result.trainings >= 1


def test_the_monitor_widget_shows_the_log(digits):
    model = mlp(64, [64], 10, final=nn.Softmax(dim=1))
    result = _fit(model, digits, epochs=8, optimizer=sgd(0.05), loss="cross_entropy")
    widget = MonitorWidget(Monitor(nn.Linear(2, 2)))
    widget.show_repairs(html_items(result.repairs))
    assert "repair 1: improper_output_activation" in widget.repair_list.value
    assert "Softmax(dim=1) -&gt; Identity()" in widget.repair_list.value
    result.repairs[0].evidence = "<script>x</script>"
    widget.show_repairs(html_items(result.repairs))
    assert "<script>" not in widget.repair_list.value and "&lt;script&gt;" in widget.repair_list.value
