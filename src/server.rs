//! The HTTP server: accept loop, routing, limits and response headers (spec §1.1).
//!
//! First the faces ([`FACES`]: Redfish, XClarity, the web page) are asked whether they
//! own the request (`face.rs` has the rule); what none owns is XAPI's. xapi routes by longest path
//! prefix, so a POST to any path but `/jsonrpc` reaches the XML-RPC handler of `/` (Xen
//! Orchestra posts to `/xmlrpc`, the Python SDK to `/RPC2`).
//! Unlike xapi, bodies that cannot be read or parsed get a well-formed answer instead of
//! HTTP 500 and a dropped connection: oversized bodies a 413 (refused from the
//! `Content-Length` header, before reading), malformed XML an XML-RPC `Failure`
//! with `XMLRPC_UNMARSHAL_FAILURE [expected; received]`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::FutureExt;
use http_body_util::{Full, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::api::dispatch::{self, Call, Reply, RequestMeta, Service};
use crate::api::error::{ApiError, codes};
use crate::face::{BodyError, Conn, Face};
use crate::per_address::{Held, PerAddress};
use crate::wire::encode::{Codec, ReplyBuffer, Taken};
use crate::wire::value::Value;
use crate::wire::{jsonrpc, xmlrpc};

/// The faces, asked in this order whether they own a request; XML-RPC and JSON-RPC
/// answer whatever none of them owns (the rule is in `face.rs` and docs/architecture.md).
pub const FACES: &[Face] = &[
    crate::redfish::FACE,
    crate::xclarity::FACE,
    crate::web::FACE,
];

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body (xapi: 300 KiB, `http_limit_max_rpc_size`).
    pub max_body_bytes: usize,
    /// Time allowed for a client to send the request head.
    pub header_timeout: Duration,
    /// Time allowed for a client to send the request body.
    pub body_timeout: Duration,
    /// Connections served at once; a connection beyond it gets `503` and an XAPI failure.
    pub max_connections: usize,
    /// Connections one client address (IPv6: /64) may hold of those (`per_address`); a
    /// quarter of `max_connections` (at least 16) unless set.
    pub max_connections_per_address: usize,
    /// Largest request head; hyper answers a larger one with `431` and closes.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 300 * 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_address: 256,
            max_header_bytes: 64 * 1024,
        }
    }
}

/// A socket to serve: plain HTTP, or HTTPS when it has a TLS acceptor.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// How long in-flight calls may take to finish once shutdown has begun.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves connections from every listener until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish (up to [`DRAIN_TIMEOUT`]) and returns.
/// Idle keep-alive connections are closed at once.
pub async fn run(
    listeners: Vec<Listener>,
    svc: Arc<Service>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals are cheap but not free: at most as many as there are connections.
    let refusals = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_address);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut loops = Vec::new();
    for listener in listeners {
        let ctx = AcceptCtx {
            svc: svc.clone(),
            limits: limits.clone(),
            permits: permits.clone(),
            refusals: refusals.clone(),
            per_address: per_address.clone(),
            stop: stop_rx.clone(),
        };
        let mut stop = stop_rx.clone();
        loops.push(tokio::spawn(async move {
            tokio::select! {
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {},
                _ = accept_loop(listener, ctx) => {},
            }
        }));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    // Event waiters answer at once instead of holding their connection open.
    svc.db.begin_shutdown();
    // Every connection holds a permit until it ends: having them all back means drained.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some requests were still running after {DRAIN_TIMEOUT:?}");
    }
}

/// What every accepted connection needs.
#[derive(Clone)]
struct AcceptCtx {
    svc: Arc<Service>,
    limits: Arc<Limits>,
    permits: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    /// Becomes true at shutdown: connections finish their request and close.
    stop: tokio::sync::watch::Receiver<bool>,
}

async fn accept_loop(listener: Listener, ctx: AcceptCtx) {
    loop {
        let (stream, peer) = match listener.tcp.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(held) = ctx.per_address.hold(peer.ip()) else {
            // Over its address's share: refused like one over the pool, but never
            // waited for (a place would go to the very client that holds too many).
            if let Ok(r) = ctx.refusals.clone().try_acquire_owned() {
                let why = Refusal::PerAddress(ctx.per_address.limit());
                spawn_connection(
                    stream,
                    peer,
                    &listener.tls,
                    &ctx,
                    Slot::Refuse(r, why),
                    None,
                );
            }
            continue;
        };
        let slot = match ctx.permits.clone().try_acquire_owned() {
            Ok(p) => Slot::Serve(p),
            Err(_) => match ctx.refusals.clone().try_acquire_owned() {
                Ok(r) => Slot::Refuse(r, Refusal::Total),
                // Too many refusals in flight: wait for a connection slot instead, so
                // the client queues in the kernel rather than being dropped.
                Err(_) => match ctx.permits.clone().acquire_owned().await {
                    Ok(p) => Slot::Serve(p),
                    Err(_) => return,
                },
            },
        };
        spawn_connection(stream, peer, &listener.tls, &ctx, slot, Some(held));
    }
}

/// What an accepted connection got: a place among the served connections, or one among
/// the refusals (each permit is given back when the connection ends).
enum Slot {
    Serve(tokio::sync::OwnedSemaphorePermit),
    Refuse(tokio::sync::OwnedSemaphorePermit, Refusal),
}

/// Which connection limit a refused connection met.
#[derive(Clone, Copy)]
enum Refusal {
    Total,
    PerAddress(usize),
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: &Option<TlsAcceptor>,
    ctx: &AcceptCtx,
    slot: Slot,
    held: Option<Held>,
) {
    let tls = tls.clone();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        // The address's place is kept for the connection's life, TLS handshake included.
        let _held = held;
        match tls {
            None => serve_io(stream, peer, ctx, slot, Conn { tls: false }).await,
            Some(acceptor) => {
                match tokio::time::timeout(ctx.limits.header_timeout, acceptor.accept(stream)).await
                {
                    Ok(Ok(s)) => serve_io(s, peer, ctx, slot, Conn { tls: true }).await,
                    Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                    Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                }
            }
        }
    });
}

/// Serves one connection, or refuses it with 503 when the connection limit is reached.
async fn serve_io<I>(io: I, peer: SocketAddr, ctx: AcceptCtx, slot: Slot, conn_info: Conn)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let permit = match slot {
        Slot::Serve(permit) => permit,
        Slot::Refuse(held, why) => {
            refuse(io, &ctx.limits, why).await;
            drop(held);
            return;
        }
    };
    let svc = ctx.svc.clone();
    let limits = ctx.limits.clone();
    let activity = Arc::new(Activity::default());
    // This connection's address and read state (what logins are throttled by, and what
    // `etcd-reads = "connection"` keys its sync on).
    let reads = Arc::new(crate::connection::Connection::from(peer.ip()));
    let io = Counted {
        io,
        activity: activity.clone(),
    };
    let (tell, told) = tokio::sync::oneshot::channel();
    tokio::spawn(guard(
        ctx.limits.header_timeout,
        ctx.stop.clone(),
        Tell {
            activity: activity.clone(),
            tell: Some(tell),
        },
    ));
    let verdict_activity = activity.clone();
    let service = service_fn(move |req| {
        let svc = svc.clone();
        let limits = limits.clone();
        activity.started.fetch_add(1, Ordering::Relaxed);
        let activity = activity.clone();
        // Every face reaches logins through the dispatcher, which throttles per address
        // (the connection's, `connection::peer`).
        // Combinators rather than `async` blocks, which would each hold the request's
        // future twice (captured, and being awaited): it is moved into place per request.
        let call = handle(svc, limits, req, conn_info);
        crate::connection::on(reads.clone(), call).map(move |resp| {
            activity.finished.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>(resp)
        })
    });
    let conn = http1::Builder::new()
        // The head timeout is the guard's.
        .header_read_timeout(None)
        // hyper's own bound on a head is about 400 KB and depends on how the bytes
        // arrive; this makes it one documented number.
        .max_buf_size(ctx.limits.max_header_bytes)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = match beside_guard(conn.as_mut(), told, &verdict_activity).await {
        Ok(r) => r,
        // Idle, or a head too slow: dropping the connection closes it.
        Err(Ok(Close::Idle)) => Ok(()),
        // Finish the request in progress (if any), then close.
        Err(Ok(Close::Drain) | Err(_)) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection from {peer}: {e}");
    }
    drop(permit);
}

/// Requests a connection has started and finished (the service counts them), and the
/// writes of its responses ([`Counted`] counts them: a response goes on being written
/// after the service has finished it).
#[derive(Default)]
struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    writes: AtomicU64,
    /// Set by the [`guard`] just before its verdict is sent (or its sender dropped):
    /// only then does [`beside_guard`] poll the verdict's channel.
    told: AtomicBool,
}

/// Runs the connection until it ends (`Ok`) or its [`guard`] gives a verdict (`Err`),
/// as a `select!` of the two would, but without polling the verdict's channel at every
/// wake-up of the connection: a wake-up is nearly always the socket's, and each poll of
/// a `oneshot` (the runtime's budget, its state, the waker check), with the random
/// branch order `select!` draws, cost about 250 instructions per request. The channel
/// is polled once to register this task's waker, again whenever the waker changes (the
/// rule of `Future::poll`: only the latest waker counts), and then only once the guard
/// has set [`Activity::told`], which it does before it sends, so that the wake-up its
/// send causes finds the flag set.
async fn beside_guard<C: Future>(
    mut conn: Pin<&mut C>,
    mut told: tokio::sync::oneshot::Receiver<Close>,
    activity: &Activity,
) -> Result<C::Output, Result<Close, tokio::sync::oneshot::error::RecvError>> {
    let mut registered: Option<std::task::Waker> = None;
    std::future::poll_fn(|cx| {
        // The connection first: its progress is what a wake-up is nearly always for.
        if let Poll::Ready(out) = conn.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let same_waker = registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if !same_waker || activity.told.load(Ordering::Acquire) {
            if let Poll::Ready(verdict) = Pin::new(&mut told).poll(cx) {
                return Poll::Ready(Err(verdict));
            }
            if !same_waker {
                registered = Some(cx.waker().clone());
            }
        }
        Poll::Pending
    })
    .await
}

/// The [`guard`]'s end of the verdict's channel. It sets [`Activity::told`] before the
/// verdict goes out, and also when it is dropped unsent (the guard's task cancelled at
/// the runtime's end), so that the connection looks at the channel either way.
struct Tell {
    activity: Arc<Activity>,
    tell: Option<tokio::sync::oneshot::Sender<Close>>,
}

impl Tell {
    fn send(mut self, verdict: Close) {
        self.activity.told.store(true, Ordering::Release);
        if let Some(tell) = self.tell.take() {
            let _ = tell.send(verdict);
        }
    }

    async fn closed(&mut self) {
        if let Some(tell) = &mut self.tell {
            tell.closed().await;
        }
    }
}

impl Drop for Tell {
    fn drop(&mut self) {
        // Before the sender itself is dropped (fields drop after this), which wakes the
        // connection.
        self.activity.told.store(true, Ordering::Release);
    }
}

/// A connection's I/O that counts its successful writes into [`Activity`], so that the
/// [`guard`] leaves alone a connection whose (large) response a client is still reading,
/// however slowly. Reads are not counted: a head sent a byte at a time is what the guard
/// is for.
struct Counted<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I> Counted<I> {
    fn count(&self, written: &Poll<std::io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.count(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.count(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Why a connection's [`guard`] closes it.
enum Close {
    /// No request started for a whole `header-timeout` period and none running.
    Idle,
    /// Shutdown: finish the request in progress, then close.
    Drain,
}

/// Watches one connection from its own task: the head timeout and the shutdown signal,
/// instead of hyper's head timer, which allocates and arms a timer for every request
/// (and takes the timer wheel's lock twice), and instead of the connection polling the
/// shutdown channel at each of its wake-ups (a lock shared by all connections).
///
/// Every `timeout` it looks at the connection's [`Activity`]: if no request started or
/// finished and no response bytes went out since the last look, and no request is
/// running, the client sent no complete head
/// for a whole period (a slow head, or an idle keep-alive connection), and the connection
/// is closed. So a head gets between one and two periods, counted from the end of the
/// previous request; a request in progress has its own limits (body, durability).
async fn guard(timeout: Duration, mut stop: tokio::sync::watch::Receiver<bool>, mut tell: Tell) {
    let activity = tell.activity.clone();
    let seen = |a: &Activity| {
        (
            a.started.load(Ordering::Relaxed),
            a.finished.load(Ordering::Relaxed),
            a.writes.load(Ordering::Relaxed),
        )
    };
    let mut last = seen(&activity);
    let verdict = loop {
        tokio::select! {
            // The connection ended by itself.
            _ = tell.closed() => return,
            _ = stop.wait_for(|s| *s) => break Close::Drain,
            _ = tokio::time::sleep(timeout) => {
                let now = seen(&activity);
                if now == last && now.0 == now.1 {
                    break Close::Idle;
                }
                last = now;
            }
        }
    };
    tell.send(verdict);
}

/// Answers a connection over the limit with `503 Service Unavailable` and an XAPI
/// failure, then closes it. The request head is read first (briefly), so that the
/// client is not reset before it reads the answer.
async fn refuse<I>(mut io: I, limits: &Limits, why: Refusal)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), io.read(&mut buf)).await;
    let mut body = Vec::with_capacity(256);
    xmlrpc::write_response(
        &mut body,
        &Err(ApiError::internal(match why {
            Refusal::PerAddress(n) if n < limits.max_connections => {
                format!("too many connections from this address (the limit is {n}); retry later")
            }
            // A share as large as the pool is the pool.
            _ => format!(
                "too many connections (the limit is {}); retry later",
                limits.max_connections
            ),
        })),
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/xml\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        io.write_all(head.as_bytes()).await?;
        io.write_all(&body).await?;
        io.shutdown().await
    })
    .await;
}

/// A response body of one data frame, as every answer of this server is: the reply's own
/// `Vec` when the server wrote it (XML-RPC, JSON-RPC), shared bytes when they are kept
/// elsewhere (a fan-out's batch), or what a face built (`face::Reply`).
///
/// Why not `Full<Bytes>` for all: `Bytes::from(Vec)` keeps the `Vec` only when its
/// length is its capacity, and a reply fills part of its 4 KB buffer, so every reply
/// paid one more allocation (the shared header `Bytes` puts beside the buffer), its
/// atomic count and its free. Handing hyper the `Vec` itself costs none of that; hyper
/// queues the chunk for its vectored write just the same. Faces that build their own
/// replies (`src/redfish/protocol.rs`, `src/xclarity/protocol.rs`) can hand over a
/// `Vec` the same way through `From<Vec<u8>>`.
#[derive(Debug)]
pub struct ReplyBody(Source);

#[derive(Debug)]
enum Source {
    /// The one frame, until hyper takes it (`None` after).
    Chunk(Option<ReplyChunk>),
    /// A face's body, passed on as it is.
    Face(Full<Bytes>),
}

impl ReplyBody {
    fn chunk(c: ReplyChunk) -> ReplyBody {
        // An empty body is at its end already: hyper then writes no body at all, as for
        // an empty `Full`.
        ReplyBody(Source::Chunk((c.remaining() > 0).then_some(c)))
    }
}

impl From<Vec<u8>> for ReplyBody {
    fn from(v: Vec<u8>) -> ReplyBody {
        ReplyBody::chunk(ReplyChunk::Vec(v, 0))
    }
}

impl From<Bytes> for ReplyBody {
    fn from(b: Bytes) -> ReplyBody {
        ReplyBody::chunk(ReplyChunk::Bytes(b))
    }
}

impl From<&'static [u8]> for ReplyBody {
    fn from(b: &'static [u8]) -> ReplyBody {
        ReplyBody::from(Bytes::from_static(b))
    }
}

impl From<Full<Bytes>> for ReplyBody {
    fn from(f: Full<Bytes>) -> ReplyBody {
        ReplyBody(Source::Face(f))
    }
}

impl hyper::body::Body for ReplyBody {
    type Data = ReplyChunk;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<ReplyChunk>, Infallible>>> {
        match &mut self.get_mut().0 {
            Source::Chunk(c) => Poll::Ready(c.take().map(|c| Ok(Frame::data(c)))),
            Source::Face(f) => Pin::new(f)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map(|f| f.map_data(ReplyChunk::Bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Source::Chunk(c) => c.is_none(),
            Source::Face(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Source::Chunk(c) => {
                SizeHint::with_exact(c.as_ref().map_or(0, |c| c.remaining() as u64))
            }
            Source::Face(f) => f.size_hint(),
        }
    }
}

/// The one data frame of a [`ReplyBody`].
#[derive(Debug)]
pub enum ReplyChunk {
    /// A written reply and how much of it hyper has consumed.
    Vec(Vec<u8>, usize),
    Bytes(Bytes),
}

impl Buf for ReplyChunk {
    fn remaining(&self) -> usize {
        match self {
            ReplyChunk::Vec(v, at) => v.len() - at,
            ReplyChunk::Bytes(b) => b.len(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            ReplyChunk::Vec(v, at) => &v[*at..],
            ReplyChunk::Bytes(b) => b,
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            ReplyChunk::Vec(v, at) => {
                assert!(n <= v.len() - *at, "advanced past the end of a reply");
                *at += n;
            }
            ReplyChunk::Bytes(b) => b.advance(n),
        }
    }
}

/// xapi's headers on every API response (`api_server.ml`): the content type and two CORS
/// headers, cloned from a map made once per content type ([`api_headers`]).
fn api_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<ReplyBody>,
) -> Response<ReplyBody> {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    *resp.headers_mut() = api_headers(content_type);
    resp
}

/// The headers of [`api_response`]. Every XML-RPC and JSON-RPC answer has the same three,
/// and a fan-out's ten thousand waiters answer at once: inserting them one by one hashed
/// and placed each name and grew the map for every reply (0.94k instructions of a woken
/// waiter's 6.8k, about what hyper's whole writing of the head costs), where cloning a
/// made map is its two allocations and a copy (0.49k). The clone keeps the entries'
/// order, so hyper writes the same head (`tests/fanout_bytes.rs` compares it byte for
/// byte).
fn api_headers(content_type: &'static str) -> HeaderMap {
    static XML: std::sync::LazyLock<HeaderMap> =
        std::sync::LazyLock::new(|| api_headers_made("text/xml"));
    static JSON: std::sync::LazyLock<HeaderMap> =
        std::sync::LazyLock::new(|| api_headers_made("application/json"));
    match content_type {
        "text/xml" => XML.clone(),
        "application/json" => JSON.clone(),
        // The rare others (a 405's text) are made on the spot.
        other => api_headers_made(other),
    }
}

fn api_headers_made(content_type: &'static str) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(3);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With"),
    );
    h
}

fn xml_failure(status: StatusCode, err: ApiError) -> Response<ReplyBody> {
    let mut out = Vec::with_capacity(256);
    xmlrpc::write_response(&mut out, &Err(err));
    api_response(status, "text/xml", out)
}

/// A refusal of a request whose call was not read, in the form its path's codec answers:
/// JSON-RPC on `/jsonrpc`, XML-RPC everywhere else.
fn unread_failure(json: bool, status: StatusCode, err: ApiError) -> Response<ReplyBody> {
    if !json {
        return xml_failure(status, err);
    }
    let mut out = Vec::with_capacity(256);
    jsonrpc::write_error_without_id(&mut out, &err);
    api_response(status, "application/json", out)
}

/// CORS pre-flight, as xapi's `respond_to_options`.
fn options<B>(req: &Request<B>) -> Response<ReplyBody> {
    let allow_headers = match req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        Some(v) => format!("{}, X-Requested-With", v.to_str().unwrap_or_default()),
        None => "X-Requested-With".to_string(),
    };
    let mut resp = Response::new(ReplyBody::from(Vec::new()));
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_str(&allow_headers)
            .unwrap_or(HeaderValue::from_static("X-Requested-With")),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("PUT"),
    );
    resp
}

/// What the headers say beyond the call (spec §1.6), in one pass over them: `task-id`
/// and `subtask-of` as their first value trimmed (none if empty or not text), and every
/// `x-http-other-config-<key>` value; and the headers' size as [`header_bytes`] counts it.
fn request_meta(headers: &HeaderMap, codec: Codec) -> (RequestMeta, usize) {
    let text = |v: &HeaderValue| {
        Some(v.to_str().ok()?.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut meta = RequestMeta {
        codec: Some(codec),
        ..RequestMeta::default()
    };
    let (mut task_id, mut subtask_of) = (false, false);
    let mut size = 0;
    for (name, v) in headers {
        size += header_size(name.as_str(), v);
        match name.as_str() {
            "task-id" if !task_id => (task_id, meta.task_id) = (true, text(v)),
            "subtask-of" if !subtask_of => (subtask_of, meta.subtask_of) = (true, text(v)),
            name => {
                if let Some(key) = name.strip_prefix("x-http-other-config-")
                    && let Ok(v) = v.to_str()
                {
                    meta.http_other_config
                        .push((key.to_string(), v.to_string()));
                }
            }
        }
    }
    (meta, size)
}

/// The bytes a header line counts for towards `max-header-bytes`: name, value, `: ` and
/// CRLF.
fn header_size(name: &str, value: &HeaderValue) -> usize {
    name.len() + value.len() + 4
}

/// The request headers' size, as [`header_size`] counts it.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| header_size(k.as_str(), v))
        .sum()
}

/// `431` for a request head (`size`: the URI's and the headers' bytes) over
/// `max-header-bytes`, in the protocol of the face that owns the request (XML-RPC's
/// otherwise). hyper's own bound (its read buffer, also set to this size) depends on how
/// the bytes arrive, so a head somewhat over it can get through; counting here makes the
/// limit exact.
fn head_too_large(
    size: usize,
    limits: &Limits,
    face: Option<&Face>,
    json: bool,
    conn: Conn,
) -> Option<Response<ReplyBody>> {
    if size <= limits.max_header_bytes {
        return None;
    }
    let mut resp = match face {
        Some(f) => (f.head_too_large)(size, limits, conn).map(ReplyBody::from),
        None => unread_failure(
            json,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::internal(format!(
                "request head of {size} bytes exceeds the limit of {} bytes",
                limits.max_header_bytes
            )),
        ),
    };
    // The body was not read, so the connection cannot be reused.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(resp)
}

/// The length of the URI as written back (`Uri`'s `Display`), without writing it.
fn uri_len(uri: &hyper::Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + "://".len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1)
}

/// First size of a reply buffer: a task record is ~1.6 KB of XML and an event batch with
/// one snapshot ~1.8 KB, so 1 KB meant a reallocation and copy for nearly every reply.
const REPLY_CAPACITY: usize = 4096;

async fn handle(
    svc: Arc<Service>,
    limits: Arc<Limits>,
    req: Request<Incoming>,
    conn: Conn,
) -> Response<ReplyBody> {
    let limits = &*limits;
    let face = FACES
        .iter()
        .find(|f| (f.owns)(req.method(), req.uri().path(), req.headers()));
    // XML-RPC and JSON-RPC read what their headers say in the pass that sizes the head.
    let json = req.uri().path() == "/jsonrpc";
    let (meta, header_bytes) = match face {
        Some(_) => (None, header_bytes(req.headers())),
        None => {
            let codec = if json { Codec::JsonRpc } else { Codec::XmlRpc };
            let (meta, bytes) = request_meta(req.headers(), codec);
            (Some(meta), bytes)
        }
    };
    if let Some(resp) = head_too_large(uri_len(req.uri()) + header_bytes, limits, face, json, conn)
    {
        return resp;
    }
    // The body is read before anything is answered, so that an early answer (a 405, a
    // 401) never leaves it unread, which would cost the client its keep-alive connection.
    let (parts, body) = req.into_parts();
    let body = match read_body(&parts.headers, body, limits).await {
        Ok(b) => b,
        Err(e) => {
            let mut resp = match face {
                Some(f) => (f.body_error)(&e, limits, conn).map(ReplyBody::from),
                None => body_error(&e, limits, json),
            };
            // The rest of the body is unread: the connection cannot be reused.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
    };
    let req = Request::from_parts(parts, body);
    if let Some(face) = face {
        return (face.handle)(svc, limits, req, conn)
            .await
            .map(ReplyBody::from);
    }
    match *req.method() {
        Method::POST => {}
        Method::OPTIONS => return options(&req),
        _ => {
            let mut resp = api_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                &b"xapi-taskd answers XML-RPC calls with POST\n"[..],
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            return resp;
        }
    }
    let meta = meta.unwrap_or_default();
    let body = req.into_body();
    if json {
        return handle_json(&svc, &body, meta).await;
    }
    let call = match xmlrpc::parse_call(&body) {
        Ok(c) => Call {
            method: c.method,
            params: c.params,
            invalid_utf8_param: c.invalid_utf8_param,
            chars_checked: c.chars_ok,
        },
        Err(e) => {
            return xml_failure(
                StatusCode::OK,
                ApiError::new(codes::XMLRPC_UNMARSHAL_FAILURE, [e.expected, e.received]),
            );
        }
    };
    api_response(
        StatusCode::OK,
        "text/xml",
        xml_reply(&svc, call, meta).await,
    )
}

/// An XML-RPC call's reply body, the reply's buffer lent to the call (`ReplyBuffer`).
async fn xml_reply(svc: &Arc<Service>, call: Call<'_>, mut meta: RequestMeta) -> ReplyBody {
    let mut head = Vec::with_capacity(REPLY_CAPACITY);
    xmlrpc::write_success_head(&mut head);
    let (mut out, reply) = match dispatch_lent(svc, call, &mut meta, head).await {
        Answered::Whole(body) => return body.into(),
        Answered::Buffer(out, reply) => (out, reply),
    };
    match reply {
        None => xmlrpc::write_success_tail(&mut out),
        Some(Reply::Envelope(result)) => xmlrpc::write_response(&mut out, &result),
        Some(Reply::Bare(v)) => xmlrpc::write_bare(&mut out, &v),
    }
    out.into()
}

/// What [`dispatch_lent`] answers.
enum Answered {
    /// The buffer with the result written after the head (`None`: the codec adds its
    /// tail), or emptied, with the reply still to write whole (`Some`).
    Buffer(Vec<u8>, Option<Reply>),
    /// The complete body the call handed back (`ReplyBuffer::whole`).
    Whole(Bytes),
}

/// Runs a call with the reply's buffer lent to it (`ReplyBuffer`), `head` (the codec's
/// success envelope up to the result) already in it.
async fn dispatch_lent(
    svc: &Arc<Service>,
    call: Call<'_>,
    meta: &mut RequestMeta,
    head: Vec<u8>,
) -> Answered {
    meta.reply = ReplyBuffer::lend(head);
    let reply = dispatch::dispatch(svc, call, meta).await;
    let (mut out, written) = match meta.reply.take() {
        Taken::Whole(body) => return Answered::Whole(body),
        Taken::Buffer(out, written) => (out, written),
    };
    // The empty `Value::Encoded` stands for the result `ReplyBuffer::write` put there.
    let in_buffer = matches!(&reply, Reply::Envelope(Ok(Value::Encoded(_, b))) if b.is_empty());
    if written && in_buffer {
        Answered::Buffer(out, None)
    } else {
        out.clear();
        if out.capacity() == 0 {
            // Given back before a long wait (`ReplyBuffer::release`).
            out.reserve(REPLY_CAPACITY);
        }
        Answered::Buffer(out, Some(reply))
    }
}

/// JSON-RPC on `/jsonrpc`. `system.listMethods` gets the usual envelope here (xapi only
/// special-cases it for XML-RPC).
async fn handle_json(svc: &Arc<Service>, body: &[u8], meta: RequestMeta) -> Response<ReplyBody> {
    api_response(
        StatusCode::OK,
        "application/json",
        json_reply(svc, body, meta).await,
    )
}

/// A JSON-RPC request's reply body, the reply's buffer lent to the call (`ReplyBuffer`).
async fn json_reply(svc: &Arc<Service>, body: &[u8], mut meta: RequestMeta) -> ReplyBody {
    let mut out = Vec::with_capacity(REPLY_CAPACITY);
    match jsonrpc::parse_call(body) {
        Err(bad) => jsonrpc::write_bad_request(&mut out, &bad),
        Ok(c) => {
            let call = Call {
                method: c.method,
                params: c.params,
                invalid_utf8_param: None,
                chars_checked: c.chars_ok,
            };
            jsonrpc::write_success_head(&mut out, c.version);
            let reply = match dispatch_lent(svc, call, &mut meta, out).await {
                Answered::Whole(body) => return body.into(),
                Answered::Buffer(buf, reply) => {
                    out = buf;
                    reply
                }
            };
            match reply {
                None => jsonrpc::write_success_tail(&mut out, c.version, &c.id),
                Some(Reply::Envelope(r)) => jsonrpc::write_response(&mut out, c.version, &c.id, &r),
                Some(Reply::Bare(v)) => jsonrpc::write_response(&mut out, c.version, &c.id, &Ok(v)),
            }
        }
    }
    out.into()
}

/// Reads a request's body within the size and time limits (for every request, whoever
/// answers it). A declared `Content-Length` over the limit is refused before anything is
/// read.
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    limits: &Limits,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes as u64) {
        return Err(BodyError::TooLarge);
    }
    let body = Limited::new(body, limits.max_body_bytes);
    match within(limits.body_timeout, collect(body)).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
        Ok(Ok(body)) => Ok(body),
    }
}

/// A body's bytes, as `collect().await?.to_bytes()` gives them, without the frame list
/// `Collected` keeps: nearly every request body is one data frame (it came with its
/// head), which is kept as it is, with no `VecDeque` grown, walked and freed for it.
/// Frames after the first are appended to one buffer (bounded by the `Limited` around
/// the body); trailers carry no body bytes and are skipped, as `to_bytes` skips them.
async fn collect<B: hyper::body::Body<Data = Bytes>>(body: B) -> Result<Bytes, B::Error> {
    let mut body = std::pin::pin!(body);
    let mut first = Bytes::new();
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if first.is_empty() {
            first = data;
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(&first);
            }
            joined.extend_from_slice(&data);
        }
    }
    Ok(if joined.is_empty() {
        first
    } else {
        Bytes::from(joined)
    })
}

/// XML-RPC's answer to a body that could not be read: an XAPI failure, 413 or 408.
fn body_error(e: &BodyError, limits: &Limits, json: bool) -> Response<ReplyBody> {
    match e {
        BodyError::TooLarge => unread_failure(
            json,
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::new(
                codes::INTERNAL_ERROR,
                [format!(
                    "request body exceeds the limit of {} bytes",
                    limits.max_body_bytes
                )],
            ),
        ),
        BodyError::Timeout => unread_failure(
            json,
            StatusCode::REQUEST_TIMEOUT,
            ApiError::internal("timed out reading the request body"),
        ),
        BodyError::Broken(why) => unread_failure(
            json,
            StatusCode::BAD_REQUEST,
            ApiError::internal(format!("could not read the request body: {why}")),
        ),
    }
}

/// `tokio::time::timeout`, except that a future ready at once (a body that came with its
/// head, which is nearly every body) costs no timer: arming one reads the clock and
/// takes the timer wheel's lock, per request.
pub(crate) async fn within<F: std::future::Future>(
    limit: Duration,
    f: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut f = std::pin::pin!(f);
    if let std::task::Poll::Ready(out) =
        std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx))).await
    {
        return Ok(out);
    }
    tokio::time::timeout(limit, f).await
}

/// Binds the listening socket.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_bytes(b: ReplyBody) -> Bytes {
        match b.collect().await {
            Ok(c) => c.to_bytes(),
            Err(never) => match never {},
        }
    }

    /// A record written straight into the lent reply buffer is the reply written from the
    /// record's own buffer, byte for byte, in both codecs and both JSON-RPC versions; and
    /// a reply that is not a record (an error, another result) is unchanged by the lending.
    #[test]
    fn a_record_in_the_reply_buffer_is_the_same_reply() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (_dir, svc) = crate::serve::ephemeral_service();
            let plain = |codec| RequestMeta {
                codec: Some(codec),
                ..RequestMeta::default()
            };
            let ok = |r: Reply| match r {
                Reply::Envelope(Ok(Value::String(s))) => s,
                other => panic!("{other:?}"),
            };
            let call = |m: &'static str, p: &[&str]| {
                dispatch::call(m, p.iter().copied().map(Value::str).collect())
            };
            let meta = RequestMeta::default();
            let s = ok(dispatch::dispatch(
                &svc,
                call("session.login_with_password", &["root", "pw"]),
                &meta,
            )
            .await);
            let t = ok(dispatch::dispatch(
                &svc,
                call(
                    "task.create",
                    &[s.as_str(), "a <label> & \"more\"", "d\u{e9}\n"],
                ),
                &meta,
            )
            .await);
            let calls = [
                call("task.get_record", &[s.as_str(), t.as_str()]),
                call("task.get_record", &[s.as_str(), "OpaqueRef:nope"]),
                call("task.get_name_label", &[s.as_str(), t.as_str()]),
                call("session.get_record", &[s.as_str(), s.as_str()]),
                call("system.listMethods", &[]),
            ];
            for c in calls {
                let lent = body_bytes(xml_reply(&svc, c.clone(), plain(Codec::XmlRpc)).await).await;
                let mut want = Vec::new();
                match dispatch::dispatch(&svc, c.clone(), &plain(Codec::XmlRpc)).await {
                    Reply::Envelope(r) => xmlrpc::write_response(&mut want, &r),
                    Reply::Bare(v) => xmlrpc::write_bare(&mut want, &v),
                }
                assert_eq!(
                    String::from_utf8_lossy(&lent),
                    String::from_utf8_lossy(&want),
                    "{}",
                    c.method
                );
                for version in ["\"jsonrpc\":\"2.0\",", ""] {
                    let params: Vec<String> = c
                        .params
                        .iter()
                        .map(|p| format!("\"{}\"", p.as_str().unwrap_or_default()))
                        .collect();
                    let body = format!(
                        "{{{version}\"method\":\"{}\",\"params\":[{}],\"id\":7}}",
                        c.method,
                        params.join(",")
                    );
                    let lent =
                        body_bytes(json_reply(&svc, body.as_bytes(), plain(Codec::JsonRpc)).await)
                            .await;
                    let parsed = jsonrpc::parse_call(body.as_bytes()).expect("a call");
                    let r = match dispatch::dispatch(&svc, c.clone(), &plain(Codec::JsonRpc)).await
                    {
                        Reply::Envelope(r) => r,
                        Reply::Bare(v) => Ok(v),
                    };
                    let mut want = Vec::new();
                    jsonrpc::write_response(&mut want, parsed.version, &parsed.id, &r);
                    assert_eq!(
                        String::from_utf8_lossy(&lent),
                        String::from_utf8_lossy(&want),
                        "{} {body}",
                        c.method
                    );
                }
            }
        });
    }

    /// Each kind of reply body is one data frame holding exactly its bytes, sized
    /// exactly beforehand, and at its end after it; an empty one is at its end at once
    /// (hyper then writes no body, as for an empty `Full`). A chunk read in two steps
    /// gives the rest of the bytes.
    #[test]
    fn a_reply_body_is_one_frame_of_exactly_its_bytes() {
        let mut partly = Vec::with_capacity(4096);
        partly.extend_from_slice(b"<methodResponse/>");
        let kinds: [(ReplyBody, &[u8]); 6] = [
            (ReplyBody::from(partly), b"<methodResponse/>"),
            (ReplyBody::from(b"full".to_vec()), b"full"),
            (ReplyBody::from(Bytes::from_static(b"shared")), b"shared"),
            (
                ReplyBody::from(Full::new(Bytes::from_static(b"face"))),
                b"face",
            ),
            (ReplyBody::from(Vec::new()), b""),
            (ReplyBody::from(Full::new(Bytes::new())), b""),
        ];
        for (mut body, want) in kinds {
            use hyper::body::Body as _;
            assert_eq!(body.size_hint().exact(), Some(want.len() as u64));
            assert_eq!(body.is_end_stream(), want.is_empty());
            let mut got = Vec::new();
            while let Some(frame) = body.frame().now_or_never().expect("ready at once") {
                let mut data = frame.expect("infallible").into_data().expect("data");
                if data.remaining() > 1 {
                    got.push(data.get_u8());
                }
                got.extend_from_slice(data.chunk());
                data.advance(data.remaining());
                assert_eq!(data.remaining(), 0);
            }
            assert_eq!(got, want);
            assert!(body.is_end_stream());
        }
    }

    /// `collect` gives the bytes `BodyExt::collect` gives, for one frame (kept as it is,
    /// not copied), for none, and for several with empty frames and trailers among them.
    #[test]
    fn collect_is_collected_to_bytes() {
        let frames = |parts: &[Option<&'static str>]| {
            let frames: Vec<Result<Frame<Bytes>, Infallible>> = parts
                .iter()
                .map(|p| {
                    Ok(match p {
                        Some(text) => Frame::data(Bytes::from_static(text.as_bytes())),
                        None => Frame::trailers(HeaderMap::new()),
                    })
                })
                .collect();
            http_body_util::StreamBody::new(futures_util::stream::iter(frames))
        };
        let cases: &[&[Option<&'static str>]] = &[
            &[],
            &[Some("one frame")],
            &[Some("")],
            &[Some(""), Some("ab")],
            &[Some("ab"), Some(""), Some("cd"), None, Some("ef")],
            &[Some("ab"), None],
            &[None, Some("ab"), Some("cd")],
        ];
        for parts in cases {
            let got = collect(frames(parts))
                .now_or_never()
                .expect("ready")
                .expect("ok");
            let want = frames(parts)
                .collect()
                .now_or_never()
                .expect("ready")
                .expect("ok")
                .to_bytes();
            assert_eq!(got, want, "{parts:?}");
        }
        let one = Bytes::from_static(b"kept");
        let got = collect(Full::new(one.clone()))
            .now_or_never()
            .expect("ready")
            .expect("ok");
        assert_eq!(got.as_ptr(), one.as_ptr(), "one frame is kept, not copied");
    }

    #[test]
    fn uri_len_is_the_written_length() {
        for uri in [
            "/",
            "/RPC2",
            "/jsonrpc?a=b&c",
            "/?",
            "*",
            "http://host:8080/p?q=1",
            "https://h",
            "host.example:443",
        ] {
            let u: hyper::Uri = uri.parse().expect(uri);
            assert_eq!(uri_len(&u), u.to_string().len(), "{uri}");
        }
    }

    #[test]
    fn request_meta_takes_first_values_and_every_other_config_header() {
        let mut h = HeaderMap::new();
        h.append("task-id", HeaderValue::from_static("  OpaqueRef:t  "));
        h.append("task-id", HeaderValue::from_static("OpaqueRef:second"));
        h.append("subtask-of", HeaderValue::from_static(" "));
        h.append("subtask-of", HeaderValue::from_static("OpaqueRef:second"));
        h.append("x-http-other-config-a", HeaderValue::from_static("1"));
        h.append("x-http-other-config-a", HeaderValue::from_static("2"));
        h.append("x-http-other-config-b", HeaderValue::from_static(""));
        let (meta, size) = request_meta(&h, Codec::XmlRpc);
        assert_eq!(size, header_bytes(&h));
        assert_eq!(meta.task_id.as_deref(), Some("OpaqueRef:t"));
        assert_eq!(meta.subtask_of, None, "the first value is blank");
        let pairs: Vec<(&str, &str)> = meta
            .http_other_config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(pairs, [("a", "1"), ("a", "2"), ("b", "")]);
        assert_eq!(meta.codec, Some(Codec::XmlRpc));
    }
}
