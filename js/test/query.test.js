// The page's answers to simple queries, the same as nbdebug/query.py's (node --test).

import assert from "node:assert/strict";
import { test } from "node:test";
import { answerLocally, simpleTerms } from "../lib/query.js";

const data = {
  n: 6,
  labels: Int16Array.from([0, 1, 2, 1, -1, 0]),
  predicted: Uint16Array.from([0, 2, 2, 1, 1, 1]),
  splits: Uint8Array.from([0, 0, 0, 1, 2, 1]),
  splitNames: ["train", "test", "unlabeled"],
  classes: ["cat", "dog", "7"],
};
const indices = (text, over = data) => Array.from(answerLocally(text, over).matches);

test("labels, predictions, mispredictions, splits and indices, all of which must hold", () => {
  assert.deepEqual(indices("label=1"), [1, 3]);
  assert.deepEqual(indices("label = dog,cat"), [0, 1, 3, 5]);
  assert.deepEqual(indices("label=none"), [4]);
  assert.deepEqual(indices("label=-1"), [4]);
  assert.deepEqual(indices("label=7"), [2]); // the class named "7" (index 2), as in Python
  assert.deepEqual(indices("label=2"), [2]);
  assert.deepEqual(indices("predicted=1"), [3, 4, 5]);
  assert.deepEqual(indices("mispredicted"), [1, 5]); // labelled and predicted otherwise
  assert.deepEqual(indices("mispredicted=false"), [0, 2, 3]);
  assert.deepEqual(indices("split=test,unlabeled"), [3, 4, 5]);
  assert.deepEqual(indices("indices=5,1,1"), [1, 5]);
  assert.deepEqual(indices("label=0 and mispredicted split=test"), [5]);
  assert.deepEqual(answerLocally("", data), { highlighting: false, matches: new Uint32Array(0) });
});

test("what the page is not sure of is left to the kernel", () => {
  for (const text of [
    "forgetting>=3", // an attribute
    'label="big dog"', // quotes
    "label=3", // no such class: the kernel explains
    "predicted=none",
    "predicted=-1",
    "label=1 label=2",
    "split=val",
    "indices=9",
    "indices=a",
    "mispredicted=maybe",
    "label=",
    "aum => 3",
    "labels=1",
  ]) {
    assert.equal(answerLocally(text, data), null, text);
  }
  assert.equal(answerLocally("mispredicted", { ...data, predicted: null }), null); // no predictions yet
  assert.deepEqual(simpleTerms("label = 3 mispredicted"), [
    ["label", "3"],
    ["mispredicted", null],
  ]);
});
