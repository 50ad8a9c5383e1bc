//! Writing values without building them first.
//!
//! An [`Encoder`] is told a value piece by piece (a string, the start of a struct, a
//! member's name…) and writes it in its codec's form. Each codec has one encoder, and its
//! `write_value` for a [`Value`] tree is [`Value::encode`] driving that encoder, so a
//! value written from a tree and one written straight from a database row (records, see
//! `api::record::encode_record`) are the same bytes by construction.
//!
//! Records are what most replies carry; building one as a tree costs some forty small
//! allocations that the writer walks once and drops. Encoding from the row skips that.
//! [`Builder`] is the encoder that does build the tree, for the callers that want a
//! [`Value`] to look into (filters, events, the REST faces).

use crate::wire::value::Value;

/// Which codec will write a reply: a request's XML-RPC or JSON-RPC face tells the
/// dispatcher, so that it can hand back a record already in that form
/// ([`Value::Encoded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    XmlRpc,
    JsonRpc,
}

/// A codec's writer, driven piece by piece. A struct is `begin_struct`, then for each
/// member `member` (or `static_member`), the member's value, `end_member`; then
/// `end_struct`.
pub trait Encoder {
    fn string(&mut self, s: &str);
    /// XAPI's `int` (64 bits).
    fn int(&mut self, i: i64);
    fn int32(&mut self, i: i32);
    fn bool(&mut self, b: bool);
    fn double(&mut self, d: f64);
    /// A date-time as its wire text (`20240101T12:00:00Z`).
    fn date_time(&mut self, s: &str);
    fn base64(&mut self, s: &str);
    fn nil(&mut self);
    fn begin_array(&mut self);
    fn end_array(&mut self);
    fn begin_struct(&mut self);
    /// `begin_struct` for a struct of about `members` members (a builder can size for it).
    fn begin_struct_of(&mut self, members: usize) {
        let _ = members;
        self.begin_struct();
    }
    fn member(&mut self, name: &str);
    /// A member name from the datamodel: plain ASCII that no codec needs to escape.
    fn static_member(&mut self, name: &'static str) {
        self.member(name);
    }
    fn end_member(&mut self);
    fn end_struct(&mut self);
    /// Bytes this codec wrote earlier ([`Value::Encoded`]).
    fn encoded(&mut self, codec: Codec, bytes: &[u8]);
}

impl Value {
    /// Tells `e` this value.
    pub fn encode<E: Encoder>(&self, e: &mut E) {
        match self {
            Value::String(s) => e.string(s),
            Value::Int(i) => e.int(*i),
            Value::Int32(i) => e.int32(*i),
            Value::Bool(b) => e.bool(*b),
            Value::Double(d) => e.double(*d),
            Value::DateTime(s) => e.date_time(s),
            Value::Base64(s) => e.base64(s),
            Value::Nil => e.nil(),
            Value::Array(items) => {
                e.begin_array();
                for item in items {
                    item.encode(e);
                }
                e.end_array();
            }
            Value::Struct(members) => {
                e.begin_struct();
                for (name, item) in members {
                    e.member(name);
                    item.encode(e);
                    e.end_member();
                }
                e.end_struct();
            }
            Value::Encoded(codec, bytes) => e.encoded(*codec, bytes),
        }
    }
}

/// `v` written by `codec`'s encoder, as bytes that can be shared.
pub fn to_codec(codec: Codec, v: &Value) -> bytes::Bytes {
    let mut out = Vec::with_capacity(2048);
    match codec {
        Codec::XmlRpc => v.encode(&mut crate::wire::xmlrpc::XmlEncoder { out: &mut out }),
        Codec::JsonRpc => v.encode(&mut crate::wire::jsonrpc::JsonEncoder::new(&mut out)),
    }
    out.into()
}

/// The encoder that builds the [`Value`] tree.
#[derive(Default)]
pub struct Builder {
    /// Arrays and structs begun and not yet ended, innermost last.
    open: Vec<Open>,
    done: Option<Value>,
}

enum Open {
    Array(Vec<Value>),
    /// Members so far, and the name of the member whose value comes next.
    Struct(Vec<(String, Value)>, String),
}

impl Builder {
    /// Builds what `f` encodes.
    pub fn build(f: impl FnOnce(&mut Builder)) -> Value {
        let mut b = Builder::default();
        f(&mut b);
        b.done.unwrap_or_else(Value::void)
    }

    fn put(&mut self, v: Value) {
        match self.open.last_mut() {
            None => self.done = Some(v),
            Some(Open::Array(items)) => items.push(v),
            Some(Open::Struct(members, name)) => members.push((std::mem::take(name), v)),
        }
    }
}

impl Encoder for Builder {
    fn string(&mut self, s: &str) {
        self.put(Value::String(s.to_string()));
    }
    fn int(&mut self, i: i64) {
        self.put(Value::Int(i));
    }
    fn int32(&mut self, i: i32) {
        self.put(Value::Int32(i));
    }
    fn bool(&mut self, b: bool) {
        self.put(Value::Bool(b));
    }
    fn double(&mut self, d: f64) {
        self.put(Value::Double(d));
    }
    fn date_time(&mut self, s: &str) {
        self.put(Value::DateTime(s.to_string()));
    }
    fn base64(&mut self, s: &str) {
        self.put(Value::Base64(s.to_string()));
    }
    fn nil(&mut self) {
        self.put(Value::Nil);
    }
    fn begin_array(&mut self) {
        self.open.push(Open::Array(Vec::new()));
    }
    fn end_array(&mut self) {
        if let Some(Open::Array(items)) = self.open.pop() {
            self.put(Value::Array(items));
        }
    }
    fn begin_struct(&mut self) {
        self.begin_struct_of(0);
    }
    fn begin_struct_of(&mut self, members: usize) {
        self.open
            .push(Open::Struct(Vec::with_capacity(members), String::new()));
    }
    fn member(&mut self, name: &str) {
        if let Some(Open::Struct(_, next)) = self.open.last_mut() {
            *next = name.to_string();
        }
    }
    fn end_member(&mut self) {}
    fn end_struct(&mut self) {
        if let Some(Open::Struct(members, _)) = self.open.pop() {
            self.put(Value::Struct(members));
        }
    }
    fn encoded(&mut self, codec: Codec, bytes: &[u8]) {
        self.put(Value::Encoded(codec, bytes::Bytes::copy_from_slice(bytes)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_rebuilds_what_it_is_told() {
        let v = Value::Struct(vec![
            ("a".into(), Value::Array(vec![Value::Int(1), Value::Nil])),
            (
                "b".into(),
                Value::Struct(vec![("c".into(), Value::DateTime("d".into()))]),
            ),
            ("e".into(), Value::Array(vec![])),
            ("f".into(), Value::Double(0.5)),
        ]);
        assert_eq!(Builder::build(|b| v.encode(b)), v);
        assert_eq!(Builder::build(|b| b.string("x")), Value::str("x"));
    }
}
