//! The etcd backend against a real 3-member etcd cluster on loopback: the store
//! conformance suite (every case of `tests/conformance/`, with two front-ends on the same
//! data where a case asks for concurrency), and what only a cluster has: a member killed
//! under writes. Needs the `etcd` feature and the `etcd` binary (skipped without it).

#![cfg(feature = "etcd")]

mod conformance;
mod etcd;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

use conformance::{Harness, Kind};
use xapi_taskd::db::backend::BackendError;
use xapi_taskd::db::etcd::{Config, Etcd, Identity, KeyFile};
use xapi_taskd::db::{Db, HostRow, NULL_REF, PoolRow, TaskRow, new_ref, new_uuid};

/// Opens a front-end's database on `prefix` (the first one creates the pool and host).
/// Each one opened starts on the next member, as front-ends spread over a cluster do: a
/// write acknowledged through one member then reaches another front-end's watch a moment
/// later, the lag its reads must not show.
fn opener(endpoints: Vec<String>, prefix: String) -> Kind {
    let (pool_ref, host_ref) = (new_ref(), new_ref());
    let opened = std::sync::atomic::AtomicUsize::new(0);
    Kind::Shared(Box::new(move || {
        let mut endpoints = endpoints.clone();
        let n = opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let members = endpoints.len();
        endpoints.rotate_left(n % members);
        let config = Config::new(endpoints, prefix.clone());
        let identity = Identity {
            pool_ref: pool_ref.clone(),
            pool: PoolRow {
                uuid: new_uuid(),
                ..PoolRow::default()
            },
            host_ref: host_ref.clone(),
            host: HostRow {
                uuid: new_uuid(),
                ..HostRow::default()
            },
        };
        Box::pin(async move {
            let (tables, backend) = Etcd::open(&config, identity).await.expect("etcd opens");
            Db::with_backend(tables, Box::new(backend))
        })
    }))
}

/// Creates a task; its ref once acknowledged.
async fn new_task(db: &Db, name: &str) -> Result<String, BackendError> {
    let r = new_ref();
    db.transact(|tx| {
        tx.insert_task(r.clone(), TaskRow::new(name, "", NULL_REF, NULL_REF));
        Ok::<_, BackendError>(())
    })
    .await?;
    Ok(r)
}

/// One counting step: a read-modify-write of task `r`'s progress (+1), in one transaction.
async fn increment(db: &Db, r: &str) -> Result<bool, BackendError> {
    db.transact(|tx| {
        let mut row = tx.task(r).unwrap().clone();
        row.progress += 1.0;
        Ok::<_, BackendError>(tx.update_task(r, row).unwrap())
    })
    .await
}

/// Counts the errors the etcd cache logs when the watch reports a revision differently
/// from how this front-end's own write applied it (see `cache::apply_own`).
struct OwnWriteBugs(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for OwnWriteBugs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, _: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0 += &format!("{v:?}");
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        if m.0.contains("own write applied") {
            eprintln!("{}", m.0);
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_backend_meets_the_contract_and_survives_a_member_kill() {
    let Some(mut cluster) = etcd::Cluster::start(3) else {
        return;
    };
    let bugs = Arc::new(AtomicUsize::new(0));
    let layer = OwnWriteBugs(bugs.clone()).with_filter(LevelFilter::ERROR);
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("the only subscriber");
    let mut h = Harness::new(opener(cluster.endpoints(), "/conformance/".into()));
    tokio::time::timeout(Duration::from_secs(240), conformance::run_all(&mut h))
        .await
        .expect("the suite finishes");
    // Every process's watch has passed what it applied itself by now (the suite's last
    // case syncs across processes), and found what it applied.
    assert_eq!(
        bugs.load(Ordering::SeqCst),
        0,
        "own writes applied unlike the watch"
    );

    // Writers of one task on one front-end share transactions (write combining): 32 at
    // once take far fewer than 32 revisions, and the last one's value is there.
    let Kind::Shared(open) = opener(cluster.endpoints(), "/combine/".into()) else {
        unreachable!()
    };
    let db = Arc::new(open().await);
    let r = new_task(&db, "hot").await.unwrap();
    let before = db.read().generation();
    let mut joins = Vec::new();
    for i in 1..=32 {
        let (db, r) = (db.clone(), r.clone());
        joins.push(tokio::spawn(async move {
            db.transact(|tx| {
                let mut row = tx.task(&r).unwrap().clone();
                row.progress = f64::from(i) / 100.0;
                Ok::<_, BackendError>(tx.update_task(&r, row).unwrap())
            })
            .await
        }));
    }
    for j in joins {
        assert_eq!(j.await.unwrap(), Ok(true));
    }
    let used = db.read().generation() - before;
    eprintln!("write combining: 32 writes of one task in {used} revisions");
    assert!((1..=16).contains(&used), "{used} revisions for 32 writes");
    db.close();

    // Writers of different tasks on one front-end share transactions too (group commit,
    // each writer's transaction nested with its own compares), and each still succeeds
    // or conflicts on its own: two front-ends count on the same 16 tasks at once, each
    // increment a read-modify-write of the task's progress. Every increment is there
    // (a conflicting member answered as committed would lose one), and one front-end's
    // writes of 16 tasks took fewer revisions than writes (alone, each takes one).
    let Kind::Shared(open) = opener(cluster.endpoints(), "/group/".into()) else {
        unreachable!()
    };
    let (a, b) = (Arc::new(open().await), Arc::new(open().await));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        tasks.push(new_task(&a, "count").await.unwrap());
    }
    b.sync(false).await.unwrap();
    const EACH: u32 = 10;
    let count = |db: Arc<Db>, r: String| async move {
        for _ in 0..EACH {
            assert_eq!(increment(&db, &r).await, Ok(true));
        }
    };
    // Front-end A alone first: its 16 writers' revisions are counted.
    let before = a.read().generation();
    let joins: Vec<_> = tasks
        .iter()
        .map(|r| tokio::spawn(count(a.clone(), r.clone())))
        .collect();
    for j in joins {
        j.await.unwrap();
    }
    let used = a.read().generation() - before;
    eprintln!(
        "group commit: {} writes of 16 tasks in {used} revisions",
        16 * EACH
    );
    assert!(used < u64::from(16 * EACH), "{used} revisions");
    // Then both front-ends on the same tasks at once: their groups conflict member by
    // member.
    let mut joins = Vec::new();
    for r in &tasks {
        joins.push(tokio::spawn(count(a.clone(), r.clone())));
        joins.push(tokio::spawn(count(b.clone(), r.clone())));
    }
    for j in joins {
        j.await.unwrap();
    }
    a.sync(false).await.unwrap();
    for r in &tasks {
        let progress = a.read().task(r).unwrap().progress;
        assert_eq!(progress, f64::from(3 * EACH), "task {r}: increments lost");
    }
    a.close();
    b.close();

    // Writes keep being acknowledged while a member is killed, and every acknowledged
    // one is there afterwards, seen by a front-end that started after the kill.
    let open = opener(cluster.endpoints(), "/kill/".into());
    let Kind::Shared(open) = open else {
        unreachable!()
    };
    let db = Arc::new(open().await);
    // Beside them, on a prefix of their own, 16 writers count on 16 tasks (their
    // batches go in groups, which the kill may leave ambiguous and resent): each task's
    // count is at least its acknowledged increments, at most those plus the failed ones.
    let Kind::Shared(open_counts) = opener(cluster.endpoints(), "/kill-group/".into()) else {
        unreachable!()
    };
    let counts = Arc::new(open_counts().await);
    let mut counters = Vec::new();
    for _ in 0..16 {
        let r = new_task(&counts, "count").await.unwrap();
        let db = counts.clone();
        counters.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (0u32, 0u32);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
            while tokio::time::Instant::now() < deadline {
                match increment(&db, &r).await {
                    Ok(_) => acked += 1,
                    Err(_) => failed += 1,
                }
            }
            (r, acked, failed)
        }));
    }
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failed = 0usize;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
            while tokio::time::Instant::now() < deadline {
                match new_task(&db, "k").await {
                    Ok(r) => acked.push(r),
                    Err(_) => failed += 1,
                }
            }
            (acked, failed)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.restart(0);
    let (acked, failed) = writer.await.unwrap();
    let later = open().await;
    later.sync(false).await.unwrap();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|r| later.read().task(r).is_none())
        .collect();
    eprintln!(
        "member kill: {} acknowledged, {} failed, {} lost",
        acked.len(),
        failed,
        lost.len()
    );
    assert!(acked.len() > 10, "writes went on: {}", acked.len());
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // Only acknowledged writes (or ones reported as failed) exist: no phantom.
    assert!(later.read().count("task") <= acked.len() + failed);
    later.close();
    db.close();
    let later = open_counts().await;
    later.sync(false).await.unwrap();
    let (mut acked, mut failed) = (0, 0);
    for c in counters {
        let (r, a, f) = c.await.unwrap();
        let n = later.read().task(&r).unwrap().progress;
        assert!(
            f64::from(a) <= n && n <= f64::from(a + f),
            "task {r}: {n} increments, {a} acknowledged, {f} failed"
        );
        (acked, failed) = (acked + a, failed + f);
    }
    eprintln!("member kill, grouped writers: {acked} acknowledged, {failed} failed, none lost");
    later.close();
    counts.close();
    assert_eq!(
        bugs.load(Ordering::SeqCst),
        0,
        "own writes applied unlike the watch"
    );
}

/// A `user` command's write while `cluster import` writes the prefix is refused, naming
/// the import (its publish would overwrite the users file, a restart clear it): when
/// the import claims the prefix between the command's read and its write, and when it
/// had claimed it before the command started. And the users file's compare-and-swap
/// tells a write already made (a resend's) from one that lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_not_written_during_an_unfinished_import() {
    let Some(cluster) = etcd::Cluster::start(1) else {
        return;
    };
    let prefix = "/importing/";
    let config = Config::new(cluster.endpoints(), prefix.into());
    let marker = format!("{prefix}c/import");
    let users = format!("{prefix}c/users");
    let ctl = |args: &[&str]| cluster.etcdctl(None, args).expect("etcdctl");
    let refusal = |e: BackendError| {
        let e = e.0;
        assert!(
            e.contains("unfinished `xapi-taskd cluster import`")
                && e.contains("import an-import-id")
                && e.contains("run the import again"),
            "{e}"
        );
    };

    let file = KeyFile::users(&config).await.expect("no import yet");
    assert!(file.read().await.unwrap().is_none());
    ctl(&["put", &marker, "an-import-id"]);
    refusal(file.replace(b"{}", None).await.expect_err("refused"));
    assert_eq!(ctl(&["get", &users]), "", "nothing was written");
    refusal(KeyFile::users(&config).await.err().expect("refused"));

    // An import's publish removes the marker: then the users may change again.
    ctl(&["del", &marker]);
    assert!(file.replace(b"{}", None).await.unwrap());
    // A plain lost compare-and-swap is `false`, not an error.
    assert!(!file.replace(b"{\"a\":1}", None).await.unwrap());
    assert_eq!(file.read().await.unwrap().unwrap().0, b"{}");
    // What the resend of a write whose first send committed (its answer lost) meets: its
    // compare fails, and the key holds what it wrote. That is the write made, not lost.
    let (_, at) = file.read().await.unwrap().unwrap();
    assert!(file.replace(b"{\"b\":2}", Some(at)).await.unwrap());
    assert!(file.replace(b"{\"b\":2}", Some(at)).await.unwrap());
    assert!(!file.replace(b"{\"c\":3}", Some(at)).await.unwrap());
}

/// One of a member's own metrics (`/metrics` on its client port), summed over the series
/// whose labels contain `label`.
fn metric(endpoint: &str, name: &str, label: &str) -> f64 {
    use std::io::{Read, Write};
    let mut text = String::new();
    let mut s = std::net::TcpStream::connect(endpoint.trim_start_matches("http://")).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            (n == name && labels.contains(label)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// A follower does not decide a write: it forwards it to the leader and answers only once
/// it learned the entry committed and applied it (two more hops between members). So a
/// front-end started on a follower moves to the leader: its transactions, and its watch
/// with them (a write the leader acknowledges is then in the watch streams it serves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_started_on_a_follower_moves_to_the_raft_leader() {
    let Some(cluster) = etcd::Cluster::start(3) else {
        return;
    };
    let urls = cluster.endpoints();
    let leads = |u: &String| metric(u, "etcd_server_is_leader", "") > 0.5;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let leader = loop {
        if let Some(u) = urls.iter().find(|u| leads(u)) {
            break u.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The front-end's first endpoint (the member it uses) is a follower.
    let mut endpoints = urls.clone();
    while endpoints[0] == leader {
        endpoints.rotate_left(1);
    }
    let follower = endpoints[0].clone();
    let identity = Identity {
        pool_ref: new_ref(),
        pool: PoolRow {
            uuid: new_uuid(),
            ..PoolRow::default()
        },
        host_ref: new_ref(),
        host: HostRow {
            uuid: new_uuid(),
            ..HostRow::default()
        },
    };
    let config = Config::new(endpoints, "/lead/".into());
    let (tables, backend) = Etcd::open(&config, identity).await.expect("etcd opens");
    let db = Db::with_backend(tables, Box::new(backend));
    let task = new_task(&db, "counted").await.unwrap();
    // It looks for the leader at once, then every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let txns = |u: &str| metric(u, "grpc_server_handled_total", "grpc_method=\"Txn\"");
    let (at_leader, at_follower) = (txns(&leader), txns(&follower));
    for _ in 0..50 {
        assert!(increment(&db, &task).await.unwrap());
    }
    let (to_leader, to_follower) = (txns(&leader) - at_leader, txns(&follower) - at_follower);
    assert!(
        to_leader >= 50.0,
        "{to_leader} of 50 writes sent to the leader"
    );
    assert!(
        to_follower < 5.0,
        "{to_follower} transactions sent to the follower"
    );
    assert_eq!(db.read().task(&task).unwrap().progress, 50.0);
    let streams = |u: &str| metric(u, "etcd_debugging_mvcc_watch_stream_total", "");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while streams(&follower) > 0.0 || streams(&leader) < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch did not move: {} stream(s) on the follower, {} on the leader",
            streams(&follower),
            streams(&leader)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
