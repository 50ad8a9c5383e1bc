"""A front-end cut off from etcd, on a real network: the front-end runs in a Linux network
namespace of its own, reached by the test's clients over one veth pair and reaching the
etcd members over another; the cut is that second link going down.

While cut off, it answers writes and reads with a clear XAPI error (it cannot prove its
view is current) within its `etcd-timeout` (reads on an open connection: once its
cache is no longer proven fresh, `etcd-fresh`), the other front-end goes on serving, and
once the link is back it catches up and serves again by itself. Needs root and `ip`
(iproute2); the namespace and links are this test's own and are removed afterwards.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import etcd_cluster
from conftest import BINARY, ROOT_PASSWORD, free_port, ok, server_proxy, unique
from test_cluster import IN_CI, _need, front_end, login

TIMEOUT = 3.0  # the front-end's etcd-timeout in this test


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=check)


class Namespace:
    """netns `name` with two veth links to the host: `client` (10.213.N.0/30) and
    `store` (10.214.N.0/30)."""

    def __init__(self):
        n = os.getpid() % 200 + 20
        self.name = f"xt-cut-{os.getpid()}"
        tag = f"{os.getpid() % 100000}"
        self.links = {"client": (f"xtc{tag}h", f"xtc{tag}n", f"10.213.{n}"),
                      "store": (f"xts{tag}h", f"xts{tag}n", f"10.214.{n}")}
        sh("ip", "netns", "add", self.name)
        try:
            sh("ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up")
            for host, inside, net in self.links.values():
                sh("ip", "link", "add", host, "type", "veth", "peer", "name", inside)
                sh("ip", "link", "set", inside, "netns", self.name)
                sh("ip", "addr", "add", f"{net}.1/30", "dev", host)
                sh("ip", "link", "set", host, "up")
                sh("ip", "netns", "exec", self.name, "ip", "addr", "add", f"{net}.2/30", "dev", inside)
                sh("ip", "netns", "exec", self.name, "ip", "link", "set", inside, "up")
        except BaseException:
            self.remove()
            raise

    def host_ip(self, link):
        return self.links[link][2] + ".1"

    def inside_ip(self, link):
        return self.links[link][2] + ".2"

    def cut(self):
        sh("ip", "link", "set", self.links["store"][0], "down")

    def heal(self):
        sh("ip", "link", "set", self.links["store"][0], "up")

    def remove(self):
        for host, _, _ in self.links.values():
            sh("ip", "link", "del", host, check=False)
        sh("ip", "netns", "del", self.name, check=False)


def can_make_namespaces():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"xt-probe-{os.getpid()}"
    ok_ = sh("ip", "netns", "add", probe, check=False).returncode == 0
    sh("ip", "netns", "del", probe, check=False)
    return ok_


class InsideFrontEnd:
    """`xapi-taskd serve --store etcd` started inside the namespace."""

    def __init__(self, ns, etcd, prefix, extra_args=()):
        self.data_dir = tempfile.mkdtemp(prefix="xapi-taskd-cut-")
        self.port = free_port()
        self.url = f"http://{ns.inside_ip('client')}:{self.port}"
        endpoints = ",".join(
            f"http://{ns.host_ip('store')}:{p}" for p in etcd.client_ports
        )
        self.log = open(self.data_dir + ".log", "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, str(BINARY), "serve",
             "--listen", f"{ns.inside_ip('client')}:{self.port}", "--data-dir", self.data_dir,
             "--store", "etcd", "--etcd-endpoints", endpoints, "--etcd-prefix", prefix,
             "--etcd-timeout", str(TIMEOUT), *extra_args],
            env=dict(os.environ, XAPI_TASKD_ROOT_PASSWORD=ROOT_PASSWORD),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                server_proxy(self.url).session.login_with_password("root", ROOT_PASSWORD)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the front-end in the namespace did not start: " + self.output())
                time.sleep(0.1)

    def output(self):
        with open(self.data_dir + ".log", errors="replace") as f:
            return f.read()[-3000:]

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        try:
            os.unlink(self.data_dir + ".log")
        except OSError:
            pass


class CutOff:
    """etcd with a client address inside the namespace's reach, a front-end outside and
    one inside it (with `extra_args`); everything is removed on exit."""

    def __init__(self, extra_args=()):
        self.extra_args = extra_args

    def __enter__(self):
        _need(etcd_cluster.available(), "etcd is not installed")
        _need(can_make_namespaces(), "network namespaces need root and iproute2")
        self.ns = Namespace()
        self.etcd = self.inside = self.outside = None
        try:
            self.etcd = etcd_cluster.EtcdCluster(
                3, extra_client_ips=[self.ns.host_ip("store")]
            ).start()
            prefix = "/" + unique("cut") + "/"
            self.outside = front_end(self.etcd, prefix)
            self.inside = InsideFrontEnd(self.ns, self.etcd, prefix, self.extra_args)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for x in (self.inside, self.outside):
            if x is not None:
                x.cleanup()
        if self.etcd is not None:
            self.etcd.cleanup()
        self.ns.remove()


def heal_and_read_progress(cut, proxy, session, task):
    """Heals the cut, then reads `task`'s progress on `proxy` until it is answered (30 s
    at most): the reply."""
    cut.ns.heal()
    deadline = time.monotonic() + 30
    while True:
        r = proxy.task.get_progress(session, task)
        if r["Status"] == "Success":
            return r
        assert time.monotonic() < deadline, r
        time.sleep(0.2)


def timed(f):
    t = time.monotonic()
    out = f()
    return out, time.monotonic() - t


def test_a_front_end_cut_off_from_etcd_refuses_clearly_and_rejoins_by_itself():
    with CutOff() as cut:
        a, c = server_proxy(cut.outside.url), server_proxy(cut.inside.url)
        s = login(cut.outside.url)
        t = ok(c.task.create(s, "made-inside", ""))
        assert ok(a.task.get_name_label(s, t)) == "made-inside"

        cut.ns.cut()
        # Writes and reads on the cut-off front-end: a clear error, within its timeout.
        for call in (lambda: c.task.set_progress(s, t, 0.5), lambda: c.task.get_record(s, t)):
            reply, took = timed(call)
            assert reply["Status"] == "Failure", reply
            code, msg = reply["ErrorDescription"][:2]
            assert code == "INTERNAL_ERROR" and "cluster store" in msg, reply
            assert took < TIMEOUT * 4, took
        # The other front-end goes on.
        during = ok(a.task.create(s, "made-during-the-cut", ""))
        ok(a.task.set_progress(s, t, 0.25))

        r = heal_and_read_progress(cut, c, s, t)
        # It caught up with what happened meanwhile, and writes again.
        assert r["Value"] == 0.25
        assert ok(c.task.get_name_label(s, during)) == "made-during-the-cut"
        ok(c.task.set_progress(s, t, 0.75))
        assert ok(a.task.get_progress(s, t)) == 0.75


def test_with_cached_reads_a_cut_off_front_end_stops_answering_from_its_cache():
    with CutOff(["--etcd-reads", "cached"]) as cut:
        a, c = server_proxy(cut.outside.url), server_proxy(cut.inside.url)
        s = login(cut.outside.url)
        t = ok(a.task.create(s, "seen-inside", ""))
        assert ok(c.task.get_name_label(s, t)) == "seen-inside"
        cut.ns.cut()
        # Within the keep-alive's detection time, reads stop being served as current.
        deadline = time.monotonic() + 30
        while True:
            reply = c.task.get_name_label(s, t)
            if reply["Status"] == "Failure":
                break
            assert time.monotonic() < deadline, reply
            time.sleep(0.5)
        assert reply["ErrorDescription"][0] == "INTERNAL_ERROR", reply
        assert "cluster store" in reply["ErrorDescription"][1], reply
        cut.ns.heal()
        deadline = time.monotonic() + 30
        while c.task.get_name_label(s, t)["Status"] != "Success":
            assert time.monotonic() < deadline
            time.sleep(0.2)


FRESH = 1.0  # the inside front-end's etcd-fresh in the test below


def test_an_open_connection_on_a_cut_off_front_end_stops_reading_within_the_freshness_bound():
    """The default read mode (a barrier per connection): a connection that already synced
    reads the cache only while a barrier proved it current within `etcd-fresh`. A cut the
    watch stream does not show (the link just goes down: no reset, no close) stops the
    proofs, so within the bound (plus a probe's period and a margin) that same open
    connection's reads go through the barrier and are refused with the clear error; once
    the link is back, the same connection reads again, what happened meanwhile included."""
    with CutOff(["--etcd-fresh", str(FRESH)]) as cut:
        a, c = server_proxy(cut.outside.url), server_proxy(cut.inside.url)
        s = login(cut.outside.url)
        t = ok(a.task.create(s, "seen-inside", ""))
        assert ok(c.task.get_name_label(s, t)) == "seen-inside"
        cut.ns.cut()
        cut_at = time.monotonic()
        served = []  # start times of the reads answered from the cache after the cut
        while True:
            t0 = time.monotonic()
            reply = c.task.get_name_label(s, t)
            if reply["Status"] == "Failure":
                refused_at = time.monotonic()
                break
            served.append(t0 - cut_at)
            assert t0 - cut_at < 30, reply
            time.sleep(0.05)
        assert reply["ErrorDescription"][0] == "INTERNAL_ERROR", reply
        assert "cluster store" in reply["ErrorDescription"][1], reply
        # No read started later than the bound (a proof is at most half of it old when
        # the next probe is due) and a margin for a loaded machine was served as current.
        assert not served or served[-1] < FRESH * 1.5 + 1.0, served[-5:]
        # The first refused read waited for its barrier at most the store's timeout.
        assert refused_at - cut_at < FRESH * 1.5 + 1.0 + TIMEOUT * 2 + 2.0, refused_at - cut_at
        print(f"\nNETCUT reads served from the cache for {served[-1] if served else 0:.2f} s "
              f"after the cut; first refusal answered {refused_at - cut_at:.2f} s after it")
        ok(a.task.set_progress(s, t, 0.5))
        r = heal_and_read_progress(cut, c, s, t)
        # Back by itself, on the same connection, and current (the barrier that let it
        # read again covered the write made meanwhile).
        assert r["Value"] == 0.5, r
