//! The count-based rows (`BENCH_ONLY=counts`): what one request costs each server, in
//! figures that do not depend on how busy the machine is.
//!
//! - **Instructions per request** (user space, `valgrind --tool=callgrind`): the server
//!   runs under callgrind, gets 200 requests to warm up, its counters are zeroed
//!   (`callgrind_control -z`), it gets exactly `BENCH_COUNT_REQUESTS` (default 2,000)
//!   more over 16 keep-alive connections, and the counters are dumped. Valgrind runs the
//!   threads one at a time, so this is the work, not the parallelism.
//! - **Context switches and syscalls per request** (`perf stat -e context-switches,
//!   raw_syscalls:sys_enter` attached to the server) during a `wrk -t2 -c16` run,
//!   divided by the responses wrk counted; and which syscalls those are (`strace -c -f`
//!   attached during a second, shorter wrk run: strace slows the server, so its total is
//!   not the one reported, only the mix).
//!
//! Each face is measured on xapi-taskd and on bare hyper sending that face's reply.
//! `BENCH_CALLGRIND_KEEP=DIR` keeps the callgrind dumps there, for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::Table;
use crate::client::{Clients, Request};
use crate::env_or;
use crate::faces::{Target, faces};
use crate::procs::{Proc, start_bare_under, start_ours_under};
use crate::wrk::wrk;

const WARM_UP: usize = 200;
const CONNS: usize = 16;

pub async fn rows(table: &mut Table, kernel: bool) {
    let n: usize = env_or("BENCH_COUNT_REQUESTS", 2000);
    let keep = std::env::var("BENCH_CALLGRIND_KEEP")
        .ok()
        .map(PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("bench-callgrind-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).expect("callgrind dir");
    for face in faces() {
        // Ours first: its reply is what the limit sends.
        let (ours_ir, reply, request) = {
            let out = dir.join(format!("{}-ours", face.slug()));
            let server = start_ours_under(false, &callgrind(&out));
            let t = Target::on(server.port).await;
            let request = face.request(&t);
            let reply = face.reply(server.port, &t).await;
            let ir = instructions_per_request(&server, &out, n, &request).await;
            (ir, reply, request)
        };
        let bare_ir = {
            let out = dir.join(format!("{}-bare", face.slug()));
            let server = start_bare_under(&[&reply], &callgrind(&out));
            instructions_per_request(&server, &out, n, &request).await
        };
        table.row([
            &format!("{}: instructions / request (callgrind)", face.name()),
            &CONNS.to_string(),
            &format!("{ours_ir:.0}"),
            &format!("{bare_ir:.0}"),
            "",
            &format!(
                "{:.2}× the limit's (+{:.0})",
                ours_ir / bare_ir,
                ours_ir - bare_ir
            ),
        ]);
        if !kernel {
            continue;
        }
        let (ours_sys, bare_sys) = {
            let ours = start_ours_under(false, &[]);
            let t = Target::on(ours.port).await;
            let bare = start_bare_under(&[&face.reply(ours.port, &t).await], &[]);
            let request = face.request(&t);
            (
                kernel_counts(&ours, &request),
                kernel_counts(&bare, &request),
            )
        };
        table.row([
            &format!(
                "{}: context switches, syscalls / request (wrk -t2)",
                face.name()
            ),
            &CONNS.to_string(),
            &ours_sys.to_string(),
            &bare_sys.to_string(),
            "",
            "",
        ]);
        println!(
            "# {} syscalls per request, xapi-taskd: {}",
            face.name(),
            ours_sys.mix
        );
        println!(
            "# {} syscalls per request, bare: {}",
            face.name(),
            bare_sys.mix
        );
    }
    let fan = std::env::var("BENCH_FACES").unwrap_or_default();
    if fan.is_empty() || fan.split(',').any(|f| f.trim() == "fanout") {
        crate::fanout::count_rows(table, env_or("BENCH_COUNT_FANOUT", 1000), &dir, kernel).await;
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("# callgrind dumps in {}", dir.display());
    }
}

pub fn callgrind(out: &Path) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--quiet".into(),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

/// Warms the server up, zeroes its callgrind counters, sends exactly `n` requests and
/// reads the instruction count of the dump that follows.
async fn instructions_per_request(server: &Proc, out: &Path, n: usize, request: &Request) -> f64 {
    let mut clients = Clients::open(server.port, CONNS).await;
    clients.send(WARM_UP, request).await;
    callgrind_control("-z", server.pid());
    clients.send(n, request).await;
    callgrind_control("-d", server.pid());
    dump_instructions(out) / n as f64
}

/// The instruction count of the first dump (`callgrind_control -d`) of a callgrind run.
pub fn dump_instructions(out: &Path) -> f64 {
    // The dump of `-d` is the first numbered part of the output file.
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let text = std::fs::read_to_string(&dump)
        .unwrap_or_else(|e| panic!("callgrind dump {}: {e}", dump.display()));
    let total: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:").or(l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("a callgrind summary line");
    total
}

pub fn callgrind_control(option: &str, pid: u32) {
    let status = Command::new("callgrind_control")
        .args([option, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("callgrind_control (Debian's valgrind package)");
    assert!(status.success(), "callgrind_control {option} failed");
}

/// Context switches and syscalls one request costs the server under `wrk -t2 -c16`.
pub struct KernelCounts {
    pub switches: f64,
    pub syscalls: f64,
    /// The commonest syscalls and how many of each per request (from strace).
    pub mix: String,
}

impl std::fmt::Display for KernelCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}, {:.2}", self.switches, self.syscalls)
    }
}

fn kernel_counts(server: &Proc, request: &Request) -> KernelCounts {
    let secs: f64 = env_or("BENCH_COUNT_SECS", 3.0);
    // Warm up (connections, allocator, caches) without an instrument attached.
    wrk(server.port, CONNS, 1.0, request);
    let perf_out = std::env::temp_dir().join(format!("bench-perf-{}.csv", server.port));
    let run = attached(
        Command::new("perf")
            .args(["stat", "-x", ",", "-o"])
            .arg(&perf_out)
            .args(["-e", "context-switches,raw_syscalls:sys_enter"])
            .args(["-p", &server.pid().to_string()]),
        || wrk(server.port, CONNS, secs, request),
    );
    let perf = std::fs::read_to_string(&perf_out).unwrap_or_default();
    let count = |event: &str| {
        perf.lines()
            .find(|l| l.contains(event))
            .and_then(|l| l.split(',').next()?.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / run.requests
    };
    let strace_out = std::env::temp_dir().join(format!("bench-strace-{}.txt", server.port));
    let run = attached(
        Command::new("strace")
            .args(["-c", "-f", "-o"])
            .arg(&strace_out)
            .args(["-p", &server.pid().to_string()]),
        || wrk(server.port, CONNS, 1.0, request),
    );
    let strace = std::fs::read_to_string(&strace_out).unwrap_or_default();
    KernelCounts {
        switches: count("context-switches"),
        syscalls: count("raw_syscalls:sys_enter"),
        mix: syscall_mix(&strace, run.requests),
    }
}

/// Runs `work` with `instrument` attached to a server, stopping it (SIGINT, as Ctrl-C)
/// afterwards so that it writes its figures.
fn attached<T>(instrument: &mut Command, work: impl FnOnce() -> T) -> T {
    let mut child = instrument
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf / strace");
    // Let it attach to every thread before the load starts.
    std::thread::sleep(Duration::from_millis(500));
    let out = work();
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    out
}

/// strace -c's table → "writev 1.00, recvfrom 1.02, …" (calls per request, commonest first).
fn syscall_mix(strace: &str, requests: f64) -> String {
    let mut rows: Vec<(f64, String)> = strace
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors,] syscall
            if cols.len() < 5 || cols[0].starts_with('-') || cols[0] == "%" {
                return None;
            }
            let name = *cols.last()?;
            if name == "total" {
                return None;
            }
            Some((cols[3].parse().ok()?, name.to_string()))
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    rows.iter()
        .take(6)
        .map(|(calls, name)| format!("{name} {:.2}", calls / requests))
        .collect::<Vec<_>>()
        .join(", ")
}
