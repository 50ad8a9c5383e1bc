//! The wrk rows: the load generator people reach for (`wrk -t2`, Debian's package), against
//! xapi-taskd and against bare hyper sending the same reply, in pairs A B A B in one run.
//!
//! Why both generators: the driver is one client thread, so at 16 or 64 connections it is
//! often the bottleneck itself, and both servers then look alike (the ratio rises toward
//! 1). wrk's two threads, written in C, leave the servers CPU-bound on this machine, so its
//! ratio shows what each request costs the server compared with what hyper itself needs.

use std::process::Command;

use crate::Table;
use crate::client::Request;
use crate::faces::{Face, Target, faces};
use crate::k;
use crate::procs::{start_bare, start_ours, start_python};

/// What one wrk run measured.
pub struct WrkRun {
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Responses received in the whole run.
    pub requests: f64,
    /// Non-2xx answers or socket errors, as wrk reports them (empty when none).
    pub errors: String,
}

/// `wrk -t2 -c<conns> -d<secs>s` sending `request` to `port`.
pub fn wrk(port: u16, conns: usize, secs: f64, request: &Request) -> WrkRun {
    let file = std::env::temp_dir().join(format!("bench-wrk-{port}.req"));
    let mut text = format!("{}\n", request.method).into_bytes();
    for (name, value) in &request.headers {
        text.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    text.push(b'\n');
    text.extend_from_slice(&request.body);
    std::fs::write(&file, text).expect("request file");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/wrk.lua");
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
        ])
        .args(["-s", script])
        .arg(format!("http://127.0.0.1:{port}{}", request.path))
        .env("WRK_REQUEST", &file)
        .output()
        .expect("run wrk (bench/run.sh installs it: apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    parse(&text)
}

fn parse(text: &str) -> WrkRun {
    let after = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let per_sec = after("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let mut errors = Vec::new();
    if let Some(n) = after("Non-2xx or 3xx responses:") {
        errors.push(format!("{n} non-2xx"));
    }
    if let Some(s) = after("Socket errors:") {
        errors.push(format!("socket errors {s}"));
    }
    WrkRun {
        per_sec,
        p50_us: after("50%").map(micros).unwrap_or(f64::NAN),
        p99_us: after("99%").map(micros).unwrap_or(f64::NAN),
        requests: text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(0.0),
        errors: errors.join(", "),
    }
}

/// `195.00us`, `1.23ms`, `2.00s` → µs.
fn micros(v: &str) -> f64 {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        (v, f64::NAN)
    };
    number.trim().parse::<f64>().unwrap_or(f64::NAN) * scale
}

/// Each face's hot read at 16 and 64 connections: xapi-taskd and its limit (bare hyper
/// sending that face's reply, status and headers), twice each, alternating; the stdlib
/// Python peers once per connection count (XML-RPC only: they speak nothing else), the
/// threaded keep-alive one and the plain one (HTTP/1.0, a connection per call, backlog
/// 5: wrk reconnects for every request, and counts the resets at 64 connections).
pub async fn rows(table: &mut Table, secs: f64) {
    let ours = start_ours(false);
    let t = Target::on(ours.port).await;
    let mut peers = Vec::new();
    for (name, plain) in [("threaded", false), ("plain", true)] {
        let python = start_python(plain);
        let session = crate::client::login(python.port).await;
        let task = crate::client::new_task(python.port, &session, "bench", "read").await;
        peers.push((
            name,
            Face::XmlRpc.request(&Target::peer(session, task)),
            python,
        ));
    }
    let mut limits = Vec::new();
    for face in faces() {
        let reply = face.reply(ours.port, &t).await;
        println!(
            "# {}: request {} B, reply {} B of body",
            face.name(),
            face.request(&t).bytes().len(),
            reply.body.len()
        );
        limits.push((face, face.request(&t), start_bare(&reply)));
    }
    for conns in [16, 64] {
        for (face, request, bare) in &limits {
            let mut pairs = Vec::new();
            for _ in 0..2 {
                let a = wrk(ours.port, conns, secs, request);
                let b = wrk(bare.port, conns, secs, request);
                pairs.push((a, b));
            }
            let peer_runs: Vec<(&str, WrkRun)> = if *face == Face::XmlRpc {
                peers
                    .iter()
                    .map(|(name, request, python)| (*name, wrk(python.port, conns, secs, request)))
                    .collect()
            } else {
                Vec::new()
            };
            let peer_cells: Vec<String> = peer_runs
                .iter()
                .map(|(name, r)| format!("{name} {}", cells([r])))
                .collect();
            table.row([
                &format!("{}, wrk (req/s, p50/p99 µs)", face.name()),
                &conns.to_string(),
                &cells(pairs.iter().map(|p| &p.0)),
                &cells(pairs.iter().map(|p| &p.1)),
                &peer_cells.join("; "),
                &ratios(&pairs, &peer_runs),
            ]);
        }
    }
}

fn cells<'a>(runs: impl IntoIterator<Item = &'a WrkRun>) -> String {
    runs.into_iter()
        .map(|r| {
            let mut s = format!("{} ({:.0}/{:.0})", k(r.per_sec), r.p50_us, r.p99_us);
            if !r.errors.is_empty() {
                s.push_str(&format!(" [{}]", r.errors));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ratios(pairs: &[(WrkRun, WrkRun)], peers: &[(&str, WrkRun)]) -> String {
    let each: Vec<String> = pairs
        .iter()
        .map(|(a, b)| format!("{:.0} %", 100.0 * a.per_sec / b.per_sec))
        .collect();
    let mut s = format!("{} of limit", each.join(", "));
    let ours = pairs.iter().map(|(a, _)| a.per_sec).sum::<f64>() / pairs.len() as f64;
    for (name, p) in peers {
        s.push_str(&format!("; {:.1}× {name} peer", ours / p.per_sec));
    }
    s
}
