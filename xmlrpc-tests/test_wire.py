"""Bytes on the wire: HTTP headers, the exact XML-RPC response format, CORS, keep-alive.

xapi: ocaml/xapi/api_server.ml (callback: headers, system.listMethods without envelope),
ocaml/libs/http-lib/http_svr.ml (respond_to_options), mirage/ocaml-rpc
src/lib/xmlrpc.ml (add_value non-strict: untyped strings/ints, %.16g doubles, escaping);
spec §1.1, §1.3, §2.
"""

import re
import xmlrpc.client

import pytest

from conftest import ROOT_PASSWORD, TimeoutTransport, decode_response, ok, random_ref, unique, xml_call, xml_escape

PREFIX = (
    b'<?xml version="1.0"?><methodResponse><params><param><value><struct>'
    b"<member><name>Status</name><value>Success</value></member><member><name>Value</name>"
)
SUFFIX = b"</member></struct></value></param></params></methodResponse>"
FAIL_PREFIX = (
    b'<?xml version="1.0"?><methodResponse><params><param><value><struct>'
    b"<member><name>Status</name><value>Failure</value></member>"
    b"<member><name>ErrorDescription</name><value><array><data>"
)


def member(name, value_xml):
    return f"<member><name>{name}</name><value>{value_xml}</value></member>".encode()


def value_of(body):
    assert body.startswith(PREFIX), body[:300]
    assert body.endswith(SUFFIX), body[-300:]
    return body[len(PREFIX):-len(SUFFIX)]


@pytest.fixture
def task(proxy, root):
    return ok(proxy.task.create(root, "wire-label", "wire-desc"))


def test_task_get_record_bytes(raw, root, task, host_ref, proxy):
    status, headers, body = raw.post(xml_call("task.get_record", root, task))
    assert status == 200
    assert headers["content-type"] == "text/xml"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-headers"] == "X-Requested-With"
    assert b"\n" not in body and b"\r" not in body
    v = value_of(body)
    uuid = ok(proxy.task.get_uuid(root, task)).encode()
    created = ok(proxy.task.get_created(root, task)).value.encode()
    expected = (
        b"<value><struct>"
        + member("uuid", uuid.decode())
        + member("name_label", "wire-label")
        + member("name_description", "wire-desc")
        + member("allowed_operations", "<array><data></data></array>")
        + member("current_operations", "<struct></struct>")
        + member("created", f"<dateTime.iso8601>{created.decode()}</dateTime.iso8601>")
        + member("finished", "<dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601>")
        + member("status", "pending")
        + member("resident_on", host_ref)
        + member("progress", "<double>0</double>")
        + member("type", "&lt;none/&gt;")
        + member("result", "")
        + member("error_info", "<array><data></data></array>")
        + member("other_config", "<struct></struct>")
        + member("subtask_of", "OpaqueRef:NULL")
        + member("subtasks", "<array><data></data></array>")
        + member("backtrace", "()")
        + b"</struct></value>"
    )
    assert v == expected


@pytest.mark.parametrize("progress,text", [(0.25, b"0.25"), (1.0, b"1"), (0.0, b"0"), (-1.0, b"-1"),
                                            (1e21, b"1e+21"), (0.1, b"0.1"), (2.5, b"2.5"),
                                            (1e-7, b"1e-07"), (123456789012345678.0, b"1.234567890123457e+17"),
                                            (5e-324, b"4.940656458412465e-324"),
                                            (float("inf"), b"inf"), (float("-inf"), b"-inf")])
def test_doubles_use_percent_16g(raw, proxy, root, task, progress, text):
    ok(proxy.task.set_progress(root, task, progress))
    body = raw.post(xml_call("task.get_progress", root, task))[2]
    assert value_of(body) == b"<value><double>" + text + b"</double></value>"


def test_strings_are_untyped_and_escaped(raw, proxy, root, task):
    ok(proxy.task.set_result(root, task, "<a&b>\"it's\" \u00e9"))
    body = raw.post(xml_call("task.get_result", root, task))[2]
    assert value_of(body) == "<value>&lt;a&amp;b&gt;&quot;it's&quot; \u00e9</value>".encode()


def test_void_result_is_an_empty_value(raw, root, task):
    body = raw.post(xml_call("task.set_progress", root, task, "<double>0.5</double>"))[2]
    assert value_of(body) == b"<value></value>"


def test_bool_and_int64(raw, root, host_ref):
    body = raw.post(xml_call("session.get_is_local_superuser", root, root))[2]
    assert value_of(body) == b"<value><boolean>1</boolean></value>"
    body = raw.post(xml_call("session.get_pool", root, root))[2]
    assert value_of(body) == b"<value><boolean>0</boolean></value>"
    # int64 is written untyped, like a string
    body = raw.post(xml_call("host.get_API_version_major", root, host_ref))[2]
    assert value_of(body) == b"<value>2</value>"
    body = raw.post(xml_call("host.get_API_version_minor", root, host_ref))[2]
    assert value_of(body) == b"<value>23</value>"


def test_sets_and_maps(raw, proxy, root, task):
    ok(proxy.task.set_error_info(root, task, ["A", "B"]))
    ok(proxy.task.set_other_config(root, task, {"k": "v"}))
    body = raw.post(xml_call("task.get_error_info", root, task))[2]
    assert value_of(body) == b"<value><array><data><value>A</value><value>B</value></data></array></value>"
    body = raw.post(xml_call("task.get_other_config", root, task))[2]
    assert value_of(body) == b"<value><struct><member><name>k</name><value>v</value></member></struct></value>"


def test_map_key_with_markup_is_escaped(raw, proxy, root, task):
    # Deliberate difference: xapi writes member names raw (malformed XML for such keys).
    ok(proxy.task.add_to_other_config(root, task, "a<b&c", "v"))
    body = raw.post(xml_call("task.get_other_config", root, task))[2]
    assert value_of(body) == b"<value><struct><member><name>a&lt;b&amp;c</name><value>v</value></member></struct></value>"
    assert ok(proxy.task.get_other_config(root, task)) == {"a<b&c": "v"}


def test_failure_bytes(raw, root):
    bad = random_ref()
    status, headers, body = raw.post(xml_call("task.get_record", root, bad))
    assert status == 200
    assert headers["content-type"] == "text/xml"
    assert body == (
        FAIL_PREFIX
        + f"<value>HANDLE_INVALID</value><value>task</value><value>{bad}</value>".encode()
        + b"</data></array></value></member></struct></value></param></params></methodResponse>"
    )


def test_login_response_bytes(raw):
    status, _, body = raw.post(xml_call("session.login_with_password", "root", xml_escape(ROOT_PASSWORD)))
    assert status == 200
    assert re.fullmatch(rb"<value>OpaqueRef:[0-9a-f-]{36}</value>", value_of(body)), body


def test_list_methods_is_a_bare_array(raw):
    status, headers, body = raw.post(xml_call("system.listMethods"))
    assert status == 200
    assert headers["content-type"] == "text/xml"
    assert body.startswith(b'<?xml version="1.0"?><methodResponse><params><param><value><array><data><value>')
    assert body.endswith(b"</data></array></value></param></params></methodResponse>")
    assert b"Status" not in body
    assert b"<value>task.get_record</value>" in body
    names = decode_response(body)
    assert "session.login_with_password" in names


@pytest.mark.parametrize("path", ["/", "/RPC2", "/xmlrpc", "/anything/else", "/json"])
def test_xml_rpc_on_any_path(raw, root, path):
    value = raw.call(xml_call("task.get_all", root), path=path)
    assert value["Status"] == "Success" and isinstance(value["Value"], list)


def test_typed_and_untyped_strings_are_the_same(raw, root):
    a = raw.call(xml_call("task.create", f"<string>{root}</string>", "<string>typed</string>", "<string></string>"))
    b = raw.call(xml_call("task.create", root, "untyped", ""))
    c = raw.call(
        f'<?xml version="1.0"?><methodCall><methodName>task.create</methodName><params>'
        f"<param><value>{root}</value></param><param><value/></param><param><value><string/></value></param>"
        f"</params></methodCall>".encode()
    )
    for r, label in [(a, "typed"), (b, "untyped"), (c, "")]:
        t = ok(r)
        rec = ok(raw.call(xml_call("task.get_record", root, t)))
        assert rec["name_label"] == label and rec["name_description"] == ""


def test_int_types_for_float_params(raw, proxy, root, task):
    for xml, stored in [("<int>1</int>", 1.0), ("<i4>-2</i4>", -2.0), ("<i8>3</i8>", 3.0),
                        ("<double>0.5</double>", 0.5), ("0.125", 0.125)]:
        ok(raw.call(xml_call("task.set_progress", root, task, xml)))
        assert ok(proxy.task.get_progress(root, task)) == stored


def test_whitespace_between_elements_and_no_declaration(raw, root):
    body = (
        "<methodCall>\n  <methodName>task.get_all</methodName>\n  <params>\n    <param>\n"
        f"      <value><string>{root}</string></value>\n    </param>\n  </params>\n</methodCall>\n"
    ).encode()
    assert ok(raw.call(body)) is not None


def test_options_preflight(raw):
    status, headers, body = raw.request(
        "OPTIONS", "/", headers={"Origin": "http://example.org",
                                 "Access-Control-Request-Method": "POST",
                                 "Access-Control-Request-Headers": "content-type, x-custom"}
    )
    assert status == 200
    assert body == b""
    assert headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-methods"] == "PUT"
    assert headers["access-control-allow-headers"] == "content-type, x-custom, X-Requested-With"


def test_options_preflight_without_requested_headers(raw):
    status, headers, body = raw.request("OPTIONS", "/")
    assert status == 200 and body == b""
    assert headers["access-control-allow-headers"] == "X-Requested-With"
    assert headers["access-control-allow-methods"] == "PUT"


def test_keep_alive(raw, root):
    conn = raw.connection()
    try:
        sock = None
        for i in range(5):
            conn.request("POST", "/", body=xml_call("task.create", root, f"ka-{i}", ""),
                         headers={"Content-Type": "text/xml"})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200
            assert (resp.getheader("connection") or "").lower() != "close"
            assert ok(decode_response(data)).startswith("OpaqueRef:")
            if sock is None:
                sock = conn.sock
            assert conn.sock is sock  # the same TCP connection every time
    finally:
        conn.close()


def test_keep_alive_survives_errors(raw, root):
    conn = raw.connection()
    try:
        sock = None
        for body in [xml_call("task.get_record", root, random_ref()), xml_call("no.such"),
                     xml_call("task.get_all", root)]:
            conn.request("POST", "/", body=body, headers={"Content-Type": "text/xml"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            if sock is None:
                sock = conn.sock
            assert conn.sock is sock
    finally:
        conn.close()


def test_xmlrpc_client_proxy_round_trip(url, root):
    # stdlib ServerProxy, persistent connection, DateTime decoding
    p = xmlrpc.client.ServerProxy(url, transport=TimeoutTransport())
    t = ok(p.task.create(root, unique(), ""))
    rec = ok(p.task.get_record(root, t))
    assert isinstance(rec["created"], xmlrpc.client.DateTime)
    p("close")()
