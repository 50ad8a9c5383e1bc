//! Garbage collection of tasks and sessions, xapi's rules (`db_gc_util.ml`
//! `timeout_tasks`, `timeout_sessions`; spec §8). A pass runs every 30 s.
//!
//! Tasks, in order: completed tasks marked by a deferred `task.destroy` go at once;
//! completed tasks finished longer ago than `completed_task_timeout` go; pending tasks
//! older than `pending_task_timeout` are put on probation and go at the next pass unless
//! their progress moved; then, of the remaining completed tasks, only the
//! `max_tasks − #pending` most recently finished are kept (xapi's long-standing rule;
//! pending tasks are never removed by it). Sessions with no unfinished task that have been
//! idle longer than `session_timeout` are logged out. Deletions produce events.

use std::collections::HashMap;
use std::time::Duration;

use crate::db::backend::BackendError;
use crate::db::backend::Leadership;
use crate::db::{Db, Read, Stamp, TaskStatus};

/// The retention knobs, with xapi's defaults.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Seconds a completed task is kept after it finished (xapi: 3900 s = 65 min).
    pub completed_task_timeout: i64,
    /// Age in seconds after which a pending task whose progress stalls is removed (24 h).
    pub pending_task_timeout: i64,
    /// Completed tasks kept at most, counting pending ones against it (200).
    pub max_tasks: usize,
    /// Seconds an idle session without unfinished tasks is kept (24 h).
    pub session_timeout: i64,
    /// Time between passes (30 s).
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            completed_task_timeout: 3900,
            pending_task_timeout: 86_400,
            max_tasks: 200,
            session_timeout: 86_400,
            interval: Duration::from_secs(30),
        }
    }
}

/// State carried between passes: pending tasks on probation and their progress then.
#[derive(Debug, Default)]
pub struct Gc {
    probation: HashMap<String, f64>,
}

/// What a pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub tasks: usize,
    pub sessions: usize,
}

/// A task or session the pass decided to remove, as it was when decided.
enum Doomed {
    Task(String, Stamp),
    Session(String, u64),
}

impl Gc {
    /// One pass at time `now` (seconds since the epoch). The rules are decided on one
    /// consistent view; the removals are then committed in plans of at most the backend's
    /// size, each re-checking that its rows are still as they were decided on (a task that
    /// changed, or a session that became active or got an unfinished task meanwhile, is
    /// kept) and, on a shared store, that this process still leads the GC.
    pub async fn pass(&mut self, db: &Db, retention: &Retention, now: i64) -> Removed {
        let fence = match db.backend().gc_leadership() {
            Leadership::Follower => {
                self.probation.clear();
                return Removed::default();
            }
            Leadership::Leader(token) => Some(Read::Leader(token)),
            Leadership::Sole => None,
        };
        if fence.is_some() {
            fail_orphans(db, fence.clone(), now).await;
        }
        let doomed = self.decide(db, retention, now);
        let mut removed = Removed::default();
        let chunk = db.backend().max_plan_writes().max(1);
        // Tasks first, in plans of their own: a session whose last unfinished task goes
        // in this pass is idle when its own plan is decided.
        let split = doomed.partition_point(|d| matches!(d, Doomed::Task(..)));
        let (tasks, sessions) = doomed.split_at(split);
        for batch in tasks.chunks(chunk).chain(sessions.chunks(chunk)) {
            let result = db
                .transact(|tx| {
                    if let Some(f) = &fence {
                        tx.depend(f.clone());
                    }
                    let mut done = Removed::default();
                    for d in batch {
                        match d {
                            Doomed::Task(r, stamp) => {
                                if tx.task(r).is_some_and(|t| t.stamp == *stamp) {
                                    tx.delete_task(r);
                                    done.tasks += 1;
                                }
                            }
                            Doomed::Session(r, revision) => {
                                let same = tx.session(r).is_some_and(|s| {
                                    s.revision == *revision
                                        && now - s.last_active > retention.session_timeout
                                });
                                if same && !tx.session_busy(r) {
                                    tx.delete_session(r);
                                    done.sessions += 1;
                                }
                            }
                        }
                    }
                    Ok::<_, BackendError>(done)
                })
                .await;
            match result {
                Ok(done) => {
                    removed.tasks += done.tasks;
                    removed.sessions += done.sessions;
                }
                Err(e) => {
                    tracing::warn!("gc: {e}");
                    break;
                }
            }
        }
        removed
    }

    /// xapi's rules over one view of the tables: what to remove.
    fn decide(&mut self, db: &Db, retention: &Retention, now: i64) -> Vec<Doomed> {
        let tables = db.read();
        let mut doomed: Vec<Doomed> = Vec::new();
        let mut on_probation = HashMap::new();
        let mut completed: Vec<(i64, &str, Stamp)> = Vec::new();
        let mut pending = 0usize;
        for (r, row) in tables.rows("task") {
            let crate::db::Row::Task(t) = row else {
                continue;
            };
            if t.status.is_completed() {
                let deferred_destroy = t.current_operations.iter().any(|(_, op)| op == "destroy");
                if deferred_destroy || now - t.finished > retention.completed_task_timeout {
                    doomed.push(Doomed::Task(r.to_string(), t.stamp));
                } else {
                    completed.push((t.finished, r, t.stamp));
                }
                continue;
            }
            // pending or cancelling
            if now - t.created > retention.pending_task_timeout {
                match self.probation.get(r) {
                    Some(before) if t.progress <= *before => {
                        doomed.push(Doomed::Task(r.to_string(), t.stamp));
                        continue;
                    }
                    _ => {
                        on_probation.insert(r.to_string(), t.progress);
                    }
                }
            }
            pending += 1;
        }
        self.probation = on_probation;
        let keep = retention.max_tasks.saturating_sub(pending);
        if completed.len() > keep {
            completed.sort_by_key(|c| std::cmp::Reverse(c.0));
            doomed.extend(
                completed
                    .drain(keep..)
                    .map(|(_, r, stamp)| Doomed::Task(r.to_string(), stamp)),
            );
        }
        let gone: std::collections::HashSet<&str> = doomed
            .iter()
            .filter_map(|d| match d {
                Doomed::Task(r, _) => Some(r.as_str()),
                Doomed::Session(..) => None,
            })
            .collect();
        let mut sessions = Vec::new();
        for (r, row) in tables.rows("session") {
            if let crate::db::Row::Session(s) = row
                && now - s.last_active > retention.session_timeout
            {
                let busy = s.tasks.iter().any(|t| {
                    !gone.contains(&**t) && tables.task(t).is_some_and(|t| !t.status.is_completed())
                });
                if !busy {
                    sessions.push(Doomed::Session(r.to_string(), s.revision));
                }
            }
        }
        doomed.extend(sessions);
        doomed
    }
}

/// Fails the unfinished `Async.` tasks whose front-end stopped before completing them
/// (a shared store only): their work is lost, and watchers should not wait for the 24 h
/// pending timeout. xapi destroys a restarting host's leftover tasks
/// (`Cancel_tasks.cancel_tasks_on_host`); here they settle as `failure` (a `cancelling`
/// one as `cancelled`) with an `error_info` naming the front-end.
async fn fail_orphans(db: &Db, fence: Option<Read>, now: i64) {
    let orphans = match db.backend().orphaned_tasks().await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("gc: cannot list orphaned tasks: {e}");
            return;
        }
    };
    for (r, node) in orphans {
        let info = vec![
            "INTERNAL_ERROR".to_string(),
            format!(
                "the xapi-taskd front-end {node} running this task stopped before completing it"
            ),
        ];
        let done = db
            .transact(|tx| {
                if let Some(f) = &fence {
                    tx.depend(f.clone());
                }
                let Some(t) = tx.task(&r) else {
                    return Ok(false);
                };
                let mut t = t.clone();
                t.status = match t.status {
                    TaskStatus::Pending => TaskStatus::Failure,
                    TaskStatus::Cancelling => TaskStatus::Cancelled,
                    _ => return Ok(false),
                };
                t.allowed_operations.clear();
                t.progress = 1.0;
                t.finished = now;
                t.error_info = info.as_slice().into();
                Ok::<_, BackendError>(tx.update_task(&r, t).unwrap_or(false))
            })
            .await;
        match done {
            Ok(true) => tracing::info!("gc: task {r} of the stopped front-end {node} failed"),
            Ok(false) => {}
            Err(e) => tracing::warn!("gc: cannot fail task {r}: {e}"),
        }
    }
}

/// Runs passes forever at `retention.interval` (the caller aborts the task to stop it).
pub async fn run(svc: std::sync::Arc<crate::api::dispatch::Service>, retention: Retention) {
    let mut gc = Gc::default();
    let mut tick = tokio::time::interval(retention.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let removed = gc.pass(&svc.db, &retention, crate::db::now()).await;
        if removed != Removed::default() {
            tracing::debug!(?removed, "gc pass");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{HostRow, NULL_REF, PoolRow, TaskRow, TaskStatus, new_ref};

    fn db() -> Db {
        Db::new(new_ref(), PoolRow::default(), new_ref(), HostRow::default())
    }

    async fn add(db: &Db, status: TaskStatus, created: i64, finished: i64) -> String {
        let r = new_ref();
        let mut t = TaskRow::new("t", "", NULL_REF, NULL_REF);
        t.status = status;
        t.created = created;
        t.finished = finished;
        db.transact(|tx| {
            tx.insert_task(r.clone(), t.clone());
            Ok::<_, BackendError>(())
        })
        .await
        .unwrap();
        r
    }

    async fn update(db: &Db, r: &str, f: impl Fn(&mut TaskRow) + Send + Sync) {
        db.transact(|tx| {
            let mut row = tx.task(r).unwrap().clone();
            f(&mut row);
            tx.update_task(r, row).unwrap();
            Ok::<_, BackendError>(())
        })
        .await
        .unwrap();
    }

    fn exists(db: &Db, r: &str) -> bool {
        db.read().task(r).is_some()
    }

    #[tokio::test]
    async fn deferred_destroy_and_completed_timeout() {
        let db = db();
        let rt = Retention::default();
        let marked = add(&db, TaskStatus::Success, 0, 1000).await;
        update(&db, &marked, |t| {
            t.current_operations.push(("task".into(), "destroy".into()))
        })
        .await;
        let old = add(&db, TaskStatus::Failure, 0, 1000).await;
        let young = add(&db, TaskStatus::Cancelled, 0, 4000).await;
        let mut gc = Gc::default();
        let removed = gc.pass(&db, &rt, 1000 + 3901).await;
        assert_eq!(removed.tasks, 2);
        assert!(!exists(&db, &marked) && !exists(&db, &old) && exists(&db, &young));
    }

    #[tokio::test]
    async fn stalled_old_pending_tasks_go_at_the_second_pass() {
        let db = db();
        let rt = Retention::default();
        let stalled = add(&db, TaskStatus::Pending, 0, 0).await;
        let moving = add(&db, TaskStatus::Cancelling, 0, 0).await;
        let fresh = add(&db, TaskStatus::Pending, 90_000, 0).await;
        let mut gc = Gc::default();
        assert_eq!(gc.pass(&db, &rt, 100_000).await.tasks, 0);
        update(&db, &moving, |t| t.progress = 0.5).await;
        assert_eq!(gc.pass(&db, &rt, 100_030).await.tasks, 1);
        assert!(!exists(&db, &stalled) && exists(&db, &moving) && exists(&db, &fresh));
    }

    #[tokio::test]
    async fn cap_keeps_the_most_recently_finished_and_never_pending() {
        let db = db();
        let rt = Retention {
            max_tasks: 5,
            ..Retention::default()
        };
        let mut pending = Vec::new();
        for _ in 0..2 {
            pending.push(add(&db, TaskStatus::Pending, 100, 0).await);
        }
        let mut done = Vec::new();
        for i in 0..6 {
            done.push(add(&db, TaskStatus::Success, 100, 100 + i).await);
        }
        let mut gc = Gc::default();
        assert_eq!(gc.pass(&db, &rt, 200).await.tasks, 3);
        assert!(pending.iter().all(|r| exists(&db, r)));
        assert!(done[..3].iter().all(|r| !exists(&db, r)));
        assert!(done[3..].iter().all(|r| exists(&db, r)));
    }
}
