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

use crate::db::Db;

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

impl Gc {
    /// One pass at time `now` (seconds since the epoch).
    pub fn pass(&mut self, db: &Db, retention: &Retention, now: i64) -> Removed {
        let mut tables = db.write();
        let mut doomed: Vec<String> = Vec::new();
        let mut on_probation = HashMap::new();
        let mut completed: Vec<(i64, String)> = Vec::new();
        let mut pending = 0usize;
        for (r, row) in tables.rows("task") {
            let crate::db::Row::Task(t) = row else {
                continue;
            };
            if t.status.is_completed() {
                let deferred_destroy = t.current_operations.iter().any(|(_, op)| op == "destroy");
                if deferred_destroy || now - t.finished > retention.completed_task_timeout {
                    doomed.push(r.to_string());
                } else {
                    completed.push((t.finished, r.to_string()));
                }
                continue;
            }
            // pending or cancelling
            if now - t.created > retention.pending_task_timeout {
                match self.probation.get(r) {
                    Some(before) if t.progress <= *before => {
                        doomed.push(r.to_string());
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
            doomed.extend(completed.drain(keep..).map(|(_, r)| r));
        }
        let mut removed = Removed::default();
        for r in &doomed {
            if tables.delete_task(r).is_ok() {
                removed.tasks += 1;
            }
        }
        let idle: Vec<String> = tables
            .rows("session")
            .into_iter()
            .filter_map(|(r, row)| match row {
                crate::db::Row::Session(s) if now - s.last_active > retention.session_timeout => {
                    let busy = s
                        .tasks
                        .iter()
                        .any(|t| tables.task(t).is_some_and(|t| !t.status.is_completed()));
                    (!busy).then(|| r.to_string())
                }
                _ => None,
            })
            .collect();
        for r in &idle {
            if tables.delete_session(r).is_some() {
                removed.sessions += 1;
            }
        }
        drop(tables);
        if removed.sessions > 0 {
            db.wake_all();
        }
        removed
    }
}

/// Runs passes forever at `retention.interval` (the caller aborts the task to stop it).
pub async fn run(svc: std::sync::Arc<crate::api::dispatch::Service>, retention: Retention) {
    let mut gc = Gc::default();
    let mut tick = tokio::time::interval(retention.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let removed = gc.pass(&svc.db, &retention, crate::db::now());
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

    fn add(db: &Db, status: TaskStatus, created: i64, finished: i64) -> String {
        let r = new_ref();
        let mut t = TaskRow::new("t", "", NULL_REF, NULL_REF);
        t.status = status;
        t.created = created;
        t.finished = finished;
        db.write().insert_task(r.clone(), t);
        r
    }

    fn exists(db: &Db, r: &str) -> bool {
        db.read().task(r).is_some()
    }

    #[test]
    fn deferred_destroy_and_completed_timeout() {
        let db = db();
        let rt = Retention::default();
        let marked = add(&db, TaskStatus::Success, 0, 1000);
        db.write()
            .update_task(&marked, |t| {
                t.current_operations.push(("task".into(), "destroy".into()));
                Ok(())
            })
            .unwrap();
        let old = add(&db, TaskStatus::Failure, 0, 1000);
        let young = add(&db, TaskStatus::Cancelled, 0, 4000);
        let mut gc = Gc::default();
        let removed = gc.pass(&db, &rt, 1000 + 3901);
        assert_eq!(removed.tasks, 2);
        assert!(!exists(&db, &marked) && !exists(&db, &old) && exists(&db, &young));
    }

    #[test]
    fn stalled_old_pending_tasks_go_at_the_second_pass() {
        let db = db();
        let rt = Retention::default();
        let stalled = add(&db, TaskStatus::Pending, 0, 0);
        let moving = add(&db, TaskStatus::Cancelling, 0, 0);
        let fresh = add(&db, TaskStatus::Pending, 90_000, 0);
        let mut gc = Gc::default();
        assert_eq!(gc.pass(&db, &rt, 100_000).tasks, 0);
        db.write()
            .update_task(&moving, |t| {
                t.progress = 0.5;
                Ok(())
            })
            .unwrap();
        assert_eq!(gc.pass(&db, &rt, 100_030).tasks, 1);
        assert!(!exists(&db, &stalled) && exists(&db, &moving) && exists(&db, &fresh));
    }

    #[test]
    fn cap_keeps_the_most_recently_finished_and_never_pending() {
        let db = db();
        let rt = Retention {
            max_tasks: 5,
            ..Retention::default()
        };
        let pending: Vec<String> = (0..2)
            .map(|_| add(&db, TaskStatus::Pending, 100, 0))
            .collect();
        let done: Vec<String> = (0..6)
            .map(|i| add(&db, TaskStatus::Success, 100, 100 + i))
            .collect();
        let mut gc = Gc::default();
        assert_eq!(gc.pass(&db, &rt, 200).tasks, 3);
        assert!(pending.iter().all(|r| exists(&db, r)));
        assert!(done[..3].iter().all(|r| !exists(&db, r)));
        assert!(done[3..].iter().all(|r| exists(&db, r)));
    }
}
