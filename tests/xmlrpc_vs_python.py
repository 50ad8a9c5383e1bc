"""The Python half of tests/xmlrpc_vs_python.rs: reads a manifest (JSON on stdin) of
inputs, our reader's results and our writer's responses, reads the same bytes with
Python's xmlrpc.client, and prints a report (JSON on stdout): counts per outcome and the
differences no documented rule explains ("mismatches").

Every rule below is a known, deliberate difference between xapi's XML-RPC reader
(ocaml-rpc on Xmlm, which we follow) and Python's (expat with a lax unmarshaller), or a
documented loss of xapi's writer. Stdlib only.
"""

import base64
import binascii
import collections
import json
import math
import re
import sys
import xmlrpc.client

NONCHAR = re.compile("[\ufffe\uffff]")


def text(s):
    """What reading our written string gives: control characters other than TAB, LF, CR
    are dropped by the writer (as ocaml-rpc does), and so are U+FFFE and U+FFFF (XML 1.0
    cannot carry them; the dispatcher refuses them on the way in); XML turns CR LF and CR
    into LF."""
    s = "".join(c for c in s if (c >= " " or c in "\t\n\r") and c not in "\ufffe\uffff")
    return s.replace("\r\n", "\n").replace("\r", "\n")


def last_wins(members):
    d = {}
    for k, v in members:
        d.pop(k, None)
        d[k] = v
    return d


def same(py, t, writer):
    """Whether Python's value `py` is our tagged value `t` (as written, if `writer`)."""
    (tag, v), = t.items()
    norm = text if writer else (lambda s: s)
    if tag == "s":
        return isinstance(py, str) and py == norm(v)
    if tag == "i":
        # xapi writes int64 untyped: a reader sees its digits as a string.
        return py == v if writer else (isinstance(py, int) and not isinstance(py, bool) and py == int(v))
    if tag == "i4":  # written typed (<i4>): event.from's valid_ref_counts
        return isinstance(py, int) and not isinstance(py, bool) and py == int(v)
    if tag == "b":
        return isinstance(py, bool) and py == v
    if tag == "d":
        exact = float(v)
        if not isinstance(py, float):
            return False
        if math.isnan(exact):
            return math.isnan(py)
        # The writer's %.16g (xapi's) may drop the 17th digit; within 1e-16 of the
        # largest double it rounds past it, and the reader sees infinity (so does xapi's).
        if writer and math.isinf(py) and not math.isinf(exact):
            return abs(exact) > 1.797693134862315e308 and (py > 0) == (exact > 0)
        return py == exact or (writer and math.isclose(py, exact, rel_tol=2e-16))
    if tag == "t":
        return isinstance(py, xmlrpc.client.DateTime) and py.value == norm(v)
    if tag == "64":
        try:
            want = base64.decodebytes(norm(v).encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return False
        return isinstance(py, xmlrpc.client.Binary) and py.data == want
    if tag == "n":
        return py is None
    if tag == "a":
        return isinstance(py, list) and len(py) == len(v) and all(same(p, q, writer) for p, q in zip(py, v))
    if tag == "m":
        ours = last_wins((norm(k), x) for k, x in v)
        return isinstance(py, dict) and py.keys() == ours.keys() and all(same(py[k], ours[k], writer) for k in ours)
    raise ValueError(tag)


def walk(t):
    (tag, v), = t.items()
    yield tag, v
    if tag == "a":
        for x in v:
            yield from walk(x)
    elif tag == "m":
        for k, x in v:
            yield "key", k
            yield from walk(x)


def strings(t):
    return [v for tag, v in walk(t) if tag in ("s", "t", "64", "key")]


def writer_excuse(params, err):
    """Why Python may refuse our response, by a documented rule."""
    if any(tag == "64" for p in params for tag, _ in walk(p)):
        # A base64 value is kept as the text that came in; XAPI's API takes none.
        return "writer: base64 text that is not base64"
    return None


# Where only our reader accepts: xapi's reader accepts these too (ocaml-rpc/Xmlm rules).
def ours_only_excuse(raw, case, err):
    s = raw.decode("utf-8", "replace")
    if case.get("invalid_utf8"):
        return "reader: not UTF-8 (we answer INVALID_VALUE, as xapi's dispatcher would)"
    if NONCHAR.search(s):
        return "reader: U+FFFE/U+FFFF raw (the dispatcher answers INVALID_VALUE, wire::xmlchars)"
    if "boolean" in err:
        return "reader: <boolean> other than 0/1 (ocaml-rpc: anything but 1 is false)"
    if re.search(r"<(?:int|i4|i8)>\s*[+-]?0[xXoObBuU]", s) or re.search(r"<(?:int|i4|i8|double)>[^<]*_", s):
        return "reader: OCaml number syntax (0x/0o/0b/0u prefixes, _ anywhere)"
    if "junk after document element" in err:
        return "reader: text after </methodCall> (never looked at, as xapi)"
    if "unknown tag" in err and re.search(r"<[A-Za-z_][\w.-]*:", s):
        return "reader: namespace prefixes (Xmlm hands ocaml-rpc local names)"
    if "binascii" in err or "Incorrect padding" in err or "base64" in err.lower():
        return "reader: base64 kept as text (never decoded; XAPI takes none)"
    if re.search(r"<\?(?!xml\b)[A-Za-z_:][\w.:-]*[^\w\s.:?-]", s):
        return "reader: a processing instruction whose target runs into its data (Xmlm skips it)"
    if re.search(r"<double>\s", s):
        return "reader: whitespace before a double (C's strtod skips it)"
    if "unknown tag" in err and re.search(r"<(?:methodCall|params|param)\b[^>]*/>", s):
        return "reader: empty elements where Python expects content"
    return None


# Where only Python's reader accepts: xapi's reader refuses these too.
def python_only_excuse(raw, ours_err):
    s = raw.decode("utf-8", "replace")
    if "expected <params>" in ours_err:
        return "reader: no <params> (ocaml-rpc requires it)"
    if "received text" in ours_err:
        return "reader: text where an element must be (Python ignores it; ocaml-rpc refuses)"
    if re.search(r"expected <[\w.]+>(?: or </\w+>)?, received <", ours_err) or "a type element" in ours_err:
        return "reader: element out of the grammar's order or unknown (Python skips it)"
    if re.search(r"expected </\w+>, received", ours_err) or "expected text or </" in ours_err:
        return "reader: mixed content or a second value (Python keeps one; ocaml-rpc refuses)"
    if "an integer in" in ours_err:
        return "reader: integer text OCaml's Int64.of_string refuses (spaces, beyond int64)"
    if "a number in <double>" in ours_err:
        return "reader: double text OCaml's float_of_string refuses (trailing spaces, PEP 515 forms)"
    if "a known entity or character reference" in ours_err and "<!ENTITY" in s:
        return "reader: DTD entities (Xmlm expands none)"
    if "a UTF-8 method name" in ours_err or re.search(r"encoding=['\"](?!utf-?8)", s, re.I):
        # A known difference from xapi too: Xmlm decodes ISO-8859-1/15, US-ASCII and
        # UTF-16 bodies as declared; we read every body as UTF-8.
        return "reader: a declared encoding other than UTF-8 (read as UTF-8; Xmlm would decode it)"
    if "levels of nested values" in ours_err:
        return "reader: deeper than 64 levels (our bound)"
    if "<methodCall>" in ours_err or "expected <methodName>" in ours_err:
        return "reader: not a methodCall as ocaml-rpc expects it"
    return None


def loads(raw):
    try:
        params, method = xmlrpc.client.loads(raw)
        return (params, method), None
    except Exception as e:  # expat errors, ResponseError, ValueError, TypeError, ...
        return None, f"{type(e).__name__}: {e}"


def main():
    cases = json.load(sys.stdin)
    counts = collections.Counter()
    mismatches = []

    def miss(case, what, **extra):
        mismatches.append(dict(name=case["name"], what=what, **extra))

    for case in cases:
        if "response" in case:
            raw = bytes.fromhex(case["response"])
            got, err = loads(raw)
            if got is None:
                why = writer_excuse(case["params"], err)
                counts[why or "writer: REFUSED"] += 1
                if not why:
                    miss(case, "Python refuses our response", error=err, response=raw.decode("utf-8", "replace")[:400])
            else:
                (value,), _ = got
                params = value.get("Value") if isinstance(value, dict) else None
                if isinstance(params, list) and len(params) == len(case["params"]) and all(
                    same(p, t, writer=True) for p, t in zip(params, case["params"])
                ):
                    counts["writer: same"] += 1
                else:
                    why = writer_excuse(case["params"], "")
                    counts[why or "writer: DIFFERENT"] += 1
                    if not why:
                        miss(case, "Python reads our response differently", python=repr(params)[:400], ours=case["params"])
        if "input" not in case:
            continue
        raw = bytes.fromhex(case["input"])
        got, err = loads(raw)
        ours_ok = "params" in case
        if got is not None and ours_ok:
            params, method = got
            if method == case["method"] and len(params) == len(case["params"]) and all(
                same(p, t, writer=False) for p, t in zip(params, case["params"])
            ):
                counts["reader: both accept, same"] += 1
            else:
                why = ours_only_excuse(raw, case, "")
                counts[why or "reader: both accept, DIFFERENT"] += 1
                if not why:
                    miss(case, "both accept, different values", python=repr(got)[:400], ours=[case["method"], case["params"]])
        elif got is None and not ours_ok:
            counts["reader: both refuse"] += 1
        elif ours_ok:
            why = ours_only_excuse(raw, case, err)
            counts[why or "reader: only ours accepts"] += 1
            if not why:
                miss(case, "only we accept", python_error=err, input=raw.decode("utf-8", "replace")[:400])
        else:
            why = python_only_excuse(raw, case["error"])
            counts[why or "reader: only Python accepts"] += 1
            if not why:
                miss(case, "only Python accepts", ours=case["error"], python=repr(got)[:300], input=raw.decode("utf-8", "replace")[:400])
    json.dump({"counts": dict(sorted(counts.items())), "mismatches": mismatches}, sys.stdout)


if __name__ == "__main__":
    main()
