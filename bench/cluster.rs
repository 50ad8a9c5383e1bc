//! Cluster mode's rows (`BENCH_ONLY=cluster`): a 3-member etcd on this machine and
//! front-ends of xapi-taskd on it (the binary built with `--features etcd`).

use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::Table;
use crate::client::{Conn, ROOT_PASSWORD, Run, load, login, new_task, xml_call};
use crate::fanout::{fanout_calls, fanout_via};
use crate::procs::{Proc, free_port, target_dir};
use crate::{churn, fixed, k, set_progress_load};

#[path = "../tests/etcd/mod.rs"]
mod etcd;

/// A front-end of the cluster (`serve --store etcd`; the binary needs the etcd feature).
fn start_front_end(endpoints: &str, prefix: &str, extra: &[&str]) -> Option<Proc> {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("xapi-taskd-bench-fe-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(target_dir().join("xapi-taskd"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&dir)
        .args([
            "--store",
            "etcd",
            "--etcd-endpoints",
            endpoints,
            "--etcd-prefix",
            prefix,
        ])
        .args([
            "--max-connections",
            "30000",
            "--max-pending-tasks",
            "100000000",
        ])
        .args([
            "--max-tasks",
            "100000000",
            "--completed-task-timeout",
            "1000000000",
        ])
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

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// etcd's own transaction, shaped like one XAPI write (a compare on a key's mod revision,
/// a 600-byte row and the `meta/last` put), through etcd's JSON gateway on one member:
/// what a write through xapi-taskd costs at least.
async fn etcd_txn_load(port: u16, conns: usize, secs: f64) -> Run {
    let n = Rc::new(std::cell::Cell::new(0u64));
    load(port, conns, secs, move |mut c: Conn| {
        let n = n.clone();
        async move {
            n.set(n.get() + 1);
            let key = base64(format!("/bench-etcd/d/task/{}", n.get() % 64).as_bytes());
            let body = format!(
                r#"{{"compare":[{{"key":"{key}","target":"MOD","result":"LESS","mod_revision":"9223372036854775807"}}],"success":[{{"request_put":{{"key":"{key}","value":"{}"}}}},{{"request_put":{{"key":"{}","value":"{}"}}}}]}}"#,
                base64(&[b'x'; 600]),
                base64(b"/bench-etcd/d/meta/last"),
                base64(n.get().to_string().as_bytes()),
            );
            c.post("/v3/kv/txn", "application/json", body.as_bytes()).await;
            (c, 1)
        }
    })
    .await
}

/// Cluster mode's rows: a 3-member etcd on this machine and two front-ends, A (writes) and
/// B (reads, waiters). Targets (issue 13): a write at most 1.3× etcd's own transaction
/// latency at 1 and 16 clients; reads on any front-end ≥ 90 % of the single-node
/// in-memory rate (the get_record rows above); delivery from a write on A to 1,000
/// waiters on B, p99 < 25 ms. Everything shares this machine's cores.
pub async fn rows(table: &mut Table, secs: f64) {
    let Some(cluster) = etcd::Cluster::start(3) else {
        println!("# cluster rows skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    };
    let urls = cluster.endpoints();
    let member_port = |u: &str| -> u16 { u.rsplit(':').next().unwrap().parse().unwrap() };
    let mut limit = Vec::new();
    for conns in [1, 16] {
        let r = etcd_txn_load(member_port(&urls[0]), conns, secs).await;
        table.ours(
            "etcd's own txn, the limit (txn/s, p50/p99 ms)",
            &conns.to_string(),
            &format!(
                "{} ({:.2}/{:.2})",
                k(r.per_sec),
                r.p50_us / 1e3,
                r.p99_us / 1e3
            ),
        );
        limit.push(r);
    }
    let endpoints = urls.join(",");
    let (Some(a), Some(b), Some(c)) = (
        start_front_end(&endpoints, "/bench/", &[]),
        start_front_end(&endpoints, "/bench/", &[]),
        start_front_end(&endpoints, "/bench/", &["--etcd-reads", "cached"]),
    ) else {
        println!("# cluster rows skipped: xapi-taskd was built without --features etcd");
        return;
    };
    let session = login(a.port).await;
    let task = new_task(a.port, &session, "bench", "the task written on A").await;
    for (i, conns) in [1, 16].into_iter().enumerate() {
        let r = set_progress_load(a.port, &session, &task, conns, secs).await;
        table.ours(
            "cluster: task.set_progress on A (req/s, p50/p99 ms)",
            &conns.to_string(),
            &format!(
                "{} ({:.2}/{:.2}); p50 {:.2}× etcd's txn",
                k(r.per_sec),
                r.p50_us / 1e3,
                r.p99_us / 1e3,
                r.p50_us / limit[i].p50_us
            ),
        );
    }
    let r = churn(a.port, &session, secs).await;
    table.ours(
        "cluster: task.create + set_status + destroy on A (cycles/s)",
        "16",
        &k(r.per_sec),
    );
    let get_record = xml_call("task.get_record", &[&session, &task]);
    for (name, port) in [("B", b.port), ("C, etcd-reads = cached,", c.port)] {
        for conns in [1, 16, 64] {
            let r = fixed(port, conns, secs, "/", "text/xml", get_record.clone()).await;
            table.ours(
                &format!(
                    "cluster: task.get_record on {name} which did not write (req/s, p50/p99 µs)"
                ),
                &conns.to_string(),
                &format!("{} ({:.0}/{:.0})", k(r.per_sec), r.p50_us, r.p99_us),
            );
        }
    }
    for round in 0..2 {
        let (waiter, trigger) = fanout_calls(b.port, &session, &task, 100 + round).await;
        let f = fanout_via(&b, a.port, waiter, trigger, 1000).await;
        table.ours(
            "cluster: event.from, write on A to 1,000 waiters on B (ms)",
            "1000",
            &f.to_string(),
        );
    }
    drop((a, b, c, cluster));
}
