//! JSON-RPC v1 and v2 on `/jsonrpc`, as xapi speaks it (ocaml-rpc's `jsonrpc.ml`,
//! xen-api's `api_server.ml` `jsoncallback`; spec §1.4).
//!
//! Requests are parsed with serde_json. Responses are written by hand because the bytes
//! matter to clients: key order (`result`, `error`, `id` in v1; `jsonrpc`, then `result`
//! or `error`, then `id` in v2), the `id` echoed with its JSON type, no `error` key in a
//! v2 success (Xen Orchestra relies on that), and floats as Yojson prints them (`1.0`).

use std::borrow::Cow;

use serde_json::Value as Json;

use crate::api::error::ApiError;
use crate::wire::encode::{Codec, Encoder, KnownMember, is_plain};
use crate::wire::number::{whole, write_int};
use crate::wire::value::Value;
use crate::wire::{scan, xmlchars};

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

/// A JSON-RPC call; the method name is borrowed from the body when it has no escapes.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCall<'a> {
    pub version: Version,
    pub id: Id,
    pub method: Cow<'a, str>,
    pub params: Vec<Value>,
    /// Whether every string of the parameters (struct member names included) passes the
    /// XML character rule (`wire::xmlchars::value_ok`), which the dispatcher applies to
    /// every call. Both readers give the same answer: the fast one from its own string
    /// scans, the general one by the check itself; the dispatcher then skips its pass
    /// when this is true.
    pub chars_ok: bool,
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

/// Parses a request body: the common shape straight off the bytes, anything else with
/// serde_json.
pub fn parse_call(body: &[u8]) -> Result<JsonCall<'_>, BadRequest> {
    fast::parse(body).map_or_else(|| parse_general(body), Ok)
}

/// The general reader: any JSON, through serde_json's `Value`. The fast reader
/// (`jsonrpc_fast.rs`) must give exactly this or leave the body to it; the tests and the
/// `jsonrpc_call` fuzz target compare the two on the same bytes.
#[doc(hidden)]
pub fn parse_general(body: &[u8]) -> Result<JsonCall<'_>, BadRequest> {
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
        Some(Json::String(m)) => Cow::Owned(m),
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
        chars_ok: params.iter().all(xmlchars::value_ok),
        params,
    })
}

/// What Yojson escapes in a string: `"` `\\` and control characters (DEL included).
const fn json_special(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\') | (b == 0x7f)
}
const JSON_SPECIAL: scan::Table = scan::table!(json_special);

/// Yojson's string escaping: `"` `\\` and control characters; everything else raw.
fn write_string(out: &mut Vec<u8>, s: &str) {
    // Most of a record's strings are empty: one copy, no scan.
    if s.is_empty() {
        out.extend_from_slice(b"\"\"");
        return;
    }
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(at) = scan::find(&bytes[start..], json_special, &JSON_SPECIAL) {
        let i = start + at;
        out.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
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
    v.encode(&mut JsonEncoder::new(out));
}

/// The JSON [`Encoder`]: every value, whether from a tree or straight from a row, is
/// written by these methods.
pub struct JsonEncoder<'a> {
    out: &'a mut Vec<u8>,
    /// A value was just completed, so the next one needs a comma first.
    comma: bool,
}

impl<'a> JsonEncoder<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> JsonEncoder<'a> {
        JsonEncoder { out, comma: false }
    }

    fn separate(&mut self) {
        if self.comma {
            self.out.push(b',');
        }
        self.comma = true;
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.separate();
        self.out.extend_from_slice(bytes);
    }
}

impl Encoder for JsonEncoder<'_> {
    fn string(&mut self, s: &str) {
        self.separate();
        write_string(self.out, s);
    }
    fn plain_string(&mut self, s: &str) {
        debug_assert!(is_plain(s), "{s:?}");
        self.separate();
        self.out.push(b'"');
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'"');
    }
    fn int(&mut self, i: i64) {
        self.separate();
        write_int(self.out, i);
    }
    fn int32(&mut self, i: i32) {
        self.int(i64::from(i));
    }
    fn bool(&mut self, b: bool) {
        self.raw(if b { b"true" } else { b"false" });
    }
    fn double(&mut self, d: f64) {
        self.separate();
        // What `format_float` gives for a whole number, without the general formatter
        // and its round-trip parse (the usual progress values 0 and 1).
        if let Some(i) = whole(d) {
            write_int(self.out, i);
            self.out.extend_from_slice(b".0");
        } else {
            self.out.extend_from_slice(format_float(d).as_bytes());
        }
    }
    fn date_time(&mut self, s: &str) {
        self.string(s);
    }
    fn plain_date_time(&mut self, s: &str) {
        self.plain_string(s);
    }
    fn base64(&mut self, s: &str) {
        self.string(s);
    }
    fn nil(&mut self) {
        self.raw(b"null");
    }
    fn begin_array(&mut self) {
        self.raw(b"[");
        self.comma = false;
    }
    fn end_array(&mut self) {
        self.out.push(b']');
        self.comma = true;
    }
    fn begin_struct(&mut self) {
        self.raw(b"{");
        self.comma = false;
    }
    fn member(&mut self, name: &str) {
        self.string(name);
        self.out.push(b':');
        self.comma = false;
    }
    fn static_member(&mut self, name: &'static str) {
        self.separate();
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.comma = false;
    }
    fn known_member(&mut self, member: &KnownMember) {
        self.separate();
        self.out.extend_from_slice(member.json());
        self.comma = false;
    }
    fn end_member(&mut self) {}
    fn end_struct(&mut self) {
        self.out.push(b'}');
        self.comma = true;
    }
    fn encoded(&mut self, codec: Codec, bytes: &[u8]) {
        // The dispatcher encodes only for the codec the request named, which is this one.
        debug_assert_eq!(codec, Codec::JsonRpc);
        if codec == Codec::JsonRpc {
            self.raw(bytes);
        } else {
            self.nil();
        }
    }
}

fn write_id(out: &mut Vec<u8>, id: &Id) {
    match id {
        Id::Int(i) => write_int(out, *i),
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
        (_, Ok(v)) => {
            write_success_head(out, version);
            write_value(out, v);
            write_success_tail(out, version, id);
            return;
        }
        (Version::V1, Err(e)) => {
            out.extend_from_slice(b"{\"result\":null,\"error\":");
            write_strings(out, &e.description());
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

/// What a success response holds before its result (a reply's buffer is lent to the call
/// with this written: `wire::encode::ReplyBuffer`).
pub fn write_success_head(out: &mut Vec<u8>, version: Version) {
    let head: &[u8] = match version {
        Version::V1 => b"{\"result\":",
        Version::V2 => b"{\"jsonrpc\":\"2.0\",\"result\":",
    };
    out.extend_from_slice(head);
}

/// What a success response holds after its result.
pub fn write_success_tail(out: &mut Vec<u8>, version: Version, id: &Id) {
    let tail: &[u8] = match version {
        Version::V1 => b",\"error\":null,\"id\":",
        Version::V2 => b",\"id\":",
    };
    out.extend_from_slice(tail);
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

/// An XAPI error for a request whose call was never read (its head or body refused by
/// the server's limits): the JSON-RPC 2.0 form of `write_response`, `id` null, as
/// JSON-RPC 2.0 asks when the id could not be known.
pub fn write_error_without_id(out: &mut Vec<u8>, e: &ApiError) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":");
    write_string(out, e.code);
    out.extend_from_slice(b",\"data\":");
    write_strings(out, &e.params);
    out.extend_from_slice(b"},\"id\":null}");
}

#[path = "jsonrpc_fast.rs"]
mod fast;

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

    /// Every ASCII byte, early in a string, in a 16-byte block and in the tail, is
    /// escaped as Yojson escapes it (the byte-by-byte rule, written out here).
    #[test]
    fn strings_escape_as_yojson_wherever_the_byte_is() {
        let yojson = |b: u8| -> String {
            match b {
                b'"' => "\\\"".into(),
                b'\\' => "\\\\".into(),
                b'\n' => "\\n".into(),
                b'\r' => "\\r".into(),
                b'\t' => "\\t".into(),
                8 => "\\b".into(),
                12 => "\\f".into(),
                0..=0x1f | 0x7f => format!("\\u{b:04x}"),
                _ => char::from(b).to_string(),
            }
        };
        for b in 0..0x80u8 {
            for (before, after) in [(0, 0), (3, 40), (20, 2), (16, 16)] {
                let text = format!(
                    "{}{}{}",
                    "a".repeat(before),
                    char::from(b),
                    "z".repeat(after)
                );
                let mut out = Vec::new();
                write_string(&mut out, &text);
                let want = format!(
                    "\"{}{}{}\"",
                    "a".repeat(before),
                    yojson(b),
                    "z".repeat(after)
                );
                assert_eq!(String::from_utf8(out).unwrap(), want, "{b:#x} at {before}");
            }
        }
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
