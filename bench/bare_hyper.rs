//! The limit: a bare hyper server that answers every POST with a fixed body, read from the
//! file named by its second argument (the benchmark passes a real `task.get_record`
//! reply, so both servers send the same bytes). Usage: bare-hyper ADDR BODY_FILE
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let body = Bytes::from(std::fs::read(&args[2]).expect("body file"));
    let listener = tokio::net::TcpListener::bind(&args[1]).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    let _ = req.into_body().collect().await;
                    let mut resp = Response::new(Full::new(body));
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
