"""Limits and retention, each set small on a server of its own (flags or the TOML file).

Every limit answers the offending client with a clear error while other clients are
served; retention follows xapi's rules (spec §8) with short timeouts, and its deletions
produce events.
"""

import socket
import time
import xmlrpc.client

import pytest

from conftest import (
    ROOT_PASSWORD,
    login,
    ok,
    server_proxy,
    user_name,
    user_password,
)


def wait_until(predicate, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def is_alive_body():
    return (
        b'<?xml version="1.0"?><methodCall><methodName>system.isAlive:x</methodName>'
        b"<params><param><value>hello</value></param></params></methodCall>"
    )


def post_on(sock, body):
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n"
        % len(body)
        + body
    )
    return read_response(sock)


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


# ----------------------------------------------------------------------------- limits


def test_connections_over_the_limit_get_503_while_others_are_served(fresh):
    srv = fresh(["--max-connections", "2"])
    held = []

    def hold():
        # The start-up probe's connection may still be closing: retry until served.
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        if post_on(s, is_alive_body()).startswith(b"HTTP/1.1 200"):
            held.append(s)
            return True
        s.close()
        return False

    try:
        assert wait_until(hold) and wait_until(hold)
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        reply = post_on(extra, is_alive_body())
        extra.close()
        assert reply.startswith(b"HTTP/1.1 503"), reply[:200]
        assert b"retry-after: 1" in reply.lower()
        assert b"INTERNAL_ERROR" in reply and b"too many connections (the limit is 2)" in reply
        # The held connections are still served meanwhile.
        for s in held:
            assert b"hello" in post_on(s, is_alive_body())
    finally:
        for s in held:
            s.close()
    # Once they are gone, new clients are served again.
    def served():
        try:
            return server_proxy(srv.url + "/").session.login_with_password("root", ROOT_PASSWORD)[
                "Status"
            ] == "Success"
        except (OSError, xmlrpc.client.ProtocolError):  # the 503 while connections close
            return False

    assert wait_until(served)


def test_sessions_per_user_drop_the_least_recently_active_idle_one(fresh):
    srv = fresh(["--max-sessions-per-user", "2"], users=["pool-operator"])
    url = srv.url + "/"
    name, pw = user_name("pool-operator"), user_password("pool-operator")
    busy = login(url, name, pw)
    ok(server_proxy(url).task.create(busy, "keeps its session alive", ""))
    idle = login(url, name, pw)
    third = login(url, name, pw)
    proxy = server_proxy(url)
    # The oldest session owns a pending task: never dropped; the idle one goes instead.
    assert proxy.task.get_all(busy)["Status"] == "Success"
    assert proxy.task.get_all(idle)["ErrorDescription"][0] == "SESSION_INVALID"
    assert proxy.task.get_all(third)["Status"] == "Success"
    # Another user is not affected.
    assert proxy.task.get_all(login(url))["Status"] == "Success"


def test_pending_tasks_over_the_limit_are_refused_and_reads_go_on(fresh):
    srv = fresh(["--max-pending-tasks", "2"])
    url = srv.url + "/"
    s = login(url)
    proxy = server_proxy(url)
    a = ok(proxy.task.create(s, "a", ""))
    ok(proxy.task.create(s, "b", ""))
    assert proxy.task.create(s, "c", "") == {
        "Status": "Failure",
        "ErrorDescription": ["TOO_MANY_PENDING_TASKS"],
    }
    assert len(ok(proxy.task.get_all(s))) == 2
    ok(proxy.task.set_status(s, a, "success"))
    ok(proxy.task.create(s, "c", ""))


def test_oversized_body_is_413_with_an_xapi_error(fresh):
    srv = fresh(["--max-body-bytes", "1000"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        body = b"<methodCall>" + b" " * 2000 + b"</methodCall>"
        reply = post_on(sock, body)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]
    assert b"exceeds the limit of 1000 bytes" in reply
    assert b"connection: close" in reply.lower()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        assert b"hello" in post_on(sock, is_alive_body())


def test_a_slow_body_gets_408_and_others_are_served_meanwhile(fresh):
    srv = fresh(["--body-timeout", "1"])
    slow = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    slow.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n<methodCall>")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as other:
        assert b"hello" in post_on(other, is_alive_body())
    reply = read_response(slow)
    slow.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert b"timed out reading the request body" in reply
    assert 0.8 < time.monotonic() - started < 5


def test_a_slow_or_idle_connection_is_closed_after_the_head_timeout(fresh):
    srv = fresh(["--header-timeout", "1"])
    partial = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    partial.sendall(b"POST / HTTP/1.1\r\nHost: t\r\n")
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    assert b"hello" in post_on(idle, is_alive_body())
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as other:
        assert b"hello" in post_on(other, is_alive_body())
    assert partial.recv(100) == b""  # closed by the server
    assert idle.recv(100) == b""
    assert time.monotonic() - started < 5
    partial.close()
    idle.close()


def test_a_large_answer_read_slowly_is_not_cut_off_by_the_head_timeout(fresh):
    """The head timeout is for heads: a client reading a ~12 MB answer at ~3 MB/s (the
    server writing for several head-timeout periods) gets all of it."""
    srv = fresh(["--header-timeout", "1"])
    session = login(srv.url + "/")
    proxy = server_proxy(srv.url + "/")
    label = "x" * 50_000
    for i in range(240):
        ok(proxy.task.create(session, f"{label}{i}", ""))
    body = xmlrpc.client.dumps((session,), "task.get_all_records").encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", srv.port))
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n"
        % len(body)
        + body
    )
    started = time.monotonic()
    data, length = b"", None
    while length is None or len(data) < length:
        chunk = sock.recv(32768)
        if not chunk:
            break
        data += chunk
        if length is None and b"\r\n\r\n" in data:
            head, data = data.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
        time.sleep(0.01)
    sock.close()
    assert length is not None and len(data) == length, (length, len(data))
    assert time.monotonic() - started > 2.5, "the answer must take several periods to read"
    records = ok(xmlrpc.client.loads(data)[0][0])
    assert sum(r["name_label"].startswith(label) for r in records.values()) == 240


def test_a_bad_config_file_is_refused_at_start(fresh):
    with pytest.raises(RuntimeError, match="max-taks"):
        fresh(config="max-taks = 5\n")


# -------------------------------------------------------------------------- retention

# Retention set from the data directory's configuration file, with short timeouts.
RETENTION = """
completed-task-timeout = 1
pending-task-timeout = 1
session-timeout = 2
max-tasks = 4
gc-interval = 0.2
"""


def async_completed_task(proxy, session, parent):
    """A task completed now (finished = now), through an Async call."""
    task = ok(proxy.Async.task.add_to_other_config(session, parent, "k" + str(time.monotonic_ns()), "v"))
    assert wait_until(lambda: ok(proxy.task.get_status(session, task)) == "success")
    return task


def test_completed_tasks_go_after_the_timeout_with_a_del_event(fresh):
    srv = fresh(config=RETENTION)
    url = srv.url + "/"
    proxy = server_proxy(url)
    s = login(url)
    # A pending task keeps the session from being collected, and is never collected
    # while its progress moves.
    anchor = ok(proxy.task.create(s, "anchor", ""))
    token = ok(proxy.event.__getattr__("from")(s, ["task"], "", 0.0))["token"]
    done = async_completed_task(proxy, s, anchor)
    deleted = set()

    def saw_del():
        nonlocal token
        ok(proxy.task.set_progress(s, anchor, time.monotonic() % 1))
        res = ok(proxy.event.__getattr__("from")(s, ["task"], token, 0.5))
        token = res["token"]
        deleted.update(e["ref"] for e in res["events"] if e["operation"] == "del")
        return done in deleted

    assert wait_until(saw_del, timeout=10)
    assert proxy.task.get_record(s, done)["ErrorDescription"][0] == "HANDLE_INVALID"
    assert ok(proxy.task.get_status(s, anchor)) == "pending"


def test_stalled_pending_tasks_go_and_moving_ones_stay(fresh):
    srv = fresh(config=RETENTION)
    url = srv.url + "/"
    proxy = server_proxy(url)
    s = login(url)
    stalled = ok(proxy.task.create(s, "stalled", ""))
    moving = ok(proxy.task.create(s, "moving", ""))
    step = 0

    def stalled_gone():
        nonlocal step
        step += 1
        ok(proxy.task.set_progress(s, moving, min(step / 1000, 1.0)))
        return proxy.task.get_status(s, stalled)["Status"] == "Failure"

    assert wait_until(stalled_gone, timeout=10)
    assert ok(proxy.task.get_status(s, moving)) == "pending"


def test_the_cap_removes_completed_tasks_and_never_pending_ones(fresh):
    srv = fresh(["--completed-task-timeout", "3600"], config=RETENTION)
    url = srv.url + "/"
    proxy = server_proxy(url)
    s = login(url)
    pending = [ok(proxy.task.create(s, f"p{i}", "")) for i in range(3)]
    completed = [async_completed_task(proxy, s, pending[0]) for _ in range(3)]
    # Cap 4 with 3 pending: at most one completed task stays.
    assert wait_until(
        lambda: sum(proxy.task.get_status(s, t)["Status"] == "Success" for t in completed) <= 1
    )
    for t in pending:
        assert ok(proxy.task.get_status(s, t)) == "pending"
    # Flags beat the file: the 3600 s timeout kept the survivor.
    time.sleep(1.5)
    assert sum(proxy.task.get_status(s, t)["Status"] == "Success" for t in completed) == 1


def test_idle_sessions_go_unless_they_own_a_pending_task(fresh):
    srv = fresh(config=RETENTION)
    url = srv.url + "/"
    proxy = server_proxy(url)
    idle = login(url)
    busy = login(url)
    t = ok(proxy.task.create(busy, "busy", ""))
    step = 0

    def idle_gone():
        # Progress keeps moving, so the pending task itself is not collected as stalled.
        nonlocal step
        step += 1
        ok(proxy.task.set_progress(busy, t, min(step / 1000, 1.0)))
        return proxy.task.get_all(idle).get("ErrorDescription") == ["SESSION_INVALID", idle]

    assert wait_until(idle_gone)
    # The busy one stays while it owns a pending task, although it is as idle (its
    # last_active is refreshed only every 10 minutes, as in xapi).
    assert proxy.task.get_all(busy)["Status"] == "Success"
