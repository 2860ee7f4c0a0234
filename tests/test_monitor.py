"""nbdebug.Monitor on small real trainings: every check fires with its bug and not without it."""

from __future__ import annotations

import copy
import logging
import math
import weakref

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_circles
from torch import nn
from torch.nn import functional as F

from nbdebug.monitor import Monitor
from nbdebug.monitor.messages import GEOMETRY_CODES, MESSAGES, RUNTIME_CODES, STATIC_CODES
from nbdebug.monitor.rules import infer_output_activation, infer_task


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _standardize(X_train, X_val):
    mean, std = X_train.mean(0), X_train.std(0) + 1e-8
    return (X_train - mean) / std, (X_val - mean) / std


@pytest.fixture(scope="module")
def digits():
    """600 training and 300 validation digits, standardized, plus the raw 0..16 pixels."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    tr, va = order[:600], order[600:900]
    Xtr, Xva = _standardize(X[tr], X[va])
    f = lambda a: torch.tensor(a, dtype=torch.float32)
    return {
        "X": f(Xtr),
        "y": torch.tensor(y[tr]),
        "Xv": f(Xva),
        "yv": torch.tensor(y[va]),
        "raw": f(X[tr]),
        "raw_v": f(X[va]),
    }


@pytest.fixture(scope="module")
def circles():
    X, y = make_circles(n_samples=600, noise=0.1, factor=0.5, random_state=0)
    f = lambda a: torch.tensor(a, dtype=torch.float32)
    return {"X": f(X[:400]), "y": torch.tensor(y[:400]), "Xv": f(X[400:]), "yv": torch.tensor(y[400:])}


def mlp(d_in, widths, d_out, act=nn.ReLU):
    layers, d = [], d_in
    for w in widths:
        layers += [nn.Linear(d, w), act()]
        d = w
    return nn.Sequential(*layers, nn.Linear(d, d_out))


def fit(
    model,
    X,
    y,
    *,
    lr=1e-3,
    opt="adam",
    epochs=3,
    batch=32,
    loss_fn=None,
    Xv=None,
    yv=None,
    targets=None,
    mon_kwargs=None,
    order="monitor_last",
    seed=0,
):
    """Train with a Monitor attached; returns the monitor (detached)."""
    torch.manual_seed(seed)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    params = model.parameters()
    optimizer = (
        torch.optim.Adam(params, lr=lr)
        if opt == "adam"
        else torch.optim.SGD(params, lr=lr, momentum=0.9 if opt == "sgdm" else 0.0)
    )
    targets = targets or (lambda out, yb: yb)
    gen = torch.Generator().manual_seed(seed)
    with Monitor(model, optimizer=optimizer, loss_fn=loss_fn, **(mon_kwargs or {})) as mon:
        for _ in range(epochs):
            perm = torch.randperm(len(X), generator=gen)
            correct = 0
            for i in range(0, len(X), batch):
                xb, yb = X[perm[i : i + batch]], y[perm[i : i + batch]]
                out = model(xb)
                loss = loss_fn(out, targets(out, yb))
                optimizer.zero_grad()
                loss.backward()
                if order == "monitor_first":
                    mon.step(loss=loss, inputs=xb, targets=yb, outputs=out)
                optimizer.step()
                if order == "zero_grad_after_step":
                    optimizer.zero_grad()
                if order != "monitor_first":
                    mon.step(loss=loss, inputs=xb, targets=yb, outputs=out)
                correct += int((out.argmax(1) == yb).sum())
            kwargs = {"train_acc": correct / len(X)}
            if Xv is not None:
                with torch.no_grad():
                    kwargs["val_acc"] = float((model(Xv).argmax(1) == yv).float().mean())
            mon.epoch_end(**kwargs)
    return mon


def codes(mon):
    return [w.code for w in mon.warnings]


def scaled(model, gain):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, gain / math.sqrt(m.in_features))
    return model


def biased(model, value):
    with torch.no_grad():
        for m in [m for m in model.modules() if isinstance(m, nn.Linear)][:-1]:
            m.bias.fill_(value)
    return model


# ---------------------------------------------------------------- healthy baseline


def test_healthy_digits_training_is_silent(digits):
    torch.manual_seed(0)
    mon = fit(mlp(64, [64], 10), digits["X"], digits["y"], epochs=6, Xv=digits["Xv"], yv=digits["yv"])
    assert mon.warnings == [], [str(w) for w in mon.warnings]
    assert mon.step_count == 6 * 19 and len(mon.epochs) == 6
    assert mon.epochs[-1]["val_acc"] > 0.85


# ---------------------------------------------------------------- SCRAM's three


def test_nan_loss_fires_on_huge_learning_rate_within_first_epoch(digits):
    torch.manual_seed(0)
    mon = fit(mlp(64, [64], 10), digits["X"], digits["y"], lr=1e10, opt="sgd", epochs=1)
    nan = next(w for w in mon.warnings if w.code == "nan_loss")
    assert nan.severity == "error" and nan.epoch == 0 and nan.step <= 19
    assert "learning_rate_range" in codes(mon)  # static lint saw it before the first step
    torch.manual_seed(0)
    assert "nan_loss" not in codes(fit(mlp(64, [64], 10), digits["X"], digits["y"], lr=0.05, opt="sgd", epochs=1))


def test_unnormalized_input_fires_on_raw_pixels(digits):
    raw = digits["raw"] * 255 / 16
    torch.manual_seed(0)
    mon = fit(mlp(64, [64], 10), raw, digits["y"], lr=0.01, opt="sgd", epochs=1)
    w = next(w for w in mon.warnings if w.code == "unnormalized_input")
    # seen on the first two capture steps (1 and 4): one odd batch is not enough
    assert w.step == 4 and w.evidence["rms"] > 3 and w.evidence["max_abs"] > 200
    torch.manual_seed(0)
    assert "unnormalized_input" not in codes(
        fit(mlp(64, [64], 10), digits["X"], digits["y"], lr=0.01, opt="sgd", epochs=1)
    )


def test_overfitting_fires_on_large_network_with_noisy_labels(digits):
    X, y = digits["X"][:300], digits["y"][:300].clone()
    rng = np.random.default_rng(1)
    flip = torch.tensor(rng.random(300) < 0.4)
    y[flip] = torch.tensor(rng.integers(0, 10, int(flip.sum())))
    torch.manual_seed(0)
    mon = fit(mlp(64, [512, 512], 10), X, y, epochs=30, Xv=digits["Xv"], yv=digits["yv"])
    w = next(w for w in mon.warnings if w.code == "overfitting")
    assert w.epoch >= 3 and "→" in w.evidence["val"]
    # the same data with clean labels and a small network generalizes: no overfitting
    torch.manual_seed(0)
    clean = fit(mlp(64, [32], 10), X, digits["y"][:300], epochs=30, Xv=digits["Xv"], yv=digits["yv"])
    assert "overfitting" not in codes(clean)


# ---------------------------------------------------------------- AutoTrainer's eight


def test_vanishing_gradient_in_deep_sigmoid_network(circles):
    torch.manual_seed(0)
    mon = fit(mlp(2, [16] * 10, 2, act=nn.Sigmoid), circles["X"], circles["y"], lr=0.05, opt="sgd", epochs=2)
    w = next(w for w in mon.warnings if w.code == "vanishing_gradient")
    assert w.evidence["ratio"] <= 1e-3 and w.evidence["first_norm"] <= 1e-4 and w.evidence["first_layer"] == "0"
    # the fix from the message: ReLU with He initialisation, same depth
    torch.manual_seed(0)
    healthy = fit(scaled(mlp(2, [16] * 10, 2), math.sqrt(2)), circles["X"], circles["y"], lr=0.01, epochs=2)
    assert "vanishing_gradient" not in codes(healthy)


def test_exploding_gradient_with_large_initialisation(digits):
    torch.manual_seed(0)
    mon = fit(scaled(mlp(64, [64] * 8, 10), 2.5), digits["X"], digits["y"], lr=0.05, opt="sgd", epochs=1)
    w = next(w for w in mon.warnings if w.code == "exploding_gradient")
    assert w.severity == "error" and "NaN or infinite" in w.explanation
    torch.manual_seed(0)
    healthy = fit(mlp(64, [64] * 8, 10), digits["X"], digits["y"], lr=0.05, opt="sgd", epochs=1)
    assert "exploding_gradient" not in codes(healthy)


@pytest.mark.parametrize("order", ["monitor_last", "monitor_first", "zero_grad_after_step"])
def test_dying_relu_with_negative_biases_in_any_loop_order(digits, order):
    torch.manual_seed(0)
    mon = fit(biased(mlp(64, [64, 64], 10), -8.0), digits["X"], digits["y"], epochs=1, order=order)
    w = next(w for w in mon.warnings if w.code == "dying_relu")
    # dead from step 1, reported after a window of three captures (alpha 2, cadence 3)
    assert w.step == 7 and w.evidence["dead_pct"] >= 70 and set(w.evidence["per_layer"]) == {"0", "2"}
    assert w.cause == "initialization" and "kaiming_normal_" in w.fix
    torch.manual_seed(0)
    healthy = fit(mlp(64, [64, 64], 10), digits["X"], digits["y"], epochs=1, order=order)
    assert healthy.warnings == []


def test_oscillating_loss_with_too_high_learning_rate(digits):
    torch.manual_seed(0)
    mon = fit(mlp(64, [64], 10), digits["X"], digits["y"], lr=1.0, opt="sgd", batch=16, epochs=10)
    w = next(w for w in mon.warnings if w.code == "oscillating_loss")
    assert w.evidence["swings"] >= 1 and w.epoch >= 4  # judged only after trend_epochs epochs
    torch.manual_seed(0)
    healthy = fit(mlp(64, [64], 10), digits["X"], digits["y"], lr=0.05, opt="sgd", batch=16, epochs=10)
    assert healthy.warnings == []


def test_slow_convergence_with_tiny_learning_rate(digits):
    torch.manual_seed(0)
    mon = fit(mlp(64, [64], 10), digits["X"], digits["y"], lr=2e-5, opt="sgd", epochs=4)
    assert "slow_convergence" in codes(mon)
    torch.manual_seed(0)
    assert fit(mlp(64, [64], 10), digits["X"], digits["y"], lr=0.05, opt="sgd", epochs=4).warnings == []


class SoftmaxInForward(nn.Module):
    """Applies softmax inside forward(), where structural lint cannot see it."""

    def __init__(self, softmax=True):
        super().__init__()
        self.fc1, self.fc2, self.softmax = nn.Linear(64, 64), nn.Linear(64, 10), softmax

    def forward(self, x):
        z = self.fc2(F.relu(self.fc1(x)))
        return F.softmax(z, dim=1) if self.softmax else z


def test_improper_output_activation_inferred_from_outputs(digits):
    torch.manual_seed(0)
    mon = fit(SoftmaxInForward(), digits["X"], digits["y"], lr=0.05, opt="sgd", epochs=2)
    w = next(w for w in mon.warnings if w.code == "improper_output_activation")
    assert w.evidence["task"] == "multiclass" and w.evidence["activation"] == "a softmax"
    assert "softmax_before_cross_entropy" not in codes(mon)  # not visible to the static lint
    torch.manual_seed(0)
    assert fit(SoftmaxInForward(False), digits["X"], digits["y"], lr=0.05, opt="sgd", epochs=2).warnings == []


def test_improper_loss_mse_on_classification(digits):
    one_hot = lambda out, yb: F.one_hot(yb, 10).float()
    torch.manual_seed(0)
    mon = fit(
        mlp(64, [64], 10), digits["X"], digits["y"], lr=0.01, opt="sgd", epochs=2, loss_fn=nn.MSELoss(), targets=one_hot
    )
    w = next(w for w in mon.warnings if w.code == "improper_loss")
    assert w.evidence["loss"] == "MSELoss" and "CrossEntropyLoss" in w.fix
    torch.manual_seed(0)
    assert "improper_loss" not in codes(fit(mlp(64, [64], 10), digits["X"], digits["y"], lr=0.01, opt="sgd", epochs=2))


def test_abnormal_data_with_nan_inputs(digits):
    X = digits["X"].clone()
    X[::25, 3] = float("nan")
    torch.manual_seed(0)
    mon = fit(mlp(64, [64], 10), X, digits["y"], epochs=1)
    w = next(w for w in mon.warnings if w.code == "abnormal_data")
    assert "NaN" in w.explanation and w.epoch == 0
    torch.manual_seed(0)
    assert "abnormal_data" not in codes(fit(mlp(64, [64], 10), digits["X"], digits["y"], epochs=1))


# ---------------------------------------------------------------- static checks


def _static(model, loss_fn=None, opt=None):
    optimizer = opt(model) if opt else torch.optim.Adam(model.parameters(), lr=1e-3)
    return codes(Monitor(model, optimizer=optimizer, loss_fn=loss_fn or nn.CrossEntropyLoss()))


@pytest.mark.parametrize(
    "code, buggy, clean",
    [
        (
            "softmax_before_cross_entropy",
            lambda: (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1)), None, None),
            lambda: (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), None, None),
        ),
        (
            "bce_without_sigmoid",
            lambda: (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)), nn.BCELoss(), None),
            lambda: (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid()), nn.BCELoss(), None),
        ),
        (
            "cross_entropy_one_output",
            lambda: (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)), None, None),
            lambda: (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), None, None),
        ),
        (
            "linear_without_activation",
            lambda: (
                nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)),
                None,
                None,
            ),
            lambda: (
                nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)),
                None,
                None,
            ),
        ),
        (
            "dropout_too_high",
            lambda: (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.8), nn.Linear(8, 3)), None, None),
            lambda: (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3)), None, None),
        ),
        (
            "learning_rate_range",
            lambda: (mlp(4, [8], 3), None, lambda m: torch.optim.Adam(m.parameters(), lr=0.5)),
            lambda: (mlp(4, [8], 3), None, lambda m: torch.optim.Adam(m.parameters(), lr=3e-3)),
        ),
        (
            "params_not_in_optimizer",
            lambda: (mlp(4, [8], 3), None, lambda m: torch.optim.SGD(m[-1].parameters(), lr=0.1)),
            lambda: (mlp(4, [8], 3), None, lambda m: torch.optim.SGD(m.parameters(), lr=0.1)),
        ),
    ],
)
def test_static_check_fires_before_the_first_step(code, buggy, clean):
    assert code in STATIC_CODES
    found = _static(*buggy())
    assert code in found
    assert _static(*clean()) == []


def test_linear_without_activation_ignores_custom_forward():
    class Functional(nn.Module):  # the ReLU is in forward(), not in a Sequential
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.b(F.relu(self.a(x)))

    assert _static(Functional()) == []


def test_static_warning_names_the_layer_and_learning_rate():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.9), nn.Linear(8, 3))
    mon = Monitor(model, optimizer=torch.optim.SGD(model.parameters(), lr=50.0), loss_fn=nn.CrossEntropyLoss())
    by_code = {w.code: w for w in mon.warnings}
    assert "2 (p=0.9)" in by_code["dropout_too_high"].explanation
    assert "lr = 50" in by_code["learning_rate_range"].explanation
    assert all(w.step == 0 and w.epoch == 0 for w in mon.warnings)


# ---------------------------------------------------------------- hooking and reporting


def test_monitor_does_not_change_training_and_detaches_cleanly(digits):
    torch.manual_seed(0)
    model = mlp(64, [32], 10)
    twin = copy.deepcopy(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, digits["X"], digits["y"], epochs=2, mon_kwargs={"cadence": 1})
    # the unmonitored twin, trained identically, ends bit-for-bit the same
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    for _ in range(2):
        perm = torch.randperm(len(digits["X"]), generator=gen)
        for i in range(0, len(perm), 32):
            xb, yb = digits["X"][perm[i : i + 32]], digits["y"][perm[i : i + 32]]
            loss = F.cross_entropy(twin(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for key, value in model.state_dict().items():
        assert torch.equal(value, twin.state_dict()[key]), key
        assert not torch.equal(value, before[key]) or value.dtype != torch.float32
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def test_hooks_only_on_capture_steps_and_tensors_released(digits):
    torch.manual_seed(0)
    model = mlp(64, [32], 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = Monitor(model, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), cadence=3)
    seen = []
    probe = model[0].register_forward_hook(lambda m, a, out: seen.append(weakref.ref(out)))
    armed = []
    for step in range(6):
        armed.append(bool(model[0]._forward_hooks) and len(model[0]._forward_hooks) > 1)
        xb, yb = digits["X"][step * 32 : (step + 1) * 32], digits["y"][step * 32 : (step + 1) * 32]
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(loss=loss, inputs=xb, targets=yb, outputs=out)
        del out, loss
        assert seen[-1]() is None, "the monitor kept a layer output alive after the step"
    assert armed == [True, False, False, True, False, False]
    probe.remove()
    mon.detach()
    assert not model[0]._forward_hooks and not opt._optimizer_step_pre_hooks
    with pytest.raises(RuntimeError, match="detached"):
        mon.step(loss=1.0)


def test_layer_statistics_stop_once_accuracy_passes_theta(digits):
    torch.manual_seed(0)
    model = mlp(64, [32], 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mon = Monitor(model, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), cadence=1)
    X, y = digits["X"], digits["y"]

    def one_epoch(inputs):
        hooked = 0
        for i in range(0, len(inputs), 32):
            out = model(inputs[i : i + 32])
            hooked += bool(model[0]._forward_hooks)
            loss = F.cross_entropy(out, y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss=loss, inputs=inputs[i : i + 32], targets=y[i : i + 32], outputs=out)
        return hooked

    # hooked from the first step on, until the sampled batch accuracy passes theta (0.6)
    assert 1 <= one_epoch(X) < 19
    mon.epoch_end(train_acc=0.9)  # above theta: the gated problems can no longer be reported
    assert one_epoch(X) == 0 and not model[0]._forward_hooks
    assert mon.warnings == []
    one_epoch(X * 40)  # ... but SCRAM's input check still runs
    assert "unnormalized_input" in codes(mon)


def test_repeated_detections_are_merged_and_logged_once(digits, caplog):
    caplog.set_level(logging.WARNING, logger="nbdebug")
    torch.manual_seed(0)
    mon = fit(biased(mlp(64, [64, 64], 10), -8.0), digits["X"], digits["y"], epochs=2, mon_kwargs={"cadence": 1})
    dying = [w for w in mon.warnings if w.code == "dying_relu"]
    assert len(dying) == 1 and dying[0].count > 10 and dying[0].last_step > dying[0].step
    logged = [r for r in caplog.records if r.name == "nbdebug" and "dying_relu" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING


STABLE_RUNTIME_CODES = [
    "vanishing_gradient",
    "exploding_gradient",
    "dying_relu",
    "oscillating_loss",
    "slow_convergence",
    "improper_output_activation",
    "improper_loss",
    "abnormal_data",
    "overfitting",
    "unnormalized_input",
    "nan_loss",
]
STABLE_GEOMETRY_CODES = ["class_collapse", "memorizing_noisy_labels"]
STABLE_STATIC_CODES = [
    "softmax_before_cross_entropy",
    "bce_without_sigmoid",
    "cross_entropy_one_output",
    "linear_without_activation",
    "dropout_too_high",
    "learning_rate_range",
    "params_not_in_optimizer",
    "frozen_parameters",
    "saturating_activations",
]


def test_every_message_is_complete_and_hedged_where_heuristic():
    # the stable codes: renaming, adding or dropping one is a change of the public API
    assert sorted(MESSAGES) == sorted(STABLE_RUNTIME_CODES + STABLE_GEOMETRY_CODES + STABLE_STATIC_CODES)
    assert list(RUNTIME_CODES) == STABLE_RUNTIME_CODES and list(STATIC_CODES) == STABLE_STATIC_CODES
    assert list(GEOMETRY_CODES) == STABLE_GEOMETRY_CODES
    for code, message in MESSAGES.items():
        assert message.severity in ("warning", "error") and message.title and message.fix.strip(), code
    for code in ("overfitting", "oscillating_loss", "unnormalized_input", "vanishing_gradient", "improper_loss"):
        text = MESSAGES[code].explanation.lower()
        assert any(h in text for h in ("may", "probably", "could", "usually", "if ", "likely", "often")), code


def test_thresholds_are_configurable(digits):
    def raw_pixels_run(thresholds):
        torch.manual_seed(0)
        model = mlp(64, [64], 10)
        kwargs = {"thresholds": thresholds}
        return codes(fit(model, digits["raw"], digits["y"], lr=0.01, opt="sgd", epochs=1, mon_kwargs=kwargs))

    assert "unnormalized_input" in raw_pixels_run(None)  # the defaults see the raw 0..16 pixels
    assert "unnormalized_input" not in raw_pixels_run({"input_scale": 100.0})


def test_task_inference():
    logits = torch.randn(8, 3)
    assert infer_task(torch.tensor([0, 1, 2, 1, 0, 2, 1, 0]), logits) == "multiclass"
    assert infer_task(torch.tensor([0.0, 1, 1, 0]), torch.randn(4, 1)) == "binary"
    assert infer_task(torch.tensor([[1.0, 0, 1], [0, 1, 1]]), torch.randn(2, 3)) == "multilabel"
    assert infer_task(torch.tensor([0.3, 2.5]), torch.randn(2)) == "regression"
    assert infer_output_activation(logits.softmax(1), None) == "softmax"
    assert infer_output_activation(logits.log_softmax(1), None) == "log_softmax"
    assert infer_output_activation(torch.sigmoid(logits), None) == "sigmoid"
    assert infer_output_activation(F.relu(torch.randn(64, 3)), None) == "relu"
    assert infer_output_activation(logits, None) == "linear"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Monitor("not a model"), "model must be a torch.nn.Module"),
        (lambda: Monitor(nn.Linear(2, 2), optimizer="adam"), "optimizer must be"),
        (lambda: Monitor(nn.Linear(2, 2), loss_fn="cross_entropy"), "loss_fn must be"),
        (lambda: Monitor(nn.Linear(2, 2), cadence=0), "cadence must be an integer >= 1, got 0; "),
        (lambda: Monitor(nn.Linear(2, 2), task="classify"), "task must be one of"),
        (lambda: Monitor(nn.Linear(2, 2), thresholds={"gama": 0.5}), "unknown name 'gama'"),
        (lambda: Monitor(nn.Linear(2, 2), thresholds={"gamma": -1}), r"thresholds\['gamma'\] must be"),
        (lambda: Monitor(nn.Linear(2, 2)).step(loss=torch.ones(3)), "loss must be a scalar"),
        (lambda: Monitor(nn.Linear(2, 2)).step(loss=1.0, inputs=[1, 2]), r"step\(inputs=...\) must be a torch.Tensor"),
        (lambda: Monitor(nn.Linear(2, 2)).epoch_end(train_acc=97.5), "fraction in"),
        (lambda: Monitor(nn.Linear(2, 2)).epoch_end(val_loss="low"), "val_loss must be a number"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()
