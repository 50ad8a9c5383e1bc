// The only ways the page puts anything on screen, and the plan for moving keyed rows.
// Everything a user or another client wrote (names, descriptions, other_config, errors)
// reaches the page through `textContent` and `setAttribute`, never as markup; the page's
// Trusted Types policy makes any markup assignment throw besides.

/** Sets text only when it changes (a write costs style work even when equal). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** An element holding `text` as text. */
export function textOf(tag, text) {
  const el = document.createElement(tag);
  el.textContent = text;
  return el;
}

/** An empty element with a class and an ARIA role. */
export function make(tag, className, role) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (role) el.setAttribute("role", role);
  return el;
}

/**
 * For each item of `pos` (its index in the old order, or -1 if new), whether it is in
 * a longest increasing subsequence of the old indices: those items stay where they
 * are and every other one is moved, the fewest moves (as Vue 3 and ivi keep keyed
 * lists). A row that stays keeps its keyboard focus.
 */
export function stayingPut(pos) {
  const tails = []; // tails[k]: index of the smallest tail of an increasing run of length k+1
  const prev = new Array(pos.length).fill(-1);
  for (let i = 0; i < pos.length; i++) {
    const p = pos[i];
    if (p < 0) continue;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (pos[tails[mid]] < p) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1];
    tails[lo] = i;
  }
  const keep = new Array(pos.length).fill(false);
  for (let i = tails.length ? tails[tails.length - 1] : -1; i >= 0; i = prev[i]) keep[i] = true;
  return keep;
}
