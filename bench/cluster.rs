//! Cluster mode's rows (issue 13): a 3-member etcd on this machine, front-ends A (writes),
//! B (reads and waiters, the default `etcd-reads = "connection"`), C (`"cached"`) and D
//! (`"linearizable"`), and beside them, in the same run, what each target is stated
//! against:
//!
//! - writes: etcd's own transaction through the same client library the front-ends use
//!   (etcd-client over gRPC, one channel to the first endpoint, where the front-ends
//!   start before they move to the Raft leader),
//!   shaped like the transaction of one `set_progress` (the caller's session exists, the
//!   task's create and mod revisions, the 600-byte row and the `d/meta/last` put), each
//!   client on its own key; then `set_progress` through A, each client on its own task.
//!   Target: at most 1.3× etcd's latency at 1 and 16 clients. They run in rounds, limit
//!   then ours then the limit again on keys under the front-ends' watched prefix (which
//!   they ignore: the members then send each revision to four watches, as for ours),
//!   then the limit sent to the leader (where A sends its writes),
//!   `BENCH_CLUSTER_PAIRS` times (default 3), and each round gives its own ratios and,
//!   read between the runs, what one write cost the etcd members (CPU from `/proc`,
//!   revisions, puts, watch events, client and peer bytes, WAL bytes, fsyncs and Go
//!   allocations from each member's `/metrics`) and the front-ends; then
//!   once more each under `perf stat`, for what a write costs the front-end and what the
//!   limit's own process (etcd-client) pays for the same transaction.
//!   At 16 clients, etcd's own transactions of all clients nested in one (what group
//!   commit can reach at most), and at both, the same `set_progress` on a single node in
//!   memory (the HTTP hop and the decision without the cluster).
//! - reads: `get_record` on B, which did not write, at 1, 16 and 64 connections, against
//!   a single-node in-memory server started here (target: ≥ 90 % of the single-node
//!   rate), in `BENCH_CLUSTER_PAIRS` rounds of the two back to back, the order
//!   alternating, after an untimed warm-up of both; at 1, what one read costs each
//!   (`perf stat`: CPU, switches, syscalls per read); at 16, the same on D and C (the
//!   other modes) between two single-node runs; and at 16, a new connection per call on
//!   B and on the single node (what a client that moves pays once: the connect and, on
//!   B, the connection's one barrier). Beside the rounds: one reply's bytes on each side,
//!   and per window every bench process's CPU ms and context switches per 1,000 reads
//!   (the three members, A–D, the single node, the load client: what the rest of the
//!   machine did while each side was measured); at 64, the per-read counts again in
//!   rounds, with C beside B (no freshness clock on its read path).
//! - `event.from`: one write on A to 1,000 waiters on B, three rounds (each on 1,000 new
//!   connections to B), after an untimed round of the driver's own against a single node
//!   (its first round's heap growth is not B's delivery); each gives its first reply and
//!   the write's own answer beside the percentiles. Target: p99 < 25 ms.
//!
//! The hot-task row (16 clients on one task) and create + set_status + destroy have no
//! limit of their own. Everything shares this machine's cores: the figures are relative.

#[cfg(not(feature = "etcd"))]
pub async fn rows(_: &mut super::Table, _: f64) {
    println!("# cluster rows skipped: built without --features etcd (it needs protoc)");
}

#[cfg(feature = "etcd")]
pub use with_etcd::rows;

#[cfg(feature = "etcd")]
#[path = "../tests/etcd/mod.rs"]
mod etcd;

#[cfg(feature = "etcd")]
mod with_etcd {
    use std::process::{Command, Stdio};
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp};

    use crate::Table;
    use crate::client::{
        Conn, ROOT_PASSWORD, Run, drive, load, login, new_task, xml_call, xml_call_typed,
    };
    use crate::fanout::{fanout_calls, fanout_via};
    use crate::procs::{Proc, cpu_ms, free_port, start_ours, switches, target_dir};
    use crate::{churn, fixed, k, set_progress_load};

    use super::etcd;

    /// A front-end of the cluster (`serve --store etcd`).
    fn start_front_end(endpoints: &str, prefix: &str, extra: &[&str]) -> Option<Proc> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("xapi-taskd-bench-fe-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(target_dir().join("xapi-taskd"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--store", "etcd", "--etcd-endpoints", endpoints])
            .args(["--etcd-prefix", prefix])
            .args(["--max-connections", "30000", "--max-tasks", "100000000"])
            // Every client is on 127.0.0.1: one address may hold all of them.
            .args(["--max-connections-per-address", "30000"])
            .args(["--max-pending-tasks", "100000000"])
            .args(["--completed-task-timeout", "1000000000"])
            .args(extra)
            .env("XAPI_TASKD_ROOT_PASSWORD", ROOT_PASSWORD)
            .env("XAPI_TASKD_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Proc { child, port })
    }

    /// One client of the limit: its own task key, at the revisions it last wrote.
    struct Writer {
        client: Client,
        key: String,
        created: i64,
        modified: i64,
    }

    const PREFIX: &str = "/bench-etcd/d/";

    /// Keys under the front-ends' data prefix (`/bench/d/`) that are none of theirs: each
    /// front-end's watch receives their revisions and ignores them.
    const WATCHED: &str = "/bench/d/x-limit/";

    /// etcd's own `set_progress` transaction, `conns` clients each on its own key.
    async fn etcd_txn_load(client: &Client, conns: usize, secs: f64) -> Run {
        etcd_txn_load_under(client, PREFIX, conns, secs).await
    }

    /// The same, its keys under `prefix`.
    async fn etcd_txn_load_under(
        client: &Client,
        prefix: &'static str,
        conns: usize,
        secs: f64,
    ) -> Run {
        let row = vec![b'x'; 600];
        let session = format!("{prefix}session/s");
        let mut c = client.clone();
        c.put(session.as_str(), "{}", None).await.expect("etcd put");
        let first = row.clone();
        // A fresh key for every client of every run (the compares name its creation).
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let open = move |i: usize| {
            let (mut client, row) = (client.clone(), first.clone());
            let key = format!("{prefix}task/{run}-{i}");
            async move {
                let put = client.put(key.as_str(), row, None).await.expect("etcd put");
                let rev = put.header().expect("a header").revision();
                Writer {
                    client,
                    key,
                    created: rev,
                    modified: rev,
                }
            }
        };
        let (row, session) = (Rc::new(row), Rc::new(session));
        drive(conns, secs, open, move |_, mut w: Writer| {
            let (row, session) = (row.clone(), session.clone());
            async move {
                let k = w.key.as_str();
                let txn = Txn::new()
                    .when([
                        Compare::version(session.as_str(), CompareOp::Greater, 0),
                        Compare::create_revision(k, CompareOp::Equal, w.created),
                        Compare::mod_revision(k, CompareOp::Less, w.modified + 1),
                    ])
                    .and_then([
                        TxnOp::put(k, row.to_vec(), None),
                        TxnOp::put(format!("{prefix}meta/last"), uuid_like(w.modified), None),
                    ]);
                let resp = w.client.txn(txn).await.expect("etcd txn");
                assert!(resp.succeeded(), "each client has its own key");
                w.modified = resp.header().expect("a header").revision();
                (w, 1)
            }
        })
        .await
    }

    /// etcd's own transactions of `group` writers (as [`etcd_txn_load`]'s) nested in one
    /// transaction, one at a time: what group commit can reach at most.
    async fn etcd_grouped_load(client: &Client, group: usize, secs: f64) -> Run {
        let row = vec![b'x'; 600];
        let session = format!("{PREFIX}session/s");
        let mut c = client.clone();
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut keys = Vec::new();
        for i in 0..group {
            let k = format!("{PREFIX}task/g{run}-{i}");
            let put = c.put(k.as_str(), row.clone(), None).await.expect("put");
            let rev = put.header().expect("a header").revision();
            keys.push((k, rev, rev));
        }
        let keys = Rc::new(std::cell::RefCell::new(keys));
        drive(
            1,
            secs,
            |_| async {},
            move |_, ()| {
                let (keys, row, session, mut c) =
                    (keys.clone(), row.clone(), session.clone(), c.clone());
                async move {
                    let nested: Vec<TxnOp> = keys
                        .borrow()
                        .iter()
                        .map(|(k, created, modified)| {
                            TxnOp::txn(
                                Txn::new()
                                    .when([
                                        Compare::version(session.as_str(), CompareOp::Greater, 0),
                                        Compare::create_revision(
                                            k.as_str(),
                                            CompareOp::Equal,
                                            *created,
                                        ),
                                        Compare::mod_revision(
                                            k.as_str(),
                                            CompareOp::Less,
                                            *modified + 1,
                                        ),
                                    ])
                                    .and_then([TxnOp::put(k.as_str(), row.clone(), None)]),
                            )
                        })
                        .chain([TxnOp::put(format!("{PREFIX}meta/last"), uuid_like(0), None)])
                        .collect();
                    let resp = c.txn(Txn::new().and_then(nested)).await.expect("etcd txn");
                    assert!(resp.succeeded());
                    let rev = resp.header().expect("a header").revision();
                    for k in keys.borrow_mut().iter_mut() {
                        k.2 = rev;
                    }
                    ((), group)
                }
            },
        )
        .await
    }

    /// A value as long as the transaction id the front-ends write.
    fn uuid_like(n: i64) -> String {
        format!("{n:036}")
    }

    /// One round of the write rows: ours, etcd's own txn, the same watched, the same at
    /// the leader.
    type Round = (Run, Run, Run, Run);

    /// The members' metrics a write's cost is read from (`/metrics` on each member's client
    /// port), summed over their series; with a label, only that series.
    const METRICS: [(&str, &str); 11] = [
        ("etcd_debugging_mvcc_current_revision", ""),
        ("etcd_mvcc_put_total", ""),
        ("etcd_debugging_mvcc_events_total", ""),
        ("grpc_server_msg_sent_total", "grpc_method=\"Watch\""),
        ("etcd_network_client_grpc_sent_bytes_total", ""),
        ("etcd_network_client_grpc_received_bytes_total", ""),
        ("etcd_network_peer_sent_bytes_total", ""),
        ("etcd_disk_wal_write_bytes_total", ""),
        ("etcd_disk_wal_fsync_duration_seconds_count", ""),
        ("go_memstats_alloc_bytes_total", ""),
        ("etcd_server_is_leader", ""),
    ];

    /// One member's [`METRICS`], read now (an empty list if it does not answer).
    fn scrape(endpoint: &str) -> Vec<f64> {
        use std::io::{Read, Write};
        let addr = endpoint.trim_start_matches("http://");
        let mut text = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
            let _ = s.read_to_string(&mut text);
        }
        METRICS
            .iter()
            .map(|(name, label)| {
                text.lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| {
                        let (series, value) = l.rsplit_once(' ')?;
                        let (n, labels) = series.split_once('{').unwrap_or((series, ""));
                        (n == *name && labels.contains(label)).then(|| value.parse::<f64>().ok())?
                    })
                    .sum()
            })
            .collect()
    }

    /// What the etcd members and the front-ends had spent at one moment: read before and
    /// after a run, the difference divided by the run's writes is what one write cost
    /// them. (CPU from `/proc`, in clock ticks: a run of a few thousand writes is needed.)
    struct Spent {
        /// Per member: CPU ms, then [`METRICS`].
        members: Vec<(f64, Vec<f64>)>,
        /// CPU ms of A, and of the other front-ends together.
        front_ends: (f64, f64),
    }

    impl Spent {
        fn now(cluster: &etcd::Cluster, a: &Proc, others: &[&Proc]) -> Spent {
            let members = cluster
                .pids()
                .iter()
                .zip(cluster.endpoints())
                .map(|(pid, url)| (cpu_ms(&pid.to_string()), scrape(&url)))
                .collect();
            let others = others.iter().map(|p| p.cpu_ms()).sum();
            Spent {
                members,
                front_ends: (a.cpu_ms(), others),
            }
        }

        /// Per write of a run of `writes` that started at `before`.
        fn since(&self, before: &Spent, writes: usize) -> PerWrite {
            let n = writes.max(1) as f64;
            let metric = |i: usize| -> f64 {
                self.members
                    .iter()
                    .zip(&before.members)
                    .map(|(a, b)| a.1.get(i).unwrap_or(&0.0) - b.1.get(i).unwrap_or(&0.0))
                    .sum::<f64>()
            };
            let leader = self
                .members
                .iter()
                .position(|m| m.1.get(10).copied().unwrap_or(0.0) > 0.5);
            PerWrite {
                member_cpu: self
                    .members
                    .iter()
                    .zip(&before.members)
                    .map(|(a, b)| (a.0 - b.0) / n)
                    .collect(),
                leader,
                a_cpu: (self.front_ends.0 - before.front_ends.0) / n,
                others_cpu: (self.front_ends.1 - before.front_ends.1) / n,
                // A gauge on each member: the newest's.
                revisions: (self.members.iter().map(|m| m.1[0]).fold(0.0, f64::max)
                    - before.members.iter().map(|m| m.1[0]).fold(0.0, f64::max))
                    / n,
                // Each member applies every put: one member's share.
                puts: metric(1) / n / self.members.len().max(1) as f64,
                events: metric(2) / n,
                watch_msgs: metric(3) / n,
                client_bytes: (metric(4) + metric(5)) / n,
                peer_bytes: metric(6) / n,
                wal_bytes: metric(7) / n,
                fsyncs: metric(8) / n,
                alloc_kib: metric(9) / n / 1024.0,
            }
        }
    }

    /// What one write cost the members and the front-ends ([`Spent::since`]).
    struct PerWrite {
        member_cpu: Vec<f64>,
        leader: Option<usize>,
        a_cpu: f64,
        others_cpu: f64,
        revisions: f64,
        puts: f64,
        events: f64,
        watch_msgs: f64,
        client_bytes: f64,
        peer_bytes: f64,
        wal_bytes: f64,
        fsyncs: f64,
        alloc_kib: f64,
    }

    impl std::fmt::Display for PerWrite {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let each: Vec<String> = self
                .member_cpu
                .iter()
                .enumerate()
                .map(|(i, ms)| {
                    let role = match (i, self.leader == Some(i)) {
                        (0, true) => " (clients', leader)",
                        (0, false) => " (clients')",
                        (_, true) => " (leader)",
                        _ => "",
                    };
                    format!("m{i}{role} {ms:.3}")
                })
                .collect();
            write!(
                f,
                "members {:.3} ms CPU ({}), A {:.3}, B+C+D {:.3}; {:.2} revisions, {:.2} puts, \
                 {:.2} watch events in {:.2} messages, {:.0} B client gRPC, {:.0} B peer, \
                 {:.0} B WAL, {:.2} fsyncs, {:.1} KiB allocated",
                self.member_cpu.iter().sum::<f64>(),
                each.join(", "),
                self.a_cpu,
                self.others_cpu,
                self.revisions,
                self.puts,
                self.events,
                self.watch_msgs,
                self.client_bytes,
                self.peer_bytes,
                self.wal_bytes,
                self.fsyncs,
                self.alloc_kib
            )
        }
    }

    /// `task.set_progress` through one front-end, client `i` on `tasks[i]`, a new value
    /// every call.
    async fn set_progress_each(port: u16, session: &str, tasks: &[String], secs: f64) -> Run {
        let calls: Rc<Vec<(String, String)>> = Rc::new(
            tasks
                .iter()
                .map(|t| (session.to_string(), t.clone()))
                .collect(),
        );
        let counter = Rc::new(std::cell::Cell::new(0u64));
        drive(
            tasks.len(),
            secs,
            |_| Conn::open(port),
            move |i, mut c: Conn| {
                let (calls, counter) = (calls.clone(), counter.clone());
                async move {
                    counter.set(counter.get() + 1);
                    let value = format!(
                        "<double>{}</double>",
                        (counter.get() % 1000) as f64 / 1000.0
                    );
                    let (s, t) = &calls[i];
                    c.post(
                        "/",
                        "text/xml",
                        &xml_call_typed("task.set_progress", &[s, t], &value),
                    )
                    .await;
                    (c, 1)
                }
            },
        )
        .await
    }

    /// What `perf stat` counted in one process during one run, per operation.
    struct Counts {
        cpu_ms: f64,
        switches: f64,
        syscalls: f64,
        writev: f64,
        futex: f64,
        epoll: f64,
    }

    impl std::fmt::Display for Counts {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "{:.3} / {:.1} / {:.1} ({:.1}, {:.1}, {:.1})",
                self.cpu_ms, self.switches, self.syscalls, self.writev, self.futex, self.epoll
            )
        }
    }

    impl Counts {
        /// What `self` (ours) spends beyond `limit`.
        fn beyond(&self, limit: &Counts) -> String {
            format!(
                "ours adds {:+.3} ms CPU, {:+.1} switches, {:+.1} syscalls ({:+.1} writev, \
                 {:+.1} futex) per write",
                self.cpu_ms - limit.cpu_ms,
                self.switches - limit.switches,
                self.syscalls - limit.syscalls,
                self.writev - limit.writev,
                self.futex - limit.futex
            )
        }
    }

    /// Runs `work` with `perf stat` attached to process `pid` (every thread), and gives
    /// what it counted per operation of the run.
    async fn counted(pid: u32, work: impl std::future::Future<Output = Run>) -> (Run, Counts) {
        let out = std::env::temp_dir().join(format!("bench-cluster-perf-{pid}.csv"));
        let events = "task-clock,context-switches,raw_syscalls:sys_enter,\
                      syscalls:sys_enter_writev,syscalls:sys_enter_futex,\
                      syscalls:sys_enter_epoll_wait";
        let perf = Command::new("perf")
            .args(["stat", "-x", ",", "-e", events, "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        // Let it attach to every thread before the load starts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let run = work.await;
        if let Ok(mut child) = perf {
            // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let _ = child.wait();
        }
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        let n = run.ops.max(1) as f64;
        let count = |event: &str| {
            text.lines()
                .find(|l| l.split(',').nth(2) == Some(event))
                .and_then(|l| l.split(',').next()?.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
                / n
        };
        let counts = Counts {
            cpu_ms: count("task-clock"),
            switches: count("context-switches"),
            syscalls: count("raw_syscalls:sys_enter"),
            writev: count("syscalls:sys_enter_writev"),
            futex: count("syscalls:sys_enter_futex"),
            epoll: count("syscalls:sys_enter_epoll_wait"),
        };
        (run, counts)
    }

    fn ms(r: &Run) -> String {
        format!(
            "{} ({:.2}/{:.2})",
            k(r.per_sec),
            r.p50_us / 1e3,
            r.p99_us / 1e3
        )
    }

    fn us(r: &Run) -> String {
        format!("{} ({:.0}/{:.0})", k(r.per_sec), r.p50_us, r.p99_us)
    }

    fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether BENCH_CLUSTER (a comma list of `writes`, `hot`, `churn`, `reads`, `fanout`;
    /// default all) asks for a part.
    fn part(name: &str) -> bool {
        std::env::var("BENCH_CLUSTER")
            .map(|v| v.split(',').any(|p| p.trim() == name))
            .unwrap_or(true)
    }

    /// One request repeated, each call on a new connection (connecting included in its
    /// latency): a client that moved to this server, every time.
    async fn new_conn_each(port: u16, conns: usize, secs: f64, body: Vec<u8>) -> Run {
        let body = Rc::new(body);
        load(port, conns, secs, move |mut c: Conn| {
            let body = body.clone();
            async move {
                c.closing = true;
                c.post("/", "text/xml", &body).await;
                (c, 1)
            }
        })
        .await
    }

    /// CPU ms spent so far by the front-end and by all etcd members together.
    fn cpu(fe: &Proc, cluster: &etcd::Cluster) -> (f64, f64) {
        let members = cluster.pids().iter().map(|p| cpu_ms(&p.to_string())).sum();
        (fe.cpu_ms(), members)
    }

    /// One read run, the CPU ms its server and etcd's members spent per 1,000 reads, and
    /// every process's CPU ms and context switches per 1,000 reads (in [`read_rows`]'s
    /// order of `everyone`).
    type Measured = (Run, (f64, f64), Vec<(f64, f64)>);

    /// The read rows: at each width, `pairs` rounds of the single node and B run back to
    /// back, the order alternating (single node first in even rounds, B first in odd
    /// ones), so that each ratio comes from adjacent runs and neither side is always the
    /// one measured first (after a warm-up of both, untimed: the single node is started
    /// just before these rows); at 16, D and C between two more single-node runs; at 1,
    /// what one read costs each server, counted by `perf stat`.
    #[allow(clippy::too_many_arguments)]
    async fn read_rows(
        table: &mut Table,
        secs: f64,
        pairs: usize,
        cluster: &etcd::Cluster,
        single: &Proc,
        s_get: &[u8],
        (a, b, c, d): (&Proc, &Proc, &Proc, &Proc),
        get: &[u8],
    ) {
        // Every process on the machine that is part of the bench, so that a window's
        // ratio can be read against what everything else did during it (the members'
        // heartbeats, the other front-ends' probes and leases, the load client itself).
        let mut everyone: Vec<(String, String)> = cluster
            .pids()
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("m{i}"), p.to_string()))
            .collect();
        for (name, p) in [("A", a), ("B", b), ("C", c), ("D", d), ("single", single)] {
            everyone.push((name.to_string(), p.pid().to_string()));
        }
        everyone.push(("client".to_string(), "self".to_string()));
        let snapshot = || {
            everyone
                .iter()
                .map(|(_, p)| (cpu_ms(p), switches(p)))
                .collect::<Vec<_>>()
        };
        // One run of `fe`: its result and the CPU ms it and etcd's members spent per
        // 1,000 reads (from `/proc`), and every process's CPU and switches per 1,000.
        let measured = async |fe: &Proc, body: &[u8], conns: usize, secs: f64| {
            let before = cpu(fe, cluster);
            let all_before = snapshot();
            let r = fixed(fe.port, conns, secs, "/", "text/xml", body.to_vec()).await;
            let all_after = snapshot();
            let after = cpu(fe, cluster);
            let n = (r.ops as f64 / 1000.0).max(1e-9);
            let used = ((after.0 - before.0) / n, (after.1 - before.1) / n);
            let all = all_before
                .iter()
                .zip(&all_after)
                .map(|(x, y)| ((y.0 - x.0) / n, (y.1 - x.1) / n))
                .collect();
            (r, used, all)
        };
        // The same request, the same answer? (The bytes each side sends per read, and
        // what each process holds, which the rows before these grow on B and not on the
        // single node started just before them.)
        let b_reply = Conn::open(b.port).await.post("/", "text/xml", get).await;
        let s_reply = Conn::open(single.port)
            .await
            .post("/", "text/xml", s_get)
            .await;
        table.row([
            "cluster: one get_record, request / reply body bytes; resident MiB",
            "1",
            &format!("B: {} / {}; {:.1}", get.len(), b_reply.len(), b.rss_mib()),
            &format!(
                "single node in memory: {} / {}; {:.1}",
                s_get.len(),
                s_reply.len(),
                single.rss_mib()
            ),
            "",
            "",
        ]);
        let warm = (secs / 4.0).max(0.25);
        for conns in [1, 16, 64] {
            let _ = measured(single, s_get, conns, warm).await;
            let _ = measured(b, get, conns, warm).await;
        }
        let ratio = |r: &Run, s: &Run| 100.0 * r.per_sec / s.per_sec;
        for conns in [1, 16, 64] {
            let mut rounds = Vec::new();
            for round in 0..pairs.max(1) {
                let (s, r) = if round % 2 == 0 {
                    let s = measured(single, s_get, conns, secs).await;
                    (s, measured(b, get, conns, secs).await)
                } else {
                    let r = measured(b, get, conns, secs).await;
                    (measured(single, s_get, conns, secs).await, r)
                };
                rounds.push((s, r));
            }
            let mut ratios: Vec<f64> = rounds.iter().map(|(s, r)| ratio(&r.0, &s.0)).collect();
            let each = ratios
                .iter()
                .map(|x| format!("{x:.0} %"))
                .collect::<Vec<_>>()
                .join(", ");
            ratios.sort_by(f64::total_cmp);
            let median = ratios[ratios.len() / 2];
            let cells = |pick: fn(&(Measured, Measured)) -> &Measured| {
                rounds
                    .iter()
                    .map(|p| {
                        let (r, used, _) = pick(p);
                        format!("{} [{:.0}/{:.0}]", us(r), used.0, used.1)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            table.row([
                "cluster: task.get_record on B, connection (the default), which did not write \
                 (req/s, p50/p99 µs [CPU ms per 1,000 reads, server/etcd members]; rounds)",
                &conns.to_string(),
                &cells(|p| &p.1),
                &format!("single node in memory: {}", cells(|p| &p.0)),
                "",
                &format!("{each} of the single node's rate (median {median:.0} %)"),
            ]);
            // Each process's CPU ms and context switches per 1,000 reads, the mean over
            // the rounds, in the single node's windows and in B's.
            let per_process = |pick: fn(&(Measured, Measured)) -> &Measured| {
                everyone
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _))| {
                        let n = rounds.len() as f64;
                        let cpu: f64 = rounds.iter().map(|p| pick(p).2[i].0).sum::<f64>() / n;
                        let sw: f64 = rounds.iter().map(|p| pick(p).2[i].1).sum::<f64>() / n;
                        format!("{name} {cpu:.1}/{sw:.0}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            table.row([
                "cluster: during those reads, every process's CPU ms / context switches per \
                 1,000 reads (mean of the rounds)",
                &conns.to_string(),
                &format!("B's windows: {}", per_process(|p| &p.1)),
                &format!("the single node's windows: {}", per_process(|p| &p.0)),
                "",
                "",
            ]);
            if conns == 16 {
                // The other modes once each, between two single-node runs.
                let s1 = measured(single, s_get, conns, secs).await;
                let others = [
                    ("D, linearizable", measured(d, get, conns, secs).await),
                    ("C, cached", measured(c, get, conns, secs).await),
                ];
                let s2 = measured(single, s_get, conns, secs).await;
                let base = (s1.0.per_sec + s2.0.per_sec) / 2.0;
                for (name, (r, used, _)) in &others {
                    table.row([
                        &format!(
                            "cluster: task.get_record on {name}, which did not write (req/s, \
                             p50/p99 µs [CPU ms per 1,000 reads, server/etcd members])"
                        ),
                        &conns.to_string(),
                        &format!("{} [{:.0}/{:.0}]", us(r), used.0, used.1),
                        &format!(
                            "single node in memory, just before and after: {}, {}",
                            us(&s1.0),
                            us(&s2.0)
                        ),
                        "",
                        &format!(
                            "{:.0} % of the single node's mean rate",
                            100.0 * r.per_sec / base
                        ),
                    ]);
                }
                let s = new_conn_each(single.port, conns, secs, s_get.to_vec()).await;
                let r = new_conn_each(b.port, conns, secs, get.to_vec()).await;
                table.row([
                    "cluster: task.get_record on B, a new connection per call (req/s, p50/p99 µs)",
                    &conns.to_string(),
                    &us(&r),
                    &format!("single node in memory, the same: {}", us(&s)),
                    "",
                    &format!("{:.0} % of the single node's rate", ratio(&r, &s)),
                ]);
            }
            if conns == 1 || conns == 64 {
                // What one read costs each server, counted (not timed): the same request
                // on keep-alive connections, one and (where the ratio was lowest) 64;
                // at 64 also C (`cached`: no freshness clock on its read path), and in
                // `pairs` rounds, the single node first in even ones.
                let count_rounds = if conns == 64 { pairs.max(1) } else { 1 };
                for round in 0..count_rounds {
                    let on_single = async || {
                        counted(
                            single.pid(),
                            fixed(single.port, conns, secs, "/", "text/xml", s_get.to_vec()),
                        )
                        .await
                        .1
                    };
                    let on = async |fe: &Proc| {
                        counted(
                            fe.pid(),
                            fixed(fe.port, conns, secs, "/", "text/xml", get.to_vec()),
                        )
                        .await
                        .1
                    };
                    let on_c = async || if conns == 64 { Some(on(c).await) } else { None };
                    let (on_s, on_b, on_c) = if round % 2 == 0 {
                        let s = on_single().await;
                        (s, on(b).await, on_c().await)
                    } else {
                        let b = on(b).await;
                        let c = on_c().await;
                        (on_single().await, b, c)
                    };
                    let c_cell = on_c.map_or(String::new(), |on_c| {
                        format!(
                            "; C (cached) {on_c}: {:+.4} ms CPU, {:+.2} switches",
                            on_c.cpu_ms - on_s.cpu_ms,
                            on_c.switches - on_s.switches,
                        )
                    });
                    table.row([
                        "cluster: per get_record, CPU ms / context switches / syscalls (writev, futex, epoll_wait)",
                        &conns.to_string(),
                        &format!("front-end B: {on_b}"),
                        &format!("single node in memory: {on_s}"),
                        "",
                        &format!(
                            "B {:+.4} ms CPU, {:+.2} switches, {:+.2} syscalls per read{c_cell}",
                            on_b.cpu_ms - on_s.cpu_ms,
                            on_b.switches - on_s.switches,
                            on_b.syscalls - on_s.syscalls
                        ),
                    ]);
                }
            }
        }
    }

    pub async fn rows(table: &mut Table, secs: f64) {
        let Some(cluster) = etcd::Cluster::start(3) else {
            println!("# cluster rows skipped: etcd is not installed (apt-get install etcd-server)");
            return;
        };
        let urls = cluster.endpoints();
        let endpoints = urls.join(",");
        let (Some(a), Some(b), Some(c), Some(d)) = (
            start_front_end(&endpoints, "/bench/", &[]),
            start_front_end(&endpoints, "/bench/", &[]),
            start_front_end(&endpoints, "/bench/", &["--etcd-reads", "cached"]),
            start_front_end(&endpoints, "/bench/", &["--etcd-reads", "linearizable"]),
        ) else {
            println!("# cluster rows skipped: a front-end did not start");
            return;
        };
        let options = ConnectOptions::new().with_require_leader(true);
        let limit = Client::connect([urls[0].as_str()], Some(options))
            .await
            .expect("etcd connects");
        println!("# cluster rows: load average before them {}", loadavg());
        let session = login(a.port).await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            tasks.push(new_task(a.port, &session, "bench", &format!("written on A ({i})")).await);
        }
        // In pairs, limit then ours, so that each ratio comes from adjacent runs (this
        // machine's load moves more between runs than the change measured); then one
        // more of each with `perf stat` attached (it slows what it counts, so those runs'
        // latencies are not in the pairs).
        let pairs: usize = std::env::var("BENCH_CLUSTER_PAIRS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        // A client of the member that leads (by its own metrics), for the limit's
        // transactions sent where the front-ends now send theirs.
        let at_leader = match urls
            .iter()
            .find(|u| scrape(u).get(10).is_some_and(|l| *l > 0.5))
        {
            Some(u) => {
                let options = ConnectOptions::new().with_require_leader(true);
                Client::connect([u.as_str()], Some(options)).await.ok()
            }
            None => None,
        };
        for conns in [1, 16].into_iter().filter(|_| part("writes")) {
            // Each round: etcd's own txn, ours, and etcd's own txn again on keys under
            // the front-ends' watched prefix (which they ignore), so that the members
            // also send each revision to three watches, as for ours.
            let mut runs = Vec::new();
            // What each run cost the members and the front-ends, per write (read between
            // the runs, so it costs the rounds nothing): ours, the limit, the watched limit.
            let mut costs: [Vec<PerWrite>; 3] = Default::default();
            let others = [&b, &c, &d];
            for _ in 0..pairs {
                let before = Spent::now(&cluster, &a, &others);
                let l = etcd_txn_load(&limit, conns, secs).await;
                let after_l = Spent::now(&cluster, &a, &others);
                let o = set_progress_each(a.port, &session, &tasks[..conns], secs).await;
                let after_o = Spent::now(&cluster, &a, &others);
                let w = etcd_txn_load_under(&limit, WATCHED, conns, secs).await;
                let after_w = Spent::now(&cluster, &a, &others);
                costs[0].push(after_o.since(&after_l, o.ops));
                costs[1].push(after_l.since(&before, l.ops));
                costs[2].push(after_w.since(&after_o, w.ops));
                // And at the Raft leader, where A sends its transactions (the limit above
                // goes to the member A watches from, a follower in most clusters).
                let ld = match &at_leader {
                    Some(c) => etcd_txn_load(c, conns, secs).await,
                    None => Run {
                        per_sec: f64::NAN,
                        p50_us: f64::NAN,
                        p99_us: f64::NAN,
                        ops: 0,
                    },
                };
                runs.push((o, l, w, ld));
            }
            let each = |f: fn(&Run) -> f64, limit: fn(&Round) -> &Run| {
                runs.iter()
                    .map(|p| format!("{:.2}×", f(&p.0) / f(limit(p))))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let median = |f: fn(&Run) -> f64, limit: fn(&Round) -> &Run| {
                let mut r: Vec<f64> = runs.iter().map(|p| f(&p.0) / f(limit(p))).collect();
                r.sort_by(f64::total_cmp);
                r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
            };
            let cells = |pick: fn(&Round) -> &Run| {
                runs.iter()
                    .map(|p| ms(pick(p)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            table.row([
                "cluster: task.set_progress on A, each client on its own task (req/s, p50/p99 ms; rounds)",
                &conns.to_string(),
                &cells(|p| &p.0),
                &format!(
                    "etcd's own txn, each client on its own key: {}; the same, watched: {}; \
                     the same at the leader: {}",
                    cells(|p| &p.1),
                    cells(|p| &p.2),
                    cells(|p| &p.3)
                ),
                "",
                &format!(
                    "p50 {} (median {:.2}×), p99 {} etcd's; p50 {} (median {:.2}×) watched \
                     etcd's; p50 {} (median {:.2}×) etcd's at the leader",
                    each(|r| r.p50_us, |p| &p.1),
                    median(|r| r.p50_us, |p| &p.1),
                    each(|r| r.p99_us, |p| &p.1),
                    each(|r| r.p50_us, |p| &p.2),
                    median(|r| r.p50_us, |p| &p.2),
                    each(|r| r.p50_us, |p| &p.3),
                    median(|r| r.p50_us, |p| &p.3),
                ),
            ]);
            let names = [
                "set_progress on A",
                "etcd's own txn, own key",
                "etcd's own txn, watched key",
            ];
            for (what, cost) in names.into_iter().zip(costs.iter_mut()) {
                let all = |c: &[PerWrite]| {
                    c.iter()
                        .map(|p| format!("{:.3}", p.member_cpu.iter().sum::<f64>()))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let each = all(cost);
                cost.sort_by(|x, y| {
                    let sum = |p: &PerWrite| p.member_cpu.iter().sum::<f64>();
                    sum(x).total_cmp(&sum(y))
                });
                let Some(median) = cost.get(cost.len() / 2) else {
                    continue;
                };
                table.row([
                    &format!("cluster: per write, what the etcd members and front-ends spent: {what}"),
                    &conns.to_string(),
                    &format!("{median}"),
                    "",
                    "",
                    &format!("the round of median member CPU; members' CPU ms per write in each round: {each}"),
                ]);
            }
            if conns > 1 {
                let g = etcd_grouped_load(&limit, conns, secs).await;
                table.row([
                    "cluster: etcd's own txn, the clients' txns nested in one (writes/s, p50/p99 ms per txn)",
                    &conns.to_string(),
                    "",
                    &ms(&g),
                    "",
                    "what group commit can reach",
                ]);
            }
            {
                // What the HTTP hop and the decision cost, without the cluster: the same
                // call on a single node in memory.
                let single = start_ours(false);
                let s_session = login(single.port).await;
                let mut s_tasks = Vec::new();
                for i in 0..conns {
                    s_tasks.push(new_task(single.port, &s_session, "bench", &i.to_string()).await);
                }
                let r = set_progress_each(single.port, &s_session, &s_tasks, secs).await;
                table.row([
                    "cluster: the same set_progress on a single node in memory (req/s, p50/p99 ms)",
                    &conns.to_string(),
                    &ms(&r),
                    "",
                    "",
                    "the HTTP hop and the decision alone",
                ]);
            }
            let me = std::process::id();
            let (_, l) = counted(me, etcd_txn_load(&limit, conns, secs)).await;
            let (_, o) = counted(
                a.pid(),
                set_progress_each(a.port, &session, &tasks[..conns], secs),
            )
            .await;
            table.row([
                "cluster: per write, CPU ms / context switches / syscalls (writev, futex, epoll_wait)",
                &conns.to_string(),
                &format!("front-end A: {o}"),
                &format!("the limit's process (etcd-client and the driver): {l}"),
                "",
                &o.beyond(&l),
            ]);
        }
        if part("hot") {
            let hot = set_progress_load(a.port, &session, &tasks[0], 16, secs).await;
            table.ours(
                "cluster: task.set_progress on A, 16 clients on one task (req/s, p50/p99 ms)",
                "16",
                &ms(&hot),
            );
        }
        if part("churn") {
            let r = churn(a.port, &session, secs).await;
            table.ours(
                "cluster: task.create + set_status + destroy on A (cycles/s)",
                "16",
                &k(r.per_sec),
            );
        }
        // Reads on front-ends that did not write, against a single node in memory.
        let single = start_ours(false);
        let s_session = login(single.port).await;
        let s_task = new_task(single.port, &s_session, "bench", "written on A (0)").await;
        let s_get = xml_call("task.get_record", &[&s_session, &s_task]);
        let get = xml_call("task.get_record", &[&session, &tasks[0]]);
        if part("reads") {
            read_rows(
                table,
                secs,
                pairs,
                &cluster,
                &single,
                &s_get,
                (&a, &b, &c, &d),
                &get,
            )
            .await;
        }
        drop(single);
        if part("fanout") {
            // The driver's own first round, untimed, against a single node of its own: the
            // driver grows its heap for 1,000 replies in its first round (≈ 600 page
            // faults, 1–2 ms of its one thread, none in later rounds), which would
            // otherwise be counted as the first round's delivery. B is not warmed: each
            // round is still the first `event.from` on 1,000 new connections on B.
            let warm = start_ours(false);
            let w_session = login(warm.port).await;
            let w_task = new_task(warm.port, &w_session, "bench", "warm-up").await;
            let (waiter, trigger) = fanout_calls(warm.port, &w_session, &w_task, 0).await;
            let _ = fanout_via(&warm, warm.port, waiter, trigger, 1000).await;
        }
        for round in (0..3).filter(|_| part("fanout")) {
            let (waiter, trigger) = fanout_calls(b.port, &session, &tasks[0], 100 + round).await;
            let f = fanout_via(&b, a.port, waiter, trigger, 1000).await;
            // Split: the write's path to B (its first waiter's reply; the write's own
            // answer from A beside it), then B answering the rest.
            table.ours(
                "cluster: event.from, write on A to 1,000 waiters on B (ms; first reply, the write's own answer)",
                "1000",
                &format!("{f}; first {:.1}, write {:.1}", f.first, f.trigger),
            );
        }
        println!("# cluster rows: load average after them {}", loadavg());
        drop((a, b, c, d, cluster));
    }
}
