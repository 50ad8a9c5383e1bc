//! Group commit: how changes to the in-memory tables reach the durable store, and how a
//! call learns that its change is durable.
//!
//! Every write to the tables marks the changed rows dirty and advances a sequence number
//! (`Tables::seq`), inside the same critical section as the change itself. One writer
//! thread loops: it takes the whole dirty set under the lock (with the sequence number it
//! covers), copies those rows, releases the lock, commits them to the store in one
//! transaction with fsync, and publishes the sequence number as durable.
//!
//! Why a dirty set rather than a queue of mutations: it is bounded by the number of
//! objects (a client hammering `set_progress` on one task dirties one row, written once
//! per commit), and because the writer copies rows as they are *now*, concurrent writes
//! can never reach the disk in the wrong order. Because commits take everything dirty at
//! once, concurrent calls share one fsync: the more load, the bigger the batch.
//!
//! A write ([`super::Db::transact`]) applies its plan and notes the sequence number it
//! reached; it returns only once the store's durable sequence number covers it (see
//! [`super::backend::Local`]). Reads wait for nothing.
//!
//! When a commit fails (a full or failing disk), the writer keeps the batch and retries
//! it, with a growing pause (up to 2 s), until it succeeds; each retry reopens the store
//! file first (`store.rs`: redb refuses every write after an I/O error until then). Rows
//! changed meanwhile stay dirty and go in the next batch, so once the disk is back, the
//! whole state is committed without a restart. Calls waiting meanwhile are answered with
//! the commit's error when their wait times out; nothing is acknowledged before it is
//! durable.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::store::{Batch, Store, Tombstone};
use super::{Tables, TaskRow};

/// Longest a call waits for its change to become durable before it is answered with an
/// error (the disk is failing or stalled), unless configured (`durable-timeout`).
pub const DURABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest pause between two attempts at a failing commit.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Rows changed since the last commit.
#[derive(Debug, Default)]
pub(super) struct Dirty {
    pub tasks: HashSet<String>,
    pub sessions: HashSet<String>,
    pub tombstones: Vec<(u64, Tombstone)>,
    pub singletons: bool,
}

impl Dirty {
    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.sessions.is_empty()
            && self.tombstones.is_empty()
            && !self.singletons
    }
}

/// The writer thread and the durable sequence number it publishes.
pub(super) struct Journal {
    wake: SyncSender<()>,
    durable: tokio::sync::watch::Receiver<u64>,
    /// The last commit error, while commits are failing.
    failure: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Longest a call waits for durability.
    timeout: Duration,
}

impl Journal {
    pub fn start(tables: Arc<RwLock<Tables>>, store: Store, timeout: Duration) -> Journal {
        let (wake, wake_rx) = sync_channel(1);
        let (durable_tx, durable) = tokio::sync::watch::channel(0);
        let failure = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            tables,
            store,
            durable: durable_tx,
            failure: failure.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(wake_rx))
            .expect("cannot start the store writer thread");
        Journal {
            wake,
            durable,
            failure,
            stop,
            thread: Mutex::new(Some(thread)),
            timeout,
        }
    }

    /// Tells the writer there is something to commit (never blocks: if a wake-up is
    /// already pending, the writer will see this change with it).
    pub fn wake(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }

    /// Waits until everything up to `seq` is durable.
    pub async fn wait(&self, seq: u64) -> Result<(), String> {
        let mut rx = self.durable.clone();
        if *rx.borrow() >= seq {
            return Ok(());
        }
        match tokio::time::timeout(self.timeout, rx.wait_for(|d| *d >= seq)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("the store is closed".to_string()),
            Err(_) => Err(self
                .failure
                .lock()
                .clone()
                .unwrap_or_else(|| "timed out waiting for the disk".to_string())),
        }
    }

    /// The sequence number known durable.
    pub fn durable(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Commits what is left and stops the writer.
    pub fn close(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer {
    tables: Arc<RwLock<Tables>>,
    store: Store,
    durable: tokio::sync::watch::Sender<u64>,
    failure: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, wake: Receiver<()>) {
        loop {
            let woken = wake.recv().is_ok();
            self.flush();
            if !woken || self.stop.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Takes the dirty rows and commits them; retries a failing commit (the calls waiting
    /// for it time out with the error meanwhile) until it succeeds or shutdown gives up.
    fn flush(&mut self) {
        let (batch, seq) = {
            let mut t = self.tables.write();
            let seq = t.seq;
            let Some(dirty) = t.dirty.as_mut() else {
                return;
            };
            if dirty.is_empty() {
                drop(t);
                self.durable.send_if_modified(|d| {
                    let newer = seq > *d;
                    *d = (*d).max(seq);
                    newer
                });
                return;
            }
            let dirty = std::mem::take(dirty);
            let batch = Batch {
                tasks: dirty
                    .tasks
                    .into_iter()
                    .map(|r| {
                        let row = t.tasks.get(r.as_str()).map(|t| TaskRow::clone(t));
                        (r, row)
                    })
                    .collect(),
                sessions: dirty
                    .sessions
                    .into_iter()
                    .map(|r| {
                        let row = t.sessions.get(&r).cloned();
                        (r, row)
                    })
                    .collect(),
                tombstones: dirty.tombstones,
                generation: t.generation,
                singletons: dirty.singletons.then_some((t.pool_stamp, t.host_stamp)),
            };
            (batch, seq)
        };
        let mut attempt = 0u32;
        loop {
            match self.store.commit(&batch) {
                Ok(()) => break,
                Err(e) => {
                    attempt += 1;
                    // Every attempt at first, then one in 30 (a minute at the longest pause).
                    if attempt <= 3 || attempt.is_multiple_of(30) {
                        tracing::error!("store commit failed (attempt {attempt}): {e}");
                    }
                    *self.failure.lock() = Some(format!("the store cannot commit: {e}"));
                    if self.stop.load(Ordering::SeqCst) && attempt >= 3 {
                        tracing::error!("giving up: the last changes are not on disk");
                        return;
                    }
                    std::thread::sleep(
                        (Duration::from_millis(200) * attempt.min(10)).min(MAX_RETRY_PAUSE),
                    );
                }
            }
        }
        if attempt > 0 {
            tracing::warn!(
                "store commit succeeded after {attempt} failed attempts: writes are durable again"
            );
        }
        *self.failure.lock() = None;
        self.durable.send_replace(seq);
    }
}
