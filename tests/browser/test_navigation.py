"""Pan, zoom and on-demand epochs of the landscape widget in a real JupyterLab."""

from __future__ import annotations

import json

import pytest

from tests.browser.pages import GEOMETRY, drawing_area, open_landscape, printed

pytestmark = pytest.mark.browser


def test_wheel_zoom_pan_and_reset(notebook, digits_run_path, lab):
    nb = notebook(
        [
            GEOMETRY,
            f"import nbdebug\nw = nbdebug.show({str(digits_run_path)!r}, recommendations=0)\nw",
            "print('VIEW', json.dumps(w.view))\nprint('BACKGROUND', json.dumps(w.background_bounds))",
            # The most isolated sample near the middle of the canvas, and where it is drawn.
            "size = json.load(open('area.json'))\n"
            "emb = w.session.embedding[-1]\n"
            "gap = np.sort(((emb[:, None] - emb[None]) ** 2).sum(-1), axis=1)[:, 1]\n"
            "px, py = to_pixel(w.view, size[0], size[1], emb[:, 0], emb[:, 1])\n"
            "middle = (abs(px - size[0] / 2) < size[0] / 4) & (abs(py - size[1] / 2) < size[1] / 4)\n"
            "i = int(np.flatnonzero(middle)[np.argmax(gap[middle])])\n"
            "print('DOT', json.dumps([i, float(px[i]), float(py[i])]))",
        ]
    )
    canvas = open_landscape(nb)
    left, top, width, height = drawing_area(canvas)
    (lab.root / "area.json").write_text(json.dumps([width, height]))
    whole = printed(nb, 2, "VIEW")
    index, px, py = printed(nb, 3, "DOT")
    left, top, _, _ = drawing_area(canvas)
    x, y = left + px, top + py
    tooltip = nb.cell(1).locator(".nbdebug-tooltip")
    nb.page.mouse.move(x, y)
    assert tooltip.inner_text().startswith(f"#{index} ")

    # Zoom in with the wheel over that dot: it stays under the cursor, and the kernel hears
    # the new view and paints the territories for it.
    for _ in range(3):
        nb.page.mouse.wheel(0, -200)
        nb.page.wait_for_timeout(50)
    nb.page.wait_for_timeout(700)  # the page tells the kernel once the wheel has settled
    nb.page.mouse.move(x + 1, y)
    nb.page.mouse.move(x, y)
    assert tooltip.inner_text().startswith(f"#{index} ")
    zoomed = printed(nb, 2, "VIEW")
    assert zoomed[1] - zoomed[0] < 0.5 * (whole[1] - whole[0])
    nb.page.wait_for_timeout(500)
    assert printed(nb, 2, "BACKGROUND") == zoomed

    # Shift + drag pans: dragging 80 pixels right moves the view 80 pixels' worth left, and
    # selects nothing (a plain drag is the lasso).
    scale = width / (zoomed[1] - zoomed[0])
    left, top, _, _ = drawing_area(canvas)
    x, y = left + px, top + py
    nb.page.mouse.move(x, y)
    nb.page.keyboard.down("Shift")
    nb.page.mouse.down()
    nb.page.mouse.move(x + 80, y, steps=8)
    nb.page.mouse.up()
    nb.page.keyboard.up("Shift")
    nb.page.wait_for_timeout(300)
    panned = printed(nb, 2, "VIEW")
    assert panned[0] == pytest.approx(zoomed[0] - 80 / scale, abs=2 / scale)
    assert panned[2] == pytest.approx(zoomed[2], abs=2 / scale)
    assert nb.cell(1).locator(".nbdebug-selection span").inner_text().startswith("0 selected")

    # The reset button shows the whole canvas again.
    nb.cell(1).locator(".nbdebug-reset-view").click()
    nb.page.wait_for_timeout(300)
    assert printed(nb, 2, "VIEW") == pytest.approx(whole)


def test_lasso_at_a_zoomed_view_selects_exactly_the_samples_inside(notebook, digits_run_path, lab):
    nb = notebook(
        [
            GEOMETRY,
            f"import nbdebug\nw = nbdebug.show({str(digits_run_path)!r}, recommendations=0)\nw",
            "print('VIEW', json.dumps(w.view))",
            "width, height, pixels = json.load(open('lasso.json'))\n"
            "polygon = to_data(w.view, width, height, pixels)\n"
            "expected = np.flatnonzero(inside(w.session.embedding[-1], polygon))\n"
            "print('COUNT', len(expected))\n"
            "print('EXACT', json.dumps(bool(np.array_equal(expected, w.selection))))",
        ]
    )
    canvas = open_landscape(nb)
    whole = printed(nb, 2, "VIEW")
    left, top, width, height = drawing_area(canvas)
    nb.page.mouse.move(left + width / 2, top + height / 2)
    for _ in range(2):
        nb.page.mouse.wheel(0, -250)
        nb.page.wait_for_timeout(50)
    nb.page.wait_for_timeout(700)
    zoomed = printed(nb, 2, "VIEW")
    assert zoomed[1] - zoomed[0] < 0.7 * (whole[1] - whole[0])  # the kernel has the zoomed view
    left, top, width, height = drawing_area(canvas)

    # A lasso around the middle of the zoomed canvas, in pixels of its drawing area.
    pixels = [(f * width, g * height) for f, g in [(0.3, 0.25), (0.7, 0.3), (0.65, 0.75), (0.35, 0.7)]]
    mouse = nb.page.mouse
    mouse.move(left + pixels[0][0], top + pixels[0][1])
    mouse.down()
    for px, py in [*pixels[1:], pixels[0]]:
        mouse.move(left + px, top + py, steps=10)
    mouse.up()
    selected = nb.cell(1).locator(".nbdebug-selection span")
    nb.page.wait_for_function("el => /^[1-9]/.test(el.textContent)", arg=selected.element_handle(), timeout=10_000)
    (lab.root / "lasso.json").write_text(json.dumps([width, height, pixels]))
    assert printed(nb, 3, "COUNT") > 5
    assert printed(nb, 3, "EXACT") is True


def test_a_run_over_the_position_budget_loads_epochs_on_demand(notebook, digits_run_path):
    frame = 1797 * 2 * 4
    nb = notebook(
        [
            GEOMETRY,
            # Every frame is larger than a message here, so each goes in two parts.
            "import nbdebug, nbdebug.transport\nnbdebug.transport.MAX_MESSAGE_BYTES = 8000\n"
            f"w = nbdebug.show({str(digits_run_path)!r}, recommendations=0, epoch=1, position_budget={3 * frame})\n"
            "asked = []  # the page's requests for frames\n"
            "w.on_msg(lambda _w, content, _b: content.get('type') == 'frames' and asked.append(content['indices']))\n"
            "w",
            "print('ASKED', json.dumps(asked))\nprint('EPOCH', w.epoch)",
        ]
    )
    open_landscape(nb)
    landscape = nb.cell(1).locator(".nbdebug-landscape").element_handle()
    nb.page.wait_for_function("el => el.nbdebugStats.framesHeld === 3", arg=landscape, timeout=10_000)
    # The page sends its requests in order (js/test/frames.test.js checks that), but the kernel
    # may handle two comm messages that arrive together in either order, so the order is not checked here.
    asked = printed(nb, 2, "ASKED")
    assert [0] in asked  # the frame shown, alone
    assert sorted(i for chunk in asked for i in chunk) == [0, 1, 2]  # and the window the budget allows

    # Scrub to the last epoch like a person: the page asks for it, shows it, keeps three frames.
    slider = nb.cell(1).locator(".nbdebug-slider")
    slider.focus()
    nb.page.keyboard.press("End")
    label = nb.cell(1).locator(".nbdebug-epoch")
    nb.page.wait_for_function("el => el.textContent.startsWith('epoch 6')", arg=label.element_handle(), timeout=10_000)
    nb.page.wait_for_function("el => el.nbdebugStats.framesHeld === 3", arg=landscape, timeout=10_000)
    asked = printed(nb, 2, "ASKED")
    assert [5] in asked  # the frame scrubbed to, alone
    assert sorted(i for chunk in asked for i in chunk) == [0, 1, 2, 3, 4, 5]  # each frame asked for once
    assert printed(nb, 2, "EPOCH") == 6

    # Playback from the start fetches ahead and reaches the end, holding three frames at most.
    nb.page.keyboard.press("Home")
    nb.cell(1).locator(".nbdebug-play").click()
    nb.page.wait_for_function("el => el.value === '5'", arg=slider.element_handle(), timeout=20_000)
    assert nb.page.evaluate("el => el.nbdebugStats.framesHeld", landscape) <= 3
