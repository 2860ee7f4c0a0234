// The landscape widget: every sample as a dot at each recorded epoch over the class
// territories, a timeline, pan and zoom, lasso and box selection, queries, a per-sample panel
// with the sample's trail, the samples-of-interest panel and relabelling, and the training
// monitor's warnings marked on the timeline.
// Each epoch's positions (a frame) are asked of the kernel as they are needed, the shown one
// first; animation runs here, and the kernel hears only the epoch and the view the page
// settles on, the selection, the sample inspected, queries, feedback and relabels.
//
// Keyboard, while the widget has focus (never while typing in a cell or the query bar):
// a / r accept / reject the current card, j / k or the arrow keys move through the cards,
// space plays or pauses, left / right step one epoch.

import { createCanvasRenderer } from "./lib/canvas2d.js";
import { asTyped, element } from "./lib/dom.js";
import { createFrameStore } from "./lib/frames.js";
import { attachLasso, insidePolygon } from "./lib/lasso.js";
import { attachNavigation, debounce } from "./lib/navigate.js";
import { createPanel, thumbnail } from "./lib/panel.js";
import { createPixelRenderer } from "./lib/pixels.js";
import { answerLocally } from "./lib/query.js";
import { createSamplePanel } from "./lib/sample.js";
import { createWarningTimeline } from "./lib/timeline.js";
import { createToolbar } from "./lib/toolbar.js";
import {
  blend,
  DOT_STATE,
  drawOutlines,
  drawTrail,
  imageCanvas,
  makeTransform,
  nearest,
  panView,
  zoomView,
} from "./lib/view.js";

const HEIGHT = 440;
const TWEEN_MS = 350;
const DOUBLE_CLICK_MS = 500; // clicks this close are one double click, which keeps the selection
const UNLABELLED = "#9e9e9e";
const RENDERERS = { pixels: createPixelRenderer, canvas: createCanvasRenderer };

function createLandscape(model, el) {
  const root = element("div", "nbdebug-landscape", el);
  root.tabIndex = 0; // focusable: the keyboard shortcuts act only while it has focus
  root.setAttribute("data-lm-suppress-shortcuts", "true"); // JupyterLab's and Notebook 7's keys stay out
  const main = element("div", "nbdebug-main", root);
  const toolbar = createToolbar(main, {
    onQuery: (text) => {
      // Answered here at once where the page can; the kernel's answer follows and replaces it.
      const local = answerLocally(text, {
        ...data,
        predicted: data.predicted.length === data.n ? data.predicted : null,
      });
      if (local) {
        applyStyles(local.highlighting, local.matches, text);
        stats.highlightPending = true;
        draw();
      }
      model.send({ type: "query", text });
    },
    onSplits: (hidden) => {
      model.set("hidden_splits", hidden);
      model.save_changes();
      restyle();
    },
    onMisplaced: (on) => {
      model.set("show_misplaced", on);
      model.save_changes();
      showMisplaced();
    },
  });
  const stage = element("div", "nbdebug-stage", main);
  const canvas = element("canvas", "nbdebug-canvas", stage);
  const tooltip = element("div", "nbdebug-tooltip", stage);
  const controls = element("div", "nbdebug-controls", main);
  const play = element("button", "nbdebug-play", controls);
  const track = element("div", "nbdebug-timeline", controls);
  const slider = element("input", "nbdebug-slider", track);
  const label = element("span", "nbdebug-epoch", controls);
  const trust = element("span", "nbdebug-trust", controls);
  const reset = element("button", "nbdebug-reset-view", controls);
  const timeline = createWarningTimeline(track, main, {
    onOpen: (marker) => {
      if (playing) stop();
      goTo(marker.index, { settle: false });
      // Settled as the slider would, with the panel shown: one message, so the kernel has both
      // before it runs a cell sent after the click (a second message would wait for the first).
      model.set("epoch", marker.epoch);
      model.set("shown_warnings_epoch", marker.epoch);
      model.save_changes();
      timeline.show(marker.epoch);
    },
    onClose: () => showWarnings(-1),
  });
  const status = element("div", "nbdebug-status", main);
  trust.title =
    "How far to trust this frame (training samples, estimated on up to 2,000 of them, ± a 95% bound): " +
    "NPR, the share of each sample's 15 nearest neighbours kept on the canvas; PPR, the share of " +
    "predictions the painted territories preserve.";
  const legend = element("div", "nbdebug-legend", main);
  slider.type = "range";
  slider.min = "0";
  slider.step = "1";
  slider.setAttribute("aria-label", "epoch");
  play.type = "button";
  reset.type = "button";
  reset.textContent = "reset view";
  reset.title = "Show the whole canvas (or double-click it). Wheel: zoom; middle button or Shift + drag: pan.";
  tooltip.hidden = true;

  const onFeedback = (accept, reject) => {
    if (accept.length || reject.length) model.send({ type: "feedback", accept, reject });
  };
  const onRelabel = (index, label) => model.send({ type: "relabel", index, label });
  const side = element("div", "nbdebug-side", root);
  const samplePanel = createSamplePanel(side, { onClose: () => inspect(-1), onFeedback, onRelabel });
  const panel = createPanel(side, {
    onFeedback,
    onNewIntention: () => model.send({ type: "new_intention" }),
    onHover: (index) => {
      highlighted = index;
      draw();
    },
    onInspect: (index) => inspect(index, { centre: true }),
    onRelabel,
  });

  const renderer = (RENDERERS[model.get("renderer")] || createPixelRenderer)(canvas);
  const ctx = canvas.getContext("2d");
  // What benchmarks/widget.py reads; it sets drawTimes to an array to time each draw.
  const stats = {
    framesDrawn: 0,
    animationFrames: 0,
    framesHeld: 0,
    firstFrameAt: 0,
    backgroundAt: 0,
    backgrounds: 0,
    highlightArrivedAt: 0, // when a query's matches last arrived from the kernel
    highlightedAt: 0, // when the dots were last drawn with a new query's highlight
  };
  root.nbdebugStats = stats;
  let data = null;
  let frames = null;
  let shown = null; // the positions drawn, Float32Array (n x 2)
  let snapshot = null; // where a tween starts
  let current = 0; // the frame index shown, or being moved to
  let waiting = null; // a move to a frame that has not arrived yet
  let animation = null;
  let playing = false;
  let width = 600;
  let view = model.get("view");
  let sentView = JSON.stringify(view);
  let transform = null;
  let lassoPath = null;
  let highlighted = -1;
  let lastClickAt = Number.NEGATIVE_INFINITY;
  let beforeClicks = []; // the selection before the last burst of clicks
  let states = null; // per dot: a DOT_STATE (queried, greyed, hidden by its split)
  let thumbnails = new Map(); // sample index -> its thumbnail canvas (or null), for the tooltip
  let hovered = -1; // the sample under the pointer, whose tooltip is shown
  let hoveredAt = [0, 0];

  function decode() {
    const epochs = model.get("epochs");
    data = {
      epochs,
      n: model.get("n_samples"),
      labels: asTyped(model.get("labels"), Int16Array),
      splits: asTyped(model.get("splits"), Uint8Array),
      splitNames: model.get("split_names"),
      bounds: model.get("bounds"),
      classes: model.get("classes"),
      palette: model.get("palette"),
      metrics: model.get("epoch_metrics"),
    };
    shown = null;
    frames = createFrameStore({
      n: data.n,
      count: epochs.length,
      budget: model.get("position_budget"),
      request: (indices) => model.send({ type: "frames", indices }),
      onArrive: arrived,
    });
    renderer.setDots({
      n: data.n,
      labels: data.labels,
      splits: data.splits,
      palette: data.palette,
      unlabelledColour: UNLABELLED,
      testCode: data.splitNames.indexOf("test"),
    });
    slider.max = String(Math.max(epochs.length - 1, 0));
    timeline.set(model.get("warnings"), epochs);
    timeline.show(model.get("shown_warnings_epoch"));
    thumbnails = new Map();
    renderLegend();
    const present = data.splitNames.map((_, code) => data.splits.includes(code));
    toolbar.setSplits(data.splitNames, present, model.get("hidden_splits"));
    decodePredictions();
    decodeRelabels();
    restyle();
  }

  // The epoch shown's predicted class and confidence of every sample, for the tooltip.
  function decodePredictions() {
    data.predicted = asTyped(model.get("_predicted"), Uint16Array);
    data.confidence = asTyped(model.get("_confidence"), Uint8Array);
    data.predictionsEpoch = model.get("predictions_epoch");
  }

  function decodeRelabels() {
    data.relabels = new Map(model.get("relabelled").map(([index, label]) => [index, label]));
  }

  // Which dots are shown, greyed (outside the query's matches) or hidden (by their split).
  function restyle() {
    applyStyles(model.get("highlighting"), asTyped(model.get("_highlighted"), Uint32Array), model.get("query_text"));
  }

  function applyStyles(highlighting, matches, text) {
    const hiddenCodes = new Set(model.get("hidden_splits").map((name) => data.splitNames.indexOf(name)));
    states = new Uint8Array(data.n).fill(highlighting ? DOT_STATE.dimmed : DOT_STATE.shown);
    for (const i of matches) if (i < data.n) states[i] = DOT_STATE.shown;
    if (hiddenCodes.size)
      for (let i = 0; i < data.n; i++) if (hiddenCodes.has(data.splits[i])) states[i] = DOT_STATE.hidden;
    renderer.setStates(states);
    toolbar.setQuery(text, highlighting ? matches.length : null);
  }

  function showMisplaced() {
    const on = model.get("show_misplaced");
    const ready = model.get("misplaced_epoch") === data.epochs[current];
    toolbar.setMisplaced(on, on && !ready ? "finding…" : "");
    draw();
  }

  function showSample() {
    samplePanel.show(model.get("inspected_detail"), { classes: data.classes, colour, shownIndex: current });
  }

  // Show sample `index`'s panel and trail (-1: none), centring the view on it if asked.
  function inspect(index, { centre = false } = {}) {
    model.set("inspected", index);
    model.save_changes();
    if (!centre || index < 0 || !shown || !Number.isFinite(shown[2 * index])) return draw();
    const [x0, x1, y0, y1] = view;
    const [x, y] = [shown[2 * index], shown[2 * index + 1]];
    setView([x - (x1 - x0) / 2, x + (x1 - x0) / 2, y - (y1 - y0) / 2, y + (y1 - y0) / 2], { now: true });
  }

  function decodeBackground() {
    const [w, h] = model.get("background_size");
    const image = w && h ? imageCanvas(asTyped(model.get("background"), Uint8Array), w, h) : null;
    renderer.setBackground(image ? { image, bounds: model.get("background_bounds") } : null);
    stats.backgroundAt = Date.now();
    stats.backgrounds++;
  }

  function decodeFeedback() {
    data.selection = asTyped(model.get("_selection"), Uint32Array);
    data.recommended = asTyped(model.get("_recommended"), Uint32Array);
    data.accepted = asTyped(model.get("_accepted"), Uint32Array);
    data.rejected = asTyped(model.get("_rejected"), Uint32Array);
    panel.setSelection(data.selection);
    panel.setCards(model.get("cards"), asTyped(model.get("card_thumbnails"), Uint8Array), data.classes);
    panel.setImportance(model.get("importance"));
    panel.setMessage(model.get("message"));
  }

  // The indices of a uint32 buffer whose dots are not hidden.
  function visible(buffer) {
    return asTyped(buffer, Uint32Array).filter((i) => states[i] !== DOT_STATE.hidden);
  }

  function colour(labelIndex) {
    return labelIndex < 0 ? UNLABELLED : data.palette[labelIndex % data.palette.length];
  }

  function renderLegend() {
    legend.replaceChildren();
    data.classes.forEach((name, i) => {
      const item = element("span", "nbdebug-legend-item", legend);
      const swatch = element("span", "nbdebug-swatch", item);
      swatch.style.background = colour(i);
      element("span", "", item).textContent = name; // class names are data: text, never HTML
    });
  }

  // The panel of the warnings at `epoch` (-1: closed), and the kernel told which.
  function showWarnings(epoch) {
    timeline.show(epoch);
    if (model.get("shown_warnings_epoch") !== epoch) {
      model.set("shown_warnings_epoch", epoch);
      model.save_changes();
    }
  }

  function showStatus() {
    const loading = waiting ? `loading epoch ${data.epochs[waiting.index]}…` : "";
    status.textContent = [model.get("status"), loading].filter(Boolean).join(" · ");
  }

  function resize() {
    width = Math.max(stage.clientWidth || 600, 200);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${HEIGHT}px`;
    renderer.resize(width, HEIGHT, window.devicePixelRatio || 1);
    transform = makeTransform(view, width, HEIGHT);
  }

  function draw() {
    if (!transform) return;
    renderer.draw(transform, shown);
    if (!shown) return;
    drawOutlines(ctx, transform, shown, data.rejected, "#bdbdbd", 4.5, 1.5);
    drawOutlines(ctx, transform, shown, data.accepted, "#2e7d32", 4.5, 2);
    drawOutlines(ctx, transform, shown, data.recommended, "#111111", 4.5, 1.5);
    drawOutlines(ctx, transform, shown, data.selection, "#d81b60", 3.8, 1.2);
    if (model.get("show_misplaced") && model.get("misplaced_epoch") === data.epochs[current]) {
      drawOutlines(ctx, transform, shown, visible(model.get("_misplaced_territory")), "#ef6c00", 3.4, 1.2);
      drawOutlines(ctx, transform, shown, visible(model.get("_misplaced_neighbours")), "#6a1b9a", 5.2, 1);
    }
    // A relabelled dot is ringed in the colour of the label it should have.
    for (const [index, relabel] of data.relabels) {
      if (states[index] !== DOT_STATE.hidden) drawOutlines(ctx, transform, shown, [index], colour(relabel), 5.5, 2);
    }
    const detail = model.get("inspected_detail");
    if (detail?.trail) drawTrail(ctx, transform, detail.trail, current, colour(detail.label));
    if (highlighted >= 0) drawOutlines(ctx, transform, shown, [highlighted], "#000000", 7, 2.5);
    if (lassoPath) {
      ctx.beginPath();
      for (const [k, [px, py]] of lassoPath.entries()) {
        if (k) ctx.lineTo(px, py);
        else ctx.moveTo(px, py);
      }
      ctx.closePath();
      ctx.fillStyle = "rgba(216, 27, 96, 0.08)";
      ctx.fill();
      ctx.strokeStyle = "#d81b60";
      ctx.lineWidth = 1;
      ctx.stroke();
    }
    stats.framesDrawn++;
    if (stats.highlightPending) {
      stats.highlightPending = false;
      stats.highlightedAt = performance.now();
    }
    if (!stats.firstFrameAt) stats.firstFrameAt = Date.now();
    if (stats.drawTimes) stats.drawTimes.push(performance.now()); // only while a benchmark asks
  }

  function showLabel(index) {
    const metrics = data.metrics[index] || {};
    const parts = Object.entries(metrics).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`);
    label.textContent = [`epoch ${data.epochs[index]}`, ...parts].join(" · ");
    const quality = (model.get("frame_quality") || [])[index] || {};
    trust.textContent = ["NPR", "PPR"]
      .filter((name) => name in quality)
      .map((name) => {
        const error = quality[`${name}_error`] || 0; // 0 where every sample was measured
        return `${name} ${quality[name].toFixed(2)}${error >= 0.005 ? `±${error.toFixed(2)}` : ""}`;
      })
      .join(" · ");
  }

  // Show frame `index`, moving the dots there over TWEEN_MS (when `tween`), and tell the
  // kernel (when `settle`). A frame not here yet is asked for; the move waits for it.
  function goTo(index, { tween = true, settle = true } = {}) {
    cancelAnimationFrame(animation);
    current = index;
    slider.value = String(index);
    showLabel(index);
    // Only what depends on the epoch and is shown: playback calls this every step.
    if (model.get("inspected") >= 0) showSample();
    if (model.get("show_misplaced")) showMisplaced();
    if (settle) settleOn(index);
    frames.focusOn(index);
    const target = frames.get(index);
    waiting = target ? null : { index, tween };
    showStatus();
    if (!target) return;
    if (!shown) shown = new Float32Array(target.length);
    if (!snapshot) snapshot = new Float32Array(target.length);
    snapshot.set(shown);
    const from = tween && stats.framesDrawn ? snapshot : target;
    const start = performance.now();
    const step = (now) => {
      stats.animationFrames++;
      const t = Math.min((now - start) / TWEEN_MS, 1);
      blend(from, target, from === target ? 1 : t, shown);
      draw();
      if (t < 1 && from !== target) {
        animation = requestAnimationFrame(step);
      } else if (playing) {
        if (index + 1 < data.epochs.length) goTo(index + 1, { settle: false });
        else stop();
      }
    };
    animation = requestAnimationFrame(step);
  }

  function arrived() {
    stats.framesHeld = frames.loaded();
    if (waiting && frames.get(waiting.index)) goTo(waiting.index, { tween: waiting.tween, settle: false });
  }

  function settleOn(index) {
    const epoch = data.epochs[index];
    if (epoch !== undefined && model.get("epoch") !== epoch) {
      model.set("epoch", epoch);
      model.save_changes();
    }
  }

  // One epoch back or forward, settled.
  function step(delta) {
    if (playing) stop();
    const index = Math.max(0, Math.min(data.epochs.length - 1, current + delta));
    if (index !== current) goTo(index, { tween: false });
  }

  function stop() {
    playing = false;
    play.textContent = "▶ play";
    settleOn(Number(slider.value));
  }

  function select(indices) {
    model.set("_selection", new DataView(Uint32Array.from(indices).buffer));
    model.save_changes();
    decodeFeedback();
    draw();
  }

  const sendView = debounce(() => {
    sentView = JSON.stringify(view);
    model.set("view", view);
    model.save_changes();
  }, 250);

  function setView(next, { now = false } = {}) {
    view = next;
    transform = makeTransform(view, width, HEIGHT);
    draw();
    if (now) {
      sentView = JSON.stringify(view);
      model.set("view", view);
      model.save_changes();
    } else {
      sendView();
    }
  }

  play.addEventListener("click", () => {
    if (playing) return stop();
    playing = true;
    play.textContent = "❚❚ pause";
    goTo(current + 1 < data.epochs.length ? current + 1 : 0, { settle: false });
  });
  slider.addEventListener("input", () => {
    if (playing) stop();
    goTo(Number(slider.value), { tween: false, settle: false });
  });
  slider.addEventListener("change", () => settleOn(Number(slider.value)));
  reset.addEventListener("click", () => setView(data.bounds.slice(), { now: true }));

  attachNavigation(canvas, {
    onZoom: (factor, px, py) => setView(zoomView(transform, factor, px, py, data.bounds)),
    onPan: (dx, dy) => {
      view = panView(transform, dx, dy);
      transform = makeTransform(view, width, HEIGHT);
      draw();
    },
    onPanEnd: () => setView(view, { now: true }),
    onReset: () => {
      // The clicks of a double click do not select.
      if (performance.now() - lastClickAt < DOUBLE_CLICK_MS) select(beforeClicks);
      setView(data.bounds.slice(), { now: true });
    },
  });

  attachLasso(canvas, {
    box: toolbar.box,
    onDraw: (path) => {
      lassoPath = path;
      draw();
    },
    onDone: (path) => {
      lassoPath = null;
      if (!shown) return draw();
      // The selection is decided in data coordinates, so it is right at any zoom.
      const polygon = path.map(([px, py]) => transform.toData(px, py));
      const inside = [];
      for (let i = 0; i < data.n; i++) {
        const x = shown[2 * i];
        const y = shown[2 * i + 1];
        if (states[i] === DOT_STATE.hidden || !Number.isFinite(x) || !Number.isFinite(y)) continue;
        if (insidePolygon(x, y, polygon)) inside.push(i);
      }
      select(inside);
    },
    onClick: (px, py) => {
      const now = performance.now();
      if (now - lastClickAt >= DOUBLE_CLICK_MS) beforeClicks = Array.from(data.selection);
      lastClickAt = now;
      const hit = shown ? nearest(transform, shown, data.n, px, py, 6, states) : -1;
      select(hit >= 0 ? [hit] : []);
      if (hit >= 0) inspect(hit, { centre: true });
    },
  });

  // The tooltip of sample `index` at pixel (px, py): what the page knows at once, and the
  // thumbnail when the kernel has sent it. Names are data: text, never HTML.
  function showTooltip(index, px, py) {
    hovered = index;
    hoveredAt = [px, py];
    const name = (k) => (k >= 0 && k < data.classes.length ? data.classes[k] : "none");
    const lines = [`#${index} ${data.splitNames[data.splits[index]] || ""} · label ${name(data.labels[index])}`];
    if (data.relabels.has(index)) lines.push(`relabelled ${name(data.relabels.get(index))}`);
    if (data.predicted.length === data.n) {
      const at = data.predictionsEpoch === data.epochs[current] ? "" : ` (epoch ${data.predictionsEpoch})`;
      lines.push(
        `predicted ${name(data.predicted[index])} · confidence ${(data.confidence[index] / 255).toFixed(2)}${at}`,
      );
    }
    tooltip.replaceChildren();
    const image = thumbnails.get(index);
    if (image) tooltip.appendChild(image);
    const text = element("div", "nbdebug-tooltip-text", tooltip);
    for (const line of lines) element("div", "", text).textContent = line;
    tooltip.style.left = `${px + 12}px`;
    tooltip.style.top = `${py + 12}px`;
    tooltip.hidden = false;
    if (!thumbnails.has(index)) {
      thumbnails.set(index, null); // asked once
      model.send({ type: "thumbnail", index });
    }
  }

  canvas.addEventListener("mousemove", (event) => {
    if (lassoPath || !shown) return;
    const rect = canvas.getBoundingClientRect();
    const px = event.clientX - rect.left - canvas.clientLeft;
    const py = event.clientY - rect.top - canvas.clientTop;
    const hit = nearest(transform, shown, data.n, px, py, 6, states);
    if (hit < 0) {
      tooltip.hidden = true;
      hovered = -1;
      return;
    }
    showTooltip(hit, px, py);
  });
  canvas.addEventListener("mouseleave", () => {
    tooltip.hidden = true;
    hovered = -1;
  });

  model.on("msg:custom", (message, buffers) => {
    if (!message) return;
    if (message.type === "frames" && Array.isArray(message.indices)) frames.receive(message.indices, buffers);
    if (message.type === "frame_part") frames.receivePart(message.index, message.first, buffers[0]);
    if (message.type === "thumbnail" && Number.isInteger(message.index) && thumbnails.has(message.index)) {
      const shape = message.shape;
      const valid = Array.isArray(shape) && shape.length === 3 && buffers[0];
      thumbnails.set(message.index, valid ? thumbnail(asTyped(buffers[0], Uint8Array), 0, shape, 48) : null);
      if (hovered === message.index && !tooltip.hidden) showTooltip(hovered, ...hoveredAt);
    }
  });
  model.on("change:epoch", () => {
    const index = data.epochs.indexOf(model.get("epoch"));
    if (index >= 0 && index !== current) goTo(index, { settle: false });
  });
  model.on("change:view", () => {
    const next = model.get("view");
    if (JSON.stringify(next) === sentView) return; // our own view coming back
    sentView = JSON.stringify(next);
    view = next;
    transform = makeTransform(view, width, HEIGHT);
    draw();
  });
  for (const name of ["labels", "splits", "split_names", "bounds", "classes", "palette", "epochs", "n_samples"]) {
    model.on(`change:${name}`, () => {
      decode();
      decodeFeedback();
      goTo(Math.max(data.epochs.indexOf(model.get("epoch")), 0), { tween: false, settle: false });
    });
  }
  model.on("change:epoch_metrics", () => {
    data.metrics = model.get("epoch_metrics");
    showLabel(current);
  });
  model.on("change:frame_quality", () => showLabel(current));
  model.on("change:warnings", () => {
    timeline.set(model.get("warnings"), data.epochs);
    timeline.show(model.get("shown_warnings_epoch"));
  });
  model.on("change:shown_warnings_epoch", () => timeline.show(model.get("shown_warnings_epoch")));
  model.on("change:status", showStatus);
  // Traits that change together arrive in one message: decoded once, after its last change.
  const onceAfter = (fn) => {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      queueMicrotask(() => {
        queued = false;
        fn();
        draw();
      });
    };
  };
  const backgroundChanged = onceAfter(decodeBackground);
  for (const name of ["background", "background_size", "background_bounds"])
    model.on(`change:${name}`, backgroundChanged);
  const feedbackChanged = onceAfter(decodeFeedback);
  for (const name of ["_selection", "_recommended", "_accepted", "_rejected", "cards", "importance", "message"]) {
    model.on(`change:${name}`, feedbackChanged);
  }
  const restyled = onceAfter(() => {
    restyle();
    stats.highlightPending = true;
  });
  for (const name of ["highlighting", "_highlighted", "query_text", "hidden_splits"])
    model.on(`change:${name}`, restyled);
  model.on("change:_highlighted", () => {
    stats.highlightArrivedAt = performance.now();
  });
  model.on("change:inspected_detail", () => {
    showSample();
    draw();
  });
  model.on("change:predictions_epoch", decodePredictions);
  model.on("change:relabelled", () => {
    decodeRelabels();
    draw();
  });
  const misplacedChanged = onceAfter(showMisplaced);
  for (const name of ["show_misplaced", "misplaced_epoch", "_misplaced_territory", "_misplaced_neighbours"])
    model.on(`change:${name}`, misplacedChanged);

  root.addEventListener("keydown", (event) => {
    // Typing in the query bar, a menu or any field is never a shortcut.
    if (["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(event.target.tagName) || event.ctrlKey || event.metaKey)
      return;
    const keys = {
      a: () => panel.current() >= 0 && onFeedback([panel.current()], []),
      r: () => panel.current() >= 0 && onFeedback([], [panel.current()]),
      j: () => panel.move(1),
      k: () => panel.move(-1),
      ArrowDown: () => panel.move(1),
      ArrowUp: () => panel.move(-1),
      " ": () => play.click(),
      ArrowLeft: () => step(-1),
      ArrowRight: () => step(1),
    };
    const action = keys[event.key];
    if (!action) return;
    event.preventDefault();
    event.stopPropagation();
    action();
  });

  const observer = new ResizeObserver(() => {
    resize();
    draw();
  });
  observer.observe(stage);

  decode();
  decodeFeedback();
  decodeBackground();
  play.textContent = "▶ play";
  resize();
  draw();
  goTo(Math.max(data.epochs.indexOf(model.get("epoch")), 0), { tween: false, settle: false });

  return () => {
    cancelAnimationFrame(animation);
    observer.disconnect();
  };
}

const STYLE = `
.nbdebug-landscape { font: 13px system-ui, sans-serif; color: #333; display: flex; gap: 12px; max-width: 1100px; }
.nbdebug-main { flex: 1 1 auto; min-width: 300px; }
.nbdebug-stage { position: relative; }
.nbdebug-canvas { display: block; border: 1px solid #ddd; border-radius: 4px; cursor: crosshair; touch-action: none; }
.nbdebug-tooltip { position: absolute; pointer-events: none; background: rgba(255,255,255,0.95); z-index: 1;
  border: 1px solid #bbb; border-radius: 3px; padding: 2px 6px; white-space: nowrap; font-size: 12px; }
.nbdebug-controls { display: flex; align-items: center; gap: 10px; margin-top: 6px; }
.nbdebug-timeline { flex: 1; min-width: 130px; position: relative; }
.nbdebug-slider { display: block; width: 100%; margin: 0; }
.nbdebug-warning-marks { position: relative; height: 10px; }
.nbdebug-warning-mark { position: absolute; top: 0; width: 8px; height: 10px; margin-left: -4px; padding: 0;
  border: 0; border-radius: 2px; background: #ef6c00; cursor: pointer; }
.nbdebug-warning-mark[data-severity="error"] { background: #c62828; }
.nbdebug-warnings { border: 1px solid #ddd; border-radius: 4px; padding: 6px; margin-top: 6px; font-size: 12px; }
.nbdebug-warnings-header { display: flex; justify-content: space-between; font-weight: 600; }
.nbdebug-warnings-close { border: 0; background: none; cursor: pointer; font-size: 14px; }
.nbdebug-warning { border-left: 3px solid #ef6c00; padding: 2px 6px; margin-top: 6px; }
.nbdebug-warning[data-severity="error"] { border-left-color: #c62828; }
.nbdebug-warning-title { display: flex; gap: 8px; align-items: baseline; }
.nbdebug-warning-severity { text-transform: uppercase; font-size: 10px; color: #ef6c00; }
.nbdebug-warning[data-severity="error"] .nbdebug-warning-severity { color: #c62828; }
.nbdebug-warning-name { font-weight: 600; }
.nbdebug-warning-code, .nbdebug-warning-fix-label { color: #777; font-size: 11px; }
.nbdebug-warning-explanation { margin: 2px 0; }
.nbdebug-warning-fix { margin: 2px 0 0; padding: 4px 6px; background: #f6f6f6; border-radius: 3px; overflow-x: auto;
  font-size: 11px; }
.nbdebug-trust { color: #777; font-size: 12px; cursor: help; }
.nbdebug-status { color: #777; font-size: 12px; min-height: 1em; }
.nbdebug-play { min-width: 80px; }
.nbdebug-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; margin-top: 6px; }
.nbdebug-legend-item { display: inline-flex; align-items: center; gap: 4px; }
.nbdebug-swatch { width: 10px; height: 10px; border-radius: 50%; display: inline-block; }
.nbdebug-landscape:focus { outline: 2px solid #90caf9; outline-offset: 2px; }
.nbdebug-side { flex: 0 0 290px; display: flex; flex-direction: column; gap: 8px; }
.nbdebug-panel { display: flex; flex-direction: column; gap: 6px; }
.nbdebug-panel-title { font-weight: 600; }
.nbdebug-selection { display: flex; gap: 6px; align-items: center; }
.nbdebug-selection span { flex: 1; }
.nbdebug-recommendations, .nbdebug-accepted { margin: 0; padding: 0; list-style: none; max-height: 300px;
  overflow-y: auto; border: 1px solid #eee; border-radius: 4px; }
.nbdebug-accepted:empty { display: none; }
.nbdebug-accepted-title { font-size: 12px; color: #2e7d32; }
.nbdebug-card { display: flex; align-items: center; gap: 6px; padding: 3px 4px; border-bottom: 1px solid #f2f2f2; }
.nbdebug-card:hover { background: #f6f6f6; }
.nbdebug-card.nbdebug-current { background: #e3f2fd; }
.nbdebug-card-text { flex: 1; font-size: 12px; cursor: pointer; }
.nbdebug-card-score { color: #888; }
.nbdebug-relabel { font-size: 11px; max-width: 110px; }
.nbdebug-thumb { image-rendering: pixelated; border: 1px solid #ddd; }
.nbdebug-importance { font-size: 11px; color: #666; }
.nbdebug-importance-row { display: flex; align-items: center; gap: 4px; }
.nbdebug-importance-name { flex: 0 0 110px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.nbdebug-importance-track { flex: 1; height: 7px; background: #f2f2f2; }
.nbdebug-bar { display: block; height: 100%; background: #1e88e5; }
.nbdebug-bar-negative { background: #e53935; }
.nbdebug-importance-value { flex: 0 0 34px; text-align: right; }
.nbdebug-sample { border: 1px solid #ddd; border-radius: 4px; padding: 6px; font-size: 12px; display: flex;
  flex-direction: column; gap: 4px; }
.nbdebug-sample-title { font-weight: 600; display: flex; justify-content: space-between; }
.nbdebug-sample-note, .nbdebug-sample-attributes { color: #777; font-size: 11px; }
.nbdebug-sample-actions { display: flex; gap: 6px; align-items: center; }
.nbdebug-toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 12px; margin-bottom: 6px; font-size: 12px; }
.nbdebug-query { display: flex; gap: 6px; align-items: center; flex: 1 1 260px; }
.nbdebug-query-input { flex: 1; min-width: 120px; font: inherit; }
.nbdebug-query-count { color: #555; white-space: nowrap; }
.nbdebug-splits { display: inline-flex; gap: 8px; }
.nbdebug-tooltip-text { display: inline-block; vertical-align: top; }
.nbdebug-tooltip canvas { margin-right: 6px; vertical-align: top; }
.nbdebug-message { font-size: 12px; color: #b71c1c; }
`;

function render({ model, el }) {
  if (!document.getElementById("nbdebug-style")) {
    const style = element("style", "", document.head);
    style.id = "nbdebug-style";
    style.textContent = STYLE;
  }
  return createLandscape(model, el);
}

export default { render };
