//! Which characters a string may hold: the one rule for every way a string gets in
//! (XML-RPC, JSON-RPC, Redfish and any later face all reach `api::dispatch`, which applies
//! it beside the UTF-8 check).
//!
//! The rule is xapi's: its generated dispatcher refuses a call when any parameter fails
//! `Xapi_stdext_encodings.Encodings.UTF8_XML.is_valid`, with `INVALID_VALUE ["Invalid
//! UTF-8 string in parameter"; <param>]`. That validator refuses
//! - control characters XML 1.0 cannot carry (below U+0020 except TAB, LF and CR), and
//! - Unicode non-characters: U+FDD0–U+FDEF and every code point whose low 16 bits are
//!   FFFE or FFFF (U+FFFE, U+FFFF, U+1FFFE, … U+10FFFF).
//!
//! XML 1.0's `Char` production excludes only U+FFFE and U+FFFF of the non-characters, so
//! the rule is a little stricter than XML needs; it is what xapi accepts, and every
//! string it lets in can be written as XML and read back by any XML parser (expat,
//! Xmlm, quick-xml). Surrogates cannot occur in a Rust string (serde_json refuses lone
//! `\uD800` escapes).
//!
//! Data stored before this rule (or by a future path that forgets it) is still never
//! written as malformed XML: the XML-RPC writer drops what XML cannot carry.

use crate::wire::value::Value;

/// Whether xapi's `UTF8_XML` validator accepts this character.
pub fn allowed(c: char) -> bool {
    let v = u32::from(c);
    if v < 0x20 {
        return matches!(c, '\t' | '\n' | '\r');
    }
    !((0xFDD0..=0xFDEF).contains(&v) || v & 0xFFFE == 0xFFFE)
}

/// Whether every character of `s` is [`allowed`]. Only bytes below 0x20 and lead bytes
/// of U+F000 and above (0xEF, 0xF0–0xF4) can start a refused character, so the common
/// case is a byte scan.
pub fn string_ok(s: &str) -> bool {
    let suspect = |b: u8| !(0x20..0xEF).contains(&b);
    if !s.bytes().any(suspect) {
        return true;
    }
    s.chars().all(allowed)
}

/// Whether every string inside `v` (struct member names included) passes [`string_ok`].
/// Values are depth-bounded by the readers, so the recursion is too.
pub fn value_ok(v: &Value) -> bool {
    match v {
        Value::String(s) | Value::DateTime(s) | Value::Base64(s) => string_ok(s),
        Value::Array(items) => items.iter().all(value_ok),
        Value::Struct(members) => members.iter().all(|(k, v)| string_ok(k) && value_ok(v)),
        Value::Int(_) | Value::Int32(_) | Value::Bool(_) | Value::Double(_) | Value::Nil => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_xapis_utf8_xml_validator() {
        for c in [
            '\t', '\n', '\r', ' ', 'é', '\u{D7FF}', '\u{E000}', '\u{FFFD}',
        ] {
            assert!(allowed(c), "{c:?}");
        }
        for c in [
            '\u{10000}',
            '\u{1F600}',
            '\u{FDCF}',
            '\u{FDF0}',
            '\u{10FFFD}',
        ] {
            assert!(allowed(c), "{c:?}");
        }
        for c in [
            '\0', '\u{1}', '\u{1F}', '\u{FFFE}', '\u{FFFF}', '\u{FDD0}', '\u{FDEF}',
        ] {
            assert!(!allowed(c), "{c:?}");
        }
        for c in ['\u{1FFFE}', '\u{2FFFF}', '\u{10FFFE}', '\u{10FFFF}'] {
            assert!(!allowed(c), "{c:?}");
        }
    }

    #[test]
    fn strings_and_values() {
        assert!(string_ok("plain ascii, tabs\tand\nlines"));
        assert!(string_ok("CJK 漢字 and U+F900 豈 and emoji 😀"));
        assert!(!string_ok("label\u{FFFF}"));
        assert!(!string_ok("\u{FFFE}"));
        assert!(!string_ok("bell\u{7}"));
        let nested = Value::Struct(vec![(
            "k".into(),
            Value::Array(vec![Value::str("ok"), Value::str("x\u{FFFE}")]),
        )]);
        assert!(!value_ok(&nested));
        let bad_key = Value::Struct(vec![("k\u{FFFF}".into(), Value::str("v"))]);
        assert!(!value_ok(&bad_key));
        assert!(value_ok(&Value::Struct(vec![(
            "k".into(),
            Value::Array(vec![Value::Int(1), Value::Nil, Value::str("v")])
        )])));
    }
}
