// The positions of each epoch (a frame), asked of the kernel as they are needed. The page
// keeps at most `budget` bytes of them (two frames at least, a tween's ends): a run that
// fits is loaded whole, a larger one around the frame shown, prefetching ahead for playback
// and dropping the frames outside that window first.
//
// The frame shown is asked for at once; other frames are prefetched one request at a time,
// nearest first and about one message's worth each, so a frame scrubbed to never waits
// behind a queue of stale prefetches. A request unanswered after RETRY_MS is asked again.

import { asTyped } from "./dom.js";

const RETRY_MS = 10000;
const PREFETCH_BYTES = 8e6; // under the kernel's 10 MB a message

// `now` and `later` (setTimeout's signature) are the clock and timer, replaceable in tests.
export function createFrameStore({ n, count, budget, request, onArrive, now = Date.now, later = setTimeout }) {
  const frameBytes = Math.max(n * 8, 1);
  const capacity = Math.max(2, Math.min(count, Math.floor(budget / frameBytes)));
  const frames = new Map(); // frame index -> Float32Array (n x 2)
  const pending = new Map(); // frame index -> when it was asked for
  const parts = new Map(); // frame index -> { xy, firsts, filled } while it arrives in parts
  let prefetching = new Set(); // the frames of the prefetch request in flight
  let focus = 0;
  let retrying = false;

  const unanswered = (i) => pending.has(i) && now() - pending.get(i) > RETRY_MS;
  const wanted = (i) => i >= 0 && i < count && !frames.has(i) && (!pending.has(i) || unanswered(i));

  function ask(indices) {
    const missing = indices.filter(wanted);
    for (const i of missing) pending.set(i, now());
    if (missing.length) {
      request(missing);
      checkLater();
    }
    return missing;
  }

  // While anything is pending, look again every RETRY_MS for requests left unanswered.
  function checkLater() {
    if (retrying) return;
    retrying = true;
    later(() => {
      retrying = false;
      ask([focus]);
      prefetch();
      if (pending.size) checkLater();
    }, RETRY_MS);
  }

  // The frames to keep around `index`, nearest first: all of them when they fit, else a
  // window reaching a quarter of the capacity back and the rest ahead (playback runs forward).
  function window(index) {
    const start = count <= capacity ? 0 : Math.max(0, Math.min(index - Math.floor(capacity / 4), count - capacity));
    const wanted = Array.from({ length: Math.min(count, capacity) }, (_, k) => start + k);
    return wanted.sort((a, b) => Math.abs(a - index) - Math.abs(b - index) || b - a);
  }

  function prefetch() {
    for (const i of prefetching) if (!pending.has(i) || unanswered(i)) prefetching.delete(i);
    if (prefetching.size) return;
    const missing = window(focus).filter(wanted);
    const batch = missing.slice(0, Math.max(1, Math.floor(PREFETCH_BYTES / frameBytes)));
    prefetching = new Set(ask(batch));
  }

  // Frames outside the window around the focus go first, the farthest of them first.
  function evict() {
    if (frames.size <= capacity) return;
    const keep = new Set(window(focus));
    const order = [...frames.keys()].sort((a, b) => {
      const outside = Number(keep.has(a)) - Number(keep.has(b));
      return outside || Math.abs(b - focus) - Math.abs(a - focus);
    });
    for (const i of order.slice(0, frames.size - capacity)) frames.delete(i);
  }

  function store(index, xy) {
    pending.delete(index);
    frames.set(index, xy);
  }

  function arrived(indices) {
    evict();
    prefetch();
    onArrive(indices);
  }

  return {
    capacity,
    get: (index) => frames.get(index) || null,
    // Make `index` the frame shown: ask for it now, and prefetch the frames around it.
    focusOn(index) {
      focus = index;
      ask([index]);
      prefetch();
    },
    // A "frames" message: whole frames, one buffer each.
    receive(indices, buffers) {
      const done = [];
      indices.forEach((index, k) => {
        if (!Number.isInteger(index) || index < 0 || index >= count || !buffers[k]) return;
        const received = asTyped(buffers[k], Float32Array);
        // A copy: a view would keep the whole message's memory alive.
        if (received.length === 2 * n) {
          store(index, Float32Array.from(received));
          done.push(index);
        }
      });
      arrived(done);
    },
    // A "frame_part" message: the positions of samples first.. of frame `index`.
    receivePart(index, first, buffer) {
      if (!Number.isInteger(index) || index < 0 || index >= count || !Number.isInteger(first) || !buffer) return;
      const received = asTyped(buffer, Float32Array);
      if (first < 0 || 2 * first + received.length > 2 * n) return;
      let part = parts.get(index);
      if (!part) {
        part = { xy: new Float32Array(2 * n), firsts: new Set(), filled: 0 };
        parts.set(index, part);
      }
      part.xy.set(received, 2 * first);
      if (!part.firsts.has(first)) part.filled += received.length / 2; // a part sent twice counts once
      part.firsts.add(first);
      if (part.filled < n) return;
      parts.delete(index);
      store(index, part.xy);
      arrived([index]);
    },
    loaded: () => frames.size,
  };
}
