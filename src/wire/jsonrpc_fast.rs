//! The common shape of a JSON-RPC call, read straight off the bytes.
//!
//! What clients send is one flat object: `jsonrpc`, `method`, `id` and `params`, the
//! parameters plain strings (refs, labels). For it, serde_json's `Value` (a `BTreeMap`
//! with a `String` per key) and the conversion after it cost more than the rest of the
//! call's own work. This reader accepts only that shape, strings without escapes and
//! integer ids, each key at most once, and returns what the general reader returns;
//! anything else (another key, an escape, a number or object among the parameters, a
//! duplicate, every malformed body) gives `None`, and the general reader reads the body,
//! errors included. A test compares the two on generated bodies.

use std::borrow::Cow;

use super::{Id, JsonCall, Version};
use crate::wire::value::{USUAL_PARAMS, Value};
use crate::wire::{scan, xmlchars};

/// Bytes that end a plain string: its closing quote, or what the general reader must
/// see (an escape, a control character).
const fn string_end(b: u8) -> bool {
    (b == b'"') | (b == b'\\') | (b < 0x20)
}
const STRING_END: scan::Table = scan::table!(string_end);

/// [`string_end`], and the bytes that can start a character the XML character rule
/// refuses (below U+0020 they end a plain string already): what the string scan looks
/// for first, so that the call can vouch for that rule (`JsonCall::chars_ok`).
const fn string_end_or_suspect(b: u8) -> bool {
    string_end(b) | (b >= 0xEF)
}
const STRING_END_OR_SUSPECT: scan::Table = scan::table!(string_end_or_suspect);

/// The call, if the body has the common shape; `None` sends it to the general reader
/// (which also reports every error).
pub(super) fn parse(body: &[u8]) -> Option<JsonCall<'_>> {
    // The body is read to its end and every byte outside a string is ASCII, so a body
    // this reader takes is UTF-8 as a whole: checked once here, each string is then a
    // slice of it (a check per string cost some hundred instructions each, eight a call).
    let text = std::str::from_utf8(body).ok()?;
    let mut c = Cursor {
        s: body,
        text,
        at: 0,
        suspect: false,
    };
    let (mut version, mut method, mut id, mut params) = (None, None, None, None);
    c.ws();
    c.byte(b'{')?;
    loop {
        c.ws();
        let key = c.string()?;
        c.ws();
        c.byte(b':')?;
        c.ws();
        match key {
            "jsonrpc" if version.is_none() => version = Some(c.string()?),
            "method" if method.is_none() => method = Some(c.string()?),
            "id" if id.is_none() => id = Some(c.id()?),
            "params" if params.is_none() => params = Some(c.strings()?),
            _ => return None,
        }
        c.ws();
        match c.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    c.ws();
    if c.at != body.len() {
        return None;
    }
    let version = match version {
        None => Version::V1,
        Some("2.0") => Version::V2,
        Some(_) => return None,
    };
    let params = match (version, params) {
        (_, Some(p)) => p,
        (Version::V2, None) => Vec::new(),
        (Version::V1, None) => return None,
    };
    // The strings hold no control byte (see `string_end`), so unless one held a byte
    // that can start a refused character, every parameter passes the XML character rule
    // without a pass of its own.
    let chars_ok = !c.suspect || params.iter().all(xmlchars::value_ok);
    Some(JsonCall {
        version,
        id: id?,
        method: Cow::Borrowed(method?),
        params,
        chars_ok,
    })
}

struct Cursor<'a> {
    s: &'a [u8],
    /// `s` as text.
    text: &'a str,
    at: usize,
    /// A string held a byte that can start a character the XML character rule refuses
    /// (`xmlchars::string_ok`'s lead bytes 0xEF–0xF4).
    suspect: bool,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.at) {
            self.at += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let b = *self.s.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        // Refs are most of a call's text: the block scan, not a byte loop.
        let start = self.at;
        let mut len = scan::find(
            &self.s[start..],
            string_end_or_suspect,
            &STRING_END_OR_SUSPECT,
        )?;
        if self.s[start + len] >= 0xEF {
            // Rare (U+F000 and above): the call leaves the rule to its own check, and the
            // rest of this string gets the plain scan.
            self.suspect = true;
            len += scan::find(&self.s[start + len..], string_end, &STRING_END)?;
        }
        if self.s[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Between two ASCII quotes: char boundaries.
        self.text.get(start..start + len)
    }

    /// An id: a plain string, or an integer in 18 digits (no sign, no leading zero).
    fn id(&mut self) -> Option<Id> {
        if self.s.get(self.at) == Some(&b'"') {
            return Some(Id::Str(self.string()?.to_string()));
        }
        let start = self.at;
        while let Some(b'0'..=b'9') = self.s.get(self.at) {
            self.at += 1;
        }
        let digits = &self.s[start..self.at];
        if digits.is_empty() || digits.len() > 18 || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        // A digit run followed by anything a number could go on with is not ours.
        if let Some(b'.' | b'e' | b'E' | b'-' | b'+') = self.s.get(self.at) {
            return None;
        }
        let n = digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        Some(Id::Int(n))
    }

    /// `[` plain strings `]`.
    fn strings(&mut self) -> Option<Vec<Value>> {
        self.byte(b'[')?;
        let mut items = Vec::with_capacity(USUAL_PARAMS);
        self.ws();
        if self.s.get(self.at) == Some(&b']') {
            self.at += 1;
            return Some(items);
        }
        loop {
            self.ws();
            items.push(Value::String(self.string()?.to_string()));
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(items),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_call, parse_general};
    use super::parse;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn real_client_bodies_take_the_fast_path() {
        for body in [
            // Xen Orchestra's connector, and the web page.
            &br#"{"id":7,"jsonrpc":"2.0","method":"task.get_record","params":["OpaqueRef:a","OpaqueRef:b"]}"#[..],
            // The XenAPI SDK's JSON-RPC transport (v1-style).
            br#"{"method": "session.login_with_password", "params": ["root", "pw"], "id": "1"}"#,
        ] {
            let fast = parse(body).expect("fast path");
            assert_eq!(Ok(fast), parse_general(body));
        }
    }

    /// The fast reader vouches for the XML character rule (`chars_ok`) only when no
    /// parameter can break it: a refused character anywhere in a parameter is not
    /// vouched for (and the dispatcher then refuses the call), an allowed character with
    /// the same lead byte is, and so is a call whose only such byte is in its method name.
    #[test]
    fn vouches_for_the_character_rule_only_when_it_holds() {
        let long = "x".repeat(40);
        for (method, param, ok) in [
            ("task.get_record", "OpaqueRef:b".to_string(), true),
            ("task.get_record", "\u{FFFF}".to_string(), false),
            ("task.get_record", format!("{long}\u{FFFE}{long}"), false),
            ("task.get_record", format!("{long}\u{FDEF}"), false),
            ("task.get_record", "豈 😀 \u{10FFFD}".to_string(), true),
            ("task.get_record", "\u{10FFFF}".to_string(), false),
            ("task.get_\u{FFFF}", "b".to_string(), true),
        ] {
            let body = format!(
                r#"{{"id":7,"jsonrpc":"2.0","method":"{method}","params":["OpaqueRef:a","{param}"]}}"#
            );
            let fast = parse(body.as_bytes()).expect("fast path");
            assert_eq!(fast.chars_ok, ok, "{body:?}");
            assert_eq!(Ok(fast), parse_general(body.as_bytes()), "{body:?}");
        }
    }

    /// Generated bodies, well-formed or not: whenever the fast reader accepts one, the
    /// general reader gives the same call; and the entry point always agrees with it.
    #[test]
    fn agrees_with_the_general_reader() {
        let mut rng = StdRng::seed_from_u64(16);
        let mut accepted = 0;
        let total = 20_000;
        for _ in 0..total {
            let body = body(&mut rng);
            if let Some(fast) = parse(body.as_bytes()) {
                accepted += 1;
                assert_eq!(Ok(fast), parse_general(body.as_bytes()), "{body}");
            }
            assert_eq!(
                parse_call(body.as_bytes()),
                parse_general(body.as_bytes()),
                "{body}"
            );
        }
        assert!(
            accepted > total / 10 && accepted < total * 9 / 10,
            "{accepted}/{total}"
        );
    }

    fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
        items[rng.random_range(0..items.len())]
    }

    fn ws(rng: &mut StdRng) -> &'static str {
        pick(rng, &["", "", "", " ", "\n  ", "\t", "\r\n"])
    }

    fn string(rng: &mut StdRng) -> String {
        // With lead bytes the XML character rule looks at: allowed (U+F900, U+1F600) and
        // refused (U+FFFF, U+FDD0), which the call must not vouch for.
        let plain = [
            "a",
            "OpaqueRef:0f",
            " ",
            "é€",
            "task.get_record",
            "",
            "1",
            "豈😀",
            "\u{FFFF}",
            "\u{FDD0}",
        ];
        let odd = ["\\\"", "\\n", "\\u00e9", "\\/", "\u{1}"];
        let n = rng.random_range(0..3);
        let text: String = (0..n)
            .map(|_| {
                if rng.random_range(0..20) == 0 {
                    pick(rng, &odd)
                } else {
                    pick(rng, &plain)
                }
            })
            .collect();
        format!("\"{text}\"")
    }

    fn value(rng: &mut StdRng) -> String {
        match rng.random_range(0..24) {
            0 => pick(rng, &["1", "-2", "0.5", "1e3", "01", "true", "null"]).to_string(),
            1 => "{\"a\":\"b\"}".to_string(),
            2 => "[\"x\"]".to_string(),
            _ => string(rng),
        }
    }

    fn body(rng: &mut StdRng) -> String {
        let mut members = Vec::new();
        if rng.random_range(0..4) > 0 {
            members.push(format!(
                "\"jsonrpc\":{}",
                pick(rng, &["\"2.0\"", "\"2.0\"", "\"2.0\"", "\"1.0\"", "2"])
            ));
        }
        if rng.random_range(0..20) > 0 {
            members.push(format!("\"method\":{}", string(rng)));
        }
        if rng.random_range(0..20) > 0 {
            let id = match rng.random_range(0..8) {
                0 => string(rng),
                1 => pick(
                    rng,
                    &[
                        "null",
                        "1.5",
                        "-1",
                        "007",
                        "1e2",
                        "123456789012345678901",
                        "{}",
                    ],
                )
                .to_string(),
                _ => rng.random_range(0..100_000).to_string(),
            };
            members.push(format!("\"id\":{id}"));
        }
        if rng.random_range(0..10) > 0 {
            let params = match rng.random_range(0..12) {
                0 => pick(
                    rng,
                    &["null", "{}", "{\"k\":\"v\",\"a\":[1]}", "\"s\"", "7"],
                )
                .to_string(),
                _ => {
                    let n = rng.random_range(0..4);
                    let items: Vec<String> = (0..n).map(|_| value(rng)).collect();
                    format!("[{}]", items.join(&format!(",{}", ws(rng))))
                }
            };
            members.push(format!("\"params\":{params}"));
        }
        if rng.random_range(0..15) == 0 {
            members
                .push(pick(rng, &["\"extra\":1", "\"id\":2", "\"method\":\"again\""]).to_string());
        }
        // Shuffle the members.
        for i in (1..members.len()).rev() {
            members.swap(i, rng.random_range(0..=i));
        }
        let sep = format!("{},{}", ws(rng), ws(rng));
        let mut body = format!(
            "{}{{{}{}{}}}{}",
            ws(rng),
            ws(rng),
            members.join(&sep),
            ws(rng),
            ws(rng)
        );
        match rng.random_range(0..12) {
            0 => {
                let mut cut = rng.random_range(0..body.len());
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
            }
            1 => body.push_str(pick(rng, &["x", "}", " {}"])),
            _ => {}
        }
        body
    }
}
