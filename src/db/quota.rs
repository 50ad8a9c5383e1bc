//! Per-user accounting, so that no user can exhaust what all users share: the unfinished
//! tasks, the bytes tasks hold, and sessions, counted per user name and checked in O(1).
//!
//! A task belongs to the user whose session created it. Its session may be logged out
//! while the task lives on (xapi keeps such tasks, owned by nobody); the ledger then
//! remembers the departed session's user for as long as that session still has tasks, so
//! logging out and in again does not reset a user's count. After a restart, tasks whose
//! session is gone count for nobody (only the global caps apply to them).
//!
//! What a task "holds" is the bytes of the strings a client can set (label, description,
//! result, error_info, other_config) plus [`ROW_OVERHEAD`] for the row itself, so the
//! per-user byte quota bounds the number of a user's tasks whatever their status.

use std::collections::HashMap;

use super::{DbError, TaskRow};

/// What a task row costs besides its client-set strings (the row, its indices and change
/// entry: performance.md measures about 870 bytes a task), rounded up.
pub const ROW_OVERHEAD: usize = 1024;

/// Limits on tasks; `Default` is the documented defaults (`config.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLimits {
    /// Bytes one client-set field may hold (a map or list: all its keys and values).
    pub field_bytes: usize,
    /// Bytes all client-set fields of one task may hold together.
    pub task_bytes: usize,
    /// Bytes the tasks of one user may hold together, [`ROW_OVERHEAD`] included.
    pub user_bytes: usize,
    /// Unfinished (pending or cancelling) tasks one user may have.
    pub user_unfinished: usize,
}

impl Default for TaskLimits {
    fn default() -> TaskLimits {
        TaskLimits {
            field_bytes: 64 * 1024,
            task_bytes: 128 * 1024,
            user_bytes: 64 * 1024 * 1024,
            user_unfinished: 10_000,
        }
    }
}

/// What one user holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub unfinished: usize,
    pub bytes: usize,
    pub sessions: usize,
}

fn list_bytes(items: &[String]) -> usize {
    items.iter().map(String::len).sum()
}

fn map_bytes(pairs: &[(String, String)]) -> usize {
    pairs.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// The client-set fields of a task and their sizes, in the datamodel's names.
pub fn field_sizes(t: &TaskRow) -> [(&'static str, usize); 5] {
    [
        ("name_label", t.name_label.len()),
        ("name_description", t.name_description.len()),
        ("result", t.result.len()),
        ("error_info", list_bytes(&t.error_info)),
        ("other_config", map_bytes(&t.other_config)),
    ]
}

/// What a task holds against its user's byte quota.
pub fn task_bytes(t: &TaskRow) -> usize {
    ROW_OVERHEAD + field_sizes(t).iter().map(|(_, n)| n).sum::<usize>()
}

/// Every string a task row holds, server-maintained lists included (a parent's
/// `subtasks` grows with its children), plus [`ROW_OVERHEAD`]: what a copy of the row
/// costs, for the legacy event queue's byte budget.
pub fn row_bytes(t: &TaskRow) -> usize {
    let fixed = [
        &t.session,
        &t.resident_on,
        &t.forwarded_to,
        &t.type_,
        &t.subtask_of,
        &t.backtrace,
    ];
    task_bytes(t)
        + list_bytes(&t.allowed_operations)
        + map_bytes(&t.current_operations)
        + list_bytes(&t.subtasks)
        + fixed.iter().map(|s| s.len()).sum::<usize>()
}

/// The per-field and per-task caps.
pub fn check_task(limits: &TaskLimits, t: &TaskRow) -> Result<(), DbError> {
    let sizes = field_sizes(t);
    if let Some(&(field, bytes)) = sizes.iter().find(|(_, n)| *n > limits.field_bytes) {
        return Err(DbError::TooLarge {
            field,
            bytes,
            limit: limits.field_bytes,
        });
    }
    let bytes: usize = sizes.iter().map(|(_, n)| n).sum();
    if bytes > limits.task_bytes {
        return Err(DbError::TooLarge {
            field: "task",
            bytes,
            limit: limits.task_bytes,
        });
    }
    Ok(())
}

/// Usage per user name, and the users of logged-out sessions that still own tasks.
#[derive(Debug, Default)]
pub struct Ledger {
    pub limits: TaskLimits,
    users: HashMap<Box<str>, Usage>,
    /// Session ref → (user, how many tasks still name it).
    departed: HashMap<Box<str>, (Box<str>, usize)>,
}

impl Ledger {
    pub fn usage(&self, user: &str) -> Usage {
        self.users.get(user).copied().unwrap_or_default()
    }

    fn entry(&mut self, user: &str) -> &mut Usage {
        if !self.users.contains_key(user) {
            self.users.insert(user.into(), Usage::default());
        }
        self.users.get_mut(user).expect("inserted above")
    }

    /// Drops a user's entry once it holds nothing, so the map is bounded by the users
    /// who hold something.
    fn tidy(&mut self, user: &str) {
        if self.users.get(user) == Some(&Usage::default()) {
            self.users.remove(user);
        }
    }

    /// The user of a logged-out session that still owns tasks.
    pub fn departed_user(&self, session: &str) -> Option<&str> {
        self.departed.get(session).map(|(u, _)| &**u)
    }

    /// Whether `user` may add a task like `t` (a new one, or one growing from `old`).
    pub fn check_growth(
        &self,
        user: &str,
        old: Option<&TaskRow>,
        t: &TaskRow,
    ) -> Result<(), DbError> {
        let usage = self.usage(user);
        let was_unfinished = old.is_some_and(|o| !o.status.is_completed());
        if !t.status.is_completed()
            && !was_unfinished
            && usage.unfinished >= self.limits.user_unfinished
        {
            return Err(DbError::TooManyPending);
        }
        let (before, after) = (old.map_or(0, task_bytes), task_bytes(t));
        if after > before && usage.bytes + after - before > self.limits.user_bytes {
            return Err(DbError::UserQuota {
                user: user.to_string(),
                bytes: usage.bytes + after - before,
                limit: self.limits.user_bytes,
            });
        }
        Ok(())
    }

    /// Records a change of one of `user`'s tasks from `old` to `new` (None: absent).
    pub fn record(&mut self, user: &str, old: Option<&TaskRow>, new: Option<&TaskRow>) {
        let unfinished =
            |t: Option<&TaskRow>| usize::from(t.is_some_and(|t| !t.status.is_completed()));
        let bytes = |t: Option<&TaskRow>| t.map_or(0, task_bytes);
        if unfinished(old) == unfinished(new) && bytes(old) == bytes(new) {
            return; // most writes (progress, results of the same size) change neither
        }
        let u = self.entry(user);
        u.unfinished = (u.unfinished + unfinished(new)).saturating_sub(unfinished(old));
        u.bytes = (u.bytes + bytes(new)).saturating_sub(bytes(old));
        self.tidy(user);
    }

    pub fn session_added(&mut self, user: &str) {
        self.entry(user).sessions += 1;
    }

    /// A session of `user` went; `tasks` of its tasks remain.
    pub fn session_removed(&mut self, session: &str, user: &str, tasks: usize) {
        let u = self.entry(user);
        u.sessions = u.sessions.saturating_sub(1);
        self.tidy(user);
        if tasks > 0 {
            self.departed.insert(session.into(), (user.into(), tasks));
        }
    }

    /// A task of the departed `session` was deleted.
    pub fn departed_task_gone(&mut self, session: &str) {
        if let Some((_, n)) = self.departed.get_mut(session) {
            *n -= 1;
            if *n == 0 {
                self.departed.remove(session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::TaskStatus;

    fn task(label: &str) -> TaskRow {
        TaskRow::new(label, "", "s", "h")
    }

    #[test]
    fn fields_and_tasks_are_capped() {
        let limits = TaskLimits {
            field_bytes: 10,
            task_bytes: 15,
            ..TaskLimits::default()
        };
        assert!(check_task(&limits, &task("0123456789")).is_ok());
        let err = check_task(&limits, &task("0123456789x")).unwrap_err();
        assert_eq!(
            err,
            DbError::TooLarge {
                field: "name_label",
                bytes: 11,
                limit: 10
            }
        );
        let mut t = task("0123456789");
        t.other_config.push(("k".into(), "vvvvv".into()));
        assert_eq!(
            check_task(&limits, &t).unwrap_err(),
            DbError::TooLarge {
                field: "task",
                bytes: 16,
                limit: 15
            }
        );
    }

    #[test]
    fn a_row_copy_counts_the_lists_the_server_keeps() {
        let mut t = task("p");
        let base = row_bytes(&t);
        assert!(base > task_bytes(&t), "refs and constants count too");
        t.subtasks = (0..10).map(|i| format!("OpaqueRef:{i:036}")).collect();
        assert_eq!(row_bytes(&t), base + 10 * 46);
        assert_eq!(
            task_bytes(&t),
            ROW_OVERHEAD + 1,
            "not against the user's quota"
        );
    }

    #[test]
    fn usage_follows_tasks_and_quotas_refuse_only_growth() {
        let mut l = Ledger {
            limits: TaskLimits {
                user_unfinished: 1,
                user_bytes: 2 * ROW_OVERHEAD + 10,
                ..TaskLimits::default()
            },
            ..Ledger::default()
        };
        let a = task("a");
        l.check_growth("alice", None, &a).unwrap();
        l.record("alice", None, Some(&a));
        assert_eq!(l.usage("alice").unfinished, 1);
        assert_eq!(
            l.check_growth("alice", None, &a),
            Err(DbError::TooManyPending)
        );
        // Another user is not affected.
        l.check_growth("root", None, &a).unwrap();
        let mut done = a.clone();
        done.status = TaskStatus::Success;
        l.record("alice", Some(&a), Some(&done));
        assert_eq!(l.usage("alice").unfinished, 0);
        l.check_growth("alice", None, &a).unwrap();
        l.record("alice", None, Some(&a));
        // Bytes: growing past the quota is refused, shrinking never is.
        let mut big = a.clone();
        big.name_label = "x".repeat(20).into();
        assert!(matches!(
            l.check_growth("alice", Some(&a), &big),
            Err(DbError::UserQuota { .. })
        ));
        l.check_growth("alice", Some(&big), &a).unwrap();
        l.record("alice", Some(&a), None);
        l.record("alice", Some(&done), None);
        assert_eq!(l.usage("alice"), Usage::default());
        assert!(l.users.is_empty(), "empty entries are dropped");
    }

    fn session(user: &str) -> crate::db::SessionRow {
        crate::db::SessionRow {
            auth_user_name: user.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn the_tables_keep_the_ledger_current() {
        use crate::db::{Db, HostRow, PoolRow, new_ref};
        let db = Db::new(new_ref(), PoolRow::default(), new_ref(), HostRow::default());
        db.configure(
            &TaskLimits {
                field_bytes: 100,
                ..TaskLimits::default()
            },
            1 << 20,
        );
        let mut t = db.memory_mut();
        // Decisions applied as the local backend applies them.
        let decide = |t: &mut crate::db::Tables,
                      f: &dyn Fn(&mut crate::db::Tx<'_>) -> Result<(), DbError>|
         -> Result<(), DbError> {
            let mut tx = crate::db::Tx::new(t, false);
            f(&mut tx)?;
            let plan = tx.into_plan();
            t.apply(plan.writes);
            Ok(())
        };
        let update = |t: &mut crate::db::Tables, change: &dyn Fn(&mut TaskRow)| {
            decide(t, &|tx| {
                let mut row = tx.task("T").unwrap().clone();
                change(&mut row);
                tx.update_task("T", row).map(|_| ())
            })
        };
        decide(&mut t, &|tx| {
            tx.put_session("S".into(), session("alice"));
            Ok(())
        })
        .unwrap();
        assert_eq!(t.usage("alice").sessions, 1);
        let task = TaskRow::new("abc", "", "S", "h");
        t.check_new_task(&task).unwrap();
        decide(&mut t, &|tx| {
            tx.insert_task("T".into(), task.clone());
            Ok(())
        })
        .unwrap();
        let u = t.usage("alice");
        assert_eq!((u.unfinished, u.bytes), (1, ROW_OVERHEAD + 3));
        // A write over a limit is refused and leaves the task as it was.
        let err = update(&mut t, &|t| t.name_label = "x".repeat(101).into());
        assert!(matches!(
            err,
            Err(DbError::TooLarge {
                field: "name_label",
                ..
            })
        ));
        assert_eq!(t.task("T").unwrap().name_label, "abc");
        update(&mut t, &|t| t.status = TaskStatus::Success).unwrap();
        assert_eq!(t.usage("alice").unfinished, 0);
        // Logging out keeps the task counted for alice until it goes.
        decide(&mut t, &|tx| {
            tx.delete_session("S");
            Ok(())
        })
        .unwrap();
        assert_eq!(t.usage("alice").bytes, ROW_OVERHEAD + 3);
        assert_eq!(t.usage("alice").sessions, 0);
        decide(&mut t, &|tx| {
            tx.delete_task("T");
            Ok(())
        })
        .unwrap();
        assert_eq!(t.usage("alice"), Usage::default());
        assert!(t.ledger.departed.is_empty());
    }

    #[test]
    fn a_view_over_a_projected_row_is_checked_against_the_counted_row() {
        use crate::db::{Db, HostRow, PoolRow, new_ref};
        // The user's quota holds the task as the tables have it; an earlier combined write
        // (not yet committed) shrank it, and a later one grows it back by less: alone,
        // after the first, the second fits, so on the projected view it must fit too.
        let db = Db::new(new_ref(), PoolRow::default(), new_ref(), HostRow::default());
        let mut t = db.memory_mut();
        let mut task = TaskRow::new(&"x".repeat(50), "", "S", "h");
        let mut s = session("alice");
        s.auth_user_name = "alice".into();
        t.sessions.insert("S".into(), s);
        t.ledger.session_added("alice");
        t.check_new_task(&task).unwrap();
        t.tasks.insert("T".into(), Box::new(task.clone()));
        t.ledger.record("alice", None, Some(&task));
        t.ledger.limits.user_bytes = t.usage("alice").bytes;
        task.name_label = "".into();
        let projected = task.clone();
        let mut grown = projected.clone();
        grown.name_label = "y".repeat(40).into();
        let mut tx = crate::db::Tx::over(&t, "T", &projected);
        assert_eq!(tx.update_task("T", grown.clone()), Ok(true));
        // Growing past what the tables' row holds is still refused.
        grown.name_label = "y".repeat(51).into();
        let mut tx = crate::db::Tx::over(&t, "T", &projected);
        assert!(matches!(
            tx.update_task("T", grown),
            Err(DbError::UserQuota { .. })
        ));
    }

    #[test]
    fn departed_sessions_keep_their_user_until_their_last_task_goes() {
        let mut l = Ledger::default();
        l.session_added("alice");
        l.session_removed("S", "alice", 2);
        assert_eq!(l.departed_user("S"), Some("alice"));
        l.departed_task_gone("S");
        assert_eq!(l.departed_user("S"), Some("alice"));
        l.departed_task_gone("S");
        assert_eq!(l.departed_user("S"), None);
        l.session_added("bob");
        l.session_removed("T", "bob", 0);
        assert_eq!(l.departed_user("T"), None);
        assert_eq!(l.usage("bob").sessions, 0);
    }
}
