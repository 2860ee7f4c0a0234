// The view's maps, zoom, pan and tweening (node --test).

import assert from "node:assert/strict";
import { test } from "node:test";
import { boxPolygon, insidePolygon } from "../lib/lasso.js";
import { blend, DOT_STATE, makeTransform, nearest, panView, visibleView, zoomView } from "../lib/view.js";

const close = (a, b, digits = 9) => assert.ok(Math.abs(a - b) < 10 ** -digits, `${a} != ${b}`);

test("data and pixel coordinates map back and forth, y up", () => {
  const t = makeTransform([0, 10, 0, 5], 400, 200);
  assert.deepEqual(t.toPixel(0, 5), [0, 0]);
  assert.deepEqual(t.toPixel(10, 0), [400, 200]);
  const [x, y] = t.toData(...t.toPixel(3.5, 1.25));
  close(x, 3.5);
  close(y, 1.25);
});

test("a view of another shape is centred and shown whole", () => {
  const t = makeTransform([0, 10, 0, 10], 400, 200);
  const [x0, x1, y0, y1] = visibleView(t);
  close(y0, 0);
  close(y1, 10);
  close(x0, -5);
  close(x1, 15);
});

test("zooming keeps the point under the cursor and stops at the limits", () => {
  const whole = [0, 10, 0, 10];
  const t = makeTransform(whole, 300, 300);
  const before = t.toData(60, 210);
  const zoomed = makeTransform(zoomView(t, 2, 60, 210, whole), 300, 300);
  const after = zoomed.toData(60, 210);
  close(before[0], after[0]);
  close(before[1], after[1]);
  const view = visibleView(zoomed);
  close(view[1] - view[0], 5);
  const far = zoomView(t, 1e9, 60, 210, whole);
  close(far[1] - far[0], 10 * 1e-3);
  const out = zoomView(t, 1e-9, 60, 210, whole);
  close(out[1] - out[0], 100);
});

test("panning moves the data with the pointer", () => {
  const t = makeTransform([0, 10, 0, 10], 100, 100);
  const moved = makeTransform(panView(t, 10, -20), 100, 100);
  const [x, y] = moved.toPixel(5, 5);
  close(x, 60);
  close(y, 30);
});

test("tweening moves a share of the way, and a sample without a start appears at its end", () => {
  const out = new Float32Array(4);
  blend(Float32Array.of(0, 0, Number.NaN, Number.NaN), Float32Array.of(10, 20, 3, 4), 0.25, out);
  assert.deepEqual(Array.from(out), [2.5, 5, 3, 4]);
  blend(Float32Array.of(1, 1, 1, 1), Float32Array.of(Number.NaN, 2, 2, 2), 0.5, out);
  assert.ok(Number.isNaN(out[0]));
});

test("the nearest dot within reach is found, hidden dots are not there", () => {
  const t = makeTransform([0, 10, 0, 10], 100, 100);
  const xy = Float32Array.from([5, 5, 5.2, 5, Number.NaN, Number.NaN, 9, 9]);
  const [px, py] = t.toPixel(5.15, 5);
  assert.equal(nearest(t, xy, 4, px, py, 6), 1);
  const states = Uint8Array.from([DOT_STATE.shown, DOT_STATE.hidden, DOT_STATE.shown, DOT_STATE.shown]);
  assert.equal(nearest(t, xy, 4, px, py, 6, states), 0); // greyed dots stay, hidden ones go
  assert.equal(nearest(t, xy, 4, ...t.toPixel(1, 1), 6), -1);
});

test("a box is the rectangle of its two corners, either way round", () => {
  const box = boxPolygon([4, 1], [1, 3]);
  assert.ok(insidePolygon(2, 2, box) && insidePolygon(3.9, 1.1, box));
  assert.ok(!insidePolygon(0.5, 2, box) && !insidePolygon(2, 3.5, box));
});
