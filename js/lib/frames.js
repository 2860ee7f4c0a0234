// The positions of each epoch (a frame), asked of the kernel as they are needed. The page
// keeps at most `budget` bytes of them: a run that fits is loaded whole (the frame shown
// first), a larger one around the frame shown, prefetching ahead for playback and dropping
// the frames farthest away.

import { asTyped } from "./dom.js";

export function createFrameStore({ n, count, budget, request, onArrive }) {
  const capacity = Math.max(3, Math.min(count, Math.floor(budget / Math.max(n * 8, 1))));
  const frames = new Map(); // frame index -> Float32Array (n x 2)
  const pending = new Set();
  let focus = 0;

  function ask(indices) {
    const missing = indices.filter((i) => i >= 0 && i < count && !frames.has(i) && !pending.has(i));
    for (const i of missing) pending.add(i);
    if (missing.length) request(missing);
  }

  // The frames to keep around `index`, nearest first: all of them when they fit, else a
  // window reaching a quarter of the capacity back and the rest ahead (playback runs forward).
  function window(index) {
    if (count <= capacity) {
      return Array.from({ length: count }, (_, k) => k).sort((a, b) => Math.abs(a - index) - Math.abs(b - index));
    }
    const back = Math.floor(capacity / 4);
    const start = Math.max(0, Math.min(index - back, count - capacity));
    const wanted = Array.from({ length: capacity }, (_, k) => start + k);
    return wanted.sort((a, b) => Math.abs(a - index) - Math.abs(b - index));
  }

  function evict() {
    while (frames.size > capacity) {
      let far = -1;
      for (const i of frames.keys()) if (far < 0 || Math.abs(i - focus) > Math.abs(far - focus)) far = i;
      frames.delete(far);
    }
  }

  return {
    capacity,
    get: (index) => frames.get(index) || null,
    // Make `index` the frame shown: ask for it first, then for the frames around it.
    focusOn(index) {
      focus = index;
      ask([index]);
      ask(window(index).filter((i) => i !== index));
    },
    receive(indices, buffers) {
      indices.forEach((index, k) => {
        pending.delete(index);
        if (index < 0 || index >= count || !buffers[k]) return;
        const received = asTyped(buffers[k], Float32Array);
        // A copy: a view would keep the whole message's memory alive.
        if (received.length === 2 * n) frames.set(index, Float32Array.from(received));
      });
      evict();
      onArrive(indices);
    },
    loaded: () => frames.size,
  };
}
