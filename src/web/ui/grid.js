// The task tree grid: an ARIA treegrid (WAI-ARIA APG "treegrid", row focus), one row per
// task, subtasks nested under their parents.
//
// Only the rows on screen exist in the DOM (plus a few either side): a 10,000-task page
// then costs a model, a sorted list of refs and ~50 rows, so it loads in a fraction of a
// second and an update touches only its own row. The rows carry `aria-rowindex` and the
// grid `aria-rowcount`, so assistive technology knows how many there are (the APG's
// pattern for partially rendered grids); the Filter box finds any task.

import { make, setText, stayingPut } from "./dom.js";
import { formatDuration, formatShortTime, formatTime, isCompleted, parseXapiDate, percent, timing } from "./format.js";
import { requests } from "./model.js";

/** Rows rendered beyond each edge of the visible part. */
const OVERSCAN = 8;

// One row, cloned for every task. Cell order is the header's (index.html).
const TEMPLATE = (() => {
  const row = make("div", "row", "row");
  row.tabIndex = -1;
  const name = make("div", "cell c-name", "gridcell");
  name.append(make("span", "twisty"), make("span", "label"));
  name.firstChild.setAttribute("aria-hidden", "true");
  const status = make("div", "cell c-status", "gridcell");
  status.append(make("span", "badge"), make("span", "note"));
  const progress = make("div", "cell c-progress", "gridcell");
  const bar = make("div", "bar", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.append(make("div", "meter"));
  progress.append(bar, make("span", "pct"));
  row.append(name, status, progress);
  for (const c of ["elapsed", "eta", "owner", "created", "finished"]) {
    row.append(make("div", `cell c-${c}`, "gridcell"));
  }
  return row;
})();

/** The elements of one rendered row, found once, and what they show. */
class RowView {
  constructor(ref) {
    this.ref = ref;
    const el = TEMPLATE.cloneNode(true);
    this.el = el;
    const [name, status, progress, elapsed, eta, owner, created, finished] = el.children;
    [this.twisty, this.label] = name.children;
    [this.badge, this.note] = status.children;
    [this.bar, this.pct] = progress.children;
    this.meter = this.bar.firstChild;
    Object.assign(this, { elapsed, eta, owner, created, finished });
    this.status = "";
    this.value = -1;
    this.placed = "";
  }

  /** Fills every cell from the task record; `ctx` = {now, own}. */
  fill(task, ctx) {
    setText(this.label, task.name_label);
    if (this.status !== task.status) {
      this.badge.className = `badge s-${task.status}`;
      this.el.dataset.status = task.status;
      setText(this.badge, task.status);
      this.status = task.status;
    }
    setText(this.note, requests(task).join(", "));
    const value = percent(task.progress);
    if (this.value !== value) {
      this.bar.setAttribute("aria-valuenow", String(value));
      this.meter.style.width = `${value}%`;
      setText(this.pct, `${value} %`);
      this.value = value;
    }
    this.bar.setAttribute("aria-label", `Progress of ${task.name_label}`);
    setText(this.owner, ctx.own.has(this.ref) ? "this session" : "other session");
    stamp(this.created, parseXapiDate(task.created), ctx.now);
    stamp(this.finished, isCompleted(task.status) ? parseXapiDate(task.finished) : undefined, ctx.now);
    this.times(task, ctx.now);
  }

  /** Elapsed time and ETA, which change with the clock alone. */
  times(task, now) {
    const { elapsed, eta } = timing(task, now);
    setText(this.elapsed, formatDuration(elapsed));
    setText(this.eta, eta === null ? (isCompleted(task.status) ? "" : "—") : formatDuration(eta));
  }

  /** Its place in the tree and the grid (a layout row and its index). */
  place(row, index, selected, tabbable) {
    const key = `${index} ${row.depth} ${row.pos}/${row.size} ${row.hasChildren && row.expanded} ${row.hasChildren} ${selected} ${tabbable}`;
    if (key === this.placed) return;
    this.placed = key;
    const el = this.el;
    el.setAttribute("aria-rowindex", String(index + 2)); // the header is row 1
    el.setAttribute("aria-level", String(row.depth));
    el.setAttribute("aria-posinset", String(row.pos));
    el.setAttribute("aria-setsize", String(row.size));
    el.style.setProperty("--depth", String(row.depth - 1));
    if (row.hasChildren) el.setAttribute("aria-expanded", String(row.expanded));
    else el.removeAttribute("aria-expanded");
    this.twisty.textContent = row.hasChildren ? (row.expanded ? "▾" : "▸") : "";
    el.setAttribute("aria-selected", String(selected));
    el.tabIndex = tabbable ? 0 : -1;
  }
}

/** A time cell: short text, the full time as its tooltip; `undefined` leaves it empty. */
function stamp(cell, ms, now) {
  setText(cell, ms === undefined ? "" : formatShortTime(ms, now));
  const full = ms === undefined ? "" : formatTime(ms);
  if (cell.title !== full) cell.title = full;
}

export class Grid {
  /**
   * `body`: the treegrid's row group, which scrolls. `source.model` is the TaskModel,
   * `source.ctx()` gives {now, own}. `on.activate(ref)` when a row is chosen (click,
   * Enter, Space), `on.toggle(ref)` to expand or collapse it.
   */
  constructor(body, source, on) {
    this.body = body;
    this.grid = body.closest('[role="treegrid"]');
    this.source = source;
    this.on = on;
    this.spacer = make("div", "spacer", "none");
    this.window = make("div", "window", "none");
    this.spacer.append(this.window);
    body.append(this.spacer);
    /** The layout rows (model.layout), in display order. */
    this.layout = [];
    /** ref → index in `layout`. */
    this.index = new Map();
    /** ref → RowView, for the rendered rows only; `order` is their DOM order. */
    this.views = new Map();
    this.order = [];
    /** row element → ref. */
    this.refOf = new WeakMap();
    this.selected = null;
    this.focusRef = null;
    this.rowHeight = 0;
    this.pending = false;
    body.addEventListener("scroll", () => this.#soon());
    new ResizeObserver(() => this.#soon()).observe(body);
    body.addEventListener("click", (e) => this.#click(e));
    body.addEventListener("keydown", (e) => this.#key(e));
    body.addEventListener("focusin", (e) => {
      const ref = this.#refAt(e.target);
      if (ref && ref !== this.focusRef) {
        this.focusRef = ref;
        this.render();
      }
    });
  }

  get size() {
    return this.layout.length;
  }

  /** Shows `layout` (model.layout rows) in order. */
  setLayout(layout) {
    this.layout = layout;
    this.index = new Map(layout.map((r, i) => [r.ref, i]));
    if (!this.index.has(this.focusRef)) this.focusRef = layout.length ? layout[0].ref : null;
    this.grid.setAttribute("aria-rowcount", String(layout.length + 1));
    this.render();
  }

  /** Renders the rows in and near the visible part of the list. */
  render() {
    const h = this.rowHeight || 28;
    const n = this.layout.length;
    this.spacer.style.height = `${n * h}px`;
    const top = this.body.scrollTop;
    const first = Math.max(0, Math.min(n, Math.floor(top / h) - OVERSCAN));
    const last = Math.min(n, Math.ceil((top + this.body.clientHeight) / h) + OVERSCAN);
    const focused = this.window.contains(document.activeElement) ? this.focusRef : null;
    const focusShown = this.index.has(this.focusRef) && this.index.get(this.focusRef) >= first && this.index.get(this.focusRef) < last;
    const ctx = this.source.ctx();
    const views = new Map();
    const next = [];
    for (let i = first; i < last; i++) {
      const row = this.layout[i];
      let v = this.views.get(row.ref);
      if (!v) {
        v = new RowView(row.ref);
        v.fill(this.source.model.tasks.get(row.ref), ctx);
        this.refOf.set(v.el, row.ref);
      }
      const tabbable = focusShown ? row.ref === this.focusRef : i === first;
      v.place(row, i, row.ref === this.selected, tabbable);
      views.set(row.ref, v);
      next.push(v);
    }
    this.#reconcile(next);
    this.views = views;
    this.window.style.transform = `translateY(${first * h}px)`;
    if (focused && views.has(focused) && document.activeElement !== views.get(focused).el) {
      views.get(focused).el.focus({ preventScroll: true });
    }
    if (!this.rowHeight && next.length) {
      this.rowHeight = next[0].el.offsetHeight || 28;
      if (this.rowHeight !== h) this.render();
    }
  }

  #reconcile(next) {
    const index = new Map(this.order.map((v, i) => [v, i]));
    const keep = new Set(next);
    for (const v of this.order) if (!keep.has(v)) v.el.remove();
    const stay = stayingPut(next.map((v) => index.get(v) ?? -1));
    let anchor = null;
    for (let i = next.length - 1; i >= 0; i--) {
      const el = next[i].el;
      if (!stay[i]) this.window.insertBefore(el, anchor);
      anchor = el;
    }
    this.order = next;
  }

  #soon() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  /** Refills the rendered rows of these tasks (the others are filled when rendered). */
  refresh(refs) {
    const ctx = this.source.ctx();
    for (const ref of refs) {
      const v = this.views.get(ref);
      const t = this.source.model.tasks.get(ref);
      if (v && t) v.fill(t, ctx);
    }
  }

  /** Drops every row (at logout). */
  reset() {
    for (const v of this.order) v.el.remove();
    this.order = [];
    this.views = new Map();
    this.layout = [];
    this.index = new Map();
  }

  /** Refreshes elapsed and ETA of the unfinished rendered rows. */
  tick() {
    const now = this.source.ctx().now;
    for (const v of this.order) {
      const t = this.source.model.tasks.get(v.ref);
      if (t && !isCompleted(t.status)) v.times(t, now);
    }
  }

  select(ref) {
    this.selected = ref;
    this.render();
  }

  /** Scrolls the row of `ref` into view and gives it keyboard focus. */
  focus(ref) {
    const i = this.index.get(ref);
    if (i === undefined) return;
    const h = this.rowHeight || 28;
    const b = this.body;
    if (i * h < b.scrollTop) b.scrollTop = i * h;
    else if ((i + 1) * h > b.scrollTop + b.clientHeight) b.scrollTop = (i + 1) * h - b.clientHeight;
    this.focusRef = ref;
    this.render();
    this.views.get(ref)?.el.focus({ preventScroll: true });
  }

  #refAt(target) {
    const el = target instanceof Element ? target.closest(".row") : null;
    return el ? (this.refOf.get(el) ?? null) : null;
  }

  #click(e) {
    const ref = this.#refAt(e.target);
    if (!ref) return;
    if (e.target instanceof Element && e.target.classList.contains("twisty")) {
      this.on.toggle(ref);
      return;
    }
    this.on.activate(ref);
  }

  // Row focus: Up/Down/Home/End/PageUp/PageDown move, Right expands (or goes to the
  // first child), Left collapses (or goes to the parent), Enter/Space opens the details.
  #key(e) {
    const ref = this.#refAt(e.target);
    if (!ref) return;
    const i = this.index.get(ref) ?? 0;
    const row = this.layout[i];
    const page = Math.max(1, Math.floor(this.body.clientHeight / (this.rowHeight || 28)) - 1);
    const go = (j) => this.focus(this.layout[Math.max(0, Math.min(this.layout.length - 1, j))]?.ref);
    switch (e.key) {
      case "ArrowDown": go(i + 1); break;
      case "ArrowUp": go(i - 1); break;
      case "Home": go(0); break;
      case "End": go(this.layout.length - 1); break;
      case "PageDown": go(i + page); break;
      case "PageUp": go(i - page); break;
      case "ArrowRight":
        if (row?.hasChildren && !row.expanded) this.on.toggle(ref);
        else if (row?.hasChildren) go(i + 1);
        break;
      case "ArrowLeft":
        if (row?.hasChildren && row.expanded) this.on.toggle(ref);
        else if (row?.parent) this.focus(row.parent);
        break;
      case "Enter":
      case " ":
        this.on.activate(ref);
        break;
      default:
        return;
    }
    e.preventDefault();
  }
}
