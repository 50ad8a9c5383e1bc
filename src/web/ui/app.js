// The page: login, the live task tree and the details pane, all through the public API.
//
// Live updates are XAPI's own idiom: `event.from(["task"], token, 30)` long-polls. The
// first call (empty token, no wait) answers every task; each next call waits on the
// server until something changed after the token and answers only that. There is no periodic
// `get_all_records`. When the token is refused, the server cannot be reached (a restart)
// or the task count the server reports disagrees with ours (a deletion it no longer
// remembers), the page starts again from an empty token. SESSION_INVALID (logged out
// elsewhere, expired, or the server forgot it) returns to the login form.
//
// The session ref is kept in memory and in sessionStorage (this tab only, gone with it),
// never in a URL or a cookie.

import { call, clockSkew, NetworkError, XapiError } from "./rpc.js";
import { TaskModel, STATUS_FILTERS, actionsFor, affectsLayout, holds, matcher, roleOf } from "./model.js";
import { Details } from "./details.js";
import { Grid } from "./grid.js";

const SESSION_KEY = "xapi-taskd.session";
/** Seconds one event.from may wait on the server; the HTTP call gets 15 s more. */
const EVENT_WAIT = 30;

const $ = (id) => document.getElementById(id);

const state = {
  session: null,
  me: null,
  /** Tasks created by this session (session.tasks): the ones it owns for certain. */
  own: new Set(),
  /** Bumped at every login and logout, so that a loop of an earlier session stops. */
  epoch: 0,
  view: { text: "", status: "all", sort: "created-desc", collapsed: new Set() },
  selected: null,
};
const model = new TaskModel();
let grid;
let details;

const ctx = () => ({ now: Date.now() + clockSkew, own: state.own, model });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** XAPI's error as a person reads it: the code, then its parameters. */
function describe(err) {
  if (err instanceof XapiError) return err.params.length ? `${err.code}: ${err.params.join("; ")}` : err.code;
  return `The server could not be reached (${err.message}).`;
}

function setConn(text, offline) {
  const el = $("conn");
  if (el.textContent !== text) el.textContent = text;
  el.classList.toggle("offline", offline);
}

// ---- Session

async function start(session) {
  const me = await call("session.get_record", [session, session]);
  state.session = session;
  state.me = me;
  state.own = new Set(me.tasks ?? []);
  sessionStorage.setItem(SESSION_KEY, session);
  const epoch = ++state.epoch;
  $("login").hidden = true;
  $("tasks").hidden = false;
  $("logout").hidden = false;
  $("who").hidden = false;
  $("who").textContent = `${me.auth_user_name} (${roleOf(me)})`;
  setConn("Loading…", false);
  follow(epoch);
}

/** Back to the login form, saying why. */
function end(message) {
  state.epoch++;
  state.session = null;
  state.me = null;
  state.own = new Set();
  state.selected = null;
  sessionStorage.removeItem(SESSION_KEY);
  model.clear();
  grid.reset();
  $("rows").scrollTop = 0;
  details.hide();
  $("tasks").hidden = true;
  $("logout").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  setConn("", false);
  $("login-error").textContent = message;
  $("username").focus();
}

async function onLogin(e) {
  e.preventDefault();
  const button = e.target.querySelector("button");
  button.disabled = true;
  $("login-error").textContent = "";
  try {
    const session = await call("session.login_with_password", [
      $("username").value,
      $("password").value,
      "1.0",
      "xapi-taskd web page",
    ]);
    $("password").value = "";
    await start(session);
    $("filter-text").focus();
  } catch (err) {
    $("login-error").textContent = describe(err);
  } finally {
    button.disabled = false;
  }
}

async function onLogout() {
  const session = state.session;
  end("");
  try {
    await call("session.logout", [session], 5000);
  } catch {
    // Gone already, or the server is away: the session ends on the server's side anyway.
  }
}

// ---- Following the tasks

async function follow(epoch) {
  let token = "";
  let failures = 0;
  // Whether the server's task count matched ours after the last full load: only then is
  // a later mismatch a sign of a lost deletion (and not a count of tasks we cannot see).
  let countsAgree = false;
  while (epoch === state.epoch) {
    const full = token === "";
    const asked = performance.now();
    let batch;
    try {
      // The first call must not wait: with no task at all it would until the timeout.
      const wait = full ? 0 : EVENT_WAIT;
      batch = await call("event.from", [state.session, ["task"], token, wait], (wait + 15) * 1000);
    } catch (err) {
      if (epoch !== state.epoch) return;
      if (err instanceof XapiError && err.code === "SESSION_INVALID") {
        end("Your session has ended (SESSION_INVALID). Log in again.");
        return;
      }
      failures++;
      token = "";
      setConn(err instanceof XapiError ? `Resynchronising (${err.code})…` : "Reconnecting…", true);
      await sleep(Math.min(5000, 250 * 2 ** Math.min(failures, 5)));
      continue;
    }
    if (epoch !== state.epoch) return;
    failures = 0;
    apply(batch, full, asked);
    token = typeof batch.token === "string" ? batch.token : "";
    const count = batch.valid_ref_counts?.task;
    if (full) countsAgree = count === model.size;
    else if (countsAgree && count !== model.size) {
      setConn("Resynchronising…", false);
      token = "";
      continue;
    }
    setConn("Live", false);
  }
}

/** Applies one batch to the model and the page, and measures it (User Timing). */
function apply(batch, full, asked) {
  const received = performance.now();
  // A full load replaces the model; the rows on screen stay (and keep focus and scroll
  // position) and are refilled from it.
  if (full) model.clear();
  const ch = model.apply(Array.isArray(batch.events) ? batch.events : []);
  grid.refresh(full ? [...grid.views.keys()] : ch.modified);
  if (full || ch.added.size || ch.removed.size || affectsLayout(ch.fields, state.view)) relayout();
  if (ch.added.size && !holds(state.me, "task.destroy/any")) refreshOwn(state.epoch);
  const sel = state.selected;
  if (sel && (full || ch.modified.has(sel) || ch.removed.has(sel) || ch.added.has(sel))) showDetails();
  // Measured once the browser has drawn it: a frame, then a task after that frame.
  requestAnimationFrame(() =>
    setTimeout(() => {
      const name = full ? "xapi-taskd:load" : "xapi-taskd:update";
      // Keep only the latest of each, so a page left open does not collect entries.
      performance.clearMeasures(name);
      performance.measure(name, { start: full ? asked : received, detail: { events: ch.added.size + ch.modified.size + ch.removed.size } });
      if (full) {
        performance.clearMeasures("xapi-taskd:load:fetch");
        performance.measure("xapi-taskd:load:fetch", { start: asked, end: received });
      }
    }, 0),
  );
}

/** Which tasks this session created: only changes when some were added. */
async function refreshOwn(epoch) {
  let refs;
  try {
    refs = await call("session.get_tasks", [state.session, state.session]);
  } catch {
    return; // the event loop deals with a lost session or server
  }
  if (epoch !== state.epoch || !Array.isArray(refs)) return;
  const own = new Set(refs);
  const changed = [...own].filter((r) => !state.own.has(r)).concat([...state.own].filter((r) => !own.has(r)));
  state.own = own;
  grid.refresh(changed);
  if (changed.includes(state.selected)) showDetails();
}

function relayout() {
  const rows = model.layout(state.view);
  grid.setLayout(rows);
  $("empty").hidden = rows.length > 0;
  const match = matcher(state.view);
  let text = `${model.size} ${model.size === 1 ? "task" : "tasks"}`;
  if (match) {
    let n = 0;
    for (const t of model.tasks.values()) if (match(t)) n++;
    text += `, ${n} matching`;
  }
  $("count").textContent = text;
}

// ---- Details and actions

function select(ref) {
  state.selected = ref;
  grid.select(ref);
  showDetails();
}

function showDetails() {
  const ref = state.selected;
  if (!ref) {
    details.hide();
    return;
  }
  const t = model.tasks.get(ref);
  const actions = t ? actionsFor(state.me, state.own, ref, t) : { cancel: false, destroy: false };
  details.show(ref, t, actions, ctx());
}

async function act(method, done) {
  const ref = details.ref;
  if (!ref || !state.session) return;
  details.say("");
  try {
    await call(method, [state.session, ref]);
    details.say(done);
  } catch (err) {
    if (err instanceof XapiError && err.code === "SESSION_INVALID") {
      end("Your session has ended (SESSION_INVALID). Log in again.");
      return;
    }
    details.say(describe(err));
  }
}

// ---- Wiring

function init() {
  grid = new Grid($("rows"), { model, ctx }, {
    activate: select,
    toggle: (ref) => {
      const c = state.view.collapsed;
      if (c.has(ref)) c.delete(ref);
      else c.add(ref);
      relayout();
      grid.focus(ref);
    },
  });
  details = new Details($("details"), {
    cancel: () => act("task.cancel", "Cancel requested: the task's owner finishes it."),
    destroy: () => act("task.destroy", "Destroyed (an unfinished task goes once it completes)."),
  });
  $("details-close").addEventListener("click", () => {
    const ref = state.selected;
    select(null);
    grid.focus(ref);
  });
  $("details").addEventListener("keydown", (e) => {
    if (e.key === "Escape") $("details-close").click();
  });

  for (const s of STATUS_FILTERS) {
    const o = document.createElement("option");
    o.value = s;
    o.textContent = s === "all" ? "All" : s === "unfinished" ? "Unfinished" : s;
    $("filter-status").append(o);
  }
  let debounce = 0;
  $("filter-text").addEventListener("input", (e) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      state.view.text = e.target.value;
      relayout();
    }, 120);
  });
  $("filter-status").addEventListener("change", (e) => {
    state.view.status = e.target.value;
    relayout();
  });
  $("sort").addEventListener("change", (e) => {
    state.view.sort = e.target.value;
    const [key, dir] = state.view.sort.split("-");
    $("col-created").setAttribute("aria-sort", key === "created" ? (dir === "asc" ? "ascending" : "descending") : "none");
    $("col-progress").setAttribute("aria-sort", key === "progress" ? (dir === "asc" ? "ascending" : "descending") : "none");
    relayout();
  });
  $("col-created").setAttribute("aria-sort", "descending");

  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);

  // Elapsed and ETA move with the clock alone.
  setInterval(() => state.session && grid.tick(), 1000);

  resume(sessionStorage.getItem(SESSION_KEY));
}

/** After a reload: carry on with the tab's session if the server still knows it. */
async function resume(session) {
  if (!session) {
    $("username").focus();
    return;
  }
  for (let attempt = 0; !state.session; attempt++) {
    try {
      await start(session);
      return;
    } catch (err) {
      if (err instanceof XapiError) {
        end(err.code === "SESSION_INVALID" ? "Your session has ended (SESSION_INVALID). Log in again." : describe(err));
        return;
      }
      setConn("Reconnecting…", true);
      await sleep(Math.min(5000, 500 * 2 ** Math.min(attempt, 4)));
    }
  }
}

init();
