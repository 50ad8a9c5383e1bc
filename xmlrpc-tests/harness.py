"""Shared fixtures: the real xapi-taskd binary on a free port with a fresh data dir, one
user per XAPI role (added with the `user add` command, as an operator would), and small
helpers for raw XML-RPC calls.

Test modules import the fixtures they use (`from harness import server, ...`).
"""

import http.client
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import xmlrpc.client

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "debug" / "xapi-taskd"
ROOT_PASSWORD = "root-pw-for-tests"
ROLES = ["pool-admin", "pool-operator", "vm-power-admin", "vm-admin", "vm-operator", "client-cert", "read-only"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url, port, data_dir, proc):
        self.url = url
        self.port = port
        self.data_dir = data_dir
        self.proc = proc

    def user_add(self, name, role, password):
        subprocess.run(
            [str(BINARY), "user", "add", name, "--role", role, "--data-dir", self.data_dir],
            input=password + "\n",
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def proxy(self, path="/"):
        return xmlrpc.client.ServerProxy(self.url + path, allow_none=True)

    def login(self, user="root", password=None):
        password = password or (ROOT_PASSWORD if user == "root" else user + "-pw")
        r = self.proxy().session.login_with_password(user, password)
        assert r["Status"] == "Success", r
        return r["Value"]


def start_server(extra_args=()):
    if not BINARY.exists():
        subprocess.run(["cargo", "build"], cwd=ROOT, check=True, timeout=600)
    data = tempfile.mkdtemp(prefix="xapi-taskd-test-")
    port = free_port()
    env = dict(os.environ, XAPI_TASKD_ROOT_PASSWORD=ROOT_PASSWORD)
    proc = subprocess.Popen(
        [str(BINARY), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data, *extra_args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("xapi-taskd did not start: " + proc.stderr.read().decode())
            time.sleep(0.05)
    return Server(f"http://127.0.0.1:{port}", port, data, proc)


def stop_server(srv):
    srv.proc.terminate()
    try:
        srv.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait(timeout=10)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    for role in ROLES:
        srv.user_add(role.replace("-", "_"), role, role.replace("-", "_") + "-pw")
    srv.user_add("other_ro", "read-only", "other_ro-pw")
    yield srv
    stop_server(srv)


@pytest.fixture
def root(server):
    """A raw proxy and a root session ref."""
    return server.proxy(), server.login()


def session_of(server, role):
    """A session ref of the user holding `role`."""
    name = role.replace("-", "_")
    return server.login(name, name + "-pw")


def ok(resp):
    assert resp["Status"] == "Success", resp
    return resp["Value"]


def fail(resp):
    assert resp["Status"] == "Failure", resp
    return resp["ErrorDescription"]


def raw_post(server, body, path="/", headers=None, method="POST"):
    """One HTTP exchange; returns (status, headers dict lower-cased, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    h = {"Content-Type": "text/xml"}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    data = resp.read()
    hdrs = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, hdrs, data


def call_xml(method, *params):
    return xmlrpc.client.dumps(tuple(params), methodname=method, allow_none=True).encode()


def with_headers(server, headers):
    """A ServerProxy that sends extra HTTP headers with every call."""

    class T(xmlrpc.client.Transport):
        def send_headers(self, connection, hdrs):
            for k, v in headers.items():
                connection.putheader(k, v)
            super().send_headers(connection, hdrs)

    return xmlrpc.client.ServerProxy(server.url + "/", transport=T(), allow_none=True)
