// The training monitor's warnings on the timeline: under the slider, a marker at each epoch
// with warnings, coloured by the worst severity, its codes and titles on hover; a click on it
// opens a panel with the epoch's warnings (title, severity, explanation and the fix as code).
// Warnings are data the kernel read from the run: text, never HTML.

import { element } from "./dom.js";

// Chromium's and Firefox's default range thumb: its centre travels the track less its width.
const THUMB_PX = 16;

// The epochs with warnings in timeline order: {index (the frame), epoch, severity (the worst:
// "error" if any is one), warnings}. Warnings at epochs not on the timeline are left out.
export function warningMarkers(warnings, epochs) {
  const byIndex = new Map();
  for (const warning of warnings || []) {
    const index = epochs.indexOf(warning.epoch);
    if (index < 0) continue;
    if (!byIndex.has(index)) byIndex.set(index, []);
    byIndex.get(index).push(warning);
  }
  return [...byIndex.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, items]) => ({
      index,
      epoch: epochs[index],
      severity: items.some((w) => w.severity === "error") ? "error" : "warning",
      warnings: items,
    }));
}

// The CSS `left` of frame `index`'s marker, of `count` frames: under the slider thumb's centre.
export function markerLeft(index, count, thumb = THUMB_PX) {
  const fraction = count > 1 ? index / (count - 1) : 0;
  return `calc(${thumb / 2}px + (100% - ${thumb}px) * ${fraction})`;
}

// What hovering a marker shows: one line per warning, its code and title.
export function markerTitle(marker) {
  const lines = marker.warnings.map((w) => `${w.code}: ${w.title}`);
  return [`epoch ${marker.epoch}`, ...lines].join("\n");
}

// The markers go into `track` (under the slider), the panel into `panelParent`. `onOpen(marker)`
// when a marker is clicked, `onClose()` when the panel is closed.
export function createWarningTimeline(track, panelParent, { onOpen, onClose }) {
  const strip = element("div", "nbdebug-warning-marks", track);
  const panel = element("div", "nbdebug-warnings", panelParent);
  const header = element("div", "nbdebug-warnings-header", panel);
  const heading = element("span", "nbdebug-warnings-heading", header);
  const close = element("button", "nbdebug-warnings-close", header);
  const list = element("div", "nbdebug-warnings-list", panel);
  close.type = "button";
  close.textContent = "×";
  close.title = "close";
  close.addEventListener("click", onClose);
  strip.hidden = true;
  panel.hidden = true;
  let markers = [];

  function showWarning(warning) {
    const item = element("div", "nbdebug-warning", list);
    item.dataset.severity = warning.severity === "error" ? "error" : "warning";
    const title = element("div", "nbdebug-warning-title", item);
    element("span", "nbdebug-warning-severity", title).textContent = warning.severity;
    element("span", "nbdebug-warning-name", title).textContent = warning.title;
    element("span", "nbdebug-warning-code", title).textContent = warning.code;
    element("div", "nbdebug-warning-explanation", item).textContent = warning.explanation;
    if (warning.fix) {
      element("div", "nbdebug-warning-fix-label", item).textContent = "fix:";
      element("pre", "nbdebug-warning-fix", item).textContent = warning.fix;
    }
  }

  return {
    // The warnings (the kernel's `warnings` trait) over the timeline's `epochs`.
    set(warnings, epochs) {
      markers = warningMarkers(warnings, epochs);
      strip.replaceChildren();
      for (const marker of markers) {
        const button = element("button", "nbdebug-warning-mark", strip);
        button.type = "button";
        button.dataset.epoch = String(marker.epoch);
        button.dataset.severity = marker.severity;
        button.style.left = markerLeft(marker.index, epochs.length);
        button.title = markerTitle(marker);
        button.setAttribute("aria-label", `warnings at epoch ${marker.epoch}`);
        button.addEventListener("click", () => onOpen(marker));
      }
      strip.hidden = markers.length === 0;
    },
    // Show the warnings of `epoch` in the panel; -1 (or an epoch without warnings) closes it.
    show(epoch) {
      const marker = markers.find((m) => m.epoch === epoch);
      panel.hidden = !marker;
      list.replaceChildren();
      if (!marker) return;
      const count = marker.warnings.length;
      heading.textContent = `epoch ${marker.epoch}: ${count} warning${count === 1 ? "" : "s"} of the training monitor`;
      for (const warning of marker.warnings) showWarning(warning);
    },
  };
}
