// The frame store: which frames the page asks for, keeps and drops (node --test).

import assert from "node:assert/strict";
import { test } from "node:test";
import { createFrameStore } from "../lib/frames.js";

const N = 4; // samples: a frame is 32 bytes

// A store over `count` frames holding `capacity` of them; the kernel answers when told.
function setup(count, capacity) {
  const requests = [];
  let clock = 0;
  const timers = [];
  const store = createFrameStore({
    n: N,
    count,
    budget: capacity * N * 8,
    request: (indices) => requests.push(indices),
    onArrive: () => {},
    now: () => clock,
    later: (fn) => timers.push(fn),
  });
  const frame = (i) => new DataView(new Float32Array(2 * N).fill(i).buffer);
  const answer = () => {
    const asked = requests.splice(0);
    for (const indices of asked) store.receive(indices, indices.map(frame));
    return asked;
  };
  const held = () => Array.from({ length: count }, (_, i) => i).filter((i) => store.get(i));
  const tick = (ms) => {
    clock += ms;
    for (const fn of timers.splice(0)) fn();
  };
  return { store, requests, answer, held, tick };
}

test("a run that fits is loaded whole, the frame shown first", () => {
  const { store, requests, answer, held } = setup(5, 10);
  store.focusOn(2);
  assert.deepEqual(requests, [[2], [3, 1, 4, 0]]);
  answer();
  assert.deepEqual(held(), [0, 1, 2, 3, 4]);
  assert.equal(store.get(3)[0], 3);
});

test("stepping forward asks for each frame once and holds the window ahead", () => {
  const { store, requests, answer, held } = setup(20, 8);
  let asked = 0;
  for (let focus = 0; focus < 20; focus++) {
    store.focusOn(focus);
    while (requests.length) asked += answer().flat().length;
    assert.ok(store.get(focus), `frame ${focus} is held once asked for`);
    assert.ok(held().length <= 8);
  }
  assert.equal(asked, 20); // none dropped and asked for again
  store.focusOn(10);
  answer();
  assert.deepEqual(held(), [8, 9, 10, 11, 12, 13, 14, 15]); // two back, five ahead
});

test("a frame scrubbed to is asked for at once, not behind prefetches", () => {
  const { store, requests } = setup(100, 4);
  store.focusOn(0);
  assert.deepEqual(requests.splice(0), [[0], [1, 2, 3]]);
  store.focusOn(50);
  store.focusOn(90);
  // one prefetch is in flight: the frames scrubbed to are asked for alone
  assert.deepEqual(requests.splice(0), [[50], [90]]);
});

test("at least two frames are held, however small the budget", () => {
  const { store, answer, held } = setup(10, 0);
  assert.equal(store.capacity, 2);
  store.focusOn(4);
  answer();
  answer();
  assert.deepEqual(held(), [4, 5]);
});

test("a request left unanswered is asked again", () => {
  const { store, requests, tick } = setup(3, 3);
  store.focusOn(1);
  requests.splice(0);
  tick(5000);
  assert.deepEqual(requests, []);
  tick(6000);
  assert.deepEqual(requests.splice(0), [[1], [2, 0]]);
});

test("a frame sent in parts is put together, each part counted once", () => {
  const { store } = setup(2, 2);
  const part = (values) => new DataView(Float32Array.from(values).buffer);
  store.receivePart(0, 0, part([1, 2, 3, 4]));
  store.receivePart(0, 0, part([1, 2, 3, 4])); // sent again
  assert.equal(store.get(0), null);
  store.receivePart(0, 2, part([5, 6, 7, 8]));
  assert.deepEqual(Array.from(store.get(0)), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test("malformed frames are ignored", () => {
  const { store } = setup(2, 2);
  store.receive([5, "1", 0], [new DataView(new ArrayBuffer(32)), null, new DataView(new ArrayBuffer(8))]);
  store.receivePart(1, 3, new DataView(new ArrayBuffer(16))); // past the last sample
  store.receivePart(1, 0.5, new DataView(new ArrayBuffer(8)));
  assert.equal(store.loaded(), 0);
});
