//! `cluster import`: a single-node store written into an empty etcd prefix, as the
//! front-ends would have written it themselves.
//!
//! The steps, each one or more etcd transactions:
//!
//! 1. **Claim.** The prefix must be empty, or hold only an unfinished import (its marker
//!    `c/import` present, `c/format` absent). One transaction, compared on exactly what
//!    was looked at, clears what an unfinished import left and puts this import's marker
//!    (a new id). Front-ends refuse a prefix with the marker, so none can start on it
//!    from here until the last step.
//! 2. **Tokens.** etcd's revision becomes the deployment's generation (its `event.from`
//!    tokens). If it is below the single node's generation, puts of the marker advance
//!    it past: every imported row then carries a revision above every token the single
//!    node gave out, so a client resuming `event.from` with its old token sees each row
//!    once more (never misses a change) and tokens never go backwards.
//! 3. **Data**, in bounded transactions (`ops` operations, `bytes` bytes each, under
//!    etcd's `--max-txn-ops` and request size): each task row (through the front-ends'
//!    own encoding) with its `d/pend/` key if unfinished, the `d/link/` keys of parents
//!    to children (in the order of each parent's `subtasks`), the sessions, the task
//!    tombstones. Every transaction compares the marker's value
//!    with this import's id: an import started again elsewhere fences this one out.
//! 4. **Publish.** One transaction removes the marker and puts `c/format`, the pool and
//!    host rows, `d/meta/last` and the users file (its bytes as they are: password
//!    hashes are never re-hashed, decoded or logged). Until this commits, the prefix is
//!    an unfinished import; killing the import anywhere before leaves it so, and
//!    running the import again starts it over.

use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp};

use super::keys::{self, Keys, Tomb};
use super::{Config, Identity, Inner, encode};
use crate::db::backend::BackendError;
use crate::db::store::Loaded;
use crate::db::{NULL_REF, new_uuid};

/// What a single node holds, to be imported.
pub struct Source {
    pub loaded: Loaded,
    pub identity: Identity,
    /// `users.json`'s bytes, if the data directory has one.
    pub users: Option<Vec<u8>>,
}

/// Bounds on each data transaction.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub ops: usize,
    pub bytes: usize,
}

/// What an import wrote.
#[derive(Debug, Default)]
pub struct Summary {
    pub tasks: usize,
    pub unfinished: usize,
    pub sessions: usize,
    pub tombstones: usize,
    /// Tombstones of classes the cluster does not keep (only tasks').
    pub tombstones_skipped: usize,
    pub users: bool,
    /// An unfinished import found and started over.
    pub restarted: bool,
    pub bytes: usize,
    pub transactions: usize,
    /// Revisions added so that tokens do not go backwards.
    pub padding: u64,
    /// The single node's generation, and the deployment's revision once published.
    pub generation: u64,
    pub revision: u64,
    pub elapsed: Duration,
}

/// Most marker puts in flight while advancing the revision.
const PADDING_IN_FLIGHT: usize = 32;

/// Runs the import; `progress` hears a line now and then (the first data transaction,
/// then about once a second).
pub async fn run(
    config: &Config,
    source: Source,
    batching: Batching,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Summary, BackendError> {
    let started = Instant::now();
    let inner = Inner::connect(config).await?;
    let keys = &inner.keys;
    let mut summary = Summary {
        generation: source.loaded.generation,
        ..Summary::default()
    };
    let id = new_uuid();
    summary.restarted = claim(&inner, &id).await?;
    summary.transactions += 1;
    if summary.restarted {
        progress("an unfinished import was found under the prefix: starting it over".into());
    }

    // 2. Tokens.
    let rev = revision(&inner).await?;
    if rev < source.loaded.generation {
        let n = source.loaded.generation - rev;
        progress(format!(
            "advancing etcd's revision from {rev} past the single node's generation {} \
             ({n} puts) so that event.from tokens carry on",
            source.loaded.generation
        ));
        pad(&inner, &id, n).await?;
        summary.padding = n;
        summary.transactions += n as usize;
    }

    // 3. Data.
    let mut batch = Batch::new(&inner, &id, batching);
    let present: std::collections::HashSet<&str> = source
        .loaded
        .tasks
        .iter()
        .map(|(r, _)| r.as_str())
        .collect();
    let mut last_report = Instant::now();
    let mut reported_first = false;
    for (r, row) in &source.loaded.tasks {
        let mut ops = vec![(keys.task(r), super::txn::task_value(row))];
        if !row.status.is_completed() {
            ops.push((keys.pending(&row.session, r), Vec::new()));
            summary.unfinished += 1;
        }
        summary.tasks += 1;
        // A task's row and its pending key go in one transaction.
        if batch.add(ops, &mut summary).await? && (!reported_first || due(&mut last_report)) {
            reported_first = true;
            progress(format!(
                "{} transactions written ({} of {} tasks)",
                summary.transactions,
                summary.tasks,
                source.loaded.tasks.len()
            ));
        }
    }
    // A parent's `subtasks` is its links in creation order (their create revisions; one
    // revision's in key order): a link shares a transaction with the parent's previous
    // one only if its key sorts after it, so the order the single node kept is kept.
    for (parent, row) in &source.loaded.tasks {
        let mut previous: Option<String> = None;
        for child in row.subtasks.iter().filter(|c| present.contains(c.as_str())) {
            let key = keys.link(parent, child);
            if previous.as_ref().is_some_and(|p| *p > key) {
                batch.flush(&mut summary).await?;
            }
            previous = Some(key.clone());
            batch.add(vec![(key, Vec::new())], &mut summary).await?;
        }
    }
    for (r, s) in &source.loaded.sessions {
        batch
            .add(vec![(keys.session(r), encode(s))], &mut summary)
            .await?;
        summary.sessions += 1;
    }
    for (_, t) in &source.loaded.tombstones {
        if t.class != "task" {
            summary.tombstones_skipped += 1;
            continue;
        }
        let tomb = Tomb {
            class: t.class.clone(),
            created: t.created,
            parent: NULL_REF.to_string(),
        };
        batch
            .add(vec![(keys.tomb(&t.r), encode(&tomb))], &mut summary)
            .await?;
        summary.tombstones += 1;
    }
    batch.flush(&mut summary).await?;

    // 4. Publish.
    let pool = keys::Pool {
        r: source.identity.pool_ref,
        row: source.identity.pool,
    };
    let host = keys::Host {
        r: source.identity.host_ref,
        row: source.identity.host,
    };
    // The publish's own mark: a resend after an ambiguous failure finds its compares
    // false when the first send did commit, and this value in `d/meta/last` tells that
    // case from another import's.
    let published = new_uuid();
    let mut ops = vec![
        TxnOp::delete(keys.import(), None),
        TxnOp::put(keys.format(), keys::FORMAT.to_string(), None),
        TxnOp::put(keys.pool(), encode(&pool), None),
        TxnOp::put(keys.host(), encode(&host), None),
        TxnOp::put(keys.last(), published.as_str(), None),
    ];
    if let Some(users) = source.users {
        summary.bytes += users.len();
        summary.users = true;
        ops.push(TxnOp::put(keys.users(), users, None));
    }
    let txn = Txn::new()
        .when([
            Compare::value(keys.import(), CompareOp::Equal, id.as_str()),
            Compare::version(keys.format(), CompareOp::Equal, 0),
        ])
        .and_then(ops);
    let resp = send(&inner, txn).await?;
    summary.revision = if resp.succeeded() {
        resp.header().map_or(0, |h| h.revision()).max(0) as u64
    } else {
        holds(&inner, keys.last(), &published)
            .await?
            .ok_or_else(|| fenced(keys))?
    };
    summary.transactions += 1;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The revision at which `key` was last written, if it now holds `value`: how a step
/// whose resend found its compares false (after an ambiguous failure) tells that its
/// first send committed from someone else's change.
async fn holds(inner: &Inner, key: String, value: &str) -> Result<Option<u64>, BackendError> {
    let kv = super::get_with(inner, key, GetOptions::new()).await?;
    Ok(kv
        .filter(|kv| kv.value() == value.as_bytes())
        .map(|kv| kv.mod_revision().max(0) as u64))
}

fn due(last: &mut Instant) -> bool {
    if last.elapsed() >= Duration::from_secs(1) {
        *last = Instant::now();
        true
    } else {
        false
    }
}

fn fenced(keys: &Keys) -> BackendError {
    BackendError(format!(
        "another import took over {} meanwhile (or it was published): this one stopped",
        keys.prefix()
    ))
}

/// Step 1: whether an unfinished import was found (and is started over).
async fn claim(inner: &Inner, id: &str) -> Result<bool, BackendError> {
    let keys = &inner.keys;
    let prefix = keys.prefix().to_string();
    let resp = inner
        .conn
        .retry(inner.budget, |mut c| {
            let p = prefix.clone();
            async move {
                c.get(
                    p,
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_keys_only()
                            .with_limit(1),
                    ),
                )
                .await
            }
        })
        .await?;
    let any = resp.count() > 0;
    let format = super::get(inner, keys.format()).await?;
    let marker = super::get(inner, keys.import()).await?;
    if format.is_some() {
        return Err(BackendError(format!(
            "{} already holds a deployment (its front-ends' data); nothing was written. \
             Import into another --etcd-prefix, or remove that deployment first \
             (etcdctl del --prefix {}) if it is really to be replaced",
            keys.prefix(),
            keys.prefix()
        )));
    }
    if any && marker.is_none() {
        return Err(BackendError(format!(
            "{} holds keys, but no deployment and no unfinished import; nothing was \
             written. Import into an empty --etcd-prefix",
            keys.prefix()
        )));
    }
    let seen = match &marker {
        Some(kv) => Compare::mod_revision(keys.import(), CompareOp::Equal, kv.mod_revision()),
        None => Compare::version(keys.import(), CompareOp::Equal, 0),
    };
    let whole = Some(DeleteOptions::new().with_prefix());
    let txn = Txn::new()
        .when([seen, Compare::version(keys.format(), CompareOp::Equal, 0)])
        .and_then([
            TxnOp::delete(keys.data(), whole.clone()),
            TxnOp::delete(keys.users(), None),
            TxnOp::delete(keys.nodes(), whole),
            TxnOp::put(keys.import(), id, None),
        ]);
    if !send(inner, txn).await?.succeeded() && holds(inner, keys.import(), id).await?.is_none() {
        return Err(BackendError(format!(
            "{} changed while the import looked at it (a front-end or another import \
             started): nothing was written",
            keys.prefix()
        )));
    }
    Ok(marker.is_some())
}

/// The cluster's current revision.
async fn revision(inner: &Inner) -> Result<u64, BackendError> {
    let resp = inner
        .conn
        .retry(inner.budget, |mut c| {
            let k = inner.keys.import();
            async move { c.get(k, Some(GetOptions::new().with_keys_only())).await }
        })
        .await?;
    Ok(resp.header().map_or(0, |h| h.revision()).max(0) as u64)
}

/// Step 2: `n` more revisions, each a fenced put of the marker.
async fn pad(inner: &Inner, id: &str, n: u64) -> Result<(), BackendError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let key = inner.keys.import();
    let txn = Txn::new()
        .when([Compare::value(key.as_str(), CompareOp::Equal, id)])
        .and_then([TxnOp::put(key.as_str(), id, None)]);
    stream::iter(0..n)
        .map(|_| {
            let txn = txn.clone();
            async move {
                // A resend after an ambiguous failure only adds a revision: harmless.
                if send(inner, txn).await?.succeeded() {
                    Ok(())
                } else {
                    Err(fenced(&inner.keys))
                }
            }
        })
        .buffer_unordered(PADDING_IN_FLIGHT)
        .try_collect::<()>()
        .await
}

async fn send(inner: &Inner, txn: Txn) -> Result<etcd_client::TxnResponse, BackendError> {
    inner
        .conn
        .retry(inner.budget, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
}

/// Step 3's transactions: puts gathered up to the bounds, each sent fenced by the marker.
struct Batch<'a> {
    inner: &'a Inner,
    id: &'a str,
    bounds: Batching,
    ops: Vec<TxnOp>,
    bytes: usize,
}

impl<'a> Batch<'a> {
    fn new(inner: &'a Inner, id: &'a str, bounds: Batching) -> Batch<'a> {
        Batch {
            inner,
            id,
            bounds,
            ops: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds one row's keys (together in one transaction); whether a transaction was sent.
    async fn add(
        &mut self,
        puts: Vec<(String, Vec<u8>)>,
        summary: &mut Summary,
    ) -> Result<bool, BackendError> {
        let size: usize = puts.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > self.bounds.bytes || puts.len() > self.bounds.ops {
            return Err(BackendError(format!(
                "{} is {size} bytes in {} keys, more than one transaction may carry \
                 (--batch-bytes {}, --batch-ops {})",
                puts[0].0,
                puts.len(),
                self.bounds.bytes,
                self.bounds.ops
            )));
        }
        let mut sent = false;
        if self.ops.len() + puts.len() > self.bounds.ops || self.bytes + size > self.bounds.bytes {
            self.flush(summary).await?;
            sent = true;
        }
        for (k, v) in puts {
            self.ops.push(TxnOp::put(k, v, None));
        }
        self.bytes += size;
        summary.bytes += size;
        Ok(sent)
    }

    async fn flush(&mut self, summary: &mut Summary) -> Result<(), BackendError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let key = self.inner.keys.import();
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, self.id)])
            .and_then(std::mem::take(&mut self.ops));
        self.bytes = 0;
        // Puts of fixed values: resending one that committed changes nothing.
        if !send(self.inner, txn).await?.succeeded() {
            return Err(fenced(&self.inner.keys));
        }
        summary.transactions += 1;
        Ok(())
    }
}
