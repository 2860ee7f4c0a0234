"""The training monitor's warnings on the landscape's timeline in a real JupyterLab: markers at
their epochs, a click moves the kernel's epoch there and shows the warnings as text."""

from __future__ import annotations

import time

import pytest

from nbdebug.monitor.journal import append_warning
from nbdebug.monitor.warning import TrainingWarning
from tests.browser.pages import printed

pytestmark = pytest.mark.browser


def kernel_holds(nb, index, tag, expected, timeout: float = 15):
    """Run cell ``index`` until what it prints after ``tag`` is ``expected`` (a change from the
    page may reach the kernel after a cell run at once: the page holds a message back while
    its last one is unanswered); the last value read, to compare."""
    deadline = time.monotonic() + timeout
    while (value := printed(nb, index, tag)) != expected and time.monotonic() < deadline:
        nb.page.wait_for_timeout(300)
    return value


FIX = "optimizer = torch.optim.SGD(model.parameters(), lr=0.01)\n<script>alert(1)</script>"


def test_warnings_are_marked_on_the_timeline_and_a_click_shows_them(notebook, digits_copy):
    saved = [  # (code, severity, title, after_capture): epochs 1..6 are recorded
        ("learning_rate_range", "warning", "Learning rate out of range", None),  # before any: epoch 1
        ("overfitting", "warning", "Overfitting", 3),  # after capture 3: epoch 4
        ("nan_loss", "error", "<b>x</b>", 3),
    ]
    for code, severity, title, after in saved:
        warning = TrainingWarning(code, severity, title, f"{code} explained", FIX, epoch=0, step=0)
        append_warning(digits_copy, warning, after_capture=after)
    nb = notebook(
        [
            f"import json, nbdebug\nw = nbdebug.show({str(digits_copy)!r}, recommendations=0)\nw",
            "print('SHOWN', json.dumps([w.epoch, w.shown_warnings_epoch]))",
        ]
    )
    nb.run(0)
    root = nb.cell(0).locator(".nbdebug-landscape")
    root.wait_for(timeout=60_000)
    nb.page.wait_for_function("el => el.nbdebugStats.framesDrawn > 0", arg=root.element_handle(), timeout=30_000)
    slider = root.locator(".nbdebug-slider")
    assert slider.input_value() == "5"  # the last epoch

    # One marker per epoch with warnings, coloured by the worst, under the slider's thumb there.
    marks = root.locator(".nbdebug-warning-mark")
    assert marks.count() == 2
    assert [marks.nth(k).get_attribute("data-epoch") for k in range(2)] == ["1", "4"]
    assert [marks.nth(k).get_attribute("data-severity") for k in range(2)] == ["warning", "error"]
    assert marks.nth(1).get_attribute("title") == "epoch 4\noverfitting: Overfitting\nnan_loss: <b>x</b>"
    track, mark = slider.bounding_box(), marks.nth(1).bounding_box()
    thumb_centre = track["x"] + 8 + (track["width"] - 16) * 3 / 5  # frame 3 of 0..5
    assert abs(mark["x"] + mark["width"] / 2 - thumb_centre) < 1.5
    panel = root.locator(".nbdebug-warnings")
    assert panel.is_hidden()

    # Click the marker at epoch 4: the timeline moves there, the kernel hears it, the panel opens.
    marks.nth(1).click()
    nb.page.wait_for_function("el => el.value === '3'", arg=slider.element_handle(), timeout=10_000)
    assert root.locator(".nbdebug-epoch").inner_text().startswith("epoch 4")
    assert panel.is_visible()
    assert panel.locator(".nbdebug-warnings-heading").inner_text().startswith("epoch 4: 2 warnings")
    items = panel.locator(".nbdebug-warning")
    assert [items.nth(k).get_attribute("data-severity") for k in range(2)] == ["warning", "error"]
    assert items.nth(1).locator(".nbdebug-warning-name").inner_text() == "<b>x</b>"  # text, not bold
    assert items.nth(1).locator(".nbdebug-warning-explanation").inner_text() == "nan_loss explained"
    assert items.nth(1).locator("pre.nbdebug-warning-fix").inner_text() == FIX
    assert panel.locator("b, script").count() == 0  # nothing from the warnings was parsed as HTML
    assert kernel_holds(nb, 1, "SHOWN", [4, 4]) == [4, 4]

    # Closed, the kernel hears that too.
    panel.locator(".nbdebug-warnings-close").click()
    assert panel.is_hidden()
    assert kernel_holds(nb, 1, "SHOWN", [4, -1]) == [4, -1]
