use super::*;
use crate::api::error::codes;

fn s(text: &str) -> Value {
    Value::str(text)
}

fn call(body: &str) -> MethodCall<'static> {
    let c = parse_call(body.as_bytes()).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    MethodCall {
        method: c.method.into_owned().into(),
        params: c.params,
        invalid_utf8_param: c.invalid_utf8_param,
        chars_ok: c.chars_ok,
    }
}

/// Wraps one `<value>` in a call and returns the parsed parameter.
fn param(value_xml: &str) -> Value {
    let c = call(&format!(
        "<methodCall><methodName>m</methodName><params><param>{value_xml}</param></params></methodCall>"
    ));
    assert_eq!(c.params.len(), 1);
    c.params.into_iter().next().unwrap()
}

fn param_err(value_xml: &str) -> ParseError {
    let body = format!(
        "<methodCall><methodName>m</methodName><params><param>{value_xml}</param></params></methodCall>"
    );
    fails(body.as_bytes())
}

fn fails(body: &[u8]) -> ParseError {
    match parse_call(body) {
        Ok(c) => panic!("{:?} parsed as {c:?}", String::from_utf8_lossy(body)),
        Err(e) => e,
    }
}

fn response(result: Result<Value, ApiError>) -> String {
    let mut out = Vec::new();
    write_response(&mut out, &result);
    String::from_utf8(out).unwrap()
}

// --- writing -------------------------------------------------------------------------

#[test]
fn writes_scalars_like_xapi() {
    let cases: Vec<(Value, &str)> = vec![
        (s("abc"), "<value>abc</value>"),
        (s(""), "<value></value>"),
        (Value::Int(42), "<value>42</value>"),
        (Value::Int(-7), "<value>-7</value>"),
        (Value::Int(0), "<value>0</value>"),
        (Value::Int(i64::MIN), "<value>-9223372036854775808</value>"),
        (Value::Int(i64::MAX), "<value>9223372036854775807</value>"),
        (Value::Int32(5), "<value><i4>5</i4></value>"),
        (
            Value::Int32(i32::MIN),
            "<value><i4>-2147483648</i4></value>",
        ),
        (Value::Bool(true), "<value><boolean>1</boolean></value>"),
        (Value::Bool(false), "<value><boolean>0</boolean></value>"),
        (Value::Double(1.0), "<value><double>1</double></value>"),
        (Value::Double(0.25), "<value><double>0.25</double></value>"),
        (Value::Double(1e21), "<value><double>1e+21</double></value>"),
        (Value::Double(-0.1), "<value><double>-0.1</double></value>"),
        (
            Value::DateTime("20240101T12:00:00Z".into()),
            "<value><dateTime.iso8601>20240101T12:00:00Z</dateTime.iso8601></value>",
        ),
        (
            Value::Base64("aGVsbG8=".into()),
            "<value><base64>aGVsbG8=</base64></value>",
        ),
        (Value::Nil, "<value><nil/></value>"),
    ];
    for (value, want) in cases {
        assert_eq!(value_fragment(&value), want, "{value:?}");
    }
}

#[test]
fn doubles_match_format_g16() {
    let values = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        100.0,
        1e14,
        999999999999999.0,
        1e15,
        1e16,
        1e300,
        1.5e-7,
        0.1,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        f64::MAX,
    ];
    for d in values {
        let want = format!("<value><double>{}</double></value>", format_g16(d));
        assert_eq!(value_fragment(&Value::Double(d)), want, "{d:e}");
    }
}

#[test]
fn escapes_text_like_ocaml_rpc() {
    assert_eq!(
        value_fragment(&s("a&b<c>d\"e'f")),
        "<value>a&amp;b&lt;c&gt;d&quot;e'f</value>"
    );
    // Control bytes vanish, TAB/LF/CR stay, DEL and non-ASCII are copied raw.
    assert_eq!(
        value_fragment(&s("\u{0}x\u{1}\ty\n\r\u{1f}z\u{7f}é€😀")),
        "<value>x\ty\n\rz\u{7f}é€😀</value>"
    );
    assert_eq!(value_fragment(&s("&&")), "<value>&amp;&amp;</value>");
    // Specials after the first scanned block, and a long clean string.
    let long = format!("{}\u{2}>{}", "x".repeat(70), "y".repeat(40));
    let want = format!("<value>{}&gt;{}</value>", "x".repeat(70), "y".repeat(40));
    assert_eq!(value_fragment(&s(&long)), want);
    let clean = "z".repeat(100);
    assert_eq!(
        value_fragment(&s(&clean)),
        format!("<value>{clean}</value>")
    );
}

#[test]
fn never_writes_characters_xml_cannot_carry() {
    // U+FFFE and U+FFFF vanish like control bytes; their neighbours in U+F000–U+FFFF
    // (lead byte 0xEF) are copied, at every position in a block.
    let text = "a\u{FFFE}b\u{FFFF}\u{FFFD}\u{FF21}\u{F900}&\u{FFFF}";
    assert_eq!(
        value_fragment(&s(text)),
        "<value>ab\u{FFFD}\u{FF21}\u{F900}&amp;</value>"
    );
    let long = format!("{}\u{FFFF}{}", "x".repeat(70), "\u{FFFE}".repeat(3));
    assert_eq!(
        value_fragment(&s(&long)),
        format!("<value>{}</value>", "x".repeat(70))
    );
    let key = Value::Struct(vec![("k\u{FFFE}".into(), s("v\u{FFFF}"))]);
    assert_eq!(
        value_fragment(&key),
        "<value><struct><member><name>k</name><value>v</value></member></struct></value>"
    );
    // What is written parses again.
    let call = format!(
        "<methodCall><methodName>m</methodName><params><param>{}</param></params></methodCall>",
        value_fragment(&s(text))
    );
    assert!(parse_call(call.as_bytes()).is_ok());
}

#[test]
fn writes_arrays_and_structs_in_order() {
    assert_eq!(
        value_fragment(&Value::Array(vec![])),
        "<value><array><data></data></array></value>"
    );
    assert_eq!(
        value_fragment(&Value::Struct(vec![])),
        "<value><struct></struct></value>"
    );
    let v = Value::Struct(vec![
        ("z".into(), s("1")),
        (
            "a".into(),
            Value::Array(vec![Value::Int(1), Value::Bool(true)]),
        ),
        ("m".into(), Value::Struct(vec![("k".into(), Value::Nil)])),
    ]);
    assert_eq!(
        value_fragment(&v),
        "<value><struct>\
         <member><name>z</name><value>1</value></member>\
         <member><name>a</name><value><array><data><value>1</value>\
         <value><boolean>1</boolean></value></data></array></value></member>\
         <member><name>m</name><value><struct><member><name>k</name>\
         <value><nil/></value></member></struct></value></member>\
         </struct></value>"
    );
}

#[test]
fn escapes_member_names_unlike_xapi() {
    let v = Value::Struct(vec![("a<&>\"\u{1}b".into(), s("v"))]);
    assert_eq!(
        value_fragment(&v),
        "<value><struct><member><name>a&lt;&amp;&gt;&quot;b</name>\
         <value>v</value></member></struct></value>"
    );
}

#[test]
fn success_envelope_bytes() {
    assert_eq!(
        response(Ok(s("OpaqueRef:0f7a"))),
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
         <member><name>Status</name><value>Success</value></member>\
         <member><name>Value</name><value>OpaqueRef:0f7a</value></member>\
         </struct></value></param></params></methodResponse>"
    );
    // void
    assert_eq!(
        response(Ok(Value::void())),
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
         <member><name>Status</name><value>Success</value></member>\
         <member><name>Value</name><value></value></member>\
         </struct></value></param></params></methodResponse>"
    );
}

#[test]
fn failure_envelope_bytes() {
    let err = ApiError::new(codes::SESSION_INVALID, ["OpaqueRef:4b3<&>"]);
    assert_eq!(
        response(Err(err)),
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
         <member><name>Status</name><value>Failure</value></member>\
         <member><name>ErrorDescription</name><value><array><data>\
         <value>SESSION_INVALID</value><value>OpaqueRef:4b3&lt;&amp;&gt;</value>\
         </data></array></value></member></struct></value></param></params></methodResponse>"
    );
    let bare = ApiError::new(codes::EVENTS_LOST, Vec::<String>::new());
    assert!(response(Err(bare)).contains(
        "<name>ErrorDescription</name><value><array><data><value>EVENTS_LOST</value>\
         </data></array></value></member></struct>"
    ));
}

#[test]
fn bare_response_bytes() {
    let mut out = b"keep".to_vec();
    write_bare(
        &mut out,
        &Value::Array(vec![s("task.create"), s("system.listMethods")]),
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "keep<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data>\
         <value>task.create</value><value>system.listMethods</value></data></array></value>\
         </param></params></methodResponse>"
    );
}

// --- parsing -------------------------------------------------------------------------

#[test]
fn parses_python_xmlrpc_client_body() {
    // Byte for byte what Python 3's xmlrpc.client.dumps(..., allow_none=True) sends.
    let body = "<?xml version='1.0'?>\n<methodCall>\n<methodName>task.create</methodName>\n\
        <params>\n<param>\n<value><string>OpaqueRef:abc</string></value>\n</param>\n\
        <param>\n<value><string>lbl &amp; &lt;x&gt;</string></value>\n</param>\n<param>\n\
        <value><struct>\n<member>\n<name>k</name>\n<value><array><data>\n\
        <value><int>1</int></value>\n<value><boolean>1</boolean></value>\n\
        <value><double>0.5</double></value>\n<value><nil/></value></data></array></value>\n\
        </member>\n</struct></value>\n</param>\n</params>\n</methodCall>\n";
    let c = call(body);
    assert_eq!(c.method, "task.create");
    assert_eq!(c.invalid_utf8_param, None);
    assert_eq!(
        c.params,
        vec![
            s("OpaqueRef:abc"),
            s("lbl & <x>"),
            Value::Struct(vec![(
                "k".into(),
                Value::Array(vec![
                    Value::Int(1),
                    Value::Bool(true),
                    Value::Double(0.5),
                    Value::Nil
                ])
            )]),
        ]
    );
}

#[test]
fn untyped_and_empty_values() {
    assert_eq!(param("<value>plain</value>"), s("plain"));
    assert_eq!(param("<value>  spaced  </value>"), s("  spaced  "));
    assert_eq!(param("<value> </value>"), s(" "));
    assert_eq!(param("<value/>"), s(""));
    assert_eq!(param("<value></value>"), s(""));
    assert_eq!(param("<value>42</value>"), s("42"));
    assert_eq!(param("<value><string/></value>"), s(""));
    assert_eq!(param("<value><string></string></value>"), s(""));
    assert_eq!(param("<value><string> x </string></value>"), s(" x "));
    assert_eq!(param("<value>\n  <string>x</string>\n</value>"), s("x"));
    assert_eq!(param("<value><![CDATA[]]></value>"), s(""));
}

#[test]
fn typed_scalars() {
    for tag in ["int", "i4", "i8"] {
        assert_eq!(
            param(&format!("<value><{tag}>-12</{tag}></value>")),
            Value::Int(-12)
        );
    }
    let ints = [
        ("+5", 5),
        ("1_000", 1000),
        ("0x1F", 31),
        ("0o17", 15),
        ("0b101", 5),
        ("0u42", 42),
        ("-0x10", -16),
        ("0xFFFFFFFFFFFFFFFF", -1),
        ("9223372036854775807", i64::MAX),
        ("-9223372036854775808", i64::MIN),
    ];
    for (text, want) in ints {
        assert_eq!(
            param(&format!("<value><int>{text}</int></value>")),
            Value::Int(want)
        );
    }
    for bad in [
        "",
        " 5",
        "5 ",
        "x",
        "9223372036854775808",
        "0x",
        "1.5",
        "--1",
        "_1",
    ] {
        let e = param_err(&format!("<value><int>{bad}</int></value>"));
        assert_eq!(e.expected, "an integer in <int>", "{bad:?}");
    }
    assert!(
        param_err("<value><i8/></value>")
            .expected
            .contains("integer")
    );

    assert_eq!(
        param("<value><boolean>1</boolean></value>"),
        Value::Bool(true)
    );
    for other in ["0", "true", " 1", "yes", ""] {
        let v = param(&format!("<value><boolean>{other}</boolean></value>"));
        assert_eq!(v, Value::Bool(false), "{other:?}");
    }
    assert_eq!(param("<value><boolean/></value>"), Value::Bool(false));

    for (text, want) in [
        ("0.5", 0.5),
        ("1", 1.0),
        ("-1e+21", -1e21),
        (" 2.5", 2.5),
        ("1_0.5", 10.5),
    ] {
        assert_eq!(
            param(&format!("<value><double>{text}</double></value>")),
            Value::Double(want)
        );
    }
    assert_eq!(
        param("<value><double>inf</double></value>"),
        Value::Double(f64::INFINITY)
    );
    for bad in ["", "abc", "1.5 ", "1e", " "] {
        let e = param_err(&format!("<value><double>{bad}</double></value>"));
        assert_eq!(e.expected, "a number in <double>", "{bad:?}");
    }

    assert_eq!(
        param("<value><dateTime.iso8601>20240101T12:00:00Z</dateTime.iso8601></value>"),
        Value::DateTime("20240101T12:00:00Z".into())
    );
    assert_eq!(
        param("<value><base64>aGVs\nbG8=</base64></value>"),
        Value::Base64("aGVs\nbG8=".into())
    );
    assert_eq!(param("<value><nil/></value>"), Value::Nil);
    assert_eq!(param("<value><nil> </nil></value>"), Value::Nil);
}

#[test]
fn arrays_and_structs() {
    assert_eq!(param("<value><array/></value>"), Value::Array(vec![]));
    assert_eq!(
        param("<value><array></array></value>"),
        Value::Array(vec![])
    );
    assert_eq!(
        param("<value><array><data/></array></value>"),
        Value::Array(vec![])
    );
    assert_eq!(
        param("<value><array>\n<data>\n</data>\n</array></value>"),
        Value::Array(vec![])
    );
    assert_eq!(param("<value><struct/></value>"), Value::Struct(vec![]));
    assert_eq!(
        param("<value><struct> </struct></value>"),
        Value::Struct(vec![])
    );
    let v = param(
        "<value><struct><member><name>b</name><value><array><data><value>x</value>\
         <value><struct><member><name>in&amp;ner</name><value/></member></struct></value>\
         </data></array></value></member><member><name>a</name><value><i4>1</i4></value>\
         </member><member><name>a</name><value>dup</value></member></struct></value>",
    );
    assert_eq!(
        v,
        Value::Struct(vec![
            (
                "b".into(),
                Value::Array(vec![s("x"), Value::Struct(vec![("in&ner".into(), s(""))])])
            ),
            ("a".into(), Value::Int(1)),
            ("a".into(), s("dup")),
        ])
    );
    // ocaml-rpc requires <data> inside a non-empty array.
    assert_eq!(
        param_err("<value><array> </array></value>").expected,
        "<data>"
    );
    assert_eq!(
        param_err("<value><array><value>1</value></array></value>").expected,
        "<data>"
    );
}

#[test]
fn entities_char_refs_cdata_comments_and_line_ends() {
    assert_eq!(
        param("<value>a &amp; b &lt;c&gt; &quot;&apos;</value>"),
        s("a & b <c> \"'")
    );
    assert_eq!(param("<value>&#65;&#x42;&#x1F600;</value>"), s("AB😀"));
    assert_eq!(param("<value>&#13;</value>"), s("\r"));
    assert_eq!(
        param("<value>x<![CDATA[<not> & markup]]>y&amp;</value>"),
        s("x<not> & markupy&")
    );
    assert_eq!(param("<value>a<!-- note -->b<?pi x?>c</value>"), s("abc"));
    assert_eq!(
        param("<value><string>a\r\nb\rc</string></value>"),
        s("a\nb\nc")
    );
    assert_eq!(param("<value>&amp;</value>"), s("&"));
}

#[test]
fn prologs_params_and_trailing_content() {
    let minimal = "<methodCall><methodName>m</methodName><params/></methodCall>";
    let variants = [
        minimal.to_string(),
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{minimal}"),
        format!("\u{feff}<?xml version='1.0'?>{minimal}"),
        format!("<!-- hi --><!DOCTYPE methodCall>\n  {minimal}\n"),
        "<methodCall>\n <methodName>m</methodName>\n <params>\n </params>\n</methodCall>".into(),
        // xapi never reads past the root element.
        format!("{minimal}<trailing>garbage"),
    ];
    for body in variants {
        let c = call(&body);
        assert_eq!((&*c.method, c.params.len()), ("m", 0), "{body:?}");
    }
    assert_eq!(
        call("<methodCall><methodName> a.b </methodName><params/></methodCall>").method,
        " a.b "
    );
}

// --- malformed input -----------------------------------------------------------------

#[test]
fn malformed_bodies_are_errors() {
    let cases: &[(&str, &str, &str)] = &[
        ("", "<methodCall>", "end of document"),
        ("   ", "<methodCall>", "end of document"),
        ("hello", "<methodCall>", "text \"hello\""),
        ("<methodResponse/>", "<methodCall>", "<methodResponse>"),
        ("<methodCall></methodCall>", "<methodName>", "</methodCall>"),
        (
            "<methodCall><methodName>m</methodName></methodCall>",
            "<params>",
            "</methodCall>",
        ),
        (
            "<methodCall><methodName>m</methodName>",
            "<params>",
            "end of document",
        ),
        (
            "<methodCall><methodName>m</methodName><params><value>1</value></params></methodCall>",
            "<param> or </params>",
            "<value>",
        ),
        (
            "<methodCall><methodName>m<x/></methodName><params/></methodCall>",
            "</methodName>",
            "<x>",
        ),
        (
            "<methodCall><methodName>m</methodName><params/>x</methodCall>",
            "</methodCall>",
            "text \"x\"",
        ),
    ];
    for (body, expected, received) in cases {
        let e = fails(body.as_bytes());
        assert_eq!(
            (e.expected.as_str(), e.received.as_str()),
            (*expected, *received),
            "{body:?}"
        );
    }
}

#[test]
fn malformed_values_are_errors() {
    let cases: &[(&str, &str)] = &[
        ("<value><foo>1</foo></value>", "<foo>"),
        ("<value><string>x</value>", ""),
        ("<value>x<string>y</string></value>", "<string>"),
        (
            "<value><string>x</string><string>y</string></value>",
            "<string>",
        ),
        ("<value>1</value><value>2</value>", "<value>"),
        ("<value><nil>x</nil></value>", "text \"x\""),
        (
            "<value><struct><member><value>1</value></member></struct></value>",
            "<value>",
        ),
        (
            "<value><struct><member><name>a</name></member></struct></value>",
            "</member>",
        ),
        (
            "<value><struct><value>1</value></struct></value>",
            "<value>",
        ),
        ("<value><string><b/></string></value>", "<b>"),
        ("<value>&nbsp;</value>", "&nbsp;"),
        ("<value>&#0;</value>", ""),
        ("<value>&#1;</value>", "&#1;"),
        ("<value>&#xFFFE;</value>", "&#xFFFE;"),
        ("<value>a & b</value>", ""),
        ("<value><![CDATA[x</value>", ""),
        ("<value", ""),
    ];
    for (xml, received) in cases {
        let e = param_err(xml);
        assert!(e.received.contains(received), "{xml:?}: {e}");
    }
}

#[test]
fn every_truncation_fails_cleanly() {
    let body = "<?xml version='1.0'?>\n<methodCall>\n<methodName>task.create</methodName>\n\
        <params>\n<param>\n<value><struct>\n<member>\n<name>k&amp;</name>\n<value><array><data>\n\
        <value><int>1</int></value><value><![CDATA[c]]></value></data></array></value>\n\
        </member>\n</struct></value>\n</param>\n</params>\n</methodCall>";
    let end = body.find("</methodCall>").unwrap() + "</methodCall>".len();
    assert!(parse_call(body.as_bytes()).is_ok());
    for cut in 0..end {
        assert!(
            parse_call(&body.as_bytes()[..cut]).is_err(),
            "prefix of {cut} bytes parsed"
        );
    }
}

#[test]
fn garbage_never_panics() {
    let pieces: [&[u8]; 12] = [
        b"<",
        b">",
        b"</",
        b"/>",
        b"&",
        b";",
        b"value",
        b"<value>",
        b"</value>",
        b"<![CDATA[",
        b"]]>",
        b"\xff",
    ];
    // A small deterministic generator, so failures are reproducible.
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..2000 {
        let mut body = b"<methodCall><methodName>m</methodName><params><param>".to_vec();
        for _ in 0..(seed % 12) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            body.extend_from_slice(pieces[(seed % 12) as usize]);
        }
        let _ = parse_call(&body);
    }
}

#[test]
fn control_characters_are_rejected() {
    let e = fails(b"<methodCall><methodName>m</methodName><params><param><value>a\x01</value></param></params></methodCall>");
    assert_eq!(e.expected, "XML characters");
    assert!(e.received.starts_with("control character 0x01"), "{e}");
    let late = format!(
        "<methodCall><methodName>m</methodName><params><param><value>{}\u{1f}</value></param></params></methodCall>",
        "a".repeat(100)
    );
    let e = fails(late.as_bytes());
    assert_eq!(e.received, "control character 0x1f at byte 160");
    assert_eq!(param("<value>\t\n</value>"), s("\t\n"));
}

#[test]
fn nesting_is_bounded() {
    let nest = |n: usize| {
        format!(
            "{}<value>x</value>{}",
            "<value><array><data>".repeat(n),
            "</data></array></value>".repeat(n)
        )
    };
    // The param value plus MAX_DEPTH - 1 enclosing arrays is the deepest accepted.
    assert!(matches!(param(&nest(MAX_DEPTH - 1)), Value::Array(_)));
    let e = param_err(&nest(MAX_DEPTH));
    assert_eq!(e.received, "deeper nesting");
    let e = param_err(&nest(100_000));
    assert_eq!(e.received, "deeper nesting");
    let structs = "<value><struct><member><name>a</name>".repeat(10_000);
    assert_eq!(param_err(&structs).received, "deeper nesting");
}

#[test]
fn invalid_utf8_is_flagged_not_rejected() {
    let body = b"<methodCall><methodName>task.create</methodName><params>\
        <param><value>ok</value></param>\
        <param><value><struct><member><name>k\xff</name><value>v</value></member></struct></value></param>\
        <param><value>bad\xc3</value></param></params></methodCall>";
    let c = parse_call(body).unwrap();
    assert_eq!(c.method, "task.create");
    assert_eq!(c.invalid_utf8_param, Some(1));
    assert_eq!(c.params[2], s("bad\u{FFFD}"));

    let body = b"<methodCall><methodName>m</methodName><params><param><value><string>\xe2\x82</string></value></param></params></methodCall>";
    assert_eq!(parse_call(body).unwrap().invalid_utf8_param, Some(0));

    // A valid body containing U+FFFD is not flagged.
    assert_eq!(call("<methodCall><methodName>m</methodName><params><param><value>\u{FFFD}</value></param></params></methodCall>").invalid_utf8_param, None);

    let e = fails(b"<methodCall><methodName>ta\xffsk</methodName><params/></methodCall>");
    assert_eq!(e.expected, "a UTF-8 method name");
    let e = fails(b"<method\xffCall><methodName>m</methodName><params/></method\xffCall>");
    assert_eq!(e.expected, "<methodCall>");
}

#[test]
fn received_is_truncated_and_display_reads_well() {
    let long = "y".repeat(100_000);
    let e = fails(long.as_bytes());
    assert!(
        e.received.chars().count() <= MAX_RECEIVED + 1,
        "{}",
        e.received.len()
    );
    assert!(e.received.ends_with('…'));
    let e = fails("é".repeat(500).as_bytes());
    assert!(e.received.ends_with('…'));
    assert_eq!(
        fails(b"<methodCall><methodName>m</methodName></methodCall>").to_string(),
        "expected <params>, received </methodCall>"
    );
}

// --- round trips and an independent reader -------------------------------------------

/// Values covering every kind, as they are expected to read back: untyped ints become
/// strings and `<i4>` becomes an int64, exactly as xapi would read its own output.
fn samples() -> Vec<(Value, Value)> {
    let nested = |v: Value| Value::Struct(vec![("a b".into(), Value::Array(vec![v]))]);
    vec![
        (s("plain"), s("plain")),
        (s(""), s("")),
        (s("a&b <c> \"q\" 'x' ünï 😀"), s("a&b <c> \"q\" 'x' ünï 😀")),
        (s("tab\tnl\nend"), s("tab\tnl\nend")),
        (Value::Int(-42), s("-42")),
        (Value::Int32(7), Value::Int(7)),
        (Value::Bool(true), Value::Bool(true)),
        (Value::Bool(false), Value::Bool(false)),
        (Value::Double(0.5), Value::Double(0.5)),
        (Value::Double(1e21), Value::Double(1e21)),
        (Value::Double(-3.0), Value::Double(-3.0)),
        (Value::Nil, Value::Nil),
        (
            Value::Base64("aGVsbG8=".into()),
            Value::Base64("aGVsbG8=".into()),
        ),
        (Value::Array(vec![]), Value::Array(vec![])),
        (Value::Struct(vec![]), Value::Struct(vec![])),
        (
            Value::Struct(vec![
                ("k&<>\"".into(), s("v")),
                (
                    "n".into(),
                    Value::Array(vec![s("x"), Value::Int32(1), Value::Nil]),
                ),
            ]),
            Value::Struct(vec![
                ("k&<>\"".into(), s("v")),
                (
                    "n".into(),
                    Value::Array(vec![s("x"), Value::Int(1), Value::Nil]),
                ),
            ]),
        ),
        (
            nested(nested(Value::Bool(true))),
            nested(nested(Value::Bool(true))),
        ),
    ]
}

#[test]
fn write_then_parse_round_trips() {
    let mut all = samples();
    all.push((
        Value::DateTime("20240101T12:00:00Z".into()),
        Value::DateTime("20240101T12:00:00Z".into()),
    ));
    let mut body = b"<methodCall><methodName>m</methodName><params>".to_vec();
    for (value, _) in &all {
        body.extend_from_slice(b"<param>");
        write_value(&mut body, value);
        body.extend_from_slice(b"</param>");
    }
    body.extend_from_slice(b"</params></methodCall>");
    let c = parse_call(&body).unwrap();
    let want: Vec<Value> = all.into_iter().map(|(_, back)| back).collect();
    assert_eq!(c.params, want);
    // Reading our output and writing it again is byte-stable.
    for v in &c.params {
        let frag = value_fragment(v);
        assert_eq!(value_fragment(&param(&frag)), frag);
    }
}

/// What an XML-RPC reader that follows the spec must see in our output.
fn as_dxr(v: &Value) -> dxr::Value {
    match v {
        Value::String(s) => dxr::Value::String(s.clone()),
        Value::Int(i) => dxr::Value::String(i.to_string()),
        Value::Int32(i) => dxr::Value::Integer(*i),
        Value::Bool(b) => dxr::Value::Boolean(*b),
        Value::Double(d) => dxr::Value::Double(*d),
        Value::Base64(text) => {
            assert_eq!(text, "aGVsbG8=", "only this sample is decoded here");
            dxr::Value::Base64(b"hello".to_vec())
        }
        Value::Array(items) => dxr::Value::Array(items.iter().map(as_dxr).collect()),
        Value::Struct(members) => dxr::Value::Struct(
            members
                .iter()
                .map(|(k, v)| (k.clone(), as_dxr(v)))
                .collect(),
        ),
        Value::Nil => dxr::Value::Nil,
        Value::DateTime(_) => unreachable!("dxr cannot read xapi's dates"),
        Value::Encoded(..) => unreachable!("not among the samples"),
    }
}

#[test]
fn dxr_reads_what_we_write() {
    for (value, _) in samples() {
        let mut out = Vec::new();
        write_bare(&mut out, &value);
        let text = String::from_utf8(out).unwrap();
        let got = dxr::MethodResponse::from_xml(&text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .value;
        assert_eq!(got, as_dxr(&value), "{text}");
        let got = dxr::Value::from_xml(&value_fragment(&value)).unwrap();
        assert_eq!(got, as_dxr(&value));
    }
}

#[test]
fn dxr_reads_both_envelopes() {
    let value = Value::Array(vec![s("a<b"), Value::Int(3)]);
    let got = dxr::MethodResponse::from_xml(&response(Ok(value.clone()))).unwrap();
    let want = as_dxr(&Value::Struct(vec![
        ("Status".into(), s("Success")),
        ("Value".into(), value),
    ]));
    assert_eq!(got.value, want);

    let err = ApiError::handle_invalid("task", "OpaqueRef:x&y");
    let got = dxr::MethodResponse::from_xml(&response(Err(err))).unwrap();
    let want = as_dxr(&Value::Struct(vec![
        ("Status".into(), s("Failure")),
        (
            "ErrorDescription".into(),
            Value::Array(vec![s("HANDLE_INVALID"), s("task"), s("OpaqueRef:x&y")]),
        ),
    ]));
    assert_eq!(got.value, want);
}

#[test]
fn the_escape_scan_finds_exactly_what_escape_changes() {
    for b in 0..=255u8 {
        assert_eq!(
            NEEDS_ESCAPE[usize::from(b)],
            ESCAPES[usize::from(b)] != 0,
            "{b:#x}"
        );
        assert_eq!(needs_escape(b), NEEDS_ESCAPE[usize::from(b)], "{b:#x}");
    }
}
