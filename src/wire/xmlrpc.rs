//! XML-RPC exactly as xapi speaks it: ocaml-rpc's `xmlrpc.ml` (non-strict mode) on the way
//! out, its `call_of_string` on the way in (spec §1.2, §1.3).
//!
//! Reading mirrors ocaml-rpc's parser on top of quick-xml: whitespace-only text between
//! structural elements is skipped (Python pretty-prints calls), an untyped
//! `<value> text </value>` keeps its spaces, and character data split by quick-xml into
//! text, entity references and CDATA is stitched back together the way Xmlm delivers it.
//! The body is borrowed; a value's text is only copied when it becomes a [`Value`].
//!
//! Writing appends straight to the caller's buffer with xapi's bytes: no whitespace,
//! strings and int64 untyped, xapi's escaping. One deliberate difference: member names are
//! escaped too (xapi writes them raw, which yields malformed XML for keys with `<` or `&`).

use std::borrow::Cow;
use std::fmt;

use quick_xml::Reader;
use quick_xml::events::attributes::Attributes;
use quick_xml::events::{BytesDecl, BytesPI, BytesRef, Event};

use crate::api::error::ApiError;
use crate::printf::format_g16;
use crate::wire::encode::{Codec, Encoder, KnownMember, is_plain};
use crate::wire::number::{whole, write_int};
use crate::wire::scan;
use crate::wire::value::Value;
use crate::wire::xmlchars;

/// How deeply arrays and structs may nest in a call; recursion is bounded by this, so a
/// hostile body cannot exhaust the stack. XAPI's own types nest at most three levels.
pub const MAX_DEPTH: usize = 64;

/// Longest `received` text kept in an error, so a huge body is never echoed back whole.
const MAX_RECEIVED: usize = 100;

/// A decoded `<methodCall>`. The method name is borrowed from the body when it is there
/// as it is (no references in it), which is nearly always.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall<'a> {
    pub method: Cow<'a, str>,
    pub params: Vec<Value>,
    /// Set when the body was not valid UTF-8: the index of the first parameter that was
    /// damaged (it holds U+FFFD after lossy decoding). The dispatcher then answers with
    /// xapi's `INVALID_VALUE` for bad UTF-8 parameters (spec §1.2), which tells a client
    /// far more than a parse failure would. (xapi's own XML reader, Xmlm, refuses such a
    /// body before that check is reached.)
    pub invalid_utf8_param: Option<usize>,
    /// Whether every string of the parameters (struct member names included) passes the
    /// XML character rule (`wire::xmlchars::value_ok`), which the dispatcher applies to
    /// every call. Both readers give the same answer: the fast one from its own text
    /// scans (a call read by it that holds no byte that can start a refused character
    /// needs no pass of its own), the general one by the check itself; the dispatcher
    /// then skips its pass when this is true.
    pub chars_ok: bool,
}

/// Why a body is not a method call. The server reports it as
/// `XMLRPC_UNMARSHAL_FAILURE [expected; received]`, so both halves are meant for humans.
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

impl std::error::Error for ParseError {}

fn error(expected: impl Into<String>, received: impl Into<String>) -> ParseError {
    let mut received = received.into();
    if received.len() > MAX_RECEIVED {
        let mut cut = MAX_RECEIVED;
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

// ---------------------------------------------------------------------------------------
// Reading

/// Parses an XML-RPC call body.
///
/// As in xapi, anything after `</methodCall>` is never looked at. A body that is not
/// UTF-8 is still parsed (see [`MethodCall::invalid_utf8_param`]).
pub fn parse_call(body: &[u8]) -> Result<MethodCall<'_>, ParseError> {
    read_call(body, true)
}

/// [`parse_call`] without the fast reader (`xmlrpc_fast.rs`): what the general reader alone
/// gives. The fast reader must give exactly this or leave the body to it; the tests and
/// the `xmlrpc_call` fuzz target compare the two on the same bytes.
#[doc(hidden)]
pub fn parse_call_general(body: &[u8]) -> Result<MethodCall<'_>, ParseError> {
    read_call(body, false)
}

fn read_call(body: &[u8], fast_path: bool) -> Result<MethodCall<'_>, ParseError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body);
    // The common shape first. The fast reader takes no body with a control byte anywhere
    // (it stops on one in its own scans of the text), so it needs no pass of its own.
    if fast_path
        && let Ok(text) = text
        && let Some(call) = fast::parse(text)
    {
        return Ok(call);
    }
    // Xmlm refuses raw characters that XML forbids, so xapi rejects such a body outright.
    if let Some(at) = scan::find(body, is_control, &CONTROL) {
        return Err(error(
            "XML characters",
            format!("control character 0x{:02x} at byte {at}", body[at]),
        ));
    }
    match text {
        Ok(text) => Parser::new(text).call(),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let call = Parser::new(&text).call()?;
            let method = call.method.into_owned();
            if method.contains('\u{FFFD}') {
                return Err(error("a UTF-8 method name", method));
            }
            Ok(MethodCall {
                method: Cow::Owned(method),
                invalid_utf8_param: call.params.iter().position(damaged),
                params: call.params,
                chars_ok: call.chars_ok,
            })
        }
    }
}

/// A byte XML cannot carry raw (Xmlm refuses it).
const fn is_control(b: u8) -> bool {
    (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')
}
const CONTROL: scan::Table = scan::table!(is_control);

/// Whether lossy decoding left a replacement character anywhere inside `v`.
fn damaged(v: &Value) -> bool {
    match v {
        Value::String(s) | Value::DateTime(s) | Value::Base64(s) => s.contains('\u{FFFD}'),
        Value::Array(items) => items.iter().any(damaged),
        Value::Struct(members) => members
            .iter()
            .any(|(k, v)| k.contains('\u{FFFD}') || damaged(v)),
        _ => false,
    }
}

macro_rules! tags {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// The elements the grammar knows; anything else keeps its name for error messages.
        #[derive(Debug, Clone, PartialEq, Eq)]
        enum Tag {
            $($variant,)*
            Other(Box<str>),
        }

        impl Tag {
            /// Xmlm hands ocaml-rpc local names, so a namespace prefix is ignored here too.
            fn of(qualified: &str) -> Tag {
                let known = |name: &str| match name {
                    $($name => Some(Tag::$variant),)*
                    _ => None,
                };
                known(qualified)
                    .or_else(|| known(qualified.rsplit_once(':')?.1))
                    .unwrap_or_else(|| Tag::Other(qualified.into()))
            }

            fn name(&self) -> &str {
                match self {
                    $(Tag::$variant => $name,)*
                    Tag::Other(name) => name,
                }
            }
        }
    };
}

tags! {
    MethodCall = "methodCall", MethodName = "methodName", Params = "params", Param = "param",
    Value = "value", String = "string", Int = "int", I4 = "i4", I8 = "i8",
    Boolean = "boolean", Double = "double", DateTime = "dateTime.iso8601", Base64 = "base64",
    Array = "array", Data = "data", Struct = "struct", Member = "member", Name = "name",
    Nil = "nil",
}

/// What the grammar sees: quick-xml's events with character data merged into one run
/// (Xmlm's `Data`), comments and processing instructions dropped, `<x/>` split in two.
#[derive(Debug)]
enum Token<'a> {
    Start(Tag),
    End(Tag),
    Text(Cow<'a, str>),
    /// `<?xml …?>` or `<!DOCTYPE …>`: only allowed before the root element.
    Prolog(&'static str),
    Eof,
}

fn describe(token: &Token<'_>) -> String {
    match token {
        Token::Start(tag) => format!("<{}>", tag.name()),
        Token::End(tag) => format!("</{}>", tag.name()),
        Token::Text(text) => quoted(text),
        Token::Prolog(what) => (*what).to_string(),
        Token::Eof => "end of document".to_string(),
    }
}

fn quoted(text: &str) -> String {
    format!("text {text:?}")
}

/// ocaml-rpc's `is_empty`: text of only these characters between elements is ignored.
/// (A raw CR never gets here: XML line-end normalisation has turned it into LF.)
fn is_blank(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n'))
}

/// One quick-xml event as the tokenizer sees it.
enum Piece<'a> {
    Text(Cow<'a, str>),
    Skip,
    Markup(Token<'a>),
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    /// Returned by [`Parser::peek`] and not consumed yet.
    peeked: Option<Token<'a>>,
    /// The markup that ended a run of character data.
    pending: Option<Token<'a>>,
    /// The end tag owed for an `<x/>` that was reported as a start tag.
    empty_end: Option<Tag>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            reader: Reader::from_str(text),
            peeked: None,
            pending: None,
            empty_end: None,
        }
    }

    fn peek(&mut self) -> Result<&Token<'a>, ParseError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.next()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<Token<'a>, ParseError> {
        if let Some(token) = self.peeked.take().or_else(|| self.pending.take()) {
            return Ok(token);
        }
        if let Some(tag) = self.empty_end.take() {
            return Ok(Token::End(tag));
        }
        let mut text = loop {
            match self.piece()? {
                Piece::Text(text) => break text,
                Piece::Skip => continue,
                Piece::Markup(token) => return Ok(token),
            }
        };
        // Gather the rest of the run, as Xmlm returns it as one `Data`.
        let end = loop {
            match self.piece()? {
                Piece::Text(more) if text.is_empty() => text = more,
                Piece::Text(more) => text.to_mut().push_str(&more),
                Piece::Skip => {}
                Piece::Markup(token) => break token,
            }
        };
        // Xmlm drops an empty run (e.g. an empty CDATA section) altogether.
        if text.is_empty() {
            return Ok(end);
        }
        self.pending = Some(end);
        Ok(Token::Text(text))
    }

    /// Reads one event: character data with line ends normalised and references
    /// resolved, comments and processing instructions to skip, or markup.
    fn piece(&mut self) -> Result<Piece<'a>, ParseError> {
        let event = self.reader.read_event().map_err(|e| {
            let at = self.reader.error_position();
            error("well-formed XML", format!("byte {at}: {e}"))
        })?;
        Ok(match event {
            Event::Text(t) => Piece::Text(t.xml10_content()),
            Event::CData(c) => Piece::Text(c.xml10_content()),
            Event::GeneralRef(r) => Piece::Text(resolve(&r)?),
            Event::Comment(_) => Piece::Skip,
            Event::PI(pi) => {
                check_pi(&pi)?;
                Piece::Skip
            }
            Event::Start(e) => Piece::Markup(Token::Start(Tag::of(e.name().as_ref()))),
            Event::Empty(e) => {
                let tag = Tag::of(e.name().as_ref());
                self.empty_end = Some(tag.clone());
                Piece::Markup(Token::Start(tag))
            }
            Event::End(e) => Piece::Markup(Token::End(Tag::of(e.name().as_ref()))),
            Event::Decl(decl) => {
                check_decl(&decl)?;
                Piece::Markup(Token::Prolog("<?xml …?>"))
            }
            Event::DocType(_) => Piece::Markup(Token::Prolog("<!DOCTYPE …>")),
            Event::Eof => Piece::Markup(Token::Eof),
        })
    }

    /// Next token that is not ignorable whitespace.
    fn next_significant(&mut self) -> Result<Token<'a>, ParseError> {
        loop {
            match self.next()? {
                Token::Text(t) if is_blank(&t) => continue,
                token => return Ok(token),
            }
        }
    }

    fn expect_start(&mut self, want: Tag) -> Result<(), ParseError> {
        match self.next_significant()? {
            Token::Start(tag) if tag == want => Ok(()),
            other => Err(error(format!("<{}>", want.name()), describe(&other))),
        }
    }

    fn expect_end(&mut self, want: Tag) -> Result<(), ParseError> {
        match self.next_significant()? {
            Token::End(tag) if tag == want => Ok(()),
            other => Err(error(format!("</{}>", want.name()), describe(&other))),
        }
    }

    /// The text of a leaf element whose start tag was just read, verbatim (ocaml-rpc's
    /// `get_data`): surrounding spaces are kept, an empty element gives "".
    fn leaf_text(&mut self, tag: Tag) -> Result<Cow<'a, str>, ParseError> {
        match self.next()? {
            Token::Text(text) => {
                self.expect_end(tag)?;
                Ok(text)
            }
            Token::End(_) => Ok(Cow::Borrowed("")),
            other => Err(error(
                format!("text or </{}>", tag.name()),
                describe(&other),
            )),
        }
    }

    fn call(mut self) -> Result<MethodCall<'a>, ParseError> {
        loop {
            match self.next()? {
                Token::Prolog(_) => continue,
                Token::Text(t) if is_blank(&t) => continue,
                Token::Start(Tag::MethodCall) => break,
                other => return Err(error("<methodCall>", describe(&other))),
            }
        }
        self.expect_start(Tag::MethodName)?;
        let method = self.leaf_text(Tag::MethodName)?;
        self.expect_start(Tag::Params)?;
        let mut params = Vec::new();
        loop {
            match self.next_significant()? {
                Token::End(_) => break,
                Token::Start(Tag::Param) => {
                    self.expect_start(Tag::Value)?;
                    params.push(self.value(1)?);
                    self.expect_end(Tag::Param)?;
                }
                other => return Err(error("<param> or </params>", describe(&other))),
            }
        }
        self.expect_end(Tag::MethodCall)?;
        Ok(MethodCall {
            method,
            chars_ok: params.iter().all(xmlchars::value_ok),
            params,
            invalid_utf8_param: None,
        })
    }

    /// The contents of a `<value>` whose start tag was just read, and its end tag.
    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(error(
                format!("at most {MAX_DEPTH} levels of nested values"),
                "deeper nesting",
            ));
        }
        let value = match self.next()? {
            Token::End(_) => return Ok(Value::String(String::new())),
            Token::Text(text) => {
                // Whitespace before a type element is layout; any other text is the value.
                match self.next()? {
                    Token::Start(tag) if is_blank(&text) => self.typed(tag, depth)?,
                    other => {
                        self.peeked = Some(other);
                        Value::String(text.into_owned())
                    }
                }
            }
            Token::Start(tag) => self.typed(tag, depth)?,
            other => return Err(error("a value or </value>", describe(&other))),
        };
        self.expect_end(Tag::Value)?;
        Ok(value)
    }

    /// The contents and end tag of a type element whose start tag was just read.
    fn typed(&mut self, tag: Tag, depth: usize) -> Result<Value, ParseError> {
        Ok(match tag {
            Tag::String => Value::String(self.leaf_text(Tag::String)?.into_owned()),
            Tag::Int | Tag::I4 | Tag::I8 => {
                let text = self.leaf_text(tag.clone())?;
                let n = parse_int(&text).ok_or_else(|| {
                    error(format!("an integer in <{}>", tag.name()), quoted(&text))
                })?;
                Value::Int(n)
            }
            Tag::Boolean => Value::Bool(self.leaf_text(Tag::Boolean)? == "1"),
            Tag::Double => {
                let text = self.leaf_text(Tag::Double)?;
                Value::Double(
                    parse_float(&text)
                        .ok_or_else(|| error("a number in <double>", quoted(&text)))?,
                )
            }
            Tag::DateTime => Value::DateTime(self.leaf_text(Tag::DateTime)?.into_owned()),
            Tag::Base64 => Value::Base64(self.leaf_text(Tag::Base64)?.into_owned()),
            Tag::Nil => {
                self.expect_end(Tag::Nil)?;
                Value::Nil
            }
            Tag::Array => Value::Array(self.array(depth)?),
            Tag::Struct => Value::Struct(self.members(depth)?),
            other => {
                return Err(error(
                    "a type element (string, int, i4, i8, boolean, double, \
                     dateTime.iso8601, base64, array, struct, nil)",
                    describe(&Token::Start(other)),
                ));
            }
        })
    }

    /// `<array>` contents: nothing at all (`<array/>`), or exactly one `<data>`.
    fn array(&mut self, depth: usize) -> Result<Vec<Value>, ParseError> {
        if matches!(self.peek()?, Token::End(_)) {
            self.next()?;
            return Ok(Vec::new());
        }
        self.expect_start(Tag::Data)?;
        let mut items = Vec::new();
        loop {
            match self.next_significant()? {
                Token::End(_) => break,
                Token::Start(Tag::Value) => items.push(self.value(depth + 1)?),
                other => return Err(error("<value> or </data>", describe(&other))),
            }
        }
        self.expect_end(Tag::Array)?;
        Ok(items)
    }

    /// `<struct>` contents, in document order (duplicates are kept, as ocaml-rpc does).
    fn members(&mut self, depth: usize) -> Result<Vec<(String, Value)>, ParseError> {
        let mut members = Vec::new();
        loop {
            match self.next_significant()? {
                Token::End(_) => return Ok(members),
                Token::Start(Tag::Member) => {
                    self.expect_start(Tag::Name)?;
                    let name = self.leaf_text(Tag::Name)?.into_owned();
                    self.expect_start(Tag::Value)?;
                    let value = self.value(depth + 1)?;
                    self.expect_end(Tag::Member)?;
                    members.push((name, value));
                }
                other => return Err(error("<member> or </struct>", describe(&other))),
            }
        }
    }
}

/// Xmlm's XML declaration (`p_xml_decl`): `version` first, "1.0" or "1.1"; then optionally
/// an `encoding` it knows, then optionally `standalone` "yes" or "no"; nothing else.
/// (quick-xml hands the declaration over unchecked.) The encoding is only checked, not
/// applied: the body is read as UTF-8 (docs/security.md, Fuzzing).
fn check_decl(decl: &BytesDecl<'_>) -> Result<(), ParseError> {
    const ENCODINGS: [&str; 8] = [
        "utf-8",
        "utf-16",
        "utf-16be",
        "utf-16le",
        "iso-8859-1",
        "iso-8859-15",
        "us-ascii",
        "ascii",
    ];
    let bad = |what: &str| error("an XML declaration (version, encoding, standalone)", what);
    // The declaration's text is `xml` and its attributes.
    let mut attributes = Attributes::new(decl, "xml".len());
    attributes.with_checks(false);
    let mut next = || match attributes.next() {
        Some(Ok(a)) => Ok(Some((a.key.as_ref().to_string(), a.value.into_owned()))),
        Some(Err(e)) => Err(bad(&e.to_string())),
        None => Ok(None),
    };
    let mut attr = next()?;
    match &attr {
        Some((k, v)) if k == "version" && (v == "1.0" || v == "1.1") => attr = next()?,
        Some((k, v)) => return Err(bad(&format!("{k}={v:?}"))),
        None => return Err(bad("no version")),
    }
    if let Some((k, v)) = &attr
        && k == "encoding"
    {
        if !ENCODINGS.contains(&v.to_ascii_lowercase().as_str()) {
            return Err(bad(&format!("encoding {v:?}")));
        }
        attr = next()?;
    }
    if let Some((k, v)) = &attr
        && k == "standalone"
    {
        if v != "yes" && v != "no" {
            return Err(bad(&format!("standalone {v:?}")));
        }
        attr = next()?;
    }
    match attr {
        None => Ok(()),
        Some((k, _)) => Err(bad(&k)),
    }
}

/// A processing instruction needs a target that starts like an XML name (Xmlm reads it
/// with `p_qname`, then skips everything to `?>`).
fn check_pi(pi: &BytesPI<'_>) -> Result<(), ParseError> {
    match pi.target().chars().next() {
        Some(c) if is_name_start(c) => Ok(()),
        _ => Err(error(
            "a processing instruction target",
            format!("<?{}", pi.target()),
        )),
    }
}

/// XML's `NameStartChar`.
fn is_name_start(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// The five predefined entities and character references (only XML characters), like Xmlm.
fn resolve<'a>(r: &BytesRef<'a>) -> Result<Cow<'a, str>, ParseError> {
    let bad = || {
        error(
            "a known entity or character reference",
            format!("&{};", &**r),
        )
    };
    match r.resolve_char_ref() {
        Ok(Some(c)) if is_xml_char(c) => Ok(Cow::Owned(c.to_string())),
        Ok(Some(_)) | Err(_) => Err(bad()),
        Ok(None) => Ok(Cow::Borrowed(match &**r {
            "lt" => "<",
            "gt" => ">",
            "amp" => "&",
            "apos" => "'",
            "quot" => "\"",
            _ => return Err(bad()),
        })),
    }
}

/// XML's `Char` production, which Xmlm enforces for character references.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// OCaml's `Int64.of_string`, which ocaml-rpc uses: optional sign, `0x`/`0o`/`0b`/`0u`
/// prefixes, `_` between digits; decimal must fit in int64, other bases may use all 64
/// bits (`0xFFFFFFFFFFFFFFFF` is -1). No surrounding whitespace.
fn parse_int(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let (negative, mut i) = match bytes.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let (base, signed) = match (bytes.get(i), bytes.get(i + 1)) {
        (Some(b'0'), Some(b'x' | b'X')) => (16, false),
        (Some(b'0'), Some(b'o' | b'O')) => (8, false),
        (Some(b'0'), Some(b'b' | b'B')) => (2, false),
        (Some(b'0'), Some(b'u' | b'U')) => (10, false),
        _ => (10, true),
    };
    if !signed {
        i += 2;
    }
    let digit = |b: u8| (b as char).to_digit(base).map(u64::from);
    let mut n = digit(*bytes.get(i)?)?;
    for &b in &bytes[i + 1..] {
        if b != b'_' {
            n = n.checked_mul(base.into())?.checked_add(digit(b)?)?;
        }
    }
    if signed && n > (1u64 << 63) - u64::from(!negative) {
        return None;
    }
    let n = n as i64;
    Some(if negative { n.wrapping_neg() } else { n })
}

/// OCaml's `float_of_string` as ocaml-rpc uses it: `_` ignored, leading whitespace
/// allowed (C's `strtod`), trailing text refused; `inf`, `nan` and exponents accepted.
fn parse_float(text: &str) -> Option<f64> {
    let text: Cow<str> = if text.contains('_') {
        Cow::Owned(text.replace('_', ""))
    } else {
        Cow::Borrowed(text)
    };
    text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r'])
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------
// Writing

const XML_DECL: &[u8] = b"<?xml version=\"1.0\"?>";
const ENVELOPE_HEAD: &[u8] = b"<methodResponse><params><param><value><struct>\
    <member><name>Status</name><value>";
const ENVELOPE_TAIL: &[u8] = b"</member></struct></value></param></params></methodResponse>";

/// Writes a whole response: xapi's `Status`/`Value` or `Status`/`ErrorDescription` struct.
pub fn write_response(out: &mut Vec<u8>, result: &Result<Value, ApiError>) {
    match result {
        Ok(value) => {
            write_success_head(out);
            write_value(out, value);
            write_success_tail(out);
        }
        Err(err) => {
            out.extend_from_slice(XML_DECL);
            out.extend_from_slice(ENVELOPE_HEAD);
            out.extend_from_slice(
                b"Failure</value></member><member><name>ErrorDescription</name>\
                  <value><array><data>",
            );
            for item in err.description() {
                write_string(out, &item);
            }
            out.extend_from_slice(b"</data></array></value>");
            out.extend_from_slice(ENVELOPE_TAIL);
        }
    }
}

/// What a success response holds before its value (a reply's buffer is lent to the call
/// with this written: `wire::encode::ReplyBuffer`).
pub fn write_success_head(out: &mut Vec<u8>) {
    out.extend_from_slice(XML_DECL);
    out.extend_from_slice(ENVELOPE_HEAD);
    out.extend_from_slice(b"Success</value></member><member><name>Value</name>");
}

/// What a success response holds after its value.
pub fn write_success_tail(out: &mut Vec<u8>) {
    out.extend_from_slice(ENVELOPE_TAIL);
}

/// Writes a response carrying `value` without the Status struct; xapi answers
/// `system.listMethods` this way over XML-RPC.
pub fn write_bare(out: &mut Vec<u8>, value: &Value) {
    out.extend_from_slice(XML_DECL);
    out.extend_from_slice(b"<methodResponse><params><param>");
    write_value(out, value);
    out.extend_from_slice(b"</param></params></methodResponse>");
}

/// `<value>…</value>` as a String: xapi stores this text in `task.result`.
pub fn value_fragment(value: &Value) -> String {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value);
    // Escaping only drops ASCII control bytes and adds ASCII, so the bytes stay UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends one `<value>…</value>` as ocaml-rpc writes it in non-strict mode.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    value.encode(&mut XmlEncoder { out });
}

/// The XML-RPC [`Encoder`]: every value, whether from a tree or straight from a row, is
/// written by these methods.
pub struct XmlEncoder<'a> {
    pub out: &'a mut Vec<u8>,
}

impl Encoder for XmlEncoder<'_> {
    fn string(&mut self, s: &str) {
        write_string(self.out, s);
    }
    fn plain_string(&mut self, s: &str) {
        debug_assert!(is_plain(s), "{s:?}");
        self.out.extend_from_slice(b"<value>");
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"</value>");
    }
    fn int(&mut self, i: i64) {
        self.out.extend_from_slice(b"<value>");
        write_int(self.out, i);
        self.out.extend_from_slice(b"</value>");
    }
    fn int32(&mut self, i: i32) {
        self.out.extend_from_slice(b"<value><i4>");
        write_int(self.out, i64::from(i));
        self.out.extend_from_slice(b"</i4></value>");
    }
    fn bool(&mut self, b: bool) {
        self.out.extend_from_slice(if b {
            b"<value><boolean>1</boolean></value>"
        } else {
            b"<value><boolean>0</boolean></value>"
        });
    }
    fn double(&mut self, d: f64) {
        self.out.extend_from_slice(b"<value><double>");
        // `%.16g` prints whole numbers below 10^15 as plain integers; taking that path
        // directly spares the general formatter for the usual progress values 0 and 1.
        if let Some(i) = whole(d) {
            write_int(self.out, i);
        } else {
            self.out.extend_from_slice(format_g16(d).as_bytes());
        }
        self.out.extend_from_slice(b"</double></value>");
    }
    fn date_time(&mut self, s: &str) {
        self.out.extend_from_slice(b"<value><dateTime.iso8601>");
        escape(self.out, s);
        self.out.extend_from_slice(b"</dateTime.iso8601></value>");
    }
    fn plain_date_time(&mut self, s: &str) {
        debug_assert!(is_plain(s), "{s:?}");
        self.out.extend_from_slice(b"<value><dateTime.iso8601>");
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"</dateTime.iso8601></value>");
    }
    fn base64(&mut self, s: &str) {
        self.out.extend_from_slice(b"<value><base64>");
        escape(self.out, s);
        self.out.extend_from_slice(b"</base64></value>");
    }
    fn nil(&mut self) {
        self.out.extend_from_slice(b"<value><nil/></value>");
    }
    fn begin_array(&mut self) {
        self.out.extend_from_slice(b"<value><array><data>");
    }
    fn end_array(&mut self) {
        self.out.extend_from_slice(b"</data></array></value>");
    }
    fn begin_struct(&mut self) {
        self.out.extend_from_slice(b"<value><struct>");
    }
    fn member(&mut self, name: &str) {
        self.out.extend_from_slice(b"<member><name>");
        escape(self.out, name);
        self.out.extend_from_slice(b"</name>");
    }
    fn static_member(&mut self, name: &'static str) {
        debug_assert!(!name.bytes().any(|b| ESCAPES[usize::from(b)] != 0));
        self.out.extend_from_slice(b"<member><name>");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"</name>");
    }
    fn known_member(&mut self, member: &KnownMember) {
        self.out.extend_from_slice(member.xml());
    }
    fn end_member(&mut self) {
        self.out.extend_from_slice(b"</member>");
    }
    fn end_struct(&mut self) {
        self.out.extend_from_slice(b"</struct></value>");
    }
    fn encoded(&mut self, codec: Codec, bytes: &[u8]) {
        // The dispatcher encodes only for the codec the request named, which is this one.
        debug_assert_eq!(codec, Codec::XmlRpc);
        if codec == Codec::XmlRpc {
            self.out.extend_from_slice(bytes);
        } else {
            self.string("");
        }
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    // Most of a record's strings are empty: one copy, no scan.
    if s.is_empty() {
        out.extend_from_slice(b"<value></value>");
        return;
    }
    out.extend_from_slice(b"<value>");
    escape(out, s);
    out.extend_from_slice(b"</value>");
}

/// Per byte: 0 copy, 1 drop, [`MAYBE_NONCHAR`] look closer, otherwise the index into
/// `ENTITIES` plus 2.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = 1;
        b += 1;
    }
    table[b'\t' as usize] = 0;
    table[b'\n' as usize] = 0;
    table[b'\r' as usize] = 0;
    table[b'&' as usize] = 2;
    table[b'<' as usize] = 3;
    table[b'>' as usize] = 4;
    table[b'"' as usize] = 5;
    table[0xEF] = MAYBE_NONCHAR;
    table
};
/// Whether `ESCAPES` does anything with a byte (the vector form of the scan).
const fn needs_escape(b: u8) -> bool {
    is_control(b) | (b == b'&') | (b == b'<') | (b == b'>') | (b == b'"') | (b == 0xEF)
}
const NEEDS_ESCAPE: scan::Table = scan::table!(needs_escape);

/// The lead byte of U+F000–U+FFFF, among them U+FFFE and U+FFFF (`EF BF BE`, `EF BF BF`),
/// the two characters above U+001F that XML 1.0 cannot carry at all.
const MAYBE_NONCHAR: u8 = 6;
const ENTITIES: [&[u8]; 4] = [b"&amp;", b"&lt;", b"&gt;", b"&quot;"];

/// ocaml-rpc's `encode_buf`: escapes `& < > "`, silently drops control bytes other than
/// TAB/LF/CR (XML cannot carry them), copies everything else (UTF-8 included) raw. Also
/// drops U+FFFE and U+FFFF, which ocaml-rpc copies: the dispatcher refuses them on the
/// way in (`wire::xmlchars`), so only data stored before that rule can hold them, and a
/// reply is never malformed XML whatever the tables hold.
fn escape(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let Some(first) = scan::find(bytes, needs_escape, &NEEDS_ESCAPE) else {
        out.extend_from_slice(bytes);
        return;
    };
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        let action = ESCAPES[b as usize];
        if action == MAYBE_NONCHAR {
            if let [0xBF, 0xBE | 0xBF, ..] = bytes[i + 1..] {
                out.extend_from_slice(&bytes[copied..i]);
                copied = i + 3;
            }
        } else if action != 0 {
            out.extend_from_slice(&bytes[copied..i]);
            if action > 1 {
                out.extend_from_slice(ENTITIES[usize::from(action - 2)]);
            }
            copied = i + 1;
        }
    }
    out.extend_from_slice(&bytes[copied..]);
}

#[path = "xmlrpc_fast.rs"]
mod fast;

#[cfg(test)]
#[path = "xmlrpc_tests.rs"]
mod tests;
