"""The XClarity (LXCA) face's edges (docs/xclarity.md), black-box against the real binary:
HTTP Basic authentication on LXCA's paths (as Lenovo's Ruby client `xclarity_client` uses
it with `auth_type 'basic_auth'`: the header on every request, no cookie, no CSRF token),
bodies that are not JSON (415), and a request head over the limit (431), each answered
with LXCA's message body; unmodified pylxca 4.2.0 beside them.
"""

import json
import socket
import time

import pytest
import requests

from conftest import ROOT_PASSWORD, launch, server_proxy, user_name, user_password
# The same server (HTTP and TLS, one per module) and the same two bases as the pylxca tests.
from test_xclarity import base, connect, pylxca, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
ROOT = ("root", ROOT_PASSWORD)


def call(base, method, path, **kw):
    return requests.request(method, base + path, verify=False, timeout=30, **kw)


def lxca_error(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    body = resp.json()
    assert body["result"] == "failed"
    return body["messages"][0]


def task_count(server):
    p = server_proxy(server.url + "/")
    s = p.session.login_with_password("root", ROOT_PASSWORD)["Value"]
    try:
        return len(p.task.get_all(s)["Value"])
    finally:
        p.session.logout(s)


# --------------------------------------------------------------------------------------
# Basic authentication


def test_basic_credentials_work_on_every_resource_without_cookie_or_csrf(base, server):
    job = {"jobTitle": "made with Basic", "children": [{"jobTitle": "step"}]}
    r = call(base, "POST", "/tasks", json=job, auth=ROOT)
    assert r.status_code == 201, r.text
    assert "Set-Cookie" not in r.headers
    uid = r.json()["jobUID"]
    got = call(base, "GET", f"/tasks/{uid}", auth=ROOT)
    assert got.status_code == 200, got.text
    assert got.json()[0]["jobTitle"] == "made with Basic"
    assert got.json()[0]["createdBy"] == "root"
    assert call(base, "GET", "/tasks", auth=ROOT).status_code == 200
    assert call(base, "GET", "/aicc", auth=ROOT).json()["appliance"]["status"] == "Normal"
    monitor = call(base, "GET", f"/csvRequest/jobs/{uid}", auth=ROOT)
    assert monitor.status_code == 200 and monitor.json()["status"] == "INCOMPLETE"
    r = call(base, "PUT", f"/tasks/{uid}", json={"jobState": "Complete", "percentage": 100},
             auth=ROOT)
    assert r.status_code == 200, r.text
    # The job is the same one to pylxca (cookie and CSRF token).
    con = connect(base)
    try:
        seen = pylxca.tasks(con, j=uid)["TaskList"][0]
        assert seen["jobState"] == "Complete" and len(seen["children"]) == 1
    finally:
        pylxca.disconnect(con)
    # "Logging out" with Basic ends nothing the credentials depend on.
    assert call(base, "DELETE", "/sessions", auth=ROOT).json()["result"] == "success"
    assert call(base, "DELETE", f"/tasks/{uid}", auth=ROOT).status_code == 200
    assert call(base, "GET", f"/tasks/{uid}", auth=ROOT).status_code == 404


def test_wrong_basic_credentials_are_lxcas_401(base):
    for auth in [("root", "wrong"), ("nobody", "x")]:
        r = call(base, "GET", "/tasks", auth=auth)
        m = lxca_error(r, 401)
        assert m["text"] == "The user ID or password is not valid.", m
        assert "SESSION_AUTHENTICATION_FAILED" in m["explanation"]
        # No challenge: a browser never prompts for (and then holds) Basic credentials.
        assert "WWW-Authenticate" not in r.headers
    r = call(base, "GET", "/tasks", headers={"Authorization": "Bearer abc"})
    assert lxca_error(r, 401)["text"] == "The request requires a valid session."


def test_basic_keeps_xapi_users_roles_and_ownership(base, server):
    ro = (user_name("read-only"), user_password("read-only"))
    r = call(base, "POST", "/tasks", json={"jobTitle": "read-only's own"}, auth=ro)
    assert r.status_code == 201, r.text
    mine = r.json()["jobUID"]
    assert call(base, "GET", f"/tasks/{mine}", auth=ro).json()[0]["createdBy"] == ro[0]
    r = call(base, "POST", "/tasks", json={"jobTitle": "root's"}, auth=ROOT)
    roots = r.json()["jobUID"]
    before = task_count(server)
    r = call(base, "DELETE", f"/tasks/{roots}", auth=ro)
    assert "RBAC_PERMISSION_DENIED" in lxca_error(r, 403)["explanation"]
    assert task_count(server) == before
    for uid, who in [(mine, ro), (roots, ROOT)]:
        assert call(base, "DELETE", f"/tasks/{uid}", auth=who).status_code == 200


def test_a_cookie_still_needs_its_csrf_token_when_basic_is_also_sent(base):
    con = connect(base)
    try:
        cookies = dict(con.get_session().cookies)
        r = call(base, "POST", "/tasks", json={"jobTitle": "x"}, cookies=cookies, auth=ROOT)
        assert "CSRF" in lxca_error(r, 403)["text"]
    finally:
        pylxca.disconnect(con)


def test_wrong_basic_credentials_meet_the_login_guard():
    """Basic logins are XAPI logins: past the free failures, each wrong one waits (0.1 s,
    doubling), as a wrong XML-RPC login does."""
    srv = launch(["--login-free-failures", "1"], users=())
    try:
        bad = ("root", "wrong")
        for _ in range(3):
            lxca_error(call(srv.url, "GET", "/tasks", auth=bad), 401)
        t0 = time.monotonic()
        lxca_error(call(srv.url, "GET", "/tasks", auth=bad), 401)
        assert time.monotonic() - t0 >= 0.35  # the fourth failure's 0.4 s delay
        assert call(srv.url, "GET", "/tasks", auth=ROOT).status_code == 200
    finally:
        srv.cleanup()


# --------------------------------------------------------------------------------------
# 415: bodies that are not JSON


def test_a_login_that_is_not_json_is_415_and_makes_no_session(base):
    creds = {"UserId": "root", "password": ROOT_PASSWORD}
    for kw in [{"data": creds},  # form-encoded
               {"data": json.dumps(creds), "headers": {"Content-Type": "text/plain"}},
               {"data": json.dumps(creds).encode()}]:  # no Content-Type at all
        r = call(base, "POST", "/sessions", **kw)
        m = lxca_error(r, 415)
        assert m["text"] == "The request body must be JSON.", m
        assert "Set-Cookie" not in r.headers
    r = call(base, "POST", "/sessions", data=json.dumps(creds).encode())
    assert "no Content-Type" in lxca_error(r, 415)["explanation"]
    r = call(base, "POST", "/sessions", data=creds)
    assert "x-www-form-urlencoded" in lxca_error(r, 415)["explanation"]
    # pylxca's type (with its charset) and any application/…+json are JSON.
    for ct in ["application/json; charset=utf-8", "application/vnd.lxca+json"]:
        r = call(base, "POST", "/sessions", data=json.dumps(creds), headers={"Content-Type": ct})
        assert r.status_code == 200, (ct, r.text)


def test_job_bodies_that_are_not_json_are_415_and_change_nothing(base, server):
    con = connect(base)
    try:
        s = con.get_session()
        before = task_count(server)
        job = json.dumps({"jobTitle": "form"})
        for ct in ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]:
            r = s.post(base + "/tasks", data=job, headers={"Content-Type": ct}, verify=False,
                       timeout=30)
            lxca_error(r, 415)
        r = pylxca.tasks(con, a="create", t=json.dumps({"jobTitle": "json"}))
        uid = r.json()["jobUID"]
        assert task_count(server) == before + 1
        r = s.put(base + f"/tasks/{uid}", data="percentage=50",
                  headers={"Content-Type": "application/x-www-form-urlencoded"}, verify=False,
                  timeout=30)
        lxca_error(r, 415)
        assert pylxca.tasks(con, j=uid)["TaskList"][0]["percentage"] == 0
        # With Basic too (no CSRF token to stop it first).
        r = call(base, "PUT", "/tasks", data=json.dumps({"action": "cancel", "list": [uid]}),
                 headers={"Content-Type": "text/plain"}, auth=ROOT)
        lxca_error(r, 415)
        assert pylxca.tasks(con, j=uid)["TaskList"][0]["jobState"] == "Running"
        pylxca.tasks(con, j=uid, a="delete")
    finally:
        pylxca.disconnect(con)


def test_an_xml_post_on_an_lxca_path_is_still_xml_rpc(server):
    p = server_proxy(server.url + "/sessions")
    assert p.session.login_with_password("root", ROOT_PASSWORD)["Status"] == "Success"


# --------------------------------------------------------------------------------------
# 431: a request head over the limit


def raw_request(port, head):
    """`head` sent on a fresh socket; the whole answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    status_line, _, rest = b"".join(chunks).partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    lines = [line.split(b":", 1) for line in headers.split(b"\r\n")]
    return status_line, {k.strip().lower(): v.strip() for k, v in lines}, body


def big_head(path, method=b"GET", extra=b""):
    """A GET whose head (70 KB) is over the default `max-header-bytes` (64 KiB), which the
    server counts exactly. (hyper's own read buffer has the same bound, but on loopback it
    takes a head sent at once in reads of 8, 16, 32 and 64 KiB, so this head reaches the
    count; a head hyper cannot buffer it answers itself with a 431 and no body.)"""
    return (method + b" " + path + b" HTTP/1.1\r\nHost: h\r\n" + extra + b"X-Pad: " +
            b"x" * 70_000 + b"\r\n\r\n")


def test_a_head_too_large_on_an_lxca_path_is_an_lxca_431(server):
    status, headers, body = raw_request(server.port, big_head(b"/tasks"))
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large", (status, body[:200])
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"application/json; charset=utf-8"
    message = json.loads(body)["messages"][0]
    assert message["id"] == "XAPITASKD0431E" and "65536" in message["explanation"], message


def test_a_head_too_large_on_redfish_is_a_redfish_431(server):
    status, headers, body = raw_request(server.port, big_head(b"/redfish/v1"))
    assert status.startswith(b"HTTP/1.1 431"), (status, body[:200])
    assert headers[b"connection"] == b"close"
    assert json.loads(body)["error"]["code"] == "Base.1.22.1.GeneralError"


def test_a_head_too_large_elsewhere_is_still_an_xml_rpc_431(server):
    xml = b"Content-Type: text/xml\r\nContent-Length: 0\r\n"
    for path in [b"/", b"/tasks"]:  # an XML POST on an LXCA path is XML-RPC's
        status, headers, body = raw_request(server.port, big_head(path, b"POST", xml))
        assert status.startswith(b"HTTP/1.1 431"), (status, body[:200])
        assert headers[b"connection"] == b"close" and b"<methodResponse>" in body, body[:200]
