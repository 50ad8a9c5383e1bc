//! A plan as one etcd transaction, and how its outcome is settled exactly.
//!
//! Compares: every read of the decision ([`Read`]) becomes a compare on its key; every key
//! the plan writes is compared too (with the version the cache holds), even where the
//! decision did not read it. So once a transaction has committed, sending it again can
//! only fail its compares: resending the *same* transaction is safe, and that is how an
//! ambiguous outcome (a timeout or transport error after the request left) is settled:
//! resend until a member answers; "succeeded" means committed (now), "compare failed"
//! means either the first send committed or someone else wrote first, and the id this
//! transaction put in `d/meta/last` tells which: the cache records the ids it sees for
//! transactions in flight. A late commit can never clobber newer state: it would fail its
//! compares like any stale write.
//!
//! A plan that writes nothing (a refusal, or an identical value) is sent as compares only:
//! it creates no revision and proves the state it was decided on is still current.

use std::collections::HashSet;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, DeleteOptions, Txn, TxnOp, TxnResponse};

use super::keys::{Keys, Tomb};
use super::{Inner, encode};
use crate::db::backend::{BackendError, Executed};
use crate::db::{NULL_REF, Plan, Read, Tables, TaskRow, Write};

/// A transaction ready to send: its compares, its operations and the put of its id in
/// `d/meta/last`, kept apart so that a group ([`super::group`]) can carry it nested.
pub struct Prepared {
    pub compares: Vec<Compare>,
    /// Its operations but the put of `d/meta/last`.
    pub ops: Vec<TxnOp>,
    last: Option<TxnOp>,
    /// The id put in `d/meta/last` (None: compares only).
    pub id: Option<String>,
    /// Its operations, as this front-end applies them to its cache itself once the
    /// transaction has committed right after the revision the cache holds
    /// ([`super::cache::apply_own`]).
    pub own: Vec<Op>,
}

impl Prepared {
    /// The transaction alone.
    pub fn txn(&self) -> Txn {
        let mut ops = self.ops.clone();
        ops.extend(self.last.clone());
        Txn::new().when(self.compares.clone()).and_then(ops)
    }
}

/// One operation of a transaction, as the cache reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
    /// Every link from this parent to its children (a range delete).
    DeleteLinksOf(String),
}

/// A transaction's operations, kept twice: for etcd, and for the cache.
#[derive(Default)]
struct Ops {
    txn: Vec<TxnOp>,
    own: Vec<Op>,
}

impl Ops {
    fn put(&mut self, key: String, value: impl Into<Vec<u8>>) {
        let value = value.into();
        self.txn.push(TxnOp::put(key.as_str(), value.clone(), None));
        self.own.push(Op::Put(key, value));
    }

    fn delete(&mut self, key: String) {
        self.txn.push(TxnOp::delete(key.as_str(), None));
        self.own.push(Op::Delete(key));
    }

    fn delete_links_of(&mut self, keys: &Keys, parent: &str) {
        let prefix = keys.links_of(parent);
        let range = Some(DeleteOptions::new().with_prefix());
        self.txn.push(TxnOp::delete(prefix, range));
        self.own.push(Op::DeleteLinksOf(parent.to_string()));
    }
}

/// How a sent transaction ended.
pub enum Outcome {
    /// Committed at this revision (for a compares-only transaction: confirmed, at the
    /// cluster's revision then).
    Done(u64),
    /// A compare failed: newer state exists, at or below this revision.
    Conflict(u64),
}

/// Compares, deduplicated (a decision may read a row twice).
struct Compares {
    seen: HashSet<(String, u8)>,
    list: Vec<Compare>,
}

impl Compares {
    fn add(&mut self, key: String, kind: u8, cmp: impl FnOnce(String) -> Compare) {
        if self.seen.insert((key.clone(), kind)) {
            self.list.push(cmp(key));
        }
    }

    fn task(&mut self, keys: &Keys, r: &str, created: u64, modified: u64) {
        let k = keys.task(r);
        self.add(k.clone(), 0, |k| {
            Compare::create_revision(k, CompareOp::Equal, created as i64)
        });
        // The cache's stamp is at least the key's mod revision (links and tombstones of
        // children move it too): unchanged means not modified after it.
        self.add(k, 1, |k| {
            Compare::mod_revision(k, CompareOp::Less, modified as i64 + 1)
        });
    }

    fn absent(&mut self, key: String) {
        self.add(key, 2, |k| Compare::version(k, CompareOp::Equal, 0));
    }

    fn present(&mut self, key: String) {
        self.add(key, 3, |k| Compare::version(k, CompareOp::Greater, 0));
    }

    fn at(&mut self, key: String, revision: u64) {
        self.add(key, 4, |k| {
            Compare::mod_revision(k, CompareOp::Equal, revision as i64)
        });
    }
}

pub(super) fn task_value(row: &TaskRow) -> Vec<u8> {
    let mut row = row.clone();
    // Derived: the links and the key's revisions hold them.
    row.subtasks.clear();
    row.stamp = Default::default();
    encode(&row)
}

/// Builds the transaction of `plan`, decided on `tables` (still under the same lock, so
/// the versions compared for written keys are the ones the decision saw).
pub fn prepare(
    keys: &Keys,
    node: &str,
    leader_key: Option<&[u8]>,
    tables: &Tables,
    plan: &Plan,
) -> Result<Prepared, BackendError> {
    let mut c = Compares {
        seen: HashSet::new(),
        list: Vec::new(),
    };
    for read in &plan.reads {
        match read {
            Read::Task(r, s) => c.task(keys, r, s.created, s.modified),
            Read::NoTask(r) => c.absent(keys.task(r)),
            Read::Session(r, rev) => c.at(keys.session(r), *rev),
            Read::SessionExists(r) => c.present(keys.session(r)),
            Read::NoSession(r) => c.absent(keys.session(r)),
            Read::SessionIdle(r) => {
                let prefix = keys.pending_of(r);
                c.add(prefix, 5, |k| {
                    Compare::version(k, CompareOp::Equal, 0).with_prefix()
                });
            }
            Read::User(_, rev) => c.at(keys.users(), *rev),
            Read::Leader(token) => {
                let key = leader_key.ok_or_else(|| {
                    BackendError("this front-end no longer leads the garbage collector".into())
                })?;
                let key = String::from_utf8_lossy(key).into_owned();
                c.add(key, 6, |k| {
                    Compare::create_revision(k, CompareOp::Equal, *token as i64)
                });
            }
        }
    }
    let mut ops = Ops::default();
    let current_task = |c: &mut Compares, r: &str| -> Option<TaskRow> {
        let t = tables.task(r)?;
        c.task(keys, r, t.stamp.created, t.stamp.modified);
        Some(t.clone())
    };
    for w in &plan.writes {
        match w {
            Write::InsertTask(r, row) => {
                c.absent(keys.task(r));
                ops.put(keys.task(r), task_value(row));
                let parent = row.subtask_of.as_str();
                if parent != NULL_REF && tables.task(parent).is_some() {
                    current_task(&mut c, parent);
                    ops.put(keys.link(parent, r), "");
                }
                if !row.status.is_completed() {
                    ops.put(keys.pending(&row.session, r), "");
                }
            }
            Write::Claim(r) => ops.put(keys.async_task(r), node),
            Write::UpdateTask {
                r,
                row,
                was_unfinished,
            } => {
                current_task(&mut c, r)
                    .ok_or_else(|| BackendError(format!("task {r} is not in the cache")))?;
                ops.put(keys.task(r), task_value(row));
                let unfinished = !row.status.is_completed();
                if *was_unfinished && !unfinished {
                    ops.delete(keys.pending(&row.session, r));
                    ops.delete(keys.async_task(r));
                } else if !*was_unfinished && unfinished {
                    ops.put(keys.pending(&row.session, r), "");
                }
            }
            Write::DeleteTask {
                r,
                parent,
                session,
                unfinished,
                created,
            } => {
                current_task(&mut c, r)
                    .ok_or_else(|| BackendError(format!("task {r} is not in the cache")))?;
                ops.delete(keys.task(r));
                ops.delete_links_of(keys, r);
                if parent != NULL_REF {
                    ops.delete(keys.link(parent, r));
                }
                if *unfinished {
                    ops.delete(keys.pending(session, r));
                    ops.delete(keys.async_task(r));
                }
                let tomb = Tomb {
                    class: "task".into(),
                    created: *created,
                    parent: parent.clone(),
                };
                ops.put(keys.tomb(r), encode(&tomb));
            }
            Write::PutSession(r, row) => {
                match tables.session(r) {
                    Some(s) => c.at(keys.session(r), s.revision),
                    None => c.absent(keys.session(r)),
                }
                ops.put(keys.session(r), encode(&**row));
            }
            Write::DeleteSession(r) => {
                c.present(keys.session(r));
                ops.delete(keys.session(r));
            }
            Write::Touch(class, r) => match *class {
                "task" => {
                    let row = current_task(&mut c, r)
                        .ok_or_else(|| BackendError(format!("task {r} is not in the cache")))?;
                    ops.put(keys.task(r), task_value(&row));
                }
                "pool" => {
                    c.present(keys.pool());
                    let v = super::keys::Pool {
                        r: tables.pool_ref.clone(),
                        row: tables.pool.clone(),
                    };
                    ops.put(keys.pool(), encode(&v));
                }
                _ => {
                    c.present(keys.host());
                    let v = super::keys::Host {
                        r: tables.host_ref.clone(),
                        row: tables.host.clone(),
                    };
                    ops.put(keys.host(), encode(&v));
                }
            },
        }
    }
    let (id, last) = if ops.txn.is_empty() {
        (None, None)
    } else {
        let id = uuid::Uuid::new_v4().to_string();
        ops.own.push(Op::Put(keys.last(), id.clone().into_bytes()));
        let last = TxnOp::put(keys.last(), id.as_str(), None);
        (Some(id), Some(last))
    };
    Ok(Prepared {
        compares: c.list,
        ops: ops.txn,
        last,
        id,
        own: ops.own,
    })
}

/// How sending a transaction until a member gives a definite answer ended.
pub enum Sent {
    /// A member answered; `true`: an earlier send may have reached the cluster.
    Answered(TxnResponse, bool),
    /// A member refused the request itself (not a transport error), with why; `true` as
    /// above; and whether it refused the sender's access (credentials, permissions:
    /// [`super::conn::access_refused`]), which no other request would get past either.
    Refused(String, bool, bool),
    /// No member answered within the budget; the request may have reached the cluster.
    Unreachable(String),
}

/// Sends `txn` until a member gives a definite answer, within `budget`, moving through
/// the members on transport errors.
pub async fn send(inner: &Inner, txn: &Txn, budget: Duration) -> Sent {
    let deadline = tokio::time::Instant::now() + budget;
    let mut sent = false;
    let mut pause = Duration::from_millis(20);
    loop {
        let (i, mut client) = inner.conn.client();
        let last = match tokio::time::timeout(inner.conn.timeout, client.txn(txn.clone())).await {
            Ok(Ok(resp)) => {
                inner.conn.accepted();
                return Sent::Answered(resp, sent);
            }
            Ok(Err(e)) if !super::conn::retryable(&e) => {
                let why = inner.conn.refused(i, &e);
                let access = super::conn::access_refused(&e);
                return Sent::Refused(format!("etcd refused the change: {why}"), sent, access);
            }
            Ok(Err(e)) => format!("{}: {e}", inner.conn.endpoint(i)),
            Err(_) => format!(
                "{}: no answer in {:?}",
                inner.conn.endpoint(i),
                inner.conn.timeout
            ),
        };
        // The request may have reached the cluster: from here on, the outcome is settled
        // by resending.
        sent = true;
        inner.conn.failed(i);
        if tokio::time::Instant::now() + pause >= deadline {
            return Sent::Unreachable(format!(
                "the cluster store cannot be reached ({last}); the change may or may not have been made"
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Sends `prepared` until a member gives a definite answer (see the module documentation),
/// within `budget`.
pub async fn commit(
    inner: &Inner,
    prepared: &Prepared,
    budget: Duration,
) -> Result<Outcome, BackendError> {
    let _watching = prepared.id.as_deref().map(|id| inner.expect(id));
    match send(inner, &prepared.txn(), budget).await {
        Sent::Answered(resp, sent) => {
            let rev = resp.header().map_or(0, |h| h.revision()).max(0) as u64;
            if resp.succeeded() {
                return Ok(Outcome::Done(rev));
            }
            if let Some(id) = &prepared.id
                && sent
            {
                // Did an earlier send commit? The cache knows once it reaches `rev`.
                inner.wait_applied(rev).await?;
                if let Some(r) = inner.seen(id) {
                    return Ok(Outcome::Done(r));
                }
            }
            Ok(Outcome::Conflict(rev))
        }
        Sent::Refused(e, _, _) | Sent::Unreachable(e) => settled(inner, prepared, e),
    }
}

/// What a settled commit of a decision made on the cache at generation `basis` answers
/// (`committed`: whether the decision commits its transaction; `writes`: whether it
/// wrote, the cache then holding the revision): the call's answer when done; `None`
/// after a conflict, once the cache has applied the revision that beat it, for the
/// caller to decide again. Both ways of committing (alone, and a lane's batch) end here.
pub async fn answer(
    inner: &Inner,
    outcome: Outcome,
    committed: bool,
    writes: bool,
    basis: u64,
) -> Result<Option<Executed>, BackendError> {
    match outcome {
        Outcome::Done(rev) => Ok(Some(Executed {
            committed,
            generation: if writes { rev } else { basis },
            // Settled: the cache holds `rev`.
            current: writes,
        })),
        Outcome::Conflict(rev) => {
            inner.wait_applied(rev).await?;
            Ok(None)
        }
    }
}

/// Last look before giving up: the cache may have seen an earlier send commit.
fn settled(inner: &Inner, prepared: &Prepared, error: String) -> Result<Outcome, BackendError> {
    match prepared.id.as_deref().and_then(|id| inner.seen(id)) {
        Some(r) => Ok(Outcome::Done(r)),
        None => Err(BackendError(error)),
    }
}
