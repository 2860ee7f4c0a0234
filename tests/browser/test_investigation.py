"""Investigating and repairing a run in the widget, as a person does it, in JupyterLab and in
Notebook 7: hover, query, box-select, inspect, the keyboard, relabelling across a kernel
restart, a page reload, and class names that carry HTML."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.browser.pages import GEOMETRY, drawing_area, open_landscape, printed

pytestmark = pytest.mark.browser
FRONTENDS = ["lab", "notebook7"]

# The sample drawn farthest from any other at the epoch shown (so the pointer finds it alone),
# its pixel in the drawing area written to area.json by the test, and what its tooltip must say.
LONELY_DOT = """\
width, height = json.load(open("area.json"))
xy = w.session.embedding[w.epochs.index(w.epoch)]
px = np.array([to_pixel(w.view, width, height, x, y) for x, y in xy])
inner = (px[:, 0] > 30) & (px[:, 0] < width - 30) & (px[:, 1] > 30) & (px[:, 1] < height - 30)
gap = np.sort(np.linalg.norm(px[:, None] - px[None], axis=2), axis=1)[:, 1]
i = int(np.argmax(np.where(inner, gap, -1)))
run = w.session.run
p = run.probabilities(w.epoch)[i]
names = [run.classes[run.labels[i]], run.classes[int(p.argmax())]]
print("DOT", json.dumps([i, *px[i].tolist(), *names, round(float(p.max()), 2)]))"""


def dark_near(png: bytes, points, reach: int = 2, level: int = 90) -> list[bool]:
    """Per (x, y) pixel of the drawing area, whether a dark pixel lies within ``reach`` of it."""
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L")).astype(int)
    return [
        bool(
            (
                grey[max(int(y) - reach, 0) : int(y) + reach + 1, max(int(x) - reach, 0) : int(x) + reach + 1] < level
            ).any()
        )
        for x, y in points
    ]


def landscape_root(nb, cell: int = 1):
    return nb.cell(cell).locator(".nbdebug-landscape")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_hover_query_box_select_and_inspect(notebook, digits_run_path, copy_run, lab, frontend):
    path = copy_run(digits_run_path)
    nb = notebook(
        [
            GEOMETRY,
            f"import nbdebug\nw = nbdebug.show({str(path)!r}, recommendations=6)\nw",
            LONELY_DOT,
            "print('SAME', json.dumps(w.highlighted.tolist() == w.query(label=3, mispredicted=True).tolist()))\n"
            "print('COUNT', len(w.highlighted))",
            "width, height, corners = json.load(open('box.json'))\n"
            "(ax, ay), (bx, by) = to_data(w.view, width, height, corners)\n"
            "box = [(ax, ay), (bx, ay), (bx, by), (ax, by)]\n"
            "inside_box = np.flatnonzero(inside(w.session.embedding[w.epochs.index(w.epoch)], box))\n"
            "print('BOX', json.dumps([w.selection.tolist() == inside_box.tolist(), len(inside_box)]))",
            # The card whose sample moved most (its trail has the most epochs apart from its end).
            "width, height = json.load(open('area.json'))\n"
            "emb, scale = w.session.embedding, transform(w.view, width, height)[2]\n"
            "w.wait()\ncards = [c['index'] for c in w.cards if c['kind'] == 'recommended']\n"
            "apart = [int((np.linalg.norm(emb[:, i] - emb[-1, i], axis=1) * scale > 12).sum()) for i in cards]\n"
            "print('CARD', json.dumps(cards.index(cards[int(np.argmax(apart))])))",
            "width, height = json.load(open('area.json'))\n"
            "positions = w.session.embedding[:, w.inspected].tolist()\n"
            "trail = [to_pixel(w.view, width, height, x, y) for x, y in positions]\n"
            "print('TRAIL', json.dumps([w.inspected, trail]))",
        ],
        frontend=frontend,
    )
    canvas = open_landscape(nb)
    root = landscape_root(nb)
    left, top, width, height = drawing_area(canvas)
    (lab.root / "area.json").write_text(json.dumps([width, height]))

    # Hover a dot at a known data position: its tooltip names it, its labels and prediction.
    index, px, py, label, predicted, confidence = printed(nb, 2, "DOT")
    canvas.evaluate("el => el.scrollIntoView({block: 'center'})")
    left, top, width, height = drawing_area(canvas)
    nb.page.mouse.move(left + px, top + py)
    tooltip = nb.cell(1).locator(".nbdebug-tooltip")
    tooltip.wait_for(state="visible", timeout=5_000)
    text = tooltip.inner_text()
    assert text.startswith(f"#{index} ") and f"label {label}" in text
    assert f"predicted {predicted} · confidence {confidence:.2f}" in text
    nb.page.wait_for_function("el => el.querySelector('canvas') !== null", arg=tooltip.element_handle())  # thumbnail

    # Type a query: the page highlights what widget.query(...) returns for the same arguments.
    query = nb.cell(1).locator(".nbdebug-query-input")
    query.fill("label = 3 mispredicted")
    query.press("Enter")
    count = nb.cell(1).locator(".nbdebug-query-count")
    nb.page.wait_for_function("el => /\\d+ match/.test(el.textContent)", arg=count.element_handle(), timeout=10_000)
    assert printed(nb, 3, "SAME") is True
    assert count.inner_text().startswith(f"{printed(nb, 3, 'COUNT')} match")

    # Box-select: the selection is the samples inside the box, in data coordinates.
    nb.cell(1).locator(".nbdebug-box-mode input").check()
    canvas.evaluate("el => el.scrollIntoView({block: 'center'})")
    left, top, width, height = drawing_area(canvas)
    corners = [(0.3 * width, 0.3 * height), (0.7 * width, 0.65 * height)]
    nb.page.mouse.move(left + corners[0][0], top + corners[0][1])
    nb.page.mouse.down()
    nb.page.mouse.move(left + corners[1][0], top + corners[1][1], steps=12)
    nb.page.mouse.up()
    selected = nb.cell(1).locator(".nbdebug-selection span")
    nb.page.wait_for_function("el => /^[1-9]/.test(el.textContent)", arg=selected.element_handle(), timeout=10_000)
    (lab.root / "box.json").write_text(json.dumps([width, height, corners]))
    same, inside_count = printed(nb, 4, "BOX")
    assert same and inside_count > 5

    # Click a card: the panel names the sample, the view centres on it and its trail is drawn.
    card = nb.cell(1).locator(".nbdebug-card-recommended").nth(printed(nb, 5, "CARD"))
    card_index = int(card.get_attribute("data-index"))
    card.locator(".nbdebug-card-text").click()
    title = nb.cell(1).locator(".nbdebug-sample-title")
    nb.page.wait_for_function(
        f"el => el.textContent.startsWith('#{card_index} ')", arg=title.element_handle(), timeout=10_000
    )
    nb.page.wait_for_timeout(600)  # the territories of the centred view
    inspected, trail = printed(nb, 6, "TRAIL")
    assert inspected == card_index
    # The epochs where the sample stood apart from where it is now.
    centre = np.array(trail[-1])
    far = [p for p in trail[:-1] if np.linalg.norm(np.array(p) - centre) > 8]
    assert len(far) >= 2, f"sample {card_index} hardly moves; choose another for this test"
    canvas.evaluate("el => el.scrollIntoView({block: 'center'})")
    with_trail = dark_near(canvas.screenshot(), [(x + 1, y + 1) for x, y in far])
    nb.cell(1).locator(".nbdebug-sample-close").click()
    nb.page.wait_for_timeout(300)
    without = dark_near(canvas.screenshot(), [(x + 1, y + 1) for x, y in far])
    assert sum(with_trail) >= 0.8 * len(far) and sum(without) <= 0.5 * len(far), (with_trail, without)
    assert root.evaluate("el => el.nbdebugStats.framesDrawn") > 0


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_keyboard_relabel_restart_and_reload(notebook, digits_run_path, copy_run, lab, frontend):
    path = copy_run(digits_run_path)
    show = f"import nbdebug\nw = nbdebug.show({str(path)!r}, recommendations=6)\nw"
    nb = notebook(
        [
            GEOMETRY,
            show,
            "print('ANSWERS', json.dumps(w.session.answers.tolist()))\nprint('EPOCH', w.epoch)",
            "print('RELABELS', json.dumps(w.session.relabels))",
            "w.selection = [4, 9, 11]\nw.view = [v / 2 for v in w.bounds]\nw.query(label=2)\nprint('SET')",
            "print('KEPT', json.dumps([w.epoch, w.selection.tolist(), w.view, len(w.highlighted)]))",
            "width, height = json.load(open('area.json'))\n"
            "i = next(iter(w.session.relabels))\n"
            "x, y = (float(v) for v in w.session.embedding[w.epochs.index(w.epoch), i])\n"
            "span = (w.bounds[1] - w.bounds[0]) / 16\n"
            "w.view = [x - span, x + span, y - span, y + span]\n"
            "print('AT', json.dumps(to_pixel(w.view, width, height, x, y)))",
        ],
        frontend=frontend,
    )
    open_landscape(nb)
    root = landscape_root(nb)
    cards = nb.cell(1).locator(".nbdebug-card-recommended")
    nb.page.wait_for_function("el => el.querySelectorAll('.nbdebug-card').length >= 3", arg=root.element_handle())
    first = int(cards.first.get_attribute("data-index"))

    # Keys act only while the widget has focus: typed in the query bar they are text.
    nb.cell(1).locator(".nbdebug-panel-title").click()  # focuses the widget
    nb.page.keyboard.press("j")  # the first card
    nb.page.keyboard.press("a")  # accepted
    accepted = nb.cell(1).locator(".nbdebug-card-accepted")
    accepted.first.wait_for(timeout=10_000)
    # The list is re-ranked; the keyboard stays on its first card.
    second = int(nb.cell(1).locator(".nbdebug-card.nbdebug-current").get_attribute("data-index"))
    nb.page.keyboard.press("r")  # rejected
    nb.page.wait_for_function(
        f"el => ![...el.querySelectorAll('.nbdebug-card-recommended')].some(c => c.dataset.index === '{second}')",
        arg=root.element_handle(),
        timeout=10_000,
    )
    nb.cell(1).locator(".nbdebug-query-input").type("ar")  # no shortcut while typing
    nb.cell(1).locator(".nbdebug-panel-title").click()
    nb.page.keyboard.press("ArrowLeft")  # one epoch back
    label = nb.cell(1).locator(".nbdebug-epoch")
    nb.page.wait_for_function("el => el.textContent.startsWith('epoch 5')", arg=label.element_handle())
    answers = printed(nb, 2, "ANSWERS")
    assert answers[first] == 1 and answers[second] == 0 and sum(a >= 0 for a in answers) == 2
    assert printed(nb, 2, "EPOCH") == 5
    nb.cell(1).locator(".nbdebug-panel-title").click()  # running a cell took the focus
    nb.page.keyboard.press(" ")  # plays
    play = nb.cell(1).locator(".nbdebug-play")
    nb.page.wait_for_function("el => el.textContent.includes('pause')", arg=play.element_handle())
    nb.page.keyboard.press(" ")  # and pauses
    nb.page.wait_for_function("el => el.textContent.includes('play')", arg=play.element_handle())

    # Relabel the accepted sample in its card, restart the kernel, open the run again.
    given = int(np.load(path / "labels.npy")[first])
    new = (given + 1) % 10
    accepted.first.locator(".nbdebug-relabel").select_option(str(new))
    nb.page.wait_for_function(  # the cards are drawn anew: look them up each time
        "el => (el.querySelector('.nbdebug-card-accepted') || {}).textContent?.includes('→')",
        arg=root.element_handle(),
        timeout=10_000,
    )
    assert printed(nb, 3, "RELABELS") == {str(first): new}
    restart_kernel(nb)
    nb.run(0)
    nb.run(1)
    accepted.first.wait_for(timeout=60_000)
    assert f"#{first} " in accepted.first.inner_text() and f"→ {new}" in accepted.first.inner_text()
    assert printed(nb, 3, "RELABELS") == {str(first): new}
    # On the canvas: zoomed in around the sample from Python, its tooltip says its new label.
    canvas = nb.cell(1).locator("canvas.nbdebug-canvas")
    left, top, width, height = drawing_area(canvas)
    (lab.root / "area.json").write_text(json.dumps([width, height]))
    px, py = printed(nb, 6, "AT")
    left, top, width, height = drawing_area(canvas)
    nb.page.mouse.move(left + px, top + py)
    tooltip = nb.cell(1).locator(".nbdebug-tooltip")
    tooltip.wait_for(state="visible", timeout=5_000)
    assert tooltip.inner_text().startswith(f"#{first} ") and f"relabelled {new}" in tooltip.inner_text()

    # The state the widget shows survives a reload of the page (the notebook saved first).
    nb.run(4)
    selected = nb.cell(1).locator(".nbdebug-selection span")
    nb.page.wait_for_function("el => el.textContent.startsWith('3 ')", arg=selected.element_handle())
    kept = printed(nb, 5, "KEPT")
    nb.page.keyboard.press("Control+s")
    nb.page.wait_for_timeout(1500)
    nb.page.reload()
    nb.page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for(timeout=60_000)
    root = landscape_root(nb)
    root.wait_for(timeout=60_000)
    nb.page.wait_for_function("el => el.nbdebugStats && el.nbdebugStats.framesDrawn > 0", arg=root.element_handle())
    assert nb.cell(1).locator(".nbdebug-selection span").inner_text().startswith("3 ")
    assert nb.cell(1).locator(".nbdebug-query-count").inner_text().startswith(f"{kept[3]} match")
    assert nb.cell(1).locator(".nbdebug-epoch").inner_text().startswith(f"epoch {kept[0]}")
    assert root.evaluate("el => el.nbdebugStats.backgrounds") >= 1
    nb.wait_until_idle()
    assert printed(nb, 5, "KEPT") == kept


def restart_kernel(nb) -> None:
    """Restart the kernel from the Kernel menu, like a person, and wait until it is idle."""
    page = nb.page
    page.locator(".lm-MenuBar-item", has_text="Kernel").click()
    page.locator(".lm-Menu-item").get_by_text("Restart Kernel…", exact=True).click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.wait_for_timeout(1000)
    nb.wait_until_idle()


EVIL = "<img src=x onerror=window.__nbdebugXSS=1>"


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_class_names_with_html_are_shown_as_text(notebook, tmp_path, frontend):
    record = f"""\
import numpy as np, torch
from torch import nn
import nbdebug
torch.manual_seed(0)
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 90)
x = (rng.normal(size=(90, 4)) + np.eye(3, 4)[y] * 3).astype(np.float32)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
classes = [{EVIL!r}, "<b>bold</b>", "<script>window.__nbdebugXSS=2</script>"]
rec = nbdebug.Recorder(model, head=model[2], path={str(tmp_path / "evil")!r}, train=(x, y), test=(x[:20], y[:20]),
                       classes=classes, thumbnails={{"train": (rng.random((90, 4, 4)) * 255).astype(np.uint8)}})
for epoch in range(3):
    loss = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    opt.zero_grad(); loss.backward(); opt.step()
    rec.capture(epoch)
w = nbdebug.show(nbdebug.Session({str(tmp_path / "evil")!r}, projection="pca"), recommendations=4)
w.wait()
w"""
    nb = notebook([record], frontend=frontend)
    nb.run(0)
    root = landscape_root(nb, 0)
    root.wait_for(timeout=60_000)
    nb.page.wait_for_function("el => el.querySelectorAll('.nbdebug-card').length > 0", arg=root.element_handle())
    canvas = nb.cell(0).locator("canvas.nbdebug-canvas")
    left, top, width, height = drawing_area(canvas)
    tooltip = nb.cell(0).locator(".nbdebug-tooltip")
    for k in range(400):  # sweep the canvas like a pointer until a dot's tooltip shows
        nb.page.mouse.move(left + (k % 20 + 0.5) * width / 20, top + (k // 20 + 0.5) * height / 20)
        if tooltip.is_visible():
            break
    assert tooltip.is_visible()
    nb.cell(0).locator(".nbdebug-card-text").first.click()  # the per-sample panel
    nb.cell(0).locator(".nbdebug-sample-title").wait_for()
    query = nb.cell(0).locator(".nbdebug-query-input")
    query.fill(f'label="{EVIL}"')
    query.press("Enter")
    count = nb.cell(0).locator(".nbdebug-query-count")
    nb.page.wait_for_function("el => /match/.test(el.textContent)", arg=count.element_handle(), timeout=10_000)
    nb.page.wait_for_timeout(500)
    text = root.inner_text()
    assert EVIL in nb.cell(0).locator(".nbdebug-legend").inner_text()
    assert EVIL in text and "<b>bold</b>" in text  # shown, as text
    assert "label " in tooltip.inner_text() and "<" in tooltip.inner_text()
    assert root.evaluate("el => el.querySelectorAll('img, b, script').length") == 0
    assert nb.page.evaluate("() => window.__nbdebugXSS") is None


def test_two_landscapes_in_one_notebook_keep_to_themselves(notebook, digits_run_path):
    show = f"nbdebug.show({str(digits_run_path)!r}, recommendations=0, epoch=4)"
    nb = notebook(
        [
            f"import nbdebug\nfirst = {show}\nfirst",
            f"second = {show}\nsecond",
            "print('EPOCHS', first.epoch, second.epoch)",
        ]
    )
    nb.run(0)
    nb.run(1)
    roots = [landscape_root(nb, k) for k in (0, 1)]
    for root in roots:
        nb.page.wait_for_function("el => el.nbdebugStats && el.nbdebugStats.framesDrawn > 0", arg=root.element_handle())
    nb.cell(0).locator(".nbdebug-legend").click()  # focuses the first
    nb.page.keyboard.press("ArrowRight")
    labels = [nb.cell(k).locator(".nbdebug-epoch") for k in (0, 1)]
    nb.page.wait_for_function("el => el.textContent.startsWith('epoch 5')", arg=labels[0].element_handle())
    query = nb.cell(1).locator(".nbdebug-query-input")
    query.fill("label=0")
    query.press("Enter")
    count = nb.cell(1).locator(".nbdebug-query-count")
    nb.page.wait_for_function("el => /match/.test(el.textContent)", arg=count.element_handle(), timeout=10_000)
    assert labels[1].inner_text().startswith("epoch 4")
    assert nb.cell(0).locator(".nbdebug-query-count").inner_text() == ""
    nb.run(2)
    assert "EPOCHS 5 4" in nb.output_text(2)
