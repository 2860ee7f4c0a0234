"""The landscape widget in a real JupyterLab: dots on the canvas, timeline <-> kernel epoch."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser


def wait_for_value(nb, locator, value: str, timeout: float = 10_000) -> None:
    """Wait until an input's value is ``value`` (the page updates it asynchronously)."""
    nb.page.wait_for_function(f"el => el.value === {value!r}", arg=locator.element_handle(), timeout=timeout)


def coloured_fraction(png: bytes, saturation: int) -> float:
    """Share of pixels more saturated than ``saturation`` (white, grey and black are not)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > saturation).mean())


def test_show_draws_dots_and_timeline_reaches_kernel(notebook, digits_run_path):
    nb = notebook(
        [
            f"import nbdebug\nrun = nbdebug.load_run({str(digits_run_path)!r})\nw = nbdebug.show(run)\nw",
            "print('EPOCH', w.epoch)",
            "w.epoch = run.epochs[1]",
        ]
    )
    nb.run(0)
    canvas = nb.cell(0).locator("canvas.nbdebug-canvas")
    canvas.wait_for(timeout=60_000)
    slider = nb.cell(0).locator(".nbdebug-slider")
    # The widget opens on the last epoch; a run without saved warnings has no markers nor panel.
    wait_for_value(nb, slider, "5")
    assert nb.cell(0).locator(".nbdebug-warning-mark").count() == 0
    assert nb.cell(0).locator(".nbdebug-warning-marks").is_hidden()
    assert nb.cell(0).locator(".nbdebug-warnings").is_hidden()

    # The pale class territories cover most of the canvas, and the saturated dots sit on them.
    before = canvas.screenshot()
    assert coloured_fraction(before, 20) > 0.5
    assert coloured_fraction(before, 60) > 0.02

    # Move the timeline like a person: focus the slider and press Home (first epoch).
    slider.focus()
    nb.page.keyboard.press("Home")
    assert slider.input_value() == "0"
    expect_text = nb.cell(0).locator(".nbdebug-epoch")
    assert expect_text.inner_text().startswith("epoch 1")
    deadline = time.monotonic() + 10
    while canvas.screenshot() == before:  # the frame is drawn on the next animation frame
        assert time.monotonic() < deadline, "the canvas did not change when the epoch changed"
        nb.page.wait_for_timeout(100)

    nb.run(1)
    assert "EPOCH 1" in nb.output_text(1)

    # And the other way: the kernel sets the epoch, the timeline follows.
    nb.run(2)
    wait_for_value(nb, slider, "1")
    assert nb.cell(0).locator(".nbdebug-epoch").inner_text().startswith("epoch 2")


def test_play_button_animates_to_the_last_epoch(notebook, digits_run_path):
    nb = notebook(
        [
            f"import nbdebug\nw = nbdebug.show({str(digits_run_path)!r})\nw.epoch = 1\nw",
            "print('EPOCH', w.epoch)",
        ]
    )
    nb.run(0)
    play = nb.cell(0).locator(".nbdebug-play")
    play.wait_for(timeout=60_000)
    slider = nb.cell(0).locator(".nbdebug-slider")
    wait_for_value(nb, slider, "0")
    play.click()
    # Five tweens of 350 ms, then it stops on the last epoch and reports it.
    wait_for_value(nb, slider, "5", timeout=15_000)
    nb.page.wait_for_function("el => el.textContent.includes('play')", arg=play.element_handle(), timeout=5_000)
    nb.run(1)
    assert "EPOCH 6" in nb.output_text(1)


def test_lasso_selection_and_feedback_reach_the_kernel(notebook, digits_run_path, copy_run):
    path = copy_run(digits_run_path)  # feedback is saved into the run
    nb = notebook(
        [
            f"import nbdebug\nw = nbdebug.show({str(path)!r}, recommendations=10)\nw",
            # The canvas centre is the centre of the bounds (one scale for both axes, centred),
            # so the upper-left quarter of the canvas is x < CX and y > CY in data coordinates.
            "import numpy as np\n"
            "b = w.bounds\nCX, CY = (b[0] + b[1]) / 2, (b[2] + b[3]) / 2\n"
            "tol = 0.005 * max(b[1] - b[0], b[3] - b[2])  # a pixel or so\n"
            "emb = w.session.embedding[-1]\n"
            "print('SELECTED', len(w.selection))\n"
            "print('INSIDE', int(((emb[:, 0] < CX + tol) & (emb[:, 1] > CY - tol))[w.selection].all()))",
            "print('ANSWERS', sorted(np.flatnonzero(w.session.learner.answers >= 0).tolist()))\n"
            "print('CARDS', [c['index'] for c in w.cards])\n"
            "print('SELECTION', w.selection.tolist())",
        ]
    )
    nb.run(0)
    canvas = nb.cell(0).locator("canvas.nbdebug-canvas")
    canvas.wait_for(timeout=60_000)
    cards = nb.cell(0).locator(".nbdebug-card")
    cards.first.wait_for(timeout=60_000)
    assert cards.count() == 10
    first = int(cards.first.get_attribute("data-index"))

    # Lasso the upper-left quarter of the canvas by dragging a closed path.
    box = canvas.bounding_box()
    x0, y0 = box["x"] + 2, box["y"] + 2
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    mouse = nb.page.mouse
    mouse.move(x0, y0)
    mouse.down()
    for x, y in [(cx, y0), (cx, cy), (x0, cy), (x0, y0 + 1)]:
        mouse.move(x, y, steps=8)
    mouse.up()
    selected_text = nb.cell(0).locator(".nbdebug-selection span")
    nb.page.wait_for_function("el => /^[1-9]/.test(el.textContent)", arg=selected_text.element_handle(), timeout=10_000)
    shown = int(selected_text.inner_text().split()[0])
    assert 0 < shown < 1797

    # The kernel holds the same selection, and every selected dot lies in the lassoed quarter.
    nb.run(1)
    out = nb.output_text(1)
    assert f"SELECTED {shown}" in out
    assert "INSIDE 1" in out

    # Accept the first recommendation, then reject the whole selection: both reach the session.
    cards.first.locator(".nbdebug-accept").click()
    # The list element stays while its cards are replaced: wait for a new first card.
    listing = nb.cell(0).locator(".nbdebug-recommendations").element_handle()
    nb.page.wait_for_function(
        "([el, first]) => el.firstElementChild.dataset.index !== String(first)", arg=[listing, first], timeout=30_000
    )
    nb.cell(0).locator(".nbdebug-reject-selection").click()
    nb.run(2)
    out = nb.output_text(2)
    judged = json.loads(out.split("ANSWERS ", 1)[1].splitlines()[0])
    recommended = json.loads(out.split("CARDS ", 1)[1].splitlines()[0])
    selection = json.loads(out.split("SELECTION ", 1)[1].splitlines()[0])
    assert len(selection) == shown
    assert set(judged) == set(selection) | {first}
    assert not set(judged) & set(recommended), "a judged sample was recommended again"
