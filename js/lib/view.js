// Drawing the landscape: data coordinates -> canvas pixels, the background image and the dots.

export const DOT_RADIUS = 2.6;
const PAD = 8;

// One scale for both axes so the canvas does not distort distances.
export function makeTransform(bounds, width, height) {
  const [x0, x1, y0, y1] = bounds;
  const scale = Math.min((width - 2 * PAD) / (x1 - x0 || 1), (height - 2 * PAD) / (y1 - y0 || 1));
  const offX = (width - scale * (x1 - x0)) / 2;
  const offY = (height - scale * (y1 - y0)) / 2;
  return {
    toPixel: (x, y) => [offX + (x - x0) * scale, height - (offY + (y - y0) * scale)],
    toData: (px, py) => [x0 + (px - offX) / scale, y0 + (height - py - offY) / scale],
  };
}

// Positions of every sample at a fractional frame, interpolated between neighbouring epochs.
export function framePositions(positions, n, nFrames, frame, out) {
  const lo = Math.max(0, Math.min(Math.floor(frame), nFrames - 1));
  const hi = Math.min(lo + 1, nFrames - 1);
  const t = Math.min(Math.max(frame - lo, 0), 1);
  const a = lo * n * 2;
  const b = hi * n * 2;
  for (let k = 0; k < 2 * n; k++) out[k] = positions[a + k] * (1 - t) + positions[b + k] * t;
  return out;
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

// Samples grouped by (colour, style) once per data change, so each frame draws one path
// per group: filled dots for train and unlabeled samples, rings for test samples.
export function dotGroups(data, colourOf) {
  const groups = new Map();
  for (let i = 0; i < data.n; i++) {
    const key = `${colourOf(i)}|${data.splits[i] === 1 ? "ring" : "fill"}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(i);
  }
  return Array.from(groups, ([key, members]) => {
    const [colour, style] = key.split("|");
    return { colour, ring: style === "ring", members: Int32Array.from(members) };
  });
}

export function drawDots(ctx, transform, xy, groups, n) {
  const square = n > 20000; // squares are much cheaper than arcs for big runs
  for (const { colour, ring, members } of groups) {
    ctx.beginPath();
    for (const i of members) {
      const x = xy[2 * i];
      const y = xy[2 * i + 1];
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      const [px, py] = transform.toPixel(x, y);
      if (square) {
        ctx.rect(px - DOT_RADIUS, py - DOT_RADIUS, 2 * DOT_RADIUS, 2 * DOT_RADIUS);
      } else {
        ctx.moveTo(px + DOT_RADIUS, py);
        ctx.arc(px, py, DOT_RADIUS, 0, 2 * Math.PI);
      }
    }
    if (ring) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.2;
      ctx.stroke();
    } else {
      ctx.fillStyle = colour;
      ctx.globalAlpha = 0.85;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
  }
}

// Outlines around some samples (selection, recommendations, judged ones).
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

// The sample whose dot is nearest to a pixel, within a few pixels; -1 if none.
export function nearest(transform, xy, n, px, py) {
  let best = -1;
  let bestDistance = (DOT_RADIUS + 3) ** 2;
  for (let i = 0; i < n; i++) {
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
