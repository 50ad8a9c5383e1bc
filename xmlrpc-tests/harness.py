"""Module-scoped fixtures for the SDK-level test files (test_sessions, test_tasks,
test_roles, test_protocols, test_events, test_xen_orchestra): a server of their own,
started with conftest's launcher, with one user per XAPI role whose name is the role with
underscores (`read_only`, password `read_only-pw`), and small raw-HTTP helpers.

Test modules import the fixtures they use (`from harness import server, ...`).
"""

import http.client
import xmlrpc.client

import pytest

from conftest import ROLES, ROOT_PASSWORD, cluster_config, launch


class Server:
    """A running server (started by conftest's launcher) with the helpers these tests use."""

    def __init__(self, launcher):
        self.launcher = launcher
        self.url = launcher.url
        self.port = launcher.port
        self.data_dir = launcher.data_dir

    def user_add(self, name, role, password):
        self.launcher.add_user(name, role, password)

    def proxy(self, path="/"):
        return xmlrpc.client.ServerProxy(self.url + path, allow_none=True)

    def login(self, user="root", password=None):
        password = password or (ROOT_PASSWORD if user == "root" else user + "-pw")
        r = self.proxy().session.login_with_password(user, password)
        assert r["Status"] == "Success", r
        return r["Value"]


def start_server():
    return Server(launch(users=(), config=cluster_config()))


def stop_server(srv):
    srv.launcher.cleanup()


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
