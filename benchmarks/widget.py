"""The landscape widget at scale, in a real JupyterLab in headless Chromium.

    .venv/bin/python -m benchmarks.widget [--sizes 10000 50000 200000] [--epochs 30]
        [--baseline REV [--baseline-sizes 10000 50000]] [--out /tmp/nbdebug-bench/widget]

Runs: ``make_classification`` (32 features, 10 classes) learned by an MLP 32-32-10 (32-d
representations), recorded with ``--sizes`` training samples plus 10% test samples for
``--epochs`` epochs into ``--out``; the default TimeTravelVisualizer is fitted beforehand
(cached in the run directory), and the attributes, the faithfulness figures and any answers
are deleted before each measurement, as after a fresh recording and fit.

For each run and variant, a notebook cell ``nbdebug.show(path)`` is run like a person would
(click, Shift+Enter; ``import nbdebug`` ran in the cell before), and measured from the page:

* first frame: from pressing Shift+Enter to the first frame drawn with the dots;
* recommendations: from pressing Shift+Enter to the first recommendation card;
* playback: play pressed on the first epoch until the last; frames per second on the main
  thread (a requestAnimationFrame loop of the benchmark's: what the page could show) and
  frames the widget drew, as the mean over the playback and in its worst whole second;
* wheel zoom: from one wheel event to the territories repainted for the new view (the page
  waits for the wheel to settle for 250 ms first);
* hover to tooltip: the pointer moved onto a dot (a mousemove event on the canvas, at dots
  found by sweeping it) until the next animation frame with the dot's tooltip shown, the
  median and the slowest of 40 hovers; the thumbnail comes from the kernel after;
* query to highlight: a query typed in the bar and Enter pressed (``label=0`` ... ``label=9``
  in turn) until the dots are first drawn with its matches highlighted (the page answers such
  a query itself, see js/lib/query.js), the median and the slowest of 10 queries; and the
  median time until the kernel's answer arrived, which replaces the page's;
* bytes: what the kernel sent the page over the websocket while the cell ran and the
  animation played, and the largest single message.

Variants: ``pixels`` (the default renderer), ``canvas`` (the Canvas 2D renderer, the one
before, through the ``renderer`` switch) and, with ``--baseline REV``, the code of commit REV
(checked out into ``--out``, its JavaScript built there, and imported by the kernel ahead
of this checkout) on copies of the ``--baseline-sizes`` runs whose projections it fitted,
measured with the same script so far as it applies.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nbdebug import Recorder, Session, load_run

from ._common import classification_data, existing_run, markdown_table
from ._lab import CHROMIUM_FLAGS, Lab, chromium_path, start_lab, write_notebook

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


# -- runs ----------------------------------------------------------------------------------


def record_run(root: Path, n_train: int, epochs: int, seed: int = 0) -> Path:
    """A recorded run with ``n_train`` + 10% samples, its visualizer fitted and cached."""
    path = root / f"run-{n_train}-{epochs}"
    if existing_run(path, epochs) is None:
        inputs, labels = classification_data(n_train + n_train // 10, 32, seed)
        x, y = torch.from_numpy(inputs), torch.from_numpy(labels)
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        rec = Recorder(
            model,
            head=model[2],
            path=path,
            train=(x[:n_train], y[:n_train]),
            test=(x[n_train:], y[n_train:]),
            batch_size=4096,
            overwrite=True,
        )
        for epoch in tqdm(range(1, epochs + 1), desc=f"recording {n_train} samples"):
            for batch in torch.randperm(n_train).split(512):
                loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            rec.capture(epoch)
    Session(load_run(path)).fit()  # the projection, cached in the run directory
    return path


def as_after_fit(path: Path) -> None:
    """As after a fresh recording whose projection was fitted: the attributes and the
    faithfulness figures are computed again, and no answer has been given."""
    for cached in path.glob("attributes-*.npz"):
        cached.unlink()
    (path / "feedback.jsonl").unlink(missing_ok=True)
    (path / "relabels.jsonl").unlink(missing_ok=True)
    (path / "visualizer" / "metrics.json").unlink(missing_ok=True)


def baseline_runs(where: Path, runs: dict[int, Path]) -> dict[int, Path]:
    """Copies of ``runs`` under ``where``, their projections fitted by the code there (its
    cache may differ from this checkout's, and both live in the run directory)."""
    copies = {}
    for n, path in runs.items():
        copy = where / "runs" / path.name
        if not (copy / "visualizer").exists():
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(path, copy, ignore=shutil.ignore_patterns("visualizer", "attributes-*", "feedback.jsonl"))
            fit = "import sys; from nbdebug import Session; Session(sys.argv[1]).fit()"
            env = {**os.environ, "PYTHONPATH": str(where)}
            subprocess.run([sys.executable, "-c", fit, str(copy)], env=env, check=True)
        copies[n] = copy
    return copies


# -- JupyterLab and the browser ---------------------------------------------------------------


# Counts the main thread's animation frames: how often the page could show a new frame.
FRAME_COUNTER = """() => {
  window.benchFrames = [];
  const tick = (now) => { window.benchFrames.push(now); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


HOVER_LATENCY = """async ([el, count]) => {
  const canvas = el.querySelector("canvas.nbdebug-canvas");
  const tooltip = el.querySelector(".nbdebug-tooltip");
  const rect = canvas.getBoundingClientRect();
  const move = (x, y) =>
    canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: rect.left + x, clientY: rect.top + y, bubbles: true }));
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const dots = [];
  for (let y = 12; y < rect.height - 12 && dots.length < count; y += 23)
    for (let x = 12; x < rect.width - 12 && dots.length < count; x += 29) {
      move(x, y);
      if (!tooltip.hidden) dots.push([x, y]);
    }
  const times = [];
  for (const [x, y] of dots) {
    move(-50, -50); // off the canvas's dots: the tooltip hides
    await frame();
    const start = performance.now();
    move(x, y);
    await frame();
    if (!tooltip.hidden) times.push(performance.now() - start);
  }
  return times;
}"""

QUERY_LATENCY = """async ([el, texts]) => {
  const input = el.querySelector(".nbdebug-query-input");
  const times = [];
  for (const text of texts) {
    input.value = text;
    const start = performance.now();
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    const stats = el.nbdebugStats;
    let drawn = stats.highlightedAt > start ? stats.highlightedAt : null; // the first drawing of it
    while ((drawn === null || stats.highlightArrivedAt <= start) && performance.now() - start < 30000) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (drawn === null && stats.highlightedAt > start) drawn = stats.highlightedAt;
    }
    times.push([drawn - start, stats.highlightArrivedAt - start]);
  }
  return times;
}"""


def per_second(times_ms: list[float], start: float, stop: float) -> tuple[float, float]:
    """(mean frames per second, frames in the worst whole second) of timestamps in [start, stop]."""
    times = np.array([t for t in times_ms if start <= t <= stop])
    seconds = (stop - start) / 1000
    if seconds <= 0:
        return float("nan"), float("nan")
    whole = int(seconds)
    worst = min(
        (np.sum((times >= start + 1000 * k) & (times < start + 1000 * (k + 1))) for k in range(whole)),
        default=len(times),
    )
    return len(times) / seconds, float(worst)


def measure(browser, lab: Lab, path: Path, options: str, instrumented: bool) -> dict:
    """Open a notebook that shows the run, and measure it (see the module docstring)."""
    name = f"bench-{secrets.token_hex(4)}.ipynb"
    # The import is not timed.
    write_notebook(lab.root / name, ["import nbdebug", f"w = nbdebug.show({str(path)!r}{options})\nw"])
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    received = {"bytes": 0, "largest": 0}

    def on_frame(payload) -> None:
        size = len(payload) if isinstance(payload, (bytes, bytearray)) else len(payload.encode())
        received["bytes"] += size
        received["largest"] = max(received["largest"], size)

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    page.goto(lab.page_url(name))
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
    page.evaluate(FRAME_COUNTER)
    cells = page.locator(".jp-NotebookPanel:visible .jp-Cell")
    cells.nth(0).locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    prompt = cells.nth(0).locator(".jp-InputArea-prompt").element_handle()
    page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt, timeout=120_000)
    cells.nth(1).locator(".cm-content").click()
    before = dict(received)
    received["largest"] = 0  # of the messages from here on
    started = page.evaluate("Date.now()")
    page.keyboard.press("Shift+Enter")
    result: dict = {}
    wait = 900_000
    if instrumented:
        handle = page.wait_for_function(
            "() => { const el = document.querySelector('.nbdebug-landscape');"
            " return el && el.nbdebugStats && el.nbdebugStats.firstFrameAt; }",
            timeout=wait,
        )
        result["first frame s"] = (handle.json_value() - started) / 1000
    else:  # the code before draws every dot when the widget appears
        handle = page.wait_for_function("() => document.querySelector('.nbdebug-canvas') && Date.now()", timeout=wait)
        result["first frame s"] = (handle.json_value() - started) / 1000
    handle = page.wait_for_function("() => document.querySelector('.nbdebug-card') && Date.now()", timeout=wait)
    result["recommendations s"] = (handle.json_value() - started) / 1000
    page.wait_for_function(
        "() => !document.querySelector('.nbdebug-status') ||"
        " document.querySelector('.nbdebug-status').textContent === ''",
        timeout=wait,
    )
    landscape = page.locator(".nbdebug-landscape").first
    landscape.evaluate("el => el.scrollIntoView({block: 'center'})")
    slider = page.locator(".nbdebug-slider").first
    slider.focus()
    page.keyboard.press("Home")
    page.wait_for_timeout(1500)
    if instrumented:
        landscape.evaluate("el => { el.nbdebugStats.drawTimes = []; }")
    start = page.evaluate("performance.now()")
    page.locator(".nbdebug-play").first.click()
    page.wait_for_function("el => el.value === el.max", arg=slider.element_handle(), timeout=wait)
    stop = page.evaluate("performance.now()")
    frames = page.evaluate("window.benchFrames")
    result["playback fps"], result["worst second fps"] = per_second(frames, start, stop)
    if instrumented:
        drawn = landscape.evaluate("el => el.nbdebugStats.drawTimes")
        result["drawn fps"], result["worst second drawn"] = per_second(drawn, start, stop)
    result["bytes sent MiB"] = (received["bytes"] - before["bytes"]) / 2**20
    result["largest message MiB"] = received["largest"] / 2**20
    if instrumented:
        box = page.locator(".nbdebug-canvas").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(2000)  # the territories of the epoch playback stopped on are in
        wheel = page.evaluate("Date.now()")
        page.mouse.wheel(0, -300)
        handle = page.wait_for_function(
            "([el, wheel]) => el.nbdebugStats.backgroundAt > wheel && el.nbdebugStats.backgroundAt",
            arg=[landscape.element_handle(), wheel],
            timeout=60_000,
        )
        result["wheel zoom to territories s"] = (handle.json_value() - wheel) / 1000
    if instrumented and page.locator(".nbdebug-query-input").count():  # pages before the query bar have none
        hovers = page.evaluate(HOVER_LATENCY, [landscape.element_handle(), 40])
        result["hover to tooltip ms"], result["slowest hover ms"] = float(np.median(hovers)), max(hovers)
        queries = np.array(
            page.evaluate(QUERY_LATENCY, [landscape.element_handle(), [f"label={k}" for k in range(10)]])
        )
        result["query to highlight ms"], result["slowest query ms"] = (
            float(np.median(queries[:, 0])),
            queries[:, 0].max(),
        )
        result["query answered ms"] = float(np.median(queries[:, 1]))  # the kernel's matches arrived
    page.close()
    return result


def baseline_checkout(root: Path, rev: str) -> Path:
    """The code of ``rev`` in ``root``, with its JavaScript built."""
    where = root / f"baseline-{rev}"
    if not (where / "nbdebug" / "static" / "landscape.js").exists():
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=where, check=True)
        subprocess.run(["npm", "run", "--silent", "build"], cwd=where, check=True)
    return where


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 50_000, 200_000])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--baseline", help="also measure the code of this commit (e.g. the one before yours)")
    parser.add_argument(
        "--baseline-sizes",
        nargs="+",
        type=int,
        default=[10_000, 50_000],
        help="the runs measured with --baseline (its exact faithfulness grows with the square of the samples)",
    )
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "nbdebug-bench" / "widget")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    runs = {n: record_run(args.out, n, args.epochs) for n in args.sizes}
    variants = [("pixels", None, runs, "", True), ("canvas", None, runs, ", renderer='canvas'", True)]
    if args.baseline:
        where = baseline_checkout(args.out, args.baseline)
        before = baseline_runs(where, {n: runs[n] for n in args.baseline_sizes if n in runs})
        variants.append((f"code of {args.baseline}", str(where), before, "", False))
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        for label, pythonpath, variant_runs, options, instrumented in variants:
            lab = start_lab(args.out, args.out / "jupyter-config", args.out / "jupyterlab.log", pythonpath)
            try:
                for n, path in variant_runs.items():
                    as_after_fit(path)
                    print(f"[{time.strftime('%H:%M:%S')}] {n} samples, {label} ...", flush=True)
                    figures = measure(browser, lab, path, options, instrumented)
                    rows.append((n, label, figures))
                    print("    " + json.dumps({k: round(v, 3) for k, v in figures.items()}), flush=True)
            finally:
                lab.stop()
        browser.close()
    columns = [
        "first frame s",
        "recommendations s",
        "playback fps",
        "worst second fps",
        "drawn fps",
        "worst second drawn",
        "wheel zoom to territories s",
        "hover to tooltip ms",
        "slowest hover ms",
        "query to highlight ms",
        "slowest query ms",
        "query answered ms",
        "bytes sent MiB",
        "largest message MiB",
    ]
    cells = [
        [f"{n:,} x {args.epochs}", label, *(f"{f[c]:.2f}" if c in f else "n/a" for c in columns)]
        for n, label, f in rows
    ]
    print("\n" + "\n".join(markdown_table(["run", "variant", *columns], cells)))


if __name__ == "__main__":
    main()
