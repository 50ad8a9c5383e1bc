//! The fast call readers (`wire/xmlrpc_fast.rs`, `wire/jsonrpc_fast.rs`) against the
//! general ones, on the same bytes: the committed fuzz corpus (seeded from the tests,
//! grown by fuzzing, minimised) and the bodies real clients send. For every input the
//! entry point (`parse_call`, fast path first) must give exactly what the general reader
//! alone gives, errors included; and the real clients' bodies must take the fast path
//! (checked through the unit tests beside the readers). The `xmlrpc_call` and
//! `jsonrpc_call` fuzz targets assert the same on any bytes.

use std::path::Path;

use xapi_taskd::wire::{jsonrpc, xmlrpc};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(
        inputs.len() > 50,
        "{}: {} inputs",
        dir.display(),
        inputs.len()
    );
    inputs.sort();
    inputs
}

/// Debug text: exact, except that it reads NaN doubles as equal.
/// A call with its method name owned, so that calls read from different bodies compare.
fn owned(c: xmlrpc::MethodCall<'_>) -> xmlrpc::MethodCall<'static> {
    xmlrpc::MethodCall {
        method: c.method.into_owned().into(),
        params: c.params,
        invalid_utf8_param: c.invalid_utf8_param,
        chars_ok: c.chars_ok,
    }
}

fn owned_json(c: jsonrpc::JsonCall<'_>) -> jsonrpc::JsonCall<'static> {
    jsonrpc::JsonCall {
        version: c.version,
        id: c.id,
        method: c.method.into_owned().into(),
        params: c.params,
        chars_ok: c.chars_ok,
    }
}

fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Python's `xmlrpc.client` bodies (the XenAPI SDK), xapi's own form, and variants of
/// the prolog that the general reader refuses or reads.
const XML_BODIES: &[&str] = &[
    "<?xml version='1.0'?>\n<methodCall>\n<methodName>task.get_record</methodName>\n<params>\n\
     <param>\n<value><string>OpaqueRef:a</string></value>\n</param>\n<param>\n<value><string>\
     OpaqueRef:b</string></value>\n</param>\n</params>\n</methodCall>\n",
    "<?xml version=\"1.0\"?><methodCall><methodName>task.get_record</methodName><params>\
     <param><value>OpaqueRef:a</value></param></params></methodCall>",
    "<?xml version='9.9'?><methodCall><methodName>m</methodName><params></params></methodCall>",
    "<?xml version='1.0' encoding='EBCDIC'?><methodCall><methodName>m</methodName><params>\
     </params></methodCall>",
    "<?xml version='1.0' encoding='utf-8'?><methodCall><methodName>m</methodName><params>\
     </params></methodCall>",
    "<?xml version='1.0' bogus='1'?><methodCall><methodName>m</methodName><params>\
     </params></methodCall>",
    "<?xml version=\"1.0'?><methodCall><methodName>m</methodName><params></params></methodCall>",
];

/// Every input through the entry point (fast path first) and through the general reader
/// alone: the same result each time; and both accepted and refused inputs were compared.
fn compare<T: std::fmt::Debug, E: std::fmt::Debug>(
    inputs: &[Vec<u8>],
    entry: fn(&[u8]) -> Result<T, E>,
    general: fn(&[u8]) -> Result<T, E>,
) {
    let mut accepted = 0;
    for body in inputs {
        let (ours, theirs) = (entry(body), general(body));
        assert!(
            same(&ours, &theirs),
            "{:?}\n fast path: {ours:?}\n general: {theirs:?}",
            String::from_utf8_lossy(body)
        );
        accepted += usize::from(ours.is_ok());
    }
    assert!(
        accepted > 10 && accepted < inputs.len(),
        "{accepted}/{}",
        inputs.len()
    );
}

#[test]
fn xmlrpc_fast_path_is_the_general_reader() {
    let mut inputs = corpus("xmlrpc_call");
    inputs.extend(XML_BODIES.iter().map(|b| b.as_bytes().to_vec()));
    compare(
        &inputs,
        |b| xmlrpc::parse_call(b).map(owned),
        |b| xmlrpc::parse_call_general(b).map(owned),
    );
    // The declarations Xmlm refuses are refused through the entry point too.
    for body in &XML_BODIES[2..] {
        let refused = !body.contains("utf-8");
        assert_eq!(
            xmlrpc::parse_call(body.as_bytes()).is_err(),
            refused,
            "{body}"
        );
    }
}

#[test]
fn jsonrpc_fast_path_is_the_general_reader() {
    let mut inputs = corpus("jsonrpc_call");
    inputs.push(
        br#"{"id":7,"jsonrpc":"2.0","method":"task.get_record","params":["OpaqueRef:a","OpaqueRef:b"]}"#
            .to_vec(),
    );
    inputs.push(
        br#"{"method": "session.login_with_password", "params": ["root", "pw"], "id": "1"}"#
            .to_vec(),
    );
    compare(
        &inputs,
        |b| jsonrpc::parse_call(b).map(owned_json),
        |b| jsonrpc::parse_general(b).map(owned_json),
    );
}
