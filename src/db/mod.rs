//! The in-memory object database: rows of every class, their refs and uuids, and the
//! relations xapi keeps consistent (`task.subtask_of` ↔ `task.subtasks`,
//! `task.session` ↔ `session.tasks`).
//!
//! It knows nothing of XML, sessions-as-callers or roles. All state sits behind one
//! `parking_lot::RwLock`; critical sections are short and never span I/O or an `.await`.
//! Every change bumps a database generation and stamps the row, as xapi's
//! `db_cache_types.ml` does, so that `event.from` can later be answered from it.

mod apply;
pub mod backend;
pub mod changes;
pub mod dbstring;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod filter;
pub mod journal;
pub mod maps;
pub mod plan;
pub mod quota;
mod rows;
pub mod store;
pub mod verify;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;
// FxHash, not SipHash, for the tables: their keys (refs, uuids) are made here, random,
// so a client cannot choose colliding ones, and every call looks a row up by them
// (SipHash of a 46-byte ref was ~400 instructions, a tenth of a call's own work).
use rustc_hash::FxHashMap;

pub use apply::WriteSet;
pub use changes::{Change, LegacyEvent, Op};
pub use plan::{Plan, Read, Tx, Write};
pub use rows::{HostRow, LegacySubscription, PoolRow, SessionRow, Str, TaskRow, TaskStatus};

use backend::BackendError;
use backend::{Backend, Local, ReadMode};
use changes::{ChangeIndex, LegacyQueue};
use journal::{Dirty, Journal};
use store::{Loaded, Store};

/// xapi's null reference.
pub const NULL_REF: &str = "OpaqueRef:NULL";

/// A fresh object reference, `OpaqueRef:<uuid v4>`.
///
/// uuid v4 draws its 122 random bits from the operating system's CSPRNG (getrandom), so
/// refs are unguessable; that matters for session refs, which are bearer credentials.
pub fn new_ref() -> String {
    format!("OpaqueRef:{}", uuid::Uuid::new_v4())
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Seconds since the epoch (rounded down), xapi's date resolution. Read from the clock
/// as they are, without the calendar date `time::OffsetDateTime` works out (some 150
/// instructions, and every call with a session reads the clock).
pub fn now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let d = before.duration();
            -i64::try_from(d.as_secs()).unwrap_or(i64::MAX) - i64::from(d.subsec_nanos() > 0)
        }
    }
}

/// A row of some class, borrowed from the tables.
#[derive(Clone, Copy)]
pub enum Row<'a> {
    Task(&'a TaskRow),
    Session(&'a SessionRow),
    Pool(&'a PoolRow),
    Host(&'a HostRow),
}

/// What every stored object carries besides its fields: its generations, which the event
/// machinery compares with a client's token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub created: u64,
    pub modified: u64,
}

/// A copy of a row as it was at a write, for legacy `event.next` events.
#[derive(Debug, Clone)]
pub enum RowSnapshot {
    Task(TaskRow),
    Pool(PoolRow),
    Host(HostRow),
}

impl changes::Weigh for RowSnapshot {
    /// Every string of a task row plus the row (`quota::row_bytes`); the singletons are
    /// small and fixed.
    fn weight(&self) -> usize {
        match self {
            RowSnapshot::Task(t) => quota::row_bytes(t),
            RowSnapshot::Pool(_) | RowSnapshot::Host(_) => quota::ROW_OVERHEAD,
        }
    }
}

impl RowSnapshot {
    pub fn as_row(&self) -> Row<'_> {
        match self {
            RowSnapshot::Task(t) => Row::Task(t),
            RowSnapshot::Pool(p) => Row::Pool(p),
            RowSnapshot::Host(h) => Row::Host(h),
        }
    }
}

/// All tables. Read through [`Db::read`]; changed through [`Db::transact`] (and, by a
/// shared backend, from what its store committed).
pub struct Tables {
    /// Boxed: a hash table keeps up to twice as many slots as entries, and a task row is
    /// about 400 bytes; inline, the empty slots alone would cost that much each.
    /// Keyed by the ref, shared (`Arc<str>`) with the uuid index and the change index.
    tasks: FxHashMap<Arc<str>, Box<TaskRow>>,
    /// Keyed by the parsed uuid (16 bytes, no allocation); a lookup checks the row's
    /// uuid string too, so only the exact spelling matches, as in xapi.
    task_by_uuid: FxHashMap<uuid::Uuid, Arc<str>>,
    sessions: FxHashMap<String, SessionRow>,
    session_by_uuid: FxHashMap<String, String>,
    pub pool_ref: String,
    pub pool: PoolRow,
    pub host_ref: String,
    pub host: HostRow,
    pool_stamp: Stamp,
    host_stamp: Stamp,
    generation: u64,
    /// Tasks not completed (pending or cancelling), kept current by every task write so
    /// that the limit on them is checked in O(1).
    unfinished_tasks: usize,
    changes: ChangeIndex,
    /// Per-user counts and the task limits (`quota.rs`), kept current by every task and
    /// session write.
    pub ledger: quota::Ledger,
    pub legacy: LegacyQueue<RowSnapshot>,
    /// Carries the current generation to event waiters. A watch channel wakes every
    /// receiver with one store and costs nothing while nobody waits.
    notify: tokio::sync::watch::Sender<u64>,
    /// Rows changed since the last commit to the store (None: in memory only).
    dirty: Option<Dirty>,
    /// Advances with every change that must reach the store (see [`journal`]).
    seq: u64,
    /// What `event.from` waiters check without the lock; shared with [`Db`], and kept
    /// across a shared backend's reload ([`Tables::take_memory_of`]).
    marks: Arc<Marks>,
}

/// Two counters that an `event.from` waiter reads without the tables' lock, so that ten
/// thousand waiters woken by one change do not each take the lock (and look their
/// session up) only to find that nothing but the generation moved. Both move only under
/// the tables' write lock, together with what they stand for.
#[derive(Debug, Default)]
pub struct Marks {
    /// Moves at every change an `event.from` answer depends on: a new generation (every
    /// evented write), a session added or removed (`valid_ref_counts` counts sessions,
    /// which make no events), the tables replaced.
    state: AtomicU64,
    /// Moves (before `state`) whenever a session may have gone: a session removed, the
    /// tables replaced.
    gone: AtomicU64,
}

/// [`Marks`] as read under the tables' lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub state: u64,
    pub gone: u64,
}

impl Marks {
    fn moved(&self) {
        self.state.fetch_add(1, Ordering::Release);
    }

    fn session_gone(&self) {
        self.gone.fetch_add(1, Ordering::Release);
        self.state.fetch_add(1, Ordering::Release);
    }

    /// The current `state`, if no session has gone since `gone` was read (under the
    /// lock, by a caller that then saw its session). With it, that caller's session
    /// still existed when `state` was read: `state` is read first, and a removal moves
    /// `gone` before `state`, so a removal the `state` read reflects is in the `gone`
    /// read after it; one it does not reflect came after that moment. (A removed ref
    /// never comes back: refs are random.)
    pub fn state_if_none_gone_since(&self, gone: u64) -> Option<u64> {
        let state = self.state.load(Ordering::Acquire);
        (self.gone.load(Ordering::Acquire) == gone).then_some(state)
    }
}

// Used by the shared (etcd) backend's cache.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
impl Tables {
    /// Tables holding only the pool and host singletons, at generation 0, for a shared
    /// backend's cache (which then loads what its store holds).
    pub(crate) fn for_cache(
        pool_ref: String,
        pool: PoolRow,
        host_ref: String,
        host: HostRow,
    ) -> Tables {
        let mut t = Tables::empty(pool_ref, pool, host_ref, host, None);
        t.changes = ChangeIndex::default();
        t.generation = 0;
        t.notify.send_replace(0);
        t
    }

    /// Takes over what lives only in this process's memory from the tables this one
    /// replaces (a shared backend's reload): the waiters' channel and legacy event
    /// subscriptions of sessions that still exist.
    pub(crate) fn take_memory_of(&mut self, old: &mut Tables) {
        std::mem::swap(&mut self.notify, &mut old.notify);
        // The waiters' marks too; any session may be gone in the new tables.
        std::mem::swap(&mut self.marks, &mut old.marks);
        self.marks.session_gone();
        for (r, s) in &mut old.sessions {
            if let (Some(sub), Some(new)) = (s.legacy_events.take(), self.sessions.get_mut(r)) {
                new.legacy_events = Some(sub);
                self.legacy.listeners += 1;
            }
        }
        self.notify.send_replace(self.generation);
    }
}

/// The database handle shared by all connections: the tables, and the backend that makes
/// their changes durable (see [`backend`] for what it guarantees).
pub struct Db {
    tables: Arc<RwLock<Tables>>,
    /// The tables' [`Marks`], readable without their lock.
    marks: Arc<Marks>,
    backend: Box<dyn Backend>,
    /// Set at shutdown: event waiters answer at once.
    stopping: AtomicBool,
}

impl Db {
    /// An in-memory database (xapi's behaviour, `--ephemeral`) holding the pool and host
    /// singletons (with these refs) and nothing else.
    pub fn new(pool_ref: String, pool: PoolRow, host_ref: String, host: HostRow) -> Db {
        let tables = Tables::empty(pool_ref, pool, host_ref, host, None);
        Db::with_backend(Arc::new(RwLock::new(tables)), Box::new(Local::memory()))
    }

    /// A durable database: the tables as `store` held them, and a writer that commits
    /// every later change to it. A call waits at most `durable_timeout` for its change to
    /// be durable.
    pub fn restore(
        pool_ref: String,
        pool: PoolRow,
        host_ref: String,
        host: HostRow,
        (store, loaded): (Store, Loaded),
        durable_timeout: std::time::Duration,
    ) -> Db {
        let tables = Tables::empty(pool_ref, pool, host_ref, host, Some(loaded));
        let tables = Arc::new(RwLock::new(tables));
        let describe = format!("store: {} (redb)", store::STORE_FILE);
        let journal = Journal::start(tables.clone(), store, durable_timeout);
        Db::with_backend(tables, Box::new(Local::durable(journal, describe)))
    }

    /// A database over tables that `backend` keeps (a shared backend feeds them itself).
    pub fn with_backend(tables: Arc<RwLock<Tables>>, backend: Box<dyn Backend>) -> Db {
        let marks = tables.read().marks.clone();
        Db {
            tables,
            marks,
            backend,
            stopping: AtomicBool::new(false),
        }
    }

    /// Runs a decision and commits its plan (see [`backend::Backend::execute`]): `decide`
    /// reads through the [`Tx`] and buffers its writes there; `Ok` commits them, `Err`
    /// refuses and writes nothing. Answers once the writes are durable.
    pub async fn transact<T, E>(
        &self,
        decide: impl FnMut(&mut Tx<'_>) -> Result<T, E> + Send,
    ) -> Result<T, E>
    where
        T: Send,
        E: Send + From<BackendError>,
    {
        self.transact_at(decide).await.map(|(t, _)| t)
    }

    /// [`Db::transact`], also returning the generation right after the plan was applied.
    pub async fn transact_at<T, E>(
        &self,
        mut decide: impl FnMut(&mut Tx<'_>) -> Result<T, E> + Send,
    ) -> Result<(T, u64), E>
    where
        T: Send,
        E: Send + From<BackendError>,
    {
        let mut out: Option<Result<T, E>> = None;
        let mut run = |tx: &mut Tx<'_>| {
            let r = decide(tx);
            let commit = r.is_ok();
            out = Some(r);
            commit
        };
        let executed = self.backend.execute(&self.tables, &mut run).await?;
        if executed.current {
            // As good as a read's sync for the rest of this client connection
            // (`etcd-reads = "connection"`): its first read then needs no barrier.
            crate::connection::mark_synced();
        }
        match out {
            Some(r) => r.map(|t| (t, executed.generation)),
            None => Err(BackendError("the decision never ran".to_string()).into()),
        }
    }

    /// Brings the tables up to date for a read call, as the backend's [`ReadMode`] asks:
    /// once it returns `Ok`, the tables show everything acknowledged anywhere before the
    /// call (linearizable), or before the call's connection made its first read
    /// (`connection_synced`: a sync already ran for an earlier call on this client
    /// connection), or they are as the watch left them (cached). A backend that only
    /// this process writes never waits. Answers whether it synced now (the caller then
    /// remembers that for its connection).
    pub async fn sync(&self, connection_synced: bool) -> Result<bool, BackendError> {
        if !self.backend.is_shared() {
            return Ok(false);
        }
        let from_cache = match self.backend.read_mode() {
            ReadMode::Linearizable => false,
            ReadMode::Connection => connection_synced && self.backend.cache_fresh(),
            ReadMode::Cached => self.backend.cache_fresh(),
        };
        if from_cache {
            return Ok(false);
        }
        self.backend.sync(&self.tables).await?;
        Ok(true)
    }

    /// [`Db::sync`], even when reads are served from the cache.
    pub async fn sync_now(&self) -> Result<(), BackendError> {
        if !self.backend.is_shared() {
            return Ok(());
        }
        self.backend.sync(&self.tables).await
    }

    /// Whether other processes write to the store too.
    pub fn is_shared(&self) -> bool {
        self.backend.is_shared()
    }

    /// Sets the task limits and the legacy event queue's byte budget (from the options;
    /// the defaults apply until then).
    pub fn configure(&self, task_limits: &quota::TaskLimits, legacy_queue_bytes: usize) {
        let mut t = self.tables.write();
        t.ledger.limits = task_limits.clone();
        t.legacy.max_bytes = legacy_queue_bytes;
    }

    /// Whether changes are committed to a store.
    pub fn is_durable(&self) -> bool {
        self.backend.is_durable()
    }

    /// Where the data is, for the start-up banner.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The backend (for the garbage collector's leadership and plan sizes).
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Waits until every change up to `seq` is durable (at once when ephemeral).
    pub async fn wait_durable(&self, seq: u64) -> Result<(), String> {
        self.backend.wait_durable(seq).await.map_err(|e| e.0)
    }

    /// Commits what is left to the store and stops its writer (at shutdown).
    pub fn close(&self) {
        self.backend.close();
    }

    /// Makes event waiters answer at once (at shutdown).
    pub fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// A receiver that sees every new generation (and every [`Db::wake_all`]).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tables.read().notify.subscribe()
    }

    /// Wakes every event waiter without a change, so that they re-check their session.
    pub fn wake_all(&self) {
        self.tables.read().notify.send_modify(|_| ());
    }

    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, Tables> {
        self.tables.read()
    }

    /// The tables' [`Marks`], read without their lock (see [`Tables::mark`]).
    pub fn marks(&self) -> &Marks {
        &self.marks
    }

    /// Write access for what lives in this process's memory only and is never stored
    /// (legacy event subscriptions). Rows change only through [`Db::transact`].
    pub fn memory_mut(&self) -> parking_lot::RwLockWriteGuard<'_, Tables> {
        self.tables.write()
    }
}

/// Errors of the database layer; the API layer maps them to XAPI errors.
#[derive(Debug, PartialEq, Eq)]
pub enum DbError {
    /// No row with that ref in that table (xapi: `HANDLE_INVALID [table; ref]`).
    MissingRow(&'static str, String),
    /// A map key that already exists (xapi: `MAP_DUPLICATE_KEY [table; field; ref; key]`).
    DuplicateKey(&'static str, &'static str, String, String),
    /// An empty map key (xapi: `Db_exn.Empty_key_in_map`, sent as `INTERNAL_ERROR`).
    EmptyKey,
    /// A task field (or the whole task, `field == "task"`) over its byte limit.
    TooLarge {
        field: &'static str,
        bytes: usize,
        limit: usize,
    },
    /// The user has as many unfinished tasks as they may.
    TooManyPending,
    /// The user's tasks would hold more bytes than they may.
    UserQuota {
        user: String,
        bytes: usize,
        limit: usize,
    },
}

/// The user a task of `session` counts for: the session's, or the departed session's.
fn owner<'a>(
    sessions: &'a FxHashMap<String, SessionRow>,
    ledger: &quota::Ledger,
    session: &str,
) -> Option<Cow<'a, str>> {
    match sessions.get(session) {
        Some(s) => Some(Cow::Borrowed(s.auth_user_name.as_str())),
        None => ledger
            .departed_user(session)
            .map(|u| Cow::Owned(u.to_string())),
    }
}

impl Tables {
    /// Tables with the pool and host singletons and, if given, what a store held.
    fn empty(
        pool_ref: String,
        pool: PoolRow,
        host_ref: String,
        host: HostRow,
        loaded: Option<Loaded>,
    ) -> Tables {
        let pool = PoolRow {
            master: host_ref.clone(),
            ..pool
        };
        let durable = loaded.is_some();
        let mut tables = Tables {
            tasks: FxHashMap::default(),
            task_by_uuid: FxHashMap::default(),
            sessions: FxHashMap::default(),
            session_by_uuid: FxHashMap::default(),
            pool_ref,
            pool,
            host_ref,
            host,
            pool_stamp: Stamp::default(),
            host_stamp: Stamp::default(),
            generation: 1,
            unfinished_tasks: 0,
            changes: ChangeIndex::default(),
            ledger: quota::Ledger::default(),
            legacy: LegacyQueue::default(),
            notify: tokio::sync::watch::channel(1).0,
            dirty: None,
            seq: 0,
            marks: Arc::default(),
        };
        let restored_singletons = tables.load(loaded.unwrap_or_default());
        if !restored_singletons {
            // The singletons are created after generation 1, so that an `event.from`
            // from the empty token (generation 0) sees them as `add`.
            for class in ["pool", "host"] {
                let g = tables.bump();
                let stamp = Stamp {
                    created: g,
                    modified: g,
                };
                let r = if class == "pool" {
                    tables.pool_stamp = stamp;
                    tables.pool_ref.clone()
                } else {
                    tables.host_stamp = stamp;
                    tables.host_ref.clone()
                };
                tables.changes.touch(class, r.into(), None, g);
            }
        }
        if durable {
            tables.dirty = Some(Dirty {
                // A new store needs the singletons' stamps written once.
                singletons: !restored_singletons,
                ..Dirty::default()
            });
        }
        tables
    }

    /// Fills empty tables with what a store held, rebuilding the indices (uuids, the
    /// change index, the unfinished count, `session.tasks`). The stored rows are one
    /// committed snapshot, so `subtasks` is already consistent. Returns whether the store
    /// held the pool's and host's stamps (a new store does not).
    fn load(&mut self, loaded: Loaded) -> bool {
        let mut generation = loaded.generation.max(1);
        let singletons = loaded.pool_stamp.created > 0 && loaded.host_stamp.created > 0;
        if singletons {
            self.pool_stamp = loaded.pool_stamp;
            self.host_stamp = loaded.host_stamp;
            generation = generation
                .max(loaded.pool_stamp.modified)
                .max(loaded.host_stamp.modified);
            let (p, h) = (self.pool_ref.clone(), self.host_ref.clone());
            self.changes
                .touch("pool", p.into(), None, loaded.pool_stamp.modified);
            self.changes
                .touch("host", h.into(), None, loaded.host_stamp.modified);
        }
        for (r, task) in loaded.tasks {
            generation = generation.max(task.stamp.modified);
            let r: Arc<str> = r.into();
            self.changes
                .touch("task", r.clone(), None, task.stamp.modified);
            self.unfinished_tasks += usize::from(!task.status.is_completed());
            self.task_by_uuid.insert(task.uuid, r.clone());
            self.tasks.insert(r, Box::new(task));
        }
        for (r, session) in loaded.sessions {
            self.session_by_uuid.insert(session.uuid.clone(), r.clone());
            self.sessions.insert(r, session);
        }
        for (r, task) in &self.tasks {
            if let Some(s) = self.sessions.get_mut(task.session.as_str()) {
                s.tasks.insert(r.clone());
                self.ledger.record(&s.auth_user_name, None, Some(task));
            }
        }
        for s in self.sessions.values() {
            self.ledger.session_added(&s.auth_user_name);
        }
        for (g, t) in loaded.tombstones {
            if t.class == "task" {
                generation = generation.max(g);
                self.changes
                    .delete("task", t.r.as_str().into(), 0, t.created, g);
            }
        }
        self.generation = generation;
        self.notify.send_replace(generation);
        singletons
    }

    /// The shared key of task `r`.
    fn task_key(&self, r: &str) -> Option<Arc<str>> {
        self.tasks.get_key_value(r).map(|(k, _)| k.clone())
    }

    /// Marks task `r` for the next commit.
    fn mark_task(&mut self, r: &str) {
        if let Some(d) = &mut self.dirty {
            if !d.tasks.contains(r) {
                d.tasks.insert(r.to_string());
            }
            self.seq += 1;
        }
    }

    /// Marks session `r` for the next commit.
    fn mark_session(&mut self, r: &str) {
        if let Some(d) = &mut self.dirty {
            if !d.sessions.contains(r) {
                d.sessions.insert(r.to_string());
            }
            self.seq += 1;
        }
    }

    /// Marks the pool's and host's stamps for the next commit.
    fn mark_singletons(&mut self) {
        if let Some(d) = &mut self.dirty {
            d.singletons = true;
            self.seq += 1;
        }
    }

    /// The sequence number of the last change (see [`journal`]).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Advances the database generation and returns the new value.
    fn bump(&mut self) -> u64 {
        self.generation += 1;
        self.marks.moved();
        self.notify.send_replace(self.generation);
        self.generation
    }

    /// The [`Marks`] now (under the lock, so they agree with what the caller reads).
    pub fn mark(&self) -> Mark {
        Mark {
            state: self.marks.state.load(Ordering::Acquire),
            gone: self.marks.gone.load(Ordering::Acquire),
        }
    }

    /// A session was added (`gone` false) or removed: moves the [`Marks`].
    fn sessions_changed(&mut self, gone: bool) {
        if gone {
            self.marks.session_gone();
        } else {
            self.marks.moved();
        }
    }

    /// The change index, for `event.from`.
    pub fn changes_since(&self, generation: u64) -> impl Iterator<Item = (u64, Change<'_>)> {
        self.changes.since(generation)
    }

    /// The generations of an object (None for unknown objects and for sessions, which
    /// generate no events).
    pub fn stamp(&self, class: &str, r: &str) -> Option<Stamp> {
        match class {
            "task" => self.tasks.get(r).map(|t| t.stamp),
            "pool" => (r == self.pool_ref).then_some(self.pool_stamp),
            "host" => (r == self.host_ref).then_some(self.host_stamp),
            _ => None,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    // ----- generic, class-driven access (used by the implicit messages) -----

    /// The row of `class` with ref `r`.
    pub fn row(&self, class: &str, r: &str) -> Option<Row<'_>> {
        match class {
            "task" => self.tasks.get(r).map(|t| Row::Task(t)),
            "session" => self.sessions.get(r).map(Row::Session),
            "pool" => (r == self.pool_ref).then_some(Row::Pool(&self.pool)),
            "host" => (r == self.host_ref).then_some(Row::Host(&self.host)),
            _ => None,
        }
    }

    /// The ref of the object of `class` with this uuid.
    pub fn ref_by_uuid(&self, class: &str, uuid: &str) -> Option<&str> {
        match class {
            "task" => {
                let parsed = uuid::Uuid::parse_str(uuid).ok()?;
                // parse_str also accepts upper case, braces and the simple form; xapi
                // compares strings, so only the canonical spelling matches.
                let mut buf = uuid::Uuid::encode_buffer();
                if parsed.hyphenated().encode_lower(&mut buf) != uuid {
                    return None;
                }
                self.task_by_uuid.get(&parsed).map(|r| &**r)
            }
            "session" => self.session_by_uuid.get(uuid).map(String::as_str),
            "pool" => (uuid == self.pool.uuid).then_some(self.pool_ref.as_str()),
            "host" => (uuid == self.host.uuid).then_some(self.host_ref.as_str()),
            _ => None,
        }
    }

    /// Every object of `class`, in no particular order (xapi's are unordered too).
    pub fn rows(&self, class: &str) -> Vec<(&str, Row<'_>)> {
        match class {
            "task" => self
                .tasks
                .iter()
                .map(|(r, t)| (&**r, Row::Task(t)))
                .collect(),
            "session" => self
                .sessions
                .iter()
                .map(|(r, s)| (r.as_str(), Row::Session(s)))
                .collect(),
            "pool" => vec![(self.pool_ref.as_str(), Row::Pool(&self.pool))],
            "host" => vec![(self.host_ref.as_str(), Row::Host(&self.host))],
            _ => Vec::new(),
        }
    }

    /// The refs of every object of `class`, for scans that release the lock between
    /// chunks of rows (the tasks' refs are shared, so this copies pointers).
    pub fn refs(&self, class: &str) -> Vec<Arc<str>> {
        match class {
            "task" => self.tasks.keys().cloned().collect(),
            "session" => self.sessions.keys().map(|r| r.as_str().into()).collect(),
            "pool" => vec![self.pool_ref.as_str().into()],
            "host" => vec![self.host_ref.as_str().into()],
            _ => Vec::new(),
        }
    }

    pub fn count(&self, class: &str) -> usize {
        match class {
            "task" => self.tasks.len(),
            "session" => self.sessions.len(),
            "pool" | "host" => 1,
            _ => 0,
        }
    }

    // ----- tasks -----

    /// Tasks that are pending or cancelling.
    pub fn unfinished_tasks(&self) -> usize {
        self.unfinished_tasks
    }

    pub fn task(&self, r: &str) -> Option<&TaskRow> {
        self.tasks.get(r).map(|t| &**t)
    }

    /// Task `r` with its shared key (for a [`Read::Task`]).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn task_entry(&self, r: &str) -> Option<(Arc<str>, &TaskRow)> {
        self.tasks.get_key_value(r).map(|(k, t)| (k.clone(), &**t))
    }

    /// Whether a new task like `task` fits the task limits and its user's quotas
    /// (checked before [`Tables::insert_task`], which cannot fail).
    pub fn check_new_task(&self, task: &TaskRow) -> Result<(), DbError> {
        quota::check_task(&self.ledger.limits, task)?;
        match owner(&self.sessions, &self.ledger, &task.session) {
            Some(user) => self.ledger.check_growth(&user, None, task),
            None => Ok(()),
        }
    }

    /// What `user` holds (unfinished tasks, task bytes, sessions).
    pub fn usage(&self, user: &str) -> quota::Usage {
        self.ledger.usage(user)
    }

    // ----- sessions -----

    pub fn session(&self, r: &str) -> Option<&SessionRow> {
        self.sessions.get(r)
    }

    /// A session's legacy event subscription, which lives in memory only (changing it
    /// is not committed).
    pub fn legacy_subscription_mut(&mut self, r: &str) -> Option<&mut Option<LegacySubscription>> {
        self.sessions.get_mut(r).map(|s| &mut s.legacy_events)
    }

    /// Sessions of one user name, oldest `last_active` first.
    pub fn sessions_of_user(&self, name: &str) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.auth_user_name == name)
            .map(|(r, s)| (r.clone(), s.last_active))
            .collect();
        out.sort_by_key(|(_, t)| *t);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Db {
        Db::new(new_ref(), PoolRow::default(), new_ref(), HostRow::default())
    }

    /// Runs a decision on the tables and applies its plan, as the local backend does.
    fn decide(t: &mut Tables, f: impl FnOnce(&mut Tx<'_>)) {
        let mut tx = Tx::new(t, false);
        f(&mut tx);
        let plan = tx.into_plan();
        t.apply(plan.writes);
    }

    fn insert(t: &mut Tables, r: &str, task: TaskRow) {
        decide(t, |tx| tx.insert_task(r.to_string(), task));
    }

    fn update(t: &mut Tables, r: &str, f: impl FnOnce(&mut TaskRow)) {
        decide(t, |tx| {
            let mut row = tx.task(r).unwrap().clone();
            f(&mut row);
            tx.update_task(r, row).unwrap();
        });
    }

    fn delete(t: &mut Tables, r: &str) {
        decide(t, |tx| tx.delete_task(r));
    }

    #[test]
    fn subtasks_follow_subtask_of_on_insert_and_delete() {
        let db = db();
        let mut t = db.memory_mut();
        let parent = new_ref();
        insert(&mut t, &parent, TaskRow::new("p", "", NULL_REF, "h"));
        let child = new_ref();
        let mut c = TaskRow::new("c", "", NULL_REF, "h");
        c.subtask_of = parent.as_str().into();
        insert(&mut t, &child, c);
        assert_eq!(t.task(&parent).unwrap().subtasks, vec![child.clone()]);
        let gen_before = t.task(&parent).unwrap().stamp.modified;
        delete(&mut t, &child);
        assert!(t.task(&parent).unwrap().subtasks.is_empty());
        assert!(t.task(&parent).unwrap().stamp.modified > gen_before);
    }

    /// What `event.from` waiters read without the lock: `state` moves with every new
    /// generation and every session added or removed (not with a session's own update,
    /// nor an identical write), and `gone` only with a removal, so that a waiter that saw
    /// its session at `gone` knows it still exists as long as `gone` has not moved.
    #[test]
    fn marks_move_with_what_an_event_answer_depends_on() {
        let db = db();
        let session = |user: &str| SessionRow {
            auth_user_name: user.to_string(),
            ..Default::default()
        };
        let mut t = db.memory_mut();
        let m0 = t.mark();
        assert_eq!(db.marks().state_if_none_gone_since(m0.gone), Some(m0.state));
        let s = new_ref();
        decide(&mut t, |tx| tx.put_session(s.clone(), session("alice")));
        let m1 = t.mark();
        assert!(
            m1.state != m0.state && m1.gone == m0.gone,
            "a login: {m0:?} {m1:?}"
        );
        decide(&mut t, |tx| tx.put_session(s.clone(), session("alice")));
        assert_eq!(t.mark(), m1, "a session's own update changes no answer");
        let r = new_ref();
        insert(&mut t, &r, TaskRow::new("x", "", NULL_REF, "h"));
        let m2 = t.mark();
        assert!(m2.state != m1.state && m2.gone == m1.gone);
        update(&mut t, &r, |task| task.progress = 0.0);
        assert_eq!(t.mark(), m2, "an identical write is no change");
        update(&mut t, &r, |task| task.progress = 0.5);
        let m3 = t.mark();
        assert!(m3.state != m2.state && m3.gone == m2.gone);
        assert_eq!(db.marks().state_if_none_gone_since(m0.gone), Some(m3.state));
        decide(&mut t, |tx| tx.delete_session(&s));
        let m4 = t.mark();
        assert!(
            m4.state != m3.state && m4.gone != m3.gone,
            "a logout: {m3:?} {m4:?}"
        );
        assert_eq!(db.marks().state_if_none_gone_since(m3.gone), None);
        assert_eq!(db.marks().state_if_none_gone_since(m4.gone), Some(m4.state));
        // A shared backend's reload: the new tables take the marks the Db reads, moved.
        let mut fresh = Tables::empty(
            new_ref(),
            PoolRow::default(),
            new_ref(),
            HostRow::default(),
            None,
        );
        fresh.take_memory_of(&mut t);
        *t = fresh;
        assert_eq!(db.marks().state_if_none_gone_since(m4.gone), None);
        let m5 = t.mark();
        assert_eq!(db.marks().state_if_none_gone_since(m5.gone), Some(m5.state));
    }

    #[test]
    fn identical_write_does_not_bump_generation() {
        let db = db();
        let mut t = db.memory_mut();
        let r = new_ref();
        insert(&mut t, &r, TaskRow::new("x", "", NULL_REF, "h"));
        let g = t.generation();
        update(&mut t, &r, |task| task.progress = 0.0);
        assert_eq!(t.generation(), g);
        update(&mut t, &r, |task| task.progress = 0.5);
        assert_eq!(t.generation(), g + 1);
        assert_eq!(t.task(&r).unwrap().stamp.modified, g + 1);
    }

    #[test]
    fn unfinished_count_follows_status_changes() {
        let db = db();
        let mut t = db.memory_mut();
        let a = new_ref();
        insert(&mut t, &a, TaskRow::new("a", "", NULL_REF, "h"));
        let b = new_ref();
        insert(&mut t, &b, TaskRow::new("b", "", NULL_REF, "h"));
        assert_eq!(t.unfinished_tasks(), 2);
        update(&mut t, &a, |row| row.status = TaskStatus::Success);
        update(&mut t, &a, |row| row.status = TaskStatus::Failure);
        assert_eq!(t.unfinished_tasks(), 1);
        update(&mut t, &a, |row| row.status = TaskStatus::Cancelling);
        assert_eq!(t.unfinished_tasks(), 2);
        delete(&mut t, &b);
        assert_eq!(t.unfinished_tasks(), 1);
    }

    #[test]
    fn uuid_index_follows_rows() {
        let db = db();
        let mut t = db.memory_mut();
        let r = new_ref();
        let task = TaskRow::new("x", "", NULL_REF, "h");
        let uuid = task.uuid.to_string();
        insert(&mut t, &r, task);
        assert_eq!(t.ref_by_uuid("task", &uuid), Some(r.as_str()));
        // Only the exact spelling (xapi compares strings): not upper case, not braces.
        assert_eq!(t.ref_by_uuid("task", &uuid.to_uppercase()), None);
        assert_eq!(t.ref_by_uuid("task", &format!("{{{uuid}}}")), None);
        assert_eq!(t.ref_by_uuid("task", "not-a-uuid"), None);
        delete(&mut t, &r);
        assert_eq!(t.ref_by_uuid("task", &uuid), None);
    }

    #[test]
    fn a_decision_reads_are_recorded_only_when_tracked() {
        let db = db();
        let mut t = db.memory_mut();
        let r = new_ref();
        insert(&mut t, &r, TaskRow::new("x", "", NULL_REF, "h"));
        let stamp = t.task(&r).unwrap().stamp;
        let mut tx = Tx::new(&t, true);
        assert!(tx.task(&r).is_some());
        assert!(tx.task("OpaqueRef:none").is_none());
        assert!(tx.session_fixed("OpaqueRef:s").is_none());
        let plan = tx.into_plan();
        assert_eq!(
            plan.reads,
            vec![
                Read::Task(r.as_str().into(), stamp),
                Read::NoTask("OpaqueRef:none".into()),
                Read::NoSession("OpaqueRef:s".into()),
            ]
        );
        let mut tx = Tx::new(&t, false);
        tx.task(&r);
        assert!(tx.into_plan().reads.is_empty());
    }
}
