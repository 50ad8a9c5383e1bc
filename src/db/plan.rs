//! Write plans: how a decision is made once and committed by any backend.
//!
//! A message that writes runs as a *decision* over a view of the tables ([`Tx`]): it reads
//! rows, decides, and either refuses (an error, nothing written) or leaves a [`Plan`]:
//! the rows it read ([`Read`], each with the version it saw) and the rows it writes
//! ([`Write`]). The backend then commits the plan (see [`super::backend`]):
//!
//! - the local backend (memory, or redb with group commit) decides under the tables' write
//!   lock, so what was read is still current when the plan is applied, and does not even
//!   record the reads;
//! - a distributed backend (etcd) decides under a read lock on its cache, commits the plan
//!   as one transaction whose compares are exactly the recorded reads, and re-runs the
//!   decision when a compare fails (someone else wrote in between).
//!
//! So a decision must be a pure function of what it reads through the [`Tx`]: it may run
//! more than once, and only its last run counts. Writes are buffered in the plan, never
//! applied piecemeal, so a decision that fails halfway changes nothing.
//!
//! Writes carry whole rows (the new value), not field deltas: a replayed or late plan can
//! then never be half-applied, and a backend can store rows as they are.

use std::sync::Arc;

use super::{DbError, SessionRow, Stamp, Tables, TaskRow, quota};

/// Something a decision depended on. A plan commits only if every read still holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// The task existed with these generations (created, last modified).
    Task(Arc<str>, Stamp),
    /// There was no task with this ref.
    NoTask(String),
    /// The session existed at this revision of its row ([`SessionRow::revision`]).
    Session(String, u64),
    /// The session existed (its immutable fields are all the decision used).
    SessionExists(String),
    /// There was no session with this ref.
    NoSession(String),
    /// The session owned no unfinished (pending or cancelling) task.
    SessionIdle(String),
    /// A user (kept outside the tables, in the backend) had this revision.
    User(String, u64),
    /// The caller held the garbage collector's leadership, identified by the backend's
    /// token for it (see [`super::backend::Backend::gc_leadership`]).
    Leader(u64),
}

/// One change a plan makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new task (fresh ref); linked to its parent (`subtask_of`) and session.
    InsertTask(String, Box<TaskRow>),
    /// New field values of an existing task. `subtasks` and the stamps are the database's
    /// (derived), whatever the row carries. Only made when a field really changes: xapi
    /// does not bump generations for writes of an identical value.
    UpdateTask {
        r: String,
        row: Box<TaskRow>,
        /// Whether the task was unfinished before this write (for backends that keep an
        /// index of unfinished tasks per session).
        was_unfinished: bool,
    },
    /// Deletes a task (with a tombstone for `event.from`); its parent and session links go
    /// too. The values are the row's, for backends that key links by them.
    DeleteTask {
        r: String,
        parent: String,
        session: String,
        unfinished: bool,
        created: u64,
    },
    /// A new session, or new field values of one (`tasks` and the legacy subscription are
    /// the database's, whatever the row carries).
    PutSession(String, Box<SessionRow>),
    DeleteSession(String),
    /// Marks an object changed without changing it (`event.inject`).
    Touch(&'static str, String),
    /// This process runs the new task's work (an `Async.` call): a shared backend fails
    /// the task if this process stops before completing it. Nothing for a local one.
    Claim(String),
}

/// What a decision produced: its reads and writes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub reads: Vec<Read>,
    pub writes: Vec<Write>,
}

/// A decision's view of the tables: tracked reads, buffered writes.
pub struct Tx<'a> {
    tables: &'a Tables,
    /// Record reads (a backend that checks them at commit) or not (one that decides under
    /// its write lock: the reads cannot go stale, and recording them would be waste).
    track: bool,
    /// A task's row as earlier decisions not yet committed leave it, read instead of the
    /// tables' (a backend that combines several callers' writes of one task into one
    /// commit decides each on the row the one before left).
    overlay: Option<(&'a str, &'a TaskRow)>,
    plan: Plan,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(tables: &'a Tables, track: bool) -> Tx<'a> {
        Tx {
            tables,
            track,
            overlay: None,
            plan: Plan::default(),
        }
    }

    /// A view where task `r` reads as `row` (which carries the tables' stamps of it).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn over(tables: &'a Tables, r: &'a str, row: &'a TaskRow) -> Tx<'a> {
        Tx {
            overlay: Some((r, row)),
            ..Tx::new(tables, true)
        }
    }

    /// Task `r` as this view shows it.
    fn row(&self, r: &str) -> Option<&'a TaskRow> {
        match self.overlay {
            Some((o, row)) if o == r => Some(row),
            _ => self.tables.task(r),
        }
    }

    pub(crate) fn into_plan(self) -> Plan {
        self.plan
    }

    /// The tables, read without tracking: for what is approximate by nature (limits on
    /// counts) or never changes (the pool's and host's refs).
    pub fn untracked(&self) -> &'a Tables {
        self.tables
    }

    /// Records a dependency that is not a row of the tables (a user, a leadership).
    pub fn depend(&mut self, read: Read) {
        if self.track {
            self.plan.reads.push(read);
        }
    }

    fn note(&mut self, read: impl FnOnce() -> Read) {
        if self.track {
            self.plan.reads.push(read());
        }
    }

    // ----- reads -----

    pub fn task(&mut self, r: &str) -> Option<&'a TaskRow> {
        let tables = self.tables;
        match tables.tasks.get_key_value(r) {
            Some((k, t)) => {
                let t = self.row(r).unwrap_or(&**t);
                self.note(|| Read::Task(k.clone(), t.stamp));
                Some(t)
            }
            None => {
                self.note(|| Read::NoTask(r.to_string()));
                None
            }
        }
    }

    /// A session and everything in it.
    pub fn session(&mut self, r: &str) -> Option<&'a SessionRow> {
        let tables = self.tables;
        let s = tables.session(r);
        self.note(|| match s {
            Some(s) => Read::Session(r.to_string(), s.revision),
            None => Read::NoSession(r.to_string()),
        });
        s
    }

    /// A session, when the decision uses only what never changes in it (user, sid, role).
    pub fn session_fixed(&mut self, r: &str) -> Option<&'a SessionRow> {
        let tables = self.tables;
        let s = tables.session(r);
        self.note(|| match s {
            Some(_) => Read::SessionExists(r.to_string()),
            None => Read::NoSession(r.to_string()),
        });
        s
    }

    /// Whether the session owns an unfinished task.
    pub fn session_busy(&mut self, r: &str) -> bool {
        let tables = self.tables;
        let busy = tables.session(r).is_some_and(|s| {
            s.tasks
                .iter()
                .any(|t| self.row(t).is_some_and(|t| !t.status.is_completed()))
        });
        if !busy {
            self.note(|| Read::SessionIdle(r.to_string()));
        }
        busy
    }

    // ----- writes -----

    pub fn insert_task(&mut self, r: String, row: TaskRow) {
        self.plan.writes.push(Write::InsertTask(r, Box::new(row)));
    }

    /// Writes `row` as task `r`'s new value if any field differs from the current one
    /// (stamps and `subtasks` are not fields a decision writes). Returns whether it did.
    /// A write that grows the task (or reopens it) must fit the task limits and its
    /// user's quotas (`quota.rs`); one that does not is never refused, so the GC and
    /// completions always get through.
    pub fn update_task(&mut self, r: &str, mut row: TaskRow) -> Result<bool, DbError> {
        let tables = self.tables;
        let Some(current) = self.row(r) else {
            return Ok(false);
        };
        row.stamp = current.stamp;
        if row.subtasks != current.subtasks {
            row.subtasks = current.subtasks.clone();
        }
        // (A NaN progress written over NaN counts as a change; harmless.)
        if row == *current {
            return Ok(false);
        }
        let grew = quota::task_bytes(&row) > quota::task_bytes(current);
        let reopened = current.status.is_completed() && !row.status.is_completed();
        if grew {
            quota::check_task(&tables.ledger.limits, &row)?;
        }
        if (grew || reopened)
            && let Some(user) = super::owner(&tables.sessions, &tables.ledger, &row.session)
        {
            // The ledger counts the tables' row: a view over a combined write's projected
            // row (`Tx::over`) is checked against that, as if the writes before it had
            // committed, exactly as this write alone would be after them.
            let counted = tables.task(r).or(Some(current));
            tables.ledger.check_growth(&user, counted, &row)?;
        }
        self.plan.writes.push(Write::UpdateTask {
            r: r.to_string(),
            row: Box::new(row),
            was_unfinished: !current.status.is_completed(),
        });
        Ok(true)
    }

    pub fn delete_task(&mut self, r: &str) {
        if let Some(t) = self.row(r) {
            self.plan.writes.push(Write::DeleteTask {
                r: r.to_string(),
                parent: t.subtask_of.to_string(),
                session: t.session.to_string(),
                unfinished: !t.status.is_completed(),
                created: t.stamp.created,
            });
        }
    }

    /// A new session, or new values for one (see [`SessionRow::fields`]).
    pub fn put_session(&mut self, r: String, row: SessionRow) {
        self.plan.writes.push(Write::PutSession(r, Box::new(row)));
    }

    pub fn delete_session(&mut self, r: &str) {
        self.plan.writes.push(Write::DeleteSession(r.to_string()));
    }

    pub fn touch(&mut self, class: &'static str, r: &str) {
        self.plan.writes.push(Write::Touch(class, r.to_string()));
    }

    /// Claims a task inserted by this plan: this process runs its work (see [`Write::Claim`]).
    pub fn claim(&mut self, r: &str) {
        self.plan.writes.push(Write::Claim(r.to_string()));
    }

    /// Whether the plan writes anything yet.
    pub fn writes_nothing(&self) -> bool {
        self.plan.writes.is_empty()
    }

    /// Whether the plan already deletes this session (a decision that logs several out).
    pub fn deletes_session(&self, r: &str) -> bool {
        self.plan
            .writes
            .iter()
            .any(|w| matches!(w, Write::DeleteSession(x) if x == r))
    }
}
