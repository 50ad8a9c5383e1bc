"""A real etcd cluster for tests: N members of Debian's `etcd` on loopback ports of their
own (never 2379/2380), data in a temporary directory (on /dev/shm when there is one).

    with EtcdCluster(3) as etcd:
        etcd.endpoints          # "http://127.0.0.1:p1,http://127.0.0.1:p2,..."
        etcd.kill(i); etcd.start(i)   # kill -9 a member and bring it back on its data
        etcd.leader()           # index of the member that leads

Also used by bench/ and scripts/demo-cluster.sh (run as a script it starts a cluster and
prints its endpoints until interrupted).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
START_TIMEOUT = 30.0


def available():
    return os.path.exists(ETCD)


def _free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in (2379, 2380):
            return port


class EtcdCluster:
    def __init__(self, members=3, token=None, listen_ip="127.0.0.1", extra_client_ips=()):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = tempfile.mkdtemp(prefix="xapi-taskd-etcd-", dir=base)
        self.ip = listen_ip
        # Also serve clients there (a front-end in a network namespace of a test's own).
        self.extra_client_ips = list(extra_client_ips)
        self.names = [f"m{i}" for i in range(members)]
        self.client_ports = [_free_port() for _ in range(members)]
        self.peer_ports = [_free_port() for _ in range(members)]
        self.token = token or f"xt-{os.getpid()}-{int(time.time() * 1000)}"
        self.procs = [None] * members

    @property
    def urls(self):
        return [f"http://{self.ip}:{p}" for p in self.client_ports]

    @property
    def endpoints(self):
        return ",".join(self.urls)

    def _args(self, i):
        cluster = ",".join(
            f"{n}=http://{self.ip}:{p}" for n, p in zip(self.names, self.peer_ports)
        )
        client = f"http://{self.ip}:{self.client_ports[i]}"
        listen = ",".join(
            [client] + [f"http://{ip}:{self.client_ports[i]}" for ip in self.extra_client_ips]
        )
        peer = f"http://{self.ip}:{self.peer_ports[i]}"
        return [
            ETCD,
            "--name", self.names[i],
            "--data-dir", os.path.join(self.dir, self.names[i]),
            "--listen-client-urls", listen,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.token,
            "--logger", "zap",
            "--log-outputs", os.path.join(self.dir, self.names[i] + ".log"),
            # Fewer disruptive elections on a loaded machine.
            "--pre-vote",
        ]

    def start(self, i=None):
        """Starts every member (or member i, e.g. after kill) and waits until healthy."""
        members = range(len(self.names)) if i is None else [i]
        for m in members:
            self.procs[m] = subprocess.Popen(
                self._args(m),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        self.wait_healthy(members)
        return self

    def wait_healthy(self, members=None, timeout=START_TIMEOUT):
        members = range(len(self.names)) if members is None else members
        deadline = time.monotonic() + timeout
        for m in members:
            while True:
                if self.procs[m] is not None and self.procs[m].poll() is not None:
                    raise RuntimeError(f"etcd member {m} exited: {self.log(m)[-2000:]}")
                if self.healthy(m):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd member {m} not healthy: {self.log(m)[-2000:]}")
                time.sleep(0.1)

    def healthy(self, i):
        try:
            with urllib.request.urlopen(self.urls[i] + "/health", timeout=1) as r:
                return json.loads(r.read()).get("health") == "true"
        except Exception:
            return False

    def status(self, i):
        req = urllib.request.Request(
            self.urls[i] + "/v3/maintenance/status", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(req, timeout=2) as r:
            return json.loads(r.read())

    def leader(self, timeout=15.0):
        """Index of the current leader (as the members that answer see it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(len(self.names)):
                if self.procs[i] is None or self.procs[i].poll() is not None:
                    continue
                try:
                    st = self.status(i)
                except Exception:
                    continue
                if st.get("leader") and st.get("leader") == st.get("header", {}).get("member_id"):
                    return i
            time.sleep(0.1)
        raise RuntimeError("no etcd leader")

    def kill(self, i):
        """SIGKILL, as a crash."""
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)
        self.procs[i] = None

    def log(self, i):
        try:
            with open(os.path.join(self.dir, self.names[i] + ".log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        for i in range(len(self.names)):
            self.kill(i)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _die_with_parent():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    except Exception:
        pass


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with EtcdCluster(n) as c:
        print(c.endpoints, flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
