// node --test: the pure formatting of format.js.
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatDuration, parseXapiDate, percent, timing } from "./format.js";

test("XAPI datetimes: basic and extended forms; the epoch is no time", () => {
  assert.equal(parseXapiDate("20261201T09:33:57Z"), Date.UTC(2026, 11, 1, 9, 33, 57));
  assert.equal(parseXapiDate("2026-12-01T09:33:57Z"), Date.UTC(2026, 11, 1, 9, 33, 57));
  assert.equal(parseXapiDate("19700101T00:00:00Z"), null);
  assert.equal(parseXapiDate("garbage"), null);
  assert.equal(parseXapiDate(undefined), null);
});

test("durations read as a person says them", () => {
  assert.equal(formatDuration(0), "0 s");
  assert.equal(formatDuration(59_999), "59 s");
  assert.equal(formatDuration(185_000), "3 min 05 s");
  assert.equal(formatDuration((2 * 3600 + 3 * 60) * 1000), "2 h 03 min");
  assert.equal(formatDuration((3 * 24 + 4) * 3600 * 1000), "3 d 4 h");
  assert.equal(formatDuration(null), "—");
  assert.equal(formatDuration(-5), "0 s");
});

test("progress is clamped to a whole percentage (XAPI does not check the range)", () => {
  assert.equal(percent(0.256), 26);
  assert.equal(percent(1.5), 100);
  assert.equal(percent(-1), 0);
  assert.equal(percent("nan"), 0);
});

test("elapsed time and ETA by linear extrapolation, none once completed", () => {
  const created = "20261201T10:00:00Z";
  const now = Date.UTC(2026, 11, 1, 10, 1, 0);
  assert.deepEqual(timing({ created, status: "pending", progress: 0.25 }, now), { elapsed: 60_000, eta: 180_000 });
  assert.deepEqual(timing({ created, status: "pending", progress: 0 }, now), { elapsed: 60_000, eta: null });
  assert.deepEqual(
    timing({ created, status: "success", progress: 1, finished: "20261201T10:00:30Z" }, now),
    { elapsed: 30_000, eta: null },
  );
  // A client that completed the task with set_status left `finished` at the epoch.
  assert.deepEqual(timing({ created, status: "failure", finished: "19700101T00:00:00Z" }, now), {
    elapsed: null,
    eta: null,
  });
});
