"""Bad input: every bad request gets the right error, and the server keeps serving.

Deliberate differences from xapi (docs/architecture.md): an unparsable body is answered
with HTTP 200 and Failure ["XMLRPC_UNMARSHAL_FAILURE", expected, received] (xapi: HTTP
500, connection closed); a body over 300 KiB (Constants.http_limit_max_rpc_size) gets
HTTP 413 with a Failure body and `Connection: close` (xapi: 500).
Invalid UTF-8 in a parameter: gen_server.ml dispatch_call preamble, spec §1.2.
"""

import re
import socket

import pytest

from conftest import decode_response, fail, ok, random_ref, unique, xml_call

LIMIT = 300 * 1024


@pytest.fixture
def still_serving(raw, root):
    """Asserts after the test that a normal call still works on a new connection."""
    yield
    label = unique("alive")
    t = ok(raw.call(xml_call("task.create", root, label, "")))
    assert ok(raw.call(xml_call("task.get_name_label", root, t))) == label


def unmarshal_failure(raw, body, path="/"):
    status, headers, data = raw.post(body, path)
    assert status == 200, (status, data)
    assert headers["content-type"] == "text/xml"
    reply = decode_response(data)
    assert reply["Status"] == "Failure", reply
    desc = reply["ErrorDescription"]
    assert desc[0] == "XMLRPC_UNMARSHAL_FAILURE", desc
    assert len(desc) == 3 and all(isinstance(d, str) and d for d in desc), desc
    return desc


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        b"",
        b"<",
        b"<methodCall>",
        b"<methodCall><methodName>task.get_all</methodName><params>",
        b"<?xml version='1.0'?><methodCall><methodName>x</methodName><params></methodCall>",
        b"<methodCall><methodName>task.get_all</methodName><params><param><value>a</param></params></methodCall>",
        b"<methodCall><methodName>task.get_all</methodName><params><param><value><int>abc</int></value></param></params></methodCall>",
        b"<methodCall><methodName>task.get_all</methodName><params><param><value><boolean></value></param></params></methodCall>",
        b"<methodCall><methodName>task.get_all</methodName><params><param><value><struct><member><value>x</value></member></struct></value></param></params></methodCall>",
        b"<methodCall><methodName>task.get_all</methodName><params><param><value><wat>1</wat></value></param></params></methodCall>",
        b'{"method": "task.get_all", "params": [], "id": 1}',
        b"\x00\x01\x02\xff",
    ],
    ids=lambda b: b[:40].decode("latin-1"),
)
def test_malformed_xml(raw, still_serving, body):
    unmarshal_failure(raw, body)


def test_wrong_root_element(raw, still_serving):
    unmarshal_failure(raw, b'<?xml version="1.0"?><methodResponse><params></params></methodResponse>')
    unmarshal_failure(raw, b'<?xml version="1.0"?><foo/>')


def test_missing_params(raw, still_serving):
    unmarshal_failure(raw, b"<methodCall><methodName>task.get_all</methodName></methodCall>")


def test_missing_method_name(raw, still_serving):
    unmarshal_failure(raw, b"<methodCall><params></params></methodCall>")


def test_empty_params_element_forms(raw, still_serving):
    # `<params/>` and `<params></params>` are both an empty parameter list
    for body in [b"<methodCall><methodName>task.get_all</methodName><params/></methodCall>",
                 b"<methodCall><methodName>task.get_all</methodName><params></params></methodCall>"]:
        assert raw.call(body) == fail("MESSAGE_PARAMETER_COUNT_MISMATCH", "task.get_all", "0", "-1")


def test_deep_nesting(raw, root, still_serving):
    n = 3000
    body = xml_call("task.get_record", root, "<array><data><value>" * n + "x" + "</value></data></array>" * n)
    assert len(body) < LIMIT
    status, _, data = raw.post(body)
    assert status == 200
    reply = decode_response(data)
    assert reply["Status"] == "Failure"
    # xapi parses it and fails the ref unmarshal; a parser with a depth limit refuses it
    assert reply["ErrorDescription"][0] in ("XMLRPC_UNMARSHAL_FAILURE", "INTERNAL_ERROR"), reply


def test_deep_nesting_of_structs(raw, root, still_serving):
    n = 2000
    body = xml_call("task.set_other_config", root, random_ref(),
                    "<struct><member><name>k</name><value>" * n + "x" + "</value></member></struct>" * n)
    status, _, data = raw.post(body)
    assert status == 200
    assert decode_response(data)["Status"] == "Failure"


def test_invalid_utf8_in_a_parameter(raw, root, still_serving):
    label = unique("utf8")
    body = (
        b"<methodCall><methodName>task.create</methodName><params>"
        b"<param><value>" + root.encode() + b"</value></param>"
        b"<param><value>" + label.encode() + b"\xff\xfe</value></param>"
        b"<param><value>d</value></param></params></methodCall>"
    )
    status, _, data = raw.post(body)
    assert status == 200
    m = re.fullmatch(
        rb'<\?xml version="1.0"\?><methodResponse><params><param><value><struct>'
        rb"<member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name>"
        rb"<value><array><data><value>INVALID_VALUE</value><value>Invalid UTF-8 string in parameter</value>"
        rb"<value>(.*)</value></data></array></value></member></struct></value></param></params></methodResponse>",
        data,
        re.S,
    )
    assert m, data
    # the third parameter is the debug rendering of the param (Rpc.to_string: S(...))
    assert m.group(1).startswith(b"S(" + label.encode()), m.group(1)
    assert ok(raw.call(xml_call("task.get_by_name_label", root, label))) == []


def test_invalid_utf8_is_checked_before_anything_else(raw, still_serving):
    body = (
        b"<methodCall><methodName>no.such.method</methodName><params>"
        b"<param><value>\xc3\x28</value></param></params></methodCall>"
    )
    reply = decode_response(raw.post(body)[2].replace(b"\xef\xbf\xbd", b"?"))
    assert reply["ErrorDescription"][:2] == ["INVALID_VALUE", "Invalid UTF-8 string in parameter"]


def test_oversized_body(raw, root, still_serving):
    call = xml_call("task.get_all", root)
    body = call + b" " * (LIMIT + 1 - len(call))
    assert len(body) == LIMIT + 1
    status, headers, data = raw.post(body)
    assert status == 413
    assert headers.get("connection", "").lower() == "close"
    reply = decode_response(data)
    assert reply["Status"] == "Failure"


def test_jsonrpc_refusals_of_an_unread_call_are_jsonrpc(raw, root, still_serving):
    """A body over the limit, or a head over it, on /jsonrpc is refused in JSON-RPC's form
    (an XAPI error with id null: the call was never read), not as an XML-RPC fault."""
    import http.client
    import json

    call = json.dumps({"jsonrpc": "2.0", "method": "task.get_all", "params": [root], "id": 7})
    body = call.encode() + b" " * (LIMIT + 1 - len(call))
    status, headers, data = raw.post(body, "/jsonrpc", {"Content-Type": "application/json"})
    assert status == 413
    assert headers["content-type"] == "application/json"
    reply = json.loads(data)
    assert reply["id"] is None and reply["jsonrpc"] == "2.0", reply
    assert reply["error"]["message"] == "INTERNAL_ERROR", reply
    assert str(LIMIT) in reply["error"]["data"][0], reply
    host, port = raw.host, raw.port
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        small = call.encode()
        conn.putrequest("POST", "/jsonrpc")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(small)))
        conn.putheader("X-Padding", "p" * 70_000)
        conn.endheaders(small)
        resp = conn.getresponse()
        assert resp.status == 431
        assert resp.getheader("content-type") == "application/json"
        reply = json.loads(resp.read())
        assert reply["id"] is None and reply["error"]["message"] == "INTERNAL_ERROR", reply
    finally:
        conn.close()


def test_body_of_exactly_the_limit_is_accepted(raw, root, still_serving):
    call = xml_call("task.get_all", root)
    body = call + b" " * (LIMIT - len(call))
    assert len(body) == LIMIT
    status, _, data = raw.post(body)
    assert status == 200
    assert decode_response(data)["Status"] == "Success"


def test_oversized_body_announced_but_not_sent(raw, still_serving):
    # Content-Length over the limit: refused from the header, the server does not wait
    s = socket.create_connection((raw.host, raw.port), timeout=10)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 10000000\r\n\r\n<methodCall>")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 413"), data[:200]
    finally:
        s.close()


@pytest.mark.parametrize(
    "method,args,expected",
    [
        ("task.get_record", ("T", "extra"), ("MESSAGE_PARAMETER_COUNT_MISMATCH", "task.get_record", "1", "2")),
        ("task.create", (), ("MESSAGE_PARAMETER_COUNT_MISMATCH", "task.create", "2", "0")),
        ("task.set_progress", ("T", "abc"), ("INTERNAL_ERROR", 'Failure("float_of_string")')),
        ("task.set_progress", ("T", {"a": "b"}), ("INTERNAL_ERROR", "Failure(\"Expected float, got '{a:S(b)}'\")")),
        ("task.set_status", ("T", 2.5), ("INTERNAL_ERROR", 'Failure("Unknown tag/contents")')),
        ("task.set_result", ("T", ["x"]), ("INTERNAL_ERROR", "Failure(\"Expected string, got '[S(x)]'\")")),
        ("task.set_result", ("T", None), ("INTERNAL_ERROR", "Failure(\"Expected string, got 'N'\")")),
        ("task.get_record", ("not-a-ref",), ("HANDLE_INVALID", "task", "not-a-ref")),
        ("task.get_by_uuid", ("zzz",), ("UUID_INVALID", "task", "zzz")),
        ("task.get_by_name_label", (7,), ("INTERNAL_ERROR", "Failure(\"Expected string, got 'I(7)'\")")),
    ],
)
def test_wrong_params(proxy, root, new_task, still_serving, method, args, expected):
    t = new_task()
    args = tuple(t if a == "T" else a for a in args)
    assert getattr(proxy, method)(root, *args) == fail(*expected)
    assert ok(proxy.task.get_status(root, t)) == "pending"


def test_truncated_request_and_client_disconnect(raw, root, still_serving):
    body = xml_call("task.get_all", root)
    s = socket.create_connection((raw.host, raw.port), timeout=10)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:20])
    s.close()
    s = socket.create_connection((raw.host, raw.port), timeout=10)
    s.sendall(b"GARBAGE\r\n\r\n")
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
