"""The training monitor in a real JupyterLab: the widget updates while the cell still runs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

SETUP = """\
import time
import torch
from torch import nn
from sklearn.datasets import load_digits
from nbdebug.monitor import Monitor
torch.set_num_threads(1)
X, y = load_digits(return_X_y=True)
X = torch.tensor((X - X.mean(0)) / (X.std(0) + 1e-8), dtype=torch.float32)
y = torch.tensor(y)
import logging
logging.basicConfig(format='LOGGED %(message)s')
# A first monitor widget loads plotly in the kernel and in the page (slow the first time),
# so that the timed cell below measures updates, not loading. Its learning rate is absurd:
# the static warning must appear in the widget, not also as log text.
m = nn.Sequential(nn.Linear(2, 2))
display(Monitor(m, optimizer=torch.optim.SGD(m.parameters(), lr=50.0)))
print('READY')"""

# A monitor that is never displayed logs its static warnings at its first step.
HIDDEN = [
    "m = nn.Sequential(nn.Linear(3, 2))\n"
    "hidden = Monitor(m, optimizer=torch.optim.SGD(m.parameters(), lr=50.0))\nprint('BUILT')",
    "loss = m(torch.randn(4, 3)).sum()\nloss.backward()\nhidden.step(loss=loss)\nprint('STEPPED')",
]

# Trains until the test drops a "stop" file next to the notebook (at most 1500 steps), so
# the cell is certainly still running while the test watches; a "blowup" file raises the
# learning rate absurdly, so a NaN-loss error appears in the middle of the run.
TRAIN = """\
import os
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
with Monitor(model, optimizer=opt, loss_fn=nn.CrossEntropyLoss()) as mon:
    display(mon)
    while mon.step_count < 1500 and not os.path.exists('stop'):
        if os.path.exists('blowup'):
            opt.param_groups[0]['lr'] = 1e12
        i = 32 * (mon.step_count % 20)
        out = model(X[i:i + 32])
        loss = nn.functional.cross_entropy(out, y[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(loss=loss, inputs=X[i:i + 32], targets=y[i:i + 32], outputs=out)
        if mon.step_count % 20 == 0:
            mon.epoch_end()
        time.sleep(0.02)
print('DONE', mon.step_count)"""

POINTS = "el => el.data && el.data[0] && el.data[0].x ? el.data[0].x.length : -1"


def test_monitor_widget_updates_while_training_runs(notebook, lab):
    for flag in ("stop", "blowup"):
        (lab.root / flag).unlink(missing_ok=True)
    nb = notebook([SETUP, TRAIN, *HIDDEN])
    nb.run(0)
    assert "READY" in nb.output_text(0)
    nb.cell(0).locator(".nbdebug-monitor .js-plotly-plot").wait_for(timeout=90_000)
    static = nb.cell(0).locator(".nbdebug-warning[data-code='learning_rate_range']")
    static.wait_for(timeout=30_000)
    assert "LOGGED" not in nb.output_text(0)

    cell = nb.cell(1)
    cell.locator(".cm-content").click()
    nb.page.keyboard.press("Shift+Enter")  # start training; do not wait for it to finish
    prompt = cell.locator(".jp-InputArea-prompt")
    plot = cell.locator(".nbdebug-monitor .js-plotly-plot")
    plot.wait_for(timeout=60_000)
    running = lambda: "*" in prompt.inner_text()
    try:
        # The loss curve grows while the cell is still running.
        nb.page.wait_for_function(f"el => ({POINTS})(el) >= 10", arg=plot.element_handle(), timeout=60_000)
        first = plot.evaluate(POINTS)
        nb.page.wait_for_function(f"el => ({POINTS})(el) >= {first + 20}", arg=plot.element_handle(), timeout=60_000)
        assert running(), "the cell finished before the widget was seen updating"
        assert cell.locator(".nbdebug-warning").count() == 0

        # A learning-rate blow-up mid-run shows up as an error while training goes on.
        (lab.root / "blowup").touch()
        nan = cell.locator(".nbdebug-warning[data-code='nan_loss']")
        nan.wait_for(timeout=60_000)
        assert running(), "the warning only appeared after training finished"
        assert "The loss became NaN" in nan.inner_text()
        assert plot.evaluate("el => el.data[3].x.length") >= 1  # its marker on the loss curve
    finally:
        (lab.root / "stop").touch()
    nb.page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle(), timeout=60_000)
    steps = int(nb.output_text(1).split("DONE ", 1)[1].split()[0])
    assert steps < 1500, "training ran to its limit instead of being stopped by the test"
    nb.page.wait_for_function(f"el => ({POINTS})(el) === {steps}", arg=plot.element_handle(), timeout=30_000)

    nb.run(2)
    assert "BUILT" in nb.output_text(2) and "LOGGED" not in nb.output_text(2)
    nb.run(3)
    assert "LOGGED [warning] learning_rate_range" in nb.output_text(3)
