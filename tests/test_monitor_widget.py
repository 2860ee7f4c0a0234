"""The monitor's notebook widget, Python side: curves, markers and escaped warning text."""

from __future__ import annotations

import logging

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from nbdebug.monitor import Monitor
from nbdebug.monitor.widget import MonitorWidget


def _digits(n=320):
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
    return torch.tensor(X[:n], dtype=torch.float32), torch.tensor(y[:n])


def _train(mon, model, opt, X, y, epochs):
    for _ in range(epochs):
        correct = 0
        for i in range(0, len(X), 32):
            out = model(X[i : i + 32])
            loss = F.cross_entropy(out, y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss=loss, inputs=X[i : i + 32], targets=y[i : i + 32], outputs=out)
            correct += int((out.argmax(1) == y[i : i + 32]).sum())
        mon.epoch_end(train_loss=loss.item(), train_acc=correct / len(X))


def test_widget_follows_training_and_marks_warnings(caplog):
    torch.set_num_threads(1)
    X, y = _digits()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    # a layer name that is HTML: it must be shown as text, never interpreted
    model.add_module("<img src=x onerror=alert(1)>", nn.Dropout(0.9))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mon = Monitor(model, optimizer=opt, loss_fn=nn.CrossEntropyLoss())
    widget = mon.widget
    caplog.clear()  # the static warnings were logged before the widget existed
    assert isinstance(widget, MonitorWidget) and mon.widget is widget
    assert "dropout_too_high" in widget.warning_list.value  # static warning shown before training
    assert "<img" not in widget.warning_list.value and "&lt;img src=x onerror=alert(1)&gt;" in widget.warning_list.value
    loss_curve, _, _, markers, train_acc, _ = widget.figure.data
    assert len(loss_curve.x) == 0 and list(markers.x) == [0]
    assert "<img" not in markers.hovertext[0]

    _train(mon, model, opt, X, y, epochs=1)
    widget.refresh(force=True)
    assert len(loss_curve.x) == 10 and loss_curve.y[-1] == mon.step_losses[-1]
    assert list(train_acc.x) == [1]
    _train(mon, model, opt, X, y, epochs=1)
    assert list(train_acc.x) == [1, 2]  # epoch ends refresh without being asked
    assert "step 20" in widget.status.value
    # with a widget on screen, warnings are not also logged at WARNING level
    assert not [r for r in caplog.records if r.name == "nbdebug" and r.levelno >= logging.WARNING]
    # steps held back by the refresh throttle are shown when the monitor is detached
    widget.interval = 3600
    out = model(X[:32])
    loss = F.cross_entropy(out, y[:32])
    loss.backward()
    mon.step(loss=loss)
    assert len(loss_curve.x) == 20
    mon.detach()
    assert len(loss_curve.x) == 21


def test_nan_loss_marker_and_error_in_widget():
    X, y = _digits(128)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=1e10)
    mon = Monitor(model, optimizer=opt, loss_fn=nn.CrossEntropyLoss())
    widget = mon.widget
    _train(mon, model, opt, X, y, epochs=1)
    widget.refresh(force=True)
    codes = [w.code for w in mon.warnings]
    assert "nan_loss" in codes
    markers = widget.figure.data[3]
    assert len(markers.x) == len(codes) and all(v is not None for v in markers.y)
    assert "#d62728" in markers.marker.color  # errors in red
    assert "ERROR: The loss became NaN" in widget.warning_list.value
    assert None in widget.figure.data[0].y  # NaN losses are gaps, not invalid JSON


def test_monitor_displays_as_its_widget():
    model = nn.Sequential(nn.Linear(4, 3))
    mon = Monitor(model)
    bundle = mon._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == mon.widget.model_id


def test_listeners_are_told_what_changed_and_a_closed_widget_stops_listening():
    mon = Monitor(nn.Sequential(nn.Linear(4, 3)))
    changes = []
    stop = mon.on_change(changes.append)
    mon.step(loss=1.0)
    mon.step(loss=float("nan"))  # a new warning, then the step
    mon.epoch_end()
    stop()
    mon.step(loss=1.0)
    assert changes == ["step", "warning", "step", "epoch_end"]

    widget = mon.widget
    refreshed = []
    widget.refresh = lambda force=False: refreshed.append(force)
    mon.step(loss=1.0)
    widget.close()
    mon.step(loss=1.0)
    mon.detach()
    assert refreshed == [False]  # the step before closing, throttled; nothing after

    detached = []
    other = Monitor(nn.Sequential(nn.Linear(4, 3)))
    other.on_change(detached.append)
    other.detach()
    other.detach()
    assert detached == ["detach"]
