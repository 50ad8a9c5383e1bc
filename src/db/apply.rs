//! How changes reach the tables: the primitives every backend uses, each at an explicit
//! generation, and [`Tables::apply`], the local backend's way of applying a plan.
//!
//! The local backend gives every change a generation of its own (as xapi does); a shared
//! backend applies what its store committed at the store's revision, so several changes
//! (a child task and its parent's `subtasks`) can share one generation. The primitives
//! therefore take the generation as an argument and never invent one.

use std::sync::Arc;

use super::changes::Op;
use super::plan::Write;
use super::store::Tombstone;
use super::{RowSnapshot, SessionRow, Stamp, Tables, TaskRow, now};

/// Where the tables stand after a plan was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSet {
    /// The sequence number to wait for before answering (see [`super::journal`]).
    pub seq: u64,
    pub generation: u64,
}

impl Tables {
    /// Applies a plan's writes in order, each change at a new generation.
    pub(super) fn apply(&mut self, writes: Vec<Write>) -> WriteSet {
        for w in writes {
            match w {
                Write::InsertTask(r, row) => {
                    let g = self.bump();
                    let parent = row.subtask_of.clone();
                    self.insert_task_at(r.clone(), *row, g);
                    if self.tasks.contains_key(parent.as_str()) {
                        // A change of its own, at a generation of its own, as in xapi.
                        let g = self.bump();
                        self.link_child_at(&parent, &r, g);
                    }
                }
                Write::UpdateTask { r, row, .. } => {
                    let g = self.bump();
                    self.update_task_at(&r, *row, g);
                }
                Write::DeleteTask { r, .. } => {
                    let g = self.bump();
                    if let Some(task) = self.delete_task_at(&r, g)
                        && self.tasks.contains_key(task.subtask_of.as_str())
                    {
                        let g = self.bump();
                        self.unlink_child_at(&task.subtask_of, &r, g);
                    }
                }
                Write::PutSession(r, row) => self.put_session(r, *row),
                Write::DeleteSession(r) => {
                    self.remove_session(&r);
                }
                Write::Touch(class, r) => {
                    let g = self.bump();
                    self.touch_at(class, &r, g);
                }
                Write::Claim(_) => {}
            }
        }
        WriteSet {
            seq: self.seq,
            generation: self.generation,
        }
    }

    /// Moves the generation forward to `g` (a shared backend's revision) and wakes event
    /// waiters. Never backwards.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn advance_to(&mut self, g: u64) {
        if g > self.generation {
            self.generation = g;
            self.marks.moved();
            self.notify.send_replace(g);
        }
    }

    // ----- bulk loading (a shared backend's cache, at start or after a reload) -----

    /// Sets the pool's and host's generations.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn load_singletons(&mut self, pool: Stamp, host: Stamp) {
        let (p, h) = (self.pool_ref.clone(), self.host_ref.clone());
        self.changes.touch(
            "pool",
            p.into(),
            Some(self.pool_stamp.modified),
            pool.modified,
        );
        self.changes.touch(
            "host",
            h.into(),
            Some(self.host_stamp.modified),
            host.modified,
        );
        self.pool_stamp = pool;
        self.host_stamp = host;
    }

    /// A task as stored, with its generations (sessions must be loaded first).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn load_task(&mut self, r: &str, mut task: TaskRow, stamp: Stamp) {
        task.stamp = stamp;
        task.subtasks.clear();
        let key: Arc<str> = r.into();
        if let Some(session) = self.sessions.get_mut(task.session.as_str()) {
            session.tasks.insert(key.clone());
        }
        self.task_by_uuid.insert(task.uuid, key.clone());
        self.unfinished_tasks += usize::from(!task.status.is_completed());
        self.changes
            .touch("task", key.clone(), None, stamp.modified);
        self.tasks.insert(key, Box::new(task));
    }

    /// A stored change of task `r` at `g` that its row does not show (a link to a child,
    /// a child's deletion): its last modification is at least `g`. `child` joins its
    /// `subtasks` when given (links are loaded in creation order).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn load_parent_change(&mut self, r: &str, child: Option<&str>, g: u64) {
        let Some((key, t)) = self.tasks.get_key_value(r) else {
            return;
        };
        let key = key.clone();
        let previous = t.stamp.modified;
        if previous < g {
            self.changes.touch("task", key, Some(previous), g);
        }
        if let Some(t) = self.tasks.get_mut(r) {
            t.stamp.modified = previous.max(g);
            if let Some(c) = child {
                t.subtasks.push(c.to_string());
            }
        }
    }

    /// A stored deletion (tombstone) of a task created at `created`, deleted at `g`.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn load_tombstone(&mut self, r: &str, created: u64, g: u64) {
        self.changes.delete("task", r.into(), 0, created, g);
    }

    fn snapshot_task(&self, r: &str) -> Option<RowSnapshot> {
        if !self.legacy.wants_snapshots() {
            return None;
        }
        self.tasks
            .get(r)
            .map(|t| RowSnapshot::Task(TaskRow::clone(t)))
    }

    /// Records that task `r` (previously modified at `previous`) changed at `g`.
    fn task_changed(&mut self, r: &str, previous: Option<u64>, g: u64, op: Op) {
        self.mark_task(r);
        if let Some(key) = self.task_key(r) {
            self.changes.touch("task", key, previous, g);
        }
        let snap = self.snapshot_task(r);
        self.legacy.push("task", op, r, now(), snap);
    }

    /// Inserts a new task created at `g`, linked to its session (not yet to its parent:
    /// see [`Tables::link_child_at`]).
    pub(crate) fn insert_task_at(&mut self, r: String, mut task: TaskRow, g: u64) {
        task.stamp = Stamp {
            created: g,
            modified: g,
        };
        task.subtasks.clear();
        let key: Arc<str> = r.as_str().into();
        if let Some(session) = self.sessions.get_mut(task.session.as_str()) {
            session.tasks.insert(key.clone());
        }
        self.task_by_uuid.insert(task.uuid, key.clone());
        self.unfinished_tasks += usize::from(!task.status.is_completed());
        if let Some(user) = super::owner(&self.sessions, &self.ledger, &task.session) {
            self.ledger.record(&user, None, Some(&task));
        }
        self.tasks.insert(key, Box::new(task));
        self.task_changed(&r, None, g, Op::Add);
    }

    /// The parent's `subtasks` gains `child`: a change of the parent at `g`.
    pub(crate) fn link_child_at(&mut self, parent: &str, child: &str, g: u64) {
        let Some(p) = self.tasks.get_mut(parent) else {
            return;
        };
        if !p.subtasks.iter().any(|c| c == child) {
            p.subtasks.push(child.to_string());
        }
        let previous = p.stamp.modified;
        p.stamp.modified = g;
        self.task_changed(parent, Some(previous), g, Op::Mod);
    }

    /// The parent's `subtasks` loses `child`: a change of the parent at `g`.
    pub(crate) fn unlink_child_at(&mut self, parent: &str, child: &str, g: u64) {
        let Some(p) = self.tasks.get_mut(parent) else {
            return;
        };
        p.subtasks.retain(|c| c != child);
        let previous = p.stamp.modified;
        p.stamp.modified = g;
        self.task_changed(parent, Some(previous), g, Op::Mod);
    }

    /// New field values for task `r`, changed at `g`; its `subtasks` and creation stay.
    pub(crate) fn update_task_at(&mut self, r: &str, mut row: TaskRow, g: u64) {
        let Some(task) = self.tasks.get_mut(r) else {
            return;
        };
        match (task.status.is_completed(), row.status.is_completed()) {
            (false, true) => self.unfinished_tasks -= 1,
            (true, false) => self.unfinished_tasks += 1,
            _ => {}
        }
        let previous = task.stamp.modified;
        row.subtasks = std::mem::take(&mut task.subtasks);
        row.stamp = Stamp {
            created: task.stamp.created,
            modified: g,
        };
        if let Some(user) = super::owner(&self.sessions, &self.ledger, &row.session) {
            let user = user.into_owned();
            self.ledger.record(&user, Some(task), Some(&row));
        }
        **task = row;
        self.task_changed(r, Some(previous), g, Op::Mod);
    }

    /// Deletes task `r` at `g` (a tombstone keeps its deletion for `event.from`), unlinking
    /// it from its session. Its own subtasks keep a dangling `subtask_of`, as in xapi
    /// (destroy never cascades); its parent is the caller's to unlink.
    pub(crate) fn delete_task_at(&mut self, r: &str, g: u64) -> Option<TaskRow> {
        let (key, task) = self.tasks.remove_entry(r)?;
        self.unfinished_tasks -= usize::from(!task.status.is_completed());
        if let Some(user) = super::owner(&self.sessions, &self.ledger, &task.session) {
            let user = user.into_owned();
            self.ledger.record(&user, Some(&task), None);
        }
        if !self.sessions.contains_key(task.session.as_str()) {
            self.ledger.departed_task_gone(&task.session);
        }
        self.task_by_uuid.remove(&task.uuid);
        self.changes
            .delete("task", key, task.stamp.modified, task.stamp.created, g);
        self.mark_task(r);
        if let Some(d) = &mut self.dirty {
            d.tombstones.push((
                g,
                Tombstone {
                    class: "task".to_string(),
                    r: r.to_string(),
                    created: task.stamp.created,
                },
            ));
        }
        let snap = self
            .legacy
            .wants_snapshots()
            .then(|| RowSnapshot::Task(TaskRow::clone(&task)));
        self.legacy.push("task", Op::Del, r, now(), snap);
        if let Some(session) = self.sessions.get_mut(task.session.as_str()) {
            session.tasks.remove(r);
        }
        Some(*task)
    }

    /// Marks an object changed at `g` without changing it (`event.inject`).
    pub(crate) fn touch_at(&mut self, class: &str, r: &str, g: u64) {
        let now = now();
        match class {
            "task" => {
                let Some(t) = self.tasks.get_mut(r) else {
                    return;
                };
                let previous = t.stamp.modified;
                t.stamp.modified = g;
                self.task_changed(r, Some(previous), g, Op::Mod);
            }
            "pool" if r == self.pool_ref => {
                self.mark_singletons();
                let previous = std::mem::replace(&mut self.pool_stamp.modified, g);
                self.changes.touch("pool", r.into(), Some(previous), g);
                let snap = self
                    .legacy
                    .wants_snapshots()
                    .then(|| RowSnapshot::Pool(self.pool.clone()));
                self.legacy.push("pool", Op::Mod, r, now, snap);
            }
            "host" if r == self.host_ref => {
                self.mark_singletons();
                let previous = std::mem::replace(&mut self.host_stamp.modified, g);
                self.changes.touch("host", r.into(), Some(previous), g);
                let snap = self
                    .legacy
                    .wants_snapshots()
                    .then(|| RowSnapshot::Host(self.host.clone()));
                self.legacy.push("host", Op::Mod, r, now, snap);
            }
            _ => {}
        }
    }

    /// Inserts session `r`, or gives it new field values, keeping what the database
    /// maintains (`tasks`, the legacy subscription). Sessions generate no events (xapi:
    /// `gen_events:false`), so the generation does not move.
    pub(crate) fn put_session(&mut self, r: String, mut row: SessionRow) {
        self.mark_session(&r);
        match self.sessions.get_mut(&r) {
            Some(s) => {
                row.tasks = std::mem::take(&mut s.tasks);
                row.legacy_events = s.legacy_events.take();
                if row.uuid != s.uuid {
                    self.session_by_uuid.remove(&s.uuid);
                    self.session_by_uuid.insert(row.uuid.clone(), r.clone());
                }
                *s = row;
            }
            None => {
                // A session is committed before any task that names it (a task's
                // creation requires its session), so it owns nothing yet.
                row.tasks.clear();
                row.legacy_events = None;
                self.ledger.session_added(&row.auth_user_name);
                self.session_by_uuid.insert(row.uuid.clone(), r.clone());
                self.sessions.insert(r, row);
                self.sessions_changed(false);
            }
        }
    }

    /// Deletes session `r`. Its tasks stay, with a dangling `session` (xapi's behaviour,
    /// which makes them owned by nobody). Wakes every event waiter, so that the session's
    /// blocked calls answer `SESSION_INVALID`.
    pub(crate) fn remove_session(&mut self, r: &str) -> Option<SessionRow> {
        let session = self.sessions.remove(r)?;
        self.sessions_changed(true);
        self.mark_session(r);
        self.ledger
            .session_removed(r, &session.auth_user_name, session.tasks.len());
        self.session_by_uuid.remove(&session.uuid);
        if session.legacy_events.is_some() {
            self.legacy.listeners -= 1;
            if self.legacy.listeners == 0 {
                self.legacy.clear();
            }
        }
        self.notify.send_modify(|_| ());
        Some(session)
    }
}
