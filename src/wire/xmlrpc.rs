//! XML-RPC, byte-for-byte as xapi speaks it (ocaml-rpc's `xmlrpc.ml` in non-strict mode;
//! spec §1.2–1.3).
//!
//! Reading: quick-xml over the borrowed body. Whitespace-only text between structural
//! elements is skipped (Python pretty-prints its calls), but an untyped
//! `<value>  text </value>` keeps its spaces, so quick-xml's trimming stays off. Entity and
//! character references arrive as separate events and are stitched back into the text.
//! Nesting is bounded ([`MAX_DEPTH`]) so a hostile body cannot exhaust the stack.
//!
//! Writing: straight into the output buffer, no whitespace, strings and int64 untyped,
//! int32 as `<i4>`, doubles with `%.16g`, xapi's escaping (only `& < > "`, control bytes
//! other than TAB/LF/CR dropped). One deliberate difference: struct member names are
//! escaped too, so the output is always well-formed XML.

use std::borrow::Cow;
use std::fmt;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::api::error::ApiError;
use crate::printf::format_g16;
use crate::wire::value::Value;

/// Deepest nesting of arrays and structs accepted in a call.
pub const MAX_DEPTH: usize = 64;

/// A decoded call.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub method: String,
    pub params: Vec<Value>,
    /// Index of the first parameter that was not valid UTF-8 on the wire (the dispatcher
    /// answers `INVALID_VALUE`, as xapi's UTF-8 check does).
    pub invalid_utf8_param: Option<usize>,
}

/// Why a body is not an XML-RPC call; becomes `XMLRPC_UNMARSHAL_FAILURE [expected; received]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub expected: String,
    pub received: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, received {}", self.expected, self.received)
    }
}

fn err(expected: impl Into<String>, received: impl Into<String>) -> ParseError {
    let mut received = received.into();
    if received.len() > 100 {
        let mut cut = 100;
        while !received.is_char_boundary(cut) {
            cut -= 1;
        }
        received.truncate(cut);
        received.push('…');
    }
    ParseError {
        expected: expected.into(),
        received,
    }
}

/// The elements of XML-RPC; anything else is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    MethodCall,
    MethodName,
    Params,
    Param,
    Value,
    String,
    Int,
    Boolean,
    Double,
    DateTime,
    Base64,
    Array,
    Data,
    Struct,
    Member,
    Name,
    Nil,
}

impl Tag {
    fn of(name: &str) -> Option<Tag> {
        Some(match name {
            "methodCall" => Tag::MethodCall,
            "methodName" => Tag::MethodName,
            "params" => Tag::Params,
            "param" => Tag::Param,
            "value" => Tag::Value,
            "string" => Tag::String,
            "int" | "i4" | "i8" => Tag::Int,
            "boolean" => Tag::Boolean,
            "double" => Tag::Double,
            "dateTime.iso8601" => Tag::DateTime,
            "base64" => Tag::Base64,
            "array" => Tag::Array,
            "data" => Tag::Data,
            "struct" => Tag::Struct,
            "member" => Tag::Member,
            "name" => Tag::Name,
            "nil" => Tag::Nil,
            _ => return None,
        })
    }

    fn show(self) -> &'static str {
        match self {
            Tag::MethodCall => "<methodCall>",
            Tag::MethodName => "<methodName>",
            Tag::Params => "<params>",
            Tag::Param => "<param>",
            Tag::Value => "<value>",
            Tag::String => "<string>",
            Tag::Int => "<int>",
            Tag::Boolean => "<boolean>",
            Tag::Double => "<double>",
            Tag::DateTime => "<dateTime.iso8601>",
            Tag::Base64 => "<base64>",
            Tag::Array => "<array>",
            Tag::Data => "<data>",
            Tag::Struct => "<struct>",
            Tag::Member => "<member>",
            Tag::Name => "<name>",
            Tag::Nil => "<nil/>",
        }
    }
}

/// A token of the simplified event stream.
#[derive(Debug)]
enum Tok<'a> {
    Open(Tag),
    Empty(Tag),
    Close(Tag),
    Text(Cow<'a, str>),
    Eof,
}

impl Tok<'_> {
    fn show(&self) -> String {
        match self {
            Tok::Open(t) => t.show().to_string(),
            Tok::Empty(t) => format!("{} (empty)", t.show()),
            Tok::Close(t) => format!("</{}", &t.show()[1..]),
            Tok::Text(s) => format!("text {s:?}"),
            Tok::Eof => "end of document".to_string(),
        }
    }
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    /// A token read ahead (text is assembled from several events).
    peeked: Option<Tok<'a>>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            reader: Reader::from_str(text),
            peeked: None,
        }
    }

    fn tag(name: &str) -> Result<Tag, ParseError> {
        Tag::of(name).ok_or_else(|| err("an XML-RPC element", format!("<{name}>")))
    }

    /// The next token; consecutive text, CDATA and references form one `Text`.
    fn next(&mut self) -> Result<Tok<'a>, ParseError> {
        if let Some(t) = self.peeked.take() {
            return Ok(t);
        }
        let mut text: Option<Cow<'a, str>> = None;
        loop {
            let ev = self
                .reader
                .read_event()
                .map_err(|e| err("well-formed XML", e.to_string()))?;
            let piece: Cow<'a, str> = match ev {
                Event::Text(t) => t.into_inner(),
                Event::CData(c) => c.into_inner(),
                Event::GeneralRef(r) => Cow::Owned(resolve_ref(&r)?.to_string()),
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => continue,
                other => {
                    let tok = match other {
                        Event::Start(s) => Tok::Open(Self::tag(s.name().as_ref())?),
                        Event::Empty(s) => Tok::Empty(Self::tag(s.name().as_ref())?),
                        Event::End(e) => Tok::Close(Self::tag(e.name().as_ref())?),
                        _ => Tok::Eof,
                    };
                    return Ok(match text {
                        Some(t) => {
                            self.peeked = Some(tok);
                            Tok::Text(t)
                        }
                        None => tok,
                    });
                }
            };
            text = Some(match text {
                None => piece,
                Some(prev) => Cow::Owned(prev.into_owned() + &piece),
            });
        }
    }

    /// The next token that is not whitespace-only text.
    fn next_structural(&mut self) -> Result<Tok<'a>, ParseError> {
        loop {
            match self.next()? {
                Tok::Text(t) if is_blank(&t) => continue,
                tok => return Ok(tok),
            }
        }
    }

    fn expect_open(&mut self, tag: Tag) -> Result<bool, ParseError> {
        match self.next_structural()? {
            Tok::Open(t) if t == tag => Ok(true),
            Tok::Empty(t) if t == tag => Ok(false),
            other => Err(err(tag.show(), other.show())),
        }
    }

    fn expect_close(&mut self, tag: Tag) -> Result<(), ParseError> {
        match self.next_structural()? {
            Tok::Close(t) if t == tag => Ok(()),
            other => Err(err(format!("</{}", &tag.show()[1..]), other.show())),
        }
    }

    /// Text up to `</tag>` (possibly none).
    fn text_until_close(&mut self, tag: Tag) -> Result<Cow<'a, str>, ParseError> {
        match self.next()? {
            Tok::Close(t) if t == tag => Ok(Cow::Borrowed("")),
            Tok::Text(s) => {
                self.expect_close(tag)?;
                Ok(s)
            }
            other => Err(err(format!("text or </{}", &tag.show()[1..]), other.show())),
        }
    }

    /// A value whose `<value>` start tag was just read (`open` false for `<value/>`).
    fn value(&mut self, open: bool, depth: usize) -> Result<Value, ParseError> {
        if !open {
            return Ok(Value::String(String::new()));
        }
        if depth > MAX_DEPTH {
            return Err(err(
                format!("at most {MAX_DEPTH} levels of nesting"),
                "deeper nesting",
            ));
        }
        let v = match self.next()? {
            Tok::Close(Tag::Value) => return Ok(Value::String(String::new())),
            Tok::Text(s) => match self.next()? {
                Tok::Close(Tag::Value) => return Ok(Value::String(s.into_owned())),
                Tok::Open(t) if is_blank(&s) => self.typed(t, true, depth)?,
                Tok::Empty(t) if is_blank(&s) => self.typed(t, false, depth)?,
                other => return Err(err("</value>", other.show())),
            },
            Tok::Open(t) => self.typed(t, true, depth)?,
            Tok::Empty(t) => self.typed(t, false, depth)?,
            Tok::Close(t) => return Err(err("a value", format!("</{}", &t.show()[1..]))),
            Tok::Eof => return Err(err("a value", "end of document")),
        };
        self.expect_close(Tag::Value)?;
        Ok(v)
    }

    fn typed(&mut self, tag: Tag, open: bool, depth: usize) -> Result<Value, ParseError> {
        let text = |p: &mut Parser<'a>| -> Result<Cow<'a, str>, ParseError> {
            if open {
                p.text_until_close(tag)
            } else {
                Ok(Cow::Borrowed(""))
            }
        };
        Ok(match tag {
            Tag::String => Value::String(text(self)?.into_owned()),
            Tag::Int => {
                let t = text(self)?;
                Value::Int(
                    t.trim()
                        .parse::<i64>()
                        .map_err(|_| err("an integer", t.as_ref()))?,
                )
            }
            Tag::Boolean => Value::Bool(text(self)?.trim() == "1"),
            Tag::Double => {
                let t = text(self)?;
                Value::Double(
                    t.trim()
                        .parse::<f64>()
                        .map_err(|_| err("a double", t.as_ref()))?,
                )
            }
            Tag::DateTime => Value::DateTime(text(self)?.into_owned()),
            Tag::Base64 => Value::Base64(text(self)?.into_owned()),
            Tag::Nil => {
                if open {
                    self.expect_close(Tag::Nil)?;
                }
                Value::Nil
            }
            Tag::Array => {
                if !open {
                    return Ok(Value::Array(Vec::new()));
                }
                let mut items = Vec::new();
                match self.next_structural()? {
                    Tok::Close(Tag::Array) => return Ok(Value::Array(items)),
                    Tok::Empty(Tag::Data) => {}
                    Tok::Open(Tag::Data) => loop {
                        match self.next_structural()? {
                            Tok::Close(Tag::Data) => break,
                            Tok::Open(Tag::Value) => items.push(self.value(true, depth + 1)?),
                            Tok::Empty(Tag::Value) => items.push(Value::String(String::new())),
                            other => return Err(err("<value> or </data>", other.show())),
                        }
                    },
                    other => return Err(err("<data>", other.show())),
                }
                self.expect_close(Tag::Array)?;
                Value::Array(items)
            }
            Tag::Struct => {
                let mut members = Vec::new();
                if !open {
                    return Ok(Value::Struct(members));
                }
                loop {
                    match self.next_structural()? {
                        Tok::Close(Tag::Struct) => break,
                        Tok::Open(Tag::Member) => {
                            let name = if self.expect_open(Tag::Name)? {
                                self.text_until_close(Tag::Name)?.into_owned()
                            } else {
                                String::new()
                            };
                            let open = self.expect_open(Tag::Value)?;
                            members.push((name, self.value(open, depth + 1)?));
                            self.expect_close(Tag::Member)?;
                        }
                        other => return Err(err("<member> or </struct>", other.show())),
                    }
                }
                Value::Struct(members)
            }
            other => return Err(err("a value type", other.show())),
        })
    }

    fn call(&mut self) -> Result<(String, Vec<Value>), ParseError> {
        if !self.expect_open(Tag::MethodCall)? {
            return Err(err("<methodName>", "an empty <methodCall/>"));
        }
        let method = if self.expect_open(Tag::MethodName)? {
            self.text_until_close(Tag::MethodName)?.into_owned()
        } else {
            String::new()
        };
        let mut params = Vec::new();
        if self.expect_open(Tag::Params)? {
            loop {
                match self.next_structural()? {
                    Tok::Close(Tag::Params) => break,
                    Tok::Open(Tag::Param) => {
                        let open = self.expect_open(Tag::Value)?;
                        params.push(self.value(open, 1)?);
                        self.expect_close(Tag::Param)?;
                    }
                    other => return Err(err("<param> or </params>", other.show())),
                }
            }
        }
        self.expect_close(Tag::MethodCall)?;
        match self.next_structural()? {
            Tok::Eof => Ok((method, params)),
            other => Err(err("end of document", other.show())),
        }
    }
}

fn resolve_ref(r: &quick_xml::events::BytesRef<'_>) -> Result<char, ParseError> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) => Ok(c),
            _ => Err(err("a valid character reference", format!("&{};", &**r))),
        };
    }
    match &**r {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        other => Err(err("a predefined XML entity", format!("&{other};"))),
    }
}

fn contains_replacement(v: &Value) -> bool {
    match v {
        Value::String(s) | Value::DateTime(s) | Value::Base64(s) => s.contains('\u{FFFD}'),
        Value::Array(items) => items.iter().any(contains_replacement),
        Value::Struct(members) => members
            .iter()
            .any(|(k, v)| k.contains('\u{FFFD}') || contains_replacement(v)),
        _ => false,
    }
}

/// Parses a `methodCall`. A body that is not valid UTF-8 is decoded lossily and the first
/// parameter that contains the damage is reported in `invalid_utf8_param`.
pub fn parse_call(body: &[u8]) -> Result<MethodCall, ParseError> {
    let (text, damaged) = match std::str::from_utf8(body) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(_) => (String::from_utf8_lossy(body), true),
    };
    let (method, params) = Parser::new(&text).call()?;
    let mut invalid_utf8_param = None;
    if damaged {
        if method.contains('\u{FFFD}') {
            return Err(err("a method name in UTF-8", "invalid UTF-8"));
        }
        invalid_utf8_param = params.iter().position(contains_replacement);
    }
    Ok(MethodCall {
        method,
        params,
        invalid_utf8_param,
    })
}

/// Appends `s` escaped as xapi does: `& < > "` as entities, control bytes other than TAB,
/// LF and CR dropped, everything else (UTF-8 included) as is.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\t' | b'\n' | b'\r' => continue,
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends one `<value>…</value>`.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"<value>");
    match v {
        Value::String(s) => escape_into(out, s),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Int32(i) => {
            out.extend_from_slice(b"<i4>");
            out.extend_from_slice(i.to_string().as_bytes());
            out.extend_from_slice(b"</i4>");
        }
        Value::Bool(b) => out.extend_from_slice(if *b {
            b"<boolean>1</boolean>"
        } else {
            b"<boolean>0</boolean>"
        }),
        Value::Double(f) => {
            out.extend_from_slice(b"<double>");
            out.extend_from_slice(format_g16(*f).as_bytes());
            out.extend_from_slice(b"</double>");
        }
        Value::DateTime(s) => {
            out.extend_from_slice(b"<dateTime.iso8601>");
            escape_into(out, s);
            out.extend_from_slice(b"</dateTime.iso8601>");
        }
        Value::Base64(s) => {
            out.extend_from_slice(b"<base64>");
            escape_into(out, s);
            out.extend_from_slice(b"</base64>");
        }
        Value::Nil => out.extend_from_slice(b"<nil/>"),
        Value::Array(items) => {
            out.extend_from_slice(b"<array><data>");
            for item in items {
                write_value(out, item);
            }
            out.extend_from_slice(b"</data></array>");
        }
        Value::Struct(members) => {
            out.extend_from_slice(b"<struct>");
            for (k, item) in members {
                out.extend_from_slice(b"<member><name>");
                escape_into(out, k);
                out.extend_from_slice(b"</name>");
                write_value(out, item);
                out.extend_from_slice(b"</member>");
            }
            out.extend_from_slice(b"</struct>");
        }
    }
    out.extend_from_slice(b"</value>");
}

const PROLOG: &[u8] = b"<?xml version=\"1.0\"?><methodResponse><params><param>";
const EPILOG: &[u8] = b"</param></params></methodResponse>";

/// The xapi envelope: `{Status: Success, Value: v}` or `{Status: Failure, ErrorDescription: [code, params…]}`.
pub fn write_response(out: &mut Vec<u8>, result: &Result<Value, ApiError>) {
    out.extend_from_slice(PROLOG);
    out.extend_from_slice(b"<value><struct><member><name>Status</name>");
    match result {
        Ok(v) => {
            out.extend_from_slice(b"<value>Success</value></member><member><name>Value</name>");
            write_value(out, v);
        }
        Err(e) => {
            out.extend_from_slice(
                b"<value>Failure</value></member><member><name>ErrorDescription</name><value><array><data>",
            );
            out.extend_from_slice(b"<value>");
            escape_into(out, e.code);
            out.extend_from_slice(b"</value>");
            for p in &e.params {
                out.extend_from_slice(b"<value>");
                escape_into(out, p);
                out.extend_from_slice(b"</value>");
            }
            out.extend_from_slice(b"</data></array></value>");
        }
    }
    out.extend_from_slice(b"</member></struct></value>");
    out.extend_from_slice(EPILOG);
}

/// A response holding the bare value, without the envelope (`system.listMethods`).
pub fn write_bare(out: &mut Vec<u8>, value: &Value) {
    out.extend_from_slice(PROLOG);
    write_value(out, value);
    out.extend_from_slice(EPILOG);
}

/// `<value>…</value>` as a string: what xapi stores in `task.result`.
pub fn value_fragment(value: &Value) -> String {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
#[path = "xmlrpc_tests.rs"]
mod tests;
