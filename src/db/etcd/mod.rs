//! The etcd backend: N front-ends sharing one etcd v3 cluster (`serve --store etcd`).
//!
//! Each front-end holds the whole database in its tables (a cache, fed by one watch:
//! [`cache`]) and never changes them itself: a write's decision runs on the cache, its plan
//! is sent as one transaction whose compares are what the decision read ([`txn`]), and the
//! call is answered once the cache shows the revision it committed at — so it reads its
//! own writes, and so does its own `event.from`. When the cache held the revision just
//! before, the front-end applies its own transaction itself ([`Inner::settle`]); else
//! its watch brings it. A conflict (someone else wrote what the decision read) runs the
//! decision again on the newer state.
//!
//! Reads are answered from the cache after [`Backend::sync`]: one linearizable read of
//! `d/meta/last` names the newest data revision, and the read waits until the cache has
//! applied it (concurrent reads share one such round trip, a *barrier*). That gives
//! read-your-writes to a client that moves between front-ends. How often a read syncs is
//! the [`ReadMode`]: every read call; or the first on each client connection only
//! (the default), while the cache is *fresh* — a barrier succeeded within
//! `etcd-fresh-ms` ([`Inner::prove`] runs one when none did) — so a front-end cut off
//! from etcd, even with its watch stream still looking open, stops serving its cache as
//! current within that bound; or none while the watch is up.
//!
//! etcd's revision is cluster-wide and only grows, so generations, `event.from` tokens and
//! event ids are the same on every front-end. Leases are used only for what must die
//! with a process: this front-end's membership key and its candidacy for running the
//! garbage collector ([`leader`]).

mod cache;
mod channel;
mod combine;
mod conn;
mod group;
pub mod import;
pub mod keys;
mod leader;
pub mod status;
mod txn;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp};
use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backend::BackendError;
use super::backend::{Backend, Decide, Executed, Leadership, ReadMode};
use super::{HostRow, Plan, PoolRow, Tables, Tx};
use keys::Keys;

/// Most revisions applied ahead of the watch at once (16 bytes each): a front-end whose
/// watch lags further waits for it.
const MAX_OWN_RECORDS: usize = 4096;

/// Most attempts of one decision under contention before giving up.
const MAX_ATTEMPTS: usize = 16;

/// Where the cluster is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Config {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// Longest wait for one request to one member.
    pub request_timeout: Duration,
    /// Longest a call keeps trying (members failing over, an election) before it is
    /// answered with an error.
    pub budget: Duration,
    /// When reads sync first (`etcd-reads`).
    pub reads: ReadMode,
    /// How long after a barrier the cache counts as current (`etcd-fresh-ms`).
    pub fresh: Duration,
    /// The etcd user and TLS files ([`conn`]).
    pub access: crate::config::EtcdAccess,
}

impl Config {
    pub fn new(endpoints: Vec<String>, prefix: String) -> Config {
        Config {
            endpoints,
            prefix,
            request_timeout: Duration::from_secs(2),
            budget: Duration::from_secs(15),
            reads: ReadMode::Connection,
            fresh: Duration::from_secs(1),
            access: Default::default(),
        }
    }
}

/// The tickets a barrier covered, and the data revision it read with when it was sent
/// ([`Inner::since`]), or why it failed.
type BarrierDone = (u64, Result<(u64, u64), BackendError>);

/// State shared by the backend, its watch loop and its leadership loop.
pub(crate) struct Inner {
    pub keys: Keys,
    pub conn: conn::Conn,
    /// This process's id among the front-ends (new at every start).
    pub node: String,
    pub budget: Duration,
    applied: tokio::sync::watch::Sender<u64>,
    /// Ids of this front-end's transactions in flight, and the revision the watch saw
    /// each commit at (0: not yet).
    pending: Mutex<HashMap<String, u64>>,
    /// Revisions this front-end's own writes applied to the cache ahead of the watch,
    /// with their digests, until the watch delivers them ([`Inner::settle`]).
    own: Mutex<BTreeMap<u64, u64>>,
    /// Reads waiting for a barrier so far (each takes the next ticket).
    barrier_tickets: AtomicU64,
    /// The last barrier done: the tickets it covers (every one taken before it was sent)
    /// and the newest data revision it read with when it was sent ([`Inner::since`]),
    /// or why it failed.
    barrier_done: tokio::sync::watch::Sender<BarrierDone>,
    /// Wakes the barrier loop when a read takes a ticket.
    barrier_wanted: tokio::sync::Notify,
    closed: AtomicBool,
    watching: AtomicBool,
    /// The election key this front-end leads with, and its creation revision.
    leader: Mutex<Option<(Vec<u8>, u64)>>,
    /// Held by a write retrying after a conflict (see `execute`).
    contended: tokio::sync::Mutex<()>,
    /// Writes of one task from this front-end, combined ([`combine`]).
    lanes: combine::Lanes,
    /// Batches of different tasks waiting to share a transaction ([`group`]).
    groups: group::Groups,
    reads: ReadMode,
    /// How long after a barrier's sending the cache counts as current.
    fresh: Duration,
    /// The origin of [`Inner::since`].
    epoch: Instant,
    /// When (nanoseconds since `epoch`) the newest barrier whose revision the cache has
    /// applied was sent: the cache holds everything acknowledged before then. 0: never.
    proven: AtomicU64,
}

/// Removes a transaction id from the pending set when dropped.
pub(crate) struct Expecting<'a> {
    inner: &'a Inner,
    id: String,
}

impl Drop for Expecting<'_> {
    fn drop(&mut self) {
        self.inner.pending.lock().remove(&self.id);
    }
}

impl Inner {
    pub fn expect(&self, id: &str) -> Expecting<'_> {
        self.pending.lock().insert(id.to_string(), 0);
        Expecting {
            inner: self,
            id: id.to_string(),
        }
    }

    /// The watch saw transaction `id` commit at `rev`. The first revision is kept: a
    /// group resent after an ambiguous send may put its id again ([`group`]).
    pub fn observed(&self, id: &str, rev: u64) {
        if let Some(r) = self.pending.lock().get_mut(id)
            && *r == 0
        {
            *r = rev;
        }
    }

    pub fn seen(&self, id: &str) -> Option<u64> {
        self.pending.lock().get(id).copied().filter(|r| *r > 0)
    }

    pub fn applied(&self, rev: u64) {
        self.applied.send_if_modified(|a| {
            let newer = rev > *a;
            *a = (*a).max(rev);
            newer
        });
    }

    /// Makes the cache show this front-end's own transaction, committed at `rev` with
    /// operations `own`, before its caller is answered. If the cache holds `rev - 1`
    /// (waiting for that first, if it is near), `rev` can only be this transaction: the
    /// cache applies it itself ([`cache::apply_own`]) instead of waiting for the watch to
    /// bring it, and records its digest, which the watch's delivery of `rev` is checked
    /// against. Otherwise (a revision in between that the data watch never reports, a
    /// full record) it waits for the watch, as for anyone's write.
    pub async fn settle(
        &self,
        tables: &RwLock<Tables>,
        rev: u64,
        own: &[txn::Op],
    ) -> Result<(), BackendError> {
        self.wait_applied(rev.saturating_sub(1)).await?;
        {
            let mut t = tables.write();
            let held = t.generation();
            if held >= rev {
                return Ok(());
            }
            let mut records = self.own.lock();
            if held + 1 == rev && records.len() < MAX_OWN_RECORDS {
                let digest = cache::apply_own(&self.keys, &mut t, rev, own);
                records.insert(rev, digest);
                drop(records);
                self.applied(rev);
                return Ok(());
            }
        }
        self.wait_applied(rev).await
    }

    /// The watch has reached `rev`: forgets the records up to it, and returns the one of
    /// `rev`, if this front-end applied `rev` itself.
    pub fn own_passed(&self, rev: u64) -> Option<u64> {
        let mut records = self.own.lock();
        if records.is_empty() {
            return None;
        }
        let later = records.split_off(&(rev + 1));
        let mine = records.remove(&rev);
        *records = later;
        mine
    }

    /// Waits until the cache has applied revision `rev`.
    pub async fn wait_applied(&self, rev: u64) -> Result<(), BackendError> {
        let mut rx = self.applied.subscribe();
        match tokio::time::timeout(self.budget, rx.wait_for(|a| *a >= rev)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(BackendError("the cluster store is closed".into())),
            Err(_) => Err(BackendError(format!(
                "this front-end's view of the cluster store is behind (revision {rev} not \
                 applied after {:?})",
                self.budget
            ))),
        }
    }

    /// The newest data revision, read linearizably. Concurrent callers share one read: a
    /// caller takes a ticket and rides on the first read sent after it did (one that was
    /// already in flight may have been answered by etcd before the caller arrived). The
    /// reads are sent by [`Inner::barriers`], one at a time, back to back while callers
    /// wait; each one's answer wakes all of its riders at once.
    pub async fn barrier(&self) -> Result<(u64, u64), BackendError> {
        if self.is_closed() {
            // Its loop is gone: nothing would answer.
            return Err(BackendError("the cluster store is closed".into()));
        }
        let mut done = self.barrier_done.subscribe();
        let ticket = self.barrier_tickets.fetch_add(1, Ordering::SeqCst) + 1;
        self.barrier_wanted.notify_one();
        let wait = done.wait_for(|(covered, _)| *covered >= ticket);
        match tokio::time::timeout(self.budget * 2, wait).await {
            Ok(Ok(d)) => d.1.clone(),
            Ok(Err(_)) => Err(BackendError("the cluster store is closed".into())),
            Err(_) => Err(BackendError(format!(
                "this front-end could not read the cluster store's revision within {:?}",
                self.budget * 2
            ))),
        }
    }

    /// The barrier loop: runs until the backend is closed.
    async fn barriers(self: Arc<Inner>) {
        let key = self.keys.last();
        let mut covered = 0;
        while !self.is_closed() {
            let wanted = self.barrier_tickets.load(Ordering::SeqCst);
            if wanted <= covered {
                self.barrier_wanted.notified().await;
                continue;
            }
            // Let the runtime poll its sockets once or twice first: requests that arrived
            // meanwhile take their tickets and ride on this read too (each read costs the
            // etcd members a heartbeat round to confirm the leader: the fewer, the better
            // for everyone sharing their CPU). A few microseconds, no timer.
            for _ in 0..2 {
                tokio::task::yield_now().await;
            }
            let wanted = self.barrier_tickets.load(Ordering::SeqCst);
            // Every ticket up to `wanted` was taken before this read is sent.
            let sent = self.since();
            let resp = self
                .conn
                .retry(self.budget, |mut c| {
                    let key = key.clone();
                    async move { c.get(key, Some(GetOptions::new().with_keys_only())).await }
                })
                .await;
            let rev = resp.map(|r| {
                let rev = r.kvs().first().map_or(0, |kv| kv.mod_revision()).max(0) as u64;
                (rev, sent)
            });
            // Only the tickets taken before the read was sent: one taken while it was in
            // flight may have arrived after etcd answered it, and waits for the next.
            tracing::trace!(wanted, ?rev, "barrier");
            covered = wanted;
            let _previous = self.barrier_done.send_replace((wanted, rev));
        }
    }

    /// Catches the cache up with everything acknowledged anywhere before this call
    /// (a barrier, then its revision applied), and records the proof of freshness.
    async fn catch_up(&self) -> Result<(), BackendError> {
        let (rev, sent) = self.barrier().await?;
        self.wait_applied(rev).await?;
        self.proven.fetch_max(sent, Ordering::AcqRel);
        Ok(())
    }

    /// Nanoseconds since this front-end's start (at least 1: 0 is "never").
    fn since(&self) -> u64 {
        (self.epoch.elapsed().as_nanos() as u64).max(1)
    }

    /// Whether a barrier sent less than `fresh` ago was applied, with the watch up.
    fn is_fresh(&self) -> bool {
        let proven = self.proven.load(Ordering::Acquire);
        self.watching.load(Ordering::SeqCst)
            && proven != 0
            && self.since().saturating_sub(proven) < self.fresh.as_nanos() as u64
    }

    /// The freshness prober (`etcd-reads = "connection"`): whenever no barrier was applied
    /// within half the bound, runs one, so that a healthy front-end's reads never find
    /// the cache unproven (readers on new connections prove it too, for free). One
    /// read-index round per half bound is nothing to etcd; a cut-off front-end's probe
    /// fails (or hangs until its timeout) and the bound runs out: reads then sync, and
    /// fail with a clear error, until a barrier succeeds again.
    async fn prove(self: Arc<Inner>) {
        let half = (self.fresh.as_nanos() as u64 / 2).max(1);
        while !self.is_closed() {
            let age = self
                .since()
                .saturating_sub(self.proven.load(Ordering::Acquire));
            if age >= half {
                if let Err(e) = self.catch_up().await {
                    tracing::debug!("freshness probe: {e}");
                    // Not back to back against a cluster that does not answer.
                    tokio::time::sleep(Duration::from_nanos(half)).await;
                }
                continue;
            }
            tokio::time::sleep(Duration::from_nanos(half - age)).await;
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn set_watching(&self, on: bool) {
        self.watching.store(on, Ordering::SeqCst);
    }

    pub fn set_leader(&self, leader: Option<(Vec<u8>, u64)>) {
        *self.leader.lock() = leader;
    }
}

/// JSON, as the local store writes rows.
pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T, BackendError> {
    decode_bytes(kv.key(), kv.value())
}

pub(crate) fn decode_bytes<T: DeserializeOwned>(
    key: &[u8],
    value: &[u8],
) -> Result<T, BackendError> {
    serde_json::from_slice(value).map_err(|e| {
        BackendError(format!(
            "etcd key {} cannot be read: {e}",
            String::from_utf8_lossy(key)
        ))
    })
}

/// The backend.
pub struct Etcd {
    inner: Arc<Inner>,
    /// The cache (the tables this backend feeds).
    tables: Arc<RwLock<Tables>>,
    loops: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The pool and host this front-end would create if the cluster has none yet.
pub struct Identity {
    pub pool_ref: String,
    pub pool: PoolRow,
    pub host_ref: String,
    pub host: HostRow,
}

impl Inner {
    async fn connect(config: &Config) -> Result<Arc<Inner>, BackendError> {
        let keys = Keys::new(&config.prefix);
        let conn = conn::Conn::new(
            &config.endpoints,
            config.request_timeout,
            &config.access,
            &config.prefix,
        )
        .await?;
        Ok(Arc::new(Inner {
            keys,
            conn,
            node: uuid::Uuid::new_v4().to_string(),
            budget: config.budget,
            applied: tokio::sync::watch::channel(0).0,
            pending: Mutex::new(HashMap::new()),
            own: Mutex::new(BTreeMap::new()),
            barrier_tickets: AtomicU64::new(0),
            barrier_done: tokio::sync::watch::channel((0, Ok((0, 0)))).0,
            barrier_wanted: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            watching: AtomicBool::new(false),
            leader: Mutex::new(None),
            contended: tokio::sync::Mutex::new(()),
            lanes: combine::Lanes::default(),
            groups: group::Groups::default(),
            reads: config.reads,
            fresh: config.fresh,
            epoch: Instant::now(),
            proven: AtomicU64::new(0),
        }))
    }
}

/// One control key used as a small file with compare-and-swap (the users file): its
/// content and its mod revision as the version.
pub struct KeyFile {
    inner: Arc<Inner>,
    key: String,
}

impl KeyFile {
    /// The users file of the cluster, for a process that needs nothing else (the `user`
    /// commands).
    /// Refused while an import is unfinished: the import replaces the users file when
    /// it publishes (and clears it when started over), so neither a change nor a
    /// listing would be the deployment's.
    pub async fn users(config: &Config) -> Result<KeyFile, BackendError> {
        let inner = Inner::connect(config).await?;
        refuse_unfinished_import(&inner, "its users").await?;
        let key = inner.keys.users();
        Ok(KeyFile { inner, key })
    }

    pub async fn read(&self) -> Result<Option<(Vec<u8>, i64)>, BackendError> {
        Ok(get(&self.inner, self.key.clone())
            .await?
            .map(|kv| (kv.value().to_vec(), kv.mod_revision())))
    }

    /// Writes `content` if the key is still at `expected` (None: absent); false when
    /// someone else wrote first.
    pub async fn replace(
        &self,
        content: &[u8],
        expected: Option<i64>,
    ) -> Result<bool, BackendError> {
        let k = self.key.as_str();
        let cmp = match expected {
            Some(rev) => Compare::mod_revision(k, CompareOp::Equal, rev),
            None => Compare::version(k, CompareOp::Equal, 0),
        };
        // Not while `cluster import` writes the prefix (it may have started since the
        // file was read): its publish would overwrite the change.
        let import = self.inner.keys.import();
        let txn = Txn::new()
            .when([cmp, Compare::version(import.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, content.to_vec(), None)]);
        // A resend after an ambiguous failure can only fail its compare: so a failed
        // compare reads the key again, and a key that holds exactly `content` counts as
        // written. That is the state the caller asked for, whoever wrote it: another
        // command can write the same bytes (two `user remove bob` from the same file),
        // and then both report success, which each of them was owed. The caller then does
        // not report as not made a change that was made.
        let resp = self
            .inner
            .conn
            .retry(self.inner.budget, |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(true);
        }
        refuse_unfinished_import(&self.inner, "the users file").await?;
        Ok(self
            .read()
            .await?
            .is_some_and(|(now, _)| now.as_slice() == content))
    }
}

/// An error naming the unfinished `cluster import` under the prefix, if there is one
/// (its marker present): `what` cannot be used or changed until it is completed.
async fn refuse_unfinished_import(inner: &Inner, what: &str) -> Result<(), BackendError> {
    match get(inner, inner.keys.import()).await? {
        None => Ok(()),
        Some(kv) => Err(BackendError(format!(
            "the data under {} is an unfinished `xapi-taskd cluster import` (import {}, \
             stopped or still running): {what} cannot be changed or read until it is \
             complete; run the import again to complete it, then retry",
            inner.keys.prefix(),
            String::from_utf8_lossy(kv.value())
        ))),
    }
}

impl Etcd {
    /// Connects, checks the layout's version, creates the pool and host if this is the
    /// first front-end, loads the cache and starts the watch and leadership loops.
    pub async fn open(
        config: &Config,
        identity: Identity,
    ) -> Result<(Arc<RwLock<Tables>>, Etcd), BackendError> {
        let inner = Inner::connect(config).await?;
        init(&inner, identity).await?;
        let snap = cache::snapshot(&inner).await?;
        let tables = Arc::new(RwLock::new(cache::build(&inner.keys, &snap)?));
        inner.applied(snap.revision);
        tracing::info!(
            "etcd: {} tasks, {} sessions at revision {}; this front-end is {}",
            tables.read().count("task"),
            tables.read().count("session"),
            snap.revision,
            inner.node
        );
        let watch = tokio::spawn(cache::run(inner.clone(), tables.clone(), snap.revision));
        let lead = tokio::spawn(leader::run(inner.clone()));
        let barriers = tokio::spawn(inner.clone().barriers());
        // The member in use (writes, watch, barriers) becomes the Raft leader once it is
        // found ([`conn::Conn::follow_leader`]); a leader change is seen within a second
        // (until then the old one forwards).
        let writer = inner.clone();
        let follow = tokio::spawn(async move {
            let every = Duration::from_secs(1);
            writer.conn.follow_leader(every, &writer.closed).await
        });
        let mut loops = vec![watch, lead, barriers, follow];
        if inner.reads == ReadMode::Connection {
            loops.push(tokio::spawn(inner.clone().prove()));
        }
        Ok((
            tables.clone(),
            Etcd {
                inner,
                tables,
                loops: Mutex::new(loops),
            },
        ))
    }

    /// This front-end's id.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The cluster's users file.
    pub fn users_file(&self) -> KeyFile {
        KeyFile {
            inner: self.inner.clone(),
            key: self.inner.keys.users(),
        }
    }
}

/// Creates `c/format` and the pool and host rows if they are missing, and refuses a
/// cluster written by a newer layout.
async fn init(inner: &Inner, id: Identity) -> Result<(), BackendError> {
    let keys = &inner.keys;
    let format = keys.format();
    // A prefix that `cluster import` is still writing is not a deployment yet.
    let import = keys.import();
    let txn = Txn::new()
        .when([
            Compare::version(format.as_str(), CompareOp::Equal, 0),
            Compare::version(import.as_str(), CompareOp::Equal, 0),
        ])
        .and_then([TxnOp::put(format.as_str(), keys::FORMAT.to_string(), None)]);
    let resp = inner
        .conn
        .retry(inner.budget, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
    if !resp.succeeded() {
        if get(inner, import).await?.is_some() {
            return Err(BackendError(format!(
                "the data under {} is an unfinished `xapi-taskd cluster import` (it was \
                 stopped, or is still running): run the import again to complete it; no \
                 front-end serves the prefix until then",
                keys.prefix()
            )));
        }
        let v: u64 = get(inner, format.clone())
            .await?
            .and_then(|kv| std::str::from_utf8(kv.value()).ok()?.parse().ok())
            .unwrap_or(0);
        if v > keys::FORMAT {
            return Err(BackendError(format!(
                "the cluster's data under {} has layout {v}; this version reads layout {}",
                keys.prefix(),
                keys::FORMAT
            )));
        }
    }
    let pool = keys::Pool {
        r: id.pool_ref,
        row: id.pool,
    };
    let host = keys::Host {
        r: id.host_ref,
        row: id.host,
    };
    let txn = Txn::new()
        .when([
            Compare::version(keys.pool(), CompareOp::Equal, 0),
            Compare::version(keys.host(), CompareOp::Equal, 0),
        ])
        .and_then([
            TxnOp::put(keys.pool(), encode(&pool), None),
            TxnOp::put(keys.host(), encode(&host), None),
            TxnOp::put(keys.last(), uuid::Uuid::new_v4().to_string(), None),
        ]);
    inner
        .conn
        .retry(inner.budget, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
    Ok(())
}

impl Backend for Etcd {
    fn execute<'a>(
        &'a self,
        tables: &'a RwLock<Tables>,
        decide: &'a mut Decide<'_>,
    ) -> BoxFuture<'a, Result<Executed, BackendError>> {
        Box::pin(async move {
            let inner = &self.inner;
            debug_assert!(std::ptr::eq(tables, &*self.tables));
            // After a first conflict, this front-end's retries take turns: writers here
            // then never race each other, only other front-ends' writers. (Writers of one
            // task do not even race the first time: they share a lane.)
            let mut turn = None;
            let mut attempt = 0;
            // Set once a decision made on a lane's view wrote more than its task.
            let mut alone = false;
            // A lane's batch that lost to another front-end's write is decided again
            // at once, as often as it takes within the budget: a hot task written through
            // two front-ends makes each lose rounds to the other (counting them would
            // fail calls that merely waited their turn).
            let deadline = tokio::time::Instant::now() + inner.budget;
            while attempt < MAX_ATTEMPTS {
                let step = {
                    let t = tables.read();
                    let mut tx = Tx::new(&t, true);
                    let committed = decide(&mut tx);
                    let mut plan: Plan = tx.into_plan();
                    match inner.lanes.lane_for(&plan, committed).filter(|_| !alone) {
                        Some(task) => Step::Lane(task),
                        None => {
                            if !committed {
                                plan.writes.clear();
                            }
                            let leader = inner.leader.lock().as_ref().map(|l| l.0.clone());
                            let prepared = txn::prepare(
                                &inner.keys,
                                &inner.node,
                                leader.as_deref(),
                                &t,
                                &plan,
                            )?;
                            Step::Alone(committed, prepared, t.generation())
                        }
                    }
                };
                let (committed, prepared, basis) = match step {
                    Step::Alone(c, p, b) => (c, p, b),
                    Step::Lane(task) => {
                        match combine::write(inner, &self.tables, &task, decide).await {
                            Some(combine::Answer::Done(e)) => return Ok(e),
                            Some(combine::Answer::Failed(e)) => return Err(e),
                            Some(combine::Answer::Again) => {
                                if tokio::time::Instant::now() >= deadline {
                                    return Err(BackendError(format!(
                                        "the change lost to other front-ends' writes of the \
                                         same task for {:?} and was not made",
                                        inner.budget
                                    )));
                                }
                                // An answer that came without waiting must not spin the
                                // worker until the deadline.
                                tokio::task::yield_now().await;
                            }
                            // The decision, made on the lane's view, writes more than the
                            // task: it commits alone, decided again on the cache.
                            None => alone = true,
                        }
                        continue;
                    }
                };
                if attempt >= 1 && turn.is_none() {
                    let wait = tokio::time::timeout(inner.budget, inner.contended.lock());
                    turn = Some(wait.await.map_err(|_| {
                        BackendError(
                            "the change waited too long for its turn and was not made".into(),
                        )
                    })?);
                    // The state may have moved while it waited: decide again.
                    continue;
                }
                attempt += 1;
                let writes = prepared.id.is_some();
                let outcome = txn::commit(inner, &prepared, inner.budget).await?;
                if let txn::Outcome::Done(rev) = outcome {
                    tracing::trace!(rev, writes, "committed");
                    if writes {
                        inner.settle(tables, rev, &prepared.own).await?;
                    }
                }
                match txn::answer(inner, outcome, committed, writes, basis).await? {
                    Some(executed) => return Ok(executed),
                    None => jitter(attempt).await,
                }
            }
            drop(turn);
            Err(BackendError(format!(
                "the change conflicted with others {MAX_ATTEMPTS} times in a row and was not made"
            )))
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn read_mode(&self) -> ReadMode {
        self.inner.reads
    }

    fn cache_fresh(&self) -> bool {
        // Only while the watch is up: a front-end cut off from etcd stops serving its
        // cache as current (its reads then sync, and fail with a clear error). Per
        // connection, also only while a barrier proved it recently: a cut the watch
        // stream does not show (yet) shows here within the bound.
        match self.inner.reads {
            ReadMode::Linearizable => false,
            ReadMode::Connection => self.inner.is_fresh(),
            ReadMode::Cached => self.inner.watching.load(Ordering::SeqCst),
        }
    }

    fn sync<'a>(&'a self, _tables: &'a RwLock<Tables>) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.inner.catch_up())
    }

    fn wait_durable(&self, _seq: u64) -> BoxFuture<'_, Result<(), BackendError>> {
        // The cache holds committed state only.
        Box::pin(async { Ok(()) })
    }

    fn max_plan_writes(&self) -> usize {
        // A deletion is six operations; etcd allows 128 per transaction by default.
        16
    }

    fn gc_leadership(&self) -> Leadership {
        match &*self.inner.leader.lock() {
            Some((_, rev)) => Leadership::Leader(*rev),
            None => Leadership::Follower,
        }
    }

    fn orphaned_tasks(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, BackendError>> {
        Box::pin(leader::orphans(&self.inner))
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "store: etcd {} under {}",
            self.inner.conn.endpoints().join(","),
            self.inner.keys.prefix()
        )
    }

    fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        for l in self.loops.lock().drain(..) {
            l.abort();
        }
        // Callers already waiting for a barrier would otherwise wait out their timeout.
        let closed = Err(BackendError("the cluster store is closed".into()));
        let _previous = self.inner.barrier_done.send_replace((u64::MAX, closed));
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.close();
    }
}

/// What a decision made on the cache leads to.
enum Step {
    /// A write of one task: it goes through the task's lane ([`combine`]).
    Lane(String),
    /// A transaction of its own: (committed, the transaction, the cache's generation).
    Alone(bool, txn::Prepared, u64),
}

/// Front-ends that conflict again should not stay in step.
async fn jitter(attempt: usize) {
    let ms = rand::random::<u64>() % (2 * attempt as u64 + 1);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Reads one key linearizably.
async fn get(inner: &Inner, key: String) -> Result<Option<KeyValue>, BackendError> {
    get_with(inner, key, GetOptions::new()).await
}

/// Reads one key with `options` (at a past revision, say).
pub(crate) async fn get_with(
    inner: &Inner,
    key: String,
    options: GetOptions,
) -> Result<Option<KeyValue>, BackendError> {
    let resp = inner
        .conn
        .retry(inner.budget, |mut c| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.get(key, Some(options)).await }
        })
        .await?;
    Ok(resp.kvs().first().cloned())
}
