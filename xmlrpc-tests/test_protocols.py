"""Bytes on the wire: XML-RPC and JSON-RPC envelopes, headers, keep-alive, and bad input
(each answered clearly, and the server keeps serving)."""

import http.client
import json
import socket
import time

import pytest

from harness import call_xml, fail, ok, raw_post, root, server  # noqa: F401

OK = ('<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name>'
      '<value>Success</value></member><member><name>Value</name>')
END = "</member></struct></value></param></params></methodResponse>"


def still_serving(server):
    status, _, body = raw_post(server, call_xml("system.listMethods"))
    assert status == 200 and b"task.create" in body


def test_response_bytes_and_headers(server, root):
    p, s = root
    t = ok(p.task.create(s, "bytes", ""))
    ok(p.task.set_progress(s, t, 0.25))
    status, hdrs, body = raw_post(server, call_xml("task.get_progress", s, t))
    assert status == 200
    assert hdrs["content-type"] == "text/xml"
    assert hdrs["access-control-allow-origin"] == "*"
    assert body.decode() == OK + "<value><double>0.25</double></value>" + END
    ok(p.task.set_progress(s, t, 1.0))
    _, _, body = raw_post(server, call_xml("task.get_progress", s, t), path="/RPC2")
    assert body.decode() == OK + "<value><double>1</double></value>" + END
    _, _, body = raw_post(server, call_xml("task.get_name_label", s, t), path="/xmlrpc")
    assert body.decode() == OK + "<value>bytes</value>" + END
    _, _, body = raw_post(server, call_xml("task.get_record", s, t))
    text = body.decode()
    assert "\n" not in text and text.startswith(OK + "<value><struct><member><name>uuid</name><value>")
    assert "<member><name>type</name><value>&lt;none/&gt;</value></member>" in text
    assert "<member><name>finished</name><value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value></member>" in text


def test_list_methods_has_no_envelope(server):
    _, _, body = raw_post(server, call_xml("system.listMethods"))
    assert body.startswith(b'<?xml version="1.0"?><methodResponse><params><param><value><array><data><value>')
    names = server.proxy().system.listMethods()
    assert "task.get_all_records_where" in names and "event.from" in names
    assert not any(n.startswith("Async.") for n in names)


def test_cors_preflight_and_keep_alive(server, root):
    status, hdrs, body = raw_post(server, b"", method="OPTIONS",
                                  headers={"Access-Control-Request-Headers": "x-custom"})
    assert status == 200 and body == b""
    assert hdrs["access-control-allow-methods"] == "PUT"
    assert hdrs["access-control-allow-headers"] == "x-custom, X-Requested-With"
    p, s = root
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(5):
        conn.request("POST", "/", body=call_xml("task.get_all", s), headers={"Content-Type": "text/xml"})
        r = conn.getresponse()
        assert r.status == 200 and b"Success" in r.read()
    conn.close()


@pytest.mark.parametrize("body", [
    b"<methodCall><methodName>task.get_all</methodName>",
    b"this is not xml",
    b"<methodResponse><params/></methodResponse>",
    b"<methodCall><methodName>task.get_all</methodName></methodCall>",
    b"<methodCall><methodName>m</methodName><params><param><value><unknown/></value></param></params></methodCall>",
    b"<methodCall><methodName>m</methodName><params>" + b"<param><value>" + b"<array><data><value>" * 500
    + b"x" + b"</value></data></array>" * 500 + b"</value></param></params></methodCall>",
])
def test_malformed_xml(server, body):
    status, hdrs, data = raw_post(server, body)
    assert status == 200 and hdrs["content-type"] == "text/xml"
    assert b"<value>Failure</value>" in data and b"<value>XMLRPC_UNMARSHAL_FAILURE</value>" in data
    still_serving(server)


def test_invalid_utf8_parameter(server, root):
    p, s = root
    body = call_xml("task.create", s, "PLACEHOLDER", "").replace(b"PLACEHOLDER", b"bad\xff\xfe")
    _, _, data = raw_post(server, body)
    assert b"<value>INVALID_VALUE</value><value>Invalid UTF-8 string in parameter</value>" in data
    still_serving(server)


def test_oversized_body_is_refused(server):
    big = call_xml("task.create", "s", "x" * (400 * 1024), "")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", "/", body=big, headers={"Content-Type": "text/xml"})
        r = conn.getresponse()
        assert r.status == 413
        assert b"exceeds the limit of 307200 bytes" in r.read()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close before the whole body is sent; that is a refusal too
    finally:
        conn.close()
    still_serving(server)


def test_wrong_counts_and_types(server, root):
    p, s = root
    assert fail(p.task.get_record()) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "task.get_record", "1", "-1"]
    assert fail(p.task.get_record(s)) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "task.get_record", "1", "0"]
    assert fail(p.task.get_record(s, "a", "b")) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "task.get_record", "1", "2"]
    assert fail(p.task.get_record("OpaqueRef:bad")) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "task.get_record", "1", "0"]
    assert fail(p.task.get_all(None)) == ["INTERNAL_ERROR", "Failure(\"Expected string, got 'N'\")"]
    assert fail(getattr(p, "Async.task.get_record")(s, "x")) == [
        "Fault", "No async mode for this operation (rpc: task.get_record)"]
    still_serving(server)


def jsonrpc(server, payload):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/jsonrpc", body=payload, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    ctype = r.getheader("Content-Type")
    conn.close()
    return r.status, ctype, data


def test_jsonrpc_envelopes(server, root):
    _, s = root
    status, ctype, data = jsonrpc(server, json.dumps(
        {"jsonrpc": "2.0", "method": "task.get_all", "params": ["OpaqueRef:bad"], "id": 7}))
    assert status == 200 and ctype == "application/json"
    assert data == b'{"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_INVALID","data":["OpaqueRef:bad"]},"id":7}'
    _, _, data = jsonrpc(server, json.dumps({"method": "task.get_all", "params": ["OpaqueRef:bad"], "id": "x"}))
    assert data == b'{"result":null,"error":["SESSION_INVALID","OpaqueRef:bad"],"id":"x"}'
    _, _, data = jsonrpc(server, json.dumps(
        {"jsonrpc": "2.0", "method": "task.create", "params": [s, "json", ""], "id": 1}))
    reply = json.loads(data)
    assert list(reply.keys()) == ["jsonrpc", "result", "id"] and reply["result"].startswith("OpaqueRef:")
    t = reply["result"]
    _, _, data = jsonrpc(server, json.dumps({"method": "task.get_progress", "params": [s, t], "id": 2}))
    assert data == b'{"result":0.0,"error":null,"id":2}'
    _, _, data = jsonrpc(server, json.dumps({"jsonrpc": "2.0", "method": "task.get_record", "params": [s, t], "id": 3}))
    rec = json.loads(data)["result"]
    assert rec["finished"] == "19700101T00:00:00Z" and rec["progress"] == 0.0
    # Sessions are shared between the protocols.
    assert t in server.proxy().task.get_all(s)["Value"]


def test_jsonrpc_bad_requests(server):
    for body in [b"{", b"[]", b'{"jsonrpc":"2.0","method":"m"}', b'{"method":"m","id":1}']:
        status, ctype, data = jsonrpc(server, body)
        assert status == 200 and ctype == "application/json"
        err = json.loads(data)["error"]
        assert err["code"] in (-32700, -32600) and err["data"]
    still_serving(server)


@pytest.mark.parametrize(
    "method, path, content_type, status",
    [
        ("POST", "/redfish/v1/", "application/json", 405),  # Redfish: read-only resource
        ("PATCH", "/redfish/v1/", "application/json", 405),
        ("PUT", "/tasks", "application/json", 401),  # XClarity: no session cookie
        ("GET", "/", "text/plain", 200),  # the web page, a GET with a body
        ("PUT", "/RPC2", "text/xml", 405),  # XML-RPC: not a POST
    ],
)
def test_an_early_answer_keeps_the_connection(server, method, path, content_type, status):
    """A request answered before its body was needed (a 405, a 401) keeps its keep-alive
    connection: the server reads the body first. Otherwise hyper closes the connection
    over the unread body, and a client that already sent its next request on it (as DMTF's
    protocol validator does) sees it dropped."""
    body = b'{"a": "' + b"x" * 2000 + b'"}'
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest(method, path)
        conn.putheader("Content-Type", content_type)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        time.sleep(0.2)  # the body comes later, as it does over a real network
        conn.send(body)
        first = conn.getresponse()
        assert first.status == status
        first.read()
        assert not first.will_close, first.getheaders()
        # The same socket: http.client would reconnect only if it had been told to close.
        sock = conn.sock
        conn.request("POST", "/", body=call_xml("system.listMethods"), headers={"Content-Type": "text/xml"})
        assert conn.sock is sock
        second = conn.getresponse()
        assert second.status == 200 and b"task.create" in second.read()
    finally:
        conn.close()
