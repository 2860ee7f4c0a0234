// The Canvas 2D renderer (renderer="canvas"): one path per colour and style, arcs (squares
// above 20,000 dots). Sharper for small runs with a GPU-backed canvas, but on software
// rendering it drops to about 20 frames a second at 50,000 dots and 4 at 200,000 (python -m
// benchmarks.widget); kept for comparison.

import { DIMMED_COLOUR, DOT_STATE, paintTerritories } from "./view.js";

const DOT_RADIUS = 2.6;

export function createCanvasRenderer(canvas) {
  const ctx = canvas.getContext("2d");
  let background = null;
  let groups = [];
  let n = 0;
  let dots = null;
  let states = null;

  // Samples grouped by (colour, style) once, so each frame draws one path per group.
  function group() {
    const { labels, splits, palette, unlabelledColour, testCode } = dots;
    const byKey = new Map();
    for (let i = 0; i < n; i++) {
      if (states[i] === DOT_STATE.hidden) continue;
      const own = labels[i] < 0 ? unlabelledColour : palette[labels[i] % palette.length];
      const colour = states[i] === DOT_STATE.dimmed ? DIMMED_COLOUR : own;
      const key = `${colour}|${splits[i] === testCode ? "ring" : "fill"}`;
      if (!byKey.has(key)) byKey.set(key, []);
      byKey.get(key).push(i);
    }
    groups = Array.from(byKey, ([key, members]) => {
      const [colour, style] = key.split("|");
      return { colour, ring: style === "ring", members: Int32Array.from(members) };
    });
  }

  return {
    resize(cssWidth, cssHeight, ratio) {
      canvas.width = Math.round(cssWidth * ratio);
      canvas.height = Math.round(cssHeight * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    },
    setBackground(next) {
      background = next;
    },
    setDots(next) {
      dots = next;
      n = next.n;
      states = new Uint8Array(n);
      group();
    },
    setStates(next) {
      states = next;
      group();
    },
    draw(transform, xy) {
      paintTerritories(ctx, transform, background, 1); // ctx draws in CSS pixels
      if (!xy) return; // the territories alone, before the first frame's positions arrive
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
    },
  };
}
