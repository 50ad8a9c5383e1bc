//! JSON-RPC v1 and v2 on `/jsonrpc`, as xapi speaks it (ocaml-rpc's `jsonrpc.ml`,
//! xen-api's `api_server.ml` `jsoncallback`; spec §1.4).
//!
//! Requests are parsed with serde_json. Responses are written by hand because the bytes
//! matter to clients: key order (`result`, `error`, `id` in v1; `jsonrpc`, then `result`
//! or `error`, then `id` in v2), the `id` echoed with its JSON type, no `error` key in a
//! v2 success (Xen Orchestra relies on that), and floats as Yojson prints them (`1.0`).

use serde_json::Value as Json;

use crate::api::error::ApiError;
use crate::wire::value::Value;

/// The protocol version of a request, which decides the response envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A request id: an integer or a string, echoed back as it came.
#[derive(Debug, Clone, PartialEq)]
pub enum Id {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonCall {
    pub version: Version,
    pub id: Id,
    pub method: String,
    pub params: Vec<Value>,
}

/// Why a body is not a JSON-RPC call we accept (xapi answers these with HTTP 500).
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    /// JSON-RPC 2.0's code: -32700 (not JSON) or -32600 (not a valid request).
    pub code: i64,
    pub message: String,
}

fn invalid(msg: impl Into<String>) -> BadRequest {
    BadRequest {
        code: -32600,
        message: msg.into(),
    }
}

/// JSON → [`Value`]: integers that fit i64 are `Int`, other numbers `Double`.
pub fn to_value(j: Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s),
        Json::Array(items) => Value::Array(items.into_iter().map(to_value).collect()),
        Json::Object(map) => {
            Value::Struct(map.into_iter().map(|(k, v)| (k, to_value(v))).collect())
        }
    }
}

/// Parses a request body.
pub fn parse_call(body: &[u8]) -> Result<JsonCall, BadRequest> {
    let json: Json = serde_json::from_slice(body).map_err(|e| BadRequest {
        code: -32700,
        message: format!("not JSON: {e}"),
    })?;
    let Json::Object(mut obj) = json else {
        return Err(invalid("the request must be a JSON object"));
    };
    let version = match obj.remove("jsonrpc") {
        None => Version::V1,
        Some(Json::String(v)) if v == "2.0" => Version::V2,
        Some(other) => return Err(invalid(format!("unsupported \"jsonrpc\": {other}"))),
    };
    let method = match obj.remove("method") {
        Some(Json::String(m)) => m,
        _ => return Err(invalid("\"method\" must be a string")),
    };
    let id = match obj.remove("id") {
        Some(Json::Number(n)) if n.is_i64() => Id::Int(n.as_i64().unwrap_or_default()),
        Some(Json::String(s)) => Id::Str(s),
        Some(Json::Null) | None => {
            return Err(invalid(
                "\"id\" is required (notifications are not accepted)",
            ));
        }
        Some(other) => {
            return Err(invalid(format!(
                "\"id\" must be an integer or a string, not {other}"
            )));
        }
    };
    let params = match (version, obj.remove("params")) {
        (_, Some(Json::Array(items))) => items.into_iter().map(to_value).collect(),
        (Version::V2, None | Some(Json::Null)) => Vec::new(),
        // xapi turns a by-name object into one positional parameter.
        (Version::V2, Some(o @ Json::Object(_))) => vec![to_value(o)],
        (Version::V1, _) => return Err(invalid("\"params\" must be an array")),
        (Version::V2, Some(_)) => return Err(invalid("\"params\" must be an array or an object")),
    };
    Ok(JsonCall {
        version,
        id,
        method,
        params,
    })
}

/// Yojson's string escaping: `"` `\` and control characters; everything else raw.
fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            8 => Some(b"\\b"),
            12 => Some(b"\\f"),
            0..=0x1f | 0x7f => None,
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
    out.push(b'"');
}

/// Yojson's `write_float`: `%.16g` (or `%.17g` if that does not round-trip), then `.0`
/// when the result would read as an integer; NaN and infinities as Yojson spells them.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let mut s = crate::printf::format_g(f, 16);
    if s.parse::<f64>().ok() != Some(f) {
        s = crate::printf::format_g(f, 17);
    }
    if s.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
        s.push_str(".0");
    }
    s
}

/// Writes a value as compact JSON.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) | Value::DateTime(s) | Value::Base64(s) => write_string(out, s),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Int32(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Double(f) => out.extend_from_slice(format_float(*f).as_bytes()),
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Struct(members) => {
            out.push(b'{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

fn write_id(out: &mut Vec<u8>, id: &Id) {
    match id {
        Id::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Id::Str(s) => write_string(out, s),
    }
}

fn write_strings(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, s);
    }
    out.push(b']');
}

/// Writes the response envelope for a dispatched call.
pub fn write_response(
    out: &mut Vec<u8>,
    version: Version,
    id: &Id,
    result: &Result<Value, ApiError>,
) {
    match (version, result) {
        (Version::V1, Ok(v)) => {
            out.extend_from_slice(b"{\"result\":");
            write_value(out, v);
            out.extend_from_slice(b",\"error\":null,\"id\":");
        }
        (Version::V1, Err(e)) => {
            out.extend_from_slice(b"{\"result\":null,\"error\":");
            write_strings(out, &e.description());
            out.extend_from_slice(b",\"id\":");
        }
        (Version::V2, Ok(v)) => {
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"result\":");
            write_value(out, v);
            out.extend_from_slice(b",\"id\":");
        }
        (Version::V2, Err(e)) => {
            // xapi's `json_of_error_object`: code is always 1 (some clients read 0 as "no error").
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":");
            write_string(out, e.code);
            out.extend_from_slice(b",\"data\":");
            write_strings(out, &e.params);
            out.extend_from_slice(b"},\"id\":");
        }
    }
    write_id(out, id);
    out.push(b'}');
}

/// The answer to a body that is not an acceptable call: a JSON-RPC 2.0 error object with
/// the standard code, `id` null.
pub fn write_bad_request(out: &mut Vec<u8>, bad: &BadRequest) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":");
    out.extend_from_slice(bad.code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_string(
        out,
        if bad.code == -32700 {
            "Parse error"
        } else {
            "Invalid Request"
        },
    );
    out.extend_from_slice(b",\"data\":");
    write_strings(out, std::slice::from_ref(&bad.message));
    out.extend_from_slice(b"},\"id\":null}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ApiError;

    fn resp(version: Version, id: Id, r: Result<Value, ApiError>) -> String {
        let mut out = Vec::new();
        write_response(&mut out, version, &id, &r);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn envelopes_as_xapi() {
        let ok = Ok(Value::str("OpaqueRef:x"));
        let err = Err(ApiError::new("SESSION_INVALID", ["OpaqueRef:y"]));
        assert_eq!(
            resp(Version::V1, Id::Int(1), ok.clone()),
            r#"{"result":"OpaqueRef:x","error":null,"id":1}"#
        );
        assert_eq!(
            resp(Version::V1, Id::Int(1), err.clone()),
            r#"{"result":null,"error":["SESSION_INVALID","OpaqueRef:y"],"id":1}"#
        );
        assert_eq!(
            resp(Version::V2, Id::Str("a".into()), ok),
            r#"{"jsonrpc":"2.0","result":"OpaqueRef:x","id":"a"}"#
        );
        assert_eq!(
            resp(Version::V2, Id::Int(7), err),
            r#"{"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_INVALID","data":["OpaqueRef:y"]},"id":7}"#
        );
    }

    #[test]
    fn values_as_yojson() {
        let v = Value::Struct(vec![
            ("f".into(), Value::Double(1.0)),
            ("g".into(), Value::Double(0.1)),
            ("h".into(), Value::Double(1e21)),
            ("i".into(), Value::Int(-3)),
            ("c".into(), Value::Int32(4)),
            ("s".into(), Value::str("a\"b\\c\n\u{1}é")),
            ("d".into(), Value::DateTime("20240101T00:00:00Z".into())),
            (
                "a".into(),
                Value::Array(vec![Value::Bool(true), Value::Nil]),
            ),
        ]);
        let mut out = Vec::new();
        write_value(&mut out, &v);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"f":1.0,"g":0.1,"h":1e+21,"i":-3,"c":4,"s":"a\"b\\c\n\u0001é","d":"20240101T00:00:00Z","a":[true,null]}"#
        );
        // What we write, serde_json reads back.
        let mut out = Vec::new();
        write_value(&mut out, &Value::str("x\u{7f}\t"));
        assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), "x\u{7f}\t");
    }

    #[test]
    fn request_rules() {
        let c = parse_call(br#"{"jsonrpc":"2.0","method":"task.get_all","params":["s"],"id":"x"}"#)
            .unwrap();
        assert_eq!(
            (c.version, c.id, c.params),
            (Version::V2, Id::Str("x".into()), vec![Value::str("s")])
        );
        let c = parse_call(br#"{"method":"m","params":[1,2.5],"id":3}"#).unwrap();
        assert_eq!(
            (c.version, c.params),
            (Version::V1, vec![Value::Int(1), Value::Double(2.5)])
        );
        let c = parse_call(br#"{"jsonrpc":"2.0","method":"system.listMethods","id":1}"#).unwrap();
        assert!(c.params.is_empty());
        let c = parse_call(br#"{"jsonrpc":"2.0","method":"m","params":{"a":"b"},"id":1}"#).unwrap();
        assert_eq!(c.params.len(), 1);
        for bad in [
            &br#"{"method":"m","id":1}"#[..],
            br#"{"jsonrpc":"2.0","method":"m"}"#,
            br#"{"jsonrpc":"2.0","method":"m","id":null}"#,
            br#"{"jsonrpc":"1.5","method":"m","id":1}"#,
            br#"{"jsonrpc":"2.0","method":5,"id":1}"#,
            br#"[1,2]"#,
            br#"{"#,
        ] {
            assert!(parse_call(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_call(b"{").unwrap_err().code, -32700);
    }
}
