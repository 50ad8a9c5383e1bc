//! The limit: a bare hyper server that answers every POST with a fixed body, read from the
//! file named by its second argument (the benchmark passes a real `task.get_record`
//! reply, so both servers send the same bytes).
//!
//! With a third argument it is also the fan-out limit: a POST whose body names
//! `event.from` blocks until the next POST naming `set_progress`, then gets the bytes of
//! that file (a real `event.from` reply). That is hyper, tokio and the kernel holding N
//! connections and answering all of them at once, with no application work at all.
//!
//! Usage: bare-hyper ADDR BODY_FILE [EVENT_BODY_FILE]
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The same allocator as xapi-taskd, so that the limit is not handicapped by glibc's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let body = Bytes::from(std::fs::read(&args[2]).expect("body file"));
    let event_body = args
        .get(3)
        .map(|f| Bytes::from(std::fs::read(f).expect("event body file")));
    let change = Arc::new(Notify::new());
    let listener = tokio::net::TcpListener::bind(&args[1]).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (body, event_body, change) = (body.clone(), event_body.clone(), change.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (body, event_body, change) = (body.clone(), event_body.clone(), change.clone());
                async move {
                    let request = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let reply = match event_body {
                        Some(event) if contains(&request, b"event.from") => {
                            change.notified().await;
                            event
                        }
                        Some(_) if contains(&request, b"set_progress") => {
                            change.notify_waiters();
                            body
                        }
                        _ => body,
                    };
                    let mut resp = Response::new(Full::new(reply));
                    resp.headers_mut()
                        .insert("content-type", "text/xml".parse().expect("header"));
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
