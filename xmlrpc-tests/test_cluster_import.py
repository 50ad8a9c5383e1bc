"""`xapi-taskd cluster import`: a real single-node server's data moved into a real etcd
(one member: the import's transactions do not depend on how many members agree on them,
and one member keeps CI's time small), then served by a real front-end.

What is checked, with xmlrpc.client and the XenAPI SDK: every task record is the same
before and after (parents, sub-tasks, other_config, owners, failed and cancelled ones; the
XML-RPC reply of task.get_record byte for byte); a user added with `user add` on the
single node logs in with the same password; the single node's sessions still work; RBAC
ownership holds; new tasks and `event.from` work, and an `event.from` token from the
single node goes on working (it does not go backwards); a second import into the same
prefix is refused, and so is one holding keys of someone else's; an import killed halfway
leaves a prefix that a front-end and the `user` commands refuse with a clear message and
that running the import again completes; a store a running server holds, or a damaged one,
is refused; under etcd authentication, the import works as a user whose role covers only
its prefix (and is refused elsewhere, saying so).
"""

import os
import signal
import subprocess
import tempfile
import xmlrpc.client

import pytest

import etcd_cluster
from conftest import (
    BINARY,
    Raw,
    header_proxy,
    launch,
    ok,
    server_proxy,
    unique,
    user_name,
    user_password,
    xml_call,
)
from test_cluster import _need, etcdctl, event_from, front_end, login

IMPORT_TIMEOUT = 120


@pytest.fixture(scope="module")
def etcd():
    _need(etcd_cluster.available(), "etcd is not installed (apt-get install etcd-server)")
    cluster = etcd_cluster.EtcdCluster(1).start()
    yield cluster
    cluster.cleanup()


def import_into(etcd, data_dir, prefix, *extra):
    return subprocess.run(
        [
            str(BINARY), "cluster", "import", "--data-dir", data_dir,
            "--etcd-endpoints", etcd.endpoints, "--etcd-prefix", prefix, *extra,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT,
    )


def user_cli(etcd, prefix, *args, stdin=""):
    """A `user` command against the cluster by flags alone, from a data dir of its own."""
    with tempfile.TemporaryDirectory(prefix="xapi-taskd-pytest-") as own:
        return subprocess.run(
            [
                str(BINARY), "user", *args, "--data-dir", own, "--store", "etcd",
                "--etcd-endpoints", etcd.endpoints, "--etcd-prefix", prefix,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
        )


def differences(after, before):
    """Every (ref, field, before, after) that differs, for a readable failure."""
    out = [(r, "<missing>", None, None) for r in before if r not in after]
    for r, rec in before.items():
        for k, v in rec.items():
            if r in after and after[r].get(k) != v:
                out.append((r, k, v, after[r].get(k)))
    return out


def raw_record(url, session, task):
    status, _, body = Raw(url).post(
        xml_call("task.get_record", f"<string>{session}</string>", f"<string>{task}</string>")
    )
    assert status == 200
    return body


def test_a_single_node_moves_into_the_cluster_with_every_record_user_and_token(etcd):
    op_role, ro_role = "vm-operator", "read-only"
    single = launch(["--gc-interval", "86400"], users=(op_role, ro_role))
    fe = None
    try:
        p = server_proxy(single.url)
        root = login(single.url)
        alice = login(single.url, user_name(op_role), user_password(op_role))
        parent = ok(p.task.create(root, unique("parent"), "the parent"))
        hp = header_proxy(single.url, {"task-id": parent})
        child = ok(hp.task.create(root, unique("child"), "a sub-task"))
        ok(hp.task.create(alice, unique("child"), "alice's sub-task"))
        # More children: their refs are random, so their creation order is almost never
        # their key order, which the import must not fall back to.
        for i in range(6):
            ok(hp.task.create(root, f"child {i}", ""))
        grandchild = ok(header_proxy(single.url, {"task-id": child}).task.create(root, "gc", ""))
        ok(p.task.add_to_other_config(root, parent, "k\u00e9y", "v <&> \u00e9"))
        ok(p.task.set_progress(root, child, 0.25))
        failed = ok(p.task.create(root, unique("failed"), ""))
        ok(p.task.set_error_info(root, failed, ["INTERNAL_ERROR", "disk on fire"]))
        ok(p.task.set_status(root, failed, "failure"))
        cancelled = ok(p.task.create(alice, unique("cancelled"), ""))
        ok(p.task.cancel(alice, cancelled))
        ok(p.task.set_status(alice, cancelled, "cancelled"))
        mine = ok(p.task.create(alice, unique("alice"), ""))
        gone = ok(p.task.create(root, unique("gone"), ""))
        ok(p.task.set_status(root, gone, "success"))
        ok(p.task.destroy(root, gone))
        before = ok(p.task.get_all_records(root))
        raw_before = {t: raw_record(single.url, root, t) for t in before}
        token = event_from(p, root, ["task"], "", 0.1)["token"]

        # A server holds the store: nothing is read, nothing is written.
        prefix = "/" + unique("imp") + "/"
        res = import_into(etcd, single.data_dir, prefix)
        assert res.returncode == 1, res
        assert "is a server running" in res.stderr, res.stderr

        single.stop()
        res = import_into(etcd, single.data_dir, prefix)
        assert res.returncode == 0, res.stdout + res.stderr
        unfinished = sum(r["status"] in ("pending", "cancelling") for r in before.values())
        assert unfinished == 11
        assert f"imported {len(before)} tasks ({unfinished} unfinished)" in res.stdout, res.stdout
        assert "1 deletion records" in res.stdout and "the users file" in res.stdout, res.stdout

        fe = front_end(etcd, prefix)
        q = server_proxy(fe.url)
        # The single node's sessions are carried: the same refs work on the front-end.
        after = ok(q.task.get_all_records(root))
        assert differences(after, before) == []
        assert after == before
        for t, body in raw_before.items():
            assert raw_record(fe.url, root, t) == body, t
        # With the XenAPI SDK, as its users would (a user added on the single node).
        XenAPI = pytest.importorskip("XenAPI")
        s = XenAPI.Session(fe.url)
        s.xenapi.login_with_password(user_name(ro_role), user_password(ro_role))
        try:
            records = s.xenapi.task.get_all_records()
            assert {r: records[r] for r in before} == before
        finally:
            s.xenapi.session.logout()

        assert sorted(ok(q.task.get_subtasks(root, parent))) == sorted(before[parent]["subtasks"])
        assert ok(q.task.get_subtask_of(root, grandchild)) == child
        assert ok(q.task.get_by_uuid(root, before[failed]["uuid"])) == failed
        assert gone not in before

        # The user added with `user add` on the single node logs in with her password,
        # and what she owns is still hers alone.
        alice2 = login(fe.url, user_name(op_role), user_password(op_role))
        ok(q.task.set_progress(alice2, mine, 0.5))
        ok(q.task.set_progress(alice, mine, 0.75))
        denied = q.task.set_progress(alice2, child, 0.5)
        assert denied["Status"] == "Failure", denied
        assert denied["ErrorDescription"][0] == "RBAC_PERMISSION_DENIED", denied
        wrong = q.session.login_with_password(user_name(op_role), "not her password")
        assert wrong["ErrorDescription"][0] == "SESSION_AUTHENTICATION_FAILED", wrong

        # The single node's token carries on: the next change is after it.
        new = ok(q.task.create(root, unique("new"), "made on the front-end"))
        batch = event_from(q, root, ["task"], token, 10.0)
        assert batch["token"] > token
        ops = {(e["ref"], e["operation"]) for e in batch["events"]}
        # Every row once more (the import created them), the deleted task as a `del`.
        assert {(t, "add") for t in before} | {(new, "add"), (gone, "del")} <= ops, ops

        # A second import into the deployment is refused, and changes nothing.
        res = import_into(etcd, single.data_dir, prefix)
        assert res.returncode == 1, res
        assert "already holds a deployment" in res.stderr, res.stderr
        assert new in ok(q.task.get_all(root))
    finally:
        if fe is not None:
            fe.cleanup()
        single.cleanup()


def test_an_import_killed_halfway_is_refused_by_front_ends_and_completed_by_a_rerun(etcd):
    single = launch(["--gc-interval", "86400"], users=())
    fe = None
    try:
        p = server_proxy(single.url)
        root = login(single.url)
        for i in range(300):
            ok(p.task.create(root, f"task {i}", ""))
        before = ok(p.task.get_all_records(root))
        single.stop()

        prefix = "/" + unique("half") + "/"
        # One task per transaction: three hundred transactions, each waiting for etcd's
        # fsync; killed once the first is written.
        proc = subprocess.Popen(
            [
                str(BINARY), "cluster", "import", "--data-dir", single.data_dir,
                "--etcd-endpoints", etcd.endpoints, "--etcd-prefix", prefix,
                "--batch-ops", "3",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for line in proc.stderr:
                if "transactions written" in line:
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL

        with pytest.raises(RuntimeError) as refused:
            front_end(etcd, prefix)
        assert "unfinished `xapi-taskd cluster import`" in str(refused.value)
        assert "run the import again" in str(refused.value)
        status = subprocess.run(
            [
                str(BINARY), "cluster", "status", "--store", "etcd",
                "--etcd-endpoints", etcd.endpoints, "--etcd-prefix", prefix,
            ],
            capture_output=True, text=True, timeout=IMPORT_TIMEOUT,
        )
        assert "problem: an unfinished `cluster import`" in status.stdout, status
        # The `user` commands refuse it too (the import's publish would overwrite what
        # they wrote), saying what to do, and write nothing.
        for args in (["add", "carol", "--role", "read-only"], ["passwd", "root"]):
            res = user_cli(etcd, prefix, *args, stdin="carol-pw\n")
            assert res.returncode == 1, res
            assert "unfinished `xapi-taskd cluster import`" in res.stderr, res.stderr
            assert "run the import again" in res.stderr, res.stderr
        assert etcdctl(etcd, "get", prefix + "c/users").stdout == ""

        res = import_into(etcd, single.data_dir, prefix, "--batch-ops", "3")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "an unfinished import was started over" in res.stdout, res.stdout
        fe = front_end(etcd, prefix)
        assert ok(server_proxy(fe.url).task.get_all_records(root)) == before
        res = user_cli(etcd, prefix, "add", "carol", "--role", "read-only", stdin="carol-pw\n")
        assert res.returncode == 0, res.stderr
        assert login(fe.url, "carol", "carol-pw").startswith("OpaqueRef:")
    finally:
        if fe is not None:
            fe.cleanup()
        single.cleanup()


def test_a_prefix_with_other_keys_and_a_damaged_store_are_refused(etcd):
    single = launch([], users=())
    try:
        single.stop()
        foreign = "/" + unique("foreign") + "/"
        put = etcdctl(etcd, "put", foreign + "someone-elses", "x")
        assert put.returncode == 0, put.stderr
        res = import_into(etcd, single.data_dir, foreign)
        assert res.returncode == 1, res
        assert "holds keys, but no deployment and no unfinished import" in res.stderr, res.stderr
        assert etcdctl(etcd, "get", foreign + "someone-elses").stdout.split() == [
            foreign + "someone-elses", "x"
        ]

        with open(os.path.join(single.data_dir, "store.redb"), "r+b") as f:
            f.write(b"not a store at all")
        prefix = "/" + unique("bad") + "/"
        res = import_into(etcd, single.data_dir, prefix)
        assert res.returncode == 1, res
        assert "damaged" in res.stderr, res.stderr
        # Nothing under the prefix: a front-end starts on it as on any new one.
        fe = front_end(etcd, prefix)
        try:
            assert ok(server_proxy(fe.url).task.get_all(login(fe.url))) == []
        finally:
            fe.cleanup()
    finally:
        single.cleanup()


def test_the_import_works_as_an_etcd_user_whose_role_covers_only_its_prefix():
    """etcd authentication as an operator sets it up: the import (and then the front-end)
    run as `bob`, whose role may read and write only under /b/."""
    _need(etcd_cluster.available(), "etcd is not installed (apt-get install etcd-server)")
    secured = etcd_cluster.EtcdCluster(1).start()
    single = launch(["--gc-interval", "86400"], users=())
    # Beside the data directory, not in it (the import reads that one only).
    pw = single.data_dir + ".etcd-password"
    fe = None
    try:
        def ctl(*args, user=None):
            res = etcdctl(secured, *(["--user", user] if user else []), *args)
            assert res.returncode == 0, res.stderr
        ctl("user", "add", "root:rootpw")
        ctl("user", "grant-role", "root", "root")
        ctl("auth", "enable")
        for args in (
            ["role", "add", "rb"],
            ["role", "grant-permission", "rb", "--prefix=true", "readwrite", "/b/"],
            ["user", "add", "bob:bob-pw"],
            ["user", "grant-role", "bob", "rb"],
        ):
            ctl(*args, user="root:rootpw")
        with open(pw, "w") as f:
            f.write("bob-pw\n")
        as_bob = ["--etcd-user", "bob", "--etcd-password-file", pw]

        p = server_proxy(single.url)
        root = login(single.url)
        parent = ok(p.task.create(root, unique("parent"), ""))
        ok(header_proxy(single.url, {"task-id": parent}).task.create(root, unique("c"), ""))
        before = ok(p.task.get_all_records(root))
        single.stop()

        res = import_into(secured, single.data_dir, "/a/", *as_bob)
        assert res.returncode == 1, res
        assert '"bob" has no permission on the keys under /a/' in res.stderr, res.stderr
        res = import_into(secured, single.data_dir, "/b/", *as_bob)
        assert res.returncode == 0, res.stdout + res.stderr
        fe = front_end(
            secured, "/b/", extra_config=f'etcd-user = "bob"\netcd-password-file = "{pw}"\n'
        )
        assert ok(server_proxy(fe.url).task.get_all_records(root)) == before
    finally:
        if fe is not None:
            fe.cleanup()
        single.cleanup()
        secured.cleanup()
        if os.path.exists(pw):
            os.unlink(pw)
