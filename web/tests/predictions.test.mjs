// The prediction card's arithmetic and its reading of the API (node --test; run by
// tests/unit/test_web_predictions.py).
import assert from "node:assert/strict";
import { test } from "node:test";

const { countdown, described, merged, payoutRatio, shares } = await import("../static/js/predictions.js");

test("the payout ratio is the pot over the outcome's pool", () => {
  assert.equal(payoutRatio(4700, 2000), "1:2.35");
  assert.equal(payoutRatio(500, 500), "1:1.00");
  assert.equal(payoutRatio(500, 0), "1:–"); // nobody on it: nothing to divide
});

test("shares are whole percent of the pot, zero for an empty pot", () => {
  assert.deepEqual(shares([1200, 3400]), [26, 74]);
  assert.deepEqual(shares([0, 0, 0]), [0, 0, 0]);
});

test("the countdown shows minutes and seconds, never below zero", () => {
  assert.equal(countdown(65_000), "1:05");
  assert.equal(countdown(599_001), "10:00");
  assert.equal(countdown(-5), "0:00");
});

test("an API prediction becomes the card's shape", () => {
  const p = described({
    prediction_id: "p-1",
    title: "Who wins map 3?",
    outcomes: ["Vitality", "Spirit"],
    locks_at: "2030-01-01T18:02:00Z",
    opened_at: "2030-01-01T18:00:00Z",
    status: "resolved",
    pools: [100, 300],
    stakers: [1, 2],
    winning_outcome: 1,
    settled: true,
  });
  assert.equal(p.id, "p-1");
  assert.deepEqual(p.outcomes, ["Vitality", "Spirit"]);
  assert.equal(p.locksAt, Date.parse("2030-01-01T18:02:00Z"));
  assert.equal(p.openedAt, Date.parse("2030-01-01T18:00:00Z"));
  assert.deepEqual(p.live, { status: "resolved", pools: [100, 300], stakers: [1, 2], winning_outcome: 1, settled: true });
  const open = described({ prediction_id: "p-2", outcomes: [{ title: "a", pool: 5, stakers: 1 }, { title: "b" }], winning_outcome: -1 });
  assert.deepEqual(open.outcomes, ["a", "b"]);
  assert.deepEqual(open.live, { status: "open", pools: [5, 0], stakers: [1, 0], winning_outcome: null, settled: false });
});

test("the card's state: the latest frame over the API's, the winner from a result frame only", () => {
  const p = described({ prediction_id: "p-1", outcomes: ["a", "b", "c"], status: "open", pools: [1, 2] });
  assert.deepEqual(merged(p, undefined, undefined), {
    status: "open",
    pools: [1, 2, 0],
    stakers: [0, 0, 0],
    winning_outcome: null,
    settled: false,
  });
  const frame = { type: "prediction", prediction: "p-1", status: "resolved", pools: [5, 6, 7], stakers: [1, 1, 1], settled: true };
  const hidden = merged(p, frame, undefined); // a page that hides results gets no result frame
  assert.equal(hidden.status, "resolved");
  assert.equal(hidden.winning_outcome, null);
  assert.deepEqual(hidden.pools, [5, 6, 7]);
  assert.equal(merged(p, frame, 2).winning_outcome, 2);
  const fromApi = described({ prediction_id: "p-2", outcomes: ["a", "b"], status: "resolved", winning_outcome: 0 });
  assert.equal(merged(fromApi, { status: "resolved", pools: [3, 4] }, undefined).winning_outcome, 0);
});
