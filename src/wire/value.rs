//! The neutral value type that sits between the wire codecs and the API layer.
//!
//! Both XML-RPC and (later) JSON-RPC decode into [`Value`] and encode from it, so the
//! dispatch pipeline never sees bytes. The variants follow what xapi's codec (ocaml-rpc)
//! distinguishes, because the *output* encoding depends on them: an `Int` is written as an
//! untyped `<value>42</value>` while an `Int32` becomes `<value><i4>42</i4></value>`.

/// Room for a call's parameters made at once by the fast readers: XAPI's messages take
/// two to four (the session and up to three more), so a call's vector is allocated
/// once, not grown from empty (`RawVec`'s growth path, some 60 instructions more).
pub const USUAL_PARAMS: usize = 4;

/// One XML-RPC / JSON-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string. Written untyped in XML-RPC (`<value>text</value>`).
    String(String),
    /// A 64-bit integer, XAPI's `int`. Written untyped (it looks like a string on the wire).
    Int(i64),
    /// A 32-bit integer. Only `event.from`'s `valid_ref_counts` uses it on output (`<i4>`).
    Int32(i32),
    /// A boolean (`<boolean>1</boolean>`).
    Bool(bool),
    /// A float, written with C's `%.16g`.
    Double(f64),
    /// A date-time, kept as the text that was (or will be) on the wire,
    /// e.g. `20240101T12:00:00Z`. The API layer parses and formats it.
    DateTime(String),
    /// Base64 data as received (undecoded text). XAPI's task API never takes it.
    Base64(String),
    /// An array.
    Array(Vec<Value>),
    /// A struct; members keep their order (records are written in datamodel order).
    Struct(Vec<(String, Value)>),
    /// `<nil/>` / JSON `null`.
    Nil,
    /// A value already written by `Codec`'s encoder, to be copied into that codec's
    /// reply as it is. Only the dispatcher makes one, only for the codec the request
    /// named (`RequestMeta::codec`): a record straight from its row
    /// (`wire::encode`).
    /// Shared bytes (`Bytes`): one `event.from` batch can answer many waiters.
    Encoded(crate::wire::encode::Codec, bytes::Bytes),
}

impl Value {
    /// The empty string, which is how xapi encodes a `void` result.
    pub fn void() -> Value {
        Value::String(String::new())
    }

    /// Shorthand for a string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// The string inside a `String` value, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The rendering ocaml-rpc's `Rpc.to_string` gives, which xapi puts into
    /// `INTERNAL_ERROR` texts for type errors, e.g. `B(true)`, `S(abc)`, `[S(a);S(b)]`.
    pub fn debug_rendering(&self) -> String {
        match self {
            Value::String(s) => format!("S({s})"),
            Value::Int(i) => format!("I({i})"),
            Value::Int32(i) => format!("I32({i})"),
            Value::Bool(b) => format!("B({b})"),
            Value::Double(f) => format!("F({})", crate::printf::format_g(*f, 6)),
            Value::DateTime(s) => format!("D({s})"),
            Value::Base64(s) => format!("B64({s})"),
            Value::Nil => "N".to_string(),
            Value::Encoded(_, bytes) => format!("E({})", String::from_utf8_lossy(bytes)),
            Value::Array(items) => {
                let inner: Vec<String> = items.iter().map(Value::debug_rendering).collect();
                format!("[{}]", inner.join(";"))
            }
            Value::Struct(members) => {
                let inner: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.debug_rendering()))
                    .collect();
                format!("{{{}}}", inner.join(";"))
            }
        }
    }
}
