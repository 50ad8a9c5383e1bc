//! A fan-out's replies, byte for byte: waiters of different shapes woken by one change
//! (subscriptions, tokens, sessions, XML-RPC and JSON-RPC with their ids, a session
//! logged out while waiting, a token already behind) each get exactly the bytes a lone
//! `event.from` with the same call gets, head (but for its date) and body, and the head is
//! xapi's. Waiters with the same batch share its written
//! bytes (for XML-RPC the whole reply), so a sharing that crossed two shapes would show
//! here as one waiter getting another's bytes.

mod common;

use common::{call, create, from, login_root, s, start, token};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use xapi_taskd::wire::value::Value;

/// One waiter's call: which face, which session, subscriptions and token, and for
/// JSON-RPC its version and id.
#[derive(Clone)]
struct Shape {
    json: Option<(&'static str, &'static str)>,
    session: String,
    subs: Vec<String>,
    token: String,
}

impl Shape {
    fn request(&self) -> Vec<u8> {
        let (path, body) = match self.json {
            None => {
                let subs: String = self
                    .subs
                    .iter()
                    .map(|c| format!("<value>{c}</value>"))
                    .collect();
                let body = format!(
                    "<?xml version=\"1.0\"?><methodCall><methodName>event.from</methodName><params>\
                     <param><value>{}</value></param>\
                     <param><value><array><data>{subs}</data></array></value></param>\
                     <param><value>{}</value></param>\
                     <param><value><double>30</double></value></param></params></methodCall>",
                    self.session, self.token
                );
                ("/", body)
            }
            Some((version, id)) => {
                let subs: Vec<String> = self.subs.iter().map(|c| format!("\"{c}\"")).collect();
                let version = match version {
                    "1.0" => String::new(),
                    v => format!("\"jsonrpc\":\"{v}\","),
                };
                let body = format!(
                    "{{{version}\"method\":\"event.from\",\"params\":[\"{}\",[{}],\"{}\",30.0],\"id\":{id}}}",
                    self.session,
                    subs.join(","),
                    self.token
                );
                ("/jsonrpc", body)
            }
        };
        format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// Sends a shape's call on a new connection without reading the reply.
async fn send(addr: std::net::SocketAddr, shape: &Shape) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(&shape.request()).await.unwrap();
    conn
}

/// The reply's status line, its head as sent but for the `date` line (every header, in
/// order, as bytes: the server writes a woken waiter's head from prepared headers, which
/// must give exactly what it wrote before), and its body.
async fn reply(conn: &mut TcpStream) -> (String, String, Vec<u8>) {
    let (head, body) = common::read_raw_response(conn).await;
    let (status, rest) = head.split_once("\r\n").unwrap();
    let head: String = rest
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("date: "))
        .collect();
    assert!(
        head.contains("content-length: "),
        "a content-length: {head}"
    );
    (status.to_string(), head, body)
}

/// xapi's head of an API answer (`api_server.ml`), as this server has always sent it:
/// the content type and the two CORS headers in that order, then hyper's length (the
/// `date` line is left out by [`reply`]).
fn xapi_head(content_type: &str, body: &[u8]) -> String {
    format!(
        "content-type: {content_type}\r\naccess-control-allow-origin: *\r\n\
         access-control-allow-headers: X-Requested-With\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
}

/// What a lone call of `shape` gets now, with the kept batch replaced first by another
/// (a call of another key), so that this one is collected and written afresh.
async fn lone(addr: std::net::SocketAddr, root: &str, shape: &Shape) -> (String, String, Vec<u8>) {
    let other = Shape {
        json: None,
        session: root.to_string(),
        subs: vec!["pool".into()],
        token: String::new(),
    };
    let (_, _, body) = reply(&mut send(addr, &other).await).await;
    assert!(String::from_utf8_lossy(&body).contains("<value>add</value>"));
    reply(&mut send(addr, shape).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_woken_waiter_gets_the_bytes_a_lone_call_gets() {
    let srv = start().await;
    let addr = srv.addr;
    let root = login_root(&srv.svc).await;
    let other_session = login_root(&srv.svc).await;
    let leaving = login_root(&srv.svc).await;
    let behind = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let task = create(&srv.svc, &root, "watched").await;
    let other_task = create(&srv.svc, &root, "unwatched").await;
    let now = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let shape = |json, session: &str, subs: &[&str], token: &str| Shape {
        json,
        session: session.to_string(),
        subs: subs.iter().map(|c| c.to_string()).collect(),
        token: token.to_string(),
    };
    let one = format!("task/{task}");
    // Waiters of the watched task alone, woken by the second change.
    let on_task = vec![
        // The same batch three times: they share it.
        shape(None, &root, &[&one], &now),
        shape(None, &root, &[&one], &now),
        shape(None, &root, &[&one], &now),
        // Another session, the same call: the same batch, its own session checked.
        shape(None, &other_session, &[&one], &now),
        // JSON-RPC: the same batch, each reply with its own id and version.
        shape(Some(("2.0", "7")), &root, &[&one], &now),
        shape(Some(("2.0", "\"seven\"")), &root, &[&one], &now),
        shape(Some(("1.0", "8")), &root, &[&one], &now),
    ];
    // Waiters of every task, woken by the first.
    let on_class = vec![
        shape(None, &root, &["task"], &now),
        shape(None, &root, &["*"], &now),
        shape(Some(("2.0", "9")), &root, &["task"], &now),
        shape(Some(("2.0", "10")), &root, &["task"], &now),
    ];
    let mut task_conns = Vec::new();
    for sh in &on_task {
        task_conns.push(send(addr, sh).await);
    }
    let mut class_conns = Vec::new();
    for sh in &on_class {
        class_conns.push(send(addr, sh).await);
    }
    let gone = shape(None, &leaving, &[&one], &now);
    let mut gone_conn = send(addr, &gone).await;
    // Let them all block (if one has not, it answers the same bytes anyway).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    call(&srv.svc, "session.logout", vec![s(&leaving)])
        .await
        .unwrap();
    let gone_reply = reply(&mut gone_conn).await;
    assert!(
        String::from_utf8_lossy(&gone_reply.2).contains("SESSION_INVALID"),
        "{}",
        String::from_utf8_lossy(&gone_reply.2)
    );
    assert_eq!(gone_reply.1, xapi_head("text/xml", &gone_reply.2));
    assert_eq!(gone_reply, lone(addr, &root, &gone).await);

    let set_progress = |t: &str, p: f64| {
        let (svc, root, t) = (srv.svc.clone(), root.clone(), t.to_string());
        async move {
            call(
                &svc,
                "task.set_progress",
                vec![s(&root), s(&t), Value::Double(p)],
            )
            .await
            .unwrap()
        }
    };
    // The unwatched task first: the class waiters answer, the task waiters sleep on.
    set_progress(&other_task, 0.25).await;
    let got = replies(&mut class_conns).await;
    compare(addr, &root, &on_class, &got, &other_task).await;
    set_progress(&task, 0.5).await;
    let got = replies(&mut task_conns).await;
    // A waiter already behind, while the woken ones' XML-RPC batch is kept (a call of
    // the first shape keeps it, if a JSON-RPC waiter's replaced it).
    let again = reply(&mut send(addr, &on_task[0]).await).await;
    assert_eq!(again, got[0]);
    let late = shape(None, &root, &[&one], &behind);
    let late_reply = reply(&mut send(addr, &late).await).await;
    compare(addr, &root, &on_task, &got, &task).await;
    assert!(String::from_utf8_lossy(&late_reply.2).contains("<value>add</value>"));
    assert_eq!(late_reply, lone(addr, &root, &late).await);
    // The shared XML-RPC replies are one body; the JSON-RPC ones carry their own ids.
    assert_eq!(got[0], got[1]);
    assert_eq!(got[0], got[3]);
    assert_ne!(got[4], got[5]);
    assert!(String::from_utf8_lossy(&got[5].2).contains("\"id\":\"seven\""));
    assert!(!String::from_utf8_lossy(&got[6].2).contains("jsonrpc"));
}

async fn replies(conns: &mut [TcpStream]) -> Vec<(String, String, Vec<u8>)> {
    let mut got = Vec::new();
    for conn in conns.iter_mut() {
        got.push(reply(conn).await);
    }
    got
}

/// Compares each woken waiter's reply with a lone call's, byte for byte (status, head
/// but for its date, body), and its head with xapi's.
async fn compare(
    addr: std::net::SocketAddr,
    root: &str,
    shapes: &[Shape],
    got: &[(String, String, Vec<u8>)],
    changed: &str,
) {
    for (i, (sh, got)) in shapes.iter().zip(got).enumerate() {
        let expected = lone(addr, root, sh).await;
        assert_eq!(got.0, expected.0, "waiter {i}: status");
        assert_eq!(got.1, expected.1, "waiter {i}: head");
        let ctype = if sh.json.is_some() {
            "application/json"
        } else {
            "text/xml"
        };
        assert_eq!(got.1, xapi_head(ctype, &got.2), "waiter {i}: head");
        assert_eq!(
            String::from_utf8_lossy(&got.2),
            String::from_utf8_lossy(&expected.2),
            "waiter {i}: body"
        );
        let body = String::from_utf8_lossy(&got.2);
        assert!(body.contains(changed) && body.contains("mod"), "{body}");
    }
}
