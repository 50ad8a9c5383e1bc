// node --test: the keyed-move plan of dom.js (which rows stay when a list is reordered).
import assert from "node:assert/strict";
import { test } from "node:test";
import { stayingPut } from "./dom.js";

/** Replays the plan on a list and returns the result and how many moves it took. */
function replay(oldList, newList) {
  const index = new Map(oldList.map((x, i) => [x, i]));
  const stay = stayingPut(newList.map((x) => index.get(x) ?? -1));
  const dom = oldList.filter((x) => newList.includes(x));
  let moves = 0;
  let anchor = null;
  for (let i = newList.length - 1; i >= 0; i--) {
    const x = newList[i];
    if (!stay[i]) {
      const at = dom.indexOf(x);
      if (at >= 0) dom.splice(at, 1);
      dom.splice(anchor === null ? dom.length : dom.indexOf(anchor), 0, x);
      moves++;
    }
    anchor = x;
  }
  return { dom, moves };
}

test("one row moved from the front to the back costs one move", () => {
  const a = [..."abcdefghij"];
  const b = [..."bcdefghija"];
  assert.deepEqual(replay(a, b), { dom: b, moves: 1 });
});

test("new, removed and reversed rows all end in the new order", () => {
  for (const [a, b] of [
    ["abcdef", "fedcba"],
    ["abc", "xaybzc"],
    ["abcdef", "bdf"],
    ["", "abc"],
    ["abc", ""],
    ["abcdefgh", "hbcdefga"],
  ]) {
    assert.deepEqual(replay([...a], [...b]).dom, [...b], `${a} → ${b}`);
  }
  assert.equal(replay([..."abcdef"], [..."fedcba"]).moves, 5);
});
