// The default renderer: every dot's pixels written into one image buffer (a Uint32Array over
// an ImageData) and put on the canvas once per frame. On software rendering this keeps 60
// frames a second at 200,000 dots, where Canvas 2D paths drop to 4 (python -m
// benchmarks.widget, headless Chromium on 2 cores). The class territories are drawn into a
// layer once per view and copied under the dots.
//
// Dots get smaller and more transparent as more of them are on screen, so dense regions stay
// readable: training and unlabeled samples are discs, test samples rings. Each dot is shown,
// greyed (outside a query's matches) or hidden (its split switched off): see DOT_STATE.

import { DIMMED_COLOUR, DOT_STATE, paintTerritories } from "./view.js";

const DIMMED_ALPHA = 0.35;

// Dot radius (CSS pixels) and opacity (0..256) for `visible` dots on `area` square pixels.
export function dotStyle(visible, area) {
  const spacing = Math.sqrt(area / Math.max(visible, 1)); // the side of each dot's share of the canvas
  const radius = Math.min(Math.max(0.45 * spacing, 1), 2.6);
  const overlap = (visible * Math.PI * radius * radius) / area; // dots covering a pixel, on average
  const opacity = Math.min(Math.max(1.2 / overlap, 0.25), 0.9);
  return { radius, alpha: Math.round(opacity * 256) };
}

// Pixel offsets of a disc (or a one-pixel ring) of radius r, as row-major index deltas.
function stamp(r, ring, stride) {
  const offsets = [];
  const reach = Math.ceil(r);
  for (let dy = -reach; dy <= reach; dy++) {
    for (let dx = -reach; dx <= reach; dx++) {
      const d2 = dx * dx + dy * dy;
      if (d2 <= r * r + 0.25 && (!ring || d2 >= (r - 1.1) ** 2)) offsets.push(dy * stride + dx);
    }
  }
  return Int32Array.from(offsets.length ? offsets : [0]);
}

function rgba(hex) {
  const v = Number.parseInt(hex.slice(1), 16);
  return 0xff000000 | ((v & 255) << 16) | (v & 0xff00) | ((v >> 16) & 255); // little-endian ABGR
}

export function createPixelRenderer(canvas) {
  const ctx = canvas.getContext("2d");
  let width = 0;
  let height = 0;
  let ratio = 1;
  let image = null;
  let pixels = null;
  let layer = null;
  let layerKey = "";
  let background = null;
  let colours = new Uint32Array(0);
  let rings = new Uint8Array(0);
  let states = new Uint8Array(0);
  let plain = true; // every dot shown: the loop below skips the state checks
  const dimmed = rgba(DIMMED_COLOUR);
  let visible = 0; // dots on screen in the last frame, which sizes the next one's

  function paintLayer(transform) {
    const off = document.createElement("canvas");
    off.width = width;
    off.height = height;
    const octx = off.getContext("2d");
    paintTerritories(octx, transform, background, ratio);
    layer = new Uint32Array(octx.getImageData(0, 0, width, height).data.buffer);
    layerKey = transform.key;
  }

  return {
    resize(cssWidth, cssHeight, pixelRatio) {
      ratio = pixelRatio;
      width = Math.max(1, Math.round(cssWidth * ratio));
      height = Math.max(1, Math.round(cssHeight * ratio));
      canvas.width = width;
      canvas.height = height;
      image = ctx.createImageData(width, height);
      pixels = new Uint32Array(image.data.buffer);
      layerKey = "";
    },
    setBackground(next) {
      background = next;
      layerKey = "";
    },
    setDots({ n, labels, splits, palette, unlabelledColour, testCode }) {
      colours = new Uint32Array(n);
      rings = new Uint8Array(n);
      const table = palette.map(rgba);
      const grey = rgba(unlabelledColour);
      for (let i = 0; i < n; i++) {
        colours[i] = labels[i] < 0 ? grey : table[labels[i] % table.length];
        rings[i] = splits[i] === testCode ? 1 : 0;
      }
      states = new Uint8Array(n);
      plain = true;
      visible = n;
    },
    // Per dot, a DOT_STATE (Uint8Array, n).
    setStates(next) {
      states = next;
      plain = states.every((state) => state === DOT_STATE.shown);
    },
    // Background and dots at positions `xy` (data coordinates, NaN where a sample has none;
    // null before the first frame's positions have arrived: the territories alone).
    draw(transform, xy) {
      if (!pixels) return;
      if (layerKey !== transform.key) paintLayer(transform);
      pixels.set(layer);
      if (!xy) {
        ctx.putImageData(image, 0, 0);
        return;
      }
      const style = dotStyle(visible, transform.width * transform.height);
      const radius = style.radius * ratio;
      const disc = stamp(radius, false, width);
      const ring = stamp(Math.max(radius, 1.6), true, width);
      const reach = Math.ceil(radius) + 1;
      const { x0, y0, offX, offY } = transform;
      const scale = transform.scale * ratio;
      const left = offX * ratio;
      const bottom = height - offY * ratio;
      const dimmedAlpha = Math.round(DIMMED_ALPHA * style.alpha);
      let shown = 0;
      for (let i = 0; i < colours.length; i++) {
        const state = plain ? DOT_STATE.shown : states[i];
        if (state === DOT_STATE.hidden) continue;
        const x = xy[2 * i];
        const y = xy[2 * i + 1];
        if (Number.isNaN(x) || Number.isNaN(y)) continue; // no position at this epoch
        const px = Math.round(left + (x - x0) * scale);
        const py = Math.round(bottom - (y - y0) * scale);
        if (px < reach || py < reach || px >= width - reach || py >= height - reach) continue;
        shown++;
        const grey = state === DOT_STATE.dimmed;
        const c = grey ? dimmed : colours[i];
        const alpha = grey ? dimmedAlpha : rings[i] ? 256 : style.alpha;
        const sr = c & 255;
        const sg = (c >> 8) & 255;
        const sb = (c >> 16) & 255;
        const offsets = rings[i] ? ring : disc;
        const centre = py * width + px;
        for (let k = 0; k < offsets.length; k++) {
          const at = centre + offsets[k];
          const d = pixels[at];
          const dr = d & 255;
          const dg = (d >> 8) & 255;
          const db = (d >> 16) & 255;
          pixels[at] =
            0xff000000 |
            ((db + (((sb - db) * alpha) >> 8)) << 16) |
            ((dg + (((sg - dg) * alpha) >> 8)) << 8) |
            (dr + (((sr - dr) * alpha) >> 8));
        }
      }
      visible = shown;
      ctx.putImageData(image, 0, 0);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0); // outlines and the lasso follow in CSS pixels
    },
  };
}
