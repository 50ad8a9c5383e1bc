//! The XML-RPC reader (`wire::xmlrpc::parse_call`) on any bytes.
//!
//! Properties, beyond "never panics, never recurses without bound":
//! 0. The fast reader (the common shape, `wire/xmlrpc_fast.rs`) gives exactly what the
//!    general reader gives on the same bytes, or leaves the body to it: `parse_call` and
//!    `parse_call_general` agree on every input, errors included.
//! 1. Round trip: a call we accept, written back with our writer, parses again, to the
//!    same call as the writer's documented losses predict (`read_back_matches`); and from
//!    then on parse ∘ write is the identity (the same bytes every turn).
//! 2. Differential against dxr (a serde/quick-xml XML-RPC implementation): where both
//!    accept the same bytes, they read the same method name and parameters, up to the
//!    documented differences in `agrees`; and whatever dxr writes, we read as dxr does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xapi_taskd::wire::value::Value;
use xapi_taskd::wire::xmlrpc::{
    MAX_DEPTH, MethodCall, parse_call, parse_call_general, value_fragment, write_value,
};

fuzz_target!(|data: &[u8]| {
    let ours = parse_call(data);
    // Debug text compares NaN doubles as equal, and everything else exactly.
    let general = parse_call_general(data);
    assert_eq!(
        format!("{ours:?}"),
        format!("{general:?}"),
        "the fast reader differs from the general one"
    );
    if let Ok(call) = &ours {
        round_trip(call);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if !shallow(text) {
        return;
    }
    let Ok(theirs) = dxr::MethodCall::from_xml(text) else {
        return;
    };
    // Where both accept the same bytes, they read the same call.
    if let Ok(call) = &ours {
        assert_agree(call, &theirs);
    }
    // What dxr writes, we read as dxr does. (dxr also accepts documents that xapi's reader
    // refuses, and so do we: no `<params>`, stray text between elements, unknown elements,
    // which it skips. Its own output is plain XML-RPC.)
    // dxr writes a call without parameters with no `<params>` at all, which the spec
    // allows and xapi refuses (so do we; docs/security.md, Fuzzing).
    if theirs.params.is_empty() {
        return;
    }
    // dxr reads and writes characters XML 1.0 cannot carry (raw control characters);
    // its output is then not XML, and we refuse it as xapi's reader does.
    if !xml_chars(&theirs.name) || !theirs.params.iter().all(dxr_xml_chars) {
        return;
    }
    let written = theirs.to_xml().expect("dxr writes what it read");
    match parse_call(written.as_bytes()) {
        Ok(call) => assert_agree(&call, &theirs),
        Err(e) => panic!("we refuse dxr's {written:?}: {e}"),
    }
});

/// XML 1.0's `Char`.
fn xml_chars(s: &str) -> bool {
    s.chars().all(|c| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    })
}

fn dxr_xml_chars(v: &dxr::Value) -> bool {
    match v {
        dxr::Value::String(s) => xml_chars(s),
        dxr::Value::Array(items) => items.iter().all(dxr_xml_chars),
        dxr::Value::Struct(m) => m.iter().all(|(k, v)| xml_chars(k) && dxr_xml_chars(v)),
        _ => true,
    }
}

fn assert_agree(call: &MethodCall, theirs: &dxr::MethodCall) {
    assert!(
        same_text(&call.method, &theirs.name),
        "method {:?} vs dxr's {:?}",
        call.method,
        theirs.name
    );
    assert_eq!(
        call.params.len(),
        theirs.params.len(),
        "{call:?} vs {theirs:?}"
    );
    for (a, b) in call.params.iter().zip(&theirs.params) {
        assert!(agrees(a, b), "{a:?} vs dxr's {b:?}");
    }
}

/// A methodCall as our writer writes values (the server only writes responses; the
/// method name is escaped like a string value).
fn write_call(call: &MethodCall) -> Vec<u8> {
    let mut out = b"<?xml version=\"1.0\"?><methodCall><methodName>".to_vec();
    let name = value_fragment(&Value::String(call.method.to_string()));
    out.extend_from_slice(name["<value>".len()..name.len() - "</value>".len()].as_bytes());
    out.extend_from_slice(b"</methodName><params>");
    for p in &call.params {
        out.extend_from_slice(b"<param>");
        write_value(&mut out, p);
        out.extend_from_slice(b"</param>");
    }
    out.extend_from_slice(b"</params></methodCall>");
    out
}

fn round_trip(call: &MethodCall) {
    let written = write_call(call);
    let again = parse_call(&written).unwrap_or_else(|e| {
        panic!(
            "our writer's output does not parse ({e}): {}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(again.method, text(&call.method));
    assert_eq!(again.params.len(), call.params.len());
    for (a, b) in call.params.iter().zip(&again.params) {
        assert!(read_back_matches(a, b), "{a:?} came back as {b:?}");
    }
    // One more turn is exact: what we write and read back is written the same again.
    let written = write_call(&again);
    let third = parse_call(&written).expect("it parsed once");
    assert_eq!(
        write_call(&third),
        written,
        "writing what we read back changed the bytes"
    );
}

/// What reading a written string gives: control characters other than TAB, LF and CR are
/// dropped by the writer (XML cannot carry them; ocaml-rpc does the same), and so are
/// U+FFFE and U+FFFF (which XML 1.0 cannot carry either; the dispatcher refuses them on
/// the way in, `wire::xmlchars`); the reader normalises line ends as XML requires (CR LF
/// and CR become LF), so a CR that arrived as `&#13;` comes back as LF — in xapi too.
fn text(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|&c| {
            (c >= ' ' || matches!(c, '\t' | '\n' | '\r')) && !matches!(c, '\u{FFFE}' | '\u{FFFF}')
        })
        .collect();
    kept.replace("\r\n", "\n").replace('\r', "\n")
}

/// Whether `back` is what writing `v` and reading it again must give.
fn read_back_matches(v: &Value, back: &Value) -> bool {
    match (v, back) {
        (Value::String(a), Value::String(b)) => text(a) == *b,
        // xapi writes int64 untyped: it reads back as the string of its digits.
        (Value::Int(i), Value::String(b)) => i.to_string() == *b,
        (Value::Int32(i), Value::Int(j)) => i64::from(*i) == *j,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        // xapi's `%.16g` does not always carry every bit (and within 1e-16 of the largest
        // double it rounds past it, to infinity): the double must be what its text reads as.
        (Value::Double(a), Value::Double(b)) => {
            let written = double_text(*a);
            let inner =
                &written["<value><double>".len()..written.len() - "</double></value>".len()];
            let read: f64 = inner.parse().expect("we write doubles Rust reads");
            read.to_bits() == b.to_bits() || (read.is_nan() && b.is_nan())
        }
        (Value::DateTime(a), Value::DateTime(b)) | (Value::Base64(a), Value::Base64(b)) => {
            text(a) == *b
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| read_back_matches(x, y))
        }
        (Value::Struct(a), Value::Struct(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| text(ka) == *kb && read_back_matches(va, vb))
        }
        (Value::Nil, Value::Nil) => true,
        _ => false,
    }
}

fn double_text(d: f64) -> String {
    value_fragment(&Value::Double(d))
}

/// dxr's deserializer recurses once per element; only hand it documents nested no deeper
/// than ours accepts (with room for the envelope), so that its stack is not the finding.
fn shallow(text: &str) -> bool {
    let (mut depth, mut max) = (0i64, 0i64);
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'<' {
            match bytes.get(i + 1) {
                Some(b'/') => depth -= 1,
                Some(b'?' | b'!') => {}
                _ => depth += 1,
            }
            max = max.max(depth);
        } else if b == b'>' && i > 0 && bytes[i - 1] == b'/' {
            depth -= 1;
        }
    }
    max <= (3 * MAX_DEPTH + 8) as i64
}

/// XML-RPC text the two readers may legitimately see differently: dxr's quick-xml
/// deserializer trims surrounding whitespace (ocaml-rpc keeps it, and so do we) and does
/// not normalise line ends.
fn same_text(ours: &str, theirs: &str) -> bool {
    let trim = |s: &str| s.replace("\r\n", "\n").replace('\r', "\n");
    trim(ours).trim_matches([' ', '\t', '\n']) == trim(theirs).trim_matches([' ', '\t', '\n'])
}

/// Whether our value and dxr's are the same XML-RPC value, up to the documented
/// differences: ocaml-rpc reads every integer type as int64 (dxr: `i4`/`int` as i32);
/// dxr decodes base64 and dates (we keep their text: XAPI's API takes neither, and XAPI's
/// date form is not ISO 8601); a struct's repeated member keeps its last value in dxr
/// (we keep all of them, in order, as ocaml-rpc does).
fn agrees(ours: &Value, theirs: &dxr::Value) -> bool {
    use dxr::Value as D;
    match (ours, theirs) {
        (Value::String(a), D::String(b)) => same_text(a, b),
        (Value::Int(a), D::Integer(b)) => *a == i64::from(*b),
        (Value::Int(a), D::Long(b)) => a == b,
        (Value::Bool(a), D::Boolean(b)) => a == b,
        (Value::Double(a), D::Double(b)) => a == b || (a.is_nan() && b.is_nan()),
        (Value::DateTime(_), D::DateTime(_)) | (Value::Base64(_), D::Base64(_)) => true,
        (Value::Nil, D::Nil) => true,
        (Value::Array(a), D::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| agrees(x, y))
        }
        (Value::Struct(a), D::Struct(b)) => {
            let mut last: Vec<(&String, &Value)> = Vec::new();
            for (k, v) in a {
                last.retain(|(k2, _)| *k2 != k);
                last.push((k, v));
            }
            last.len() == b.len()
                && last
                    .iter()
                    .all(|(k, v)| b.iter().any(|(k2, v2)| same_text(k, k2) && agrees(v, v2)))
        }
        _ => false,
    }
}
