"""Watching tasks: event.from through the SDK and raw XML-RPC, legacy register/next, Async."""

import threading
import time

import XenAPI

from harness import ROOT_PASSWORD, fail, ok, root, server  # noqa: F401


def sdk(server):
    s = XenAPI.Session(server.url)
    s.xenapi.login_with_password("root", ROOT_PASSWORD)
    return s


def test_event_from_snapshot_then_changes(server):
    s = sdk(server)
    x = s.xenapi
    t = x.task.create("watched", "")
    first = x.event_from(["task"], "", 0.0)
    assert {(e["class"], e["operation"], e["ref"]) for e in first["events"]} >= {("task", "add", t)}
    assert isinstance(first["valid_ref_counts"]["task"], int)
    assert len(first["token"]) == 41
    x.task.set_progress(t, 0.1)
    x.task.set_progress(t, 0.2)
    batch = x.event_from(["task"], first["token"], 0.0)
    assert [(e["operation"], e["ref"]) for e in batch["events"]] == [("mod", t)]
    assert batch["events"][0]["snapshot"]["progress"] == 0.2
    x.task.set_status(t, "success")
    x.task.destroy(t)
    gone = x.event_from(["task"], batch["token"], 0.0)
    assert [(e["operation"], e["ref"]) for e in gone["events"]] == [("del", t)]
    assert "snapshot" not in gone["events"][0]


def test_a_second_session_wakes_a_blocked_waiter(server):
    watcher, worker = sdk(server), sdk(server)
    t = worker.xenapi.task.create("wake", "")
    token = watcher.xenapi.event_from(["task"], "", 0.0)["token"]
    result = {}

    def wait():
        started = time.time()
        result["batch"] = watcher.xenapi.event_from(["task/" + t], token, 30.0)
        result["elapsed"] = time.time() - started

    th = threading.Thread(target=wait)
    th.start()
    time.sleep(0.3)
    assert th.is_alive()
    worker.xenapi.task.set_progress(t, 0.7)
    th.join(10)
    assert not th.is_alive()
    assert result["elapsed"] < 10
    assert [(e["operation"], e["snapshot"]["progress"]) for e in result["batch"]["events"]] == [("mod", 0.7)]


def test_timeout_and_bad_token(server, root):
    p, s = root
    token = ok(getattr(p.event, "from")(s, ["task"], "", 0.0))["token"]
    started = time.time()
    batch = ok(p.event_from(s, ["task"], token, 0.3))
    assert 0.25 <= time.time() - started < 5
    assert batch["events"] == [] and batch["token"] == token
    assert fail(getattr(p.event, "from")(s, ["task"], "nonsense", 0.0)) == [
        "EVENT_FROM_TOKEN_PARSE_FAILURE", "nonsense"]


def test_legacy_register_next(server, root):
    p, s = root
    desc = fail(p.event.next(s))
    assert desc[0] == "SESSION_NOT_REGISTERED" and desc[1].startswith("trackid=")
    ok(p.event.register(s, ["task"]))
    t = ok(p.task.create(s, "legacy", ""))
    ok(p.task.set_progress(s, t, 0.5))
    events = ok(p.event.next(s))
    assert [(e["operation"], e["ref"]) for e in events] == [("add", t), ("mod", t)]
    assert events[0]["timestamp"].endswith(".")
    assert int(ok(p.event.get_current_id(s))) >= int(events[-1]["id"])
    ok(p.event.unregister(s, ["task"]))


def test_inject(server, root):
    p, s = root
    pool = ok(p.pool.get_all(s))[0]
    token = ok(p.event.inject(s, "pool", pool))
    batch = ok(getattr(p.event, "from")(s, ["pool"], token, 0.0))
    assert [(e["class"], e["operation"]) for e in batch["events"]] == [("pool", "mod")]
    assert fail(p.event.inject(s, "task", pool)) == ["HANDLE_INVALID", "task", pool]


def test_async_call_through_the_sdk(server):
    x = sdk(server).xenapi
    t = x.task.create("target", "")
    job = x.Async.task.add_to_other_config(t, "k", "v")
    deadline = time.time() + 10
    while x.task.get_status(job) == "pending" and time.time() < deadline:
        time.sleep(0.02)
    rec = x.task.get_record(job)
    assert rec["status"] == "success" and rec["result"] == "<value></value>" and rec["progress"] == 1.0
    assert rec["name_label"] == "Async.task.add_to_other_config"
    assert x.task.get_other_config(t) == {"k": "v"}
    # Async.task.cancel records the cancelling task's own ref.
    job = x.Async.task.cancel(t)
    while x.task.get_status(job) == "pending" and time.time() < deadline:
        time.sleep(0.02)
    assert x.task.get_current_operations(t) == {job: "cancel"}


def test_async_rbac_failure_lands_in_the_task(server):
    # xapi runs the RBAC check inside the async task: the call itself succeeds.
    p = server.proxy()
    from harness import session_of
    ro = session_of(server, "read-only")
    t = ok(p.task.create(ro, "protected", ""))
    job = ok(getattr(p, "Async.task.add_to_other_config")(ro, t, "applies_to", "vm"))
    deadline = time.time() + 10
    while ok(p.task.get_status(ro, job)) == "pending" and time.time() < deadline:
        time.sleep(0.02)
    rec = ok(p.task.get_record(ro, job))
    assert rec["status"] == "failure"
    assert rec["error_info"][:2] == ["RBAC_PERMISSION_DENIED", "task.add_to_other_config/key:applies_to"]
    assert ok(p.task.get_other_config(ro, t)) == {}
