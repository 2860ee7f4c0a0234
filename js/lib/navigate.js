// Pan and zoom: the wheel zooms around the cursor, dragging with the middle button (or with
// Shift held) pans, a double click resets the view. A plain drag stays the lasso's.

const WHEEL_RATE = 0.002; // zoom factor e^(-rate * deltaY) per wheel event

export function attachNavigation(canvas, { onZoom, onPan, onPanEnd, onReset }) {
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [event.clientX - rect.left - canvas.clientLeft, event.clientY - rect.top - canvas.clientTop];
  };
  canvas.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault(); // the notebook would scroll
      const [px, py] = point(event);
      onZoom(Math.exp(-event.deltaY * WHEEL_RATE), px, py);
    },
    { passive: false },
  );
  let last = null;
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 1 && !(event.button === 0 && event.shiftKey)) return;
    event.preventDefault();
    last = point(event);
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const p = point(event);
    onPan(p[0] - last[0], p[1] - last[1]);
    last = p;
  });
  const end = () => {
    if (!last) return;
    last = null;
    onPanEnd();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("dblclick", onReset);
}

// A call of `fn` `ms` after the last of a burst of calls (the kernel hears a settled view).
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
