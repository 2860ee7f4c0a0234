// The canvas view: which rectangle of the data plane is shown, and the maps between data
// coordinates and canvas (CSS) pixels.

// What a dot is: shown, greyed (outside a query's matches) or hidden (its split switched off).
export const DOT_STATE = { shown: 0, dimmed: 1, hidden: 2 };
export const DIMMED_COLOUR = "#c8c8c8";

// Zooming stops at these multiples of the whole canvas's width.
const MIN_ZOOM = 1e-3;
const MAX_ZOOM = 10;

// One scale for both axes so the canvas does not distort distances; the view is centred.
export function makeTransform(view, width, height) {
  const [x0, x1, y0, y1] = view;
  const scale = Math.min(width / (x1 - x0 || 1), height / (y1 - y0 || 1));
  const offX = (width - scale * (x1 - x0)) / 2;
  const offY = (height - scale * (y1 - y0)) / 2;
  return {
    x0,
    y0,
    scale,
    offX,
    offY,
    width,
    height,
    key: `${view.join(",")}|${width}x${height}`,
    toPixel: (x, y) => [offX + (x - x0) * scale, height - (offY + (y - y0) * scale)],
    toData: (px, py) => [x0 + (px - offX) / scale, y0 + (height - py - offY) / scale],
  };
}

// The rectangle the canvas shows under `transform` (wider than its view in one direction
// when the view's shape is not the canvas's).
export function visibleView(transform) {
  const [left, top] = transform.toData(0, 0);
  const [right, bottom] = transform.toData(transform.width, transform.height);
  return [left, right, bottom, top];
}

// The view after zooming by `factor` (> 1 zooms in) around the pixel (px, py), which keeps
// showing the same data point; `whole` is the whole canvas's view, which limits the zoom.
export function zoomView(transform, factor, px, py, whole) {
  const wholeWidth = whole[1] - whole[0];
  const width = transform.width / (transform.scale * factor);
  const limited = Math.min(Math.max(width, wholeWidth * MIN_ZOOM), wholeWidth * MAX_ZOOM);
  const scale = transform.width / limited;
  const [x, y] = transform.toData(px, py);
  const left = x - px / scale;
  const top = y + py / scale;
  return [left, left + transform.width / scale, top - transform.height / scale, top];
}

// The view moved so that the data under one pixel moves by (dx, dy) pixels.
export function panView(transform, dx, dy) {
  const [x0, x1, y0, y1] = visibleView(transform);
  const sx = dx / transform.scale;
  const sy = dy / transform.scale;
  return [x0 - sx, x1 - sx, y0 + sy, y1 + sy];
}

// Positions `out` moved a share `t` of the way from `from` to `to` (tweening between frames);
// a sample with no position to start from (NaN) appears at its destination.
export function blend(from, to, t, out) {
  for (let k = 0; k < out.length; k++) {
    const start = from[k];
    out[k] = Number.isNaN(start) ? to[k] : start + (to[k] - start) * t;
  }
  return out;
}

// The sample whose dot is nearest to a pixel, within `reach` pixels; -1 if none. Dots whose
// `states` entry is DOT_STATE.hidden are not there.
export function nearest(transform, xy, n, px, py, reach, states = null) {
  let best = -1;
  let bestDistance = reach * reach;
  for (let i = 0; i < n; i++) {
    if (states && states[i] === DOT_STATE.hidden) continue;
    const x = xy[2 * i];
    const y = xy[2 * i + 1];
    if (!Number.isFinite(x)) continue;
    const [qx, qy] = transform.toPixel(x, y);
    const d = (qx - px) ** 2 + (qy - py) ** 2;
    if (d < bestDistance) {
      bestDistance = d;
      best = i;
    }
  }
  return best;
}

// Outlines around some samples (selection, recommendations, judged ones), in CSS pixels.
export function drawOutlines(ctx, transform, xy, indices, colour, radius, width) {
  ctx.beginPath();
  for (const i of indices) {
    const x = xy[2 * i];
    const y = xy[2 * i + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    const [px, py] = transform.toPixel(x, y);
    ctx.moveTo(px + radius, py);
    ctx.arc(px, py, radius, 0, 2 * Math.PI);
  }
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  ctx.stroke();
}

// A sample's trail: its position at every epoch (`trail`, [x, y] or null each) joined in
// order, a small mark per epoch and a ring at the epoch shown (`shownIndex`).
export function drawTrail(ctx, transform, trail, shownIndex, colour) {
  ctx.beginPath();
  let drawing = false;
  for (const point of trail) {
    if (!point) {
      drawing = false;
      continue;
    }
    const [px, py] = transform.toPixel(point[0], point[1]);
    if (drawing) ctx.lineTo(px, py);
    else ctx.moveTo(px, py);
    drawing = true;
  }
  ctx.strokeStyle = "#212121";
  ctx.lineWidth = 1.5;
  ctx.stroke();
  trail.forEach((point, k) => {
    if (!point) return;
    const [px, py] = transform.toPixel(point[0], point[1]);
    ctx.beginPath();
    ctx.arc(px, py, k === shownIndex ? 5 : 2, 0, 2 * Math.PI);
    ctx.fillStyle = k === shownIndex ? colour : "#212121";
    ctx.fill();
    if (k === shownIndex) {
      ctx.lineWidth = 2;
      ctx.stroke();
    }
  });
}

// An RGBA uint8 image (w x h) turned into something drawImage can scale.
export function imageCanvas(rgba, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const pixels = new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, width * height * 4);
  canvas.getContext("2d").putImageData(new ImageData(pixels, width, height), 0, 0);
  return canvas;
}

// Pale territories, so dots of their class stay visible over them.
const TERRITORY_OPACITY = 0.6;

// White, then the class territories (an image covering `background.bounds`) where they lie
// under `transform`; `scale` maps its CSS pixels to the context's pixels.
export function paintTerritories(ctx, transform, background, scale) {
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  if (!background) return;
  const [x0, x1, y0, y1] = background.bounds;
  const [left, top] = transform.toPixel(x0, y1);
  const [right, bottom] = transform.toPixel(x1, y0);
  ctx.imageSmoothingEnabled = true;
  ctx.globalAlpha = TERRITORY_OPACITY;
  ctx.drawImage(background.image, left * scale, top * scale, (right - left) * scale, (bottom - top) * scale);
  ctx.globalAlpha = 1;
}
