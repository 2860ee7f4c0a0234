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

// A <select> of the classes, for the label sample `index` should have (`current`: a class name
// or null); "given label" takes a relabel back.
export function relabelSelect(classes, current, onRelabel) {
  const select = element("select", "nbdebug-relabel");
  select.title = "the label this sample should have";
  const given = element("option", "", select);
  given.value = "";
  given.textContent = "given label";
  classes.forEach((name, k) => {
    const option = element("option", "", select);
    option.value = String(k);
    option.textContent = `relabel: ${name}`; // class names are data: text, never HTML
  });
  select.value = current === null || current === undefined ? "" : String(classes.indexOf(current));
  select.addEventListener("change", () => onRelabel(select.value === "" ? null : Number(select.value)));
  return select;
}

// The learned importance (ridge coefficients) as bars, largest magnitude first.
function renderImportance(container, weights) {
  container.replaceChildren();
  const entries = Object.entries(weights || {}).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  if (!entries.length) return;
  element("div", "nbdebug-importance-title", container).textContent = "what the learner weighs";
  const largest = Math.max(...entries.map(([, v]) => Math.abs(v)), 1e-9);
  for (const [name, value] of entries.slice(0, 8)) {
    const row = element("div", "nbdebug-importance-row", container);
    element("span", "nbdebug-importance-name", row).textContent = name;
    const track = element("span", "nbdebug-importance-track", row);
    const bar = element("span", value < 0 ? "nbdebug-bar nbdebug-bar-negative" : "nbdebug-bar", track);
    bar.style.width = `${Math.round((100 * Math.abs(value)) / largest)}%`;
    element("span", "nbdebug-importance-value", row).textContent = value.toFixed(2);
  }
}

export function createPanel(parent, { onFeedback, onNewIntention, onHover, onInspect, onRelabel }) {
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
  const acceptedTitle = element("div", "nbdebug-accepted-title", panel);
  const acceptedList = element("ol", "nbdebug-accepted", panel);
  const footer = element("div", "nbdebug-panel-footer", panel);
  const newIntention = element("button", "nbdebug-new-intention", footer);
  newIntention.textContent = "new intention";
  newIntention.title = "start afresh: forget this intention's answers (they stay saved)";
  const importance = element("div", "nbdebug-importance", panel);
  const message = element("div", "nbdebug-message", panel);
  let selection = [];
  let items = []; // the cards' list items, in keyboard order
  let current = -1; // the card the keyboard acts on

  acceptSelection.addEventListener("click", () => onFeedback(selection, []));
  rejectSelection.addEventListener("click", () => onFeedback([], selection));
  newIntention.addEventListener("click", onNewIntention);

  function makeCard(card, thumbs, classes, into) {
    const item = element("li", `nbdebug-card nbdebug-card-${card.kind}`, into);
    item.dataset.index = String(card.index);
    if (card.thumbnail) item.appendChild(thumbnail(thumbs, card.thumbnail[0], card.thumbnail.slice(1)));
    const text = element("span", "nbdebug-card-text", item);
    // Labels and class names come from data: text only, never HTML.
    const relabel = card.relabel === null || card.relabel === undefined ? "" : ` → ${card.relabel}`;
    text.textContent = `#${card.index} ${card.split} · label ${card.label}${relabel} · predicted ${card.predicted}`;
    const score = element("span", "nbdebug-card-score", text);
    score.textContent = ` · score ${Number(card.score).toFixed(2)}`;
    score.title = "the interest the learner ranks by";
    if (card.kind === "accepted") {
      item.appendChild(relabelSelect(classes, card.relabel, (label) => onRelabel(card.index, label)));
    } else {
      const accept = element("button", "nbdebug-accept", item);
      const reject = element("button", "nbdebug-reject", item);
      accept.textContent = "✓";
      reject.textContent = "✗";
      accept.title = "accept (a): this is what I am looking for";
      reject.title = "reject (r): not of interest";
      accept.addEventListener("click", () => onFeedback([card.index], []));
      reject.addEventListener("click", () => onFeedback([], [card.index]));
    }
    text.addEventListener("click", () => onInspect(card.index));
    item.addEventListener("mouseenter", () => onHover(card.index));
    item.addEventListener("mouseleave", () => onHover(-1));
    return item;
  }

  function mark(position) {
    items.forEach((item, k) => {
      item.classList.toggle("nbdebug-current", k === position);
    });
    current = position;
    if (position >= 0) {
      items[position].scrollIntoView({ block: "nearest" });
      onHover(Number(items[position].dataset.index));
    }
  }

  return {
    element: panel,
    setSelection(indices) {
      selection = Array.from(indices);
      selectionText.textContent = `${selection.length} selected`;
      acceptSelection.disabled = rejectSelection.disabled = selection.length === 0;
    },
    // Each card's `thumbnail` is [offset, h, w, c] into `thumbs`, or null without one.
    setCards(cards, thumbs, classes) {
      const keep = current >= 0 && items[current] ? Math.min(current, cards.length - 1) : -1;
      list.replaceChildren();
      acceptedList.replaceChildren();
      const accepted = cards.filter((card) => card.kind === "accepted");
      for (const card of cards) makeCard(card, thumbs, classes, card.kind === "accepted" ? acceptedList : list);
      acceptedTitle.textContent = accepted.length
        ? `Accepted (${accepted.length}): set the label each should have`
        : "";
      items = [...list.children, ...acceptedList.children];
      if (keep >= 0) mark(Math.min(keep, items.length - 1));
    },
    // The keyboard: move the current card by `step`, or act on it.
    move(step) {
      if (!items.length) return;
      mark(current < 0 ? (step > 0 ? 0 : items.length - 1) : Math.max(0, Math.min(items.length - 1, current + step)));
    },
    current: () => (current >= 0 && items[current] ? Number(items[current].dataset.index) : -1),
    setMessage(text) {
      message.textContent = text || ""; // the kernel's explanation of a refused request
    },
    setImportance(weights) {
      renderImportance(importance, weights);
    },
  };
}
