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
use super::{Inner, decode};
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

/// Applies the events of one revision (all of one transaction) under one write lock.
fn apply_revision(inner: &Inner, t: &mut Tables, rev: u64, events: &[etcd_client::Event]) {
    let keys = &inner.keys;
    // Rows first, then links: a child's insertion precedes the link that names it.
    let mut links = Vec::new();
    for ev in events {
        let Some(kv) = ev.kv() else { continue };
        let put = ev.event_type() == EventType::Put;
        match keys.parse(kv.key()) {
            DataKey::Task(r) if put => match decode::<TaskRow>(kv) {
                Ok(row) if t.task(r).is_some() => t.update_task_at(r, row, rev),
                Ok(row) => t.insert_task_at(r.to_string(), row, rev),
                Err(e) => tracing::error!("etcd cache: {e}"),
            },
            DataKey::Task(r) => {
                t.delete_task_at(r, rev);
            }
            DataKey::Session(r) if put => match decode::<SessionRow>(kv) {
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
                if let Ok(id) = std::str::from_utf8(kv.value()) {
                    inner.observed(id, rev);
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

/// Replaces the tables' content with a fresh snapshot (after a compaction), keeping what
/// lives only in memory.
async fn reload(inner: &Inner, tables: &RwLock<Tables>) -> Result<u64, BackendError> {
    let snap = snapshot(inner).await?;
    let mut fresh = build(&inner.keys, &snap)?;
    let mut t = tables.write();
    fresh.take_memory_of(&mut t);
    *t = fresh;
    Ok(snap.revision)
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
        loop {
            // A member that goes quiet is left after a while (progress notifications
            // arrive every few minutes at most on an idle cluster, so this only bounds
            // how long a dead connection goes unnoticed when keep-alives fail).
            let msg = tokio::time::timeout(Duration::from_secs(600), stream.message()).await;
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
                apply_revision(&inner, &mut tables.write(), rev, &evs);
                applied = rev;
                inner.applied(rev);
            }
        }
        inner.set_watching(false);
        if inner.is_closed() {
            return;
        }
        inner.conn.failed(i);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
