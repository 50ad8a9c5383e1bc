//! The benchmark driver (run it with bench/run.sh). It starts xapi-taskd (release build),
//! the bare-hyper limit and the stdlib-Python peer side by side, loads them with its own
//! keep-alive HTTP/1.1 client and with wrk, counts what a request costs each of them
//! (instructions, context switches, syscalls), and prints one table with the ratios the
//! targets are stated in. Client and servers share the machine: the driver runs on one
//! thread, wrk on two.
//!
//! Environment: BENCH_SECS (seconds per driver load run, default 3), BENCH_WRK_SECS
//! (seconds per wrk run, default 4), BENCH_MAX_TASKS (largest memory point, default
//! 1000000), BENCH_FANOUT (comma list, default 100,1000,10000), BENCH_COUNT_REQUESTS
//! (requests counted under callgrind, default 2000), BENCH_ONLY (comma list of parts:
//! `driver`, `wrk`, `fanout`, `counts`, `cluster`; default all of them, in that order;
//! `instructions` is `counts` without the perf/strace rows), BENCH_FACES (comma list of
//! `xmlrpc`, `jsonrpc`, `redfish`, `xclarity`, `event`: the faces of the wrk and count rows;
//! default all).

mod client;
mod cluster;
mod counts;
mod faces;
mod fanout;
mod procs;
mod wrk;

use std::rc::Rc;
use std::time::{Duration, Instant};

use client::{
    Conn, Request, Run, create_tasks, first_ref, json_call, load, login, new_task, xml_call,
    xml_call_typed,
};
use procs::{start_bare, start_ours, start_python};

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

/// Repeats one fixed request.
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

pub struct Table {
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

    pub fn row(&mut self, cells: [&str; 6]) {
        let r = cells.map(str::to_string);
        println!("{}", r.join(" | "));
        self.rows.push(r);
    }
}

pub fn k(v: f64) -> String {
    format!("{:.1}k", v / 1000.0)
}

async fn run() {
    let secs: f64 = env_or("BENCH_SECS", 3.0);
    let max_tasks: usize = env_or("BENCH_MAX_TASKS", 1_000_000);
    let wrk_secs: f64 = env_or("BENCH_WRK_SECS", 4.0);
    let only =
        std::env::var("BENCH_ONLY").unwrap_or_else(|_| "driver,wrk,fanout,counts,cluster".into());
    let parts: Vec<&str> = only.split(',').map(str::trim).collect();
    let fanouts: Vec<usize> = std::env::var("BENCH_FANOUT")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "# xapi-taskd benchmark: {cores} cores; driver rows {secs} s per run, client = 1 thread of this driver; wrk rows {wrk_secs} s per run, wrk -t2"
    );
    let mut table = Table::new();
    if parts.contains(&"driver") {
        driver_rows(&mut table, secs, max_tasks).await;
    }
    if parts.contains(&"wrk") {
        wrk::rows(&mut table, wrk_secs).await;
    }
    if parts.contains(&"fanout") {
        fanout::rows(&mut table, &fanouts).await;
    }
    if parts.contains(&"counts") || parts.contains(&"instructions") {
        counts::rows(&mut table, parts.contains(&"counts")).await;
    }
    if parts.contains(&"cluster") {
        cluster::rows(&mut table, secs).await;
    }
}

/// The driver's own rows: reads, writes, bulk, memory.
async fn driver_rows(table: &mut Table, secs: f64, max_tasks: usize) {
    // Reads, bulk and memory figures on an in-memory server (a million tasks need not be
    // written to disk for them); write workloads on both.
    let ours = start_ours(false);
    let session = login(ours.port).await;
    let task = new_task(ours.port, &session, "bench", "the task read by get_record").await;
    let get_record = xml_call("task.get_record", &[&session, &task]);
    let reply = Conn::open(ours.port)
        .await
        .send(&Request::xml(get_record.clone()).bytes())
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
        reply.body.len()
    );
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
    drop((ours, bare, python, plain));
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
    let _ = std::io::Write::flush(&mut std::io::stdout());
}
