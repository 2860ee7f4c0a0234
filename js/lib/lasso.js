// Lasso and box selection: drag on the canvas to draw a closed path (or a rectangle, in box
// mode); the dots inside are selected.

export function insidePolygon(px, py, polygon) {
  // Even-odd rule: count crossings of a ray going right from the point.
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// The rectangle with corners `a` and `b`, as a polygon.
export function boxPolygon([ax, ay], [bx, by]) {
  return [
    [ax, ay],
    [bx, ay],
    [bx, by],
    [ax, by],
  ];
}

// Listens on `canvas`; calls onDraw(polygon) while dragging and onDone(polygon) on release.
// A press without a drag is a click, passed to onClick(x, y). `box()` says whether a drag
// draws a rectangle rather than a free path.
export function attachLasso(canvas, { onDraw, onDone, onClick, box = () => false }) {
  let polygon = null;
  let boxing = false;
  const point = (event) => {
    // Relative to the drawing area, inside the canvas border.
    const rect = canvas.getBoundingClientRect();
    return [event.clientX - rect.left - canvas.clientLeft, event.clientY - rect.top - canvas.clientTop];
  };
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || event.shiftKey) return; // Shift + drag pans (see navigate.js)
    polygon = [point(event)];
    boxing = box();
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!polygon) return;
    const p = point(event);
    const [lx, ly] = polygon[polygon.length - 1];
    if ((p[0] - lx) ** 2 + (p[1] - ly) ** 2 < 4) return;
    if (boxing) {
      polygon = [polygon[0], p, p]; // the corners; drawn as a rectangle
      onDraw(boxPolygon(polygon[0], p));
      return;
    }
    polygon.push(p);
    onDraw(polygon);
  });
  const finish = (event) => {
    if (!polygon) return;
    const done = polygon;
    polygon = null;
    if (done.length < 3) onClick(...point(event));
    else onDone(boxing ? boxPolygon(done[0], done[1]) : done);
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", () => {
    polygon = null;
    onDraw(null);
  });
}
