//! The cases of the store conformance suite, shared by `tests/store.rs` (memory, redb)
//! and `tests/cluster.rs` (etcd). Every case drives a `Db` through its public API only
//! and asserts one point of the contract on `db::backend::Backend`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use xapi_taskd::db::backend::BackendError;
use xapi_taskd::db::store::Store;
use xapi_taskd::db::{
    Change, Db, HostRow, NULL_REF, PoolRow, SessionRow, TaskRow, TaskStatus, maps, new_ref,
    new_uuid,
};

/// How a backend under test is opened, and reopened after a "restart".
pub enum Kind {
    Memory,
    Redb(tempfile::TempDir),
    /// Opens a database on a shared store (a new process's view when called again).
    Shared(Box<dyn Fn() -> futures_util::future::BoxFuture<'static, Db> + Send + Sync>),
}

pub struct Harness {
    kind: Kind,
    pool_ref: String,
    host_ref: String,
}

impl Harness {
    pub fn memory() -> Harness {
        Harness::new(Kind::Memory)
    }

    pub fn redb() -> Harness {
        Harness::new(Kind::Redb(tempfile::tempdir().unwrap()))
    }

    pub fn new(kind: Kind) -> Harness {
        Harness {
            kind,
            pool_ref: new_ref(),
            host_ref: new_ref(),
        }
    }

    pub async fn open(&self) -> Db {
        let pool = PoolRow {
            uuid: new_uuid(),
            ..PoolRow::default()
        };
        let host = HostRow {
            uuid: new_uuid(),
            ..HostRow::default()
        };
        match &self.kind {
            Kind::Memory => Db::new(self.pool_ref.clone(), pool, self.host_ref.clone(), host),
            Kind::Redb(dir) => {
                let opened = Store::open(dir.path(), true).unwrap();
                Db::restore(
                    self.pool_ref.clone(),
                    pool,
                    self.host_ref.clone(),
                    host,
                    opened,
                    Duration::from_secs(30),
                )
            }
            Kind::Shared(open) => open().await,
        }
    }

    /// Whether a second `open` sees what the first committed.
    pub fn durable(&self) -> bool {
        !matches!(self.kind, Kind::Memory)
    }

    /// Whether two databases can be open on the store at once.
    pub fn shared(&self) -> bool {
        matches!(self.kind, Kind::Shared(_))
    }
}

type R<T> = Result<T, BackendError>;

fn task(label: &str) -> TaskRow {
    TaskRow::new(label, "", NULL_REF, NULL_REF)
}

fn session(user: &str) -> SessionRow {
    SessionRow {
        uuid: new_uuid(),
        this_host: NULL_REF.into(),
        this_user: NULL_REF.into(),
        last_active: 0,
        pool: false,
        other_config: vec![],
        is_local_superuser: false,
        subject: NULL_REF.into(),
        validation_time: 0,
        auth_user_sid: format!("sid-{user}"),
        auth_user_name: user.into(),
        role: Some("read-only".into()),
        tasks: Default::default(),
        parent: NULL_REF.into(),
        originator: String::new(),
        client_certificate: false,
        legacy_events: None,
        revision: 0,
    }
}

/// A database with a task labelled `label`, and, when the backend is shared, a second
/// process that has synced and sees the task.
async fn with_second(h: &Harness, label: &str) -> (Arc<Db>, Option<Arc<Db>>, String) {
    let db = Arc::new(h.open().await);
    let second = if h.shared() {
        Some(Arc::new(h.open().await))
    } else {
        None
    };
    let r = insert(&db, task(label)).await;
    if let Some(s) = &second {
        s.sync(false).await.unwrap();
    }
    (db, second, r)
}

async fn insert(db: &Db, row: TaskRow) -> String {
    let r = new_ref();
    db.transact(|tx| {
        tx.insert_task(r.clone(), row.clone());
        R::Ok(())
    })
    .await
    .unwrap();
    r
}

async fn update(db: &Db, r: &str, f: impl Fn(&mut TaskRow) + Send + Sync) -> bool {
    db.transact(|tx| {
        let mut row = tx.task(r).expect("task exists").clone();
        f(&mut row);
        R::Ok(tx.update_task(r, row).expect("within the limits"))
    })
    .await
    .unwrap()
}

async fn delete(db: &Db, r: &str) {
    db.transact(|tx| {
        tx.delete_task(r);
        R::Ok(())
    })
    .await
    .unwrap();
}

async fn put_session(db: &Db, row: SessionRow) -> String {
    let r = new_ref();
    db.transact(|tx| {
        tx.put_session(r.clone(), row.clone());
        R::Ok(())
    })
    .await
    .unwrap();
    r
}

fn changes_since(db: &Db, since: u64) -> Vec<(String, String)> {
    db.read()
        .changes_since(since)
        .map(|(_, c)| match c {
            Change::Live { r, .. } => ("live".to_string(), r.to_string()),
            Change::Deleted { r, .. } => ("del".to_string(), r.to_string()),
        })
        .collect()
}

/// Point 1: an acknowledged write is visible at once, to its writer.
pub async fn writes_are_visible_when_acknowledged(h: &Harness) {
    let db = h.open().await;
    let r = insert(&db, task("one")).await;
    assert_eq!(db.read().task(&r).unwrap().name_label, "one");
    assert!(update(&db, &r, |t| t.progress = 0.25).await);
    assert_eq!(db.read().task(&r).unwrap().progress, 0.25);
    delete(&db, &r).await;
    assert!(db.read().task(&r).is_none());
    db.close();
}

/// Point 2: a refused decision writes nothing, even what it buffered before refusing.
pub async fn a_refusal_writes_nothing(h: &Harness) {
    let db = h.open().await;
    let before = db.read().generation();
    let r = new_ref();
    let out: Result<(), String> = db
        .transact(|tx| {
            tx.insert_task(r.clone(), task("never"));
            Err(StringOrStore("refused".to_string()))
        })
        .await
        .map_err(|e| e.0);
    assert_eq!(out, Err("refused".to_string()));
    assert!(db.read().task(&r).is_none());
    assert_eq!(db.read().generation(), before);
    db.close();
}

/// An error type for decisions that refuse with a message.
pub struct StringOrStore(String);

impl From<String> for StringOrStore {
    fn from(s: String) -> Self {
        StringOrStore(s)
    }
}

impl From<BackendError> for StringOrStore {
    fn from(e: BackendError) -> Self {
        StringOrStore(e.0)
    }
}

/// Point 2: a plan's writes appear together; a child and its parent's link are one change.
pub async fn a_plan_is_all_or_nothing(h: &Harness) {
    let db = h.open().await;
    let parent = insert(&db, task("parent")).await;
    let (a, b) = (new_ref(), new_ref());
    let mut child = task("child");
    child.subtask_of = parent.as_str().into();
    db.transact(|tx| {
        tx.insert_task(a.clone(), child.clone());
        tx.insert_task(b.clone(), child.clone());
        R::Ok(())
    })
    .await
    .unwrap();
    {
        let t = db.read();
        assert!(t.task(&a).is_some() && t.task(&b).is_some());
        let subtasks = &t.task(&parent).unwrap().subtasks;
        assert_eq!(subtasks.len(), 2, "{subtasks:?}");
    }
    delete(&db, &a).await;
    assert_eq!(
        db.read().task(&parent).unwrap().subtasks.to_vec(),
        vec![b.clone()]
    );
    db.close();
}

/// xapi: a write of an identical value does not move the generation.
pub async fn an_identical_write_changes_nothing(h: &Harness) {
    let db = h.open().await;
    let r = insert(&db, task("same")).await;
    let g = db.read().generation();
    assert!(!update(&db, &r, |t| t.progress = 0.0).await);
    assert_eq!(db.read().generation(), g);
    assert!(changes_since(&db, g).is_empty());
    db.close();
}

/// Point 4: generations grow with every change, stamp it, wake waiters and feed the change
/// index (each object once, under its last change; deletions as tombstones).
pub async fn generations_grow_and_wake_waiters(h: &Harness) {
    let db = h.open().await;
    let g0 = db.read().generation();
    let mut rx = db.subscribe();
    rx.borrow_and_update();
    let a = insert(&db, task("a")).await;
    let g1 = db.read().generation();
    assert!(g1 > g0);
    assert!(rx.has_changed().unwrap(), "a waiter is woken");
    assert_eq!(db.read().task(&a).unwrap().stamp.created, g1);
    let b = insert(&db, task("b")).await;
    update(&db, &a, |t| t.progress = 0.5).await;
    let g3 = db.read().generation();
    assert!(
        db.read().task(&a).unwrap().stamp.modified > db.read().task(&b).unwrap().stamp.modified
    );
    assert_eq!(
        changes_since(&db, g1),
        vec![("live".into(), b.clone()), ("live".into(), a.clone())]
    );
    delete(&db, &b).await;
    assert!(db.read().generation() > g3);
    assert_eq!(changes_since(&db, g3), vec![("del".into(), b.clone())]);
    db.close();
}

/// Point 3: decisions are linearizable: concurrent read-modify-writes of one task lose
/// nothing, and a decision that depends on absence (create-if-absent) succeeds once.
pub async fn concurrent_decisions_are_serialised(h: &Harness) {
    let (db, second, r) = with_second(h, "counter").await;
    const EACH: usize = 10;
    let mut joins = Vec::new();
    for w in 0..4 {
        let db = match (&second, w % 2) {
            (Some(s), 1) => s.clone(),
            _ => db.clone(),
        };
        let r = r.clone();
        joins.push(tokio::spawn(async move {
            for _ in 0..EACH {
                update(&db, &r, |t| t.progress += 1.0).await;
            }
        }));
    }
    for j in joins {
        tokio::time::timeout(Duration::from_secs(60), j)
            .await
            .expect("writers finish")
            .unwrap();
    }
    db.sync(false).await.unwrap();
    assert_eq!(db.read().task(&r).unwrap().progress, (4 * EACH) as f64);
    // Two decisions that both add the same map key: exactly one wins.
    let wins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut joins = Vec::new();
    for w in 0..2 {
        let db = match (&second, w) {
            (Some(s), 1) => s.clone(),
            _ => db.clone(),
        };
        let (r, wins) = (r.clone(), wins.clone());
        joins.push(tokio::spawn(async move {
            let out: Result<(), StringOrStore> = db
                .transact(|tx| {
                    let mut row = tx.task(&r).unwrap().clone();
                    if row.other_config.iter().any(|(k, _)| k == "key") {
                        return Err("duplicate".to_string().into());
                    }
                    row.other_config.insert(0, ("key".into(), format!("{w}")));
                    tx.update_task(&r, row).expect("within the limits");
                    Ok(())
                })
                .await;
            if out.is_ok() {
                wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    assert_eq!(wins.load(std::sync::atomic::Ordering::SeqCst), 1);
    db.sync(false).await.unwrap();
    assert_eq!(db.read().task(&r).unwrap().other_config.len(), 1);
    if let Some(s) = &second {
        s.close();
    }
    db.close();
}

/// What one decision of [`many_writers_of_one_task`] did: when its call started and
/// ended, and the counter it read (None: it was refused).
struct Op {
    writer: usize,
    start: std::time::Instant,
    end: std::time::Instant,
    read: Option<u64>,
}

/// Point 3 under load on one task (the hot task a write-combining backend merges): 16
/// writers (on two processes when the store is shared), each deciding a read-modify-write
/// of one task again and again: add its own map key (never refused), or a key every writer
/// races for (exactly one wins, the others are refused), and increment a counter. Checks
/// the history: every acknowledged change is there, each writer's keys in its order, each
/// refusal decided on a state that had the key, and the counter is a linearizable
/// fetch-and-increment (acknowledged reads are exactly 0..n, and one that ended before
/// another started read less).
pub async fn many_writers_of_one_task(h: &Harness) {
    let (db, second, r) = with_second(h, "hot").await;
    const WRITERS: usize = 16;
    const EACH: usize = 12;
    let mut joins = Vec::new();
    for w in 0..WRITERS {
        let db = match &second {
            Some(s) if w % 4 == 3 => s.clone(),
            _ => db.clone(),
        };
        let r = r.clone();
        joins.push(tokio::spawn(async move {
            let mut ops = Vec::new();
            for i in 0..EACH {
                // Every third round all writers race for one key.
                let key = if i % 3 == 2 {
                    format!("race-{i}")
                } else {
                    format!("w{w}-{i}")
                };
                let start = std::time::Instant::now();
                let out: Result<u64, StringOrStore> = db
                    .transact(|tx| {
                        let mut row = tx.task(&r).expect("the task exists").clone();
                        let read = row.progress as u64;
                        maps::add(&mut row.other_config, "task", "other_config", &r, &key, "v")
                            .map_err(|e| StringOrStore(format!("{e:?}")))?;
                        row.other_config[0].1 = format!("{w}");
                        row.progress = (read + 1) as f64;
                        tx.update_task(&r, row).expect("within the limits");
                        Ok(read)
                    })
                    .await;
                let read = match out {
                    Ok(v) => Some(v),
                    Err(e) => {
                        assert!(e.0.contains("DuplicateKey"), "only races refuse: {}", e.0);
                        assert!(key.starts_with("race-"), "{key} refused: {}", e.0);
                        None
                    }
                };
                ops.push(Op {
                    writer: w,
                    start,
                    end: std::time::Instant::now(),
                    read,
                });
            }
            ops
        }));
    }
    let mut history = Vec::new();
    for j in joins {
        let ops = tokio::time::timeout(Duration::from_secs(120), j)
            .await
            .expect("writers finish")
            .unwrap();
        history.extend(ops);
    }
    db.sync(false).await.unwrap();
    let row = db.read().task(&r).unwrap().clone();
    let acked: Vec<&Op> = history.iter().filter(|o| o.read.is_some()).collect();
    // The counter: acknowledged reads are exactly 0..n, in real-time order.
    let mut reads: Vec<u64> = acked.iter().map(|o| o.read.unwrap()).collect();
    reads.sort_unstable();
    assert_eq!(reads, (0..acked.len() as u64).collect::<Vec<_>>());
    assert_eq!(row.progress as usize, acked.len());
    for x in &acked {
        for y in &acked {
            if x.end < y.start {
                assert!(
                    x.read < y.read,
                    "an earlier call read more than a later one"
                );
            }
        }
    }
    // Every acknowledged key is there; each race has exactly one winner, whose value it
    // holds; new entries come first, so each writer's own keys are in reverse order.
    let position = |k: &str| row.other_config.iter().position(|(x, _)| x == k);
    for w in 0..WRITERS {
        let mine: Vec<usize> = (0..EACH)
            .filter(|i| i % 3 != 2)
            .map(|i| position(&format!("w{w}-{i}")).expect("an acknowledged key is there"))
            .collect();
        assert!(mine.windows(2).all(|p| p[0] > p[1]), "writer {w}: {mine:?}");
    }
    for i in (0..EACH).filter(|i| i % 3 == 2) {
        let key = format!("race-{i}");
        let winners: Vec<usize> = history
            .iter()
            .enumerate()
            .filter(|(n, o)| o.read.is_some() && n % EACH == i)
            .map(|(_, o)| o.writer)
            .collect();
        assert_eq!(winners.len(), 1, "{key}: winners {winners:?}");
        let value = &row.other_config[position(&key).expect("the race's key")].1;
        assert_eq!(value, &winners[0].to_string());
    }
    if let Some(s) = &second {
        s.close();
    }
    db.close();
}

/// More writers of one task at once than one etcd transaction has room for the compares
/// of (each reads a session of its own, as every XAPI call does): every write is made.
pub async fn more_writers_of_one_task_than_a_transaction_holds(h: &Harness) {
    let (db, second, r) = with_second(h, "crowd").await;
    const WRITERS: usize = 160;
    let mut sessions = Vec::new();
    for w in 0..WRITERS {
        sessions.push(put_session(&db, session(&format!("crowd-{w}"))).await);
    }
    let mut joins = Vec::new();
    for s in sessions {
        let (db, r) = (db.clone(), r.clone());
        joins.push(tokio::spawn(async move {
            db.transact(|tx| {
                tx.session(&s).expect("the caller's session exists");
                let mut row = tx.task(&r).expect("the task exists").clone();
                row.progress += 1.0;
                R::Ok(tx.update_task(&r, row).expect("within the limits"))
            })
            .await
        }));
    }
    for j in joins {
        let out = tokio::time::timeout(Duration::from_secs(120), j)
            .await
            .expect("writers finish")
            .unwrap();
        assert_eq!(out, Ok(true), "every write is made");
    }
    db.sync(false).await.unwrap();
    assert_eq!(db.read().task(&r).unwrap().progress as usize, WRITERS);
    if let Some(s) = &second {
        s.close();
    }
    db.close();
}

/// Sessions: stored, found by uuid, linked to their tasks; idle means no unfinished task.
pub async fn sessions_and_their_tasks(h: &Harness) {
    let db = h.open().await;
    let s = put_session(&db, session("alice")).await;
    let mut row = task("owned");
    row.session = s.as_str().into();
    let t = insert(&db, row).await;
    {
        let tables = db.read();
        let sess = tables.session(&s).unwrap();
        assert!(sess.tasks.iter().any(|x| **x == *t));
        assert_eq!(tables.ref_by_uuid("session", &sess.uuid), Some(s.as_str()));
    }
    let busy = db.transact(|tx| R::Ok(tx.session_busy(&s))).await.unwrap();
    assert!(busy);
    update(&db, &t, |t| t.status = TaskStatus::Success).await;
    let busy = db.transact(|tx| R::Ok(tx.session_busy(&s))).await.unwrap();
    assert!(!busy);
    // New field values keep what the database maintains.
    db.transact(|tx| {
        let mut row = tx.session(&s).unwrap().fields();
        row.last_active = 42;
        tx.put_session(s.clone(), row);
        R::Ok(())
    })
    .await
    .unwrap();
    assert_eq!(db.read().session(&s).unwrap().last_active, 42);
    assert_eq!(db.read().session(&s).unwrap().tasks.len(), 1);
    let mut rx = db.subscribe();
    rx.borrow_and_update();
    db.transact(|tx| {
        tx.delete_session(&s);
        R::Ok(())
    })
    .await
    .unwrap();
    assert!(db.read().session(&s).is_none());
    assert!(rx.has_changed().unwrap(), "a logout wakes waiters");
    assert!(db.read().task(&t).is_some(), "tasks outlive their session");
    db.close();
}

/// Point 2 and 4 across a restart: everything acknowledged is there, with its links, its
/// generations and its tombstones, and the generation has not gone back.
pub async fn acknowledged_state_survives_a_restart(h: &Harness) {
    if !h.durable() {
        return;
    }
    let (parent, child, gone, s, token, generation) = {
        let db = h.open().await;
        let s = put_session(&db, session("bob")).await;
        let parent = insert(&db, task("parent")).await;
        let mut c = task("child");
        c.subtask_of = parent.as_str().into();
        c.session = s.as_str().into();
        let child = insert(&db, c).await;
        let gone = insert(&db, task("gone")).await;
        let token = db.read().generation();
        update(&db, &child, |t| t.progress = 0.75).await;
        delete(&db, &gone).await;
        let generation = db.read().generation();
        db.close();
        drop(db);
        (parent, child, gone, s, token, generation)
    };
    let db = h.open().await;
    db.sync(false).await.unwrap();
    let t = db.read();
    assert!(t.generation() >= generation);
    assert_eq!(t.task(&child).unwrap().progress, 0.75);
    assert_eq!(
        t.task(&parent).unwrap().subtasks.to_vec(),
        vec![child.clone()]
    );
    assert!(t.task(&gone).is_none());
    assert!(t.session(&s).unwrap().tasks.iter().any(|x| **x == *child));
    let since: Vec<(String, String)> = t
        .changes_since(token)
        .map(|(_, c)| match c {
            Change::Live { r, .. } => ("live".to_string(), r.to_string()),
            Change::Deleted { r, .. } => ("del".to_string(), r.to_string()),
        })
        .collect();
    assert!(since.contains(&("live".into(), child.clone())), "{since:?}");
    assert!(since.contains(&("del".into(), gone.clone())), "{since:?}");
    drop(t);
    db.close();
}

/// Reads after `sync` see every write acknowledged anywhere before it (read-your-writes
/// for a client that moves between processes sharing the store).
pub async fn a_sync_shows_what_others_acknowledged(h: &Harness) {
    if !h.shared() {
        return;
    }
    let (a, b) = (h.open().await, h.open().await);
    let r = insert(&a, task("ryw")).await;
    for i in 1..=200 {
        let v = f64::from(i);
        update(&a, &r, move |t| t.progress = v).await;
        b.sync(false).await.unwrap();
        let seen = b.read().task(&r).map(|t| t.progress);
        assert_eq!(seen, Some(v), "write {i} not seen after sync");
    }
    a.close();
    b.close();
}

/// Concurrent syncs share reads of the store, and each still sees every write
/// acknowledged before it began: 32 readers on one process sync and read a task in a loop
/// while another process writes increasing values to it; a read never returns less than
/// the last value acknowledged before its sync started.
pub async fn concurrent_syncs_see_what_was_acknowledged_before_them(h: &Harness) {
    if !h.shared() {
        return;
    }
    let (a, b) = (Arc::new(h.open().await), Arc::new(h.open().await));
    let r = insert(&a, task("ryw-concurrent")).await;
    // The last value acknowledged to the writer, published only after its ack.
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (a, r, acked, stop) = (a.clone(), r.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut v = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && v < 400 {
                v += 1;
                let x = v as f64;
                update(&a, &r, move |t| t.progress = x).await;
                acked.store(v, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..32 {
        let (b, r, acked) = (b.clone(), r.clone(), acked.clone());
        readers.push(tokio::spawn(async move {
            let mut stale = Vec::new();
            for _ in 0..40 {
                let before = acked.load(std::sync::atomic::Ordering::SeqCst);
                b.sync(false).await.unwrap();
                let seen = b.read().task(&r).map_or(0, |t| t.progress as u64);
                if seen < before {
                    stale.push((before, seen));
                }
            }
            stale
        }));
    }
    let mut stale = Vec::new();
    for j in readers {
        stale.extend(
            tokio::time::timeout(Duration::from_secs(120), j)
                .await
                .expect("readers finish")
                .unwrap(),
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        stale.is_empty(),
        "reads older than an acknowledged write: {stale:?}"
    );
    a.close();
    b.close();
}

/// What one process's tables show of some rows after a write: its generation, the change
/// index since `since` (with each entry's generation), the rows with their stamps and
/// derived fields.
fn view(db: &Db, since: u64, tasks: &[&str], sessions: &[&str]) -> String {
    let t = db.read();
    let changes: Vec<String> = t
        .changes_since(since)
        .map(|(g, c)| format!("{g} {c:?}"))
        .collect();
    let tasks: Vec<String> = tasks
        .iter()
        .map(|r| format!("{r}: {:?}", t.task(r)))
        .collect();
    let sessions: Vec<String> = sessions
        .iter()
        .map(|r| {
            let s = t.session(r).map(|s| {
                let mut tasks: Vec<&str> = s.tasks.iter().map(|x| &**x).collect();
                tasks.sort();
                (s.revision, s.last_active, tasks)
            });
            format!("{r}: {s:?}")
        })
        .collect();
    format!(
        "generation {}\nchanges {changes:#?}\ntasks {tasks:#?}\nsessions {sessions:#?}",
        t.generation()
    )
}

/// A shared backend's writer shows its own write as soon as it is answered; the other
/// processes learn of it from the store. Both must show the same thing: the same
/// generation, the same change-index entries (what `event.from` answers), the same rows,
/// stamps, links and session links — for every kind of write (an insert with a parent, an
/// update, a touch, a completion, a deletion of a parent with children and of a child
/// whose parent is gone, session writes).
pub async fn a_writer_shows_its_write_as_others_do(h: &Harness) {
    if !h.shared() {
        return;
    }
    let (a, b) = (h.open().await, h.open().await);
    let s = put_session(&a, session("carol")).await;
    let mut p = task("parent");
    p.session = s.as_str().into();
    let parent = insert(&a, p).await;
    let mut c = task("child");
    c.subtask_of = parent.as_str().into();
    c.session = s.as_str().into();
    let child = insert(&a, c).await;
    let mut g = both_at_one_generation(&a, &b).await;
    let tasks = [parent.as_str(), child.as_str()];
    let sessions = [s.as_str()];
    type Step = Box<dyn Fn(&mut xapi_taskd::db::Tx<'_>) + Send + Sync>;
    let steps: Vec<(&str, Step)> = vec![
        ("update", {
            let child = child.clone();
            Box::new(move |tx| {
                let mut row = tx.task(&child).unwrap().clone();
                row.progress = 0.5;
                tx.update_task(&child, row).unwrap();
            })
        }),
        ("touch", {
            let parent = parent.clone();
            Box::new(move |tx| tx.touch("task", &parent))
        }),
        ("complete", {
            let child = child.clone();
            Box::new(move |tx| {
                let mut row = tx.task(&child).unwrap().clone();
                row.status = TaskStatus::Success;
                tx.update_task(&child, row).unwrap();
            })
        }),
        ("a second child", {
            let (parent, s) = (parent.clone(), s.clone());
            Box::new(move |tx| {
                let mut c = task("second");
                c.subtask_of = parent.as_str().into();
                c.session = s.as_str().into();
                tx.insert_task(new_ref(), c);
            })
        }),
        ("delete the parent", {
            let parent = parent.clone();
            Box::new(move |tx| tx.delete_task(&parent))
        }),
        ("delete the orphan", {
            let child = child.clone();
            Box::new(move |tx| tx.delete_task(&child))
        }),
        ("session write", {
            let s = s.clone();
            Box::new(move |tx| {
                let mut row = tx.session(&s).unwrap().fields();
                row.last_active = 7;
                tx.put_session(s.clone(), row);
            })
        }),
        ("logout", {
            let s = s.clone();
            Box::new(move |tx| tx.delete_session(&s))
        }),
    ];
    for (name, step) in steps {
        a.transact(|tx| {
            step(tx);
            R::Ok(())
        })
        .await
        .unwrap();
        // At once: the writer's own view, before anything else may refresh it.
        let mine = view(&a, g, &tasks, &sessions);
        b.sync(false).await.unwrap();
        let theirs = view(&b, g, &tasks, &sessions);
        assert_eq!(
            mine, theirs,
            "after {name}: the writer's view, then the other's"
        );
        g = a.read().generation();
    }
    // Whether the writer's answer comes before its watch's event is a race: repeat the
    // write whose events it derives itself (one link deletion per child), so that some
    // rounds are applied by the writer.
    for round in 0..20 {
        let parent = insert(&a, task("parent")).await;
        let mut kids = Vec::new();
        for _ in 0..3 {
            let mut c = task("kid");
            c.subtask_of = parent.as_str().into();
            kids.push(insert(&a, c).await);
        }
        let g = both_at_one_generation(&a, &b).await;
        delete(&a, &parent).await;
        let mut rows: Vec<&str> = kids.iter().map(|k| k.as_str()).collect();
        rows.push(&parent);
        let mine = view(&a, g, &rows, &[]);
        b.sync(false).await.unwrap();
        assert_eq!(mine, view(&b, g, &rows, &[]), "round {round}");
    }
    a.close();
    b.close();
}

/// Both processes at the same generation; returns it.
async fn both_at_one_generation(a: &Db, b: &Db) -> u64 {
    b.sync(false).await.unwrap();
    a.sync(false).await.unwrap();
    let g = a.read().generation();
    assert_eq!(b.read().generation(), g);
    g
}

/// Every case, in order, on one harness.
pub async fn run_all(h: &mut Harness) {
    a_sync_shows_what_others_acknowledged(h).await;
    writes_are_visible_when_acknowledged(h).await;
    a_refusal_writes_nothing(h).await;
    a_plan_is_all_or_nothing(h).await;
    an_identical_write_changes_nothing(h).await;
    generations_grow_and_wake_waiters(h).await;
    concurrent_decisions_are_serialised(h).await;
    many_writers_of_one_task(h).await;
    more_writers_of_one_task_than_a_transaction_holds(h).await;
    concurrent_syncs_see_what_was_acknowledged_before_them(h).await;
    sessions_and_their_tasks(h).await;
    a_writer_shows_its_write_as_others_do(h).await;
    acknowledged_state_survives_a_restart(h).await;
    a_sync_shows_what_others_acknowledged(h).await;
}
