// node --test: the page's task table, tree, filter/sort and action rules (model.js).
import assert from "node:assert/strict";
import { test } from "node:test";
import { NULL_REF, TaskModel, actionsFor, affectsLayout, roleOf } from "./model.js";

let n = 0;
function task(fields = {}) {
  n++;
  return {
    uuid: `uuid-${n}`,
    name_label: `t${n}`,
    name_description: "",
    status: "pending",
    progress: 0,
    created: `20261201T10:00:${String(n % 60).padStart(2, "0")}Z`,
    finished: "19700101T00:00:00Z",
    current_operations: {},
    other_config: {},
    subtask_of: NULL_REF,
    ...fields,
  };
}
const add = (ref, snapshot) => ({ class: "task", operation: "add", ref, snapshot });
const mod = (ref, snapshot) => ({ class: "task", operation: "mod", ref, snapshot });
const del = (ref) => ({ class: "task", operation: "del", ref });
const view = (v = {}) => ({ text: "", status: "all", sort: "created-desc", collapsed: new Set(), ...v });
const order = (m, v) => m.layout(view(v)).map((r) => `${"  ".repeat(r.depth - 1)}${r.ref}`);

test("a batch adds, modifies and deletes, and says which fields changed", () => {
  const m = new TaskModel();
  const a = task();
  let ch = m.apply([add("A", a), add("B", task()), { class: "session", operation: "add", ref: "S" }]);
  assert.deepEqual([...ch.added], ["A", "B"]);
  assert.equal(m.size, 2);
  ch = m.apply([mod("A", { ...a, progress: 0.5 }), del("B"), del("never-seen")]);
  assert.deepEqual([...ch.modified], ["A"]);
  assert.deepEqual([...ch.removed], ["B"]);
  assert.deepEqual([...ch.fields], ["progress"]);
  // Created and deleted within one batch: nothing to show.
  ch = m.apply([add("C", task()), del("C")]);
  assert.equal(ch.added.size, 0);
  assert.equal(m.size, 1);
});

test("a chain of 100,000 subtasks is laid out, filtered and collapsed (no recursion)", () => {
  // XAPI nests without bound and any user may build such a chain; a recursive walk
  // overflowed the browser's stack at ~9,000 levels and left every user's page blank.
  const m = new TaskModel();
  const N = 100_000;
  const events = [];
  for (let i = 0; i < N; i++) events.push(add(`R${i}`, task({ subtask_of: i ? `R${i - 1}` : NULL_REF, name_label: `deep ${i}` })));
  m.apply(events);
  const rows = m.layout(view());
  assert.equal(rows.length, N);
  assert.deepEqual([rows[0].ref, rows[0].depth, rows[0].hasChildren], ["R0", 1, true]);
  assert.deepEqual([rows[N - 1].ref, rows[N - 1].depth, rows[N - 1].parent, rows[N - 1].hasChildren], [`R${N - 1}`, N, `R${N - 2}`, false]);
  // The deepest one matches: all its ancestors come along.
  assert.equal(m.layout(view({ text: `deep ${N - 1}` })).length, N);
  // Collapsed half-way: the rest are hidden.
  assert.equal(m.layout(view({ collapsed: new Set([`R${N / 2}`]) })).length, N / 2 + 1);
});

test("subtasks nest at any depth; a task whose parent is unknown is a root", () => {
  const m = new TaskModel();
  m.apply([
    add("P", task({ created: "20261201T10:00:01Z" })),
    add("C", task({ subtask_of: "P", created: "20261201T10:00:02Z" })),
    add("G", task({ subtask_of: "C" })),
    add("O", task({ subtask_of: "OpaqueRef:gone", created: "20261201T10:00:00Z" })),
  ]);
  assert.deepEqual(order(m), ["P", "  C", "    G", "O"]);
  const rows = m.layout(view());
  assert.deepEqual(
    rows.map((r) => [r.ref, r.depth, r.parent, r.hasChildren, r.pos, r.size]),
    [["P", 1, null, true, 1, 2], ["C", 2, "P", true, 1, 1], ["G", 3, "C", false, 1, 1], ["O", 1, null, false, 2, 2]],
  );
  assert.deepEqual(order(m, { collapsed: new Set(["C"]) }), ["P", "  C", "O"]);
  // The parent is destroyed: its child becomes a root.
  m.apply([del("P")]);
  assert.deepEqual(order(m), ["C", "  G", "O"]);
  // A parent that arrives after its child adopts it.
  m.apply([add("P", task({ created: "20261201T10:00:01Z" }))]);
  assert.deepEqual(order(m), ["P", "  C", "    G", "O"]);
});

test("a cycle of parents (impossible in XAPI) still shows every task", () => {
  const m = new TaskModel();
  m.apply([add("X", task({ subtask_of: "Y" })), add("Y", task({ subtask_of: "X" }))]);
  assert.equal(m.layout(view()).length, 2);
});

test("sorts by created or progress among siblings; ties by name", () => {
  const m = new TaskModel();
  m.apply([
    add("old", task({ name_label: "b", created: "20261201T09:00:00Z", progress: 0.9 })),
    add("new", task({ name_label: "a", created: "20261201T11:00:00Z", progress: 0.1 })),
    add("tie", task({ name_label: "c", created: "20261201T11:00:00Z", progress: 0.5 })),
  ]);
  assert.deepEqual(order(m), ["new", "tie", "old"]);
  assert.deepEqual(order(m, { sort: "created-asc" }), ["old", "new", "tie"]);
  assert.deepEqual(order(m, { sort: "progress-desc" }), ["old", "tie", "new"]);
  assert.deepEqual(order(m, { sort: "progress-asc" }), ["new", "tie", "old"]);
});

test("the filter keeps matches and their ancestors, by text or status", () => {
  const m = new TaskModel();
  m.apply([
    add("P", task({ name_label: "backup all" })),
    add("C", task({ name_label: "copy disk", subtask_of: "P", status: "failure" })),
    add("Q", task({ name_label: "other", name_description: "Nightly DISK check" })),
  ]);
  assert.deepEqual(order(m, { text: "disk" }).sort(), ["  C", "P", "Q"]);
  assert.deepEqual(order(m, { status: "failure" }), ["P", "  C"]);
  assert.deepEqual(order(m, { status: "unfinished" }).sort(), ["P", "Q"]);
  assert.deepEqual(order(m, { text: "uuid-" }).length, 3);
  assert.deepEqual(order(m, { text: "nothing" }), []);
});

test("which changes can move rows", () => {
  const f = (...names) => new Set(names);
  assert.equal(affectsLayout(f("progress"), view()), false);
  assert.equal(affectsLayout(f("progress"), view({ sort: "progress-asc" })), true);
  assert.equal(affectsLayout(f("status"), view()), false);
  assert.equal(affectsLayout(f("status"), view({ status: "pending" })), true);
  assert.equal(affectsLayout(f("name_label"), view({ text: "x" })), true);
  assert.equal(affectsLayout(f("subtask_of"), view()), true);
});

const ROLE_PERMS = {
  "read-only": ["read-only", "task.cancel", "task.destroy", "task.create"],
  "pool-operator": ["pool-operator", "task.cancel", "task.destroy", "task.destroy/any"],
};
const session = (role) =>
  role === "root"
    ? { is_local_superuser: true, rbac_permissions: [] }
    : { is_local_superuser: false, rbac_permissions: ROLE_PERMS[role] };

test("actions: own tasks for every role, others' only with task.destroy/any", () => {
  const t = task();
  const own = new Set(["mine"]);
  const both = { cancel: true, destroy: true };
  const none = { cancel: false, destroy: false };
  assert.deepEqual(actionsFor(session("read-only"), own, "mine", t), both);
  assert.deepEqual(actionsFor(session("read-only"), own, "theirs", t), none);
  assert.deepEqual(actionsFor(session("pool-operator"), own, "theirs", t), both);
  assert.deepEqual(actionsFor(session("root"), new Set(), "theirs", t), both);
  // Cancelling a finished task means nothing; a second destroy is MAP_DUPLICATE_KEY.
  assert.deepEqual(actionsFor(session("root"), own, "x", { ...t, status: "success" }), { cancel: false, destroy: true });
  const destroying = { ...t, current_operations: { "OpaqueRef:t": "destroy" } };
  assert.deepEqual(actionsFor(session("root"), own, "x", destroying), { cancel: true, destroy: false });
});

test("the role as XAPI lists it among the permissions", () => {
  assert.equal(roleOf(session("read-only")), "read-only");
  assert.equal(roleOf(session("root")), "local superuser");
  assert.equal(roleOf({ rbac_permissions: [] }), "no role");
});
