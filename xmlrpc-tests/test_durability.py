"""Durability: what a client was told succeeded survives `kill -9` and restarts.

The crash test runs concurrent clients that create tasks (some as subtasks), set their
progress, add other_config keys, finish and destroy them, recording every acknowledged
change and the one call each client had in flight. The server is killed with SIGKILL at a
random moment and restarted on the same data directory; every acknowledged change must be
there, every in-flight one either fully there or not at all, and the links between tasks
consistent. `CRASH_ROUNDS` (default 3) sets how many crashes one run makes;
`bench/crash-test.sh` runs many more.
"""

import http.client
import os
import random
import signal
import socket
import ssl
import threading
import time
import xmlrpc.client

import pytest
import XenAPI

from conftest import ROOT_PASSWORD, header_proxy, login, ok, server_proxy

CRASH_ROUNDS = int(os.environ.get("CRASH_ROUNDS", "3"))
WORKERS = 6

# No garbage collection during the test: every task a client made must still be there.
# (Hence no cap on completed tasks and an interval and a timeout far beyond the test.)
NO_GC = ["--max-tasks", "1000000", "--gc-interval", "3600", "--completed-task-timeout", "100000000000"]


class Ledger:
    """What the clients were told (acked) and what they were doing when the server died."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tasks = {}  # ref -> {"label", "progress", "keys", "status", "destroyed", "parent"}
        self.inflight = {}  # worker -> (op, ref, value)
        self.errors = []
        self.acks = 0
        self.settled = 0

    def begin(self, worker, op, ref=None, value=None):
        with self.lock:
            self.inflight[worker] = (op, ref, value)

    def acked(self, worker, apply):
        with self.lock:
            apply(self.tasks)
            self.acks += 1
            self.inflight.pop(worker, None)


def worker(url, session, w, ledger, stop):
    proxy = server_proxy(url)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            parent = None
            with ledger.lock:
                # Only this worker's own tasks: nobody else destroys them meanwhile.
                candidates = [
                    r
                    for r, t in ledger.tasks.items()
                    if not t["destroyed"] and t["label"].startswith(f"w{w}-")
                ]
            if candidates and random.random() < 0.3:
                parent = random.choice(candidates)
            label = f"w{w}-{n}-{random.getrandbits(32):08x}"
            ledger.begin(w, "create", None, label)
            if parent:
                p = header_proxy(url, {"subtask-of": parent})
                ref = ok(p.task.create(session, label, "crash test"))
            else:
                ref = ok(proxy.task.create(session, label, "crash test"))

            def add(tasks, ref=ref, label=label, parent=parent):
                tasks[ref] = {
                    "label": label,
                    "progress": 0.0,
                    "keys": set(),
                    "status": "pending",
                    "destroyed": False,
                    "parent": parent,
                }

            ledger.acked(w, add)
            for step in range(1, 4):
                progress = step / 4
                ledger.begin(w, "progress", ref, progress)
                ok(proxy.task.set_progress(session, ref, progress))
                ledger.acked(w, lambda t, ref=ref, p=progress: t[ref].update(progress=p))
                key = f"k{step}"
                ledger.begin(w, "key", ref, key)
                ok(proxy.task.add_to_other_config(session, ref, key, str(step)))
                ledger.acked(w, lambda t, ref=ref, k=key: t[ref]["keys"].add(k))
            ledger.begin(w, "status", ref, "success")
            ok(proxy.task.set_status(session, ref, "success"))
            ledger.acked(w, lambda t, ref=ref: t[ref].update(status="success"))
            if random.random() < 0.3:
                ledger.begin(w, "destroy", ref, None)
                ok(proxy.task.destroy(session, ref))
                ledger.acked(w, lambda t, ref=ref: t[ref].update(destroyed=True))
    except (OSError, xmlrpc.client.ProtocolError, http.client.HTTPException):
        return  # the server died under us: the in-flight call stays recorded
    except Exception as e:  # a wrong answer: fail the test, not just the thread
        ledger.errors.append(repr(e))


def verify(url, session, ledger):
    """Checks the restarted server against the ledger; returns the number of tasks checked."""
    proxy = server_proxy(url)
    records = ok(proxy.task.get_all_records(session))
    inflight = list(ledger.inflight.values())

    def inflight_on(ref, op):
        return [v for (o, r, v) in inflight if r == ref and o == op]

    for ref, want in ledger.tasks.items():
        if want["destroyed"]:
            assert ref not in records, f"acknowledged destroy of {ref} was lost"
            continue
        if ref not in records:
            assert inflight_on(ref, "destroy"), f"acknowledged task {ref} ({want['label']}) was lost"
            continue
        got = records[ref]
        assert got["name_label"] == want["label"]
        assert got["name_description"] == "crash test"
        allowed = {want["progress"], *inflight_on(ref, "progress")}
        assert got["progress"] in allowed, (ref, got["progress"], allowed)
        keys = set(got["other_config"])
        assert want["keys"] <= keys, (ref, want["keys"], keys)
        assert keys <= want["keys"] | set(inflight_on(ref, "key")), (ref, keys)
        for k in keys:
            assert got["other_config"][k] == k[1:]
        assert got["status"] in {want["status"], *inflight_on(ref, "status")}
        if want["parent"]:
            assert got["subtask_of"] == want["parent"]
    unknown = [r for r in records if r not in ledger.tasks]
    creating = [v for (o, _, v) in inflight if o == "create"]
    assert len(unknown) <= len(creating), (unknown, creating)
    for r in unknown:
        assert records[r]["name_label"] in creating
        ledger.tasks[r] = {
            "label": records[r]["name_label"],
            "progress": records[r]["progress"],
            "keys": set(records[r]["other_config"]),
            "status": records[r]["status"],
            "destroyed": False,
            "parent": None if records[r]["subtask_of"] == "OpaqueRef:NULL" else records[r]["subtask_of"],
        }
    # Links are consistent both ways: nothing half-written.
    for r, rec in records.items():
        for child in rec["subtasks"]:
            assert child in records and records[child]["subtask_of"] == r, (r, child)
        parent = rec["subtask_of"]
        if parent in records:
            assert r in records[parent]["subtasks"], (parent, r)
    # The in-flight calls are now settled one way or the other: fold them in.
    for (o, r, v) in inflight:
        if r in records and o in ("progress", "status"):
            ledger.tasks[r]["progress" if o == "progress" else "status"] = records[r][
                "progress" if o == "progress" else "status"
            ]
        if r in records and o == "key" and v in records[r]["other_config"]:
            ledger.tasks[r]["keys"].add(v)
        if o == "destroy" and r in ledger.tasks and r not in records:
            ledger.tasks[r]["destroyed"] = True
    ledger.settled += len(ledger.inflight)
    ledger.inflight.clear()
    return len(records)


def test_kill_9_loses_no_acknowledged_change(fresh):
    srv = fresh(NO_GC)
    session = login(srv.url + "/")
    ledger = Ledger()
    checked = 0
    for _round in range(CRASH_ROUNDS):
        stop = threading.Event()
        threads = [
            threading.Thread(target=worker, args=(srv.url + "/", session, w, ledger, stop))
            for w in range(WORKERS)
        ]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.3, 1.5))
        srv.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive()
        assert ledger.errors == []
        srv.start()
        # The session itself survived the crash.
        checked = verify(srv.url + "/", session, ledger)
    assert checked > 0
    assert sum(1 for t in ledger.tasks.values() if t["parent"]) > 0
    print(
        f"\ncrash test: {CRASH_ROUNDS} kill -9 rounds, {ledger.acks} acknowledged calls, "
        f"{len(ledger.tasks)} tasks checked, {ledger.settled} in-flight calls settled"
    )


def test_restart_keeps_sessions_tasks_links_and_event_tokens(fresh):
    srv = fresh(NO_GC)
    url = srv.url + "/"
    proxy = server_proxy(url)
    session = login(url)
    parent = ok(proxy.task.create(session, "parent", "p"))
    child = ok(header_proxy(url, {"subtask-of": parent}).task.create(session, "child", "c"))
    ok(proxy.task.set_progress(session, child, 0.5))
    ok(proxy.task.add_to_other_config(session, parent, "k", "v"))
    doomed = ok(proxy.task.create(session, "doomed", ""))
    ok(proxy.task.set_status(session, doomed, "success"))  # so destroy deletes at once
    token = ok(proxy.event.__getattr__("from")(session, ["task"], "", 0.0))["token"]
    ok(proxy.task.destroy(session, doomed))
    before = {r: ok(proxy.task.get_record(session, r)) for r in (parent, child)}
    owned = sorted(ok(proxy.session.get_tasks(session, session)))
    assert parent in owned and child in owned
    srv.stop()  # SIGTERM: clean shutdown
    assert srv.proc.returncode == 0
    srv.start()
    proxy = server_proxy(url)
    after = {r: ok(proxy.task.get_record(session, r)) for r in (parent, child)}
    assert after == before
    assert after[parent]["subtasks"] == [child]
    assert after[child]["subtask_of"] == parent
    # session.tasks is rebuilt from the tasks' owners at start.
    assert sorted(ok(proxy.session.get_tasks(session, session))) == owned
    # A token from before the restart is still good: it sees the destroy, and only that.
    res = ok(proxy.event.__getattr__("from")(session, ["task"], token, 0.0))
    assert [(e["operation"], e["ref"]) for e in res["events"]] == [("del", doomed)]
    assert res["token"] > token
    # The session's own fields survived too.
    assert ok(proxy.session.get_this_user(session, session)) == ok(
        proxy.session.get_this_user(session, session)
    )


def test_ephemeral_forgets_everything_on_restart(fresh):
    srv = fresh(["--ephemeral"])
    url = srv.url + "/"
    session = login(url)
    ok(server_proxy(url).task.create(session, "gone", ""))
    assert not os.path.exists(os.path.join(srv.data_dir, "store.redb"))
    srv.stop()
    srv.start()
    reply = server_proxy(url).task.get_all(session)
    assert reply["Status"] == "Failure"
    assert reply["ErrorDescription"][0] == "SESSION_INVALID"


def test_sigterm_answers_event_waiters_and_finishes_in_flight_calls(fresh):
    srv = fresh(NO_GC)
    url = srv.url + "/"
    session = login(url)
    token = ok(server_proxy(url).event.__getattr__("from")(session, ["task"], "", 0.0))["token"]
    answers = []

    def wait():
        answers.append(server_proxy(url).event.__getattr__("from")(session, ["task"], token, 60.0))

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    waiter.join(timeout=10)
    assert not waiter.is_alive(), "event.from waiter was not answered at shutdown"
    assert answers[0]["Status"] == "Success"
    assert answers[0]["Value"]["events"] == []
    srv.proc.wait(timeout=10)
    assert srv.proc.returncode == 0
    assert time.monotonic() - started < 5
    # No longer listening.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()


def test_xenapi_sdk_over_https_with_a_generated_certificate(fresh):
    srv = fresh(tls=True)
    pem = open(os.path.join(srv.data_dir, "xapi-ssl.pem")).read()
    assert "PRIVATE KEY" in pem and "BEGIN CERTIFICATE" in pem
    assert oct(os.stat(os.path.join(srv.data_dir, "xapi-ssl.pem")).st_mode & 0o777) == "0o600"
    sdk = XenAPI.Session(srv.tls_url, ignore_ssl=True)
    sdk.xenapi.login_with_password("root", ROOT_PASSWORD, "1.0", "pytest")
    try:
        task = sdk.xenapi.task.create("over https", "")
        assert sdk.xenapi.task.get_record(task)["name_label"] == "over https"
    finally:
        sdk.xenapi.session.logout()
    # Certificate verification is on by default: the self-signed certificate is refused.
    strict = xmlrpc.client.ServerProxy(srv.tls_url, context=ssl.create_default_context())
    with pytest.raises(ssl.SSLError):
        strict.session.login_with_password("root", ROOT_PASSWORD)
    # ... and accepted when it is the trusted one.
    cert_only = pem[pem.index("-----BEGIN CERTIFICATE") :]
    ctx = ssl.create_default_context(cadata=cert_only)
    ctx.check_hostname = False
    trusting = xmlrpc.client.ServerProxy(srv.tls_url, context=ctx)
    assert trusting.session.login_with_password("root", ROOT_PASSWORD)["Status"] == "Success"
    # The certificate is kept across restarts.
    srv.stop()
    srv.start()
    assert open(os.path.join(srv.data_dir, "xapi-ssl.pem")).read() == pem
