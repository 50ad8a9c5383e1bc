"""10,000 tasks on the web page: load and update times, measured in the browser.

The targets (issue 15) are a load under a second and an update applied within 100 ms.
The page measures itself with the User Timing API (`xapi-taskd:load`: from its first
event.from request to the rows drawn; `xapi-taskd:update`: from an event batch's arrival
to its rows drawn); the test adds end-to-end figures (a reload until the rows are drawn;
an XML-RPC `set_progress` until the progress bar changed). On a busy 2-core CI machine
the asserted bounds are generous (a regression to quadratic work still fails them);
XAPI_TASKD_STRICT_TIMINGS=1 asserts the targets themselves. The figures are printed and
written to target/web-timings.json.
"""

import http.client
import json
import os
import pathlib
import statistics
import threading
import time

import pytest

from browser import browser, log_in, measure, open_page, playwright_api, poll, poll_equal, row  # noqa: F401
from conftest import ROOT, ROOT_PASSWORD, ok, server_proxy

N = 10_000
CHILDREN = 4  # each root task gets four subtasks: 2,000 trees
STRICT = os.environ.get("XAPI_TASKD_STRICT_TIMINGS") == "1"
LOAD_LIMIT_MS = 1000 if STRICT else 5000
UPDATE_LIMIT_MS = 100 if STRICT else 1000


@pytest.fixture
def expect(playwright_api):
    return playwright_api.expect


class Rpc:
    """JSON-RPC calls on one keep-alive connection."""

    def __init__(self, srv):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        self.ids = iter(range(1, 10**9))

    def __call__(self, method, params, headers=None):
        body = json.dumps({"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params})
        self.conn.request("POST", "/jsonrpc", body, {"content-type": "application/json", **(headers or {})})
        reply = json.loads(self.conn.getresponse().read())
        assert "result" in reply, reply
        return reply["result"]


def in_parallel(srv, work, items, threads=4):
    """`work(rpc, item)` for every item, from `threads` connections; the results, in no order."""
    out = []
    lock = threading.Lock()

    def run(k):
        rpc = Rpc(srv)
        mine = [r for item in items[k::threads] for r in work(rpc, item)]
        rpc.conn.close()
        with lock:
            out.extend(mine)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    return out


def create_trees(srv, session, n):
    """n tasks over JSON-RPC, n / (CHILDREN + 1) trees of a root and its subtasks."""

    def tree(rpc, i):
        parent = rpc("task.create", [session, f"bulk-{i}", "one of 2,000 trees"])
        children = [
            rpc("task.create", [session, f"bulk-{i}.{j}", "a subtask"], {"subtask-of": parent})
            for j in range(CHILDREN)
        ]
        return [parent, *children]

    return in_parallel(srv, tree, list(range(n // (CHILDREN + 1))))


def test_ten_thousand_tasks_load_in_a_second_and_update_within_100_ms(fresh, open_page, expect):
    # In memory: creating 10,000 tasks durably would only slow the set-up (the page's
    # work does not depend on it; the live test measures updates on a durable server).
    srv = fresh(["--ephemeral"])
    p = server_proxy(srv.url + "/")
    root = ok(p.session.login_with_password("root", ROOT_PASSWORD))
    t = time.monotonic()
    assert len(create_trees(srv, root, N)) == N
    setup_s = time.monotonic() - t

    page, _ = open_page(srv.url + "/")
    t = time.monotonic()
    log_in(page, "root", ROOT_PASSWORD, expect)
    login_to_live_ms = (time.monotonic() - t) * 1000
    poll(lambda: measure(page, "xapi-taskd:load") is not None)
    load_ms = measure(page, "xapi-taskd:load")
    fetch_ms = measure(page, "xapi-taskd:load:fetch")
    grid = page.get_by_role("treegrid")
    expect(grid).to_have_attribute("aria-rowcount", str(N + 1))
    expect(page.get_by_text(f"{N} tasks")).to_be_visible()
    assert page.locator('[role="row"][aria-level="2"]').count() > 0

    # A reload with the tab's session: the whole page until the rows are drawn.
    page.reload()
    poll(lambda: measure(page, "xapi-taskd:load") is not None)
    reload_ms = page.evaluate("(() => { const e = performance.getEntriesByName('xapi-taskd:load')[0]; return e.startTime + e.duration; })()")
    expect(grid).to_have_attribute("aria-rowcount", str(N + 1))

    # Updates of tasks on screen: XML-RPC set_progress until the bar changed (end to end,
    # wall clocks of one machine) and the page's own apply time.
    labels = page.locator(".body .row .label").all_text_contents()[:6]
    e2e, apply = [], []
    for i, label in enumerate(labels):
        (ref,) = ok(p.task.get_by_name_label(root, label))
        value = 10 + 13 * i
        page.evaluate(
            """([label, value]) => {
                window.__changed = null;
                const bar = [...document.querySelectorAll('.body .row')]
                    .find(r => r.querySelector('.label').textContent === label).querySelector('[role=progressbar]');
                new MutationObserver((_, obs) => {
                    if (bar.getAttribute('aria-valuenow') === String(value)) { window.__changed = Date.now(); obs.disconnect(); }
                }).observe(bar, { attributes: true });
                performance.clearMeasures('xapi-taskd:update');
            }""",
            [label, value],
        )
        sent = time.time() * 1000
        ok(p.task.set_progress(root, ref, value / 100))
        changed = poll(lambda: page.evaluate("window.__changed"))
        poll(lambda: measure(page, "xapi-taskd:update") is not None)
        e2e.append(changed - sent)
        apply.append(measure(page, "xapi-taskd:update"))
        expect(row(page, label).get_by_role("progressbar")).to_have_attribute("aria-valuenow", str(value))

    # Sorted by progress, an update re-sorts all 10,000 rows.
    page.get_by_label("Sort by").select_option("progress-desc")
    page.evaluate("performance.clearMeasures('xapi-taskd:update')")
    (ref,) = ok(p.task.get_by_name_label(root, "bulk-1999"))
    ok(p.task.set_progress(root, ref, 1.0))
    poll_equal(lambda: page.locator(".body .row .label").first.text_content(), "bulk-1999")
    poll(lambda: measure(page, "xapi-taskd:update") is not None)
    resort_ms = measure(page, "xapi-taskd:update")

    # The filter finds a task deep in the list (with its parent for context).
    page.get_by_label("Filter").fill("bulk-777.3")
    poll_equal(lambda: page.locator(".body .row .label").all_text_contents(), ["bulk-777", "bulk-777.3"])

    figures = {
        "tasks": N,
        "setup_s": round(setup_s, 2),
        "load_ms": round(load_ms),
        "load_fetch_ms": round(fetch_ms),
        "login_click_to_live_ms": round(login_to_live_ms),
        "reload_to_rows_drawn_ms": round(reload_ms),
        "update_apply_ms": [round(a, 1) for a in apply],
        "update_end_to_end_ms": [round(e) for e in e2e],
        "update_apply_median_ms": round(statistics.median(apply), 1),
        "update_end_to_end_median_ms": round(statistics.median(e2e)),
        "resort_update_ms": round(resort_ms, 1),
        "chromium": page.context.browser.version,
    }
    out = ROOT / "target" / "web-timings.json"
    pathlib.Path(out).write_text(json.dumps(figures, indent=2) + "\n")
    print("\nweb, 10,000 tasks:", json.dumps(figures))
    assert load_ms < LOAD_LIMIT_MS, figures
    assert reload_ms < 2 * LOAD_LIMIT_MS, figures
    assert max(apply) < UPDATE_LIMIT_MS and resort_ms < UPDATE_LIMIT_MS, figures
    assert statistics.median(e2e) < UPDATE_LIMIT_MS * 2, figures


# The server keeps this many tombstones of deleted tasks (src/db/changes.rs).
MAX_TOMBSTONES = 16_384


def test_deletions_the_server_no_longer_remembers_make_the_page_reload(fresh, open_page, expect):
    """More deletions than the server keeps tombstones for happen while the page's
    event.from is held back: the batch it then gets misses some of them, the task count
    the server sends with it disagrees with the page's, and the page reloads everything."""
    srv = fresh(["--ephemeral", "--max-pending-tasks-per-user", "20000"])
    p = server_proxy(srv.url + "/")
    root = ok(p.session.login_with_password("root", ROOT_PASSWORD))
    doomed = in_parallel(srv, lambda rpc, i: [rpc("task.create", [root, f"doomed-{i}", ""])], list(range(MAX_TOMBSTONES + 100)))
    ok(p.task.create(root, "survivor", ""))
    page, _ = open_page(srv.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)
    grid = page.get_by_role("treegrid")
    expect(grid).to_have_attribute("aria-rowcount", str(len(doomed) + 2))

    held = []

    def hold(route):
        if "event.from" in (route.request.post_data or ""):
            held.append(route)
        else:
            route.continue_()

    page.route("**/jsonrpc", hold)
    ok(p.task.create(root, "wake-up", ""))  # answers the waiting call; the next one is held
    poll(lambda: page.wait_for_timeout(20) or held)
    page.evaluate("performance.clearMeasures('xapi-taskd:load')")

    def remove(rpc, ref):
        rpc("task.set_status", [root, ref, "success"])
        rpc("task.destroy", [root, ref])
        return []

    in_parallel(srv, remove, doomed)
    held[0].continue_()
    page.unroute("**/jsonrpc")  # (which lets through any call held since)
    poll(lambda: measure(page, "xapi-taskd:load") is not None)  # a full reload happened
    expect(grid).to_have_attribute("aria-rowcount", "3")
    expect(row(page, "survivor")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Live")
