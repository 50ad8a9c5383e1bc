// The page's copy of the task table, kept by applying `event.from` batches, and the pure
// decisions made from it: the tree, its display order under a filter and a sort, and
// which actions the server would allow. No DOM here (see model.test.js).

import { isCompleted } from "./format.js";

export const NULL_REF = "OpaqueRef:NULL";

/** Fields whose change can move a task in the display order or in or out of a filter. */
const TEXT_FIELDS = ["name_label", "name_description", "uuid"];

export class TaskModel {
  constructor() {
    /** @type {Map<string, object>} task ref → record, as in the event snapshot */
    this.tasks = new Map();
    /** parent ref → child refs, by each child's `subtask_of` (the parent may be unknown). */
    this.children = new Map();
  }

  get size() {
    return this.tasks.size;
  }

  /** Forgets everything (a resynchronisation starts from an empty token). */
  clear() {
    this.tasks.clear();
    this.children.clear();
  }

  /**
   * Applies one batch of `event.from` events. Returns what changed: the refs added,
   * modified and removed, and the names of the fields that changed in modified tasks,
   * so that the caller redraws only what it must.
   */
  apply(events) {
    const out = { added: new Set(), modified: new Set(), removed: new Set(), fields: new Set() };
    for (const ev of events) {
      if (ev.class !== "task") continue;
      const ref = ev.ref;
      if (ev.operation === "del") {
        if (this.tasks.has(ref)) {
          this.#unlink(ref, this.tasks.get(ref).subtask_of);
          this.tasks.delete(ref);
          out.removed.add(ref);
          out.added.delete(ref);
          out.modified.delete(ref);
        }
        continue;
      }
      const next = ev.snapshot;
      if (!next || typeof next !== "object") continue;
      const prev = this.tasks.get(ref);
      if (prev === undefined) {
        out.added.add(ref);
        out.removed.delete(ref);
      } else {
        for (const k of Object.keys(next)) {
          if (!sameValue(prev[k], next[k])) out.fields.add(k);
        }
        if (prev.subtask_of !== next.subtask_of) this.#unlink(ref, prev.subtask_of);
        if (!out.added.has(ref)) out.modified.add(ref);
      }
      if (prev === undefined || prev.subtask_of !== next.subtask_of) this.#link(ref, next.subtask_of);
      this.tasks.set(ref, next);
    }
    return out;
  }

  #link(ref, parent) {
    if (!parent || parent === NULL_REF) return;
    let set = this.children.get(parent);
    if (!set) this.children.set(parent, (set = new Set()));
    set.add(ref);
  }

  #unlink(ref, parent) {
    const set = this.children.get(parent);
    if (!set) return;
    set.delete(ref);
    if (set.size === 0) this.children.delete(parent);
  }

  /** The known children of `ref` (subtasks of a task the page knows). */
  childrenOf(ref) {
    return this.children.get(ref) ?? EMPTY;
  }

  /** The chain of known ancestors of `ref`, nearest first. */
  ancestors(ref) {
    const out = [];
    const seen = new Set([ref]);
    let p = this.tasks.get(ref)?.subtask_of;
    while (p && this.tasks.has(p) && !seen.has(p)) {
      out.push(p);
      seen.add(p);
      p = this.tasks.get(p).subtask_of;
    }
    return out;
  }

  /**
   * The rows to show, in display order: depth first, siblings sorted by `view.sort`;
   * a task whose parent the page does not know is a root. With a filter, a task is shown
   * when it or one of its descendants matches (ancestors give context). Children of a
   * collapsed task are left out. Each row: {ref, depth, parent, pos, size (its place
   * among its shown siblings), hasChildren, expanded}.
   */
  layout(view) {
    const cmp = comparator(view.sort);
    // Ties (XAPI's times have whole seconds) by name, then ref, so the order is stable.
    const byRef = (a, b) => {
      const ta = this.tasks.get(a);
      const tb = this.tasks.get(b);
      return cmp(ta, tb) || cmpStr(ta.name_label, tb.name_label) || cmpStr(a, b);
    };
    const match = matcher(view);
    const shown = match ? this.#matching(match) : null;
    const rows = [];
    const visited = new Set();
    // Depth first with an explicit stack: XAPI nests subtasks without bound, and a
    // recursive walk overflowed the browser's stack (~9,000 levels), blanking the page.
    const stack = [];
    const walk = (top, pos, size) => {
      stack.push([top, 1, null, pos, size]);
      while (stack.length) {
        const [ref, depth, parent, at, of] = stack.pop();
        visited.add(ref);
        const kids = [...this.childrenOf(ref)].filter(
          (k) => this.tasks.has(k) && !visited.has(k) && (!shown || shown.has(k)),
        );
        const expanded = !view.collapsed?.has(ref);
        rows.push({ ref, depth, parent, pos: at, size: of, hasChildren: kids.length > 0, expanded });
        if (!expanded) {
          for (const k of kids) markAll(k);
          continue;
        }
        kids.sort(byRef);
        for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1, ref, i + 1, kids.length]);
      }
    };
    const markAll = (top) => {
      const todo = [top];
      while (todo.length) {
        const ref = todo.pop();
        if (visited.has(ref)) continue;
        visited.add(ref);
        for (const k of this.childrenOf(ref)) if (this.tasks.has(k)) todo.push(k);
      }
    };
    const roots = [];
    for (const [ref, t] of this.tasks) {
      if ((!this.tasks.has(t.subtask_of) || t.subtask_of === ref) && (!shown || shown.has(ref))) roots.push(ref);
    }
    roots.sort(byRef);
    roots.forEach((r, i) => walk(r, i + 1, roots.length));
    // A cycle of parents (which XAPI cannot make, but a snapshot could claim) has no
    // root: show its members at the top level rather than lose them.
    const rest = [...this.tasks.keys()].filter((r) => !visited.has(r) && (!shown || shown.has(r)));
    rest.sort(byRef);
    for (const r of rest) if (!visited.has(r)) walk(r, 1, 1);
    return rows;
  }

  /** Refs that match, plus all their known ancestors. */
  #matching(match) {
    const shown = new Set();
    for (const [ref, t] of this.tasks) {
      if (!match(t)) continue;
      shown.add(ref);
      for (const a of this.ancestors(ref)) {
        if (shown.has(a)) break;
        shown.add(a);
      }
    }
    return shown;
  }
}

const EMPTY = new Set();

function sameValue(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Sorts: "created-desc" (newest first, the default), "created-asc", "progress-desc", "progress-asc". */
export const SORTS = {
  "created-desc": (a, b) => cmpStr(b.created, a.created),
  "created-asc": (a, b) => cmpStr(a.created, b.created),
  "progress-desc": (a, b) => Number(b.progress) - Number(a.progress) || cmpStr(b.created, a.created),
  "progress-asc": (a, b) => Number(a.progress) - Number(b.progress) || cmpStr(b.created, a.created),
};

// XAPI's basic datetime form sorts as text in time order.
const cmpStr = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

function comparator(sort) {
  return SORTS[sort] ?? SORTS["created-desc"];
}

/** Statuses the filter offers; "unfinished" is pending or cancelling. */
export const STATUS_FILTERS = ["all", "unfinished", "pending", "cancelling", "success", "failure", "cancelled"];

/** A predicate for the view's text and status filter, or null when nothing is filtered. */
export function matcher(view) {
  const text = (view.text ?? "").trim().toLowerCase();
  const status = view.status ?? "all";
  if (!text && status === "all") return null;
  return (t) => {
    if (status === "unfinished" ? isCompleted(t.status) : status !== "all" && t.status !== status) {
      return false;
    }
    return !text || TEXT_FIELDS.some((f) => String(t[f] ?? "").toLowerCase().includes(text));
  };
}

/** Whether a change of these fields can change the layout under this view. */
export function affectsLayout(fields, view) {
  if (fields.has("subtask_of")) return true;
  if (String(view.sort).startsWith("progress") && fields.has("progress")) return true;
  if (matcher(view) && (fields.has("status") || TEXT_FIELDS.some((f) => fields.has(f)))) return true;
  return false;
}

// ---- What the server would allow (xapi's RBAC and TaskHelper.assert_op_valid)

/** Whether the session holds a permission; the local superuser holds all of them. */
export function holds(me, permission) {
  return me.is_local_superuser === true || (me.rbac_permissions ?? []).includes(permission);
}

/** The user's role as XAPI names it (the role is listed among the session's permissions). */
export function roleOf(me) {
  if (me.is_local_superuser) return "local superuser";
  const roles = ["pool-admin", "pool-operator", "vm-power-admin", "vm-admin", "vm-operator", "client-cert", "read-only"];
  return (me.rbac_permissions ?? []).find((p) => roles.includes(p)) ?? "no role";
}

/** The task's pending operation values (`current_operations` maps a task ref to one). */
function pendingOps(task) {
  return Object.values(task.current_operations ?? {});
}

/**
 * The actions to offer on a task. The server decides; this predicts its answer so that
 * a user is not offered what will be refused: the base permission, then ownership —
 * the task was created by this very session (the page knows no other of its user's
 * sessions: XAPI does not say who created a task) or the session holds
 * `task.destroy/any`. Cancel only while the task is unfinished (XAPI accepts it later but
 * it means nothing then); Destroy unless a destroy is already pending (XAPI would answer
 * MAP_DUPLICATE_KEY).
 */
export function actionsFor(me, ownTasks, ref, task) {
  const owned = ownTasks.has(ref) || holds(me, "task.destroy/any");
  return {
    cancel: owned && holds(me, "task.cancel") && !isCompleted(task.status),
    destroy: owned && holds(me, "task.destroy") && !pendingOps(task).includes("destroy"),
  };
}

/** Notes on pending operations, for the status column ("cancel requested"). */
export function requests(task) {
  const ops = pendingOps(task);
  const out = [];
  if (ops.includes("cancel")) out.push("cancel requested");
  if (ops.includes("destroy")) out.push("destroy requested");
  return out;
}
