// The landscape widget: every sample as a dot at each recorded epoch, with a timeline.
// Positions of all epochs arrive once as a float32 buffer; animation runs here and the
// kernel hears only the epoch the timeline settles on.

const HEIGHT = 440;
const TWEEN_MS = 350;
const DOT_RADIUS = 2.6;

function asTyped(view, Type) {
  // anywidget hands binary traits over as DataView; view the same memory, copy only if misaligned.
  if (!view || view.byteLength === 0) return new Type(0);
  const offset = view.byteOffset;
  if (offset % Type.BYTES_PER_ELEMENT === 0) {
    return new Type(view.buffer, offset, view.byteLength / Type.BYTES_PER_ELEMENT);
  }
  return new Type(view.buffer.slice(offset, offset + view.byteLength));
}

function element(tag, className, parent) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (parent) parent.appendChild(el);
  return el;
}

function createLandscape(model, el) {
  const root = element("div", "nbdebug-landscape", el);
  const canvas = element("canvas", "nbdebug-canvas", root);
  const controls = element("div", "nbdebug-controls", root);
  const play = element("button", "nbdebug-play", controls);
  const slider = element("input", "nbdebug-slider", controls);
  const label = element("span", "nbdebug-epoch", controls);
  const legend = element("div", "nbdebug-legend", root);
  slider.type = "range";
  slider.min = "0";
  slider.step = "1";
  slider.setAttribute("aria-label", "epoch");
  play.type = "button";

  const ctx = canvas.getContext("2d");
  let data = null;        // decoded traits
  let frame = 0;          // index of the epoch shown (fractional while tweening)
  let animation = null;   // requestAnimationFrame id
  let playing = false;

  function decode() {
    const epochs = model.get("epochs");
    const n = model.get("n_samples");
    data = {
      epochs,
      n,
      positions: asTyped(model.get("positions"), Float32Array),
      labels: asTyped(model.get("labels"), Int16Array),
      splits: asTyped(model.get("splits"), Uint8Array),
      bounds: model.get("bounds"),
      classes: model.get("classes"),
      palette: model.get("palette"),
      metrics: model.get("epoch_metrics"),
    };
    slider.max = String(Math.max(epochs.length - 1, 0));
    renderLegend();
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
      const text = element("span", "", item);
      text.textContent = name; // class names are data: shown as text, never as HTML
    });
  }

  function resize() {
    const width = Math.max(root.clientWidth || 600, 200);
    const ratio = window.devicePixelRatio || 1;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${HEIGHT}px`;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(HEIGHT * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  }

  function draw() {
    const width = canvas.width / (window.devicePixelRatio || 1);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, HEIGHT);
    if (!data || data.epochs.length === 0) return;
    const [x0, x1, y0, y1] = data.bounds;
    const pad = 8;
    // One scale for both axes so the canvas does not distort distances.
    const scale = Math.min((width - 2 * pad) / (x1 - x0 || 1), (HEIGHT - 2 * pad) / (y1 - y0 || 1));
    const offX = (width - scale * (x1 - x0)) / 2;
    const offY = (HEIGHT - scale * (y1 - y0)) / 2;
    const lo = Math.floor(frame);
    const hi = Math.min(lo + 1, data.epochs.length - 1);
    const t = frame - lo;
    const a = lo * data.n * 2;
    const b = hi * data.n * 2;
    const pos = data.positions;
    const nColours = data.palette.length;
    // Batch dots by colour: one path per class, test samples drawn as rings.
    for (let c = -1; c < Math.min(data.classes.length, nColours); c++) {
      for (const ring of [false, true]) {
        ctx.beginPath();
        let any = false;
        for (let i = 0; i < data.n; i++) {
          let lab = data.labels[i];
          if (lab >= nColours) lab %= nColours;
          if (lab !== c || (data.splits[i] === 1) !== ring) continue;
          const x = pos[a + 2 * i] * (1 - t) + pos[b + 2 * i] * t;
          const y = pos[a + 2 * i + 1] * (1 - t) + pos[b + 2 * i + 1] * t;
          if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
          const px = offX + (x - x0) * scale;
          const py = HEIGHT - (offY + (y - y0) * scale);
          ctx.moveTo(px + DOT_RADIUS, py);
          ctx.arc(px, py, DOT_RADIUS, 0, 2 * Math.PI);
          any = true;
        }
        if (!any) continue;
        if (ring) {
          ctx.strokeStyle = colour(c);
          ctx.lineWidth = 1.2;
          ctx.stroke();
        } else {
          ctx.fillStyle = colour(c);
          ctx.globalAlpha = 0.85;
          ctx.fill();
          ctx.globalAlpha = 1;
        }
      }
    }
  }

  function showLabel(index) {
    const epoch = data.epochs[index];
    const metrics = data.metrics[index] || {};
    const parts = Object.entries(metrics).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`);
    label.textContent = [`epoch ${epoch}`, ...parts].join(" · ");
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

  model.on("change:epoch", () => {
    const index = data.epochs.indexOf(model.get("epoch"));
    if (index >= 0 && index !== Number(slider.value)) goTo(index, { settle: false });
  });
  const redecode = () => { decode(); draw(); };
  for (const name of ["positions", "labels", "splits", "bounds", "classes", "palette", "epochs"]) {
    model.on(`change:${name}`, redecode);
  }

  const observer = new ResizeObserver(() => { resize(); draw(); });
  observer.observe(root);

  decode();
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
.nbdebug-landscape { font: 13px system-ui, sans-serif; color: #333; max-width: 900px; }
.nbdebug-canvas { display: block; border: 1px solid #ddd; border-radius: 4px; }
.nbdebug-controls { display: flex; align-items: center; gap: 10px; margin-top: 6px; }
.nbdebug-slider { flex: 1; }
.nbdebug-play { min-width: 80px; }
.nbdebug-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; margin-top: 6px; }
.nbdebug-legend-item { display: inline-flex; align-items: center; gap: 4px; }
.nbdebug-swatch { width: 10px; height: 10px; border-radius: 50%; display: inline-block; }
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
