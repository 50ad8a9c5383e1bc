//! Differential test of the XML-RPC codec against Python's `xmlrpc.client` (the library
//! behind the XenAPI SDK and most XAPI scripts), on the same bytes, outside libFuzzer.
//!
//! Inputs: the committed fuzz corpus (`fuzz/corpus/xmlrpc_call`, seeded from the tests and
//! grown by fuzzing) and a table of hostile values. For each input, our reader's result
//! and the response our writer makes of it go to `tests/xmlrpc_vs_python.py`, which reads
//! the same bytes with `xmlrpc.client.loads` and compares:
//! - writer: every response we write must be read by Python as the values we wrote (up to
//!   xapi's own documented losses: int64 is untyped, so it reads as a string; control
//!   characters are dropped; CR reads as LF);
//! - reader: where both accept a call, the same values; where only one does, the reason
//!   must be one of the documented differences between xapi's reader (ocaml-rpc + Xmlm)
//!   and Python's (expat), named in the script. Anything else fails the test.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value as Json, json};
use xapi_taskd::wire::value::Value;
use xapi_taskd::wire::xmlrpc::{parse_call, write_response};

/// Our value in a form Python can compare (types tagged; doubles by their exact value).
fn tagged(v: &Value) -> Json {
    match v {
        Value::String(s) => json!({"s": s}),
        Value::Int(i) => json!({"i": i.to_string()}),
        Value::Int32(i) => json!({"i4": i.to_string()}),
        Value::Bool(b) => json!({"b": b}),
        Value::Double(d) => json!({"d": format!("{d:e}")}),
        Value::DateTime(s) => json!({"t": s}),
        Value::Base64(s) => json!({"64": s}),
        Value::Array(items) => json!({"a": items.iter().map(tagged).collect::<Vec<_>>()}),
        Value::Struct(m) => {
            json!({"m": m.iter().map(|(k, v)| json!([k, tagged(v)])).collect::<Vec<_>>()})
        }
        Value::Nil => json!({"n": null}),
    }
}

fn response_of(params: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    write_response(&mut out, &Ok(Value::Array(params.to_vec())));
    out
}

/// Values that stress the writer: every ASCII character, XML's specials, non-BMP
/// characters, doubles at the edges, deep and odd structures.
fn hostile_values() -> Vec<Value> {
    let mut v = Vec::new();
    let ascii: String = (0u8..0x80).map(char::from).collect();
    v.push(Value::String(ascii.clone()));
    v.push(Value::Struct(vec![(ascii, Value::String("k".into()))]));
    for s in [
        "]]>",
        "<![CDATA[x]]>",
        "&amp;",
        "&#0;",
        "a\r\nb\rc",
        "\u{FFFD}",
        "\u{10FFFF}",
        "😀\u{E000}",
        "\u{0085}\u{2028}",
        " lead",
        "trail ",
        "\t",
        "",
        "\u{FFFE}",
        "x\u{FFFF}",
    ] {
        v.push(Value::String(s.into()));
    }
    for d in [
        0.0,
        -0.0,
        0.1,
        1.0 / 3.0,
        1e-300,
        5e-324,
        1e300,
        f64::MAX,
        123456789012345678.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.5,
        -2.5e-7,
    ] {
        v.push(Value::Double(d));
    }
    for i in [0, -1, i64::MIN, i64::MAX] {
        v.push(Value::Int(i));
    }
    v.push(Value::Int32(i32::MIN));
    v.push(Value::Bool(true));
    v.push(Value::Nil);
    v.push(Value::DateTime("20261123T00:55:00Z".into()));
    let mut deep = Value::Array(vec![]);
    for i in 0..40 {
        deep = Value::Struct(vec![(format!("level{i}"), Value::Array(vec![deep]))]);
    }
    v.push(deep);
    v.push(Value::Struct(vec![
        ("dup".into(), Value::Int(1)),
        ("dup".into(), Value::Int(2)),
    ]));
    v
}

#[test]
fn python_reads_what_we_write_and_agrees_with_what_we_read() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/xmlrpc_call");
    let mut cases = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(corpus)
        .expect("the fuzz corpus")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in &files {
        let input = std::fs::read(path).unwrap();
        let case = match parse_call(&input) {
            Ok(call) => json!({
                "name": path.file_name().unwrap().to_string_lossy(),
                "input": hex(&input),
                "method": call.method,
                "params": call.params.iter().map(tagged).collect::<Vec<_>>(),
                "invalid_utf8": call.invalid_utf8_param.is_some(),
                "response": hex(&response_of(&call.params)),
            }),
            Err(e) => json!({
                "name": path.file_name().unwrap().to_string_lossy(),
                "input": hex(&input),
                "error": format!("{e}"),
            }),
        };
        cases.push(case);
    }
    for (i, v) in hostile_values().into_iter().enumerate() {
        let params = vec![v];
        cases.push(json!({
            "name": format!("hostile value {i}"),
            "params": params.iter().map(tagged).collect::<Vec<_>>(),
            "response": hex(&response_of(&params)),
        }));
    }
    assert!(cases.len() > 100, "the corpus is missing: {corpus}");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/xmlrpc_vs_python.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 (the differential needs Python's xmlrpc.client)");
    let manifest = serde_json::to_vec(&cases).unwrap();
    child.stdin.take().unwrap().write_all(&manifest).unwrap();
    let out = child.wait_with_output().unwrap();
    let report: Json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&report["counts"]).unwrap()
    );
    let mismatches = report["mismatches"].as_array().unwrap();
    assert!(
        mismatches.is_empty(),
        "{} unexplained differences from Python's xmlrpc.client:\n{}",
        mismatches.len(),
        serde_json::to_string_pretty(mismatches).unwrap()
    );
    assert!(out.status.success());
    // The comparison really ran on both sides.
    assert!(
        report["counts"]["writer: same"].as_u64().unwrap_or(0) > 50,
        "{report}"
    );
    assert!(
        report["counts"]["reader: both accept, same"]
            .as_u64()
            .unwrap_or(0)
            > 30,
        "{report}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
