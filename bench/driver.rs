//! The benchmark driver (run it with bench/run.sh). It starts xapi-taskd (release build),
//! the bare-hyper limit and the stdlib-Python peer side by side, drives them with its own
//! keep-alive HTTP/1.1 load generator, and prints one table with the ratios the targets
//! are stated in. Client and servers share the machine: the driver runs on one thread.
//!
//! Environment: BENCH_SECS (seconds per load run, default 3), BENCH_MAX_TASKS (largest
//! memory point, default 1000000), BENCH_FANOUT (comma list, default 100,1000,10000),
//! BENCH_ONLY=fanout (only the fan-out rows, for profiling them).

use std::io::{BufRead, BufReader};
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROOT_PASSWORD: &str = "bench-root-password";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Proc {
    child: Child,
    port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn cpu_ms(&self) -> f64 {
        cpu_ms(&self.child.id().to_string())
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf() // target/release/examples → target/release
}

/// Starts our server; `durable` keeps its store in the data dir (the default), otherwise
/// `--ephemeral` (xapi's in-memory behaviour).
fn start_ours(durable: bool) -> Proc {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("xapi-taskd-bench-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    let child = Command::new(target_dir().join("xapi-taskd"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&dir)
        .args(["--max-connections", "30000", "--max-tasks", "100000000"])
        // Every client is on 127.0.0.1: one address may hold all of them.
        .args(["--max-connections-per-address", "30000"])
        .args(["--max-pending-tasks", "100000000"])
        .args(["--completed-task-timeout", "1000000000"])
        .args(if durable {
            &[][..]
        } else {
            &["--ephemeral"][..]
        })
        .env("XAPI_TASKD_ROOT_PASSWORD", ROOT_PASSWORD)
        .env("XAPI_TASKD_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start target/release/xapi-taskd (build it with cargo build --release)");
    wait_port(port);
    Proc { child, port }
}

fn start_bare(body: &[u8]) -> Proc {
    start_bare_with(&[body])
}

/// The fan-out limit: `event.from` calls block until a `set_progress`, then get `event`
/// (the bytes of the trigger's own reply do not matter: it gets the same).
fn start_bare_fanout(event: &[u8]) -> Proc {
    start_bare_with(&[event, event])
}

fn start_bare_with(bodies: &[&[u8]]) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(target_dir().join("examples").join("bare-hyper"));
    cmd.arg(format!("127.0.0.1:{port}"));
    for (i, body) in bodies.iter().enumerate() {
        let file = std::env::temp_dir().join(format!("bench-body-{port}-{i}.xml"));
        std::fs::write(&file, body).unwrap();
        cmd.arg(&file);
    }
    let child = cmd.spawn().expect("start bare-hyper");
    wait_port(port);
    Proc { child, port }
}

/// The Python peer; `plain` = stdlib defaults (one thread, HTTP/1.0, backlog 5).
fn start_python(plain: bool) -> Proc {
    let port = free_port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join("python_peer.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .args(if plain { &["--plain"][..] } else { &[][..] })
        .spawn()
        .expect("start python3");
    wait_port(port);
    Proc { child, port }
}

/// A call body as Python's xmlrpc.client writes it (pretty, `<string>` typed).
fn xml_call(method: &str, params: &[&str]) -> Vec<u8> {
    let mut s = format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>\n"
    );
    for p in params {
        s.push_str(&format!(
            "<param>\n<value><string>{p}</string></value>\n</param>\n"
        ));
    }
    s.push_str("</params>\n</methodCall>\n");
    s.into_bytes()
}

fn xml_call_typed(method: &str, params: &[&str], last: &str) -> Vec<u8> {
    let mut s = format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>\n"
    );
    for p in params {
        s.push_str(&format!(
            "<param>\n<value><string>{p}</string></value>\n</param>\n"
        ));
    }
    s.push_str(&format!(
        "<param>\n<value>{last}</value>\n</param>\n</params>\n</methodCall>\n"
    ));
    s.into_bytes()
}

fn json_call(method: &str, params: &[&str]) -> Vec<u8> {
    let params: Vec<String> = params.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\",\"params\":[{}],\"id\":1}}",
        params.join(",")
    )
    .into_bytes()
}

/// One keep-alive HTTP/1.1 connection (or, with `closing`, a new connection per call
/// after the first, for an HTTP/1.0 server).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    port: u16,
    closing: bool,
    used: bool,
}

impl Conn {
    async fn open(port: u16) -> Conn {
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
    async fn post(&mut self, path: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        if self.closing && self.used {
            *self = Conn {
                closing: true,
                ..Conn::open(self.port).await
            };
        }
        self.used = true;
        self.stream.write_all(&req).await.expect("write");
        self.read_response().await
    }

    async fn read_response(&mut self) -> Vec<u8> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap_or("");
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
                return body;
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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first `OpaqueRef:…` in a body.
fn first_ref(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let i = s.find("OpaqueRef:").expect("a ref in the reply");
    s[i..i + 46].to_string()
}

async fn login(port: u16) -> String {
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
async fn new_task(port: u16, session: &str, label: &str, description: &str) -> String {
    let body = xml_call("task.create", &[session, label, description]);
    first_ref(&Conn::open(port).await.post("/", "text/xml", &body).await)
}

struct Run {
    per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

/// `conns` connections, each sending `body(i)` in a loop for `secs` (an iteration may be
/// several calls: `step` returns how many operations it completed).
async fn load<F, Fut>(port: u16, conns: usize, secs: f64, step: F) -> Run
where
    F: Fn(Conn) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = (Conn, usize)> + 'static,
{
    drive(conns, secs, move |_| Conn::open(port), move |_, c| step(c)).await
}

/// `conns` clients, client `i` opened by `open(i)` and then running `step(i, client)` in
/// a loop for `secs` (`step` returns how many operations it completed); one latency per
/// step.
async fn drive<S, O, OFut, F, Fut>(conns: usize, secs: f64, open: O, step: F) -> Run
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
    }
}

/// Repeats one fixed request.
/// `task.set_progress` with a new value every call (an identical value changes nothing,
/// so it would not reach the store).
async fn set_progress_load(port: u16, session: &str, task: &str, conns: usize, secs: f64) -> Run {
    let counter = Rc::new(std::cell::Cell::new(0u64));
    let (session, task) = (Rc::new(session.to_string()), Rc::new(task.to_string()));
    load(port, conns, secs, move |mut c: Conn| {
        let (counter, session, task) = (counter.clone(), session.clone(), task.clone());
        async move {
            counter.set(counter.get() + 1);
            let value = format!(
                "<double>{}</double>",
                (counter.get() % 1000) as f64 / 1000.0
            );
            c.post(
                "/",
                "text/xml",
                &xml_call_typed("task.set_progress", &[&session, &task], &value),
            )
            .await;
            (c, 1)
        }
    })
    .await
}

/// 16 connections each creating a task, completing it and destroying it, in a loop.
async fn churn(port: u16, session: &str, secs: f64) -> Run {
    let create = Rc::new(xml_call("task.create", &[session, "churn", ""]));
    let s = Rc::new(session.to_string());
    load(port, 16, secs, move |mut c: Conn| {
        let (create, s) = (create.clone(), s.clone());
        async move {
            let t = first_ref(&c.post("/", "text/xml", &create).await);
            c.post(
                "/",
                "text/xml",
                &xml_call_typed("task.set_status", &[&s, &t], "success"),
            )
            .await;
            c.post("/", "text/xml", &xml_call("task.destroy", &[&s, &t]))
                .await;
            (c, 1)
        }
    })
    .await
}

async fn fixed(
    port: u16,
    conns: usize,
    secs: f64,
    path: &'static str,
    ctype: &'static str,
    body: Vec<u8>,
) -> Run {
    let body = Rc::new(body);
    load(port, conns, secs, move |mut c: Conn| {
        let body = body.clone();
        async move {
            c.post(path, ctype, &body).await;
            (c, 1)
        }
    })
    .await
}

struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    /// A table with its header row printed.
    fn new() -> Table {
        let mut table = Table { rows: Vec::new() };
        table.row([
            "workload",
            "conns",
            "xapi-taskd",
            "bare hyper (limit)",
            "python peer",
            "ratios",
        ]);
        table.row(["---", "---", "---", "---", "---", "---"]);
        table
    }

    /// A row with a figure for xapi-taskd only (no comparator runs this workload).
    fn ours(&mut self, workload: &str, conns: &str, figure: &str) {
        self.row([workload, conns, figure, "", "", ""]);
    }

    fn row(&mut self, cells: [&str; 6]) {
        let r = cells.map(str::to_string);
        println!("{}", r.join(" | "));
        self.rows.push(r);
    }
}

fn k(v: f64) -> String {
    format!("{:.1}k", v / 1000.0)
}

async fn create_tasks(port: u16, session: &str, n: usize) {
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
                c.post("/", "text/xml", &body).await;
            }
        });
    }
    local.await;
}

/// Fan-out, with its own limit: the bare server holding the same number of connections
/// and answering them all with the bytes of a real event reply, no application work. Also
/// prints the CPU time each side spent in the round, which shows where the time goes.
async fn fanout_rows(table: &mut Table, fanouts: &[usize]) {
    let fresh = start_ours(false);
    let session = login(fresh.port).await;
    let task = new_task(fresh.port, &session, "fan-out", "").await;
    let (waiter, trigger) = fanout_calls(fresh.port, &session, &task, 0).await;
    let event_reply = fanout(&fresh, waiter, trigger, 1).await.sample;
    let bare_fan = start_bare_fanout(&event_reply);
    for (round, &n) in fanouts.iter().enumerate() {
        let (waiter, trigger) = fanout_calls(fresh.port, &session, &task, round + 1).await;
        let ours = fanout(&fresh, waiter.clone(), trigger.clone(), n).await;
        let bare = fanout(&bare_fan, waiter, trigger, n).await;
        println!(
            "# fan-out to {n}: CPU ms from the change to the last reply, server/client: xapi-taskd {:.0}/{:.0}, bare {:.0}/{:.0}",
            ours.cpu.0, ours.cpu.1, bare.cpu.0, bare.cpu.1
        );
        table.row([
            &format!("event.from fan-out to {n} waiters (ms after the change)"),
            &n.to_string(),
            &ours.to_string(),
            &bare.to_string(),
            "",
            &format!("p99 {:.1}× the limit's", ours.p99 / bare.p99),
        ]);
    }
}

/// With BENCH_PERF_CTL naming the control FIFO of a `perf record --control
/// fifo:FIFO --delay=-1`, records only the fan-out's answer phase (docs/performance.md).
fn perf_control(command: &str) {
    if let Ok(fifo) = std::env::var("BENCH_PERF_CTL") {
        let _ = std::fs::write(fifo, format!("{command}\n"));
    }
}

/// CPU time (user + system) of process `pid` ("self" for the driver) so far, in ms.
fn cpu_ms(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks * 1000.0 / hz
}

/// The two calls of a fan-out round against our server: the waiters' `event.from` on one
/// task from the current token, and the `set_progress` that wakes them (a value no earlier
/// round wrote: an identical write is not a change and wakes nobody).
async fn fanout_calls(port: u16, session: &str, task: &str, round: usize) -> (Vec<u8>, Vec<u8>) {
    let batch = Conn::open(port)
        .await
        .post("/", "text/xml", &xml_call_typed("event.from", &[session], "<array><data><value>task</value></data></array></value></param><param><value></value></param><param><value><double>0</double>"))
        .await;
    let s = String::from_utf8_lossy(&batch);
    let i =
        s.rfind("<name>token</name><value>").expect("token") + "<name>token</name><value>".len();
    let token = &s[i..i + 41];
    let waiter = xml_call_typed(
        "event.from",
        &[session],
        &format!(
            "<array><data><value>task/{task}</value></data></array></value></param><param><value>{token}</value></param><param><value><double>120</double>"
        ),
    );
    let trigger = xml_call_typed(
        "task.set_progress",
        &[session, task],
        &format!("<double>{}</double>", 1.0 / (round as f64 + 2.0)),
    );
    (waiter, trigger)
}

/// One fan-out round: `n` connections each block in the `waiter` call, then `trigger` is
/// sent on another connection, and each waiter's time from that send to its complete
/// reply is recorded.
async fn fanout(server: &Proc, waiter: Vec<u8>, trigger: Vec<u8>, n: usize) -> Fanout {
    fanout_via(server, server.port, waiter, trigger, n).await
}

/// [`fanout`] with the trigger sent to another server (a second front-end of a cluster).
async fn fanout_via(
    server: &Proc,
    trigger_port: u16,
    waiter: Vec<u8>,
    trigger: Vec<u8>,
    n: usize,
) -> Fanout {
    use std::cell::{Cell, RefCell};

    /// What the round's waiters share (one thread: Rc and cells).
    struct Round {
        body: Vec<u8>,
        start: Cell<Option<Instant>>,
        times: RefCell<Vec<f64>>,
        sample: RefCell<Vec<u8>>,
        held: RefCell<Vec<Conn>>,
    }

    let port = server.port;
    let mut c = Conn::open(trigger_port).await;
    let round = Rc::new(Round {
        body: waiter,
        start: Cell::new(None),
        times: RefCell::new(Vec::with_capacity(n)),
        sample: RefCell::new(Vec::new()),
        held: RefCell::new(Vec::with_capacity(n)),
    });
    let local = tokio::task::LocalSet::new();
    // Each waiter sends its call as soon as its connection is open (inside the LocalSet):
    // a connection that stays silent while thousands of others are opened would meet the
    // server's request-head timeout. A waiter keeps its connection once answered, as a
    // real watcher does (it sends its next `event.from` on it): closing it at once would
    // put connection teardown, which costs as much kernel time as the reply, inside the
    // measured window.
    let waiters = {
        let round = round.clone();
        async move {
            for _ in 0..n {
                let mut conn = Conn::open(port).await;
                let round = round.clone();
                tokio::task::spawn_local(async move {
                    let reply = conn.post("/", "text/xml", &round.body).await;
                    let t0: Instant = round.start.get().expect("woken after the change");
                    round
                        .times
                        .borrow_mut()
                        .push(t0.elapsed().as_secs_f64() * 1000.0);
                    assert!(
                        find(&reply, b"<value>mod</value>").is_some(),
                        "a waiter got no event: {}",
                        String::from_utf8_lossy(&reply)
                    );
                    *round.sample.borrow_mut() = reply;
                    round.held.borrow_mut().push(conn);
                });
            }
        }
    };
    local.run_until(waiters).await;
    local
        .run_until(async {
            // Let every waiter reach the server and block.
            tokio::time::sleep(Duration::from_millis(500 + n as u64 / 5)).await;
            perf_control("enable");
            round.start.set(Some(Instant::now()));
            c.post("/", "text/xml", &trigger).await;
        })
        .await;
    let cpu = (server.cpu_ms(), cpu_ms("self"));
    local.await;
    let cpu = (server.cpu_ms() - cpu.0, cpu_ms("self") - cpu.1);
    perf_control("disable");
    let round = Rc::try_unwrap(round).ok().expect("every waiter is done");
    drop(round.held);
    let mut t = round.times.into_inner();
    t.sort_by(f64::total_cmp);
    let pct = |p: f64| t[((t.len() as f64 - 1.0) * p) as usize];
    Fanout {
        p50: pct(0.5),
        p99: pct(0.99),
        max: t[t.len() - 1],
        cpu,
        sample: round.sample.into_inner(),
    }
}

/// What a fan-out round measured: latencies in ms after the change, the CPU ms the server
/// and the client spent from the change until the last waiter had its reply, and one
/// waiter's reply.
struct Fanout {
    p50: f64,
    p99: f64,
    max: f64,
    cpu: (f64, f64),
    sample: Vec<u8>,
}

impl std::fmt::Display for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1}, p99 {:.1}, max {:.1}",
            self.p50, self.p99, self.max
        )
    }
}

async fn run() {
    let secs: f64 = env_or("BENCH_SECS", 3.0);
    let max_tasks: usize = env_or("BENCH_MAX_TASKS", 1_000_000);
    let only_fanout = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "fanout");
    let only_cluster = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "cluster");
    let fanouts: Vec<usize> = std::env::var("BENCH_FANOUT")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "# xapi-taskd benchmark: {cores} cores, {secs} s per run, client = 1 thread of this driver"
    );
    if only_fanout {
        fanout_rows(&mut Table::new(), &fanouts).await;
        return;
    }
    if only_cluster {
        cluster::rows(&mut Table::new(), secs).await;
        return;
    }
    // Reads, bulk and memory figures on an in-memory server (a million tasks need not be
    // written to disk for them); write workloads on both.
    let ours = start_ours(false);
    let session = login(ours.port).await;
    let task = new_task(ours.port, &session, "bench", "the task read by get_record").await;
    let get_record = xml_call("task.get_record", &[&session, &task]);
    let reply = Conn::open(ours.port)
        .await
        .post("/", "text/xml", &get_record)
        .await;
    let bare = start_bare(&reply);
    let python = start_python(false);
    let plain = start_python(true);
    let py_session = login(python.port).await;
    let py_task = new_task(
        python.port,
        &py_session,
        "bench",
        "the task read by get_record",
    )
    .await;
    let py_get_record = xml_call("task.get_record", &[&py_session, &py_task]);
    let pl_session = login(plain.port).await;
    let pl_task = new_task(
        plain.port,
        &pl_session,
        "bench",
        "the task read by get_record",
    )
    .await;
    let pl_get_record = xml_call("task.get_record", &[&pl_session, &pl_task]);
    println!(
        "# get_record request {} B, reply {} B",
        get_record.len(),
        reply.len()
    );

    let mut table = Table::new();
    for conns in [1, 16, 64] {
        let o = fixed(ours.port, conns, secs, "/", "text/xml", get_record.clone()).await;
        let b = fixed(bare.port, conns, secs, "/", "text/xml", get_record.clone()).await;
        let p = fixed(
            python.port,
            conns,
            secs,
            "/",
            "text/xml",
            py_get_record.clone(),
        )
        .await;
        // The plain peer's listen backlog of 5 resets connections at 64 clients: it is
        // measured where it still answers.
        let plain_text = if conns <= 16 {
            let body = Rc::new(pl_get_record.clone());
            let r = load(plain.port, conns, secs, move |mut c: Conn| {
                let body = body.clone();
                async move {
                    c.closing = true;
                    c.post("/", "text/xml", &body).await;
                    (c, 1)
                }
            })
            .await;
            format!(
                "plain stdlib peer {}: {:.1}×",
                k(r.per_sec),
                o.per_sec / r.per_sec
            )
        } else {
            "plain stdlib peer: resets connections (backlog 5)".to_string()
        };
        table.row([
            "task.get_record (req/s, p50/p99 µs)",
            &conns.to_string(),
            &format!("{} ({:.0}/{:.0})", k(o.per_sec), o.p50_us, o.p99_us),
            &format!("{} ({:.0}/{:.0})", k(b.per_sec), b.p50_us, b.p99_us),
            &format!("{} ({:.0}/{:.0})", k(p.per_sec), p.p50_us, p.p99_us),
            &format!(
                "{:.0} % of limit, {:.1}× peer; {plain_text}",
                100.0 * o.per_sec / b.per_sec,
                o.per_sec / p.per_sec,
            ),
        ]);
    }
    for conns in [16, 64] {
        let j = fixed(
            ours.port,
            conns,
            secs,
            "/jsonrpc",
            "application/json",
            json_call("task.get_record", &[&session, &task]),
        )
        .await;
        table.ours(
            "JSON-RPC task.get_record (req/s)",
            &conns.to_string(),
            &k(j.per_sec),
        );
    }
    let durable = start_ours(true);
    let d_session = login(durable.port).await;
    let d_task = new_task(durable.port, &d_session, "bench", "durable").await;
    for conns in [16, 64] {
        let o = set_progress_load(ours.port, &session, &task, conns, secs).await;
        let d = set_progress_load(durable.port, &d_session, &d_task, conns, secs).await;
        let p = set_progress_load(python.port, &py_session, &py_task, conns, secs).await;
        table.row([
            "task.set_progress, in memory (req/s)",
            &conns.to_string(),
            &k(o.per_sec),
            "",
            &k(p.per_sec),
            &format!("{:.1}× peer", o.per_sec / p.per_sec),
        ]);
        table.row([
            "task.set_progress, durable (req/s)",
            &conns.to_string(),
            &k(d.per_sec),
            "",
            "",
            &format!(
                "{:.0} % of in-memory; p50 {:.2} ms, p99 {:.2} ms",
                100.0 * d.per_sec / o.per_sec,
                d.p50_us / 1000.0,
                d.p99_us / 1000.0
            ),
        ]);
    }
    for (name, port, s) in [
        ("in memory", ours.port, &session),
        ("durable", durable.port, &d_session),
    ] {
        let o = churn(port, s, secs).await;
        table.ours(
            &format!("task.create + set_status + destroy, {name} (cycles/s)"),
            "16",
            &k(o.per_sec),
        );
    }
    drop(durable);
    let mut created = 1usize;
    for n in [10_000usize, 100_000] {
        create_tasks(ours.port, &session, n - created).await;
        created = n;
        let body = xml_call("task.get_all_records", &[&session]);
        let mut c = Conn::open(ours.port).await;
        let mut best = f64::MAX;
        let mut size = 0;
        for _ in 0..3 {
            let t = Instant::now();
            size = c.post("/", "text/xml", &body).await.len();
            best = best.min(t.elapsed().as_secs_f64());
        }
        table.ours(
            &format!("task.get_all_records, {n} tasks"),
            "1",
            &format!(
                "{:.0} MB/s ({:.1} MB in {:.0} ms)",
                size as f64 / best / 1e6,
                size as f64 / 1e6,
                best * 1000.0
            ),
        );
    }
    // RSS at rest: the server gives the large replies' freed heap back to the OS a
    // moment after them (src/trim.rs).
    tokio::time::sleep(Duration::from_secs(2)).await;
    table.ours(
        "RSS with 100,000 tasks (at rest)",
        "",
        &format!("{:.0} MiB", ours.rss_mib()),
    );
    if max_tasks > created {
        create_tasks(ours.port, &session, max_tasks - created).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        table.ours(
            &format!("RSS with {max_tasks} tasks (at rest)"),
            "",
            &format!("{:.0} MiB", ours.rss_mib()),
        );
    }
    drop(ours);
    fanout_rows(&mut table, &fanouts).await;
    drop((bare, python, plain));
    cluster::rows(&mut table, secs).await;
}

mod cluster;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
    // Keep stdout flushed for pipes.
    let _ = BufReader::new(std::io::empty()).lines().count();
}
