"""The landscape widget in a real JupyterLab: dots on the canvas, timeline <-> kernel epoch."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser


def coloured_pixels(png: bytes) -> int:
    """Pixels that are clearly coloured (not white, grey or black): the dots."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    return int((saturation > 60).sum())


def test_show_draws_dots_and_timeline_reaches_kernel(notebook, digits_run_path):
    nb = notebook([
        f"import nbdebug\nrun = nbdebug.load_run({str(digits_run_path)!r})\nw = nbdebug.show(run)\nw",
        "print('EPOCH', w.epoch)",
        "w.epoch = run.epochs[1]",
    ])
    nb.run(0)
    canvas = nb.cell(0).locator(".nbdebug-landscape canvas")
    canvas.wait_for(timeout=60_000)
    slider = nb.cell(0).locator(".nbdebug-slider")
    # The widget opens on the last epoch.
    nb.page.wait_for_function("el => el.value === '5'", arg=slider.element_handle(), timeout=10_000)

    # Dots are really painted: a screenshot of the canvas has many coloured pixels.
    # 1797 samples x a few px each; an empty canvas has none.
    assert coloured_pixels(canvas.screenshot()) > 2000
    before = canvas.screenshot()

    # Move the timeline like a person: focus the slider and press Home (first epoch).
    slider.focus()
    nb.page.keyboard.press("Home")
    assert slider.input_value() == "0"
    expect_text = nb.cell(0).locator(".nbdebug-epoch")
    assert expect_text.inner_text().startswith("epoch 1")
    nb.page.wait_for_timeout(600)  # let the frame settle
    assert canvas.screenshot() != before, "the canvas did not change when the epoch changed"

    nb.run(1)
    assert "EPOCH 1" in nb.output_text(1)

    # And the other way: the kernel sets the epoch, the timeline follows.
    nb.run(2)
    nb.page.wait_for_function(
        "el => el.value === '1'", arg=slider.element_handle(), timeout=10_000)
    assert nb.cell(0).locator(".nbdebug-epoch").inner_text().startswith("epoch 2")


def test_play_button_animates_to_the_last_epoch(notebook, digits_run_path):
    nb = notebook([
        f"import nbdebug\nw = nbdebug.show({str(digits_run_path)!r})\nw.epoch = 1\nw",
        "print('EPOCH', w.epoch)",
    ])
    nb.run(0)
    play = nb.cell(0).locator(".nbdebug-play")
    play.wait_for(timeout=60_000)
    slider = nb.cell(0).locator(".nbdebug-slider")
    nb.page.wait_for_function("el => el.value === '0'", arg=slider.element_handle(), timeout=10_000)
    play.click()
    # Five tweens of 350 ms, then it stops on the last epoch and reports it.
    nb.page.wait_for_function("el => el.value === '5'", arg=slider.element_handle(), timeout=15_000)
    nb.page.wait_for_function(
        "el => el.textContent.includes('play')", arg=play.element_handle(), timeout=5_000)
    nb.run(1)
    assert "EPOCH 6" in nb.output_text(1)
