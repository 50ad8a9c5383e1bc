//! The event class and Async calls, through the dispatcher: event.from snapshots,
//! coalescing, deletions, blocking and waking, timeouts, legacy register/next, inject,
//! and many concurrent waiters woken by one change.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{call, create, from, login_root, member, s, start, token};
use xapi_taskd::api::dispatch::Service;
use xapi_taskd::wire::value::Value;

fn events(batch: &Value) -> Vec<(String, String, String)> {
    let Value::Array(evs) = member(batch, "events") else {
        panic!()
    };
    evs.iter()
        .map(|e| {
            (
                member(e, "class").as_str().unwrap().to_string(),
                member(e, "operation").as_str().unwrap().to_string(),
                member(e, "ref").as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `n` calls of `event.from(["task"], tok, 60.0)`, each in a task of its own.
fn sixty_second_waiters(
    svc: &Arc<Service>,
    root: &str,
    tok: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Value>> {
    (0..n)
        .map(|_| {
            let (svc, root, tok) = (svc.clone(), root.to_string(), tok.to_string());
            tokio::spawn(async move { from(&svc, &root, &["task"], &tok, 60.0).await })
        })
        .collect()
}

/// Sets `task`'s progress and checks that every waiter is answered (within 30 s) with
/// that one change.
async fn every_waiter_sees_one_mod(
    svc: &Arc<Service>,
    root: &str,
    task: &str,
    waiters: Vec<tokio::task::JoinHandle<Value>>,
    progress: f64,
) {
    call(
        svc,
        "task.set_progress",
        vec![s(root), s(task), Value::Double(progress)],
    )
    .await
    .unwrap();
    for w in waiters {
        let batch = tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("woken by the change")
            .unwrap();
        assert_eq!(
            events(&batch),
            vec![("task".into(), "mod".into(), task.to_string())]
        );
    }
}

/// Polls an async task's status (for at most a second) until it is no longer pending.
async fn wait_until_finished(svc: &Arc<Service>, session: &str, task: &str) -> String {
    let mut status = String::new();
    for _ in 0..100 {
        status = call(svc, "task.get_status", vec![s(session), s(task)])
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        if status != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    status
}

#[tokio::test]
async fn first_call_is_a_snapshot_of_everything() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let t = create(&srv.svc, &root, "a").await;
    let batch = from(&srv.svc, &root, &["*"], "", 0.0).await;
    let evs = events(&batch);
    assert!(evs.contains(&("task".into(), "add".into(), t.clone())));
    assert!(evs.iter().any(|(c, op, _)| c == "pool" && op == "add"));
    assert!(evs.iter().any(|(c, op, _)| c == "host" && op == "add"));
    // Snapshots are full records.
    let Value::Array(list) = member(&batch, "events") else {
        panic!()
    };
    let ev = list
        .iter()
        .find(|e| member(e, "ref").as_str() == Some(t.as_str()))
        .unwrap();
    assert_eq!(member(ev, "timestamp"), &s("0.0"));
    assert_eq!(member(member(ev, "snapshot"), "name_label"), &s("a"));
    // valid_ref_counts: every table, as int32.
    let counts = member(&batch, "valid_ref_counts");
    assert_eq!(member(counts, "task"), &Value::Int32(1));
    assert_eq!(member(counts, "pool"), &Value::Int32(1));
    assert_eq!(token(&batch).len(), 41);
}

#[tokio::test]
async fn changes_are_coalesced_per_object_and_deletions_reported() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let kept = create(&srv.svc, &root, "kept").await;
    let gone = create(&srv.svc, &root, "gone").await;
    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    for p in [0.1, 0.2, 0.3] {
        call(
            &srv.svc,
            "task.set_progress",
            vec![s(&root), s(&kept), Value::Double(p)],
        )
        .await
        .unwrap();
    }
    call(
        &srv.svc,
        "task.set_status",
        vec![s(&root), s(&gone), s("success")],
    )
    .await
    .unwrap();
    call(&srv.svc, "task.destroy", vec![s(&root), s(&gone)])
        .await
        .unwrap();
    let transient = create(&srv.svc, &root, "transient").await;
    call(
        &srv.svc,
        "task.set_status",
        vec![s(&root), s(&transient), s("failure")],
    )
    .await
    .unwrap();
    call(&srv.svc, "task.destroy", vec![s(&root), s(&transient)])
        .await
        .unwrap();
    let batch = from(&srv.svc, &root, &["task"], &tok, 0.0).await;
    assert_eq!(
        events(&batch),
        vec![
            ("task".into(), "mod".into(), kept.clone()),
            ("task".into(), "del".into(), gone.clone())
        ]
    );
    // The del carries no snapshot; the mod carries the latest state.
    let Value::Array(list) = member(&batch, "events") else {
        panic!()
    };
    assert!(matches!(&list[1], Value::Struct(m) if !m.iter().any(|(k, _)| k == "snapshot")));
    assert_eq!(
        member(member(&list[0], "snapshot"), "progress"),
        &Value::Double(0.3)
    );
    // Nothing new after the returned token.
    let again = from(&srv.svc, &root, &["task"], &token(&batch), 0.0).await;
    assert!(events(&again).is_empty());
}

#[tokio::test]
async fn a_blocked_waiter_is_woken_by_another_session() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let other = login_root(&srv.svc).await;
    let t = create(&srv.svc, &root, "w").await;
    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let svc = srv.svc.clone();
    let waiter = tokio::spawn(async move { from(&svc, &root, &["task"], &tok, 30.0).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiter.is_finished(),
        "event.from must block while nothing changes"
    );
    call(
        &srv.svc,
        "task.set_progress",
        vec![s(&other), s(&t), Value::Double(0.5)],
    )
    .await
    .unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events(&batch), vec![("task".into(), "mod".into(), t)]);
}

#[tokio::test]
async fn timeout_returns_an_empty_batch_with_a_token() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let started = std::time::Instant::now();
    let batch = from(&srv.svc, &root, &["task"], &tok, 0.2).await;
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert!(events(&batch).is_empty());
    assert_eq!(token(&batch), tok);
}

/// A waiter woken again and again by changes it does not subscribe to goes back to sleep
/// each time and still answers at its own deadline, empty: neither early (a wake-up is not
/// a timeout) nor never (its one timer survives the re-sleeps).
#[tokio::test]
async fn other_changes_neither_end_nor_extend_a_wait() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let mine = create(&srv.svc, &root, "watched").await;
    let other = create(&srv.svc, &root, "busy").await;
    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let svc = srv.svc.clone();
    let sub = format!("task/{mine}");
    let started = std::time::Instant::now();
    let waiter = tokio::spawn(async move { from(&svc, &root, &[&sub], &tok, 1.0).await });
    let writer = login_root(&srv.svc).await;
    let mut changes = 0;
    while !waiter.is_finished() && started.elapsed() < Duration::from_secs(20) {
        let progress = Value::Double(f64::from(changes % 100) / 100.0);
        call(
            &srv.svc,
            "task.set_progress",
            vec![s(&writer), s(&other), progress],
        )
        .await
        .unwrap();
        changes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let batch = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the wait ended at its deadline")
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(990),
        "answered after {waited:?}"
    );
    assert!(changes >= 5, "only {changes} other changes while it waited");
    assert!(events(&batch).is_empty(), "{batch:?}");
}

/// Waits sleep in shared deadline buckets (`event::Deadlines`), each ending at its
/// waiters' deadlines rounded up to a multiple of its width (1/32 of the timeout, rounded
/// down to a power of two milliseconds: 8 ms for these 0.3 s waits). Waiters whose
/// deadlines fall on both sides of bucket edges (every 0.7 ms here, over 6 buckets) each
/// end at or after their own deadline, never at an earlier bucket's end, and less than
/// one width after it (plus scheduling on a loaded machine: the slack below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_end_at_their_own_deadline_whatever_their_bucket() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let width = Duration::from_millis(8);
    let slack = Duration::from_millis(150);
    let mut waiters = Vec::new();
    for i in 0..64u32 {
        let timeout = Duration::from_millis(300) + Duration::from_micros(700) * i;
        let (svc, root, tok) = (srv.svc.clone(), root.clone(), tok.clone());
        waiters.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let batch = from(&svc, &root, &["task"], &tok, timeout.as_secs_f64()).await;
            (timeout, started.elapsed(), batch)
        }));
    }
    for w in waiters {
        let (timeout, waited, batch) = w.await.unwrap();
        assert!(
            waited >= timeout,
            "{timeout:?} wait answered early: {waited:?}"
        );
        assert!(
            waited < timeout + width + slack,
            "{timeout:?} wait answered late: {waited:?}"
        );
        assert!(events(&batch).is_empty());
    }
}

/// A wait whose deadline is (nearly) past when it joins its bucket still ends: the bucket's
/// forwarder may end at once, and its last wake-up must reach the waiter (a waiter that
/// read the bucket's epoch after that wake-up slept for ever). Many 1 ms waits, a few
/// at a time, each bounded here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_waits_always_end() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let mut waiters = Vec::new();
    for _ in 0..16 {
        let (svc, root, tok) = (srv.svc.clone(), root.clone(), tok.clone());
        waiters.push(tokio::spawn(async move {
            for i in 0..100u32 {
                let timeout = 0.0002 * f64::from(i % 8);
                let answered = tokio::time::timeout(
                    Duration::from_secs(5),
                    from(&svc, &root, &["task"], &tok, timeout),
                )
                .await;
                assert!(answered.is_ok(), "a {timeout} s wait never ended");
            }
        }));
    }
    for w in waiters {
        w.await.unwrap();
    }
}

/// Waiters of close deadlines share a bucket (one timer and one forwarder for all of
/// them, not one timer each), and a bucket ends with its last waiter, so buckets never
/// outnumber the sleeping waiters nor outlive them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_share_deadline_buckets_that_end_with_them() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let t = create(&srv.svc, &root, "watched").await;
    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let waiters = sixty_second_waiters(&srv.svc, &root, &tok, 200);
    // 60 s waits get 1,024 ms buckets: 200 calls made within a few seconds share a few.
    let started = std::time::Instant::now();
    while srv.svc.event_deadlines.buckets() == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let buckets = srv.svc.event_deadlines.buckets();
    assert!(
        (1..=8).contains(&buckets),
        "{buckets} buckets for 200 waiters"
    );
    every_waiter_sees_one_mod(&srv.svc, &root, &t, waiters, 0.5).await;
    let started = std::time::Instant::now();
    while srv.svc.event_deadlines.buckets() > 0 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        srv.svc.event_deadlines.buckets(),
        0,
        "a bucket outlived its waiters"
    );
}

#[tokio::test]
async fn bad_tokens_and_logout_while_blocked() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let r = call(
        &srv.svc,
        "event.from",
        vec![
            s(&root),
            Value::Array(vec![s("*")]),
            s("garbage"),
            Value::Double(0.0),
        ],
    )
    .await;
    assert_eq!(
        r,
        Err(vec![
            "EVENT_FROM_TOKEN_PARSE_FAILURE".to_string(),
            "garbage".to_string()
        ])
    );

    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let svc = srv.svc.clone();
    let session = root.clone();
    let waiter = tokio::spawn(async move {
        call(
            &svc,
            "event.from",
            vec![
                s(&session),
                Value::Array(vec![s("task")]),
                s(&tok),
                Value::Double(30.0),
            ],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    call(&srv.svc, "session.logout", vec![s(&root)])
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r, Err(vec!["SESSION_INVALID".to_string(), root]));
}

#[tokio::test]
async fn parent_gets_a_mod_when_a_subtask_is_added() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let parent = create(&srv.svc, &root, "parent").await;
    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let meta = xapi_taskd::api::dispatch::RequestMeta {
        subtask_of: Some(parent.clone()),
        ..Default::default()
    };
    let reply = xapi_taskd::api::dispatch::dispatch(
        &srv.svc,
        xapi_taskd::api::dispatch::call("task.create", vec![s(&root), s("child"), s("")]),
        &meta,
    )
    .await;
    let xapi_taskd::api::dispatch::Reply::Envelope(Ok(Value::String(child))) = reply else {
        panic!()
    };
    let mut evs = events(&from(&srv.svc, &root, &["task"], &tok, 0.0).await);
    evs.sort();
    assert_eq!(
        evs,
        vec![
            ("task".into(), "add".into(), child),
            ("task".into(), "mod".into(), parent)
        ]
    );
}

#[tokio::test]
async fn inject_and_object_subscriptions() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let pool = match call(&srv.svc, "pool.get_all", vec![s(&root)])
        .await
        .unwrap()
    {
        Value::Array(v) => v[0].as_str().unwrap().to_string(),
        v => panic!("{v:?}"),
    };
    let a = create(&srv.svc, &root, "a").await;
    let tok = call(
        &srv.svc,
        "event.inject",
        vec![s(&root), s("pool"), s(&pool)],
    )
    .await
    .unwrap();
    let batch = from(
        &srv.svc,
        &root,
        &["pool", &format!("task/{a}")],
        tok.as_str().unwrap(),
        0.0,
    )
    .await;
    assert_eq!(
        events(&batch),
        vec![("pool".into(), "mod".into(), pool.clone())]
    );
    assert_eq!(
        call(
            &srv.svc,
            "event.inject",
            vec![s(&root), s("Pool"), s(&pool)]
        )
        .await,
        Err(vec!["HANDLE_INVALID".to_string(), "Pool".to_string(), pool])
    );
}

#[tokio::test]
async fn legacy_register_and_next() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let r = call(&srv.svc, "event.next", vec![s(&root)])
        .await
        .unwrap_err();
    assert_eq!(r[0], "SESSION_NOT_REGISTERED");
    assert!(
        r[1].starts_with("trackid=") && r[1].len() == 8 + 32,
        "{r:?}"
    );
    call(
        &srv.svc,
        "event.register",
        vec![s(&root), Value::Array(vec![s("task")])],
    )
    .await
    .unwrap();
    let t = create(&srv.svc, &root, "x").await;
    call(
        &srv.svc,
        "task.set_progress",
        vec![s(&root), s(&t), Value::Double(0.5)],
    )
    .await
    .unwrap();
    call(
        &srv.svc,
        "task.set_progress",
        vec![s(&root), s(&t), Value::Double(0.7)],
    )
    .await
    .unwrap();
    let Value::Array(evs) = call(&srv.svc, "event.next", vec![s(&root)]).await.unwrap() else {
        panic!()
    };
    // One event per write, not coalesced.
    let ops: Vec<&str> = evs
        .iter()
        .map(|e| member(e, "operation").as_str().unwrap())
        .collect();
    assert_eq!(ops, vec!["add", "mod", "mod"]);
    assert_eq!(
        member(member(&evs[1], "snapshot"), "progress"),
        &Value::Double(0.5)
    );
    assert!(
        member(&evs[0], "timestamp")
            .as_str()
            .unwrap()
            .ends_with('.')
    );
    let Value::Int(id) = call(&srv.svc, "event.get_current_id", vec![s(&root)])
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(id >= 3);
}

#[tokio::test]
async fn async_calls_complete_their_task() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let t = create(&srv.svc, &root, "target").await;
    let Value::String(job) = call(
        &srv.svc,
        "Async.task.add_to_other_config",
        vec![s(&root), s(&t), s("k"), s("v")],
    )
    .await
    .unwrap() else {
        panic!()
    };
    assert_eq!(wait_until_finished(&srv.svc, &root, &job).await, "success");
    let rec = call(&srv.svc, "task.get_record", vec![s(&root), s(&job)])
        .await
        .unwrap();
    assert_eq!(
        member(&rec, "name_label"),
        &s("Async.task.add_to_other_config")
    );
    assert_eq!(member(&rec, "result"), &s("<value></value>"));
    assert_eq!(member(&rec, "progress"), &Value::Double(1.0));
    // The second add fails inside its task with MAP_DUPLICATE_KEY.
    let Value::String(job2) = call(
        &srv.svc,
        "Async.task.add_to_other_config",
        vec![s(&root), s(&t), s("k"), s("v")],
    )
    .await
    .unwrap() else {
        panic!()
    };
    wait_until_finished(&srv.svc, &root, &job2).await;
    let rec = call(&srv.svc, "task.get_record", vec![s(&root), s(&job2)])
        .await
        .unwrap();
    assert_eq!(member(&rec, "status"), &s("failure"));
    assert_eq!(
        member(&rec, "error_info"),
        &Value::Array(vec![
            s("MAP_DUPLICATE_KEY"),
            s("task"),
            s("other_config"),
            s(&t),
            s("k")
        ])
    );
}

/// Correctness of fan-out (its timing is measured by the benchmark, not here): 1,000
/// blocked `event.from` callers, one change, every one gets the right event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_change_wakes_a_thousand_waiters() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    let t = create(&srv.svc, &root, "fan-out").await;
    let tok = token(&from(&srv.svc, &root, &["task"], "", 0.0).await);
    let waiters = sixty_second_waiters(&srv.svc, &root, &tok, 1000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    every_waiter_sees_one_mod(&srv.svc, &root, &t, waiters, 0.9).await;
}

#[tokio::test]
async fn a_legacy_reader_that_falls_behind_gets_events_lost_then_continues() {
    let srv = start().await;
    let root = login_root(&srv.svc).await;
    call(
        &srv.svc,
        "event.register",
        vec![s(&root), Value::Array(vec![s("task")])],
    )
    .await
    .unwrap();
    let t = create(&srv.svc, &root, "busy").await;
    let writes = xapi_taskd::db::changes::MAX_LEGACY_EVENTS + 10;
    for i in 0..writes {
        call(
            &srv.svc,
            "task.set_progress",
            vec![s(&root), s(&t), Value::Double(i as f64)],
        )
        .await
        .unwrap();
    }
    assert_eq!(
        call(&srv.svc, "event.next", vec![s(&root)]).await,
        Err(vec!["EVENTS_LOST".to_string()])
    );
    // After the loss the session continues from the present.
    call(
        &srv.svc,
        "task.set_progress",
        vec![s(&root), s(&t), Value::Double(-1.0)],
    )
    .await
    .unwrap();
    let Value::Array(evs) = call(&srv.svc, "event.next", vec![s(&root)]).await.unwrap() else {
        panic!()
    };
    assert_eq!(evs.len(), 1);
}

/// A waiter woken after its session was logged out answers `SESSION_INVALID`, also when
/// the batch it would have got is kept (written by another session's waiter for the same
/// change, at the same state of the tables): woken waiters check their session without
/// the tables' lock, by the count of gone sessions, and that count moved. Waiters of two
/// sessions of one user, XML-RPC replies (the kept batch is used only for a codec); one
/// session logged out, then the task changed at once, so that waiters of the logged-out
/// session look both before and after the other session's waiters keep the change's batch
/// (which of them looks after is up to the scheduler, so forty rounds: with the gone
/// count's check left out, a run of twenty rounds failed four times in five).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_sessions_waiters_never_answer_anothers_kept_batch() {
    use xapi_taskd::api::dispatch::{self, Reply, RequestMeta};
    use xapi_taskd::wire::encode::Codec;
    let srv = start().await;
    let kept = login_root(&srv.svc).await;
    let t = create(&srv.svc, &kept, "fan-out").await;
    let waiter = |session: &str, tok: &str| {
        let (svc, session, tok) = (srv.svc.clone(), session.to_string(), tok.to_string());
        tokio::spawn(async move {
            let meta = RequestMeta {
                codec: Some(Codec::XmlRpc),
                ..Default::default()
            };
            let params = vec![
                s(&session),
                Value::Array(vec![s("task")]),
                s(&tok),
                Value::Double(30.0),
            ];
            match dispatch::dispatch(&svc, dispatch::call("event.from", params), &meta).await {
                Reply::Envelope(r) => r.map_err(|e| e.description()),
                Reply::Bare(v) => Ok(v),
            }
        })
    };
    for round in 0..40 {
        let gone = login_root(&srv.svc).await;
        let tok = token(&from(&srv.svc, &kept, &["task"], "", 0.0).await);
        let kept_waiters: Vec<_> = (0..200).map(|_| waiter(&kept, &tok)).collect();
        let gone_waiters: Vec<_> = (0..200).map(|_| waiter(&gone, &tok)).collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(gone_waiters.iter().all(|w| !w.is_finished()));
        call(&srv.svc, "session.logout", vec![s(&gone)])
            .await
            .unwrap();
        call(
            &srv.svc,
            "task.set_progress",
            vec![
                s(&kept),
                s(&t),
                Value::Double(0.01 + 0.01 * f64::from(round)),
            ],
        )
        .await
        .unwrap();
        for w in gone_waiters {
            let r = tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("woken by the logout")
                .unwrap();
            assert_eq!(r, Err(vec!["SESSION_INVALID".to_string(), gone.clone()]));
        }
        for w in kept_waiters {
            let r = tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("woken by the change")
                .unwrap();
            let Ok(Value::Encoded(Codec::XmlRpc, bytes)) = r else {
                panic!("not an encoded batch: {r:?}");
            };
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains("<value>mod</value>") && text.contains(t.as_str()));
        }
    }
}
