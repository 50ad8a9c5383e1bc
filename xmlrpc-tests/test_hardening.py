"""Issue 14, items 1-5, with the attack as the test (bounded in count and time).

Each test repeats an attack against the real binary and checks what "held up" means: the
server stays up, other users are served within a generous latency, the attacker gets a
clear XAPI error, memory (RSS from /proc) stays within the documented bounds, nothing
acknowledged is lost. Figures are printed (`pytest -s`) for docs/security.md.

Client addresses: the login throttle counts failures per address, so attackers and
healthy clients connect from different loopback addresses (127.0.0.0/8 is all loopback).
"""

import base64
import http.client
import json
import socket
import threading
import time
import xmlrpc.client

from conftest import ROOT_PASSWORD, user_name, user_password
from harness import fail as error  # the ErrorDescription of a failed reply
from harness import ok as value  # the Value of a successful reply
from test_limits import post_on, read_response

ALICE = user_name("read-only")
ALICE_PW = user_password("read-only")
BOB = user_name("vm-operator")
BOB_PW = user_password("vm-operator")


# ----------------------------------------------------------------------------- helpers


def rss_mib(srv):
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(srv):
    with open(f"/proc/{srv.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def post(srv, path, body, ctype, source=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection(
        "127.0.0.1", srv.port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        h = {"Content-Type": ctype}
        h.update(headers or {})
        conn.request("POST", path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def rpc(srv, method, *params, source=None):
    """One XML-RPC call on a fresh connection; the raw reply dict (parsed by expat)."""
    body = xmlrpc.client.dumps(params, method, allow_none=True).encode()
    status, data = post(srv, "/", body, "text/xml", source)
    assert status == 200, (status, data[:200])
    return xmlrpc.client.loads(data)[0][0]


def jrpc(srv, method, *params):
    payload = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1})
    status, data = post(srv, "/jsonrpc", payload.encode(), "application/json")
    assert status == 200
    return json.loads(data)


def login(srv, user="root", pw=ROOT_PASSWORD, source=None):
    return value(rpc(srv, "session.login_with_password", user, pw, "1.0", "test", source=source))


def timed(f, *args, **kw):
    t = time.monotonic()
    out = f(*args, **kw)
    return time.monotonic() - t, out


class Prober(threading.Thread):
    """A healthy client: calls `call()` in a loop until stopped, recording latencies."""

    def __init__(self, call):
        super().__init__(daemon=True)
        self.call = call
        self.latencies = []
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                self.call()
            except Exception as e:  # noqa: BLE001 - recorded, asserted by the test
                self.errors.append(repr(e))
            self.latencies.append(time.monotonic() - t)
            time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.join(30)
        assert not self.errors, self.errors[:3]
        assert self.latencies, "the prober made no call"
        return max(self.latencies)


def attack_threads(n, target):
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def join_all(threads, timeout=120):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "attack threads did not finish"


# ----------------------------------------------------------------------------- 1. XML 1.0 characters


BAD = ["\uffff", "\ufffe", "\ufdd0", "\U0001fffe", "\u0001"]


def test_strings_xml_cannot_carry_are_refused_on_every_face(server):
    """One user's U+FFFF label used to make every other user's XML-RPC replies malformed
    (expat refused them). Now every face refuses such strings with xapi's error."""
    root = login(server)
    alice = login(server, ALICE, ALICE_PW)
    for bad in BAD:
        r = jrpc(server, "task.create", alice, f"label{bad}", "")
        assert r["error"]["message"] == "INVALID_VALUE", r
        assert r["error"]["data"][0] == "Invalid UTF-8 string in parameter", r
    # Raw over XML-RPC (quick-xml accepts U+FFFE in text; the dispatcher does not).
    body = (
        "<?xml version='1.0'?><methodCall><methodName>task.create</methodName><params>"
        f"<param><value>{alice}</value></param><param><value>x\ufffe</value></param>"
        "<param><value></value></param></params></methodCall>"
    ).encode()
    status, data = post(server, "/", body, "text/xml")
    assert status == 200
    desc = error(xmlrpc.client.loads(data)[0][0])
    assert desc[:2] == ["INVALID_VALUE", "Invalid UTF-8 string in parameter"], desc
    # A map key counts too.
    t = value(rpc(server, "task.create", alice, "ok", ""))
    r = jrpc(server, "task.set_other_config", alice, t, {"k\uffff": "v"})
    assert r["error"]["message"] == "INVALID_VALUE", r
    # Redfish reaches the same check through the dispatcher.
    status, _ = post(server, "/redfish/v1/SessionService/Sessions",
                     json.dumps({"UserName": "root\uffff", "Password": "x"}).encode(),
                     "application/json")
    assert status in (400, 401), status
    # Characters XML can carry still round-trip, and root's watchers still parse.
    fine = "emoji \U0001f600, U+FFFD \ufffd, CJK \u6f22, tab\tand newline\n"
    t2 = value(rpc(server, "task.create", alice, fine, ""))
    records = value(rpc(server, "task.get_all_records", root))
    assert records[t2]["name_label"] == fine
    batch = value(rpc(server, "event.from", root, ["task"], "", 1.0))
    assert any(ev["ref"] == t2 for ev in batch["events"])


# ----------------------------------------------------------------------------- 2. password work


def test_concurrent_wrong_logins_are_bounded_in_memory_and_latency(fresh):
    """100 simultaneous wrong passwords from 100 addresses used to cost +1.0-1.6 GB and
    seconds of latency for a healthy client."""
    srv = fresh(users=["read-only"])
    root = login(srv, source="127.0.3.1")
    base = rss_mib(srv)
    peak = [base]
    replies = []

    def attacker(i):
        replies.append(rpc(srv, "session.login_with_password", ALICE, f"guess-{i}", "1.0", "x",
                           source=f"127.0.4.{i + 1}"))

    prober = Prober(lambda: value(rpc(srv, "task.get_all", root, source="127.0.3.1")))
    prober.start()
    t0 = time.monotonic()
    threads = attack_threads(100, attacker)
    while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 120:
        peak.append(rss_mib(srv))
        time.sleep(0.02)
    join_all(threads)
    elapsed = time.monotonic() - t0
    worst = prober.finish()
    print(f"\n100 wrong logins: {elapsed:.1f} s, RSS {base:.0f} -> peak {max(peak):.0f} MiB, "
          f"healthy client worst {worst * 1000:.0f} ms")
    assert len(replies) == 100
    for r in replies:
        assert error(r)[0] == "SESSION_AUTHENTICATION_FAILED", r
    # 4 checks at once (~19 MiB each) plus slack; before: +1000-1600 MiB.
    assert max(peak) - base < 200
    assert worst < 2.0
    assert value(rpc(srv, "session.get_uuid", root, root))


def test_repeated_bad_basic_credentials_cost_no_argon2(fresh):
    """64 wrong Redfish Basic requests used to cost +1.3 GB; repeats cost a full argon2
    check each. A failed credential is now remembered (as a keyed digest)."""
    srv = fresh(["--login-free-failures", "1000"])
    auth = "Basic " + base64.b64encode(b"root:wrong").decode()

    def get(i):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60,
                                          source_address=(f"127.0.5.{i % 200 + 1}", 0))
        try:
            conn.request("GET", "/redfish/v1/TaskService/Tasks", headers={"Authorization": auth})
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    assert get(0) == 401
    base, cpu0 = rss_mib(srv), cpu_seconds(srv)
    statuses = []
    threads = attack_threads(64, lambda i: statuses.append(get(i)))
    join_all(threads)
    for i in range(50):
        statuses.append(get(i))
    cpu = cpu_seconds(srv) - cpu0
    grew = rss_mib(srv) - base
    print(f"\n114 repeated bad Basic requests: CPU {cpu:.2f} s, RSS +{grew:.0f} MiB")
    assert statuses == [401] * 114
    # One argon2 check costs ~20-40 ms of CPU: 114 of them would be several seconds.
    assert cpu < 1.5
    assert grew < 100
    # The right password still works at once (its digest differs).
    ok_auth = "Basic " + base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.request("GET", "/redfish/v1/TaskService/Tasks", headers={"Authorization": ok_auth})
    assert conn.getresponse().status == 200
    conn.close()


def test_backoff_delays_failures_but_never_the_right_password(fresh):
    """No slowdown after repeated failures used to allow ~45 guesses/s per connection."""
    srv = fresh(users=["read-only", "vm-operator"])
    attacker = "127.0.6.1"
    times = []
    for i in range(8):
        dt, r = timed(rpc, srv, "session.login_with_password", ALICE, f"no-{i}", "1.0", "x",
                      source=attacker)
        assert error(r) == ["SESSION_AUTHENTICATION_FAILED", ALICE, "Authentication failure"]
        times.append(dt)
    print("\nfailure answer times:", [f"{t:.2f}" for t in times])
    # Five free failures, then 0.1 s, 0.2 s, 0.4 s.
    assert times[5] >= 0.1 and times[6] >= 0.2 and times[7] >= 0.4
    # The right password is answered without the delay, even from that address.
    dt, _ = timed(login, srv, ALICE, ALICE_PW, attacker)
    assert dt < 0.4 + 0.3, dt  # well under the next delay (0.8 s)
    # Another user from another address is not slowed by alice's failures.
    dt, r = timed(rpc, srv, "session.login_with_password", BOB, "nope", "1.0", "x",
                  source="127.0.6.3")
    assert error(r)[0] == "SESSION_AUTHENTICATION_FAILED" and dt < 0.5, dt
    # Parallel connections from one address cannot side-step the delays: at most 8
    # logins are in progress per address, the rest are refused at once, clearly.
    replies = []
    threads = attack_threads(20, lambda i: replies.append(
        rpc(srv, "session.login_with_password", BOB, f"p-{i}", "1.0", "x", source=attacker)))
    join_all(threads)
    messages = [error(r)[2] for r in replies]
    assert all(error(r)[0] == "SESSION_AUTHENTICATION_FAILED" for r in replies)
    busy = [m for m in messages if m.startswith("Too many logins in progress from this address")]
    assert busy and len(busy) <= 20 - 1, messages
    # bob can still log in, from his own address, at once.
    dt, _ = timed(login, srv, BOB, BOB_PW, "127.0.6.2")
    assert dt < 1.0, dt


def test_failure_counts_hold_no_copy_of_the_names_tried(fresh):
    """Failures are counted per user name as sent, and the names were kept whole: 16,384
    of them (the bound on counted names) of ~290 KB each (the body limit) would hold
    4.7 GB. Now a count is kept under a fixed-size digest of the name, whatever its length."""
    srv = fresh()

    def attacker(name, first):
        def run(k):
            for i in range(k, 160, 4):
                r = rpc(srv, "session.login_with_password", f"{i}-{name}", "x", "1.0", "x",
                        source=f"127.0.{first + i // 64}.{i % 64 + 1}")
                assert error(r)[0] == "SESSION_AUTHENTICATION_FAILED"
        return run

    # The same attack with short names first, so that what the argon2 checks and the
    # request buffers leave in the allocator (~20 MiB) is in the baseline.
    join_all(attack_threads(4, attacker("n", 7)))
    base = rss_mib(srv)
    join_all(attack_threads(4, attacker("n" * 256_000, 17)))
    grew = rss_mib(srv) - base
    print(f"\n160 failed logins with 256 KB names: RSS +{grew:.0f} MiB")
    # Before: +62 MiB (41 MB of names kept, 160 x 256 KB); after: +14 to +30 MiB (request
    # buffers the allocator keeps; measured 17-30 over seven runs on 2026-12-02, on this
    # build and on the last stop's alike, so 30 was a flaky line). The names kept would add
    # their 41 MB to that, above 40 in every case.
    assert grew < 40, grew


# ----------------------------------------------------------------------------- 3. filters


def make_tasks(srv, session, n, label="t", threads=4):
    def work(k):
        for i in range(k, n, threads):
            value(rpc(srv, "task.create", session, f"{label}-{i}", ""))

    join_all(attack_threads(threads, work))


def test_filters_are_bounded_and_never_hold_writers_off(fresh):
    """One 273 KB get_all_where from alice over 3,000 tasks used to hold the read lock
    for 4-6 s while every writer waited."""
    srv = fresh(["--ephemeral"], users=["read-only"])
    root = login(srv)
    alice = login(srv, ALICE, ALICE_PW)
    make_tasks(srv, root, 3000)
    clause = 'field "name__label" = "nope" or '
    huge = clause * (273_000 // len(clause)) + "false"
    dt, r = timed(rpc, srv, "task.get_all_where", alice, huge)
    desc = error(r)
    assert desc[0] == "INVALID_VALUE" and "max-filter-bytes" in desc[2], desc[2]
    assert len(desc[1]) < 200 and dt < 2.0
    desc = error(rpc(srv, "task.get_all_where", alice, "not " * 1100 + "true"))
    assert desc[0] == "INVALID_VALUE" and "levels" in desc[2]
    assert len(value(rpc(srv, "task.get_all_where", alice, "not " * 200 + "true"))) == 3000
    # The largest filter accepted (2,048 terms), over 3,000 tasks, again and again,
    # while root writes: each write waits at most one chunk of the scan.
    biggest = 'field "name__label" = "t-7" or ' * 1000 + 'field "name__label" = "t-9"'
    assert len(biggest) < 32 * 1024
    t = value(rpc(srv, "task.create", root, "w", ""))
    scans = []

    def scanner(_):
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            found = value(rpc(srv, "task.get_all_records_where", alice, biggest))
            scans.append(time.monotonic() - t0)
            assert sorted(v["name_label"] for v in found.values()) == ["t-7", "t-9"]

    writes = Prober(lambda: value(rpc(srv, "task.set_progress", root, t, 0.5)))
    readers = attack_threads(2, scanner)
    writes.start()
    join_all(readers)
    worst = writes.finish()
    print(f"\nfilter of {len(biggest)} bytes over 3,000 tasks: {len(scans)} scans, "
          f"each {min(scans):.2f}-{max(scans):.2f} s; worst write {worst * 1000:.0f} ms")
    assert worst < 0.5, worst


# ----------------------------------------------------------------------------- 4. per-user quotas


def test_pending_tasks_are_capped_per_user_and_in_total(fresh):
    """Once alice filled the shared cap, root got TOO_MANY_PENDING_TASKS."""
    srv = fresh(["--ephemeral", "--max-pending-tasks-per-user", "40",
                 "--max-pending-tasks", "70"], users=["read-only", "vm-operator"])
    root = login(srv)
    alice = login(srv, ALICE, ALICE_PW)
    mine = [value(rpc(srv, "task.create", alice, f"a{i}", "")) for i in range(40)]
    assert error(rpc(srv, "task.create", alice, "one more", "")) == ["TOO_MANY_PENDING_TASKS"]
    assert error(rpc(srv, "Async.task.add_to_other_config", alice, mine[1], "k", "v")) == [
        "TOO_MANY_PENDING_TASKS"]
    # Root (and anyone else) is not affected.
    value(rpc(srv, "task.create", root, "root's", ""))
    # Logging out and in again does not reset alice's count.
    value(rpc(srv, "session.logout", alice))
    alice = login(srv, ALICE, ALICE_PW)
    assert error(rpc(srv, "task.create", alice, "again", "")) == ["TOO_MANY_PENDING_TASKS"]
    # Finishing a task makes room for one (root may, the tasks' session is gone).
    value(rpc(srv, "task.set_status", root, mine[0], "success"))
    value(rpc(srv, "task.create", alice, "room", ""))
    # The global cap stays as a safety net: bob fills the rest, then nobody gets more.
    bob = login(srv, BOB, BOB_PW)
    made = 0
    while rpc(srv, "task.create", bob, "b", "")["Status"] == "Success":
        made += 1
        assert made < 100
    assert made == 70 - 41
    assert error(rpc(srv, "task.create", root, "full", "")) == ["TOO_MANY_PENDING_TASKS"]


def test_sessions_per_user_are_bounded_even_when_all_are_busy(fresh):
    srv = fresh(["--ephemeral", "--max-sessions-per-user", "3"], users=["read-only"])
    sessions = [login(srv, ALICE, ALICE_PW) for _ in range(3)]
    for s in sessions:
        value(rpc(srv, "task.create", s, "busy", ""))
    r = rpc(srv, "session.login_with_password", ALICE, ALICE_PW, "1.0", "x")
    desc = error(r)
    assert desc[0] == "SESSION_AUTHENTICATION_FAILED" and "max-sessions-per-user" in desc[2]
    for s in sessions:  # nobody was logged out
        value(rpc(srv, "session.get_uuid", s, s))
    login(srv)  # root is not affected
    # A session whose tasks are all finished makes room, as before: it is logged out.
    task = value(rpc(srv, "session.get_tasks", sessions[0], sessions[0]))[0]
    value(rpc(srv, "task.set_status", sessions[0], task, "success"))
    login(srv, ALICE, ALICE_PW)
    assert error(rpc(srv, "session.get_uuid", sessions[0], sessions[0]))[0] == "SESSION_INVALID"
    value(rpc(srv, "session.get_uuid", sessions[1], sessions[1]))


def test_task_strings_are_bounded_per_field_task_and_user(fresh):
    """Task strings were bounded only by the body limit (~1 MB a task with 300 KB labels)."""
    srv = fresh(["--ephemeral", "--max-task-bytes-per-user", str(2 * 1024 * 1024)],
                users=["read-only"])
    root = login(srv)
    alice = login(srv, ALICE, ALICE_PW)
    desc = error(rpc(srv, "task.create", alice, "x" * 300_000, ""))
    assert desc == ["VALUE_NOT_SUPPORTED", "name_label", "300000 bytes",
                    "longer than the limit of 65536 bytes (max-task-field-bytes)"]
    t = value(rpc(srv, "task.create", alice, "x" * 60_000, "y" * 60_000))
    desc = error(rpc(srv, "task.add_to_other_config", alice, t, "k", "z" * 20_000))
    assert desc[:2] == ["VALUE_NOT_SUPPORTED", "task"] and "max-task-bytes" in desc[3]
    # The refused write left the task as it was.
    assert value(rpc(srv, "task.get_other_config", alice, t)) == {}
    value(rpc(srv, "task.set_other_config", alice, t, {"k": "small"}))
    # Per user: alice's tasks hold at most 2 MiB; root is not affected.
    base = rss_mib(srv)
    made = 1
    while True:
        r = rpc(srv, "task.create", alice, "x" * 60_000, "y" * 60_000)
        if r["Status"] != "Success":
            break
        made += 1
        assert made < 100
    desc = error(r)
    assert desc[0] == "VALUE_NOT_SUPPORTED" and "max-task-bytes-per-user" in desc[3], desc
    assert 14 <= made <= 18, made
    value(rpc(srv, "task.create", root, "x" * 60_000, "y" * 60_000))
    assert rss_mib(srv) - base < 50
    # A session's other_config is bounded the same way (500 sessions a user).
    value(rpc(srv, "session.add_to_other_config", root, root, "a", "v" * 60_000))
    desc = error(rpc(srv, "session.add_to_other_config", root, root, "b", "v" * 10_000))
    assert desc[:2] == ["VALUE_NOT_SUPPORTED", "other_config"], desc
    assert list(value(rpc(srv, "session.get_other_config", root, root))) == ["a"]
    desc = error(rpc(srv, "session.login_with_password", ALICE, ALICE_PW, "1.0", "o" * 70_000))
    assert desc[:2] == ["VALUE_NOT_SUPPORTED", "originator"], desc


# ----------------------------------------------------------------------------- 5. bytes, not counts


def test_legacy_event_queue_is_bounded_in_bytes(fresh):
    """2,000 set_progress calls on a 100 KB task used to cost +232 MB, and one event.next
    reply was 194 MB."""
    srv = fresh(["--ephemeral"])
    root = login(srv)
    watcher = login(srv)
    value(rpc(srv, "event.register", watcher, ["task"]))
    t = value(rpc(srv, "task.create", root, "l" * 60_000, "d" * 60_000))
    base = rss_mib(srv)

    def writer(k):
        for i in range(k, 2000, 4):
            value(rpc(srv, "task.set_progress", root, t, i / 2000))

    join_all(attack_threads(4, writer))
    grew = rss_mib(srv) - base
    status, data = post(srv, "/", xmlrpc.client.dumps((watcher,), "event.next").encode(),
                        "text/xml")
    reply = xmlrpc.client.loads(data)[0][0]
    print(f"\n2,000 writes of a 120 KB task: RSS +{grew:.0f} MiB; event.next reply "
          f"{len(data) / 1e6:.1f} MB ({reply.get('ErrorDescription', ['events'])[0]})")
    # The queue keeps at most 10 MiB of snapshots (xapi: 10 MB); before: +232 MiB.
    assert grew < 60
    assert reply == {"Status": "Failure", "ErrorDescription": ["EVENTS_LOST"]}
    # The session goes on from the present: the next write is one small event.
    value(rpc(srv, "task.set_progress", root, t, 1.0))
    status, data = post(srv, "/", xmlrpc.client.dumps((watcher,), "event.next").encode(),
                        "text/xml")
    events = value(xmlrpc.client.loads(data)[0][0])
    assert len(events) == 1 and len(data) < 400_000


def test_event_register_is_deduplicated_and_bounded(fresh):
    """16 sessions x 1M event.register entries used to cost +526 MB and slow root's
    writes to 1.5-2.5 s (every blocked event.next re-parsed its list under the lock)."""
    srv = fresh(["--ephemeral"])
    root = login(srv)
    sessions = [login(srv) for _ in range(16)]
    base = rss_mib(srv)
    for s in sessions:
        for _ in range(5):
            value(rpc(srv, "event.register", s, ["task"] * 5_000))
    desc = error(rpc(srv, "event.register", sessions[0], [f"task/OpaqueRef:{i}" for i in range(300)]))
    assert desc[0] == "VALUE_NOT_SUPPORTED" and "max-event-subscriptions" in desc[3]
    value(rpc(srv, "event.register", sessions[0], [f"task/OpaqueRef:{i}" for i in range(255)]))
    assert rss_mib(srv) - base < 30
    # 16 blocked event.next waiters; root's writes are not slowed by them.
    waiters = attack_threads(16, lambda i: rpc(srv, "event.next", sessions[i]))
    time.sleep(0.5)
    worst = 0.0
    for i in range(20):
        dt, _ = timed(rpc, srv, "task.create", root, f"w{i}", "")
        worst = max(worst, dt)
    join_all(waiters, timeout=30)
    print(f"\nroot's worst write with 16 registered waiters: {worst * 1000:.0f} ms")
    assert worst < 0.5


def test_request_heads_are_bounded(server):
    """A 500 KB request header was sometimes accepted."""
    body = xmlrpc.client.dumps(("x",), "system.isAlive:x").encode()
    # Past hyper's read buffer (also this size), hyper answers 431 itself and closes
    # while the client is still sending: the client may see the reset first.
    for size, want in ((30_000, {200}), (100_000, {431}), (500_000, {431, "reset"})):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.putrequest("POST", "/")
            conn.putheader("Content-Type", "text/xml")
            conn.putheader("Content-Length", str(len(body)))
            conn.putheader("X-Padding", "p" * size)
            try:
                conn.endheaders(body)
                status = conn.getresponse().status
            except (ConnectionResetError, BrokenPipeError):
                status = "reset"
        finally:
            conn.close()
        assert status in want, (size, status)
    assert value(rpc(server, "system.isAlive:x", "still")) == "still"


def test_one_address_cannot_hold_every_connection(fresh):
    """A connection takes its place in max-connections when accepted, before any byte or
    credential: one address that opened that many idle sockets got every other client a
    503 (with --max-connections 64, 72 sockets from one address, then a call from another:
    503 before). Now an address holds at most a quarter of them."""
    srv = fresh(["--max-connections", "64"])
    call = xmlrpc.client.dumps(("x",), "system.isAlive:x").encode()
    idle = []
    try:
        for _ in range(72):
            idle.append(socket.create_connection(
                ("127.0.0.1", srv.port), timeout=10, source_address=("127.0.9.1", 0)))
        time.sleep(0.5)  # all accepted (or refused) by now
        for source in ("127.0.0.1", "127.0.10.1"):
            status, data = post(srv, "/", call, "text/xml", source=source, timeout=10)
            assert status == 200 and b"<value>x</value>" in data, (source, status, data[:200])
        # The attacker's own sockets past its share were answered 503 and closed (the
        # answer comes unasked, so nothing is sent into a closed socket here).
        refused = [read_response(s) for s in idle[16:]]
        assert all(r.startswith(b"HTTP/1.1 503") for r in refused), refused[0][:200]
        assert b"too many connections from this address (the limit is 16)" in refused[0]
        assert b"x</value>" in post_on(idle[0], call)  # its first 16 are served
    finally:
        for s in idle:
            s.close()
    # Closed connections give their places back, once the server has seen them close
    # (an EOF each of its workers reads in its own time: bounded, not instant).
    deadline = time.monotonic() + 10
    while post(srv, "/", call, "text/xml", source="127.0.9.1", timeout=10)[0] != 200:
        assert time.monotonic() < deadline, "the closed connections' places never came back"
        time.sleep(0.1)
    for _ in range(16):
        assert value(rpc(srv, "system.isAlive:x", "y", source="127.0.9.1")) == "y"
