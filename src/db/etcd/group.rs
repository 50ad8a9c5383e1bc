//! Group commit: different tasks' writes from one front-end share one etcd transaction.
//!
//! etcd orders every transaction through Raft and answers it once applied; sixteen writers
//! of sixteen tasks on one front-end each paying a transaction of their own pay sixteen
//! trips through the gRPC client, the leader's proposal path and every member's apply,
//! on cores they share. Measured on this machine (bench/cluster.rs, etcd alone): one
//! transaction carrying sixteen writers' transactions nested took 1.07 ms, where sixteen
//! concurrent ones had a median of 2.5–3.6 ms.
//!
//! So a lane's batch ([`super::combine`]) commits through here. When no group is in flight
//! from this front-end it is sent at once, alone and unchanged: a writer alone pays
//! nothing. While one is in flight, later batches wait; when it is done they go together
//! as one transaction whose success branch holds each batch's transaction nested (etcd ≥
//! 3.3, `RequestOp.request_txn`: its own compares, its own operations) and one put of the
//! group's id in `d/meta/last`. etcd evaluates each nested transaction's compares on its
//! own, so each batch commits or conflicts exactly as it would alone, and those that
//! commit share one revision (as a child and its parent's link do). Batches of different
//! tasks write disjoint keys (etcd refuses a transaction that puts a key twice); one task
//! has one batch in flight at a time (its lane's).
//!
//! An ambiguous send (the member went away after the request left) is resent unchanged,
//! as any transaction is ([`super::txn`]): each nested transaction's compares on the keys
//! it writes make a second commit of it impossible. A nested transaction that fails in a
//! resend lost to someone else's write or committed in an earlier send: the group's id
//! names the revision of the earlier send (the watch keeps the first revision it sees an
//! id at), and the batch's task key at that revision says whether the batch was in it.

use std::sync::Arc;

use etcd_client::{GetOptions, Txn, TxnOp, TxnOpResponse};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::Inner;
use super::txn::{self, Op, Outcome, Prepared};
use crate::db::Tables;
use crate::db::backend::BackendError;

/// The most batches one group carries: the group's success branch holds one operation
/// per batch and its id's put, within etcd's default `--max-txn-ops` of 128 (each nested
/// transaction is checked against it on its own).
const MAX_GROUP: usize = 32;

/// The most bytes of keys and values one group carries (etcd refuses a request over
/// `--max-request-bytes`, 1.5 MiB by default).
const MAX_GROUP_BYTES: usize = 512 * 1024;

/// This front-end's waiting batches.
#[derive(Default)]
pub struct Groups {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A transaction (a batch alone or a group) is in flight.
    sending: bool,
    waiting: Vec<Member>,
    bytes: usize,
}

struct Member {
    prepared: Prepared,
    answer: oneshot::Sender<Result<Outcome, BackendError>>,
}

fn size(p: &Prepared) -> usize {
    p.own
        .iter()
        .map(|op| match op {
            Op::Put(k, v) => k.len() + v.len(),
            Op::Delete(k) | Op::DeleteLinksOf(k) => k.len(),
        })
        .sum()
}

/// Commits `prepared` (a lane's batch) and, once it committed, makes the cache show it:
/// `Done(rev)` is answered after the cache has applied `rev`.
pub async fn commit(
    inner: &Arc<Inner>,
    tables: &Arc<RwLock<Tables>>,
    prepared: Prepared,
) -> Result<Outcome, BackendError> {
    if prepared.id.is_none() {
        // Compares only: creates no revision, nothing to group.
        return txn::commit(inner, &prepared, inner.budget).await;
    }
    enum Way {
        First(Prepared),
        Queued(oneshot::Receiver<Result<Outcome, BackendError>>),
        Beside(Prepared),
    }
    let way = {
        let mut s = inner.groups.state.lock();
        let bytes = size(&prepared);
        if !s.sending {
            s.sending = true;
            Way::First(prepared)
        } else if s.waiting.len() < MAX_GROUP && s.bytes + bytes <= MAX_GROUP_BYTES {
            let (answer, wait) = oneshot::channel();
            s.bytes += bytes;
            s.waiting.push(Member { prepared, answer });
            Way::Queued(wait)
        } else {
            Way::Beside(prepared)
        }
    };
    match way {
        Way::Queued(wait) => match tokio::time::timeout(inner.budget * 4, wait).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(BackendError(
                "the cluster store is closed; the change may or may not have been made".into(),
            )),
            Err(_) => Err(BackendError(format!(
                "the change was not confirmed within {:?}; it may or may not have been made",
                inner.budget * 4
            ))),
        },
        Way::First(prepared) => {
            // Whatever happens to this caller, what waits meanwhile is sent.
            let _hand_on = HandOn {
                inner: inner.clone(),
                tables: tables.clone(),
            };
            alone(inner, tables, &prepared).await
        }
        // The next group is full: this one goes on its own, beside it.
        Way::Beside(prepared) => alone(inner, tables, &prepared).await,
    }
}

/// One batch's transaction, as it would go without groups.
async fn alone(
    inner: &Inner,
    tables: &RwLock<Tables>,
    prepared: &Prepared,
) -> Result<Outcome, BackendError> {
    let outcome = txn::commit(inner, prepared, inner.budget).await?;
    if let Outcome::Done(rev) = outcome {
        inner.settle(tables, rev, &prepared.own).await?;
    }
    Ok(outcome)
}

/// Held while a transaction is in flight: when it is dropped, the batches that waited
/// go, as the next group, from a task of their own.
struct HandOn {
    inner: Arc<Inner>,
    tables: Arc<RwLock<Tables>>,
}

impl Drop for HandOn {
    fn drop(&mut self) {
        let Some(next) = take(&self.inner) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(groups(self.inner.clone(), self.tables.clone(), next));
            }
            Err(_) => {
                for m in next {
                    let _ = m.answer.send(Err(BackendError(
                        "the cluster store is closed; the change was not made".into(),
                    )));
                }
                self.inner.groups.state.lock().sending = false;
            }
        }
    }
}

/// The waiting batches, or None (and nothing in flight any more) if there are none.
fn take(inner: &Inner) -> Option<Vec<Member>> {
    let mut s = inner.groups.state.lock();
    if s.waiting.is_empty() {
        s.sending = false;
        return None;
    }
    s.bytes = 0;
    Some(std::mem::take(&mut s.waiting))
}

/// Sends groups one after another until no batch waits.
async fn groups(inner: Arc<Inner>, tables: Arc<RwLock<Tables>>, mut next: Vec<Member>) {
    loop {
        if next.len() == 1 {
            let m = next.pop().expect("one batch");
            let outcome = alone(&inner, &tables, &m.prepared).await;
            let _ = m.answer.send(outcome);
        } else {
            let outcomes = group(&inner, &tables, &next).await;
            for (m, outcome) in next.into_iter().zip(outcomes) {
                let _ = m.answer.send(outcome);
            }
        }
        match take(&inner) {
            Some(more) => next = more,
            None => return,
        }
    }
}

/// Sends `members` as one transaction; each member's outcome, in order.
async fn group(
    inner: &Inner,
    tables: &RwLock<Tables>,
    members: &[Member],
) -> Vec<Result<Outcome, BackendError>> {
    let id = uuid::Uuid::new_v4().to_string();
    let last = inner.keys.last();
    let _watching = inner.expect(&id);
    let mut ops: Vec<TxnOp> = members
        .iter()
        .map(|m| {
            let p = &m.prepared;
            TxnOp::txn(Txn::new().when(p.compares.clone()).and_then(p.ops.clone()))
        })
        .collect();
    ops.push(TxnOp::put(last.as_str(), id.as_str(), None));
    let txn = Txn::new().and_then(ops);
    let all = |e: BackendError| members.iter().map(|_| Err(e.clone())).collect();
    let answered = match txn::send(inner, &txn, inner.budget).await {
        txn::Sent::Answered(resp, sent) => Ok((resp, sent)),
        // Refused for who sent it (credentials, permissions): each batch alone would be
        // refused the same way, one round trip each: all answered at once (when no
        // earlier send may have committed; else as below).
        txn::Sent::Refused(e, false, true) => return all(BackendError(e)),
        txn::Sent::Refused(e, sent, _) => Err((sent, BackendError(e))),
        txn::Sent::Unreachable(e) => Err((true, BackendError(e))),
    };
    let (rev, nested, sent) = match answered {
        Ok((resp, sent)) => {
            let rev = resp.header().map_or(0, |h| h.revision()).max(0) as u64;
            let nested: Vec<bool> = resp
                .op_responses()
                .iter()
                .filter_map(|r| match r {
                    TxnOpResponse::Txn(t) => Some(t.succeeded()),
                    _ => None,
                })
                .collect();
            (rev, nested, sent)
        }
        Err((false, _)) => {
            // Refused before anything committed, for what it asks (never expected:
            // disjoint keys, bounded size): each batch goes alone, as it would without
            // groups.
            let mut out = Vec::new();
            for m in members {
                out.push(alone(inner, tables, &m.prepared).await);
            }
            return out;
        }
        Err((true, e)) => match inner.seen(&id) {
            // An earlier send committed, at `r`: which batches it carried is in etcd.
            Some(r) => {
                let mut out = Vec::new();
                for m in members {
                    out.push(match committed_at(inner, &m.prepared, r).await {
                        Ok(true) => inner.wait_applied(r).await.map(|_| Outcome::Done(r)),
                        Ok(false) => Err(e.clone()),
                        Err(e) => Err(e),
                    });
                }
                return out;
            }
            None => return all(e),
        },
    };
    // A resent group: the revision its first commit made, if it made one.
    let earlier = if sent {
        if let Err(e) = inner.wait_applied(rev).await {
            return all(e);
        }
        inner.seen(&id).filter(|r| *r < rev)
    } else {
        None
    };
    let mut own = Vec::new();
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let Some(&ok) = nested.get(i) else {
            out.push(Err(BackendError(
                "etcd's answer to a group lacks a nested transaction's; the change may or \
                 may not have been made"
                    .into(),
            )));
            continue;
        };
        out.push(if ok {
            own.extend(
                m.prepared
                    .own
                    .iter()
                    .filter(|op| !matches!(op, Op::Put(k, _) if *k == last))
                    .cloned(),
            );
            Ok(Outcome::Done(rev))
        } else if let Some(r) = earlier {
            match committed_at(inner, &m.prepared, r).await {
                Ok(true) => Ok(Outcome::Done(r)),
                Ok(false) => Ok(Outcome::Conflict(rev)),
                Err(e) => Err(e),
            }
        } else {
            Ok(Outcome::Conflict(rev))
        });
    }
    own.push(Op::Put(last, id.into_bytes()));
    if let Err(e) = inner.settle(tables, rev, &own).await {
        for o in out.iter_mut() {
            if matches!(o, Ok(Outcome::Done(r)) if *r == rev) {
                *o = Err(e.clone());
            }
        }
    }
    out
}

/// Whether a batch was in the transaction that made revision `rev`: its task's key (the
/// first it puts) was modified at exactly `rev`.
async fn committed_at(inner: &Inner, p: &Prepared, rev: u64) -> Result<bool, BackendError> {
    let Some(key) = p.own.iter().find_map(|op| match op {
        Op::Put(k, _) => Some(k.clone()),
        _ => None,
    }) else {
        return Ok(false);
    };
    let options = GetOptions::new().with_revision(rev as i64);
    let kv = super::get_with(inner, key, options).await?;
    Ok(kv.is_some_and(|kv| kv.mod_revision() == rev as i64))
}
