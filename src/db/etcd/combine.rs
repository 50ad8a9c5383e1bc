//! Write combining for a hot task (scale-out note §3.5).
//!
//! On a single node a client hammering `set_progress` dirties one row, which the group
//! commit writes once per batch. Here every write of a task compares the row it read, so
//! writers of one task would conflict with each other and take turns, one etcd round trip
//! each. Instead, on each front-end, writes of one task go through a *lane*:
//!
//! - The first writer opens the lane and sends its plan at once, as one transaction, as
//!   if there were no lane (a writer alone pays nothing for it).
//! - While that transaction is in flight, later writers decide on the row the writes
//!   before them leave (the lane's *projection*), one after another in arrival order,
//!   under the lane's lock: each sees exactly the state it would have seen had the ones
//!   before it committed alone — ownership, a refusal such as `MAP_DUPLICATE_KEY`, an
//!   identical write that changes nothing. Their decisions form the next batch.
//! - When the transaction is done, the batch goes as one transaction, sent by the lane's
//!   own task (spawned: a caller that goes away cannot leave the lane stuck; nor can the
//!   first writer, whose lane a sender takes over if it is dropped): the last row it
//!   leaves, the union of its decisions' reads as compares, and for the task itself a
//!   compare that it is still exactly the row the batch was decided on. Once it commits
//!   (and the cache has applied it), every caller in it is answered with its own outcome.
//! - If that state did not hold (another front-end wrote the task, the transaction before
//!   failed), nothing of the batch is written and each of its callers decides again on
//!   the cache, as after any conflict.
//!
//! Only a decision that changes exactly one existing task and nothing else goes through a
//! lane (every `set_*`, `cancel`, `add_to/remove_from_other_config`, the destroy marker of
//! an unfinished task, `Async.` completions); creations, deletions and session writes
//! commit on their own. Batches of *different* tasks' lanes are not merged here but may
//! share one transaction, each nested with its own compares ([`super::group`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::{Inner, group, txn};
use crate::db::backend::{BackendError, Decide, Executed};
use crate::db::{Plan, Read, Tables, TaskRow, Tx, Write};

/// The open lanes, by task ref.
#[derive(Default)]
pub struct Lanes {
    lanes: Mutex<HashMap<String, Lane>>,
}

struct Lane {
    /// The task as every decision made into this lane so far leaves it: what the next
    /// writer decides on.
    projected: TaskRow,
    /// Decided, not yet sent: the next transaction.
    forming: Batch,
}

struct Batch {
    /// The row the batch's first decision was made on.
    base: TaskRow,
    reads: Vec<Read>,
    /// The row the batch leaves, if any of its decisions wrote.
    write: Option<TaskRow>,
    /// Each caller: whether its decision committed (else it refused), and where its
    /// answer goes.
    members: Vec<(bool, oneshot::Sender<Answer>)>,
}

impl Batch {
    fn empty(base: TaskRow) -> Batch {
        Batch {
            base,
            reads: Vec::new(),
            write: None,
            members: Vec::new(),
        }
    }
}

/// A lane's answer to one caller.
pub enum Answer {
    Done(Executed),
    /// The state the decision was made on did not hold: decide again.
    Again,
    Failed(BackendError),
}

impl Lanes {
    /// The task whose lane a decision (made on the cache) goes through: the one it writes
    /// if that is its only write; for a decision that writes nothing (a refusal, an
    /// identical value), the one task it read, if that task's lane is open — it is then
    /// decided on the lane's row and confirmed by the lane's next transaction, where a
    /// compare of its own would conflict with every batch of the lane.
    pub fn lane_for(&self, plan: &Plan, committed: bool) -> Option<String> {
        // A fenced write (the GC's, under its leadership) commits alone: a batch that
        // carried its fence would fail for everyone once the leadership is lost.
        if plan.reads.iter().any(|r| matches!(r, Read::Leader(..))) {
            return None;
        }
        match plan.writes.as_slice() {
            [Write::UpdateTask { r, .. }] if committed => Some(r.clone()),
            writes if !committed || writes.is_empty() => {
                let mut tasks = plan.reads.iter().filter_map(|r| match r {
                    Read::Task(t, _) => Some(t),
                    _ => None,
                });
                let first = tasks.next()?;
                (tasks.all(|t| t == first) && self.lanes.lock().contains_key(&**first))
                    .then(|| first.to_string())
            }
            _ => None,
        }
    }
}

/// Whether two rows hold the same fields (their stamps aside; any NaN progress equals
/// another, as the row's JSON form keeps no NaN payload).
fn same_fields(a: &TaskRow, b: &TaskRow) -> bool {
    let same_progress = a.progress.to_bits() == b.progress.to_bits()
        || (a.progress.is_nan() && b.progress.is_nan());
    if !same_progress {
        return false;
    }
    let (mut x, mut y) = (a.clone(), b.clone());
    (x.stamp, x.progress, y.progress) = (y.stamp, 0.0, 0.0);
    x == y
}

/// What joining a lane gave a caller.
enum Joined {
    /// Its decision is in the lane's next batch: its answer comes here.
    Queued(oneshot::Receiver<Answer>),
    /// It opened the lane: it sends this first batch (its decision alone) itself.
    Opened(Box<Batch>),
    /// The lane's next batch is full: try again once the sender has taken it.
    Full,
}

/// The most callers one transaction carries: each adds compares (its session, the task's
/// owner), and etcd refuses a transaction of more than `--max-txn-ops` (128 by default)
/// compares as an invalid argument, which would fail the whole batch.
const MAX_BATCH: usize = 32;

/// Commits a decision about `task` (one [`Lanes::lane_for`] sends to its lane) through the
/// task's lane, or returns None if the decision, made on the lane's projection, writes
/// more than that one task (the caller then commits it alone).
pub async fn write(
    inner: &Arc<Inner>,
    tables: &Arc<RwLock<Tables>>,
    task: &str,
    decide: &mut Decide<'_>,
) -> Option<Answer> {
    match inner.lanes.join(tables, task, decide)? {
        Joined::Queued(wait) => Some(answer(wait, inner.budget).await),
        Joined::Full => {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Some(Answer::Again)
        }
        Joined::Opened(batch) => {
            // The first writer sends its own transaction (no hand-over to another task
            // when nobody else writes the task); if it goes away meanwhile, the lane's
            // sender takes over.
            let carry = Carry {
                inner: inner.clone(),
                tables: tables.clone(),
                task: task.to_string(),
                armed: true,
            };
            let outcome = commit(inner, tables, task, &batch).await;
            carry.done(&outcome);
            Some(outcome)
        }
    }
}

/// Held by a lane's first writer while it sends: hands the lane on when it is done, or
/// to a sender of its own if it is dropped first.
struct Carry {
    inner: Arc<Inner>,
    tables: Arc<RwLock<Tables>>,
    task: String,
    armed: bool,
}

impl Carry {
    fn done(mut self, outcome: &Answer) {
        self.armed = false;
        let lanes = &self.inner.lanes;
        match outcome {
            Answer::Done(_) => {
                let mut map = lanes.lanes.lock();
                match map.get(&self.task) {
                    Some(lane) if !lane.forming.members.is_empty() => {
                        drop(map);
                        self.spawn_sender();
                    }
                    _ => {
                        map.remove(&self.task);
                    }
                }
            }
            Answer::Again => lanes.close(&self.task, None),
            Answer::Failed(e) => lanes.close(&self.task, Some(e)),
        }
    }

    fn spawn_sender(&self) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(send(
                self.inner.clone(),
                self.tables.clone(),
                self.task.clone(),
            ));
        }
    }
}

impl Drop for Carry {
    fn drop(&mut self) {
        if self.armed {
            // What waits decided on a row whose transaction may still commit: the
            // sender's check of that row (or the transaction's compares) settles it.
            self.spawn_sender();
        }
    }
}

impl Lanes {
    /// Runs `decide` for a write of `task` in its lane, opening the lane if there is
    /// none; None if the decision does not write exactly that task.
    fn join(&self, tables: &RwLock<Tables>, task: &str, decide: &mut Decide<'_>) -> Option<Joined> {
        // The tables before the lanes, as `execute` (which asks `lane_for` under the
        // tables' read lock) takes them: the other order deadlocks against it once the
        // cache's writer waits between the two (parking_lot's lock is fair).
        let t = tables.read();
        let mut lanes = self.lanes.lock();
        if let Some(lane) = lanes.get_mut(task) {
            if lane.forming.members.len() >= MAX_BATCH {
                return Some(Joined::Full);
            }
            let (committed, plan) = {
                let mut tx = Tx::over(&t, task, &lane.projected);
                let committed = decide(&mut tx);
                (committed, tx.into_plan())
            };
            let write = match (committed, plan.writes.as_slice()) {
                (false, _) | (true, []) => None,
                (true, [Write::UpdateTask { r, row, .. }]) if r == task => Some(row),
                _ => return None,
            };
            if lane.forming.members.is_empty() {
                lane.forming.base = lane.projected.clone();
            }
            if let Some(row) = write {
                lane.projected = (**row).clone();
                lane.forming.write = Some((**row).clone());
            }
            lane.forming.reads.extend(plan.reads);
            let (answer, wait) = oneshot::channel();
            lane.forming.members.push((committed, answer));
            return Some(Joined::Queued(wait));
        }
        let base = t.task(task)?.clone();
        let mut tx = Tx::new(&t, true);
        let committed = decide(&mut tx);
        let plan = tx.into_plan();
        let row = match (committed, plan.writes.as_slice()) {
            (true, [Write::UpdateTask { r, row, .. }]) if r == task => (**row).clone(),
            _ => return None,
        };
        lanes.insert(
            task.to_string(),
            Lane {
                projected: row.clone(),
                forming: Batch::empty(row.clone()),
            },
        );
        Some(Joined::Opened(Box::new(Batch {
            base,
            reads: plan.reads,
            write: Some(row),
            members: Vec::new(),
        })))
    }

    /// Closes `task`'s lane after its transaction did not commit: every caller decided
    /// into the next batch decides again, or, when the store could not be reached, is told
    /// so (its change was never sent).
    fn close(&self, task: &str, unreachable: Option<&BackendError>) {
        let lane = self.lanes.lock().remove(task);
        for (_, answer) in lane.into_iter().flat_map(|l| l.forming.members) {
            let _ = answer.send(match unreachable {
                None => Answer::Again,
                Some(e) => Answer::Failed(BackendError(format!(
                    "the change was not made: the one before it failed ({e})"
                ))),
            });
        }
    }
}

/// Waits for a lane's answer (the lane's sender is bounded by the budget for each of the
/// batches before it and its own; this bounds a wait even if it were not).
async fn answer(wait: oneshot::Receiver<Answer>, budget: Duration) -> Answer {
    match tokio::time::timeout(budget * 4, wait).await {
        Ok(Ok(a)) => a,
        Ok(Err(_)) => Answer::Failed(BackendError(
            "the cluster store is closed; the change may or may not have been made".into(),
        )),
        Err(_) => Answer::Failed(BackendError(format!(
            "the change was not confirmed within {:?}; it may or may not have been made",
            budget * 4
        ))),
    }
}

/// A lane's sender: sends its batches one after another until the lane is empty.
async fn send(inner: Arc<Inner>, tables: Arc<RwLock<Tables>>, task: String) {
    loop {
        let batch = {
            let mut lanes = inner.lanes.lanes.lock();
            let Some(lane) = lanes.get_mut(&task) else {
                return;
            };
            if lane.forming.members.is_empty() {
                lanes.remove(&task);
                return;
            }
            let next = Batch::empty(lane.projected.clone());
            std::mem::replace(&mut lane.forming, next)
        };
        let outcome = commit(&inner, &tables, &task, &batch).await;
        for (committed, answer) in batch.members {
            let a = match &outcome {
                Answer::Done(e) => Answer::Done(Executed {
                    committed,
                    generation: e.generation,
                    // Every member joined the batch before it was sent.
                    current: e.current,
                }),
                Answer::Again => Answer::Again,
                Answer::Failed(e) => Answer::Failed(e.clone()),
            };
            let _ = answer.send(a);
        }
        // What was decided on top of this batch assumed it committed.
        match outcome {
            Answer::Done(_) => {}
            Answer::Again => return inner.lanes.close(&task, None),
            Answer::Failed(e) => return inner.lanes.close(&task, Some(&e)),
        }
    }
}

/// Commits one batch: checks that the task is still the row it was decided on, sends it,
/// and waits until the cache has applied it.
async fn commit(
    inner: &Arc<Inner>,
    tables: &Arc<RwLock<Tables>>,
    task: &str,
    batch: &Batch,
) -> Answer {
    let prepared = {
        let t = tables.read();
        let Some((key, current)) = t.task_entry(task) else {
            return Answer::Again;
        };
        if !same_fields(current, &batch.base) {
            return Answer::Again;
        }
        let mut reads: Vec<Read> = batch
            .reads
            .iter()
            .filter(|r| !matches!(r, Read::Task(x, _) if &**x == task))
            .cloned()
            .collect();
        reads.push(Read::Task(key, current.stamp));
        let writes = batch
            .write
            .iter()
            .map(|row| Write::UpdateTask {
                r: task.to_string(),
                row: Box::new(row.clone()),
                was_unfinished: !current.status.is_completed(),
            })
            .collect();
        let plan = Plan { reads, writes };
        let leader = inner.leader.lock().as_ref().map(|l| l.0.clone());
        match txn::prepare(&inner.keys, &inner.node, leader.as_deref(), &t, &plan) {
            Ok(p) => (p, t.generation()),
            // A read that can no longer hold (a fence of a leadership lost since): the
            // others in the batch must not fail for it; each decides again.
            Err(_) => return Answer::Again,
        }
    };
    let (prepared, basis) = prepared;
    let writes = prepared.id.is_some();
    // Through a group: batches of other tasks' lanes may share its transaction.
    // The group makes the cache show what it committed.
    let answer = match group::commit(inner, tables, prepared).await {
        Ok(outcome) => txn::answer(inner, outcome, true, writes, basis).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(Some(executed)) => Answer::Done(executed),
        Ok(None) => Answer::Again,
        Err(e) => Answer::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{NULL_REF, TaskStatus};

    #[test]
    fn rows_compare_by_fields_not_stamps_and_nan_equals_nan() {
        let a = TaskRow::new("a", "", NULL_REF, NULL_REF);
        let mut b = a.clone();
        b.stamp.modified = 42;
        assert!(same_fields(&a, &b));
        b.status = TaskStatus::Success;
        assert!(!same_fields(&a, &b));
        let (mut x, mut y) = (a.clone(), a.clone());
        x.progress = f64::NAN;
        y.progress = -f64::NAN;
        assert!(same_fields(&x, &y));
        y.progress = 0.5;
        assert!(!same_fields(&x, &y));
        x.progress = -0.0;
        y.progress = 0.0;
        assert!(!same_fields(&x, &y));
    }
}
