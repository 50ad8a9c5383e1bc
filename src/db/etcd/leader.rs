//! Membership and the garbage collector's leadership.
//!
//! Each front-end holds one lease (TTL [`LEASE_TTL`] s, kept alive every few seconds): its
//! membership key `c/node/<id>` and its candidacy in the `c/gc` election live on it, so
//! both vanish when the process dies or is cut off for longer than the TTL. The elected
//! front-end runs the GC; every plan it commits carries a compare on its election key's
//! creation revision (a fence), so a leader that lost its lease meanwhile — paused,
//! partitioned — cannot delete anything afterwards.
//!
//! The leader also finds `Async.` tasks whose front-end is gone ([`orphans`]): their
//! `d/async/<task>` key names a node whose membership key no longer exists.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{GetOptions, PutOptions};

use super::Inner;
use super::keys::range_end;
use crate::db::backend::BackendError;

/// Seconds a front-end's lease lives without a keep-alive.
pub const LEASE_TTL: i64 = 10;

/// Runs until the backend closes: lease, membership, campaign, lead until the lease is lost,
/// and again.
pub async fn run(inner: Arc<Inner>) {
    loop {
        if inner.is_closed() {
            return;
        }
        if let Err(e) = term(&inner).await {
            tracing::warn!("etcd leadership: {e}");
        }
        inner.set_leader(None);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One lease's life.
async fn term(inner: &Arc<Inner>) -> Result<(), BackendError> {
    let lease = inner
        .conn
        .retry(inner.budget, |mut c| async move {
            c.lease_grant(LEASE_TTL, None).await
        })
        .await?
        .id();
    let node_key = inner.keys.node(&inner.node);
    inner
        .conn
        .retry(inner.budget, |mut c| {
            let k = node_key.clone();
            let node = inner.node.clone();
            async move {
                c.put(k, node, Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })
        .await?;
    let alive = tokio::spawn(keep_alive(inner.clone(), lease));
    let campaign = campaign(inner, lease);
    tokio::pin!(campaign);
    let mut alive = alive;
    tokio::select! {
        r = &mut alive => {
            // The lease is gone before this front-end was elected.
            return r.map_err(|e| BackendError(e.to_string())).and_then(|r| r);
        }
        won = &mut campaign => {
            let (key, rev) = won?;
            tracing::info!("this front-end ({}) now runs the garbage collector", inner.node);
            inner.set_leader(Some((key, rev)));
        }
    }
    let lost = alive.await;
    tracing::warn!("this front-end no longer runs the garbage collector");
    lost.map_err(|e| BackendError(e.to_string()))
        .and_then(|r| r)
}

/// Campaigns until elected; returns the election key and its creation revision.
async fn campaign(inner: &Inner, lease: i64) -> Result<(Vec<u8>, u64), BackendError> {
    let name = inner.keys.election();
    loop {
        let (i, mut c) = inner.conn.client();
        // One call is bounded: a campaign that has not won by then is asked again. Bounded
        // here because our own gRPC channel (`channel.rs`) has no per-call timeout, and a
        // member that still answers pings but no longer sees the election (cut off from
        // its leader) would otherwise hold the campaign for as long as the cut lasts.
        // Bounded by the lease's TTL, not the request timeout: etcd deletes a candidacy
        // whose campaign call was cancelled and the re-ask puts it again, two writes
        // through raft per re-ask of every waiting front-end (0.8 revisions a second each
        // at a 2 s bound, idle). A leader that died is replaced when its lease runs out,
        // a TTL after its death, so a re-ask within a TTL adds at most that again, and
        // only in the double fault (the leader gone while this candidacy hangs on a cut
        // member, whose keep-alives fail too and move this front-end's calls off it).
        let bound = Duration::from_secs(LEASE_TTL as u64).max(inner.conn.timeout);
        let asked = c.campaign(name.clone(), inner.node.clone(), lease);
        let Ok(answer) = tokio::time::timeout(bound, asked).await else {
            if inner.is_closed() {
                return Err(BackendError("closed".into()));
            }
            continue;
        };
        match answer {
            Ok(resp) => {
                if let Some(l) = resp.leader() {
                    return Ok((l.key().to_vec(), l.rev().max(0) as u64));
                }
            }
            Err(e) if super::conn::retryable(&e) => {
                if !matches!(&e, etcd_client::Error::GRpcStatus(s) if s.code() as i32 == 4) {
                    inner.conn.failed(i);
                }
            }
            Err(e) => return Err(BackendError(format!("etcd campaign: {e}"))),
        }
        if inner.is_closed() {
            return Err(BackendError("closed".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keeps the lease alive; returns when it is lost (expired, or unreachable for its TTL).
async fn keep_alive(inner: Arc<Inner>, lease: i64) -> Result<(), BackendError> {
    let mut last_ok = tokio::time::Instant::now();
    let ttl = Duration::from_secs(LEASE_TTL as u64);
    loop {
        if inner.is_closed() {
            return Ok(());
        }
        let (i, mut c) = inner.conn.client();
        let once = async {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            stream.message().await
        };
        match tokio::time::timeout(inner.conn.timeout, once).await {
            Ok(Ok(Some(resp))) if resp.ttl() > 0 => last_ok = tokio::time::Instant::now(),
            Ok(Ok(Some(_))) => return Err(BackendError("the lease expired".into())),
            _ => inner.conn.failed(i),
        }
        // Give up leadership well before the lease can expire unseen.
        if last_ok.elapsed() > ttl - Duration::from_secs(3) {
            return Err(BackendError("the lease could not be kept alive".into()));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `Async.` tasks whose front-end is gone: (task ref, front-end id).
pub async fn orphans(inner: &Inner) -> Result<Vec<(String, String)>, BackendError> {
    let list = |prefix: String| async move {
        let end = range_end(&prefix);
        let resp = inner
            .conn
            .retry(inner.budget, |mut c| {
                let (p, e) = (prefix.clone(), end.clone());
                async move { c.get(p, Some(GetOptions::new().with_range(e))).await }
            })
            .await?;
        Ok::<_, BackendError>(
            resp.kvs()
                .iter()
                .map(|kv| {
                    let k = String::from_utf8_lossy(kv.key());
                    let tail = k.strip_prefix(prefix.as_str()).unwrap_or(&k).to_string();
                    (tail, String::from_utf8_lossy(kv.value()).into_owned())
                })
                .collect::<Vec<_>>(),
        )
    };
    // Tasks first: a front-end that starts after this read cannot own any of them.
    let tasks = list(inner.keys.async_all()).await?;
    let nodes: HashSet<String> = list(inner.keys.nodes())
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    Ok(tasks
        .into_iter()
        .filter(|(_, node)| !nodes.contains(node))
        .collect())
}
