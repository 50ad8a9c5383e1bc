//! Tests of the XML-RPC codec: xapi's exact bytes, what real clients send, hostile input,
//! and an independent cross-check with dxr.

use super::*;

fn out(v: &Value) -> String {
    let mut o = Vec::new();
    write_value(&mut o, v);
    String::from_utf8(o).unwrap()
}

fn call(body: &str) -> MethodCall {
    parse_call(body.as_bytes()).unwrap_or_else(|e| panic!("{e} for {body}"))
}

#[test]
fn value_bytes_as_xapi() {
    assert_eq!(
        out(&Value::str("a<b>&\"c'")),
        "<value>a&lt;b&gt;&amp;&quot;c'</value>"
    );
    assert_eq!(
        out(&Value::str("tab\tnl\ncr\rbell\u{7}end")),
        "<value>tab\tnl\ncr\rbellend</value>"
    );
    assert_eq!(out(&Value::str("")), "<value></value>");
    assert_eq!(out(&Value::str("é€")), "<value>é€</value>");
    assert_eq!(out(&Value::Int(-42)), "<value>-42</value>");
    assert_eq!(out(&Value::Int32(5)), "<value><i4>5</i4></value>");
    assert_eq!(
        out(&Value::Bool(true)),
        "<value><boolean>1</boolean></value>"
    );
    assert_eq!(
        out(&Value::Bool(false)),
        "<value><boolean>0</boolean></value>"
    );
    assert_eq!(
        out(&Value::Double(1.0)),
        "<value><double>1</double></value>"
    );
    assert_eq!(
        out(&Value::Double(0.25)),
        "<value><double>0.25</double></value>"
    );
    assert_eq!(
        out(&Value::Double(1e21)),
        "<value><double>1e+21</double></value>"
    );
    assert_eq!(
        out(&Value::DateTime("20240101T12:00:00Z".into())),
        "<value><dateTime.iso8601>20240101T12:00:00Z</dateTime.iso8601></value>"
    );
    assert_eq!(out(&Value::Nil), "<value><nil/></value>");
    assert_eq!(
        out(&Value::Array(vec![])),
        "<value><array><data></data></array></value>"
    );
    assert_eq!(
        out(&Value::Array(vec![Value::str("a"), Value::Int(1)])),
        "<value><array><data><value>a</value><value>1</value></data></array></value>"
    );
    assert_eq!(
        out(&Value::Struct(vec![])),
        "<value><struct></struct></value>"
    );
    assert_eq!(
        out(&Value::Struct(vec![
            ("z".into(), Value::str("1")),
            ("a<&".into(), Value::str("2"))
        ])),
        "<value><struct><member><name>z</name><value>1</value></member><member><name>a&lt;&amp;</name><value>2</value></member></struct></value>"
    );
}

#[test]
fn envelopes_as_xapi() {
    let mut o = Vec::new();
    write_response(&mut o, &Ok(Value::str("OpaqueRef:x")));
    assert_eq!(
        String::from_utf8(o).unwrap(),
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value>OpaqueRef:x</value></member></struct></value></param></params></methodResponse>"
    );
    let mut o = Vec::new();
    write_response(
        &mut o,
        &Err(ApiError::new("SESSION_INVALID", ["OpaqueRef:4b3"])),
    );
    assert_eq!(
        String::from_utf8(o).unwrap(),
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>SESSION_INVALID</value><value>OpaqueRef:4b3</value></data></array></value></member></struct></value></param></params></methodResponse>"
    );
    let mut o = Vec::new();
    write_bare(&mut o, &Value::Array(vec![Value::str("task.create")]));
    assert_eq!(
        String::from_utf8(o).unwrap(),
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data><value>task.create</value></data></array></value></param></params></methodResponse>"
    );
    assert_eq!(
        value_fragment(&Value::str("OpaqueRef:a")),
        "<value>OpaqueRef:a</value>"
    );
    assert_eq!(value_fragment(&Value::void()), "<value></value>");
}

#[test]
fn python_xmlrpc_client_bodies() {
    let body = "<?xml version='1.0'?>\n<methodCall>\n<methodName>task.create</methodName>\n<params>\n<param>\n<value><string>OpaqueRef:s</string></value>\n</param>\n<param>\n<value><string>label with  spaces </string></value>\n</param>\n<param>\n<value><int>7</int></value>\n</param>\n<param>\n<value><double>0.5</double></value>\n</param>\n<param>\n<value><boolean>1</boolean></value>\n</param>\n<param>\n<value><nil/></value></param>\n<param>\n<value><array><data>\n<value><string>a</string></value>\n</data></array></value>\n</param>\n<param>\n<value><struct>\n<member>\n<name>k</name>\n<value><string>v</string></value>\n</member>\n</struct></value>\n</param>\n</params>\n</methodCall>\n";
    let c = call(body);
    assert_eq!(c.method, "task.create");
    assert_eq!(
        c.params,
        vec![
            Value::str("OpaqueRef:s"),
            Value::str("label with  spaces "),
            Value::Int(7),
            Value::Double(0.5),
            Value::Bool(true),
            Value::Nil,
            Value::Array(vec![Value::str("a")]),
            Value::Struct(vec![("k".into(), Value::str("v"))]),
        ]
    );
    assert_eq!(c.invalid_utf8_param, None);
}

#[test]
fn xen_orchestra_and_untyped_forms() {
    // Xen Orchestra: compact, untyped strings, empty tags with a space, `<params />`.
    let c = call(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodCall><methodName>event.from</methodName><params><param><value>OpaqueRef:s</value></param><param><value><array><data /></array></value></param><param><value>  spaced  </value></param><param><value><struct /></value></param><param><value /></param><param><value><i4>3</i4></value></param><param><value><i8>-9000000000</i8></value></param><param><value><string/></value></param></params></methodCall>",
    );
    assert_eq!(
        c.params,
        vec![
            Value::str("OpaqueRef:s"),
            Value::Array(vec![]),
            Value::str("  spaced  "),
            Value::Struct(vec![]),
            Value::str(""),
            Value::Int(3),
            Value::Int(-9_000_000_000),
            Value::str(""),
        ]
    );
    assert!(
        call("<methodCall><methodName>system.listMethods</methodName><params /></methodCall>")
            .params
            .is_empty()
    );
    assert!(
        call("<methodCall><methodName>m</methodName><params></params></methodCall>")
            .params
            .is_empty()
    );
}

#[test]
fn entities_char_refs_and_cdata() {
    let c = call(
        "<methodCall><methodName>m</methodName><params><param><value>a&amp;b&lt;c&gt;&quot;&apos;&#233;&#x41;</value></param><param><value><string><![CDATA[<raw>&]]></string></value></param></params></methodCall>",
    );
    assert_eq!(
        c.params,
        vec![Value::str("a&b<c>\"'éA"), Value::str("<raw>&")]
    );
    let mut bad = parse_call(b"<methodCall><methodName>m</methodName><params><param><value>&nope;</value></param></params></methodCall>");
    assert!(bad.is_err());
    bad = parse_call(b"<methodCall><methodName>m</methodName><params><param><value>&#xD800;</value></param></params></methodCall>");
    assert!(bad.is_err());
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    let cases: &[&[u8]] = &[
        b"",
        b"garbage",
        b"<methodCall>",
        b"<methodCall><methodName>m</methodName>",
        b"<methodCall><methodName>m</methodName></methodCall>",
        b"<methodResponse><params/></methodResponse>",
        b"<methodCall><methodName>m</methodName><params><param></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><int>x</int></value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><double>1.2.3</double></value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><foo/></value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value>a<string>b</string></value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params></params></methodCall><extra/>",
        b"<methodCall><methodName>m</methodName><params><param><value><struct><member><value>1</value></member></struct></value></param></params></methodCall>",
    ];
    for body in cases {
        let e = parse_call(body).expect_err(&String::from_utf8_lossy(body));
        assert!(!e.expected.is_empty());
        assert!(e.received.chars().count() <= 101);
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = 10_000;
    let body = format!(
        "<methodCall><methodName>m</methodName><params><param><value>{}1{}</value></param></params></methodCall>",
        "<array><data><value>".repeat(deep),
        "</value></data></array>".repeat(deep)
    );
    let e = parse_call(body.as_bytes()).unwrap_err();
    assert!(e.expected.contains("levels of nesting"), "{e}");
    let ok = format!(
        "<methodCall><methodName>m</methodName><params><param><value>{}1{}</value></param></params></methodCall>",
        "<array><data><value>".repeat(MAX_DEPTH - 1),
        "</value></data></array>".repeat(MAX_DEPTH - 1)
    );
    assert!(parse_call(ok.as_bytes()).is_ok());
}

#[test]
fn invalid_utf8_is_flagged_on_its_param() {
    let mut body = b"<methodCall><methodName>task.create</methodName><params><param><value>ok</value></param><param><value>bad".to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(b"</value></param></params></methodCall>");
    let c = parse_call(&body).unwrap();
    assert_eq!(c.invalid_utf8_param, Some(1));
    let mut body = b"<methodCall><methodName>m".to_vec();
    body.push(0xff);
    body.extend_from_slice(b"</methodName><params/></methodCall>");
    assert!(parse_call(&body).is_err());
}

#[test]
fn round_trips() {
    let v = Value::Struct(vec![
        ("s".into(), Value::str(" x & y ")),
        ("i".into(), Value::Int(i64::MIN)),
        ("f".into(), Value::Double(0.1)),
        ("b".into(), Value::Bool(false)),
        ("d".into(), Value::DateTime("19700101T00:00:00Z".into())),
        (
            "a".into(),
            Value::Array(vec![Value::Nil, Value::Array(vec![])]),
        ),
        (
            "m".into(),
            Value::Struct(vec![("k\"".into(), Value::str(""))]),
        ),
    ]);
    let mut body = b"<methodCall><methodName>m</methodName><params><param>".to_vec();
    write_value(&mut body, &v);
    body.extend_from_slice(b"</param></params></methodCall>");
    let c = parse_call(&body).unwrap();
    // Int64 is written untyped, so it reads back as a string (as with xapi).
    let Value::Struct(m) = &c.params[0] else {
        panic!()
    };
    assert_eq!(m[1].1, Value::str(i64::MIN.to_string()));
    assert_eq!(m[0].1, Value::str(" x & y "));
    assert_eq!(m[2].1, Value::Double(0.1));
    assert_eq!(m[6].1, Value::Struct(vec![("k\"".into(), Value::str(""))]));
}

/// dxr, an independent standard XML-RPC implementation, reads what we write.
#[test]
fn dxr_reads_our_output() {
    let v = Value::Struct(vec![
        ("name".into(), Value::str("a < b & \"c\"")),
        ("count".into(), Value::Int32(3)),
        ("ok".into(), Value::Bool(true)),
        ("progress".into(), Value::Double(0.25)),
        (
            "list".into(),
            Value::Array(vec![Value::str("x"), Value::str("y")]),
        ),
    ]);
    let mut o = Vec::new();
    write_bare(&mut o, &v);
    let resp = dxr::MethodResponse::from_xml(std::str::from_utf8(&o).unwrap()).expect("dxr parses");
    let dxr::Value::Struct(members) = resp.value else {
        panic!("dxr saw no struct")
    };
    assert_eq!(
        members.get("name"),
        Some(&dxr::Value::String("a < b & \"c\"".into()))
    );
    assert_eq!(members.get("count"), Some(&dxr::Value::Integer(3)));
    assert_eq!(members.get("ok"), Some(&dxr::Value::Boolean(true)));
    assert_eq!(members.get("progress"), Some(&dxr::Value::Double(0.25)));
    assert_eq!(
        members.get("list"),
        Some(&dxr::Value::Array(vec![
            dxr::Value::String("x".into()),
            dxr::Value::String("y".into())
        ]))
    );
}
