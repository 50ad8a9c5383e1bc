//! The store seam: where committed writes go, and what a caller may rely on.
//!
//! The tables in memory ([`super::Tables`]) are the read path for every backend: rows,
//! indices, the change index behind `event.from` and the channel that wakes event waiters.
//! A backend decides how a write becomes durable and how the tables learn of it. Every
//! write is a decision ([`super::plan::Tx`]) that leaves a [`Plan`]; [`Backend::execute`]
//! commits it.
//!
//! # The contract
//!
//! Every backend gives these guarantees; the conformance suite (`tests/store.rs`) checks
//! them against each one.
//!
//! 1. **Durable when answered.** When `execute` returns `Ok`, the plan's writes are durable
//!    (redb: fsync'd; etcd: committed by a quorum) *and* visible in this process's tables.
//!    A caller that then reads sees its own writes.
//! 2. **All or nothing, in one order.** A plan's writes become visible together, in one
//!    critical section of the tables' lock; plans become visible in the order they
//!    committed, the same order on every process sharing the store, and a restart loads
//!    exactly the state of some prefix of that order that includes every acknowledged plan.
//! 3. **Decided on current state.** A plan commits only if everything its decision read
//!    ([`super::plan::Read`]) is still as it was: the decision is linearizable. When it is
//!    not, the backend runs the decision again on newer state (the decision is a pure
//!    function of its reads: it may run more than once, and only its last run counts).
//!    A refusal (the decision returned an error) is confirmed the same way: it is answered
//!    only if the state it was decided on was current.
//! 4. **Generations.** Every change visible in the tables carries a generation greater than
//!    every earlier one (a backend shared by several processes uses one cluster-wide
//!    sequence, so an `event.from` token from one process is valid on another); the tables'
//!    generation never goes backwards, including across a restart.
//! 5. **Failure is reported, never hidden.** `Err` means the plan did not commit, or — only
//!    a remote store, only when it stayed unreachable for the whole retry budget — that its
//!    outcome cannot be known; the message says which.
//!
//! Reads need no backend call, except that a backend whose tables can lag behind writes
//! made elsewhere provides [`Backend::sync`]: once it returns, the tables show everything
//! acknowledged anywhere before it was called.

use futures_util::future::BoxFuture;
use parking_lot::RwLock;

use super::journal::Journal;
use super::plan::{Plan, Tx};
use super::{Tables, WriteSet};

/// Why a backend could not commit (or, for a remote store, could not be reached): a
/// complete sentence for the caller's error, saying whether the change was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError(pub String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

/// A decision: reads through the [`Tx`], buffers its writes there, and says whether to
/// commit them (`true`) or refuse (`false`: its error is the caller's to keep).
pub type Decide<'d> = dyn for<'t> FnMut(&mut Tx<'t>) -> bool + Send + 'd;

/// The outcome of [`Backend::execute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// Whether the last run of the decision committed (else it refused).
    pub committed: bool,
    /// The tables' generation right after the plan was applied (0 for a refusal).
    pub generation: u64,
    /// A shared store's: the call's own change committed at a revision newer than
    /// anything acknowledged anywhere before the call arrived (its transaction was sent
    /// after that), and the tables hold that revision. So they show all of it, as a sync
    /// would have made them: the call's client connection counts as synced
    /// ([`crate::connection`]). False for a plan that wrote nothing (confirmed by
    /// compares alone, it proves only what it read) and for a store no other process
    /// writes; also false for a refusal, except in a combined batch (`combine.rs`), whose
    /// members share the batch's answer: one that refused joined the batch before it was
    /// sent, so the batch's committed revision proves its connection current just the
    /// same.
    pub current: bool,
}

/// When a shared backend's reads first catch up with the store ([`Backend::sync`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Every read call syncs first: read-your-writes for any client, always.
    Linearizable,
    /// The first read call on each client connection syncs; later ones on that
    /// connection read the tables as they are while [`Backend::cache_fresh`]. A client
    /// that moves to another front-end (a new connection) reads its writes there.
    Connection,
    /// No read syncs while the watch is up: stale by the watch's lag, no read-your-writes
    /// across front-ends.
    Cached,
}

/// Whether this process may run the garbage collector now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// Only one process uses the store: always.
    Sole,
    /// This process leads; its plans must carry `Read::Leader(token)` (a fence: a leader
    /// that lost its leadership meanwhile cannot commit them).
    Leader(u64),
    /// Another process leads.
    Follower,
}

/// A store backend. See the module documentation for the contract.
pub trait Backend: Send + Sync {
    /// Runs `decide` on current state and commits its plan (contract points 1–3, 5).
    fn execute<'a>(
        &'a self,
        tables: &'a RwLock<Tables>,
        decide: &'a mut Decide<'_>,
    ) -> BoxFuture<'a, Result<Executed, BackendError>>;

    /// Whether other processes write to the store too (then reads [`Backend::sync`] first).
    fn is_shared(&self) -> bool {
        false
    }

    /// When reads call [`Backend::sync`] first (a shared backend's option).
    fn read_mode(&self) -> ReadMode {
        ReadMode::Linearizable
    }

    /// Whether the tables are proven current recently enough to serve a read without a
    /// sync, where [`Backend::read_mode`] allows it (the watch is up and, for
    /// [`ReadMode::Connection`], a sync succeeded within the freshness bound).
    fn cache_fresh(&self) -> bool {
        false
    }

    /// Waits until the tables show every write acknowledged anywhere before this call.
    fn sync<'a>(&'a self, tables: &'a RwLock<Tables>) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Waits until the tables' state up to sequence number `seq` ([`Tables::seq`]) is
    /// durable. Backends whose tables only ever hold committed state return at once.
    fn wait_durable(&self, seq: u64) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Most writes one plan may carry (a remote store bounds transaction sizes).
    fn max_plan_writes(&self) -> usize;

    /// Whether this process runs the garbage collector now.
    fn gc_leadership(&self) -> Leadership;

    /// Unfinished `Async.` tasks whose front-end stopped before completing them, with that
    /// front-end's id (a shared backend; a local one never has any: its tasks stop with it).
    fn orphaned_tasks(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, BackendError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Whether anything survives a restart.
    fn is_durable(&self) -> bool;

    /// One line for the start-up banner: where the data is.
    fn describe(&self) -> String;

    /// Commits what is left and stops background work (at shutdown).
    fn close(&self);
}

/// The local backend: this process alone owns the data. Decisions run under the tables'
/// write lock and are applied at once (nothing can change between read and write, so
/// reads are not recorded); with a store, the changed rows reach redb by group commit
/// ([`super::journal`]) and a call waits for the fsync that covers its change.
pub struct Local {
    /// None: in memory only (`--ephemeral`, xapi's own behaviour).
    journal: Option<Journal>,
    describe: String,
}

impl Local {
    pub fn memory() -> Local {
        Local {
            journal: None,
            describe: "ephemeral: nothing is kept across a restart".to_string(),
        }
    }

    pub(super) fn durable(journal: Journal, describe: String) -> Local {
        Local {
            journal: Some(journal),
            describe,
        }
    }
}

impl Backend for Local {
    fn execute<'a>(
        &'a self,
        tables: &'a RwLock<Tables>,
        decide: &'a mut Decide<'_>,
    ) -> BoxFuture<'a, Result<Executed, BackendError>> {
        let (executed, seq) = {
            let mut t = tables.write();
            let mut tx = Tx::new(&t, false);
            let commit = decide(&mut tx);
            let plan: Plan = tx.into_plan();
            if !commit {
                (
                    Executed {
                        committed: false,
                        generation: 0,
                        current: false,
                    },
                    0,
                )
            } else {
                // Even a plan that writes nothing waits for the state it was decided on
                // to be durable (someone else's write it saw may still be in flight).
                let WriteSet { seq, generation } = t.apply(plan.writes);
                if let Some(j) = &self.journal
                    && seq > j.durable()
                {
                    j.wake();
                }
                (
                    Executed {
                        committed: true,
                        generation,
                        current: false,
                    },
                    seq,
                )
            }
        };
        Box::pin(async move {
            if let Some(j) = &self.journal
                && seq > 0
                && !deferred()
            {
                j.wait(seq).await.map_err(|e| {
                    BackendError(format!(
                        "the change was made but could not be made durable: {e}"
                    ))
                })?;
            }
            Ok(executed)
        })
    }

    fn sync<'a>(&'a self, _tables: &'a RwLock<Tables>) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }

    fn wait_durable(&self, seq: u64) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            match &self.journal {
                Some(j) if seq > 0 => j.wait(seq).await.map_err(BackendError),
                _ => Ok(()),
            }
        })
    }

    fn max_plan_writes(&self) -> usize {
        usize::MAX
    }

    fn gc_leadership(&self) -> Leadership {
        Leadership::Sole
    }

    fn is_durable(&self) -> bool {
        self.journal.is_some()
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn close(&self) {
        if let Some(j) = &self.journal {
            j.close();
        }
    }
}

tokio::task_local! {
    /// Set while running work whose writes are published by a later write of its own
    /// (see [`deferring_durability`]).
    static DEFERRED: ();
}

/// Runs `f` without waiting for the durability of its local writes: for work whose
/// outcome a later write publishes (an `Async.` call, whose task is completed afterwards).
/// Local writes reach the disk in order, so once that later write is durable, so is
/// everything before it; meanwhile the call's changes are visible, as xapi's are.
pub async fn deferring_durability<F: Future>(f: F) -> F::Output {
    DEFERRED.scope((), f).await
}

fn deferred() -> bool {
    DEFERRED.try_with(|_| ()).is_ok()
}
