// The side panel: recommended samples to accept or reject, and feedback on the lasso selection.

import { element } from "./dom.js";

// A uint8 thumbnail (h x w, grey, or h x w x 3|4) drawn into a small canvas.
export function thumbnail(bytes, offset, shape, size = 40) {
  const [h, w, c] = shape;
  const canvas = element("canvas", "nbdebug-thumb");
  canvas.width = w;
  canvas.height = h;
  canvas.style.width = `${size}px`;
  canvas.style.height = `${Math.round((size * h) / w)}px`;
  const image = new ImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) image.data[4 * p + k] = bytes[offset + p * c + (c >= 3 ? k : 0)];
    image.data[4 * p + 3] = c === 4 ? bytes[offset + p * c + 3] : 255;
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

export function createPanel(parent, { onFeedback, onNewIntention, onHover }) {
  const panel = element("div", "nbdebug-panel", parent);
  const title = element("div", "nbdebug-panel-title", panel);
  title.textContent = "Samples of interest";
  const selectionBar = element("div", "nbdebug-selection", panel);
  const selectionText = element("span", "", selectionBar);
  const acceptSelection = element("button", "nbdebug-accept-selection", selectionBar);
  const rejectSelection = element("button", "nbdebug-reject-selection", selectionBar);
  acceptSelection.textContent = "accept";
  rejectSelection.textContent = "reject";
  const list = element("ol", "nbdebug-recommendations", panel);
  const footer = element("div", "nbdebug-panel-footer", panel);
  const newIntention = element("button", "nbdebug-new-intention", footer);
  newIntention.textContent = "new intention";
  const importance = element("div", "nbdebug-importance", panel);
  const message = element("div", "nbdebug-message", panel);
  let selection = [];

  acceptSelection.addEventListener("click", () => onFeedback(selection, []));
  rejectSelection.addEventListener("click", () => onFeedback([], selection));
  newIntention.addEventListener("click", onNewIntention);

  return {
    element: panel,
    setSelection(indices) {
      selection = Array.from(indices);
      selectionText.textContent = `${selection.length} selected`;
      acceptSelection.disabled = rejectSelection.disabled = selection.length === 0;
    },
    // Each card's `thumbnail` is [offset, h, w, c] into `thumbs`, or null without one.
    setCards(cards, thumbs) {
      list.replaceChildren();
      for (const card of cards) {
        const item = element("li", "nbdebug-card", list);
        item.dataset.index = String(card.index);
        if (card.thumbnail) item.appendChild(thumbnail(thumbs, card.thumbnail[0], card.thumbnail.slice(1)));
        const text = element("span", "nbdebug-card-text", item);
        // Labels and class names come from data: text only, never HTML.
        text.textContent = `#${card.index} ${card.split} · label ${card.label} · predicted ${card.predicted}`;
        const accept = element("button", "nbdebug-accept", item);
        const reject = element("button", "nbdebug-reject", item);
        accept.textContent = "✓";
        reject.textContent = "✗";
        accept.title = "accept: this is what I am looking for";
        reject.title = "reject: not of interest";
        accept.addEventListener("click", () => onFeedback([card.index], []));
        reject.addEventListener("click", () => onFeedback([], [card.index]));
        item.addEventListener("mouseenter", () => onHover(card.index));
        item.addEventListener("mouseleave", () => onHover(-1));
      }
    },
    setMessage(text) {
      message.textContent = text || ""; // the kernel's explanation of a refused request
    },
    setImportance(weights) {
      const entries = Object.entries(weights || {}).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
      importance.textContent = entries.length
        ? "learned weights: " +
          entries
            .slice(0, 4)
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(", ")
        : "";
    },
  };
}
