//! The common shape of an XML-RPC call, read straight off the bytes.
//!
//! Nearly every call a real client sends is plain markup: a `<?xml …?>` line, the known
//! elements without attributes, whitespace between them, and text without entity or
//! character references, CDATA or comments. Python's `xmlrpc.client` (and so the XenAPI
//! SDK) and xapi's own clients write exactly that. For such a body the general reader
//! (quick-xml events stitched into Xmlm's view, [`super::Parser`]) spends twenty
//! thousand instructions on three hundred bytes; this one spends a tenth of that.
//!
//! It is a *subset* reader: it accepts only bodies it can read completely, and for
//! those it returns what the general reader returns. Anything else (an entity, a CR, a
//! comment, an attribute, an unusual prolog, a namespace prefix, a `<param>` spelled
//! otherwise, a number that does not parse, deep nesting, and every malformed body) makes
//! it give up with `None`, and the general reader reads the body from the start, errors
//! included. A test compares the two on generated bodies.

use std::borrow::Cow;

use super::{CONTROL, MAX_DEPTH, MethodCall, is_control, parse_float, parse_int};
use crate::wire::value::{USUAL_PARAMS, Value};
use crate::wire::{scan, xmlchars};

/// The call, if the body has the common shape; `None` sends it to the general reader.
pub(super) fn parse(text: &str) -> Option<MethodCall<'_>> {
    let mut c = Cursor {
        s: text.as_bytes(),
        at: 0,
        text,
        suspect: false,
    };
    c.prolog();
    c.ws();
    c.lit("<methodCall>")?;
    c.ws();
    c.lit("<methodName>")?;
    let method = Cow::Borrowed(c.text()?);
    c.lit("</methodName>")?;
    c.ws();
    c.lit("<params>")?;
    let mut params = Vec::with_capacity(USUAL_PARAMS);
    loop {
        c.ws();
        if c.eat("</params>") {
            break;
        }
        c.lit("<param>")?;
        c.ws();
        c.lit("<value>")?;
        params.push(c.value(1)?);
        c.ws();
        c.lit("</param>")?;
    }
    c.ws();
    // As in xapi, nothing after the root element is read; but a control byte there
    // refuses the body (`read_call`), so the general reader must see it.
    c.lit("</methodCall>")?;
    if scan::find(&c.s[c.at..], is_control, &CONTROL).is_some() {
        return None;
    }
    // The texts hold no control byte but TAB and LF (see `special`), so unless one held
    // a byte that can start a refused character, every string passes the XML character
    // rule without a pass of its own.
    let chars_ok = !c.suspect || params.iter().all(xmlchars::value_ok);
    Some(MethodCall {
        method,
        params,
        invalid_utf8_param: None,
        chars_ok,
    })
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
    text: &'a str,
    /// A text held a byte that can start a character the XML character rule refuses
    /// (`xmlchars::string_ok`'s lead bytes 0xEF–0xF4).
    suspect: bool,
}

/// Bytes that end a run of plain text: markup, references, and what the general reader
/// treats specially (CR is normalised to LF; `]` could start a stray `]]>`; a control
/// byte refuses the body). With the literal markup and the whitespace between, which
/// hold no control byte either, that makes a body this reader takes free of control
/// bytes up to its end tag, without a scan of its own.
const fn special(b: u8) -> bool {
    (b == b'<') | (b == b'&') | (b == b']') | ((b < 0x20) & (b != b'\t') & (b != b'\n'))
}
const SPECIAL: scan::Table = scan::table!(special);

/// [`special`], and the bytes that can start a character the XML character rule refuses
/// (below U+0020 they are `special` already): what the text scan looks for first, so
/// that the call can vouch for that rule (`MethodCall::chars_ok`).
const fn special_or_suspect(b: u8) -> bool {
    // `special(b) | (b >= 0xEF)` with the two ranges (0x00–0x1F, 0xEF–0xFF) in one
    // compare: adding 0x11 (wrapping) puts them side by side at 0x00–0x30. A test
    // checks it against that plain form for every byte.
    (b == b'<')
        | (b == b'&')
        | (b == b']')
        | ((b.wrapping_add(0x11) < 0x31) & (b != b'\t') & (b != b'\n'))
}
const SPECIAL_OR_SUSPECT: scan::Table = scan::table!(special_or_suspect);

impl<'a> Cursor<'a> {
    /// An optional XML declaration at the very start, in the forms clients write:
    /// `<?xml version='1.0'?>` (Python), `<?xml version="1.0"?>` (xapi), optionally with
    /// `encoding="UTF-8"` (either case, either quote). Any other declaration is left for
    /// the general reader, which checks it as Xmlm does (version, encoding, standalone).
    fn prolog(&mut self) {
        let start = self.at;
        let ok = self.eat("<?xml version=")
            && self.quoted(|v| v == "1.0")
            && (!self.eat(" encoding=") || self.quoted(|v| v.eq_ignore_ascii_case("utf-8")))
            && self.eat("?>");
        if !ok {
            self.at = start;
        }
    }

    /// A value in matching single or double quotes that `ok` accepts.
    fn quoted(&mut self, ok: impl Fn(&str) -> bool) -> bool {
        let rest = &self.s[self.at..];
        let Some(&q @ (b'\'' | b'"')) = rest.first() else {
            return false;
        };
        let Some(len) = rest[1..].iter().position(|&b| b == q) else {
            return false;
        };
        // Between two ASCII quotes: char boundaries.
        let inner = &self.text[self.at + 1..self.at + 1 + len];
        let accepted = ok(inner);
        if accepted {
            self.at += len + 2;
        }
        accepted
    }

    /// Skips what ocaml-rpc ignores between elements.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n') = self.s.get(self.at) {
            self.at += 1;
        }
    }

    /// Consumes `lit` if it comes next.
    fn eat(&mut self, lit: &str) -> bool {
        let found = self.s[self.at..].starts_with(lit.as_bytes());
        if found {
            self.at += lit.len();
        }
        found
    }

    fn lit(&mut self, lit: &str) -> Option<()> {
        self.eat(lit).then_some(())
    }

    /// Plain text up to the next `<` (possibly empty); `None` if it holds anything the
    /// general reader would transform.
    fn text(&mut self) -> Option<&'a str> {
        // Refs and names are most of a call's text: the block scan, not a byte loop.
        let start = self.at;
        let mut len = scan::find(&self.s[start..], special_or_suspect, &SPECIAL_OR_SUSPECT)?;
        if self.s[start + len] >= 0xEF {
            // Rare (U+F000 and above): the call leaves the rule to its own check, and the
            // rest of this text gets the plain scan.
            self.suspect = true;
            len += scan::find(&self.s[start + len..], special, &SPECIAL)?;
        }
        self.at += len;
        if self.s[self.at] != b'<' {
            return None;
        }
        // Both ends are ASCII `<` or the start of a tag: char boundaries.
        Some(&self.text[start..self.at])
    }

    /// A typed leaf `<tag>text</tag>` whose start tag was just read.
    fn leaf(&mut self, end: &str) -> Option<&'a str> {
        let t = self.text()?;
        self.lit(end)?;
        Some(t)
    }

    /// The contents of a `<value>` whose start tag was just read, and its end tag.
    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let t = self.text()?;
        if self.eat("</value>") {
            // Untyped: the text as it is, spaces included.
            return Some(Value::String(t.to_string()));
        }
        if !t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n')) {
            return None;
        }
        let v = if self.eat("<string>") {
            Value::String(self.leaf("</string>")?.to_string())
        } else if self.eat("<double>") {
            Value::Double(parse_float(self.leaf("</double>")?)?)
        } else if self.eat("<int>") {
            Value::Int(parse_int(self.leaf("</int>")?)?)
        } else if self.eat("<i4>") {
            Value::Int(parse_int(self.leaf("</i4>")?)?)
        } else if self.eat("<i8>") {
            Value::Int(parse_int(self.leaf("</i8>")?)?)
        } else if self.eat("<boolean>") {
            Value::Bool(self.leaf("</boolean>")? == "1")
        } else if self.eat("<dateTime.iso8601>") {
            Value::DateTime(self.leaf("</dateTime.iso8601>")?.to_string())
        } else if self.eat("<base64>") {
            Value::Base64(self.leaf("</base64>")?.to_string())
        } else if self.eat("<nil/>") {
            Value::Nil
        } else if self.eat("<array>") {
            self.ws();
            self.lit("<data>")?;
            let mut items = Vec::new();
            loop {
                self.ws();
                if self.eat("</data>") {
                    break;
                }
                self.lit("<value>")?;
                items.push(self.value(depth + 1)?);
            }
            self.ws();
            self.lit("</array>")?;
            Value::Array(items)
        } else if self.eat("<struct>") {
            let mut members = Vec::new();
            loop {
                self.ws();
                if self.eat("</struct>") {
                    break;
                }
                self.lit("<member>")?;
                self.ws();
                self.lit("<name>")?;
                let name = self.leaf("</name>")?.to_string();
                self.ws();
                self.lit("<value>")?;
                let value = self.value(depth + 1)?;
                self.ws();
                self.lit("</member>")?;
                members.push((name, value));
            }
            Value::Struct(members)
        } else {
            return None;
        };
        self.ws();
        self.lit("</value>")?;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Parser, parse_call, parse_call_general};
    use super::parse;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// What the clients send takes the fast path (if it silently stopped doing so, only
    /// the benchmark would notice).
    #[test]
    fn real_client_bodies_take_the_fast_path() {
        let python = "<?xml version='1.0'?>\n<methodCall>\n<methodName>task.get_record</methodName>\n\
            <params>\n<param>\n<value><string>OpaqueRef:a</string></value>\n</param>\n<param>\n\
            <value><string>OpaqueRef:b</string></value>\n</param>\n</params>\n</methodCall>\n";
        let xapi = "<?xml version=\"1.0\"?><methodCall><methodName>task.set_progress</methodName>\
            <params><param><value>OpaqueRef:a</value></param><param><value>OpaqueRef:b</value>\
            </param><param><value><double>0.5</double></value></param></params></methodCall>";
        for body in [python, xapi] {
            let fast = parse(body).expect("fast path");
            assert_eq!(Ok(fast), Parser::new(body).call(), "{body}");
        }
    }

    #[test]
    fn the_fused_class_is_special_or_a_suspect_lead_byte() {
        for b in 0..=255u8 {
            assert_eq!(
                super::special_or_suspect(b),
                super::special(b) | (b >= 0xEF),
                "{b:#x}"
            );
        }
    }

    /// The fast reader vouches for the XML character rule (`chars_ok`) only when no
    /// string can break it: a refused character in a string, a struct member's name or
    /// past the first 16-byte block of a long one is not vouched for (and the dispatcher
    /// then refuses the call), an allowed character with the same lead byte is, and so
    /// is a call whose only such byte is in its method name.
    #[test]
    fn vouches_for_the_character_rule_only_when_it_holds() {
        let call = |method: &str, value: &str| {
            format!(
                "<?xml version='1.0'?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>\n\
                 <param>\n<value><string>OpaqueRef:a</string></value>\n</param>\n<param>\n\
                 <value>{value}</value>\n</param>\n</params>\n</methodCall>\n"
            )
        };
        let long = "x".repeat(40);
        for (method, value, ok) in [
            (
                "task.get_record",
                "<string>OpaqueRef:b</string>".to_string(),
                true,
            ),
            (
                "task.get_record",
                "<string>\u{FFFF}</string>".to_string(),
                false,
            ),
            (
                "task.get_record",
                format!("<string>{long}\u{FFFE}{long}</string>"),
                false,
            ),
            ("task.get_record", format!("{long}\u{FDD0}"), false),
            (
                "task.get_record",
                "<string>豈 😀 \u{10FFFD}</string>".to_string(),
                true,
            ),
            (
                "task.get_record",
                "<struct><member><name>k\u{FFFF}</name><value>v</value></member></struct>"
                    .to_string(),
                false,
            ),
            (
                "task.get_record",
                "<array><data><value>\u{1FFFE}</value></data></array>".to_string(),
                false,
            ),
            ("task.get_\u{FFFF}", "<string>b</string>".to_string(), true),
        ] {
            let body = call(method, &value);
            let fast = parse(&body).expect("fast path");
            assert_eq!(fast.chars_ok, ok, "{body:?}");
            assert_eq!(Ok(fast), parse_call_general(body.as_bytes()), "{body:?}");
        }
    }

    /// A control byte anywhere (a text, the method name, between elements, after the
    /// root element) is refused as the general entry refuses it: the fast reader, which
    /// runs before that check, must never take such a body.
    #[test]
    fn control_bytes_are_left_to_the_refusal() {
        let python = "<?xml version='1.0'?>\n<methodCall>\n<methodName>task.get_record</methodName>\n\
            <params>\n<param>\n<value><string>OpaqueRef:a</string></value>\n</param>\n\
            </params>\n</methodCall>\n";
        for at in ["OpaqueRef:a", "get_record", "<params>", "</methodCall>\n"] {
            for control in ["\u{1}", "\u{b}", "\u{1f}"] {
                let cut = python.find(at).expect("in the body") + at.len() - 1;
                let body = format!("{}{control}{}", &python[..cut], &python[cut..]);
                assert_eq!(parse(&body), None, "{body:?}");
                let refused = parse_call(body.as_bytes()).expect_err("refused");
                assert_eq!(refused.expected, "XML characters", "{body:?}");
                assert_eq!(Err(refused), parse_call_general(body.as_bytes()));
            }
        }
    }

    /// Generated bodies, well-formed or not: whenever the fast reader accepts one, the
    /// general reader gives the same call.
    #[test]
    fn agrees_with_the_general_reader() {
        let mut rng = StdRng::seed_from_u64(16);
        let (mut accepted, mut total) = (0, 0);
        for _ in 0..20_000 {
            let body = body(&mut rng);
            total += 1;
            if let Some(fast) = parse(&body) {
                accepted += 1;
                assert_eq!(Ok(fast), Parser::new(&body).call(), "{body:?}");
            }
            // And the entry point agrees with the general reader on everything, control
            // bytes (which the general entry refuses before reading) included.
            assert_eq!(
                parse_call(body.as_bytes()),
                parse_call_general(body.as_bytes()),
                "{body:?}"
            );
        }
        // Both kinds were exercised.
        assert!(
            accepted > total / 10 && accepted < total * 9 / 10,
            "{accepted}/{total}"
        );
    }

    fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
        items[rng.random_range(0..items.len())]
    }

    /// Whitespace between elements; now and then a CR (which only the general reader takes).
    fn ws(rng: &mut StdRng) -> &'static str {
        if rng.random_range(0..40) == 0 {
            return "\r\n";
        }
        pick(rng, &["", "", "\n", " ", "\t\n  "])
    }

    /// Character data: mostly plain, now and then with what only the general reader takes.
    fn text(rng: &mut StdRng) -> String {
        let plain = [
            "a",
            "OpaqueRef:0f",
            " ",
            "é€",
            // Lead bytes the XML character rule looks at: allowed (U+F900, U+1F600) and
            // refused (U+FFFF, U+FDD0), which the call must not vouch for.
            "豈😀",
            "\u{FFFF}",
            "\u{FDD0}",
            "x y",
            ">",
            "\"",
            "'",
            "1",
            "-2",
            "\n",
            "",
        ];
        let special = [
            "&amp;",
            "&lt;",
            "]",
            "]]>",
            "<!-- c -->",
            "<![CDATA[z]]>",
            "\r",
            "&bad;",
            "\u{1}",
            "\u{1f}",
        ];
        let n = rng.random_range(0..4);
        (0..n)
            .map(|_| {
                if rng.random_range(0..30) == 0 {
                    pick(rng, &special)
                } else {
                    pick(rng, &plain)
                }
            })
            .collect()
    }

    fn value(rng: &mut StdRng, depth: usize) -> String {
        let w1 = ws(rng);
        let w2 = ws(rng);
        let t = text(rng);
        let inner = match rng.random_range(0..if depth > 3 { 10 } else { 14 }) {
            0 | 1 => return format!("<value>{t}</value>"),
            2 => format!("<string>{t}</string>"),
            3 => "<string/>".to_string(),
            4 => format!(
                "<int>{}</int>",
                pick(rng, &["1", "-7", "0x1F", "1_0", "x", ""])
            ),
            5 => format!("<i4>{}</i4>", pick(rng, &["5", "99999999999999999999"])),
            6 => format!("<boolean>{}</boolean>", pick(rng, &["1", "0", "true", ""])),
            7 => format!(
                "<double>{}</double>",
                pick(rng, &["0.5", " 1", "1e3", "abc", "inf"])
            ),
            8 => format!("<dateTime.iso8601>{t}</dateTime.iso8601>"),
            9 => pick(rng, &["<nil/>", "<nil></nil>", "<foo>1</foo>", "<value/>"]).to_string(),
            10 | 11 => {
                let n = rng.random_range(0..3);
                let items: String = (0..n).map(|_| value(rng, depth + 1) + ws(rng)).collect();
                let data = pick(rng, &["<data>", "<data >"]);
                format!("<array>{}{data}{items}</data>{}</array>", ws(rng), ws(rng))
            }
            _ => {
                let n = rng.random_range(0..3);
                let members: String = (0..n)
                    .map(|_| {
                        format!(
                            "<member>{}<name>{}</name>{}{}{}</member>{}",
                            ws(rng),
                            text(rng),
                            ws(rng),
                            value(rng, depth + 1),
                            ws(rng),
                            ws(rng)
                        )
                    })
                    .collect();
                format!("<struct>{}{members}</struct>", ws(rng))
            }
        };
        format!("<value>{w1}{inner}{w2}</value>")
    }

    fn body(rng: &mut StdRng) -> String {
        let prolog = pick(
            rng,
            &[
                "",
                "<?xml version='1.0'?>\n",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                "<?xml version='1.0'?>",
                "<?xml version='1.0'?>\n",
                " <?xml version='1.0'?>",
                "<!-- c -->",
                "<?xml version='1.0' x='<'?>",
                // Declarations the general reader refuses (Xmlm's rule) or reads:
                // the fast one must leave all of them to it.
                "<?xml version='2.0'?>",
                "<?xml version=\"1.0'?>",
                "<?xml encoding='UTF-8'?>",
                "<?xml version='1.0' encoding='EBCDIC'?>",
                "<?xml version='1.0' encoding='utf-8'?>",
                "<?xml version=\"1.1\" standalone=\"yes\"?>",
                "<?xml version='1.0' standalone='maybe'?>",
                "<?xml version='1.0' foo='bar'?>",
                "<?xml version='1.0'?><?pi x?>",
                "<?xml version='1.0'?><? x?>",
            ],
        );
        let n = rng.random_range(0..4);
        let params: String = (0..n)
            .map(|_| {
                format!(
                    "<param>{}{}{}</param>{}",
                    ws(rng),
                    value(rng, 1),
                    ws(rng),
                    ws(rng)
                )
            })
            .collect();
        let mut body = format!(
            "{prolog}<methodCall>{}<methodName>{}</methodName>{}<params>{}{params}</params>{}</methodCall>{}",
            ws(rng),
            text(rng),
            ws(rng),
            ws(rng),
            ws(rng),
            if rng.random_range(0..30) == 0 {
                pick(rng, &["\n\u{2}", "\u{7f}"])
            } else {
                pick(rng, &["", "\n", "<trailing>"])
            }
        );
        // Now and then a damaged body: cut short, or a byte changed.
        match rng.random_range(0..10) {
            0 => {
                let mut cut = rng.random_range(0..body.len());
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
            }
            1 => {
                let at = rng.random_range(0..body.len());
                if body.is_char_boundary(at) && body.is_char_boundary(at + 1) {
                    let c = pick(rng, &["<", ">", "/", "x", " "]);
                    body.replace_range(at..at + 1, c);
                }
            }
            _ => {}
        }
        body
    }
}
