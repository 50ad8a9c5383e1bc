#!/usr/bin/env python3
"""Builds the committed seed corpus of the fuzz targets (fuzz/corpus/<target>/).

Seeds come from the tests: the string literals of the Rust tests that exercise each
reader, the filter expressions of the pytest suite, and the bytes the real clients'
libraries produce for typical calls (xmlrpc.client.dumps, json.dumps, as the XenAPI SDK
and plain clients send them). Each seed is a file named by its SHA-1, so rerunning this
only adds what is new. Run from anywhere: `python3 fuzz/seed.py`.
"""

import hashlib
import json
import pathlib
import re
import xmlrpc.client

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
MAX_SEED = 4096  # libFuzzer's default -max_len

RAW = re.compile(r'b?r(#+)"(.*?)"\1', re.S)
PLAIN = re.compile(r'b?"((?:[^"\\]|\\.)*)"', re.S)


def unescape(s):
    s = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda m: chr(int(m.group(1), 16)), s)
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n in simple:
                out.append(simple[n])
                i += 2
                continue
            if n == "x" and i + 3 < len(s):
                out.append(chr(int(s[i + 2 : i + 4], 16)))
                i += 4
                continue
            if n == "\n":  # line continuation
                i += 2
                while i < len(s) and s[i] in " \t":
                    i += 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def literals(path):
    text = path.read_text()
    found = [m.group(2) for m in RAW.finditer(text)]
    without_raw = RAW.sub("", text)
    found += [unescape(m.group(1)) for m in PLAIN.finditer(without_raw)]
    # format! placeholders: give each a plausible value.
    return [re.sub(r"\{(tag|text|other|[a-z_]*)(:[^}]*)?\}", lambda m: {"tag": "int", "text": "42", "other": "yes"}.get(m.group(1), "x"), s) for s in found]


def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    if not data or len(data) > MAX_SEED:
        return 0
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    f = d / hashlib.sha1(data).hexdigest()
    if f.exists():
        return 0
    f.write_bytes(data)
    return 1


def xml_call(param_xml):
    return f"<?xml version='1.0'?><methodCall><methodName>m</methodName><params><param>{param_xml}</param></params></methodCall>"


def xmlrpc_seeds():
    n = 0
    for path in [ROOT / "src/wire/xmlrpc_tests.rs", ROOT / "tests/pipeline.rs", ROOT / "tests/http.rs"]:
        for s in literals(path):
            if "<methodCall" in s:
                n += add("xmlrpc_call", s)
            elif "<value" in s:
                n += add("xmlrpc_call", xml_call(s))
    ref = "OpaqueRef:5b3f0c1e-2a4d-4e8f-9b1c-0d2e3f4a5b6c"
    calls = [
        ("session.login_with_password", ("root", "pässword", "1.0", "XenAPI/24.0")),
        ("task.create", (ref, "backup", "nightly backup of vm42")),
        ("task.set_progress", (ref, ref, 0.5)),
        ("task.add_to_other_config", (ref, ref, "applies_to", "vm42")),
        ("task.get_all_records_where", (ref, 'field "status" = "pending" and not (field "name__label" = "x")')),
        ("event.from", (ref, ["task", "session"], "", 30.0)),
        ("event.register", (ref, ["*"])),
        ("Async.task.cancel", (ref, ref)),
        ("task.set_other_config", (ref, ref, {"a": "1", "b": "<&>", "": "empty key"})),
        ("system.listMethods", ()),
        ("task.get_record", (ref, True, None, 2**31 - 1, -1.5e300, [1, [2, [3, {"x": []}]]])),
        ("task.create", (ref, "line\r\nends\rand\ttabs", "\u00e9\u4e2d\U0001F600")),
        ("host.call_extension", (ref, xmlrpc.client.Binary(b"\x00\xff"), xmlrpc.client.DateTime("20260101T00:00:00"))),
    ]
    for method, params in calls:
        n += add("xmlrpc_call", xmlrpc.client.dumps(params, method, allow_none=True))
        n += add("xmlrpc_call", xmlrpc.client.dumps(params, method, allow_none=True).replace("\n", ""))
    return n


def jsonrpc_seeds():
    n = 0
    for s in literals(ROOT / "src/wire/jsonrpc.rs") + literals(ROOT / "tests/pipeline.rs"):
        if '"method"' in s or '"jsonrpc"' in s:
            n += add("jsonrpc_call", s)
    ref = "OpaqueRef:5b3f0c1e-2a4d-4e8f-9b1c-0d2e3f4a5b6c"
    for i, (method, params) in enumerate([
        ("session.login_with_password", ["root", "pw", "1.0", "xen-orchestra"]),
        ("task.create", [ref, "t", "\u00e9\u0000\u001f\"\\/"]),
        ("event.from", [ref, ["task"], "", 59.9]),
        ("task.set_progress", [ref, ref, 1e-300]),
        ("task.get_all_records_where", [ref, 'field "status" = "success"']),
        ("x", [None, True, 9223372036854775807, -9223372036854775808, 18446744073709551615, 1.5, {"k": [{}]}]),
    ]):
        n += add("jsonrpc_call", json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": i}))
        n += add("jsonrpc_call", json.dumps({"method": method, "params": params, "id": f"id-{i}"}))
    n += add("jsonrpc_call", json.dumps({"jsonrpc": "2.0", "method": "task.get_all", "params": {"session": ref}, "id": 1}))
    return n


def filter_seeds():
    n = 0
    for s in literals(ROOT / "src/db/filter.rs"):
        if "field" in s or s.strip() in ("true", "false") or " and " in s or " or " in s or "not" in s:
            n += add("filter", s)
    # The pytest suite's expressions (Python string literals).
    text = (ROOT / "xmlrpc-tests/test_filter.py").read_text()
    for m in re.finditer(r"""(?:r|f)?'((?:[^'\\]|\\.)*)'|(?:r|f)?"((?:[^"\\]|\\.)*)\"""", text):
        s = m.group(1) or m.group(2) or ""
        if "field" in s or "true" in s or "false" in s:
            n += add("filter", s.replace("\\\"", '"'))
    return n


def redfish_seeds():
    n = 0
    for body in [
        {"UserName": "root", "Password": "pw"},
        {"UserName": "alice", "Password": 5},
        {"UserName": ["x"], "Password": "secret-value"},
        {"Password": "only"},
        {},
    ]:
        n += add("redfish_body", json.dumps(body))
    n += add("redfish_body", b"{not json")
    record = {
        "uuid": "0f7c3a2e-4b5d-4c6e-8f90-a1b2c3d4e5f6", "name_label": "backup", "name_description": "",
        "status": "pending", "progress": 0.42, "created": "20261123T00:55:00Z", "finished": "19700101T00:00:00Z",
        "result": "", "error_info": [], "subtask_of": "OpaqueRef:NULL", "subtasks": [],
        "current_operations": {},
    }
    for status, extra in [
        ("pending", {}), ("success", {"finished": "20261123T01:00:00Z", "progress": 1.0}),
        ("failure", {"error_info": ["INTERNAL_ERROR", "disk full"]}), ("cancelled", {}),
        ("cancelling", {}), ("pending", {"current_operations": {"OpaqueRef:x": "cancel"}, "progress": -3}),
        ("pending", {"progress": 1e308, "name_label": "", "created": "2026112300:55:00Z"}),
    ]:
        n += add("redfish_body", json.dumps(dict(record, status=status, **extra)))
    return n


if __name__ == "__main__":
    for name, f in [("xmlrpc_call", xmlrpc_seeds), ("jsonrpc_call", jsonrpc_seeds), ("filter", filter_seeds), ("redfish_body", redfish_seeds)]:
        print(f"{name}: {f()} new seeds, {len(list((CORPUS / name).glob('*')))} in all")
