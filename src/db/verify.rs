//! Checks of the rows a store gives back, before they are served.
//!
//! redb's page checksums catch damage to the file; these catch rows that decode but
//! cannot have been written by this server (a store edited by hand, written by a buggy
//! version, or assembled from pieces): they break an invariant the in-memory database
//! relies on, and serving them would spread the damage (a uuid shared by two tasks makes
//! `get_by_uuid` answer one of them at random; a `subtasks` entry without its child makes
//! the parent's record name a task that does not exist).
//!
//! Pure: a list of rows in, a list of problems out (empty = sound).

use std::collections::{HashMap, HashSet};

use super::NULL_REF;
use super::store::Loaded;

/// At most this many problems are listed; the rest are counted.
const MAX_LISTED: usize = 10;

/// The problems found in `loaded`, each naming the row; empty if it is sound.
pub fn rows(loaded: &Loaded) -> Vec<String> {
    let mut problems = Vec::new();
    let mut task_uuids = HashMap::new();
    for (r, task) in &loaded.tasks {
        if !is_ref(r) {
            problems.push(format!("task key {r:?} is not a reference"));
        }
        if let Some(other) = task_uuids.insert(task.uuid, r) {
            problems.push(format!(
                "tasks {other} and {r} have the same uuid {}",
                task.uuid
            ));
        }
    }
    let mut session_uuids = HashMap::new();
    for (r, session) in &loaded.sessions {
        if !is_ref(r) {
            problems.push(format!("session key {r:?} is not a reference"));
        }
        if let Some(other) = session_uuids.insert(session.uuid.as_str(), r) {
            problems.push(format!(
                "sessions {other} and {r} have the same uuid {}",
                session.uuid
            ));
        }
    }
    // subtask_of ↔ subtasks: a parent lists exactly its existing children. A child whose
    // parent is gone keeps a dangling subtask_of (destroy does not cascade, as in xapi).
    let tasks: HashMap<&str, &super::TaskRow> =
        loaded.tasks.iter().map(|(r, t)| (r.as_str(), t)).collect();
    for (r, task) in &loaded.tasks {
        let mut seen = HashSet::new();
        for child in &task.subtasks {
            if !seen.insert(child.as_str()) {
                problems.push(format!("task {r} lists subtask {child} twice"));
                continue;
            }
            match tasks.get(child.as_str()) {
                None => problems.push(format!("task {r} lists subtask {child}, which is missing")),
                Some(c) if c.subtask_of != r.as_str() => problems.push(format!(
                    "task {r} lists subtask {child}, whose subtask_of is {}",
                    c.subtask_of
                )),
                Some(_) => {}
            }
        }
        if let Some(parent) = tasks.get(task.subtask_of.as_str())
            && !parent.subtasks.iter().any(|c| c == r)
        {
            problems.push(format!(
                "task {r} is a subtask of {}, which does not list it",
                task.subtask_of
            ));
        }
    }
    if problems.len() > MAX_LISTED {
        let more = problems.len() - MAX_LISTED;
        problems.truncate(MAX_LISTED);
        problems.push(format!("and {more} more"));
    }
    problems
}

/// Whether `r` has the form of a reference this server makes (`OpaqueRef:` and more,
/// not the null ref).
fn is_ref(r: &str) -> bool {
    r.len() > "OpaqueRef:".len() && r.starts_with("OpaqueRef:") && r != NULL_REF
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{SessionRow, TaskRow};

    fn task(label: &str) -> TaskRow {
        TaskRow::new(label, "", NULL_REF, "OpaqueRef:h")
    }

    fn family() -> Loaded {
        let mut parent = task("p");
        let mut child = task("c");
        child.subtask_of = "OpaqueRef:p".into();
        parent.subtasks.push("OpaqueRef:c".into());
        let mut orphan = task("o");
        orphan.subtask_of = "OpaqueRef:gone".into();
        Loaded {
            tasks: vec![
                ("OpaqueRef:p".into(), parent),
                ("OpaqueRef:c".into(), child),
                ("OpaqueRef:o".into(), orphan),
            ],
            ..Loaded::default()
        }
    }

    #[test]
    fn a_sound_store_has_no_problems_and_a_dangling_parent_is_sound() {
        assert_eq!(rows(&family()), Vec::<String>::new());
    }

    #[test]
    fn broken_links_are_named() {
        let mut l = family();
        l.tasks[0].1.subtasks.push("OpaqueRef:nobody".into());
        l.tasks[0].1.subtasks.push("OpaqueRef:o".into());
        let p = rows(&l);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("OpaqueRef:nobody, which is missing"), "{p:?}");
        assert!(p[1].contains("whose subtask_of is OpaqueRef:gone"), "{p:?}");

        let mut l = family();
        l.tasks[0].1.subtasks.clear();
        let p = rows(&l);
        assert_eq!(
            p,
            vec!["task OpaqueRef:c is a subtask of OpaqueRef:p, which does not list it"]
        );
    }

    #[test]
    fn shared_uuids_and_bad_keys_are_named() {
        let mut l = family();
        l.tasks[1].1.uuid = l.tasks[0].1.uuid;
        l.tasks[2].0 = "junk".into();
        let s = SessionRow {
            uuid: "u".into(),
            this_host: String::new(),
            this_user: String::new(),
            last_active: 0,
            pool: false,
            other_config: Vec::new(),
            is_local_superuser: true,
            subject: String::new(),
            validation_time: 0,
            auth_user_sid: String::new(),
            auth_user_name: "root".into(),
            role: None,
            tasks: Default::default(),
            parent: NULL_REF.into(),
            originator: String::new(),
            client_certificate: false,
            legacy_events: None,
            revision: 0,
        };
        l.sessions = vec![
            ("OpaqueRef:s1".into(), s.clone()),
            ("OpaqueRef:NULL".into(), s),
        ];
        let p = rows(&l);
        assert!(p.iter().any(|m| m.contains("have the same uuid")), "{p:?}");
        assert!(
            p.iter().any(|m| m.contains("\"junk\" is not a reference")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.contains("\"OpaqueRef:NULL\"")), "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.contains("sessions OpaqueRef:s1 and OpaqueRef:NULL")),
            "{p:?}"
        );
    }

    #[test]
    fn the_list_is_bounded() {
        let mut l = family();
        for i in 0..50 {
            l.tasks[0].1.subtasks.push(format!("OpaqueRef:x{i}"));
        }
        let p = rows(&l);
        assert_eq!(p.len(), MAX_LISTED + 1);
        assert_eq!(p[MAX_LISTED], "and 40 more");
    }
}
