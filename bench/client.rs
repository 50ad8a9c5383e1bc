//! The driver's own HTTP/1.1 client: keep-alive connections on the driver's one thread,
//! the calls the benchmark makes (as Python's `xmlrpc.client` writes them), and the load
//! loop that times them.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ROOT_PASSWORD: &str = "bench-root-password";

/// A call body as Python's xmlrpc.client writes it (pretty, `<string>` typed).
pub fn xml_call(method: &str, params: &[&str]) -> Vec<u8> {
    xml_call_with(method, params, None)
}

/// The same with one last parameter given as raw XML (`<double>0.5</double>`, an array…).
pub fn xml_call_typed(method: &str, params: &[&str], last: &str) -> Vec<u8> {
    xml_call_with(method, params, Some(last))
}

fn xml_call_with(method: &str, params: &[&str], last: Option<&str>) -> Vec<u8> {
    let mut s = format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>\n"
    );
    for p in params {
        s.push_str(&format!(
            "<param>\n<value><string>{p}</string></value>\n</param>\n"
        ));
    }
    if let Some(last) = last {
        s.push_str(&format!("<param>\n<value>{last}</value>\n</param>\n"));
    }
    s.push_str("</params>\n</methodCall>\n");
    s.into_bytes()
}

/// A JSON-RPC 2.0 call as Xen Orchestra's connector writes it.
pub fn json_call(method: &str, params: &[&str]) -> Vec<u8> {
    let params: Vec<String> = params.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\",\"params\":[{}],\"id\":1}}",
        params.join(",")
    )
    .into_bytes()
}

/// One request, as bytes ready to send (built once, sent many times).
#[derive(Clone)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    /// Headers beyond Host and Content-Length.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn post(path: &str, content_type: &str, body: Vec<u8>) -> Request {
        Request {
            method: "POST",
            path: path.to_string(),
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub fn xml(body: Vec<u8>) -> Request {
        Request::post("/", "text/xml", body)
    }

    pub fn get(path: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET",
            path: path.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\nHost: bench\r\n", self.method, self.path);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response: its head as received (status line and headers) and its body.
pub struct Response {
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The whole response as bare-hyper reads it from a file.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let mut out = self.head.clone().into_bytes();
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// One keep-alive HTTP/1.1 connection (or, with `closing`, a new connection per call
/// after the first, for an HTTP/1.0 server).
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    port: u16,
    pub closing: bool,
    used: bool,
}

impl Conn {
    pub async fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::with_capacity(1 << 16),
            port,
            closing: false,
            used: false,
        }
    }

    /// Sends a POST and returns the response body.
    pub async fn post(&mut self, path: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
        let req = Request::post(path, ctype, body.to_vec());
        self.send(&req.bytes()).await.body
    }

    /// Sends one request given as bytes and returns the response.
    pub async fn send(&mut self, request: &[u8]) -> Response {
        if self.closing && self.used {
            *self = Conn {
                closing: true,
                ..Conn::open(self.port).await
            };
        }
        self.used = true;
        self.stream.write_all(request).await.expect("write");
        self.read_response().await
    }

    async fn read_response(&mut self) -> Response {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("content-length");
                let total = end + 4 + len;
                while self.buf.len() < total {
                    self.fill().await;
                }
                let body = self.buf[end + 4..total].to_vec();
                self.buf.drain(..total);
                return Response { head, body };
            }
            self.fill().await;
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first `OpaqueRef:…` in a body.
pub fn first_ref(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let i = s.find("OpaqueRef:").expect("a ref in the reply");
    s[i..i + 46].to_string()
}

pub async fn login(port: u16) -> String {
    let mut c = Conn::open(port).await;
    first_ref(
        &c.post(
            "/",
            "text/xml",
            &xml_call("session.login_with_password", &["root", ROOT_PASSWORD]),
        )
        .await,
    )
}

/// Creates a task over a fresh connection and returns its ref.
pub async fn new_task(port: u16, session: &str, label: &str, description: &str) -> String {
    let body = xml_call("task.create", &[session, label, description]);
    first_ref(&Conn::open(port).await.post("/", "text/xml", &body).await)
}

/// A task's uuid (`task.get_uuid`).
pub async fn task_uuid(port: u16, session: &str, task: &str) -> String {
    let body = xml_call("task.get_uuid", &[session, task]);
    let reply = Conn::open(port).await.post("/", "text/xml", &body).await;
    let s = String::from_utf8_lossy(&reply);
    let start =
        s.find("<name>Value</name><value>").expect("a value") + "<name>Value</name><value>".len();
    s[start..start + 36].to_string()
}

/// `n` more tasks, created over 64 connections. Every creation must succeed (a limit
/// refusing them would leave the memory and bulk rows measuring nothing).
pub async fn create_tasks(port: u16, session: &str, n: usize) {
    let conns = 64.min(n.max(1));
    let per = n.div_ceil(conns);
    let local = tokio::task::LocalSet::new();
    for _ in 0..conns {
        let body = xml_call(
            "task.create",
            &[session, "bench", "a task created by the benchmark"],
        );
        local.spawn_local(async move {
            let mut c = Conn::open(port).await;
            for _ in 0..per {
                let reply = c.post("/", "text/xml", &body).await;
                assert!(
                    find(&reply, b"<value>Success</value>").is_some(),
                    "task.create failed: {}",
                    String::from_utf8_lossy(&reply)
                );
            }
        });
    }
    local.await;
}

pub struct Run {
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Operations completed in the run (the cluster rows count per operation).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub ops: usize,
}

/// `conns` connections, each running `step` in a loop for `secs` (an iteration may be
/// several calls: `step` returns how many operations it completed).
pub async fn load<F, Fut>(port: u16, conns: usize, secs: f64, step: F) -> Run
where
    F: Fn(Conn) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = (Conn, usize)> + 'static,
{
    drive(conns, secs, move |_| Conn::open(port), move |_, c| step(c)).await
}

/// `conns` clients, client `i` opened by `open(i)` and then running `step(i, client)` in
/// a loop for `secs` (`step` returns how many operations it completed); one latency per
/// step.
pub async fn drive<S, O, OFut, F, Fut>(conns: usize, secs: f64, open: O, step: F) -> Run
where
    S: 'static,
    O: Fn(usize) -> OFut,
    OFut: std::future::Future<Output = S> + 'static,
    F: Fn(usize, S) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = (S, usize)> + 'static,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let local = tokio::task::LocalSet::new();
    let results = Rc::new(std::cell::RefCell::new((0usize, Vec::<u32>::new())));
    for i in 0..conns {
        let step = step.clone();
        let results = results.clone();
        let opened = open(i);
        local.spawn_local(async move {
            let mut client = opened.await;
            let mut lat = Vec::new();
            let mut ops = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let (c, n) = step(i, client).await;
                client = c;
                ops += n;
                lat.push(t.elapsed().as_micros() as u32);
            }
            let mut r = results.borrow_mut();
            r.0 += ops;
            r.1.extend(lat);
        });
    }
    let started = Instant::now();
    local.await;
    let elapsed = started.elapsed().as_secs_f64();
    let (ops, mut lat) = Rc::try_unwrap(results).ok().unwrap().into_inner();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
    };
    Run {
        per_sec: ops as f64 / elapsed,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        ops,
    }
}

/// Keep-alive connections opened once, then given exact numbers of requests (for the
/// count-based instruments, which need a known number of requests and no connection
/// set-up inside the counted window).
pub struct Clients {
    conns: Vec<Conn>,
}

impl Clients {
    pub async fn open(port: u16, conns: usize) -> Clients {
        let mut all = Vec::with_capacity(conns);
        for _ in 0..conns {
            all.push(Conn::open(port).await);
        }
        Clients { conns: all }
    }

    /// Exactly `n` requests, spread over the connections as fast as they are answered.
    /// Every answer must have status 200.
    pub async fn send(&mut self, n: usize, request: &Request) {
        let bytes = request.bytes();
        let left = std::cell::Cell::new(n);
        let each = self.conns.iter_mut().map(|conn| {
            let (bytes, left) = (&bytes, &left);
            async move {
                while left.get() > 0 {
                    left.set(left.get() - 1);
                    let r = conn.send(bytes).await;
                    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&r.body));
                }
            }
        });
        futures_util::future::join_all(each).await;
    }
}
