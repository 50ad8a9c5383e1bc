//! The JSON-RPC reader (`wire::jsonrpc::parse_call`) on any bytes.
//!
//! Properties, beyond "never panics":
//! 0. The fast reader (the common shape, `wire/jsonrpc_fast.rs`) gives exactly what the
//!    general reader (serde_json) gives on the same bytes, or leaves the body to it:
//!    `parse_call` and `parse_general` agree on every input, errors included.
//! 1. Round trip: a call we accept, written back as a request with our value writer,
//!    parses to the same call (parse ∘ write is the identity), and writing that again
//!    gives the same bytes.
//! 2. Our writer's output is JSON that serde_json reads as the same tree (strings,
//!    numbers, nesting) — the writer escapes by hand, as Yojson does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xapi_taskd::wire::jsonrpc::{Id, JsonCall, Version, parse_call, parse_general, write_value};
use xapi_taskd::wire::value::Value;

fuzz_target!(|data: &[u8]| {
    let ours = parse_call(data);
    // Debug text compares NaN doubles as equal, and everything else exactly.
    assert_eq!(
        format!("{ours:?}"),
        format!("{:?}", parse_general(data)),
        "the fast reader differs from the general one"
    );
    let Ok(call) = ours else {
        return;
    };
    let written = write_call(&call);
    let again = parse_call(&written).unwrap_or_else(|e| {
        panic!(
            "our writer's output does not parse ({e:?}): {}",
            String::from_utf8_lossy(&written)
        )
    });
    assert!(same_call(&call, &again), "{call:?} came back as {again:?}");
    assert_eq!(write_call(&again), written);
    for p in &call.params {
        let mut one = Vec::new();
        write_value(&mut one, p);
        let tree: serde_json::Value = serde_json::from_slice(&one).unwrap_or_else(|e| {
            panic!(
                "serde_json refuses our {}: {e}",
                String::from_utf8_lossy(&one)
            )
        });
        assert!(same_tree(p, &tree), "{p:?} written as {tree}");
    }
});

fn write_call(call: &JsonCall) -> Vec<u8> {
    let mut out = Vec::new();
    if call.version == Version::V2 {
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",");
    } else {
        out.push(b'{');
    }
    out.extend_from_slice(b"\"method\":");
    write_value(&mut out, &Value::String(call.method.to_string()));
    out.extend_from_slice(b",\"params\":");
    write_value(&mut out, &Value::Array(call.params.clone()));
    out.extend_from_slice(b",\"id\":");
    match &call.id {
        Id::Int(i) => write_value(&mut out, &Value::Int(*i)),
        Id::Str(s) => write_value(&mut out, &Value::String(s.clone())),
    }
    out.push(b'}');
    out
}

/// Values equal, doubles bit-for-bit (or both NaN; JSON has none, but be exact anyway).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k, p), (l, q))| k == l && same(p, q))
        }
        _ => a == b,
    }
}

fn same_call(a: &JsonCall, b: &JsonCall) -> bool {
    a.version == b.version
        && a.id == b.id
        && a.method == b.method
        && a.params.len() == b.params.len()
        && a.params.iter().zip(&b.params).all(|(p, q)| same(p, q))
}

/// Whether serde_json's reading of our output is the value we wrote.
fn same_tree(v: &Value, j: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (v, j) {
        (Value::String(s), J::String(t)) => s == t,
        (Value::Int(i), J::Number(n)) => n.as_i64() == Some(*i),
        (Value::Double(d), J::Number(n)) => {
            n.as_f64().map(f64::to_bits) == Some(d.to_bits()) || n.as_f64() == Some(*d)
        }
        (Value::Bool(a), J::Bool(b)) => a == b,
        (Value::Nil, J::Null) => true,
        (Value::Array(a), J::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_tree(x, y))
        }
        (Value::Struct(a), J::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| same_tree(x, y)))
        }
        _ => false,
    }
}
