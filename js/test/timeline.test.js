// Where the training monitor's warnings go on the timeline (node --test).

import assert from "node:assert/strict";
import { test } from "node:test";
import { markerLeft, markerTitle, warningMarkers } from "../lib/timeline.js";

const warning = (epoch, code, severity = "warning") => ({
  epoch,
  code,
  severity,
  title: `${code} title`,
  explanation: "",
  fix: "",
  cause: "",
});

test("one marker per epoch with warnings, in timeline order, coloured by the worst severity", () => {
  const epochs = [1, 3, 5, 7];
  const warnings = [warning(5, "overfitting"), warning(1, "nan_loss", "error"), warning(5, "dead_relu", "error")];
  warnings.push(warning(1, "slow_convergence"), warning(4, "not_on_the_timeline"));
  const markers = warningMarkers(warnings, epochs);
  assert.deepEqual(
    markers.map((m) => [m.index, m.epoch, m.severity, m.warnings.map((w) => w.code)]),
    [
      [0, 1, "error", ["nan_loss", "slow_convergence"]],
      [2, 5, "error", ["overfitting", "dead_relu"]],
    ],
  );
  assert.equal(warningMarkers([warning(3, "overfitting")], epochs)[0].severity, "warning");
  assert.deepEqual(warningMarkers([], epochs), []);
  assert.deepEqual(warningMarkers(undefined, epochs), []);
});

test("a marker sits under the slider thumb's centre and names its warnings on hover", () => {
  assert.equal(markerLeft(0, 5), "calc(8px + (100% - 16px) * 0)");
  assert.equal(markerLeft(4, 5), "calc(8px + (100% - 16px) * 1)");
  assert.equal(markerLeft(1, 5, 20), "calc(10px + (100% - 20px) * 0.25)");
  assert.equal(markerLeft(0, 1), "calc(8px + (100% - 16px) * 0)"); // a run of one epoch
  const [marker] = warningMarkers([warning(7, "overfitting"), warning(7, "<b>x</b>")], [7]);
  assert.equal(markerTitle(marker), "epoch 7\noverfitting: overfitting title\n<b>x</b>: <b>x</b> title");
});
