"""What the browser tests share: the page's canvas geometry computed in the kernel, and
running a widget's cells and reading what cells print."""

from __future__ import annotations

import json

# Kernel-side geometry of the page's canvas (one scale for both axes, the view centred), and
# the even-odd rule, to say where a sample is drawn and which samples a lasso holds.
GEOMETRY = """\
import json
import numpy as np

def transform(view, width, height):
    x0, x1, y0, y1 = view
    scale = min(width / (x1 - x0), height / (y1 - y0))
    return x0, y0, scale, (width - scale * (x1 - x0)) / 2, (height - scale * (y1 - y0)) / 2

def to_data(view, width, height, points):
    x0, y0, scale, off_x, off_y = transform(view, width, height)
    return [(x0 + (px - off_x) / scale, y0 + (height - py - off_y) / scale) for px, py in points]

def to_pixel(view, width, height, x, y):
    x0, y0, scale, off_x, off_y = transform(view, width, height)
    return off_x + (x - x0) * scale, height - (off_y + (y - y0) * scale)

def inside(points, polygon):
    x, y = points[:, 0].astype(float), points[:, 1].astype(float)
    result = np.zeros(len(points), bool)
    for (xi, yi), (xj, yj) in zip(polygon, polygon[-1:] + polygon[:-1]):
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            result ^= crosses & (x < (xj - xi) * (y - yi) / (yj - yi) + xi)
    return result
print("GEOMETRY")"""


def open_landscape(nb):
    """Run the geometry and widget cells; the canvas once its first frame is drawn."""
    nb.run(0)
    nb.run(1)
    canvas = nb.cell(1).locator("canvas.nbdebug-canvas")
    canvas.wait_for(timeout=60_000)
    nb.page.wait_for_function(
        "el => el.nbdebugStats && el.nbdebugStats.framesDrawn > 0",
        arg=nb.cell(1).locator(".nbdebug-landscape").element_handle(),
        timeout=30_000,
    )
    return canvas


def printed(nb, index, tag):
    """Run cell ``index`` and read the JSON it printed after ``tag``."""
    nb.run(index)
    out = nb.output_text(index)
    return json.loads(out.split(tag + " ", 1)[1].splitlines()[0])


def drawing_area(canvas):
    """(left, top, width, height) of the canvas inside its 1-pixel border, in page pixels, once
    it is scrolled to the middle of the page (running a cell below scrolls the notebook)."""
    canvas.evaluate("el => el.scrollIntoView({block: 'center'})")
    box = canvas.bounding_box()
    return box["x"] + 1, box["y"] + 1, box["width"] - 2, box["height"] - 2
