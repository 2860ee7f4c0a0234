// The per-sample panel: one sample's label, its prediction and confidence at every epoch (a
// sparkline), its attributes, answer and relabel. Every string from the data is set as text.

import { element } from "./dom.js";
import { relabelSelect } from "./panel.js";

const SPARK_WIDTH = 240;
const SPARK_HEIGHT = 44;

// A sparkline of `confidence` per epoch, each point in the colour of the class predicted then;
// the epoch shown is ringed.
function sparkline(detail, colour, shownIndex) {
  const canvas = element("canvas", "nbdebug-sparkline");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = SPARK_WIDTH * ratio;
  canvas.height = SPARK_HEIGHT * ratio;
  canvas.style.width = `${SPARK_WIDTH}px`;
  canvas.style.height = `${SPARK_HEIGHT}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const count = detail.confidence.length;
  const x = (k) => 4 + ((SPARK_WIDTH - 8) * k) / Math.max(count - 1, 1);
  const y = (c) => SPARK_HEIGHT - 4 - (SPARK_HEIGHT - 8) * c;
  ctx.strokeStyle = "#999";
  ctx.lineWidth = 1;
  ctx.beginPath();
  detail.confidence.forEach((c, k) => {
    if (k) ctx.lineTo(x(k), y(c));
    else ctx.moveTo(x(k), y(c));
  });
  ctx.stroke();
  detail.confidence.forEach((c, k) => {
    ctx.beginPath();
    ctx.arc(x(k), y(c), k === shownIndex ? 4 : 2.5, 0, 2 * Math.PI);
    ctx.fillStyle = colour(detail.predicted[k]);
    ctx.fill();
    if (k === shownIndex) {
      ctx.strokeStyle = "#000";
      ctx.stroke();
    }
  });
  return canvas;
}

export function createSamplePanel(parent, { onClose, onFeedback, onRelabel }) {
  const box = element("div", "nbdebug-sample", parent);
  box.hidden = true;
  return {
    // `detail` from the kernel (nbdebug.inspect.sample_detail), or empty to hide the panel.
    show(detail, { classes, colour, shownIndex }) {
      box.replaceChildren();
      box.hidden = !detail || detail.index === undefined;
      if (box.hidden) return;
      const name = (k) => (k >= 0 && k < classes.length ? classes[k] : "none");
      const head = element("div", "nbdebug-sample-title", box);
      const relabelled = detail.relabel === null || detail.relabel === undefined ? "" : ` → ${name(detail.relabel)}`;
      head.textContent = `#${detail.index} ${detail.split} · label ${name(detail.label)}${relabelled}`;
      const close = element("button", "nbdebug-sample-close", head);
      close.textContent = "×";
      close.title = "close";
      close.addEventListener("click", onClose);
      const k = Math.max(0, Math.min(shownIndex, detail.predicted.length - 1));
      const now = element("div", "nbdebug-sample-now", box);
      now.textContent =
        `epoch ${detail.epochs[k]}: predicted ${name(detail.predicted[k])} (${detail.confidence[k].toFixed(2)})` +
        ` · right at ${detail.predicted.filter((p) => p === detail.label).length} of ${detail.predicted.length} epochs`;
      box.appendChild(sparkline(detail, colour, k));
      const legend = element("div", "nbdebug-sample-note", box);
      legend.textContent = "confidence per epoch, coloured by the class predicted";
      if (detail.attributes) {
        // The per-class indicators ("label=3", "predicted=5", ...) go under a fold.
        const entries = Object.entries(detail.attributes);
        const text = (list) => list.map(([key, value]) => `${key} ${Number(value).toFixed(2)}`).join(" · ");
        element("div", "nbdebug-sample-attributes", box).textContent = text(entries.filter(([k]) => !k.includes("=")));
        const perClass = entries.filter(([k]) => k.includes("="));
        if (perClass.length) {
          const fold = element("details", "nbdebug-sample-attributes", box);
          element("summary", "", fold).textContent = "per-class attributes";
          element("div", "", fold).textContent = text(perClass);
        }
      }
      const actions = element("div", "nbdebug-sample-actions", box);
      if (detail.answer !== undefined) {
        const answer = element("span", "nbdebug-sample-answer", actions);
        answer.textContent = ["rejected", "accepted"][detail.answer] || "not judged";
        const accept = element("button", "nbdebug-sample-accept", actions);
        const reject = element("button", "nbdebug-sample-reject", actions);
        accept.textContent = "accept";
        reject.textContent = "reject";
        accept.addEventListener("click", () => onFeedback([detail.index], []));
        reject.addEventListener("click", () => onFeedback([], [detail.index]));
      }
      if (detail.label >= 0) {
        const current = detail.relabel === null || detail.relabel === undefined ? null : classes[detail.relabel];
        actions.appendChild(relabelSelect(classes, current, (label) => onRelabel(detail.index, label)));
      }
    },
  };
}
