//! The key layout in etcd, and how rows are encoded in it.
//!
//! Everything lives under one prefix (`etcd-prefix`, default `/xapi-taskd/`), so several
//! deployments can share a cluster. Two ranges below it:
//!
//! - `d/…`, the data, written only by this backend's transactions and watched by every
//!   front-end (one watch on the whole range feeds its cache). Every transaction that
//!   writes also puts `d/meta/last` (its own id), so a linearizable read of that one key
//!   names the newest revision a cache must have applied to be current, and a front-end
//!   can tell whether an ambiguous commit of its own went through.
//! - `c/…`, control keys that change outside those transactions (leases, the election,
//!   users): not watched, so they never move the data's revisions.
//!
//! | Key | Value |
//! |---|---|
//! | `d/meta/pool`, `d/meta/host` | the singleton's ref and row (created once, by whichever front-end starts first) |
//! | `d/meta/last` | id of the last transaction |
//! | `d/task/<ref>` | the task row (its `subtasks` and stamps are derived: stamps are the key's create and mod revisions) |
//! | `d/link/<parent>/<child>` | empty; the `subtask_of` ↔ `subtasks` relation, so a child's creation never rewrites its parent |
//! | `d/pend/<session>/<task>` | empty; exists while the task is unfinished, so "this session owns no unfinished task" is one range compare |
//! | `d/async/<task>` | id of the front-end running the task's `Async.` call |
//! | `d/session/<ref>` | the session row |
//! | `d/tomb/<ref>` | a deleted task (`class`, `created`, `parent`); its mod revision is the deletion's |
//! | `c/format` | the layout's version |
//! | `c/node/<id>` | a live front-end (on a lease) |
//! | `c/gc` | the garbage collector's election |
//! | `c/users` | the users file (`users.json`'s content) |
//! | `c/import` | present while `cluster import` writes the prefix (its id): front-ends and the `user` commands refuse the prefix until it is gone ([`super::import`]) |

use serde::{Deserialize, Serialize};

use crate::db::{HostRow, PoolRow};

/// The layout's version; a cluster written by a newer one is refused.
pub const FORMAT: u64 = 1;

/// A deleted task, as `d/tomb/<ref>` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tomb {
    pub class: String,
    pub created: u64,
    pub parent: String,
}

/// `d/meta/pool`'s value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pool {
    pub r: String,
    pub row: PoolRow,
}

/// `d/meta/host`'s value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub r: String,
    pub row: HostRow,
}

/// Keys under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// A data key, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum DataKey<'a> {
    Pool,
    Host,
    Last,
    Task(&'a str),
    Link(&'a str, &'a str),
    Pending,
    Async,
    Session(&'a str),
    Tomb(&'a str),
    Other,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Keys { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The watched range: every data key.
    pub fn data(&self) -> String {
        format!("{}d/", self.prefix)
    }

    pub fn pool(&self) -> String {
        format!("{}d/meta/pool", self.prefix)
    }

    pub fn host(&self) -> String {
        format!("{}d/meta/host", self.prefix)
    }

    pub fn last(&self) -> String {
        format!("{}d/meta/last", self.prefix)
    }

    pub fn task(&self, r: &str) -> String {
        format!("{}d/task/{r}", self.prefix)
    }

    pub fn link(&self, parent: &str, child: &str) -> String {
        format!("{}d/link/{parent}/{child}", self.prefix)
    }

    /// Prefix of every link from `parent` to its children.
    pub fn links_of(&self, parent: &str) -> String {
        format!("{}d/link/{parent}/", self.prefix)
    }

    pub fn pending(&self, session: &str, task: &str) -> String {
        format!("{}d/pend/{session}/{task}", self.prefix)
    }

    /// Prefix of a session's unfinished tasks.
    pub fn pending_of(&self, session: &str) -> String {
        format!("{}d/pend/{session}/", self.prefix)
    }

    pub fn async_task(&self, task: &str) -> String {
        format!("{}d/async/{task}", self.prefix)
    }

    pub fn async_all(&self) -> String {
        format!("{}d/async/", self.prefix)
    }

    pub fn session(&self, r: &str) -> String {
        format!("{}d/session/{r}", self.prefix)
    }

    pub fn tomb(&self, r: &str) -> String {
        format!("{}d/tomb/{r}", self.prefix)
    }

    pub fn format(&self) -> String {
        format!("{}c/format", self.prefix)
    }

    pub fn node(&self, id: &str) -> String {
        format!("{}c/node/{id}", self.prefix)
    }

    pub fn nodes(&self) -> String {
        format!("{}c/node/", self.prefix)
    }

    pub fn election(&self) -> String {
        format!("{}c/gc", self.prefix)
    }

    pub fn users(&self) -> String {
        format!("{}c/users", self.prefix)
    }

    pub fn import(&self) -> String {
        format!("{}c/import", self.prefix)
    }

    /// What a data key names.
    pub fn parse<'a>(&self, key: &'a [u8]) -> DataKey<'a> {
        let Ok(key) = std::str::from_utf8(key) else {
            return DataKey::Other;
        };
        let Some(rest) = key
            .strip_prefix(self.prefix.as_str())
            .and_then(|k| k.strip_prefix("d/"))
        else {
            return DataKey::Other;
        };
        let (kind, tail) = rest.split_once('/').unwrap_or((rest, ""));
        match kind {
            "meta" => match tail {
                "pool" => DataKey::Pool,
                "host" => DataKey::Host,
                "last" => DataKey::Last,
                _ => DataKey::Other,
            },
            "task" => DataKey::Task(tail),
            "link" => match tail.split_once('/') {
                Some((p, c)) => DataKey::Link(p, c),
                None => DataKey::Other,
            },
            "pend" => DataKey::Pending,
            "async" => DataKey::Async,
            "session" => DataKey::Session(tail),
            "tomb" => DataKey::Tomb(tail),
            _ => DataKey::Other,
        }
    }
}

/// The end of the range of every key starting with `prefix` (etcd's `range_end`).
pub fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = Keys::new("/x");
        assert_eq!(k.task("OpaqueRef:a"), "/x/d/task/OpaqueRef:a");
        assert_eq!(
            k.parse(k.task("OpaqueRef:a").as_bytes()),
            DataKey::Task("OpaqueRef:a")
        );
        assert_eq!(
            k.parse(k.link("OpaqueRef:p", "OpaqueRef:c").as_bytes()),
            DataKey::Link("OpaqueRef:p", "OpaqueRef:c")
        );
        assert_eq!(k.parse(k.last().as_bytes()), DataKey::Last);
        assert_eq!(k.parse(b"/y/d/task/a"), DataKey::Other);
        // Outside the watched range: the import's marker never moves the data's revision.
        assert!(!k.import().starts_with(&k.data()));
        assert_eq!(range_end("/x/d/"), b"/x/d0".to_vec());
    }
}
