//! JSON documents written straight into a buffer, byte for byte as serde_json writes the
//! same document held as a `serde_json::Value`: compact, each object's members in key
//! order (serde_json's map is a `BTreeMap`).
//!
//! The REST faces describe resources as `serde_json::Value`s (`json!`). For the ones that
//! clients poll (a Redfish Task, an LXCA job), building that tree, serializing it and
//! dropping it cost more than the rest of the request together; an [`Object`] writes the
//! document directly. Callers give members in key order (debug builds check it); strings
//! go through serde_json's own writer unless they hold nothing it escapes, so the bytes
//! are serde_json's.

use crate::wire::scan;

/// What serde_json escapes in a string: `"`, `\` and control characters.
const fn escaped(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}
const ESCAPED: scan::Table = scan::table!(escaped);

/// Whether serde_json writes `s` as it is (nothing in it is escaped).
pub fn plain(s: &str) -> bool {
    scan::find(s.as_bytes(), escaped, &ESCAPED).is_none()
}

/// The JSON string of `parts` joined, each known to be [`plain`]: our literals, and texts
/// the caller scanned once where a document repeats them (a Redfish Task's uuid is in
/// eight of its strings). Debug builds check.
pub fn plain_string_of(out: &mut Vec<u8>, parts: &[&str]) {
    debug_assert!(parts.iter().all(|p| plain(p)), "{parts:?} needs escaping");
    out.push(b'"');
    for p in parts {
        out.extend_from_slice(p.as_bytes());
    }
    out.push(b'"');
}

/// A JSON string as serde_json writes it.
pub fn string(out: &mut Vec<u8>, s: &str) {
    string_of(out, &[s]);
}

/// The JSON string of `parts` joined, without joining them first (URIs, dates).
pub fn string_of(out: &mut Vec<u8>, parts: &[&str]) {
    if parts.iter().all(|p| plain(p)) {
        out.push(b'"');
        for p in parts {
            out.extend_from_slice(p.as_bytes());
        }
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, &parts.concat()).expect("writing to a Vec cannot fail");
    }
}

/// A `serde_json::Value` as `serde_json::to_vec` writes it (compact; objects in key
/// order), with [`string`]'s fast path for the strings.
pub fn value(out: &mut Vec<u8>, v: &serde_json::Value) {
    use serde_json::Value as Json;
    match v {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Json::Number(n) => {
            serde_json::to_writer(&mut *out, n).expect("writing to a Vec cannot fail")
        }
        Json::String(s) => string(out, s),
        Json::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value(out, item);
            }
            out.push(b']');
        }
        Json::Object(members) => {
            out.push(b'{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, k);
                out.push(b':');
                value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// [`value`] into a new buffer.
pub fn to_vec(v: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    value(&mut out, v);
    out
}

/// An object being written: `{`, members, `}`.
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    members: usize,
    #[cfg(debug_assertions)]
    last: String,
}

impl<'a> Object<'a> {
    /// Writes the object `f` fills into `out`.
    pub fn write(out: &'a mut Vec<u8>, f: impl FnOnce(&mut Object<'_>)) {
        out.push(b'{');
        let mut o = Object {
            out,
            members: 0,
            #[cfg(debug_assertions)]
            last: String::new(),
        };
        f(&mut o);
        o.out.push(b'}');
    }

    /// Keys are the faces' own literals (`&'static`), plain ASCII that serde_json writes
    /// unescaped: they are copied without the escape scan (debug builds check).
    fn key(&mut self, key: &'static str) {
        #[cfg(debug_assertions)]
        {
            assert!(
                self.members == 0 || self.last.as_str() < key,
                "{key} after {}: members must come in key order",
                self.last
            );
            self.last = key.to_string();
        }
        if self.members > 0 {
            self.out.push(b',');
        }
        self.members += 1;
        debug_assert!(plain(key), "{key:?} needs escaping");
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    pub fn str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        string(self.out, value);
    }

    /// A string member made of `parts`.
    pub fn str_of(&mut self, key: &'static str, parts: &[&str]) {
        self.key(key);
        string_of(self.out, parts);
    }

    /// A string member made of [`plain`] `parts` ([`plain_string_of`]).
    pub fn plain_of(&mut self, key: &'static str, parts: &[&str]) {
        self.key(key);
        plain_string_of(self.out, parts);
    }

    pub fn int(&mut self, key: &'static str, value: i64) {
        self.key(key);
        // serde_json's own integer writer: its digits, without a `String` per number.
        serde_json::to_writer(&mut *self.out, &value).expect("writing to a Vec cannot fail");
    }

    pub fn bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    pub fn object(&mut self, key: &'static str, f: impl FnOnce(&mut Object<'_>)) {
        self.key(key);
        Object::write(self.out, f);
    }

    pub fn array(&mut self, key: &'static str, f: impl FnOnce(&mut Array<'_>)) {
        self.key(key);
        Array::write(self.out, f);
    }
}

/// An array being written: `[`, items, `]`.
pub struct Array<'a> {
    out: &'a mut Vec<u8>,
    items: usize,
}

impl<'a> Array<'a> {
    pub fn write(out: &'a mut Vec<u8>, f: impl FnOnce(&mut Array<'_>)) {
        out.push(b'[');
        let mut a = Array { out, items: 0 };
        f(&mut a);
        a.out.push(b']');
    }

    fn item(&mut self) {
        if self.items > 0 {
            self.out.push(b',');
        }
        self.items += 1;
    }

    pub fn str(&mut self, value: &str) {
        self.item();
        string(self.out, value);
    }

    /// An item made of [`plain`] `parts` ([`plain_string_of`]).
    pub fn plain_of(&mut self, parts: &[&str]) {
        self.item();
        plain_string_of(self.out, parts);
    }

    pub fn object(&mut self, f: impl FnOnce(&mut Object<'_>)) {
        self.item();
        Object::write(self.out, f);
    }

    /// An item that is a `serde_json::Value` (written by serde_json).
    pub fn json(&mut self, value: &serde_json::Value) {
        self.item();
        serde_json::to_writer(&mut *self.out, value).expect("writing to a Vec cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_what_serde_json_writes() {
        let mut out = Vec::new();
        Object::write(&mut out, |o| {
            o.str_of("@odata.id", &["/", "x"]);
            o.str_of("@q", &["q\"", "b"]);
            o.array("A", |a| {
                a.str("plain");
                a.str("q\"b\\s\n\u{1}\u{7f}é");
                a.object(|m| m.int("n", -3));
                a.json(&json!({"z": 1, "y": [null]}));
            });
            o.bool("B", true);
            o.object("C", |c| c.bool("f", false));
            o.object("E", |_| {});
            o.array("F", |_| {});
        });
        let value = json!({
            "@odata.id": "/x",
            "@q": "q\"b",
            "A": ["plain", "q\"b\\s\n\u{1}\u{7f}é", {"n": -3}, {"z": 1, "y": [null]}],
            "B": true,
            "C": {"f": false},
            "E": {},
            "F": [],
        });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let v = json!({
            "b": [1, -2, 3.5, 1e300, null, true, false, "x\u{0}\"\\\u{1f}é"],
            "a": {"z": {}, "y": [], "x\n": "plain"},
            "@c": 18446744073709551615u64,
            "": "",
        });
        assert_eq!(to_vec(&v), serde_json::to_vec(&v).unwrap());
        assert_eq!(to_vec(&json!("just a string")), b"\"just a string\"");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "members must come in key order")]
    fn members_out_of_order_are_a_bug() {
        Object::write(&mut Vec::new(), |o| {
            o.str("b", "");
            o.str("a", "");
        });
    }
}
