//! The servers the benchmark starts: xapi-taskd (release build), the bare-hyper limit and
//! the stdlib-Python peer, each on a free port and killed when dropped.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{ROOT_PASSWORD, Response};

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Proc {
    pub child: Child,
    pub port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cpu_ms(&self) -> f64 {
        cpu_ms(&self.child.id().to_string())
    }

    pub fn rss_mib(&self) -> f64 {
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

/// CPU time (user + system) of process `pid` ("self" for the driver) so far, in ms.
pub fn cpu_ms(pid: &str) -> f64 {
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

/// Context switches (voluntary and involuntary) of every live thread of process `pid`
/// so far (`/proc/<pid>/task/*/status`; a thread that exited takes its count with it).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))] // only the cluster rows use it
pub fn switches(pid: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            status
                .lines()
                .filter(|l| {
                    l.starts_with("voluntary_ctxt_switches:")
                        || l.starts_with("nonvoluntary_ctxt_switches:")
                })
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum()
}

fn wait_port(port: u16, child: &mut Child, patience: Duration) {
    let deadline = Instant::now() + patience;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server for port {port} exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf() // target/release/examples → target/release
}

/// Starts our server; `durable` keeps its store in the data dir (the default), otherwise
/// `--ephemeral` (xapi's in-memory behaviour).
pub fn start_ours(durable: bool) -> Proc {
    start_ours_under(durable, &[])
}

/// The same, run by `wrapper` (e.g. `valgrind --tool=callgrind`), if not empty.
pub fn start_ours_under(durable: bool, wrapper: &[String]) -> Proc {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("xapi-taskd-bench-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = target_dir().join("xapi-taskd");
    let mut cmd = match wrapper.split_first() {
        None => Command::new(&bin),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&bin);
            c
        }
    };
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--max-connections", "30000", "--max-tasks", "100000000"])
        // Every client is on 127.0.0.1: one address may hold all of them.
        .args(["--max-connections-per-address", "30000"])
        .args(["--max-pending-tasks", "100000000"])
        // The per-user quotas too: the bench's tasks are all root's (a million of them
        // for the memory rows).
        .args(["--max-pending-tasks-per-user", "100000000"])
        .args(["--max-task-bytes-per-user", "1000000000000"])
        .args(["--completed-task-timeout", "1000000000"])
        .args(if durable {
            &[][..]
        } else {
            &["--ephemeral"][..]
        })
        .env("XAPI_TASKD_ROOT_PASSWORD", ROOT_PASSWORD)
        .env("XAPI_TASKD_LOG", "warn")
        .stdout(Stdio::null());
    let mut child = cmd
        .spawn()
        .expect("start target/release/xapi-taskd (build it with cargo build --release)");
    let patience = Duration::from_secs(if wrapper.is_empty() { 20 } else { 300 });
    wait_port(port, &mut child, patience);
    Proc { child, port }
}

/// The limit for one reply: bare hyper sending `reply` (status, headers, body) to every
/// request.
pub fn start_bare(reply: &Response) -> Proc {
    start_bare_under(&[reply], &[])
}

/// The fan-out limit: `event.from` calls block until a `set_progress`, then get `event`
/// (the bytes of the trigger's own reply do not matter: it gets the same).
pub fn start_bare_fanout(event: &Response) -> Proc {
    start_bare_under(&[event, event], &[])
}

pub fn start_bare_under(replies: &[&Response], wrapper: &[String]) -> Proc {
    let port = free_port();
    let bin = target_dir().join("examples").join("bare-hyper");
    let mut cmd = match wrapper.split_first() {
        None => Command::new(&bin),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&bin);
            c
        }
    };
    cmd.arg(format!("127.0.0.1:{port}"));
    for (i, reply) in replies.iter().enumerate() {
        let file = std::env::temp_dir().join(format!("bench-reply-{port}-{i}.http"));
        std::fs::write(&file, reply.to_file_bytes()).unwrap();
        cmd.arg(&file);
    }
    let mut child = cmd.spawn().expect("start bare-hyper");
    let patience = Duration::from_secs(if wrapper.is_empty() { 20 } else { 300 });
    wait_port(port, &mut child, patience);
    Proc { child, port }
}

/// The Python peer; `plain` = stdlib defaults (one thread, HTTP/1.0, backlog 5).
pub fn start_python(plain: bool) -> Proc {
    let port = free_port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join("python_peer.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .args(if plain { &["--plain"][..] } else { &[][..] })
        .spawn()
        .expect("start python3");
    wait_port(port, &mut child, Duration::from_secs(20));
    Proc { child, port }
}
