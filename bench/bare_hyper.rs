//! The limit: a bare hyper server that answers every request with one fixed response, read
//! from the file named by its second argument. The benchmark captures that file from
//! xapi-taskd itself (status line, headers, blank line, body: a real `task.get_record`
//! reply, or a Redfish Task), so both servers send the same bytes with the same headers:
//! hyper adds `date` and `content-length` to both, so those two are not taken from the file.
//!
//! It does what any hyper server must do for a request and nothing more: the same
//! runtime as xapi-taskd (tokio multi-threaded, one worker per core), `TCP_NODELAY`, the
//! request body read whole, the response built from its parts. No timers, no parsing.
//!
//! With a third argument it is also the fan-out limit: a POST whose body names
//! `event.from` blocks until the next POST naming `set_progress`, then gets the response
//! of that file (a real `event.from` reply). That is hyper, tokio and the kernel holding N
//! connections and answering all of them at once, with no application work at all.
//!
//! Usage: bare-hyper ADDR REPLY_FILE [EVENT_REPLY_FILE]
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The same allocator as xapi-taskd, called the same way (`xapi_taskd::alloc`), so that
/// the limit is not handicapped by glibc's and each allocation costs both the same.
#[global_allocator]
static GLOBAL: xapi_taskd::alloc::Allocator = xapi_taskd::alloc::Allocator;

/// One response to send, parsed once from its file.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Reply {
    /// `HTTP/1.1 200 OK\r\nname: value\r\n…\r\n\r\nbody`, as the benchmark saved it.
    fn read(file: &str) -> Reply {
        let raw = std::fs::read(file).expect("reply file");
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .filter(|(name, _)| name != "date" && name != "content-length")
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                    HeaderValue::from_str(&value).expect("a header value"),
                )
            })
            .collect();
        Reply {
            status,
            headers,
            body: Bytes::copy_from_slice(&raw[end + 4..]),
        }
    }

    /// The response, built per request as a server builds its own.
    fn response(&self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body.clone()));
        *resp.status_mut() = self.status;
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        *resp.headers_mut() = headers;
        resp
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reply = Arc::new(Reply::read(&args[2]));
    let event_reply = args.get(3).map(|f| Arc::new(Reply::read(f)));
    let change = Arc::new(Notify::new());
    let listener = tokio::net::TcpListener::bind(&args[1]).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (reply, event_reply, change) = (reply.clone(), event_reply.clone(), change.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (reply, event_reply, change) =
                    (reply.clone(), event_reply.clone(), change.clone());
                async move {
                    let request = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let resp = match event_reply {
                        Some(event) if contains(&request, b"event.from") => {
                            change.notified().await;
                            event.response()
                        }
                        Some(_) if contains(&request, b"set_progress") => {
                            change.notify_waiters();
                            reply.response()
                        }
                        _ => reply.response(),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
