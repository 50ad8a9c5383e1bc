"""The Redfish TaskService face (docs/redfish.md), black-box, with DMTF's `redfish`
client library and raw HTTP, against the same server the XML-RPC suite uses.

The point of the face is that it is one engine seen two ways: tasks made or changed over
XML-RPC are seen at once over Redfish and the other way round, with the same users,
roles and ownership rule.
"""

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (
    ROOT_PASSWORD,
    UUID_RE,
    Raw,
    Re,
    Server,
    fail,
    header_proxy,
    launch,
    ok,
    server_proxy,
    unique,
    user_name,
    user_password,
)

redfish = pytest.importorskip("redfish")
redfish_utilities = pytest.importorskip("redfish_utilities")

TASKS = "/redfish/v1/TaskService/Tasks"
MONITORS = "/redfish/v1/TaskService/TaskMonitors"


def client(server, user="root", password=ROOT_PASSWORD, auth="session"):
    ctx = redfish.redfish_client(base_url=server.url, username=user, password=password, timeout=15)
    ctx.login(auth=auth)
    return ctx


@pytest.fixture
def rf(server):
    """A DMTF `redfish` client logged in as root with a Redfish session."""
    ctx = client(server)
    yield ctx
    ctx.logout()


@pytest.fixture
def xml(url):
    p = server_proxy(url)
    yield p
    p("close")()


def uuid_of(xml, session, task_ref):
    return ok(xml.task.get_uuid(session, task_ref))


def rf_json(raw, method, path, headers=None, body=None, auth=("root", ROOT_PASSWORD)):
    """One raw request with Basic auth: (status, lower-cased headers, parsed JSON or None)."""
    h = dict(headers or {})
    # A body is JSON, declared so (as sushy, DMTF's redfish and redfishtool declare it).
    if body is not None and not any(k.lower() == "content-type" for k in h):
        h["Content-Type"] = "application/json"
    if auth:
        h["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    status, hdrs, data = raw.request(method, path, body=body, headers=h)
    return status, hdrs, (json.loads(data) if data else None)


# --------------------------------------------------------------------------------------
# Watching a task through its monitor


def test_task_created_over_xmlrpc_is_watched_to_completion_through_its_monitor(server, rf, xml, root):
    task = ok(xml.task.create(root, "Async.VM.clone", "a long job"))
    tid = uuid_of(xml, root, task)

    first = rf.get(f"{MONITORS}/{tid}")
    assert first.status == 202
    assert first.task_location == f"{MONITORS}/{tid}"  # a path, as DMTF's library needs
    # No Retry-After: sushy and redfishtool cannot both read any value of it.
    assert first.getheader("Retry-After") is None
    assert first.dict["Id"] == tid and first.dict["TaskState"] == "Running"
    assert "@odata.id" not in first.dict  # sushy's blocking mode would follow it
    assert first.getheader("Content-Location") == f"{TASKS}/{tid}"

    def worker():
        w = server_proxy(server.url + "/")
        time.sleep(0.4)
        ok(w.task.set_progress(root, task, 0.5))
        time.sleep(1.2)
        ok(w.task.set_result(root, task, "<value>OpaqueRef:new-vm</value>"))
        ok(w.task.set_status(root, task, "success"))

    t = threading.Thread(target=worker)
    t.start()
    final = redfish_utilities.poll_task_monitor(rf, first, silent=True)
    t.join()
    assert final.status == 200
    body = final.dict
    assert body["TaskState"] == "Completed" and body["TaskStatus"] == "OK"
    assert body["PercentComplete"] == 50
    assert body["Oem"]["Xapi"]["Result"] == "<value>OpaqueRef:new-vm</value>"
    assert [m["MessageId"] for m in body["Messages"]] == [
        "TaskEvent.1.0.5.TaskStarted",
        "TaskEvent.1.0.5.TaskCompletedOK",
    ]
    # The Task resource itself always answers 200, and a client-completed task has an
    # EndTime: its set_status stamped `finished` (unlike xapi, docs/architecture.md).
    res = rf.get(f"{TASKS}/{tid}")
    assert res.status == 200 and res.dict["TaskState"] == "Completed"
    assert res.dict["EndTime"] >= res.dict["StartTime"]


def test_task_shows_progress_while_running(rf, xml, root):
    task = ok(xml.task.create(root, unique("progress"), ""))
    tid = uuid_of(xml, root, task)
    ok(xml.task.set_progress(root, task, 0.256))
    body = rf.get(f"{TASKS}/{tid}").dict
    assert body["PercentComplete"] == 26
    assert body["TaskState"] == "Running"
    assert "TaskStatus" not in body and "EndTime" not in body
    assert body["TaskMonitor"] == f"{MONITORS}/{tid}"
    assert body["StartTime"] == Re(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def test_failed_async_call_shows_its_xapi_error(server, rf, xml, sessions):
    # xapi runs RBAC inside an Async call's task: the denial is the task's error_info.
    ro = sessions["read-only"]
    t = ok(xml.task.create(ro, unique("target"), ""))
    job = ok(getattr(xml, "Async.task.add_to_other_config")(ro, t, "applies_to", "vm"))
    deadline = time.time() + 10
    while ok(xml.task.get_status(ro, job)) == "pending" and time.time() < deadline:
        time.sleep(0.02)
    jid = uuid_of(xml, ro, job)
    body = rf.get(f"{TASKS}/{jid}").dict
    assert body["TaskState"] == "Exception" and body["TaskStatus"] == "Critical"
    assert body["EndTime"] == Re(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
    ids = [m["MessageId"] for m in body["Messages"]]
    assert ids == [
        "TaskEvent.1.0.5.TaskStarted",
        "TaskEvent.1.0.5.TaskAborted",
        "XapiTask.1.0.0.RBAC_PERMISSION_DENIED",
    ]
    assert body["Messages"][2]["MessageArgs"][0] == "task.add_to_other_config/key:applies_to"
    # The monitor answers what the operation answered: an error.
    mon = rf.get(f"{MONITORS}/{jid}")
    assert mon.status == 400
    info = mon.dict["error"]["@Message.ExtendedInfo"]
    assert info[-1]["MessageId"] == "XapiTask.1.0.0.RBAC_PERMISSION_DENIED"


# --------------------------------------------------------------------------------------
# DELETE: cancel or destroy, XAPI's ownership rule, events


def test_redfish_delete_cancels_a_task_an_xmlrpc_client_sees_cancelling(rf, xml, root):
    task = ok(xml.task.create(root, unique("cancel-me"), ""))
    tid = uuid_of(xml, root, task)
    token = ok(getattr(xml.event, "from")(root, ["task"], "", 0.0))["token"]

    res = rf.delete(f"{TASKS}/{tid}")
    assert res.status == 202
    # The DELETE's own monitor, which ends when the task does (the task's monitor is
    # removed once it is cancelled).
    assert res.getheader("Location") == f"{MONITORS}/cancel-{tid}"
    assert res.dict["TaskState"] == "Cancelling" and "@odata.id" not in res.dict

    # XML-RPC sees XAPI's cancel request (status stays pending until the owner acts) ...
    ops = ok(xml.task.get_current_operations(root, task))
    assert list(ops.values()) == ["cancel"]
    assert ok(xml.task.get_status(root, task)) == "pending"
    # ... and an event for it, as for any XAPI client's task.cancel.
    batch = ok(getattr(xml.event, "from")(root, ["task"], token, 5.0))
    assert any(e["ref"] == task and e["operation"] == "mod" for e in batch["events"])

    # Both monitors keep answering 202 while the owner has not finished the task.
    assert rf.get(f"{MONITORS}/{tid}").status == 202
    assert rf.get(f"{MONITORS}/cancel-{tid}").status == 202
    ok(xml.task.set_status(root, task, "cancelled"))
    body = rf.get(f"{TASKS}/{tid}").dict
    assert body["TaskState"] == "Cancelled" and body["TaskStatus"] == "Warning"
    assert body["Messages"][-1]["MessageId"] == "TaskEvent.1.0.5.TaskCancelled"
    assert "TaskMonitor" not in body
    # A cancelled task's monitor is removed (TaskService v1.3), for DELETE too;
    # the Task itself can still be deleted (destroyed).
    assert rf.get(f"{MONITORS}/{tid}").status == 404
    assert rf.delete(f"{MONITORS}/{tid}").status == 404
    # The DELETE's monitor ends with the cancelled Task; it cannot itself be deleted.
    final = rf.get(f"{MONITORS}/cancel-{tid}")
    assert final.status == 200 and final.dict["TaskState"] == "Cancelled"
    assert rf.delete(f"{MONITORS}/cancel-{tid}").status == 405
    assert rf.delete(f"{TASKS}/{tid}").status == 204
    assert xml.task.get_record(root, task) == fail("HANDLE_INVALID", "task", task)


def test_xapi_cancelling_status_is_redfish_cancelling(rf, xml, root):
    task = ok(xml.task.create(root, unique(), ""))
    ok(xml.task.set_status(root, task, "cancelling"))
    body = rf.get(f"{TASKS}/{uuid_of(xml, root, task)}").dict
    assert body["TaskState"] == "Cancelling" and "TaskStatus" not in body


def test_delete_on_a_finished_task_destroys_it(rf, xml, root):
    task = ok(xml.task.create(root, unique("done"), ""))
    tid = uuid_of(xml, root, task)
    ok(xml.task.set_status(root, task, "success"))
    res = rf.delete(f"{MONITORS}/{tid}")
    assert res.status == 204
    assert xml.task.get_record(root, task) == fail("HANDLE_INVALID", "task", task)
    assert rf.get(f"{TASKS}/{tid}").status == 404
    assert rf.get(f"{MONITORS}/{tid}").status == 404


@pytest.fixture
def own_server():
    """A server of this test's own, for actions that touch every task."""
    srv = Server()
    try:
        srv.start()
        srv.add_user(user_name("vm-admin"), "vm-admin", user_password("vm-admin"))
        yield srv
    finally:
        srv.cleanup()


def test_delete_all_completed_tasks_follows_ownership(own_server):
    action = "/redfish/v1/TaskService/Actions/TaskService.DeleteAllCompletedTasks"
    raw = Raw(own_server.url)
    xml = server_proxy(own_server.url + "/")
    root = ok(xml.session.login_with_password("root", ROOT_PASSWORD))
    role = "vm-admin"
    mine_s = ok(xml.session.login_with_password(user_name(role), user_password(role)))
    mine = ok(xml.task.create(mine_s, unique("mine-done"), ""))
    ok(xml.task.set_status(mine_s, mine, "success"))
    roots = ok(xml.task.create(root, unique("roots-done"), ""))
    ok(xml.task.set_status(root, roots, "failure"))
    running = ok(xml.task.create(mine_s, unique("running"), ""))
    status, _, body = rf_json(raw, "POST", action, body=b"{}", auth=(user_name(role), user_password(role)))
    assert status == 200
    info = body["@Message.ExtendedInfo"]
    assert info[0]["MessageId"] == "Base.1.22.1.Success"
    assert info[1]["MessageId"] == "XapiTask.1.0.0.RBAC_PERMISSION_DENIED"
    # Its own completed task went; root's stayed (no task.destroy/any); running ones stay.
    assert xml.task.get_record(root, mine) == fail("HANDLE_INVALID", "task", mine)
    assert ok(xml.task.get_status(root, roots)) == "failure"
    assert ok(xml.task.get_status(root, running)) == "pending"
    # root may destroy every completed task.
    status, _, body = rf_json(raw, "POST", action, body=b"{}")
    assert status == 200 and len(body["@Message.ExtendedInfo"]) == 1
    assert xml.task.get_record(root, roots) == fail("HANDLE_INVALID", "task", roots)
    assert ok(xml.task.get_status(root, running)) == "pending"
    assert rf_json(raw, "POST", action, body=b"{}", auth=None)[0] == 401
    assert rf_json(raw, "GET", action)[0] == 405


def test_a_cross_site_post_with_cached_basic_credentials_is_refused(own_server):
    """A page on another site may make a browser POST a form, `text/plain` or a body-less
    `fetch` (no Content-Type) to the action, and the browser attaches the Basic
    credentials it cached: such a POST used to run the action (200, the tasks gone).
    Now every body that is not declared JSON is refused with 415, before any
    credential is looked at, and nothing is changed."""
    action = "/redfish/v1/TaskService/Actions/TaskService.DeleteAllCompletedTasks"
    raw = Raw(own_server.url)
    xml = server_proxy(own_server.url + "/")
    root = ok(xml.session.login_with_password("root", ROOT_PASSWORD))
    done = ok(xml.task.create(root, unique("done"), ""))
    ok(xml.task.set_status(root, done, "success"))
    page = {"Origin": "http://evil.example", "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
            "Authorization": "Basic " + base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()}
    sent = [
        ("application/x-www-form-urlencoded", b"a=b"),
        ("multipart/form-data; boundary=xyz",
         b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--xyz--\r\n"),
        ("text/plain", b"{}"),
        ("text/plain;charset=UTF-8", b""),
        # fetch(url, {method: "POST", mode: "no-cors", credentials: "include"}): no type.
        (None, b""),
        (None, None),
    ]
    for ctype, body in sent:
        h = dict(page, **({"Content-Type": ctype} if ctype else {}))
        status, _, data = raw.request("POST", action, body=body, headers=h)
        got = json.loads(data)
        assert status == 415, (ctype, body, status, got)
        assert got["error"]["@Message.ExtendedInfo"][0]["MessageId"] == "Base.1.22.1.UnrecognizedRequestBody"
        assert ok(xml.task.get_status(root, done)) == "success", (ctype, body)
    # The same with no credentials at all is refused the same way (the type comes first).
    assert rf_json(raw, "POST", action, headers={"Content-Type": "text/plain"}, body=b"{}", auth=None)[0] == 415
    # A form cannot log in either (no session is made).
    form = f"UserName=root&Password={ROOT_PASSWORD}"
    status, hdrs, _ = rf_json(raw, "POST", "/redfish/v1/SessionService/Sessions", auth=None, body=form,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "x-auth-token" not in hdrs
    # A JSON body (any case, with a charset) still runs it.
    status, _, body = rf_json(raw, "POST", action, body=b"{}",
                              headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert status == 200, body
    assert xml.task.get_record(root, done) == fail("HANDLE_INVALID", "task", done)


def test_browsers_are_not_challenged_to_send_basic_credentials(raw):
    """bmcweb's rule: a browser (an Accept naming text/html, or X-Requested-With) gets no
    `WWW-Authenticate: Basic` with its 401, so it never prompts and never caches the
    credentials that a cross-site request would carry. Clients still get the challenge."""
    for h in ({"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
              {"X-Requested-With": "XMLHttpRequest"}):
        status, hdrs, body = rf_json(raw, "GET", TASKS, headers=h, auth=None)
        assert status == 401 and "www-authenticate" not in hdrs, (h, hdrs)
        assert body["error"]["code"] == "Base.1.22.1.NoValidSession"
        status, hdrs, _ = rf_json(raw, "GET", TASKS, headers=h, auth=("root", "wrong"))
        assert status == 401 and "www-authenticate" not in hdrs, (h, hdrs)
    for h in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
        status, hdrs, _ = rf_json(raw, "GET", TASKS, headers=h, auth=None)
        assert status == 401 and hdrs["www-authenticate"] == 'Basic realm="xapi-taskd"', h


def test_a_body_too_large_is_payload_too_large(raw):
    big = json.dumps({"UserName": "root", "Password": "x" * (400 * 1024)})
    status, _, body = rf_json(raw, "POST", "/redfish/v1/SessionService/Sessions", body=big, auth=None)
    assert status == 413
    info = body["error"]["@Message.ExtendedInfo"][0]
    assert info["MessageId"] == "Base.1.22.1.PayloadTooLarge" and info["MessageArgs"] == []
    assert info["Message"] == "The supplied payload exceeds the maximum size supported by the service."


def test_logins_refused_for_load_are_503_with_retry_after():
    """The login guard refuses a login from an address with 8 logins in progress (past
    its free failures) without looking at the password: that is load, not a wrong
    password, so Redfish answers 503 with Retry-After, for Basic and for session
    creation, where it used to answer 401."""
    srv = launch(["--login-free-failures", "1", "--gc-interval", "3600"], users=())
    try:
        raw = Raw(srv.url)
        bad = ("root", "wrong")
        # Five failures (answered after 0, 0.1, 0.2, 0.4 s): each further one waits >= 0.8 s.
        for _ in range(5):
            assert rf_json(raw, "GET", TASKS, auth=bad)[0] == 401
        with ThreadPoolExecutor(8) as pool:
            slow = [pool.submit(rf_json, raw, "GET", TASKS, auth=bad) for _ in range(8)]
            time.sleep(0.3)
            # The right password, refused for load: not a 401.
            status, hdrs, body = rf_json(raw, "GET", TASKS)
            login = json.dumps({"UserName": "root", "Password": ROOT_PASSWORD})
            s_status, s_hdrs, s_body = rf_json(raw, "POST", "/redfish/v1/SessionService/Sessions",
                                               body=login, auth=None)
            assert all(f.result()[0] == 401 for f in slow)
        for st, h, b in ((status, hdrs, body), (s_status, s_hdrs, s_body)):
            assert st == 503, (st, b)
            assert h["retry-after"] == "1" and "www-authenticate" not in h and "x-auth-token" not in h
            info = b["error"]["@Message.ExtendedInfo"]
            assert info[0]["MessageId"] == "Base.1.22.1.ServiceTemporarilyUnavailable"
            assert info[0]["MessageArgs"] == ["1"]
            assert info[1]["MessageId"] == "XapiTask.1.0.0.SESSION_AUTHENTICATION_FAILED"
            assert info[1]["MessageArgs"][1].startswith("Too many logins in progress from this address")
        # Once those are answered, the right password works.
        assert rf_json(raw, "GET", TASKS)[0] == 200
    finally:
        srv.cleanup()


def test_ownership_is_xapis(server, raw, xml, root, sessions):
    # A vm-admin may not cancel root's task (needs task.destroy/any) ...
    task = ok(xml.task.create(root, unique("roots"), ""))
    tid = uuid_of(xml, root, task)
    role = "vm-admin"
    status, _, body = rf_json(raw, "DELETE", f"{TASKS}/{tid}", auth=(user_name(role), user_password(role)))
    assert status == 403
    info = body["error"]["@Message.ExtendedInfo"]
    assert info[0]["MessageId"] == "Base.1.22.1.InsufficientPrivilege"
    assert info[1]["MessageId"] == "XapiTask.1.0.0.RBAC_PERMISSION_DENIED"
    assert ok(xml.task.get_current_operations(root, task)) == {}
    # ... but its own task, yes; and a pool-operator may cancel anybody's.
    own = ok(xml.task.create(sessions[role], unique("mine"), ""))
    status, _, _ = rf_json(
        raw, "DELETE", f"{TASKS}/{uuid_of(xml, root, own)}", auth=(user_name(role), user_password(role))
    )
    assert status == 202
    op = "pool-operator"
    status, _, _ = rf_json(raw, "DELETE", f"{TASKS}/{tid}", auth=(user_name(op), user_password(op)))
    assert status == 202
    assert list(ok(xml.task.get_current_operations(root, task)).values()) == ["cancel"]


def test_read_only_users_read_every_task_but_change_none(raw, xml, root):
    task = ok(xml.task.create(root, unique("visible"), ""))
    tid = uuid_of(xml, root, task)
    ro = (user_name("read-only"), user_password("read-only"))
    status, _, body = rf_json(raw, "GET", f"{TASKS}/{tid}", auth=ro)
    assert status == 200 and body["Id"] == tid
    status, _, _ = rf_json(raw, "DELETE", f"{TASKS}/{tid}", auth=ro)
    assert status == 403


# --------------------------------------------------------------------------------------
# Collections and sub-tasks


def test_subtasks_are_flattened_under_their_root(rf, url, xml, root):
    parent = ok(xml.task.create(root, unique("parent"), ""))
    child = ok(header_proxy(url, {"subtask-of": parent}).task.create(root, unique("child"), ""))
    grandchild = ok(header_proxy(url, {"subtask-of": child}).task.create(root, unique("gc"), ""))
    p, c, g = (uuid_of(xml, root, r) for r in (parent, child, grandchild))

    members = [m["@odata.id"] for m in rf.get(TASKS).dict["Members"]]
    assert f"{TASKS}/{p}" in members
    assert f"{TASKS}/{c}" not in members and f"{TASKS}/{g}" not in members

    sub = rf.get(f"{TASKS}/{p}/SubTasks").dict
    assert sorted(m["@odata.id"] for m in sub["Members"]) == sorted(
        [f"{TASKS}/{p}/SubTasks/{c}", f"{TASKS}/{p}/SubTasks/{g}"]
    )
    assert sub["Members@odata.count"] == 2
    body = rf.get(f"{TASKS}/{p}/SubTasks/{g}").dict
    assert body["@odata.id"] == f"{TASKS}/{p}/SubTasks/{g}" and "SubTasks" not in body
    assert rf.get(f"{TASKS}/{p}").dict["SubTasks"] == {"@odata.id": f"{TASKS}/{p}/SubTasks"}
    # Only under its own root.
    other = uuid_of(xml, root, ok(xml.task.create(root, unique(), "")))
    assert rf.get(f"{TASKS}/{other}/SubTasks/{g}").status == 404
    assert rf.get(f"{TASKS}/{c}/SubTasks").status == 404


def test_a_subtask_whose_parent_is_destroyed_becomes_a_root(rf, url, xml, root):
    parent = ok(xml.task.create(root, unique("parent"), ""))
    child = ok(header_proxy(url, {"subtask-of": parent}).task.create(root, unique("child"), ""))
    c = uuid_of(xml, root, child)
    ok(xml.task.set_status(root, parent, "success"))
    ok(xml.task.destroy(root, parent))
    assert f"{TASKS}/{c}" in [m["@odata.id"] for m in rf.get(TASKS).dict["Members"]]
    body = rf.get(f"{TASKS}/{c}").dict
    assert body["@odata.id"] == f"{TASKS}/{c}" and "SubTasks" in body


def test_collection_count_matches_members(rf):
    body = rf.get(TASKS).dict
    assert body["Members@odata.count"] == len(body["Members"])


def test_task_service_publishes_the_retention(rf):
    body = rf.get("/redfish/v1/TaskService").dict
    assert body["@odata.type"] == "#TaskService.v1_3_0.TaskService"
    assert body["TaskAutoDeleteTimeoutMinutes"] == 65  # xapi's 3900 s
    assert body["CompletedTaskOverWritePolicy"] == "Oldest"
    assert body["ServiceEnabled"] is True and body["LifeCycleEventOnTaskStateChange"] is False
    assert body["DateTime"] == Re(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def test_retention_comes_from_the_configuration():
    srv = Server(extra_args=["--completed-task-timeout", "601", "--session-timeout", "900"])
    try:
        srv.start()
        raw = Raw(srv.url)
        status, _, body = rf_json(raw, "GET", "/redfish/v1/TaskService")
        assert status == 200 and body["TaskAutoDeleteTimeoutMinutes"] == 11  # 601 s, rounded up
        status, _, body = rf_json(raw, "GET", "/redfish/v1/SessionService")
        assert status == 200 and body["SessionTimeout"] == 900
    finally:
        srv.cleanup()


def test_unknown_tasks_are_404(rf):
    for path in (f"{TASKS}/nope", f"{MONITORS}/nope", f"{MONITORS}/cancel-nope", f"{TASKS}/nope/SubTasks"):
        res = rf.get(path)
        assert res.status == 404, path
        assert res.dict["error"]["@Message.ExtendedInfo"][0]["MessageId"].startswith("Base.1.22.1.")


# --------------------------------------------------------------------------------------
# Sessions and authentication: one set of users and sessions for both faces


def test_redfish_session_is_an_xapi_session(server, raw, xml):
    status, hdrs, body = rf_json(
        raw,
        "POST",
        "/redfish/v1/SessionService/Sessions",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"UserName": user_name("pool-operator"), "Password": user_password("pool-operator")}),
        auth=None,
    )
    assert status == 201
    token = hdrs["x-auth-token"]
    assert hdrs["location"] == "/redfish/v1/SessionService/Sessions/" + body["Id"]
    assert body["Id"] == Re(UUID_RE) and body["UserName"] == user_name("pool-operator")
    # The token is the XAPI session: XML-RPC accepts it, and tasks made with it are seen.
    assert ok(xml.session.get_uuid(token, token)) == body["Id"]
    t = ok(xml.task.create(token, unique("via-token"), ""))
    tid = uuid_of(xml, token, t)
    status, _, got = rf_json(raw, "GET", f"{TASKS}/{tid}", headers={"X-Auth-Token": token}, auth=None)
    assert status == 200
    # Logging out through Redfish logs the XAPI session out.
    status, _, _ = rf_json(raw, "DELETE", hdrs["location"], headers={"X-Auth-Token": token}, auth=None)
    assert status == 204
    assert xml.session.get_uuid(token, token) == fail("SESSION_INVALID", token)
    status, hdrs, refused = rf_json(raw, "GET", TASKS, headers={"X-Auth-Token": token}, auth=None)
    assert status == 401 and hdrs["www-authenticate"].startswith("Basic realm=")
    # A task read with the token (whose check is the read's own) is refused the same way,
    # before anything is said about the task, known or not.
    for path in [f"{TASKS}/{tid}", f"{TASKS}/no-such-task"]:
        got = rf_json(raw, "GET", path, headers={"X-Auth-Token": token}, auth=None)
        assert (got[0], got[1]["www-authenticate"], got[2]) == (401, hdrs["www-authenticate"], refused)


def test_xmlrpc_session_works_as_a_token(raw, sessions):
    token = sessions["read-only"]
    status, _, body = rf_json(raw, "GET", "/redfish/v1/TaskService", headers={"X-Auth-Token": token}, auth=None)
    assert status == 200 and body["Id"] == "TaskService"


def test_sessions_collection_lists_the_callers_session(server, rf):
    members = rf.get("/redfish/v1/SessionService/Sessions").dict["Members"]
    assert len(members) == 1
    sid = members[0]["@odata.id"]
    assert rf.get(sid).dict["UserName"] == "root"


def test_other_users_sessions_are_not_theirs_to_read(server, raw):
    op = client(server, user_name("pool-operator"), user_password("pool-operator"))
    try:
        sid = op.get("/redfish/v1/SessionService/Sessions").dict["Members"][0]["@odata.id"]
        vm = (user_name("vm-operator"), user_password("vm-operator"))
        assert rf_json(raw, "GET", sid, auth=vm)[0] == 403
        assert rf_json(raw, "DELETE", sid, auth=vm)[0] == 403
        assert rf_json(raw, "GET", sid)[0] == 200  # root is an Administrator
    finally:
        op.logout()


def test_basic_auth_and_bad_credentials(raw):
    assert rf_json(raw, "GET", "/redfish/v1/TaskService")[0] == 200
    for auth in (("root", "wrong"), ("nobody", "x")):
        status, hdrs, body = rf_json(raw, "GET", "/redfish/v1/TaskService", auth=auth)
        assert status == 401 and hdrs["www-authenticate"] == 'Basic realm="xapi-taskd"'
        assert body["error"]["@Message.ExtendedInfo"][0]["MessageId"] == "Base.1.22.1.NoValidSession"
    status, _, body = rf_json(
        raw,
        "POST",
        "/redfish/v1/SessionService/Sessions",
        body=json.dumps({"UserName": "root", "Password": "wrong"}),
        auth=None,
    )
    assert status == 401 and "wrong" not in json.dumps(body)


def test_basic_auth_with_dmtf_client_and_a_non_ascii_password(server):
    # Python's requests sends Basic credentials in ISO-8859-1; root's password is not ASCII.
    ctx = client(server, auth="basic")
    res = ctx.get(TASKS)
    assert res.status == 200 and "Members" in res.dict
    # With Basic auth there is no Redfish session to list.
    assert ctx.get("/redfish/v1/SessionService/Sessions").dict["Members"] == []


def test_roles_are_a_projection_of_xapi_roles(rf):
    roles = rf.get("/redfish/v1/AccountService/Roles").dict
    assert sorted(m["@odata.id"].rsplit("/", 1)[1] for m in roles["Members"]) == [
        "Administrator",
        "Operator",
        "ReadOnly",
    ]
    assert rf.get("/redfish/v1/AccountService/Roles/Operator").dict["AssignedPrivileges"] == [
        "Login",
        "ConfigureComponents",
        "ConfigureSelf",
    ]
    assert rf.patch("/redfish/v1/AccountService/Roles/Operator", body={"AssignedPrivileges": []}).status == 405


# --------------------------------------------------------------------------------------
# Protocol details


def test_service_root_and_documents_need_no_auth(raw):
    for path in ("/redfish", "/redfish/v1", "/redfish/v1/", "/redfish/v1/odata"):
        status, hdrs, body = rf_json(raw, "GET", path, auth=None)
        assert status == 200, path
        assert hdrs["odata-version"] == "4.0" and "cache-control" in hdrs
    status, hdrs, data = raw.request("GET", "/redfish/v1/$metadata")
    assert status == 200 and hdrs["content-type"].startswith("application/xml")
    assert b'Namespace="Task.v1_7_4"' in data
    assert b"http://redfish.dmtf.org/schemas/v1/Task_v1.xml" in data


def test_headers_of_a_resource(raw, xml, root):
    tid = uuid_of(xml, root, ok(xml.task.create(root, unique(), "")))
    status, hdrs, body = rf_json(raw, "GET", f"{TASKS}/{tid}")
    assert status == 200
    assert hdrs["content-type"] == "application/json;charset=utf-8"
    assert hdrs["allow"] == "GET, HEAD, DELETE"
    assert hdrs["link"] == "<http://redfish.dmtf.org/schemas/v1/Task.v1_7_4.json>; rel=describedby"
    assert hdrs["etag"] == Re(r'"[0-9a-f]{32}"')
    # Conditional GET: unchanged → 304 without a body; the ETag follows the representation.
    status, hdrs2, body2 = rf_json(raw, "GET", f"{TASKS}/{tid}", headers={"If-None-Match": hdrs["etag"]})
    assert status == 304 and body2 is None and hdrs2["etag"] == hdrs["etag"]
    ok(xml.task.set_progress(root, ok(xml.task.get_by_uuid(root, tid)), 0.9))
    status, hdrs3, body3 = rf_json(raw, "GET", f"{TASKS}/{tid}", headers={"If-None-Match": hdrs["etag"]})
    assert status == 200 and hdrs3["etag"] != hdrs["etag"] and body3["PercentComplete"] == 90
    # HEAD: the same headers, no body.
    import base64

    auth = "Basic " + base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()
    status, hhdrs, data = raw.request("HEAD", f"{TASKS}/{tid}", headers={"Authorization": auth})
    assert status == 200 and data == b"" and hhdrs["allow"] == "GET, HEAD, DELETE"


def test_protocol_errors(raw):
    # 405 with Allow for methods a resource does not support, including made-up ones.
    for method, path in (("POST", TASKS), ("DELETE", "/redfish/v1/"), ("PATCH", "/redfish/v1/TaskService"), ("FAKEMETHODFORTEST", "/redfish/v1/")):
        status, hdrs, _ = rf_json(raw, method, path)
        assert status == 405, (method, path)
        assert "allow" in hdrs
    # 412 for an OData version we do not speak; 4.0 is fine.
    assert rf_json(raw, "GET", "/redfish/v1/", headers={"OData-Version": "4.1"})[0] == 412
    assert rf_json(raw, "GET", "/redfish/v1/", headers={"OData-Version": "4.0"})[0] == 200
    # 501 for $ query options; other parameters are ignored.
    status, _, body = rf_json(raw, "GET", f"{TASKS}?$top=2")
    assert status == 501
    assert body["error"]["@Message.ExtendedInfo"][0]["MessageArgs"] == ["$top"]
    assert rf_json(raw, "GET", f"{TASKS}?foo=bar")[0] == 200
    # Bad session bodies are 400s, not 500s.
    for bad in (b"{", b"[]", json.dumps({"UserName": 1, "Password": "x"}).encode()):
        status, _, _ = rf_json(raw, "POST", "/redfish/v1/SessionService/Sessions", body=bad, auth=None)
        assert status == 400, bad
    # Unauthenticated reads of protected resources: 401.
    assert rf_json(raw, "GET", TASKS, auth=None)[0] == 401


def test_xmlrpc_still_answers_next_to_redfish(raw):
    # Non-Redfish paths keep XAPI's behaviour (GET is not an RPC; GET / is the web page).
    status, hdrs, _ = raw.request("GET", "/RPC2")
    assert status == 405 and hdrs["allow"] == "POST, OPTIONS"
