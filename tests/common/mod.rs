//! Shared set-up for the in-process integration tests: a real service on a temporary
//! data dir, served on 127.0.0.1:0, and a minimal raw HTTP/1.1 client so that tests see
//! the exact bytes on the wire.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xapi_taskd::api::dispatch::{self, Reply, RequestMeta, Service};
use xapi_taskd::config::Settings;
use xapi_taskd::serve::open_service;
use xapi_taskd::server::{self, Limits};
use xapi_taskd::wire::value::Value;

pub const ROOT_PASSWORD: &str = "root-secret";

pub struct TestServer {
    pub svc: Arc<Service>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start() -> TestServer {
    start_with_task_limit(100_000).await
}

pub async fn start_with_task_limit(max_unfinished_tasks: usize) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = Settings::defaults(dir.path().to_path_buf());
    settings.listen = addr;
    settings.max_unfinished_tasks = max_unfinished_tasks;
    let (svc, _) = open_service(&settings, Some(ROOT_PASSWORD)).expect("service");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server_svc = svc.clone();
    tokio::spawn(async move {
        let listeners = vec![server::Listener {
            tcp: listener,
            tls: None,
        }];
        server::run(listeners, server_svc, Limits::default(), async {
            let _ = rx.await;
        })
        .await;
    });
    TestServer {
        svc,
        addr,
        dir,
        stop: Some(tx),
    }
}

/// Calls through the dispatcher directly (no HTTP), returning the envelope's result.
pub async fn call(
    svc: &Arc<Service>,
    method: &str,
    params: Vec<Value>,
) -> Result<Value, Vec<String>> {
    match dispatch::dispatch(svc, dispatch::call(method, params), &RequestMeta::default()).await {
        Reply::Envelope(r) => r.map_err(|e| e.description()),
        Reply::Bare(v) => Ok(v),
    }
}

pub fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

pub async fn login_root(svc: &Arc<Service>) -> String {
    match call(
        svc,
        "session.login_with_password",
        vec![s("root"), s(ROOT_PASSWORD)],
    )
    .await
    {
        Ok(Value::String(r)) => r,
        other => panic!("login failed: {other:?}"),
    }
}

/// One HTTP exchange on an open connection: returns (status line, headers, body).
pub async fn exchange(
    conn: &mut TcpStream,
    method: &str,
    path: &str,
    extra_headers: &str,
    body: &[u8],
) -> (String, Vec<(String, String)>, Vec<u8>) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    read_response(conn).await
}

pub async fn read_response(conn: &mut TcpStream) -> (String, Vec<(String, String)>, Vec<u8>) {
    let (head, body) = read_raw_response(conn).await;
    let mut lines = head.trim_end().split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}

/// One response as it came: its head as sent (status line and headers, up to and
/// including the blank line) and its body (as long as its `content-length` says).
pub async fn read_raw_response(conn: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let len: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 65536];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    (head, body)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An XML-RPC call body with untyped string params.
pub fn xml_call(method: &str, params: &[&str]) -> Vec<u8> {
    let mut out =
        format!("<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>");
    for p in params {
        out.push_str(&format!("<param><value>{p}</value></param>"));
    }
    out.push_str("</params></methodCall>");
    out.into_bytes()
}

/// A struct value's member (a test failure if it has none).
pub fn member<'a>(v: &'a Value, name: &str) -> &'a Value {
    match v {
        Value::Struct(m) => {
            &m.iter()
                .find(|(k, _)| k == name)
                .unwrap_or_else(|| panic!("no {name} in {v:?}"))
                .1
        }
        _ => panic!("not a struct: {v:?}"),
    }
}

/// An `event.from` batch's token.
pub fn token(batch: &Value) -> String {
    member(batch, "token").as_str().unwrap().to_string()
}

/// `event.from` through the dispatcher.
pub async fn from(
    svc: &Arc<Service>,
    session: &str,
    classes: &[&str],
    tok: &str,
    timeout: f64,
) -> Value {
    let classes = Value::Array(classes.iter().map(|c| s(c)).collect());
    call(
        svc,
        "event.from",
        vec![s(session), classes, s(tok), Value::Double(timeout)],
    )
    .await
    .expect("event.from")
}

/// A new task of `session`'s, labelled `label`.
pub async fn create(svc: &Arc<Service>, session: &str, label: &str) -> String {
    match call(svc, "task.create", vec![s(session), s(label), s("")])
        .await
        .unwrap()
    {
        Value::String(r) => r,
        v => panic!("{v:?}"),
    }
}
