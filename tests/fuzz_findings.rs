//! What the fuzz targets (`fuzz/`) found, each kept as a test of the fixed behaviour
//! (docs/security.md, Fuzzing).

use xapi_taskd::wire::jsonrpc::{self, format_float};
use xapi_taskd::wire::value::Value;

/// jsonrpc_call, round trip: serde_json's default float parser is not correctly rounded,
/// so a double the server wrote (`%.17g`, as Yojson) could read back one ulp off, and a
/// client's double was not always the value it sent (xapi reads JSON with strtod, which is
/// exact). Fixed by serde_json's `float_roundtrip`.
#[test]
fn json_doubles_read_back_exactly() {
    // The input the fuzzer found: an integer too large for int64 becomes a double.
    let body = br#"{"jsonrpc":"2.0","method":"x","params":[9223373036854725807],"id":1}"#;
    let call = jsonrpc::parse_call(body).unwrap();
    let Value::Double(d) = call.params[0] else {
        panic!("{:?}", call.params);
    };
    let written = format_float(d);
    let body = format!(r#"{{"jsonrpc":"2.0","method":"x","params":[{written}],"id":1}}"#);
    let again = jsonrpc::parse_call(body.as_bytes()).unwrap();
    assert_eq!(again.params, vec![Value::Double(d)], "{written}");
    // And a few more doubles whose shortest forms need 17 digits.
    for d in [
        0.1 + 0.2,
        1.0 / 3.0,
        2.0f64.powi(60) + 2048.0,
        123_456_789.123_456_79,
        5e-324,
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"x","params":[{}],"id":1}}"#,
            format_float(d)
        );
        let back = jsonrpc::parse_call(body.as_bytes()).unwrap();
        assert_eq!(back.params, vec![Value::Double(d)], "{d:e}");
    }
}

/// The Python differential (tests/xmlrpc_vs_python.rs) on the fuzzed corpus: our reader
/// took any `<?xml …?>` and any `<?…?>` (quick-xml hands both over unchecked), where
/// xapi's Xmlm and Python's expat refuse a malformed declaration and a processing
/// instruction without a target. The inputs the fuzzer found, and their well-formed twins.
#[test]
fn malformed_xml_declarations_and_processing_instructions_are_refused() {
    use xapi_taskd::wire::xmlrpc::parse_call;
    let call = "<methodCall><methodName>m</methodName><params/></methodCall>";
    // (prolog, accepted)
    let cases = [
        ("<?xml ve\u{fffd}rsion='1.0'?>", false),
        ("<?xml version='^^^^1.0'?>", false),
        ("<?xml version='2.0'?>", false),
        ("<?xml?>", false),
        ("<?xml encoding='utf-8'?>", false),
        ("<?xml version='1.0' encoding='klingon'?>", false),
        ("<?xml version='1.0' standalone='maybe'?>", false),
        ("<?xml version='1.0' extra='x'?>", false),
        (
            "<?xml version='1.0' standalone='yes' encoding='utf-8'?>",
            false,
        ),
        ("<? sxmlevon='107'?>", false),
        ("<?=x?>", false),
        ("", true),
        ("<?xml version='1.0'?>", true),
        ("<?xml version=\"1.1\" encoding=\"UTF-8\"?>", true),
        (
            "<?xml version='1.0' encoding='iso-8859-1' standalone='no'?>",
            true,
        ),
        ("<?xml version='1.0'?><?xml-stylesheet href='a.css'?>", true),
        // Xmlm reads the target as a name and skips the rest up to `?>`.
        ("<?xion='1.0'?>", true),
    ];
    for (prolog, accepted) in cases {
        let body = format!("{prolog}{call}");
        assert_eq!(parse_call(body.as_bytes()).is_ok(), accepted, "{body}");
    }
}
