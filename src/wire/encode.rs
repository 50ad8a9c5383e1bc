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
//! [`Value`] to look into (filters, events). [`ViewEncoder`] writes a compact form that
//! [`ViewReader`] reads back piece by piece, borrowing its strings: the REST faces read a
//! record's few fields they map from it, without a tree of some forty allocations.

use crate::wire::value::Value;

/// Which codec will write a reply: a request's XML-RPC or JSON-RPC face tells the
/// dispatcher, so that it can hand back a record already in that form
/// ([`Value::Encoded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    XmlRpc,
    JsonRpc,
    /// Not a wire format: [`ViewEncoder`]'s pieces, for callers inside the server that
    /// read the value ([`ViewReader`]) rather than send it.
    View,
}

/// A codec's writer, driven piece by piece. A struct is `begin_struct`, then for each
/// member `member` (or `static_member`), the member's value, `end_member`; then
/// `end_struct`.
pub trait Encoder {
    fn string(&mut self, s: &str);
    /// A string that holds, by construction, only ASCII letters, digits and `-:.+_` (a
    /// ref, a uuid, an enum's name): nothing any codec escapes, so its writer may copy it
    /// without the escape scan. Free text always goes through [`Encoder::string`].
    fn plain_string(&mut self, s: &str) {
        self.string(s);
    }
    /// XAPI's `int` (64 bits).
    fn int(&mut self, i: i64);
    fn int32(&mut self, i: i32);
    fn bool(&mut self, b: bool);
    fn double(&mut self, d: f64);
    /// A date-time as its wire text (`20240101T12:00:00Z`).
    fn date_time(&mut self, s: &str);
    /// A date-time formatted by the server (`api::record`'s dates): plain ASCII, as for
    /// [`Encoder::plain_string`].
    fn plain_date_time(&mut self, s: &str) {
        self.date_time(s);
    }
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
    /// [`Encoder::static_member`] with the member's head already written in this codec
    /// ([`KnownMember`]): one copy instead of a few pieces per member of every record.
    fn known_member(&mut self, member: &KnownMember) {
        self.static_member(member.name);
    }
    fn end_member(&mut self);
    fn end_struct(&mut self);
    /// Bytes this codec wrote earlier ([`Value::Encoded`]).
    fn encoded(&mut self, codec: Codec, bytes: &[u8]);
}

/// Whether `s` is what [`Encoder::plain_string`] may be given (checked in debug builds).
pub fn is_plain(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'.' | b'+' | b'_'))
}

/// A datamodel member name with the head each wire codec writes for it
/// (`<member><name>uuid</name>`, `"uuid":`), written once by that codec's own
/// `static_member`, so the bytes are the same by construction. Records' layouts
/// (`api::record`) hold one per field.
pub struct KnownMember {
    pub name: &'static str,
    xml: Box<[u8]>,
    json: Box<[u8]>,
}

impl KnownMember {
    pub fn new(name: &'static str) -> KnownMember {
        let mut xml = Vec::new();
        crate::wire::xmlrpc::XmlEncoder { out: &mut xml }.static_member(name);
        let mut json = Vec::new();
        crate::wire::jsonrpc::JsonEncoder::new(&mut json).static_member(name);
        KnownMember {
            name,
            xml: xml.into(),
            json: json.into(),
        }
    }

    /// The XML-RPC head.
    pub fn xml(&self) -> &[u8] {
        &self.xml
    }

    /// The JSON-RPC head (without the comma that may come before it).
    pub fn json(&self) -> &[u8] {
        &self.json
    }
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

/// A reply's buffer, lent by the server to the call it answers, with the envelope's head
/// already written: a record that is the call's whole result (`get_record`) is written
/// straight after it ([`ReplyBuffer::write`]) and the server ends the envelope around it,
/// instead of the record being written into a buffer of its own and copied into the
/// reply. The call then answers `Value::Encoded(codec, empty)`, which stands for "in the
/// reply's buffer". A clone is lent nothing (an `Async.` call's task keeps its result as
/// a value), and neither is a call from a REST face or a test.
///
/// A call that waits long (`event.from`) gives the buffer back before it sleeps
/// ([`ReplyBuffer::release`]): ten thousand held watchers would otherwise hold ten
/// thousand empty reply buffers. A call whose whole reply body is already written and
/// shared (a fan-out's XML-RPC batch, the same bytes for every waiter) hands that back
/// instead of a result ([`ReplyBuffer::whole`]), and the server sends it as it is.
#[derive(Default)]
pub struct ReplyBuffer(parking_lot::Mutex<Lent>);

#[derive(Default)]
enum Lent {
    #[default]
    Nothing,
    /// The envelope's head, waiting for the result.
    Head(Vec<u8>),
    /// Lent, then given back unused: the server writes the whole reply after the call.
    Released,
    /// The head and the result after it.
    Written(Vec<u8>),
    /// The complete reply body, shared.
    Whole(bytes::Bytes),
}

/// What the server gets back after the call.
pub enum Taken {
    /// The buffer, and whether the call's result is in it after the head (else it is
    /// empty or holds the head only, and the server writes the reply whole).
    Buffer(Vec<u8>, bool),
    /// The complete reply body the call handed back ([`ReplyBuffer::whole`]).
    Whole(bytes::Bytes),
}

impl ReplyBuffer {
    pub fn lend(head: Vec<u8>) -> ReplyBuffer {
        ReplyBuffer(parking_lot::Mutex::new(Lent::Head(head)))
    }

    /// Writes the call's result with `write` straight into the lent buffer; false, with
    /// nothing written, if none was lent or it holds a result already.
    pub fn write(&self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut lent = self.0.lock();
        let Lent::Head(out) = &mut *lent else {
            return false;
        };
        write(out);
        *lent = Lent::Written(std::mem::take(out));
        true
    }

    /// Gives an unused lent buffer back (before a long wait).
    pub fn release(&self) {
        let mut lent = self.0.lock();
        if let Lent::Head(_) = &*lent {
            *lent = Lent::Released;
        }
    }

    /// Hands back `body` as the complete reply, for a server that lent a buffer and has
    /// no result in it yet; false if none was lent (the call then answers a value). The
    /// caller vouches that `body` is byte for byte the reply the server would write for
    /// its result, in the codec of the request.
    pub fn whole(&self, body: bytes::Bytes) -> bool {
        let mut lent = self.0.lock();
        match &*lent {
            Lent::Head(_) | Lent::Released => {
                *lent = Lent::Whole(body);
                true
            }
            Lent::Nothing | Lent::Written(_) | Lent::Whole(_) => false,
        }
    }

    /// For the server, after the call.
    pub fn take(&self) -> Taken {
        match std::mem::take(&mut *self.0.lock()) {
            Lent::Nothing | Lent::Released => Taken::Buffer(Vec::new(), false),
            Lent::Head(out) => Taken::Buffer(out, false),
            Lent::Written(out) => Taken::Buffer(out, true),
            Lent::Whole(body) => Taken::Whole(body),
        }
    }
}

impl Clone for ReplyBuffer {
    fn clone(&self) -> ReplyBuffer {
        ReplyBuffer::default()
    }
}

impl std::fmt::Debug for ReplyBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyBuffer")
    }
}

/// `v` written by `codec`'s encoder, as bytes that can be shared.
pub fn to_codec(codec: Codec, v: &Value) -> bytes::Bytes {
    let mut out = Vec::with_capacity(2048);
    match codec {
        Codec::XmlRpc => v.encode(&mut crate::wire::xmlrpc::XmlEncoder { out: &mut out }),
        Codec::JsonRpc => v.encode(&mut crate::wire::jsonrpc::JsonEncoder::new(&mut out)),
        Codec::View => v.encode(&mut ViewEncoder { out: &mut out }),
    }
    out.into()
}

/// The tags of [`ViewEncoder`]'s pieces. A text piece (string, date, base64, member name)
/// is its tag, its length as 4 bytes little-endian, its UTF-8 bytes; numbers are their
/// tag and 8 bytes (4 for `int32`); the rest are a tag alone.
mod tag {
    pub const STRING: u8 = 1;
    pub const DATE_TIME: u8 = 2;
    pub const BASE64: u8 = 3;
    pub const INT: u8 = 4;
    pub const INT32: u8 = 5;
    pub const FALSE: u8 = 6;
    pub const TRUE: u8 = 7;
    pub const DOUBLE: u8 = 8;
    pub const NIL: u8 = 9;
    pub const BEGIN_ARRAY: u8 = 10;
    pub const END_ARRAY: u8 = 11;
    pub const BEGIN_STRUCT: u8 = 12;
    pub const END_STRUCT: u8 = 13;
    pub const MEMBER: u8 = 14;
    /// Then the codec (0 XML-RPC, 1 JSON-RPC, 2 view), the length and the bytes.
    pub const ENCODED: u8 = 15;
}

/// Writes a value as pieces for [`ViewReader`] (the form of [`Codec::View`]): no
/// escaping and no formatting, only each piece's tag and bytes, so writing a record this
/// way costs little more than copying its strings once.
pub struct ViewEncoder<'a> {
    pub out: &'a mut Vec<u8>,
}

impl ViewEncoder<'_> {
    fn text(&mut self, t: u8, s: &[u8]) {
        // Our values are bounded far below 4 GiB (the body and record limits); a longer
        // one is cut rather than written with a wrong length.
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.out.push(t);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(&s[..len as usize]);
    }
}

impl Encoder for ViewEncoder<'_> {
    fn string(&mut self, s: &str) {
        self.text(tag::STRING, s.as_bytes());
    }
    fn int(&mut self, i: i64) {
        self.out.push(tag::INT);
        self.out.extend_from_slice(&i.to_le_bytes());
    }
    fn int32(&mut self, i: i32) {
        self.out.push(tag::INT32);
        self.out.extend_from_slice(&i.to_le_bytes());
    }
    fn bool(&mut self, b: bool) {
        self.out.push(if b { tag::TRUE } else { tag::FALSE });
    }
    fn double(&mut self, d: f64) {
        self.out.push(tag::DOUBLE);
        self.out.extend_from_slice(&d.to_bits().to_le_bytes());
    }
    fn date_time(&mut self, s: &str) {
        self.text(tag::DATE_TIME, s.as_bytes());
    }
    fn base64(&mut self, s: &str) {
        self.text(tag::BASE64, s.as_bytes());
    }
    fn nil(&mut self) {
        self.out.push(tag::NIL);
    }
    fn begin_array(&mut self) {
        self.out.push(tag::BEGIN_ARRAY);
    }
    fn end_array(&mut self) {
        self.out.push(tag::END_ARRAY);
    }
    fn begin_struct(&mut self) {
        self.out.push(tag::BEGIN_STRUCT);
    }
    fn member(&mut self, name: &str) {
        self.text(tag::MEMBER, name.as_bytes());
    }
    fn end_member(&mut self) {}
    fn end_struct(&mut self) {
        self.out.push(tag::END_STRUCT);
    }
    fn encoded(&mut self, codec: Codec, bytes: &[u8]) {
        self.out.push(tag::ENCODED);
        self.out.push(match codec {
            Codec::XmlRpc => 0,
            Codec::JsonRpc => 1,
            Codec::View => 2,
        });
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(&bytes[..len as usize]);
    }
}

/// A [`Codec::View`] value as a [`Value`] again (for tests and debugging: the point of the
/// view is to read it without this); `None` if the bytes are not one whole value.
pub fn view_value(bytes: &[u8]) -> Option<Value> {
    fn value(r: &mut ViewReader<'_>, first: Piece<'_>) -> Option<Value> {
        Some(match first {
            Piece::String(s) => Value::str(s.as_str()),
            Piece::DateTime(s) => Value::DateTime(s.as_str().into()),
            Piece::Base64(s) => Value::Base64(s.as_str().into()),
            Piece::Int(i) => Value::Int(i),
            Piece::Int32(i) => Value::Int32(i),
            Piece::Bool(b) => Value::Bool(b),
            Piece::Double(d) => Value::Double(d),
            Piece::Nil => Value::Nil,
            // A view within a view (an event's snapshot) reads back as its value.
            Piece::Encoded(Codec::View, b) => view_value(b)?,
            Piece::Encoded(c, b) => Value::Encoded(c, bytes::Bytes::copy_from_slice(b)),
            Piece::BeginArray => {
                let mut items = Vec::new();
                loop {
                    match r.next()? {
                        Piece::EndArray => break,
                        p => items.push(value(r, p)?),
                    }
                }
                Value::Array(items)
            }
            Piece::BeginStruct => {
                let mut members = Vec::new();
                loop {
                    match r.next()? {
                        Piece::EndStruct => break,
                        Piece::Member(name) => {
                            let p = r.next()?;
                            members.push((name.as_str().to_string(), value(r, p)?));
                        }
                        _ => return None,
                    }
                }
                Value::Struct(members)
            }
            Piece::EndArray | Piece::EndStruct | Piece::Member(_) => return None,
        })
    }
    let mut r = ViewReader::new(bytes);
    let first = r.next()?;
    let v = value(&mut r, first)?;
    r.next().is_none().then_some(v)
}

/// A text piece's bytes, borrowed. They were written from a `&str`; [`Text::as_str`]
/// checks that again (no `unsafe`), so a reader pays the check only for the texts it
/// uses, not for member names it compares or values it skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text<'a>(pub &'a [u8]);

impl<'a> Text<'a> {
    pub fn as_str(self) -> &'a str {
        std::str::from_utf8(self.0).unwrap_or_default()
    }
}

/// One piece of a [`Codec::View`] value, its texts borrowed from the bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Piece<'a> {
    String(Text<'a>),
    DateTime(Text<'a>),
    Base64(Text<'a>),
    Int(i64),
    Int32(i32),
    Bool(bool),
    Double(f64),
    Nil,
    BeginArray,
    EndArray,
    BeginStruct,
    EndStruct,
    Member(Text<'a>),
    Encoded(Codec, &'a [u8]),
}

/// Reads [`ViewEncoder`]'s pieces in order. Only the server writes this form, so bytes
/// that are not its pieces (which it never writes) simply end the reading.
#[derive(Debug, Clone)]
pub struct ViewReader<'a> {
    rest: &'a [u8],
}

impl<'a> ViewReader<'a> {
    pub fn new(bytes: &'a [u8]) -> ViewReader<'a> {
        ViewReader { rest: bytes }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            self.rest = &[];
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(len as usize)
    }

    fn text(&mut self) -> Option<Text<'a>> {
        self.bytes().map(Text)
    }

    fn eight(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    /// The rest of a value whose first piece was `first`: nothing for a scalar, up to
    /// and including the matching end for an array or struct.
    pub fn skip_rest(&mut self, first: Piece<'a>) {
        if !matches!(first, Piece::BeginArray | Piece::BeginStruct) {
            return;
        }
        let mut depth = 1usize;
        while depth > 0 {
            match self.next() {
                Some(Piece::BeginArray | Piece::BeginStruct) => depth += 1,
                Some(Piece::EndArray | Piece::EndStruct) => depth -= 1,
                Some(_) => {}
                None => return,
            }
        }
    }
}

impl<'a> Iterator for ViewReader<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let (&t, rest) = self.rest.split_first()?;
        self.rest = rest;
        let piece = match t {
            tag::STRING => Piece::String(self.text()?),
            tag::DATE_TIME => Piece::DateTime(self.text()?),
            tag::BASE64 => Piece::Base64(self.text()?),
            tag::MEMBER => Piece::Member(self.text()?),
            tag::INT => Piece::Int(i64::from_le_bytes(self.eight()?)),
            tag::INT32 => Piece::Int32(i32::from_le_bytes(self.take(4)?.try_into().ok()?)),
            tag::DOUBLE => Piece::Double(f64::from_bits(u64::from_le_bytes(self.eight()?))),
            tag::FALSE => Piece::Bool(false),
            tag::TRUE => Piece::Bool(true),
            tag::NIL => Piece::Nil,
            tag::BEGIN_ARRAY => Piece::BeginArray,
            tag::END_ARRAY => Piece::EndArray,
            tag::BEGIN_STRUCT => Piece::BeginStruct,
            tag::END_STRUCT => Piece::EndStruct,
            tag::ENCODED => {
                let codec = match self.take(1)?[0] {
                    0 => Codec::XmlRpc,
                    1 => Codec::JsonRpc,
                    _ => Codec::View,
                };
                Piece::Encoded(codec, self.bytes()?)
            }
            _ => {
                self.rest = &[];
                return None;
            }
        };
        Some(piece)
    }
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

    #[test]
    fn the_view_reads_back_what_was_written() {
        let v = Value::Struct(vec![
            ("a".into(), Value::Array(vec![Value::Int(-1), Value::Nil])),
            (
                "b\u{e9}\0<&>".into(),
                Value::Struct(vec![("c".into(), Value::DateTime("d".into()))]),
            ),
            ("e".into(), Value::Array(vec![])),
            ("f".into(), Value::Double(-0.5)),
            ("g".into(), Value::Int32(7)),
            ("h".into(), Value::Bool(true)),
            ("i".into(), Value::Bool(false)),
            ("j".into(), Value::Base64("QUI=".into())),
            ("k".into(), Value::str("")),
            ("l".into(), Value::str("\u{1f600} \"quoted\" \\")),
            (
                "m".into(),
                Value::Encoded(Codec::JsonRpc, bytes::Bytes::from_static(b"{}")),
            ),
            ("n".into(), Value::Double(f64::NAN)),
        ]);
        let bytes = to_codec(Codec::View, &v);
        let back = view_value(&bytes).expect("one whole value");
        assert_eq!(view_value(&bytes[..bytes.len() - 1]), None, "cut");
        // NaN is not equal to itself: compare its bits, then the rest.
        let (Value::Struct(mut got), Value::Struct(mut want)) = (back, v) else {
            unreachable!()
        };
        let (Some((_, Value::Double(g))), Some((_, Value::Double(w)))) = (got.pop(), want.pop())
        else {
            panic!("the NaN member")
        };
        assert_eq!(g.to_bits(), w.to_bits());
        assert_eq!(got, want);
    }

    #[test]
    fn skipping_a_value_skips_exactly_it() {
        let v = Value::Array(vec![
            Value::Struct(vec![("x".into(), Value::Array(vec![Value::Int(1)]))]),
            Value::str("after"),
        ]);
        let bytes = to_codec(Codec::View, &v);
        let mut r = ViewReader::new(&bytes);
        assert_eq!(r.next(), Some(Piece::BeginArray));
        let first = r.next().unwrap();
        r.skip_rest(first);
        assert_eq!(r.next(), Some(Piece::String(Text(b"after"))));
        assert_eq!(r.next(), Some(Piece::EndArray));
        assert_eq!(r.next(), None);
        // Cut bytes end the reading instead of misreading.
        let mut cut = ViewReader::new(&bytes[..bytes.len() - 3]);
        assert!(cut.by_ref().count() < 8);
        assert_eq!(cut.next(), None);
    }
}
