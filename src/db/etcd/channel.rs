//! The gRPC transport to one etcd member: one HTTP/2 connection, driven by one task of its
//! own, that a call's task writes its request into directly.
//!
//! etcd-client's own channel (tonic's `Channel` over a balancer) puts a `tower::Buffer`
//! worker between the caller and the connection, and hyper's HTTP/2 client adds a task
//! per request that waits for the response headers: a call crossed four tasks and back
//! (the caller, the buffer's worker, the connection, the request's own task), each
//! crossing a wake-up and, on a multi-threaded runtime, often a futex and a context
//! switch. Counted per `set_progress` at one client (bench/cluster.rs, `perf stat`), those
//! hops were most of what the front-end paid beyond etcd-client's own process doing the
//! same transaction from one thread (docs/performance.md, "Cluster mode (etcd)").
//!
//! Here the caller's task hands its request to h2 itself (h2's `SendRequest` queues the
//! frames under h2's own short lock and wakes the connection task, which writes them),
//! sends a unary body (ready at once) inline, and then waits on the response, which the
//! connection task hands straight back: one wake-up each way. A streaming body (the
//! watch's, a lease's keep-alives) goes from a small task of its own, as it must outlive
//! the call that opened it.
//!
//! What the library's channel did besides, this does too: it connects lazily (a member
//! that is down is tried again at the next call, within `connect_timeout`), with TLS when
//! configured (the CA, a client certificate, ALPN `h2`), pings the member every
//! `keep_alive` and drops the connection when a ping goes unanswered for as long (every
//! call and stream on it then fails, which moves the front-end to the next member:
//! [`super::conn`]), and reconnects after a connection ended. Errors are gRPC statuses
//! (`UNAVAILABLE`), whose messages keep the cause (the TLS failure, a refused connect).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as _, Frame};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_rustls::rustls;

type GrpcRequest = http::Request<tonic::body::Body>;
type GrpcResponse = http::Response<tonic::body::Body>;
type Sender = h2::client::SendRequest<Bytes>;

/// How to reach one member.
pub struct Target {
    /// `http` or `https`.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    connect_timeout: Duration,
    keep_alive: Duration,
}

impl Target {
    /// `endpoint` as etcd-client reads it: `http://host:port`, `https://host:port`, or
    /// `host:port` (TLS if `tls` is given).
    pub fn new(
        endpoint: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_timeout: Duration,
        keep_alive: Duration,
    ) -> Result<Target, String> {
        let (secure, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = endpoint.strip_prefix("http://") {
            (false, r)
        } else {
            (tls.is_some(), endpoint)
        };
        let authority: http::uri::Authority = rest
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("not an endpoint ({e})"))?;
        let tls = match (secure, tls) {
            (false, None) => None,
            (true, Some(config)) => {
                let host = authority
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| format!("not a host name for TLS ({e})"))?;
                Some((config, name))
            }
            (true, None) => return Err("https:// needs etcd-ca-file".into()),
            (false, Some(_)) => {
                return Err("TLS options are set: the endpoint must be https://".into());
            }
        };
        let scheme = if secure {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        };
        Ok(Target {
            scheme,
            authority,
            tls,
            connect_timeout,
            keep_alive,
        })
    }
}

/// A connection, or the attempt to make one: every caller that finds the slot empty waits
/// on the same attempt (bounded by `connect_timeout`).
type Slot = Arc<OnceCell<Result<Sender, String>>>;

/// How a connection's own task names its slot: not holding it (the slot holds a sender,
/// and a connection with a sender left never ends), so that dropping the channel ends the
/// connection once its streams are done.
type SlotRef = std::sync::Weak<OnceCell<Result<Sender, String>>>;

struct Shared {
    target: Target,
    /// Replaced by a fresh one when its connection failed or ended: the next call
    /// connects again.
    slot: Mutex<Slot>,
}

impl Shared {
    /// Forgets `dead` if it is still the current slot. (A weak reference keeps the
    /// allocation, so its address cannot be a newer slot's.)
    fn forget(&self, dead: &SlotRef) {
        let mut slot = self.slot.lock();
        if std::ptr::eq(Arc::as_ptr(&slot), dead.as_ptr()) {
            *slot = Arc::new(OnceCell::new());
        }
    }

    /// A sender on a live connection (connecting first if there is none), and the slot
    /// it came from.
    async fn sender(self: &Arc<Self>) -> Result<(Sender, SlotRef), tonic::Status> {
        let slot = self.slot.lock().clone();
        let made = slot
            .get_or_init(|| connect(Arc::downgrade(self), Arc::downgrade(&slot)))
            .await;
        let slot = Arc::downgrade(&slot);
        let sender = match made {
            Ok(s) => s.clone(),
            Err(e) => {
                let e = e.clone();
                self.forget(&slot);
                return Err(tonic::Status::unavailable(e));
            }
        };
        // A clone of the sender is ready at once (h2 queues streams past the member's
        // limit of concurrent streams itself); this finds a connection that has ended.
        // The callers' timeouts bound every wait on a call.
        match sender.ready().await {
            Ok(s) => Ok((s, slot)),
            Err(e) => {
                self.forget(&slot);
                Err(unavailable("the connection failed", &e))
            }
        }
    }
}

fn unavailable(what: &str, e: &dyn std::fmt::Display) -> tonic::Status {
    tonic::Status::unavailable(format!("{what}: {e}"))
}

/// Connects to the target and starts the task that drives the connection.
async fn connect(shared: std::sync::Weak<Shared>, slot: SlotRef) -> Result<Sender, String> {
    let Some(s) = shared.upgrade() else {
        return Err("the channel is closed".into());
    };
    let t = &s.target;
    let made = tokio::time::timeout(t.connect_timeout, async {
        let tcp = TcpStream::connect(t.authority.as_str())
            .await
            .map_err(|e| format!("connect to {}: {e}", t.authority))?;
        // Requests are small and answered one by one: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        match &t.tls {
            None => handshake(tcp, &t.keep_alive, shared.clone(), slot).await,
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                handshake(tls, &t.keep_alive, shared.clone(), slot).await
            }
        }
    })
    .await;
    match made {
        Ok(r) => r,
        Err(_) => Err(format!(
            "connect to {}: no answer in {:?}",
            t.authority, t.connect_timeout
        )),
    }
}

async fn handshake<T>(
    io: T,
    keep_alive: &Duration,
    shared: std::sync::Weak<Shared>,
    slot: SlotRef,
) -> Result<Sender, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // The windows hyper's client uses (tonic's default): a snapshot page of 1,000 rows
    // and a busy watch stream are not held back by the protocol's 64 KiB default.
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(5 * 1024 * 1024)
        .max_header_list_size(16 * 1024 * 1024)
        .handshake::<T, Bytes>(io)
        .await
        .map_err(|e| {
            if e.is_io() {
                format!("the connection closed during the HTTP/2 handshake ({e})")
            } else {
                format!("HTTP/2 handshake failed: {e}")
            }
        })?;
    let ping = connection.ping_pong();
    let every = *keep_alive;
    tokio::spawn(async move {
        let keep = async {
            let Some(mut ping) = ping else {
                return std::future::pending().await;
            };
            loop {
                tokio::time::sleep(every).await;
                match tokio::time::timeout(every, ping.ping(h2::Ping::opaque())).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("ping failed: {e}"),
                    Err(_) => return format!("no answer to a ping in {every:?}"),
                }
            }
        };
        // Dropping the connection fails every stream on it (h2 ends them on drop).
        let why = tokio::select! {
            r = &mut connection => match r {
                Ok(()) => "closed".to_string(),
                Err(e) => e.to_string(),
            },
            why = keep => why,
        };
        tracing::debug!("etcd connection ended: {why}");
        if let Some(s) = shared.upgrade() {
            s.forget(&slot);
        }
    });
    Ok(sender)
}

/// One member's channel, as etcd-client's clients call it.
#[derive(Clone)]
pub struct Direct {
    shared: Arc<Shared>,
}

impl Direct {
    pub fn new(target: Target) -> Direct {
        Direct {
            shared: Arc::new(Shared {
                target,
                slot: Mutex::new(Arc::new(OnceCell::new())),
            }),
        }
    }

    /// As etcd-client takes it.
    pub fn channel(self) -> etcd_client::Channel {
        etcd_client::Channel::Custom(tower::util::BoxCloneSyncService::new(self))
    }
}

impl tower::Service<GrpcRequest> for Direct {
    type Response = GrpcResponse;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<GrpcResponse, tower::BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness (a connection, a free stream) is awaited inside the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: GrpcRequest) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { call(&shared, req).await.map_err(Into::into) })
    }
}

async fn call(shared: &Arc<Shared>, req: GrpcRequest) -> Result<GrpcResponse, tonic::Status> {
    let (mut parts, body) = req.into_parts();
    // tonic's clients give the path only; the channel supplies the origin.
    let t = &shared.target;
    let mut uri = http::Uri::builder()
        .scheme(t.scheme.clone())
        .authority(t.authority.clone());
    if let Some(pq) = parts.uri.path_and_query() {
        uri = uri.path_and_query(pq.clone());
    }
    parts.uri = uri
        .build()
        .map_err(|e| tonic::Status::internal(format!("request URI: {e}")))?;
    let (mut sender, slot) = shared.sender().await?;
    let request = http::Request::from_parts(parts, ());
    let (response, stream) = sender.send_request(request, false).map_err(|e| {
        // A connection that takes no new stream (the member said GOAWAY) may live on for
        // the streams it has: the next call connects anew instead of waiting for them.
        shared.forget(&slot);
        unavailable("sending the request failed", &e)
    })?;
    // A unary body is ready at once: sent from here, its last DATA frame carrying the
    // end of the stream. A stream's (the watch's) goes on from a task of its own once it
    // would wait. Sending can fail once the member has answered and reset the stream
    // (grpc-go does, when it answered before the end of the request was sent): so only
    // the response decides how the call ended.
    let mut body = Pump {
        body,
        stream,
        held: None,
    };
    loop {
        let next = std::future::poll_fn(|cx| Poll::Ready(body.poll_step(cx)));
        match next.await {
            Poll::Ready(Ok(true)) => {}
            Poll::Ready(Ok(false)) => break,
            Poll::Ready(Err(status)) => return Err(status),
            Poll::Pending => {
                body.flush();
                tokio::spawn(body.run());
                break;
            }
        }
    }
    let response = response
        .await
        .map_err(|e| unavailable("the member's answer failed", &e))?;
    Ok(response.map(|recv| tonic::body::Body::new(Received(recv))))
}

/// A request body on its way to the member.
struct Pump {
    body: tonic::body::Body,
    stream: h2::SendStream<Bytes>,
    /// A DATA frame not sent yet: the next poll tells whether it ends the stream.
    held: Option<Bytes>,
}

impl Pump {
    /// Sends what the body has ready: `Ok(true)` while it goes on, `Ok(false)` once it
    /// ended (or the stream can take nothing more), `Err` if encoding it failed (the
    /// stream is then reset).
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, tonic::Status>> {
        let frame = match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(f) => f,
            Poll::Pending => return Poll::Pending,
        };
        // Buffered by h2 until the member's window takes it (bounded: etcd's request size
        // limit bounds a unary body, and streaming bodies are small requests). An error
        // here means the stream is gone: the response says why.
        Poll::Ready(match frame {
            None => {
                let last = self.held.take().unwrap_or_default();
                let _ = self.stream.send_data(last, true);
                Ok(false)
            }
            Some(Err(status)) => {
                self.stream.send_reset(h2::Reason::CANCEL);
                Err(status)
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => match self.held.replace(data) {
                    Some(before) => Ok(self.stream.send_data(before, false).is_ok()),
                    None => Ok(true),
                },
                Err(frame) => {
                    self.flush();
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = self.stream.send_trailers(trailers);
                        Ok(false)
                    } else {
                        Ok(true)
                    }
                }
            },
        })
    }

    /// Sends the held DATA frame, if any, without ending the stream.
    fn flush(&mut self) {
        if let Some(data) = self.held.take() {
            let _ = self.stream.send_data(data, false);
        }
    }

    /// Sends the rest of a streaming body.
    async fn run(mut self) {
        loop {
            let step = std::future::poll_fn(|cx| match self.poll_step(cx) {
                // Nothing more ready for now: what is held goes before the wait.
                Poll::Pending => {
                    self.flush();
                    Poll::Pending
                }
                ready => ready,
            });
            match step.await {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
        }
    }
}

/// A response body: the member's DATA frames, then its trailers (the gRPC status). Each
/// frame's bytes are given back to the member's flow-control window once taken.
struct Received(h2::RecvStream);

impl http_body::Body for Received {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let recv = &mut self.0;
        match recv.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let _ = recv.flow_control().release_capacity(data.len());
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Poll::Ready(Some(Err(e))) => {
                return Poll::Ready(Some(Err(unavailable("the member's answer failed", &e))));
            }
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }
        match recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(t))) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => {
                Poll::Ready(Some(Err(unavailable("the member's answer failed", &e))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// One gRPC message (uncompressed, three bytes).
    const MESSAGE: &[u8] = b"\0\0\0\0\x03abc";

    /// A unary request body whose end comes only once the member has answered and reset
    /// the stream: `reset` is told then. Its end is asked for synchronously (the poll
    /// blocks this thread, not the connection's), as a unary body's is: the window in
    /// which a member that answers first resets the stream, made as wide as it can be.
    struct EndsAfterTheReset {
        data: Option<Bytes>,
        reset: Option<std::sync::mpsc::Receiver<()>>,
    }

    impl http_body::Body for EndsAfterTheReset {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
            if let Some(data) = self.data.take() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if let Some(reset) = self.reset.take() {
                reset
                    .recv_timeout(Duration::from_secs(10))
                    .expect("the member answered and reset the stream");
            }
            Poll::Ready(None)
        }
    }

    /// A member that answers a unary call in full (headers, one message, trailers with
    /// grpc-status 0) and then resets the stream with NO_ERROR before the request's end
    /// came, as grpc-go does: the call returns that answer, though sending the request's
    /// end then fails. (The channel's first form sent the end of stream as an empty DATA
    /// frame of its own and failed the call when that send failed: after the member had
    /// done the work, a committed transaction reported as failed.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unary_call_answered_and_reset_before_its_end_was_sent_returns_the_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (told, reset) = std::sync::mpsc::channel();
        let member = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut conn = h2::server::handshake(tcp).await.unwrap();
            let (request, mut respond) = conn.accept().await.unwrap().unwrap();
            assert_eq!(request.uri().path(), "/etcdserverpb.KV/Range");
            let mut ping = conn.ping_pong().unwrap();
            let driven = tokio::spawn(async move {
                let _ = std::future::poll_fn(|cx| conn.poll_closed(cx)).await;
            });
            let head = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut send = respond.send_response(head, false).unwrap();
            send.send_data(Bytes::from_static(MESSAGE), false).unwrap();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            send.send_trailers(trailers).unwrap();
            // A reset drops what is still queued on the stream: the answer is written
            // first (the connection writes a ping no earlier than frames queued before
            // it, so a pong means they are out).
            ping.ping(h2::Ping::opaque()).await.unwrap();
            send.send_reset(h2::Reason::NO_ERROR);
            ping.ping(h2::Ping::opaque()).await.unwrap();
            // The client may have read the second ping just before the reset, in the
            // same read: a moment to take the reset too.
            tokio::time::sleep(Duration::from_millis(100)).await;
            told.send(()).unwrap();
            // The request's body is not read: its end may never come.
            drop(request);
            // Until the client closes the connection.
            driven.await.unwrap();
        });

        let target = Target::new(
            &format!("http://{addr}"),
            None,
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
        .unwrap();
        let mut channel = Direct::new(target);
        let body = EndsAfterTheReset {
            data: Some(Bytes::from_static(MESSAGE)),
            reset: Some(reset),
        };
        let request = http::Request::builder()
            .method("POST")
            .uri("/etcdserverpb.KV/Range")
            .header("content-type", "application/grpc")
            .body(tonic::body::Body::new(body))
            .unwrap();
        let call = tower::Service::call(&mut channel, request);
        let response = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("the call ends")
            .expect("the call returns the member's answer");
        assert_eq!(response.status(), 200);
        let answer = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
            .await
            .expect("the answer ends")
            .expect("the answer is read whole");
        let trailers = answer.trailers().cloned().expect("trailers");
        assert_eq!(answer.to_bytes(), MESSAGE);
        assert_eq!(trailers["grpc-status"], "0");
        drop(channel);
        tokio::time::timeout(Duration::from_secs(20), member)
            .await
            .expect("the client closes its connection once its channel is dropped")
            .unwrap();
    }

    fn tls() -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Arc::new(config)
    }

    /// The endpoint forms etcd-client took, read the same way: the scheme decides TLS,
    /// a bare `host:port` takes it from the options, and a mismatch is refused.
    #[test]
    fn endpoints_are_read_as_etcd_client_read_them() {
        let t = |e: &str, tls: Option<Arc<rustls::ClientConfig>>| {
            Target::new(e, tls, Duration::from_secs(1), Duration::from_secs(2))
        };
        let plain = t("http://127.0.0.1:2379", None).unwrap();
        assert_eq!(plain.scheme, http::uri::Scheme::HTTP);
        assert_eq!(plain.authority.as_str(), "127.0.0.1:2379");
        assert!(plain.tls.is_none());
        let secure = t("https://etcd.example:2379/", Some(tls())).unwrap();
        assert_eq!(secure.scheme, http::uri::Scheme::HTTPS);
        assert_eq!(secure.authority.as_str(), "etcd.example:2379");
        assert!(t("10.0.0.1:2379", Some(tls())).unwrap().tls.is_some());
        assert!(t("10.0.0.1:2379", None).unwrap().tls.is_none());
        assert!(t("https://[::1]:2379", Some(tls())).unwrap().tls.is_some());
        let err = |r: Result<Target, String>| r.err().unwrap_or_default();
        assert!(err(t("https://a:1", None)).contains("etcd-ca-file"));
        assert!(err(t("http://a:1", Some(tls()))).contains("https://"));
        assert!(err(t("http://a b:1", None)).contains("not an endpoint"));
    }
}
