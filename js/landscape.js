// The landscape widget: every sample as a dot at each recorded epoch over the class
// territories, a timeline, lasso selection and the samples-of-interest panel.
// Positions of all epochs arrive once as a float32 buffer; animation runs here and the
// kernel hears only the epoch the timeline settles on, the lasso selection and feedback.

import { asTyped, element } from "./lib/dom.js";
import { attachLasso, insidePolygon } from "./lib/lasso.js";
import { createPanel } from "./lib/panel.js";
import { dotGroups, drawDots, drawOutlines, framePositions, imageCanvas, makeTransform, nearest } from "./lib/view.js";

const HEIGHT = 440;
const TWEEN_MS = 350;

function createLandscape(model, el) {
  const root = element("div", "nbdebug-landscape", el);
  const main = element("div", "nbdebug-main", root);
  const stage = element("div", "nbdebug-stage", main);
  const canvas = element("canvas", "nbdebug-canvas", stage);
  const tooltip = element("div", "nbdebug-tooltip", stage);
  const controls = element("div", "nbdebug-controls", main);
  const play = element("button", "nbdebug-play", controls);
  const slider = element("input", "nbdebug-slider", controls);
  const label = element("span", "nbdebug-epoch", controls);
  const trust = element("span", "nbdebug-trust", controls);
  trust.title =
    "How far to trust this frame (training samples): NPR, the share of each sample's 15 " +
    "nearest neighbours kept on the canvas; PPR, the share of predictions the painted territories preserve.";
  const legend = element("div", "nbdebug-legend", main);
  slider.type = "range";
  slider.min = "0";
  slider.step = "1";
  slider.setAttribute("aria-label", "epoch");
  play.type = "button";
  tooltip.hidden = true;

  const panel = createPanel(root, {
    onFeedback: (accept, reject) => {
      if (accept.length || reject.length) model.send({ type: "feedback", accept, reject });
    },
    onNewIntention: () => model.send({ type: "new_intention" }),
    onHover: (index) => {
      highlighted = index;
      draw();
    },
  });

  const ctx = canvas.getContext("2d");
  let data = null;
  let xy = new Float32Array(0);
  let frame = 0; // index of the epoch shown, fractional while tweening
  let animation = null;
  let playing = false;
  let width = 600;
  let transform = null;
  let background = null; // {image, bounds}
  let lassoPath = null;
  let highlighted = -1;

  function decode() {
    const epochs = model.get("epochs");
    data = {
      epochs,
      n: model.get("n_samples"),
      positions: asTyped(model.get("positions"), Float32Array),
      labels: asTyped(model.get("labels"), Int16Array),
      splits: asTyped(model.get("splits"), Uint8Array),
      bounds: model.get("bounds"),
      classes: model.get("classes"),
      palette: model.get("palette"),
      metrics: model.get("epoch_metrics"),
      quality: model.get("frame_quality"),
    };
    xy = new Float32Array(2 * data.n);
    data.groups = dotGroups(data, (i) => colour(data.labels[i]));
    slider.max = String(Math.max(epochs.length - 1, 0));
    renderLegend();
  }

  function decodeBackground() {
    const [w, h] = model.get("background_size");
    background = w && h ? { image: imageCanvas(asTyped(model.get("background"), Uint8Array), w, h) } : null;
  }

  function decodeFeedback() {
    data.selection = asTyped(model.get("_selection"), Uint32Array);
    data.recommended = asTyped(model.get("_recommended"), Uint32Array);
    data.accepted = asTyped(model.get("_accepted"), Uint32Array);
    data.rejected = asTyped(model.get("_rejected"), Uint32Array);
    panel.setSelection(data.selection);
    panel.setCards(model.get("cards"), asTyped(model.get("card_thumbnails"), Uint8Array), model.get("thumbnail_shape"));
    panel.setImportance(model.get("importance"));
    panel.setMessage(model.get("message"));
  }

  function colour(labelIndex) {
    if (labelIndex < 0) return "#9e9e9e";
    return data.palette[labelIndex % data.palette.length];
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

  function resize() {
    width = Math.max(stage.clientWidth || 600, 200);
    const ratio = window.devicePixelRatio || 1;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${HEIGHT}px`;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(HEIGHT * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    transform = makeTransform(data.bounds, width, HEIGHT);
  }

  function draw() {
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, HEIGHT);
    if (!data || data.epochs.length === 0) return;
    if (background) {
      // The background image spans the canvas bounds; row 0 is the top (largest y).
      const [x0, x1, y0, y1] = data.bounds;
      const [left, top] = transform.toPixel(x0, y1);
      const [right, bottom] = transform.toPixel(x1, y0);
      ctx.imageSmoothingEnabled = true;
      ctx.globalAlpha = 0.6; // pale territories, so dots of the same class stay visible
      ctx.drawImage(background.image, left, top, right - left, bottom - top);
      ctx.globalAlpha = 1;
    }
    framePositions(data.positions, data.n, data.epochs.length, frame, xy);
    drawDots(ctx, transform, xy, data.groups, data.n);
    drawOutlines(ctx, transform, xy, data.rejected, "#bdbdbd", 4.5, 1.5);
    drawOutlines(ctx, transform, xy, data.accepted, "#2e7d32", 4.5, 2);
    drawOutlines(ctx, transform, xy, data.recommended, "#111111", 4.5, 1.5);
    drawOutlines(ctx, transform, xy, data.selection, "#d81b60", 3.8, 1.2);
    if (highlighted >= 0) drawOutlines(ctx, transform, xy, [highlighted], "#000000", 7, 2.5);
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
  }

  function showLabel(index) {
    const metrics = data.metrics[index] || {};
    const parts = Object.entries(metrics).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`);
    label.textContent = [`epoch ${data.epochs[index]}`, ...parts].join(" · ");
    const quality = Object.entries(data.quality[index] || {});
    trust.textContent = quality.map(([k, v]) => `${k} ${Number(v).toFixed(2)}`).join(" · ");
  }

  function goTo(index, { tween = true, settle = true } = {}) {
    cancelAnimationFrame(animation);
    const from = frame;
    const start = performance.now();
    slider.value = String(index);
    showLabel(index);
    const step = (now) => {
      const t = tween ? Math.min((now - start) / TWEEN_MS, 1) : 1;
      frame = from + (index - from) * t;
      draw();
      if (t < 1) {
        animation = requestAnimationFrame(step);
      } else if (playing) {
        if (index + 1 < data.epochs.length) goTo(index + 1, { settle: false });
        else stop();
      }
    };
    animation = requestAnimationFrame(step);
    if (settle) settleOn(index);
  }

  function settleOn(index) {
    const epoch = data.epochs[index];
    if (epoch !== undefined && model.get("epoch") !== epoch) {
      model.set("epoch", epoch);
      model.save_changes();
    }
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

  play.addEventListener("click", () => {
    if (playing) return stop();
    playing = true;
    play.textContent = "❚❚ pause";
    const current = Number(slider.value);
    goTo(current + 1 < data.epochs.length ? current + 1 : 0, { settle: false });
  });
  slider.addEventListener("input", () => {
    if (playing) stop();
    goTo(Number(slider.value), { tween: false, settle: false });
  });
  slider.addEventListener("change", () => settleOn(Number(slider.value)));

  attachLasso(canvas, {
    onDraw: (path) => {
      lassoPath = path;
      draw();
    },
    onDone: (path) => {
      lassoPath = null;
      const inside = [];
      for (let i = 0; i < data.n; i++) {
        const x = xy[2 * i];
        const y = xy[2 * i + 1];
        if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
        const [px, py] = transform.toPixel(x, y);
        if (insidePolygon(px, py, path)) inside.push(i);
      }
      select(inside);
    },
    onClick: (px, py) => {
      const hit = nearest(transform, xy, data.n, px, py);
      select(hit >= 0 ? [hit] : []);
    },
  });

  canvas.addEventListener("mousemove", (event) => {
    if (lassoPath) return;
    const rect = canvas.getBoundingClientRect();
    const px = event.clientX - rect.left - canvas.clientLeft;
    const py = event.clientY - rect.top - canvas.clientTop;
    const hit = nearest(transform, xy, data.n, px, py);
    if (hit < 0) {
      tooltip.hidden = true;
      return;
    }
    const labelIndex = data.labels[hit];
    const split = ["train", "test", "unlabeled"][data.splits[hit]] || "";
    const given = labelIndex >= 0 ? ` · label ${data.classes[labelIndex]}` : "";
    tooltip.textContent = `#${hit} ${split}${given}`;
    tooltip.style.left = `${px + 12}px`;
    tooltip.style.top = `${py + 12}px`;
    tooltip.hidden = false;
  });
  canvas.addEventListener("mouseleave", () => {
    tooltip.hidden = true;
  });

  model.on("change:epoch", () => {
    const index = data.epochs.indexOf(model.get("epoch"));
    if (index >= 0 && index !== Number(slider.value)) goTo(index, { settle: false });
  });
  for (const name of [
    "positions",
    "labels",
    "splits",
    "bounds",
    "classes",
    "palette",
    "epochs",
    "epoch_metrics",
    "frame_quality",
  ]) {
    model.on(`change:${name}`, () => {
      decode();
      decodeFeedback();
      resize();
      draw();
    });
  }
  for (const name of ["background", "background_size"]) {
    model.on(`change:${name}`, () => {
      decodeBackground();
      draw();
    });
  }
  for (const name of ["_selection", "_recommended", "_accepted", "_rejected", "cards", "importance", "message"]) {
    model.on(`change:${name}`, () => {
      decodeFeedback();
      draw();
    });
  }

  const observer = new ResizeObserver(() => {
    resize();
    draw();
  });
  observer.observe(stage);

  decode();
  decodeFeedback();
  decodeBackground();
  play.textContent = "▶ play";
  const initial = Math.max(data.epochs.indexOf(model.get("epoch")), 0);
  frame = initial;
  slider.value = String(initial);
  showLabel(initial);
  resize();
  draw();

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
.nbdebug-tooltip { position: absolute; pointer-events: none; background: rgba(255,255,255,0.95);
  border: 1px solid #bbb; border-radius: 3px; padding: 2px 6px; white-space: nowrap; }
.nbdebug-controls { display: flex; align-items: center; gap: 10px; margin-top: 6px; }
.nbdebug-slider { flex: 1; }
.nbdebug-trust { color: #777; font-size: 12px; cursor: help; }
.nbdebug-play { min-width: 80px; }
.nbdebug-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; margin-top: 6px; }
.nbdebug-legend-item { display: inline-flex; align-items: center; gap: 4px; }
.nbdebug-swatch { width: 10px; height: 10px; border-radius: 50%; display: inline-block; }
.nbdebug-panel { flex: 0 0 280px; display: flex; flex-direction: column; gap: 6px; }
.nbdebug-panel-title { font-weight: 600; }
.nbdebug-selection { display: flex; gap: 6px; align-items: center; }
.nbdebug-selection span { flex: 1; }
.nbdebug-recommendations { margin: 0; padding: 0; list-style: none; max-height: 380px; overflow-y: auto;
  border: 1px solid #eee; border-radius: 4px; }
.nbdebug-card { display: flex; align-items: center; gap: 6px; padding: 3px 4px; border-bottom: 1px solid #f2f2f2; }
.nbdebug-card:hover { background: #f6f6f6; }
.nbdebug-card-text { flex: 1; font-size: 12px; }
.nbdebug-thumb { image-rendering: pixelated; border: 1px solid #ddd; }
.nbdebug-importance { font-size: 11px; color: #666; }
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
