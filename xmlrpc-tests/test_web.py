"""The web page at `/` (src/web/), in real headless chromium against the real binary.

The page is a JSON-RPC client of the public API; these tests drive it as a person would
(labels, roles, the keyboard) while other clients change the tasks over XML-RPC, and check
the server's side of every action with XML-RPC too.
"""

import http.client
import os
import re
import shutil
import ssl
import time

import pytest

from browser import browser, log_in, open_page, playwright_api, poll, poll_equal, row, session_ref  # noqa: F401
from conftest import (
    REF_RE,
    ROOT,
    ROOT_PASSWORD,
    launch,
    ok,
    server_proxy,
    unique,
    user_name,
    user_password,
)

USERS = ["read-only", "pool-operator"]


@pytest.fixture(scope="module")
def web():
    srv = launch(["--gc-interval", "86400"], tls=True, users=USERS)
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture(scope="module")
def xml(web):
    """XML-RPC as root: (proxy, session)."""
    p = server_proxy(web.url + "/")
    return p, ok(p.session.login_with_password("root", ROOT_PASSWORD))


@pytest.fixture
def expect(playwright_api):
    return playwright_api.expect


def create(xml, label=None, description=""):
    p, root = xml
    return ok(p.task.create(root, label or unique("web"), description))


def finish(xml, ref, status="success"):
    p, root = xml
    ok(p.task.set_status(root, ref, status))


# --------------------------------------------------------------------------------------
# Serving


def get(url_base, path, method="GET", headers=None, tls=False):
    host, port = url_base.split("//")[1].split(":")
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_policy(headers):
    csp = headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


def test_page_and_assets_are_served_with_the_policy_on_http_and_https(web):
    for base, tls in [(web.url, False), (web.tls_url, True)]:
        status, headers, body = get(base, "/", tls=tls)
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert_policy(headers)
        page = body.decode()
        # No inline script at all: the only script is an external module.
        assert re.findall(r"<script[^>]*>", page) == ['<script type="module" src="/ui/app.js">']
        assert "</script>" in page and "<script>" not in page
        status, headers, js = get(base, "/ui/app.js", tls=tls)
        assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
        assert_policy(headers)
        assert b"event.from" in js
    status, headers, body = get(web.url, "/", method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["content-length"]) == len(get(web.url, "/")[2])
    etag = get(web.url, "/")[1]["etag"]
    assert get(web.url, "/", headers={"If-None-Match": etag})[0] == 304
    status, headers, _ = get(web.url, "/ui/no-such.js")
    assert status == 404
    assert_policy(headers)
    # XML-RPC keeps `/` for POST, and other GETs are still refused as before.
    assert "task.create" in server_proxy(web.url + "/").system.listMethods()
    status, headers, _ = get(web.url, "/RPC2")
    assert (status, headers["allow"]) == (405, "POST, OPTIONS")


def test_the_page_cannot_be_framed(web, open_page):
    page, watched = open_page()
    page.set_content(f'<iframe id="f" src="{web.url}/" width="800" height="600"></iframe>')
    frame = poll(lambda: len(page.frames) > 1 and page.frames[1])
    page.wait_for_timeout(500)
    # Blocked by `frame-ancestors 'none'`: chromium shows its error page instead.
    assert frame.url != web.url + "/" or frame.get_by_label("Username").count() == 0
    assert frame.get_by_role("button", name="Log in").count() == 0
    watched.check(allow_console=["frame-ancestors", "Refused to frame", "refused to connect"])


# --------------------------------------------------------------------------------------
# Logging in and out


def test_wrong_password_shows_xapi_error_and_no_session_is_kept(web, open_page, expect):
    page, _ = open_page(web.url + "/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert").first).to_have_text(
        "SESSION_AUTHENTICATION_FAILED: root; Authentication failure"
    )
    assert session_ref(page) is None
    assert page.url == web.url + "/"  # nothing was submitted natively (no password in a URL)
    expect(page.get_by_role("treegrid")).to_be_hidden()


def test_session_lives_in_session_storage_never_in_urls_or_cookies(web, open_page, expect):
    page, _ = open_page(web.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)
    ref = session_ref(page)
    assert re.fullmatch(REF_RE, ref)
    assert ref not in page.url and page.evaluate("document.cookie") == ""
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    # A reload carries on with the tab's session, without the form.
    page.reload()
    expect(page.get_by_role("status")).to_have_text("Live")
    expect(page.get_by_label("Username")).to_be_hidden()
    assert session_ref(page) == ref
    assert requested and not any(ref in u for u in requested)


def test_log_out_here_and_elsewhere_returns_to_the_form(web, xml, open_page, expect):
    p, _ = xml
    page, _ = open_page(web.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)
    ref = session_ref(page)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert session_ref(page) is None
    assert poll(lambda: p.session.get_uuid(ref, ref)["ErrorDescription"][0] == "SESSION_INVALID")
    # Logged out by another client: the page's event.from answers SESSION_INVALID at once.
    log_in(page, "root", ROOT_PASSWORD, expect)
    ok(p.session.logout(session_ref(page)))
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("alert").first).to_contain_text("SESSION_INVALID")


# --------------------------------------------------------------------------------------
# The live tree


def test_a_task_appears_moves_nests_and_is_cancelled_from_the_page(web, xml, open_page, expect):
    p, root = xml
    page, _ = open_page(web.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)

    label = unique("live")
    t0 = time.monotonic()
    task = create(xml, label, "made over XML-RPC")
    expect(row(page, label)).to_be_visible()
    appeared = time.monotonic() - t0
    print(f"\nweb: a task created over XML-RPC was on the page after {appeared * 1000:.0f} ms")

    bar = row(page, label).get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    expect(bar).to_have_accessible_name(f"Progress of {label}")
    ok(p.task.set_progress(root, task, 0.25))
    expect(bar).to_have_attribute("aria-valuenow", "25")
    ok(p.task.set_progress(root, task, 0.75))
    expect(bar).to_have_attribute("aria-valuenow", "75")
    expect(row(page, label)).to_contain_text("75 %")

    child_label = label + ".child"
    sub = server_proxy(web.url + "/", {"subtask-of": task}.items())
    ok(sub.task.create(root, child_label, "a subtask"))
    child = row(page, child_label)
    expect(child).to_have_attribute("aria-level", "2")
    expect(row(page, label)).to_have_attribute("aria-level", "1")
    expect(row(page, label)).to_have_attribute("aria-expanded", "true")
    parent_index = int(row(page, label).get_attribute("aria-rowindex"))
    assert int(child.get_attribute("aria-rowindex")) == parent_index + 1

    # Collapse and expand from the keyboard.
    row(page, label).focus()
    page.keyboard.press("ArrowLeft")
    expect(row(page, label)).to_have_attribute("aria-expanded", "false")
    expect(child).to_have_count(0)
    page.keyboard.press("ArrowRight")
    expect(child).to_be_visible()

    # Details, then Cancel: the request reaches the server.
    page.keyboard.press("Enter")
    details = page.get_by_role("complementary")
    expect(details.get_by_role("heading", level=2)).to_have_text(label)
    expect(details).to_contain_text("made over XML-RPC")
    uuid = ok(p.task.get_uuid(root, task))
    expect(details.get_by_role("link", name="Redfish task monitor")).to_have_attribute(
        "href", f"/redfish/v1/TaskService/TaskMonitors/{uuid}"
    )
    expect(details.get_by_role("link", name="XClarity job")).to_have_attribute("href", f"/tasks/{uuid}")
    details.get_by_role("button", name="Cancel").click()
    poll(lambda: "cancel" in ok(p.task.get_current_operations(root, task)).values())
    expect(row(page, label)).to_contain_text("cancel requested")

    # Its owner finishes it; the page shows the end and Destroy removes it.
    finish(xml, task, "cancelled")
    expect(row(page, label).locator(".badge")).to_have_text("cancelled")
    expect(details.get_by_role("button", name="Cancel")).to_be_hidden()
    # The focus, on Cancel until it went away, moved on to Destroy.
    expect(details.get_by_role("button", name="Destroy")).to_be_focused()
    details.get_by_role("button", name="Destroy").click()
    expect(row(page, label)).to_have_count(0)
    assert p.task.get_record(root, task)["ErrorDescription"][0] == "HANDLE_INVALID"
    expect(details.get_by_role("heading", level=2)).to_have_text("Task no longer exists")


def test_changes_made_through_redfish_and_xclarity_show_on_the_page(web, xml, open_page, expect):
    import redfish  # DMTF's client
    import requests  # as pylxca calls LXCA's REST API

    p, root = xml
    via_redfish, via_lxca = unique("rf"), unique("lxca")
    a, b = create(xml, via_redfish), create(xml, via_lxca)
    page, _ = open_page(web.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)
    expect(row(page, via_lxca)).to_be_visible()

    # Redfish: DELETE of a running task asks for its cancellation.
    rf = redfish.redfish_client(base_url=web.url, username="root", password=ROOT_PASSWORD, timeout=15)
    rf.login(auth="session")
    try:
        uuid = ok(p.task.get_uuid(root, a))
        assert rf.delete(f"/redfish/v1/TaskService/Tasks/{uuid}").status in (200, 202, 204)
    finally:
        rf.logout()
    expect(row(page, via_redfish)).to_contain_text("cancel requested")

    # XClarity: a job update (pylxca's `tasks -a update`) moves the progress bar.
    lxca = requests.Session()
    lxca.headers["content-type"] = "application/json; charset=utf-8"
    login = lxca.post(f"{web.url}/sessions", json={"UserId": "root", "password": ROOT_PASSWORD},
                      headers={"Referer": f"{web.url}/sessions"}, timeout=15)
    assert login.status_code == 200, login.text
    lxca.headers["X-Csrf-Token"] = lxca.cookies.get("csrf")
    uuid = ok(p.task.get_uuid(root, b))
    put = lxca.put(f"{web.url}/tasks/{uuid}", json={"jobUID": uuid, "percentage": 40}, timeout=15)
    assert put.status_code == 200, put.text
    expect(row(page, via_lxca).get_by_role("progressbar")).to_have_attribute("aria-valuenow", "40")
    lxca.delete(f"{web.url}/sessions", timeout=15)


def test_read_only_user_gets_actions_only_on_tasks_of_its_session(web, xml, open_page, expect):
    p, root = xml
    theirs = unique("root-task")
    create(xml, theirs)
    page, _ = open_page(web.url + "/")
    log_in(page, user_name("read-only"), user_password("read-only"), expect)
    expect(page.get_by_text("(read-only)")).to_be_visible()
    details = page.get_by_role("complementary")

    row(page, theirs).click()
    expect(details.get_by_role("heading", level=2)).to_have_text(theirs)
    # No actions at all (a hidden button is not in the accessibility tree either).
    expect(details.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(details.get_by_role("button", name="Destroy")).to_have_count(0)
    expect(row(page, theirs)).to_contain_text("other session")

    # A task this very session creates (here over XML-RPC with the page's session ref) is
    # the user's own: XAPI lets any role cancel and destroy it.
    mine = unique("ro-task")
    mine_ref = ok(p.task.create(session_ref(page), mine, ""))
    row(page, mine).click()
    expect(details.get_by_role("heading", level=2)).to_have_text(mine)
    expect(row(page, mine)).to_contain_text("this session")
    details.get_by_role("button", name="Cancel").click()
    poll(lambda: "cancel" in ok(p.task.get_current_operations(root, mine_ref)).values())
    expect(details.get_by_role("button", name="Destroy")).to_be_visible()


def test_a_refusal_by_the_server_is_shown_as_xapi_error(web, xml, open_page, expect):
    """The page offered Destroy on what it last knew; the task went meanwhile (the page's
    event.from calls were failing): the server's HANDLE_INVALID is shown, and the page
    resynchronises once it reaches the server again."""
    p, root = xml
    label = unique("gone")
    task = create(xml, label)
    page, watched = open_page(web.url + "/")
    log_in(page, user_name("pool-operator"), user_password("pool-operator"), expect)
    row(page, label).click()
    details = page.get_by_role("complementary")
    expect(details.get_by_role("button", name="Destroy")).to_be_visible()

    def cut_events(route):
        if "event.from" in (route.request.post_data or ""):
            route.abort()
        else:
            route.continue_()

    page.route("**/jsonrpc", cut_events)
    # Wake the page's waiting event.from, whose answer is now cut off.
    create(xml)
    expect(page.get_by_role("status")).to_have_text("Reconnecting…")
    finish(xml, task)
    ok(p.task.destroy(root, task))
    details.get_by_role("button", name="Destroy").click()
    expect(details.get_by_role("alert")).to_have_text(f"HANDLE_INVALID: task; {task}")
    page.unroute("**/jsonrpc")
    expect(page.get_by_role("status")).to_have_text("Live")
    expect(row(page, label)).to_have_count(0)
    watched.check(allow_console=["Failed to load resource", "ERR_FAILED"])


def test_markup_in_names_descriptions_and_other_config_stays_text(web, xml, open_page, expect):
    p, root = xml
    label = '<img src=x onerror="alert(1);window.__xss=1">'
    description = "<script>alert(2)</script><b>bold</b>"
    task = create(xml, label, description)
    ok(p.task.add_to_other_config(root, task, "<i>key</i>", '<img src=y onerror="alert(3)">'))
    error = ['<svg onload="alert(4)">', "<script>alert(5)</script>"]
    ok(p.task.set_error_info(root, task, error))
    result = '<iframe srcdoc="<script>alert(6)</script>"></iframe>'
    ok(p.task.set_result(root, task, result))
    page, _ = open_page(web.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)
    expect(row(page, label)).to_be_visible()
    row(page, label).click()
    details = page.get_by_role("complementary")
    expect(details.get_by_role("heading", level=2)).to_have_text(label)
    expect(details).to_contain_text(description)
    expect(details).to_contain_text("<i>key</i>")
    expect(details).to_contain_text('<img src=y onerror="alert(3)">')
    expect(details).to_contain_text(error[0])
    expect(details).to_contain_text(error[1])
    expect(details).to_contain_text(result)
    assert page.locator("svg, iframe").count() == 0
    page.wait_for_timeout(300)
    assert page.locator("img, b, i, script:not([src])").count() == 0
    assert page.evaluate("window.__xss") is None
    # The open_page fixture fails the test if any dialog (alert) was opened.


def test_the_policy_stops_script_that_got_into_the_page(web, open_page):
    """Should markup ever reach the page (the way an XSS would put it there), the policy
    the server sends stops it: the page as served, with an inline script, an inline
    handler and a `javascript:` link added, and its own module with `eval` and an
    `innerHTML` write added in front. Nothing of it runs."""
    page, watched = open_page()

    def with_markup(route):
        resp = route.fetch()
        body = resp.text().replace(
            "</head>", "<script>window.__inline = 1</script></head>"
        ).replace(
            "<main>",
            '<main><img src="/ui/icon.svg" onload="window.__handler = 1">'
            '<a id="js" href="javascript:window.__link = 1">x</a>',
        )
        route.fulfill(response=resp, body=body)

    def with_eval(route):
        resp = route.fetch()
        prefix = (
            'try { eval("window.__eval = 1"); } catch (e) { window.__evalRefused = e.name; }\n'
            'try { document.body.innerHTML = "<b>x</b>"; } catch (e) { window.__htmlRefused = e.name; }\n'
        )
        route.fulfill(response=resp, body=prefix + resp.text())

    page.route(web.url + "/", with_markup)
    page.route(web.url + "/ui/app.js", with_eval)
    page.goto(web.url + "/")
    page.get_by_role("button", name="Log in").wait_for()  # the page's own script ran
    page.click("#js")
    page.wait_for_timeout(300)
    got = page.evaluate("[window.__inline, window.__handler, window.__link, window.__eval]")
    assert got == [None, None, None, None]
    assert page.evaluate("[window.__evalRefused, window.__htmlRefused]") == ["EvalError", "TypeError"]
    watched.check(allow_console=["Content Security Policy", "TrustedHTML", "TrustedScript"])


def test_filter_by_text_and_status_and_sort_by_progress(web, xml, open_page, expect):
    p, root = xml
    prefix = unique("flt")
    refs = {}
    for name, progress in [("a", 0.2), ("b", 0.8), ("c", 0.5)]:
        refs[name] = create(xml, f"{prefix}-{name}")
        ok(p.task.set_progress(root, refs[name], progress))
    finish(xml, refs["b"])
    page, _ = open_page(web.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)

    def shows(*names, key=list):
        poll_equal(lambda: key(page.locator(".body .row .label").all_text_contents()), [f"{prefix}-{n}" for n in names])

    page.get_by_label("Filter").fill(prefix)
    shows("a", "b", "c", key=sorted)  # (created in the same second, maybe)
    expect(page.get_by_text(", 3 matching")).to_be_visible()
    page.get_by_label("Sort by").select_option("progress-desc")
    shows("b", "c", "a")
    page.get_by_label("Sort by").select_option("progress-asc")
    shows("a", "c", "b")
    # A progress change re-sorts live.
    ok(p.task.set_progress(root, refs["a"], 0.9))
    shows("c", "b", "a")
    page.get_by_label("Status").select_option("success")
    shows("b")
    page.get_by_label("Status").select_option("unfinished")
    shows("c", "a")


def test_everything_works_from_the_keyboard(web, xml, open_page, expect):
    p, root = xml
    prefix = unique("kb")
    refs = {create(xml, f"{prefix}-{n}"): f"{prefix}-{n}" for n in (1, 2)}
    page, _ = open_page(web.url + "/")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type("root")
    page.keyboard.press("Tab")
    page.keyboard.type(ROOT_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Live")
    expect(page.get_by_label("Filter")).to_be_focused()
    page.keyboard.type(prefix)
    expect(page.get_by_text(", 2 matching")).to_be_visible()
    # Through the status and sort menus into the grid: its first row takes the focus.
    for _ in range(3):
        page.keyboard.press("Tab")
    top = page.locator('[role="row"][aria-rowindex="2"]')
    expect(top).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.locator('[role="row"][aria-rowindex="3"]')).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(top).to_be_focused()
    label = top.locator(".label").text_content()
    page.keyboard.press("Enter")
    details = page.get_by_role("complementary")
    expect(details.get_by_role("heading", level=2)).to_have_text(label)
    page.keyboard.press("Tab")
    expect(details.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Enter")
    ref = next(r for r, name in refs.items() if name == label)
    poll(lambda: "cancel" in ok(p.task.get_current_operations(root, ref)).values())
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()
    expect(top).to_be_focused()


def test_the_page_works_over_https(web, xml, open_page, expect):
    page, _ = open_page(web.tls_url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)
    label = unique("tls")
    create(xml, label)
    expect(row(page, label)).to_be_visible()


# --------------------------------------------------------------------------------------
# Restarts


def test_resynchronises_after_the_server_restarts(fresh, open_page, expect):
    srv = fresh()
    p = server_proxy(srv.url + "/")
    root = ok(p.session.login_with_password("root", ROOT_PASSWORD))
    before = ok(p.task.create(root, "before-restart", ""))
    page, watched = open_page(srv.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)
    expect(row(page, "before-restart")).to_be_visible()
    srv.stop()
    expect(page.get_by_role("status")).to_have_text("Reconnecting…")
    srv.start()
    # The session and tasks were durable; change them before or after the page is back.
    p = server_proxy(srv.url + "/")
    ok(p.task.set_status(root, before, "success"))
    ok(p.task.destroy(root, before))
    ok(p.task.create(root, "after-restart", ""))
    expect(row(page, "after-restart")).to_be_visible()
    expect(row(page, "before-restart")).to_have_count(0)
    expect(page.get_by_role("status")).to_have_text("Live")
    watched.check(allow_console=["Failed to load resource", "ERR_CONNECTION_REFUSED"])


def test_a_session_the_server_forgot_returns_to_the_form(fresh, open_page, expect):
    srv = fresh(["--ephemeral"])
    page, watched = open_page(srv.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)
    srv.stop()
    srv.start()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("alert").first).to_contain_text("SESSION_INVALID")
    watched.check(allow_console=["Failed to load resource", "ERR_CONNECTION_REFUSED"])


# --------------------------------------------------------------------------------------
# The picture in the docs


def test_screenshot_for_the_docs(fresh, open_page, expect):
    """Takes docs/web.png's picture (target/web.png; UPDATE_DOCS=1 writes docs/web.png)."""
    srv = fresh()
    p = server_proxy(srv.url + "/")
    root = ok(p.session.login_with_password("root", ROOT_PASSWORD))

    def task(label, description, progress=0.0, status=None, parent=None, error=None, other=None):
        proxy = server_proxy(srv.url + "/", {"subtask-of": parent}.items()) if parent else p
        ref = ok(proxy.task.create(root, label, description))
        ok(p.task.set_progress(root, ref, progress))
        for k, v in (other or {}).items():
            ok(p.task.add_to_other_config(root, ref, k, v))
        if error:
            ok(p.task.set_error_info(root, ref, error))
        if status:
            ok(p.task.set_status(root, ref, status))
        return ref

    task("Rotate host certificates", "yearly rotation", 1.0, "success")
    task("Export template debian-12", "to the NFS export share", 0.4, "failure", error=["VDI_IO_ERROR", "Device I/O errors"])
    task("Import appliance web-tier", "OVA import", 0.1, "cancelled")
    migrate = task("Migrate vm17 to host-b", "live migration", 0.85)
    ok(p.task.cancel(root, migrate))
    backup = task(
        "Nightly backup of vm42",
        "incremental backup to the backup repository",
        0.62,
        other={"applies_to": "OpaqueRef:vm42", "backup:job": "nightly"},
    )
    task("Snapshot disk xvda", "quiesced snapshot", 1.0, "success", parent=backup)
    copy = task("Copy disk xvda", "delta since the last backup", 0.48, parent=backup)
    task("Compress chunks", "zstd", 0.7, parent=copy)
    task("Copy disk xvdb", "delta since the last backup", 0.0, parent=backup)

    page, _ = open_page(srv.url + "/")
    log_in(page, "root", ROOT_PASSWORD, expect)
    row(page, "Nightly backup of vm42").click()
    expect(page.get_by_role("complementary").get_by_role("heading", level=2)).to_have_text("Nightly backup of vm42")
    page.wait_for_timeout(300)  # the progress bars' transition
    shot = ROOT / "target" / "web.png"
    page.screenshot(path=str(shot))
    if os.environ.get("UPDATE_DOCS"):
        shutil.copy(shot, ROOT / "docs" / "web.png")
