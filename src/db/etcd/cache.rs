//! The front-end's cache: the tables, loaded from etcd at start and kept current by one
//! watch on the data range.
//!
//! Every front-end applies the same committed revisions in the same order, each under one
//! write lock, at the revision etcd gave it: so the generations (and `event.from` tokens)
//! are the cluster's, the same on every front-end, and the tables only ever hold committed
//! state. Derived state is rebuilt from keys: a task's stamps are its key's create and mod
//! revisions, a parent's `subtasks` and its extra modifications come from `d/link/` keys
//! and from tombstones (`d/tomb/`, which keep `del` events answerable across restarts).
//!
//! When the watch breaks, it resumes from the next revision on another member; when that
//! revision has been compacted away, the cache reloads (the change index is rebuilt from
//! create/mod revisions and tombstones, so tokens stay valid).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, KeyValue, WatchOptions};
use parking_lot::RwLock;

use super::keys::{DataKey, Host, Keys, Pool, Tomb, range_end};
use super::txn::Op;
use super::{Inner, decode, decode_bytes};
use crate::db::backend::BackendError;
use crate::db::{SessionRow, Stamp, Tables, TaskRow};

/// Everything under the data range at one revision.
pub struct Snapshot {
    pub revision: u64,
    pub kvs: Vec<KeyValue>,
}

/// Reads the whole data range at one revision, in pages.
pub async fn snapshot(inner: &Inner) -> Result<Snapshot, BackendError> {
    let data = inner.keys.data();
    let end = range_end(&data);
    let mut kvs = Vec::new();
    let mut from = data.clone().into_bytes();
    let mut revision = 0i64;
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(1000);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let key = from.clone();
        let resp = inner
            .conn
            .retry(inner.budget, |mut c| {
                let (key, options) = (key.clone(), options.clone());
                async move { c.get(key, Some(options)).await }
            })
            .await?;
        if revision == 0 {
            revision = resp.header().map_or(0, |h| h.revision());
        }
        let more = resp.more();
        let mut page = resp.kvs().to_vec();
        if let Some(last) = page.last() {
            from = last.key().to_vec();
            from.push(0);
        }
        kvs.append(&mut page);
        if !more {
            break;
        }
    }
    Ok(Snapshot {
        revision: revision.max(0) as u64,
        kvs,
    })
}

fn stamp(kv: &KeyValue) -> Stamp {
    Stamp {
        created: kv.create_revision().max(0) as u64,
        modified: kv.mod_revision().max(0) as u64,
    }
}

/// Tables holding exactly `snap` (the pool and host rows must be in it).
pub fn build(keys: &Keys, snap: &Snapshot) -> Result<Tables, BackendError> {
    let (mut pool, mut host) = (None, None);
    let mut tasks = Vec::new();
    let mut links = Vec::new();
    let mut sessions = Vec::new();
    let mut tombs = Vec::new();
    for kv in &snap.kvs {
        match keys.parse(kv.key()) {
            DataKey::Pool => pool = Some((decode::<Pool>(kv)?, stamp(kv))),
            DataKey::Host => host = Some((decode::<Host>(kv)?, stamp(kv))),
            DataKey::Task(r) => tasks.push((r, decode::<TaskRow>(kv)?, stamp(kv))),
            DataKey::Link(p, c) => links.push((kv.create_revision(), p, c)),
            DataKey::Session(r) => {
                let mut s = decode::<SessionRow>(kv)?;
                s.revision = kv.mod_revision().max(0) as u64;
                sessions.push((r, s));
            }
            DataKey::Tomb(r) => tombs.push((r, decode::<Tomb>(kv)?, stamp(kv).modified)),
            _ => {}
        }
    }
    let ((pool, pool_stamp), (host, host_stamp)) = match (pool, host) {
        (Some(p), Some(h)) => (p, h),
        _ => return Err(BackendError("the cluster has no pool and host yet".into())),
    };
    let mut t = Tables::for_cache(pool.r, pool.row, host.r, host.row);
    t.load_singletons(pool_stamp, host_stamp);
    for (r, s) in sessions {
        t.put_session(r.to_string(), s);
    }
    for (r, row, s) in tasks {
        t.load_task(r, row, s);
    }
    links.sort_by_key(|l| l.0);
    for (rev, p, c) in links {
        t.load_parent_change(p, Some(c), rev.max(0) as u64);
    }
    tombs.sort_by_key(|t| t.2);
    for (r, tomb, g) in tombs {
        t.load_tombstone(r, tomb.created, g);
        t.load_parent_change(&tomb.parent, None, g);
    }
    t.advance_to(snap.revision);
    Ok(t)
}

/// One key's change in a revision: as the watch reports it, or as this front-end knows
/// its own transaction made it ([`apply_own`]).
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub put: bool,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> Change<'a> {
    fn of(ev: &'a etcd_client::Event) -> Option<Change<'a>> {
        let kv = ev.kv()?;
        Some(Change {
            put: ev.event_type() == EventType::Put,
            key: kv.key(),
            value: kv.value(),
        })
    }
}

/// Applies the changes of one revision (all of one transaction) under one write lock;
/// `observed` learns the id of the transaction that made it.
fn apply_revision(
    keys: &Keys,
    observed: &dyn Fn(&str, u64),
    t: &mut Tables,
    rev: u64,
    changes: &[Change<'_>],
) {
    // Rows first, then links: a child's insertion precedes the link that names it.
    let mut links = Vec::new();
    for c in changes {
        let (put, key) = (c.put, c.key);
        match keys.parse(key) {
            DataKey::Task(r) if put => match decode_bytes::<TaskRow>(key, c.value) {
                Ok(row) if t.task(r).is_some() => t.update_task_at(r, row, rev),
                Ok(row) => t.insert_task_at(r.to_string(), row, rev),
                Err(e) => tracing::error!("etcd cache: {e}"),
            },
            DataKey::Task(r) => {
                t.delete_task_at(r, rev);
            }
            DataKey::Session(r) if put => match decode_bytes::<SessionRow>(key, c.value) {
                Ok(mut s) => {
                    s.revision = rev;
                    t.put_session(r.to_string(), s);
                }
                Err(e) => tracing::error!("etcd cache: {e}"),
            },
            DataKey::Session(r) => {
                t.remove_session(r);
            }
            DataKey::Pool if put => {
                let r = t.pool_ref.clone();
                t.touch_at("pool", &r, rev);
            }
            DataKey::Host if put => {
                let r = t.host_ref.clone();
                t.touch_at("host", &r, rev);
            }
            DataKey::Link(p, c) => links.push((put, p.to_string(), c.to_string())),
            DataKey::Last if put => {
                if let Ok(id) = std::str::from_utf8(c.value) {
                    observed(id, rev);
                }
            }
            _ => {}
        }
    }
    for (put, p, c) in links {
        if put {
            t.link_child_at(&p, &c, rev);
        } else {
            t.unlink_child_at(&p, &c, rev);
        }
    }
    t.advance_to(rev);
}

/// A digest of what a revision changes in the cache (the keys [`apply_revision`] acts
/// on, in key order): how the watch's delivery of a revision this front-end applied
/// itself is checked against what it applied.
fn digest(keys: &Keys, changes: &[Change<'_>]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut relevant: Vec<&Change<'_>> = changes
        .iter()
        .filter(|c| {
            matches!(
                keys.parse(c.key),
                DataKey::Task(_)
                    | DataKey::Session(_)
                    | DataKey::Pool
                    | DataKey::Host
                    | DataKey::Link(..)
            )
        })
        .collect();
    relevant.sort_by(|a, b| (a.key, a.put).cmp(&(b.key, b.put)));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in relevant {
        (c.put, c.key, c.value).hash(&mut h);
    }
    h.finish()
}

/// Applies this front-end's own transaction, committed at `rev`, to tables that hold
/// exactly revision `rev - 1` (the caller checked, under the same write lock): then `rev`
/// can only be that transaction, and what etcd holds now is known without waiting for
/// the watch. The operations become the changes the watch will report for `rev` — a
/// put always; a delete only of a key that exists at `rev - 1` (etcd reports no event
/// for deleting a missing key); a range delete of a parent's links as one delete per
/// child the parent has — and go through the same [`apply_revision`] as the watch's, so
/// the stamps, events and wake-ups are the same. Returns their [`digest`].
pub fn apply_own(keys: &Keys, t: &mut Tables, rev: u64, ops: &[Op]) -> u64 {
    // Each range delete's keys, in key order (as etcd reports them).
    let link_keys: Vec<Vec<String>> = ops
        .iter()
        .filter_map(|op| match op {
            Op::DeleteLinksOf(p) => {
                let mut children: Vec<String> = t
                    .task(p)
                    .map(|row| row.subtasks.iter().map(|c| keys.link(p, c)).collect())
                    .unwrap_or_default();
                children.sort();
                Some(children)
            }
            _ => None,
        })
        .collect();
    let mut groups = link_keys.iter();
    let exists = |key: &str| match keys.parse(key.as_bytes()) {
        DataKey::Task(r) => t.task(r).is_some(),
        DataKey::Session(r) => t.session(r).is_some(),
        DataKey::Link(p, c) => t
            .task(p)
            .is_some_and(|row| row.subtasks.iter().any(|x| x == c)),
        // Not the cache's: it neither tracks nor applies them.
        _ => false,
    };
    let mut changes = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Put(k, v) => changes.push(Change {
                put: true,
                key: k.as_bytes(),
                value: v,
            }),
            Op::Delete(k) if exists(k) => changes.push(Change {
                put: false,
                key: k.as_bytes(),
                value: b"",
            }),
            Op::Delete(_) => {}
            Op::DeleteLinksOf(_) => {
                for k in groups.next().into_iter().flatten() {
                    changes.push(Change {
                        put: false,
                        key: k.as_bytes(),
                        value: b"",
                    });
                }
            }
        }
    }
    let d = digest(keys, &changes);
    // The id in `d/meta/last` is the caller's own: nobody waits to observe it.
    apply_revision(keys, &|_, _| {}, t, rev, &changes);
    d
}

/// Replaces the tables' content with a fresh snapshot (after a compaction), keeping what
/// lives only in memory.
async fn reload(inner: &Inner, tables: &RwLock<Tables>) -> Result<u64, BackendError> {
    for _ in 0..8 {
        let snap = snapshot(inner).await?;
        let mut fresh = build(&inner.keys, &snap)?;
        let mut t = tables.write();
        // An own write applied meanwhile ([`apply_own`]) may be newer than the snapshot:
        // the tables never go back, so read again.
        if t.generation() > snap.revision {
            continue;
        }
        fresh.take_memory_of(&mut t);
        *t = fresh;
        return Ok(snap.revision);
    }
    Err(BackendError(
        "the cache could not be reloaded: its own writes kept overtaking the snapshot".into(),
    ))
}

/// The watch loop: runs until the backend is closed.
pub async fn run(inner: Arc<Inner>, tables: Arc<RwLock<Tables>>, mut applied: u64) {
    let data = inner.keys.data();
    let end = range_end(&data);
    let mut pause = Duration::from_millis(50);
    loop {
        if inner.is_closed() {
            return;
        }
        // Subscribed before the member is chosen: a move after this reconnects.
        let mut moves = inner.conn.moves();
        let (i, mut client) = inner.conn.client();
        let options = WatchOptions::new()
            .with_range(end.clone())
            .with_start_revision(applied as i64 + 1)
            .with_progress_notify();
        let stream = tokio::time::timeout(
            inner.conn.timeout,
            client.watch(data.clone(), Some(options)),
        );
        let mut stream = match stream.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!("etcd watch on {}: {e}", inner.conn.endpoint(i));
                inner.conn.failed(i);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(_) => {
                inner.conn.failed(i);
                continue;
            }
        };
        inner.set_watching(true);
        let mut moved = false;
        'stream: loop {
            // A member that goes quiet is left after a while (progress notifications
            // arrive every few minutes at most on an idle cluster, so this only bounds
            // how long a dead connection goes unnoticed when keep-alives fail).
            let next = tokio::time::timeout(Duration::from_secs(600), stream.message());
            let msg = tokio::select! {
                msg = next => msg,
                // The front-end moved (to the leader, or off a member that failed:
                // [`super::conn`]): the watch follows, from the next revision, so that the
                // member that acknowledges this front-end's writes is the one whose watch
                // streams carry them.
                Ok(()) = moves.changed() => {
                    moved = true;
                    break 'stream;
                }
            };
            let resp = match msg {
                Ok(Ok(Some(resp))) => resp,
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
            };
            if resp.canceled() {
                if resp.compact_revision() > 0 {
                    tracing::warn!(
                        "etcd watch: revision {} was compacted; reloading",
                        applied + 1
                    );
                    match reload(&inner, &tables).await {
                        Ok(rev) => {
                            applied = rev;
                            inner.applied(rev);
                        }
                        Err(e) => tracing::error!("etcd reload: {e}"),
                    }
                }
                break;
            }
            pause = Duration::from_millis(50);
            let events = resp.events();
            if events.is_empty() {
                continue;
            }
            // One response may carry several revisions: apply them one by one.
            let mut by_rev: Vec<(u64, Vec<etcd_client::Event>)> = Vec::new();
            for ev in events {
                let rev = ev.kv().map_or(0, |kv| kv.mod_revision()).max(0) as u64;
                match by_rev.last_mut() {
                    Some((r, list)) if *r == rev => list.push(ev.clone()),
                    _ => by_rev.push((rev, vec![ev.clone()])),
                }
            }
            for (rev, evs) in by_rev {
                if rev <= applied {
                    continue;
                }
                tracing::trace!(rev, n = evs.len(), "apply");
                let changes: Vec<Change<'_>> = evs.iter().filter_map(Change::of).collect();
                let ahead = {
                    let mut t = tables.write();
                    let ahead = t.generation() >= rev;
                    if !ahead {
                        let observed = |id: &str, rev| inner.observed(id, rev);
                        apply_revision(&inner.keys, &observed, &mut t, rev, &changes);
                        inner.applied(rev);
                    }
                    ahead
                };
                if !ahead {
                    inner.own_passed(rev);
                    applied = rev;
                    continue;
                }
                // Applied already, by the front-end's own write that made it: the watch
                // must report exactly what that write applied.
                let expected = inner.own_passed(rev);
                applied = rev;
                if expected != Some(digest(&inner.keys, &changes)) {
                    tracing::error!(
                        "etcd cache: BUG: revision {rev} as the watch reports it differs from \
                         what this front-end's own write applied ({} changes reported, \
                         {}); reloading the cache",
                        changes.len(),
                        if expected.is_some() {
                            "different"
                        } else {
                            "no record of it"
                        }
                    );
                    match reload(&inner, &tables).await {
                        Ok(r) => {
                            applied = r;
                            inner.applied(r);
                        }
                        Err(e) => tracing::error!("etcd reload: {e}"),
                    }
                    break 'stream;
                }
            }
        }
        inner.set_watching(false);
        if inner.is_closed() {
            return;
        }
        if moved {
            continue;
        }
        inner.conn.failed(i);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{HostRow, NULL_REF, PoolRow};

    /// The tables as `event.from` and the getters see them.
    fn shown(t: &Tables, refs: &[&str]) -> String {
        let changes: Vec<String> = t
            .changes_since(0)
            .map(|(g, c)| format!("{g} {c:?}"))
            .collect();
        let rows: Vec<String> = refs
            .iter()
            .map(|r| format!("{r} {:?}", t.task(r)))
            .collect();
        format!("{} {changes:?} {rows:?}", t.generation())
    }

    /// Revision 10: task P with children C1 and C2 (linked), the cache of every front-end.
    fn family() -> Tables {
        let mut t = Tables::for_cache(
            "OpaqueRef:pool".into(),
            PoolRow::default(),
            "OpaqueRef:host".into(),
            HostRow::default(),
        );
        let mut p = TaskRow::new("p", "", NULL_REF, NULL_REF);
        (p.uuid, p.created) = (uuid::Uuid::from_u128(1), 0);
        t.insert_task_at("P".into(), p, 8);
        for (i, c) in ["C1", "C2"].into_iter().enumerate() {
            let mut row = TaskRow::new(c, "", NULL_REF, NULL_REF);
            row.uuid = uuid::Uuid::from_u128(2 + i as u128);
            (row.created, row.subtask_of) = (0, "P".into());
            t.insert_task_at(c.into(), row, 9);
            t.link_child_at("P", c, 9);
        }
        t.advance_to(10);
        t
    }

    fn put<'a>(key: &'a str, value: &'a [u8]) -> Change<'a> {
        Change {
            put: true,
            key: key.as_bytes(),
            value,
        }
    }

    fn del(key: &str) -> Change<'_> {
        Change {
            put: false,
            key: key.as_bytes(),
            value: b"",
        }
    }

    const NOBODY: &dyn Fn(&str, u64) = &|_, _| {};

    #[test]
    fn deleting_a_parent_applies_as_the_watch_reports_it() {
        let k = Keys::new("/x");
        // The deletion's transaction (txn::prepare) and what etcd's watch reports for it:
        // a range delete as one event per key in key order, a pending key the cache does
        // not track, the tombstone and the id.
        let ops = [
            Op::Delete(k.task("P")),
            Op::DeleteLinksOf("P".into()),
            Op::Delete(k.pending("S", "P")),
            Op::Put(k.tomb("P"), b"{}".to_vec()),
            Op::Put(k.last(), b"id".to_vec()),
        ];
        let (task, l1, l2, pend, tomb, last) = (
            k.task("P"),
            k.link("P", "C1"),
            k.link("P", "C2"),
            k.pending("S", "P"),
            k.tomb("P"),
            k.last(),
        );
        let watch = [
            del(&task),
            del(&l1),
            del(&l2),
            del(&pend),
            put(&tomb, b"{}"),
            put(&last, b"id"),
        ];
        let mut mine = family();
        let d = apply_own(&k, &mut mine, 11, &ops);
        let mut theirs = family();
        apply_revision(&k, NOBODY, &mut theirs, 11, &watch);
        let refs = ["P", "C1", "C2"];
        assert_eq!(shown(&mine, &refs), shown(&theirs, &refs));
        assert_eq!(d, digest(&k, &watch));
        // One link fewer is told apart.
        assert_ne!(d, digest(&k, &[del(&task), del(&l1), put(&last, b"id")]));
    }

    #[test]
    fn an_update_and_a_deletion_of_a_key_that_is_gone_apply_as_the_watch_reports_them() {
        let k = Keys::new("/x");
        let mut row = family().task("C1").unwrap().clone();
        row.progress = 0.5;
        let value = crate::db::etcd::encode(&row);
        let (p, c1, c2, l1, l2, last) = (
            k.task("P"),
            k.task("C1"),
            k.task("C2"),
            k.link("P", "C1"),
            k.link("P", "C2"),
            k.last(),
        );
        let (mut mine, mut theirs) = (family(), family());
        // Revision 11: C1's new row (its parent's `subtasks` and the stamps stay derived).
        let d = apply_own(&k, &mut mine, 11, &[Op::Put(c1.clone(), value.clone())]);
        apply_revision(&k, NOBODY, &mut theirs, 11, &[put(&c1, &value)]);
        assert_eq!(d, digest(&k, &[put(&c1, &value)]));
        // Revision 12, another front-end's: P and its links go.
        for t in [&mut mine, &mut theirs] {
            let gone = [del(&p), del(&l1), del(&l2)];
            apply_revision(&k, NOBODY, t, 12, &gone);
        }
        // Revision 13: C2 goes; its link to P is gone already, so etcd reports no event
        // for deleting it, and neither does the own apply.
        let ops = [
            Op::Delete(c2.clone()),
            Op::DeleteLinksOf("C2".into()),
            Op::Delete(k.link("P", "C2")),
            Op::Put(last.clone(), b"id".to_vec()),
        ];
        let d = apply_own(&k, &mut mine, 13, &ops);
        let watch = [del(&c2), put(&last, b"id")];
        apply_revision(&k, NOBODY, &mut theirs, 13, &watch);
        assert_eq!(d, digest(&k, &watch));
        let refs = ["P", "C1", "C2"];
        assert_eq!(shown(&mine, &refs), shown(&theirs, &refs));
        assert!(shown(&mine, &refs).contains("progress: 0.5"));
    }
}
