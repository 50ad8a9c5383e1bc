//! What the dispatch pipeline knows of the client connection a call came on: whether an
//! earlier read call on it already caught up with the cluster store
//! (`etcd-reads = "connection"`, [`crate::db::Db::sync`]).
//!
//! `server.rs` builds one [`Connection`] per accepted connection and runs each of its
//! requests inside [`on`], so every face (XML-RPC, JSON-RPC, Redfish, XClarity, the web
//! page) reaches the pipeline with it without passing it along, as the per-address login
//! throttle's address does ([`crate::api::limits::with_peer`]). State of the connection
//! itself, never a map keyed by address: two clients behind one address are two
//! connections, and a closed connection's state goes with it. Calls outside any
//! connection (in-process callers, `Async.` tasks, tests) count as a new connection's
//! first call each time: they sync, never read staler.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One client connection's read state: a single flag, no lock.
#[derive(Debug, Default)]
pub struct Connection {
    /// A read call on this connection synced (everything acknowledged anywhere before
    /// its request arrived is in the tables, and the tables only go forward).
    synced: AtomicBool,
}

tokio::task_local! {
    static CONNECTION: Arc<Connection>;
}

/// Runs `f` (one request) as a call on `conn`. (A plain function: an `async fn` would
/// store `f` twice, as its argument and as the future it awaits.)
pub fn on<F: Future>(conn: Arc<Connection>, f: F) -> impl Future<Output = F::Output> {
    CONNECTION.scope(conn, f)
}

/// Whether a read call on the current request's connection already synced.
pub fn synced() -> bool {
    CONNECTION
        .try_with(|c| c.synced.load(Ordering::Acquire))
        .unwrap_or(false)
}

/// Records that the current request's connection synced.
pub fn mark_synced() {
    let _outside = CONNECTION.try_with(|c| c.synced.store(true, Ordering::Release));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flag is the connection's: set on one, seen by its later requests, not by
    /// another connection's nor outside any.
    #[tokio::test]
    async fn a_sync_is_remembered_by_its_connection_only() {
        let (one, two) = (
            Arc::new(Connection::default()),
            Arc::new(Connection::default()),
        );
        assert!(!on(one.clone(), async { synced() }).await);
        on(one.clone(), async { mark_synced() }).await;
        assert!(on(one.clone(), async { synced() }).await);
        assert!(!on(two, async { synced() }).await);
        mark_synced();
        assert!(!synced());
    }
}
