"""The Redfish client libraries operators run, unchanged, against the real binary
(docs/redfish.md, "Monitors and client libraries"): DMTF's `redfish` (with
`redfish_utilities`), OpenStack's `sushy` and DMTF's `redfishtool` command line.

Each of them, over HTTP and HTTPS (a certificate made for this run, which `redfish` and
`sushy` verify; redfishtool never verifies), with a Redfish session and with Basic
authentication: logs in, lists TaskService/Tasks, reads a task, and follows task
monitors to the end while the task's owner, an XML-RPC client, finishes the task:
to success, to failure, and to a cancel the library asked for with DELETE.

"Followed to the end" is checked without trusting timing: the library's follow must
return after the owner began the write that finished the task, and with that outcome.
The owner waits a little first, so that every library sleeps at least once on a running
task's reply (where sushy used to crash on `Retry-After`).

redfishtool follows a monitor only after a 202 to a write (PATCH, POST, PUT, DELETE);
the face's one such write is DELETE, so redfishtool follows the DELETE's monitor, which
ends with the task's outcome (the owner may finish a task it was asked to cancel).
"""

import json
import pathlib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

# Imported plainly (xmlrpc-tests/requirements.txt pins them): a missing library is a
# failure, not a skip.
import redfish
import redfish_utilities
import sushy
import sushy.auth
import sushy.connector
from sushy.resources.taskservice.constants import TaskState

from conftest import ROOT_PASSWORD, ok, server_proxy, unique
from test_redfish_validators import tls_server

TASKS = "/redfish/v1/TaskService/Tasks"
MONITORS = "/redfish/v1/TaskService/TaskMonitors"
SESSIONS = "/redfish/v1/SessionService/Sessions"
REDFISHTOOL = pathlib.Path(sys.executable).parent / "redfishtool"
# The owner finishes a task this long after the library started following it: long
# enough for the library to see it running, short of its 1 s poll interval.
FINISH_AFTER = 0.5
FOLLOW_TIMEOUT = 60.0
RESULT = "<value>OpaqueRef:new-vm</value>"
ERROR = ["VM_BAD_POWER_STATE", "OpaqueRef:vm", "halted", "running"]

CASES = [(scheme, auth) for scheme in ("http", "https") for auth in ("session", "basic")]
pytestmark = pytest.mark.parametrize("scheme,auth", CASES)


@pytest.fixture(scope="module")
def target():
    """A server of this module's own with HTTP and HTTPS (the task GC off, so that no
    pass lands between a test's completion of a task and its client's last poll)."""
    srv, cert = tls_server(["--gc-interval", "86400"])
    try:
        yield Target(srv, cert)
    finally:
        srv.cleanup()


class Target:
    def __init__(self, srv, cert):
        self.srv = srv
        self.cert = str(cert)
        self.xml_url = srv.url + "/"
        self.session = ok(server_proxy(self.xml_url).session.login_with_password("root", ROOT_PASSWORD))

    def base(self, scheme):
        return self.srv.tls_url if scheme == "https" else self.srv.url

    def port(self, scheme):
        return self.srv.tls_port if scheme == "https" else self.srv.port

    def task(self, label="redfish-client"):
        """A running task owned by root, made over XML-RPC: (ref, uuid)."""
        p = server_proxy(self.xml_url)
        ref = ok(p.task.create(self.session, unique(label), "followed by a Redfish library"))
        return ref, ok(p.task.get_uuid(self.session, ref))

    def xapi(self, method, *args):
        return getattr(server_proxy(self.xml_url), method)(self.session, *args)

    def owner(self, ref, outcome, after_cancel=False, delay=FINISH_AFTER):
        """Starts the task's owner (XML-RPC), which finishes it with `outcome` `delay`
        seconds from now, or from the moment someone asked to cancel it."""
        return Owner(self, ref, outcome, after_cancel, delay)


class Owner(threading.Thread):
    def __init__(self, target, ref, outcome, after_cancel, delay):
        super().__init__(daemon=True)
        self.target, self.ref, self.outcome = target, ref, outcome
        self.after_cancel, self.delay = after_cancel, delay
        self.finishing_at = None
        self.error = None
        self.start()

    def run(self):
        try:
            p, s, ref = server_proxy(self.target.xml_url), self.target.session, self.ref
            deadline = time.monotonic() + FOLLOW_TIMEOUT
            while self.after_cancel and not ok(p.task.get_current_operations(s, ref)):
                assert time.monotonic() < deadline, "nobody asked to cancel the task"
                time.sleep(0.02)
            time.sleep(self.delay)
            ok(p.task.set_progress(s, ref, 0.75))
            if self.outcome == "success":
                ok(p.task.set_result(s, ref, RESULT))
            elif self.outcome == "failure":
                ok(p.task.set_error_info(s, ref, ERROR))
            self.finishing_at = time.monotonic()
            ok(p.task.set_status(s, ref, self.outcome))
        except BaseException as e:  # reported by finished_before()
            self.error = e

    def finished_before(self, ended_at):
        """The library's follow ended at `ended_at`, after this owner finished the task."""
        self.join(FOLLOW_TIMEOUT)
        assert self.error is None, self.error
        assert self.finishing_at is not None and ended_at > self.finishing_at, (
            "the library stopped following before the task ended"
        )


def concurrently(*follows):
    """Runs the three follows of a case side by side (each takes about a second)."""
    with ThreadPoolExecutor(len(follows)) as pool:
        for f in [pool.submit(fn) for fn in follows]:
            f.result(timeout=FOLLOW_TIMEOUT)


def assert_xapi_status(target, ref, status):
    assert ok(target.xapi("task.get_status", ref)) == status


def originator(target, token):
    """The originator of the XAPI session a Redfish token is; None once logged out."""
    return server_proxy(target.xml_url).session.get_originator(token, token).get("Value")


# --------------------------------------------------------------------------------------
# DMTF redfish + redfish_utilities.poll_task_monitor


def test_dmtf_redfish(target, scheme, auth):
    ctx = redfish.redfish_client(
        base_url=target.base(scheme),
        username="root",
        password=ROOT_PASSWORD,
        cafile=target.cert if scheme == "https" else None,
        timeout=15,
    )
    ctx.login(auth=auth)
    token = ctx.get_session_key() if auth == "session" else None
    try:
        if auth == "session":
            assert originator(target, token) == "redfish"
        else:
            assert ctx.get(SESSIONS).dict["Members"] == []
        ref, tid = target.task()
        members = [m["@odata.id"] for m in ctx.get(TASKS).dict["Members"]]
        assert f"{TASKS}/{tid}" in members
        body = ctx.get(f"{TASKS}/{tid}").dict
        assert (body["Id"], body["TaskState"], body["TaskMonitor"]) == (tid, "Running", f"{MONITORS}/{tid}")

        def follow(outcome):
            ref, tid = target.task()
            first = ctx.get(f"{MONITORS}/{tid}")
            assert first.status == 202 and first.task_location == f"{MONITORS}/{tid}"
            owner = target.owner(ref, outcome)
            final = redfish_utilities.poll_task_monitor(ctx, first, silent=True)
            owner.finished_before(time.monotonic())
            return final

        def to_success():
            final = follow("success")
            assert final.status == 200 and final.dict["PercentComplete"] == 75
            assert final.dict["TaskState"] == "Completed" and final.dict["Oem"]["Xapi"]["Result"] == RESULT

        def to_failure():
            final = follow("failure")
            assert final.status == 400
            ids = [m["MessageId"] for m in final.dict["error"]["@Message.ExtendedInfo"]]
            assert ids[-2:] == ["TaskEvent.1.0.5.TaskAborted", "XapiTask.1.0.0.VM_BAD_POWER_STATE"]

        def cancel():
            ref, tid = target.task()
            res = ctx.delete(f"{TASKS}/{tid}")
            assert res.status == 202 and res.task_location == f"{MONITORS}/cancel-{tid}"
            assert res.dict["TaskState"] == "Cancelling"
            owner = target.owner(ref, "cancelled", after_cancel=True)
            final = redfish_utilities.poll_task_monitor(ctx, res, silent=True)
            owner.finished_before(time.monotonic())
            assert final.status == 200 and final.dict["TaskState"] == "Cancelled"
            assert_xapi_status(target, ref, "cancelled")

        concurrently(to_success, to_failure, cancel)
    finally:
        ctx.logout()
    assert token is None or originator(target, token) is None


# --------------------------------------------------------------------------------------
# OpenStack sushy: TaskMonitor.wait(), and a blocking DELETE (TaskMonitor.from_response)


class Seen:
    """sushy's response callback: every (method, path, status) it got."""

    def __init__(self):
        self.lock = threading.Lock()
        self.responses = []

    def __call__(self, response):
        with self.lock:
            self.responses.append((response.request.method, response.request.path_url, response.status_code))

    def of(self, path):
        with self.lock:
            return [(m, s) for m, p, s in self.responses if p == path]


def test_sushy(target, scheme, auth):
    seen = Seen()
    conn = sushy.connector.Connector(
        target.base(scheme),
        verify=target.cert if scheme == "https" else True,
        response_callback=seen,
        default_request_timeout=15,
    )
    credentials = sushy.auth.SessionAuth if auth == "session" else sushy.auth.BasicAuth
    login = credentials(username="root", password=ROOT_PASSWORD)
    root = sushy.Sushy(target.base(scheme), auth=login, connector=conn)
    token = login.get_session_key() if auth == "session" else None
    try:
        if auth == "session":
            assert originator(target, token) == "redfish"
        ref, tid = target.task()
        tasks = root.get_task_service().tasks
        assert f"{TASKS}/{tid}" in tasks.members_identities
        assert tasks.summary[tid] == TaskState.RUNNING
        task = tasks.get_member(f"{TASKS}/{tid}")
        assert (task.identity, task.task_state, task.task_monitor) == (tid, TaskState.RUNNING, f"{MONITORS}/{tid}")

        def follow(outcome):
            ref, tid = target.task()
            mon = root.get_task_monitor(f"{MONITORS}/{tid}")
            assert mon.is_processing and mon.task.identity == tid
            owner = target.owner(ref, outcome)
            try:
                mon.wait(FOLLOW_TIMEOUT)
            finally:
                owner.finished_before(time.monotonic())
            polls = seen.of(f"{MONITORS}/{tid}")
            assert polls[:2] == [("GET", 202), ("GET", 202)], polls  # it slept on a 202
            return mon

        def to_success():
            mon = follow("success")
            assert not mon.is_processing and mon.response.status_code == 200
            assert mon.response.json()["TaskState"] == "Completed"

        def to_failure():
            # sushy raises for every Redfish error reply, this one included.
            with pytest.raises(sushy.exceptions.BadRequestError) as failed:
                follow("failure")
            ids = [m["MessageId"] for m in failed.value.extended_info]
            assert ids[-1] == "XapiTask.1.0.0.VM_BAD_POWER_STATE"

        def cancel():
            ref, tid = target.task()
            owner = target.owner(ref, "cancelled", after_cancel=True)
            # blocking: sushy's TaskMonitor.from_response() on the 202, then wait().
            final = conn.delete(f"{TASKS}/{tid}", blocking=True, timeout=FOLLOW_TIMEOUT)
            owner.finished_before(time.monotonic())
            assert final.status_code == 200 and final.json()["TaskState"] == "Cancelled"
            # It followed the DELETE's monitor (the Location), never the Task resource.
            assert seen.of(f"{MONITORS}/cancel-{tid}")[-1] == ("GET", 200)
            assert seen.of(f"{TASKS}/{tid}") == [("DELETE", 202)]
            assert_xapi_status(target, ref, "cancelled")

        concurrently(to_success, to_failure, cancel)
    finally:
        login.close()
    assert token is None or originator(target, token) is None


# --------------------------------------------------------------------------------------
# DMTF redfishtool (a command line: run as a subprocess, blocking by default)


def redfishtool(target, scheme, auth, *args):
    """One `redfishtool raw …` run: (exit code, the JSON it printed or None, the
    (status, URL) of each monitor poll it reported (-ss), stderr)."""
    res = subprocess.run(
        [
            str(REDFISHTOOL),
            "-r", f"127.0.0.1:{target.port(scheme)}",
            "-u", "root",
            "-p", ROOT_PASSWORD,
            "-A", auth.capitalize(),
            "-S", "Always" if scheme == "https" else "Never",
            "-T", "15",
            "-ss",
            "raw", *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=FOLLOW_TIMEOUT + 30,
    )
    out = res.stdout.decode(errors="replace").splitlines()
    # -ss prints "#STATUS: Last Response: r.status_code: 202", then "…: r.url: <url>".
    statuses = [line.rsplit(" ", 1)[1] for line in out if line.startswith("#STATUS: Last Response: r.status_code:")]
    urls = [line.rsplit(" ", 1)[1] for line in out if line.startswith("#STATUS: Last Response: r.url:")]
    polls = list(zip(statuses, urls))
    text = "\n".join(line for line in out if not line.startswith("#"))
    return res.returncode, (json.loads(text) if text.strip() else None), polls, res.stderr.decode(errors="replace")


def test_redfishtool(target, scheme, auth):
    def run(*args):
        return redfishtool(target, scheme, auth, *args)

    ref, tid = target.task()
    code, body, _, err = run("GET", TASKS)
    assert code == 0, err
    assert f"{TASKS}/{tid}" in [m["@odata.id"] for m in body["Members"]]
    code, body, _, err = run("GET", f"{TASKS}/{tid}")
    assert code == 0 and (body["Id"], body["TaskState"]) == (tid, "Running"), err

    def follow(outcome):
        ref, tid = target.task()
        # Longer than its 1 s poll interval, so that it polls a running task's monitor.
        owner = target.owner(ref, outcome, after_cancel=True, delay=1.5)
        code, body, polls, err = run("DELETE", f"{TASKS}/{tid}")
        owner.finished_before(time.monotonic())
        # It polled the DELETE's monitor, first while the task was still running.
        assert polls and all(url.endswith(f"{MONITORS}/cancel-{tid}") for _, url in polls), polls
        assert polls[0][0] == "202", polls
        return code, body, [status for status, _ in polls], err

    def to_success():
        code, body, polls, err = follow("success")
        assert code == 0, err
        assert body["TaskState"] == "Completed" and body["Oem"]["Xapi"]["Result"] == RESULT
        assert polls[-1] == "200", polls

    def to_failure():
        code, body, polls, err = follow("failure")
        assert code == 5 and body is None and polls[-1] == "400", (polls, err)

    def cancel():
        code, body, polls, err = follow("cancelled")
        assert code == 0, err  # it used to exit 5 on the removed monitor's 404
        assert body["TaskState"] == "Cancelled" and polls[-1] == "200", polls

    concurrently(to_success, to_failure, cancel)
