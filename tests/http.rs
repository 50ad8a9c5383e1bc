//! The HTTP face over a real socket: exact response bytes and headers, CORS pre-flight,
//! keep-alive, limits and malformed bodies (the server must carry on after each).

mod common;

use common::{exchange, header, start, xml_call};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const OK_PREFIX: &str = "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name>";
const OK_SUFFIX: &str = "</member></struct></value></param></params></methodResponse>";

async fn login(conn: &mut TcpStream) -> String {
    let (_, _, body) = exchange(
        conn,
        "POST",
        "/RPC2",
        "",
        &xml_call(
            "session.login_with_password",
            &["root", common::ROOT_PASSWORD],
        ),
    )
    .await;
    let body = String::from_utf8(body).unwrap();
    let start = body.find("OpaqueRef:").expect("a session ref");
    body[start..start + 46].to_string()
}

#[tokio::test]
async fn success_envelope_bytes_and_headers() {
    let srv = start().await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let session = login(&mut conn).await;
    // Keep-alive: the same connection serves the next calls.
    let (status, headers, body) = exchange(
        &mut conn,
        "POST",
        "/",
        "",
        &xml_call("task.create", &[&session, "label", "desc"]),
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "content-type"), Some("text/xml"));
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&headers, "access-control-allow-headers"),
        Some("X-Requested-With")
    );
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with(OK_PREFIX), "{body}");
    let task = body[OK_PREFIX.len() + "<value>".len()..]
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(task.starts_with("OpaqueRef:"));

    // Every path serves XML-RPC; each reply is the exact success envelope.
    for (path, method, params, value) in [
        (
            "/xmlrpc",
            "task.set_progress",
            vec![&*session, &*task, "0.25"],
            "<value></value>",
        ),
        (
            "/any/path",
            "task.get_progress",
            vec![&*session, &*task],
            "<value><double>0.25</double></value>",
        ),
        (
            "/",
            "task.get_name_label",
            vec![&*session, &*task],
            "<value>label</value>",
        ),
    ] {
        let (_, _, body) = exchange(&mut conn, "POST", path, "", &xml_call(method, &params)).await;
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("{OK_PREFIX}{value}{OK_SUFFIX}"),
            "{method} on {path}"
        );
    }
}

#[tokio::test]
async fn failure_envelope_bytes() {
    let srv = start().await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let (_, _, body) = exchange(
        &mut conn,
        "POST",
        "/",
        "",
        &xml_call("task.get_all", &["OpaqueRef:x"]),
    )
    .await;
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>SESSION_INVALID</value><value>OpaqueRef:x</value></data></array></value></member></struct></value></param></params></methodResponse>"
    );
}

#[tokio::test]
async fn list_methods_has_no_envelope_and_parses_as_standard_xmlrpc() {
    let srv = start().await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let (_, _, body) = exchange(
        &mut conn,
        "POST",
        "/",
        "",
        &xml_call("system.listMethods", &[]),
    )
    .await;
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with(
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data><value>"
    ));
    // Independent cross-check: dxr, a standard XML-RPC implementation, reads our output.
    let resp = dxr::MethodResponse::from_xml(&body).expect("dxr parses the response");
    let names: Vec<String> =
        dxr::TryFromValue::try_from_value(&resp.value).expect("array of strings");
    assert!(names.iter().any(|n| n == "task.get_all_records"));
}

#[tokio::test]
async fn cors_preflight_as_xapi() {
    let srv = start().await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let (status, headers, body) = exchange(
        &mut conn,
        "OPTIONS",
        "/jsonrpc",
        "Access-Control-Request-Headers: content-type\r\n",
        b"",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.is_empty());
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&headers, "access-control-allow-methods"),
        Some("PUT")
    );
    assert_eq!(
        header(&headers, "access-control-allow-headers"),
        Some("content-type, X-Requested-With")
    );
}

#[tokio::test]
async fn oversized_body_is_refused_unread_and_the_server_carries_on() {
    let srv = start().await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let head =
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: text/xml\r\nContent-Length: 10000000\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    let (status, headers, body) = common::read_response(&mut conn).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    assert_eq!(header(&headers, "connection"), Some("close"));
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("exceeds the limit of 307200 bytes")
    );
    // A fresh connection is served normally.
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    assert_serves_xmlrpc(&mut conn).await;
}

#[tokio::test]
async fn malformed_xml_gets_an_unmarshal_failure_and_the_connection_lives() {
    let srv = start().await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    for bad in [
        &b"<methodCall><methodName>x</methodName>"[..],
        b"not xml at all",
        b"<methodCall><methodName>task.get_all</methodName></methodCall>",
        b"\xff\xfe<<<",
    ] {
        let (status, _, body) = exchange(&mut conn, "POST", "/", "", bad).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.contains("<value>XMLRPC_UNMARSHAL_FAILURE</value>"),
            "{body}"
        );
    }
    assert_serves_xmlrpc(&mut conn).await;
}

#[tokio::test]
async fn get_is_not_allowed() {
    let srv = start().await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let (status, headers, _) = exchange(&mut conn, "GET", "/RPC2", "", b"").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(header(&headers, "allow"), Some("POST, OPTIONS"));
}

/// `GET /` is the web page (src/web/); a POST to `/` on the same connection is still
/// XML-RPC.
#[tokio::test]
async fn get_slash_is_the_web_page_and_post_slash_stays_xmlrpc() {
    let srv = start().await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let (status, headers, body) = exchange(&mut conn, "GET", "/", "", b"").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "content-security-policy"),
        Some(xapi_taskd::web::CONTENT_SECURITY_POLICY)
    );
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert!(String::from_utf8(body).unwrap().contains("/ui/app.js"));
    assert_serves_xmlrpc(&mut conn).await;
}

/// The connection still serves XML-RPC on `/`: a `system.listMethods` call answers.
async fn assert_serves_xmlrpc(conn: &mut TcpStream) {
    let (status, _, body) =
        exchange(conn, "POST", "/", "", &xml_call("system.listMethods", &[])).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(String::from_utf8(body).unwrap().contains("task.create"));
}
