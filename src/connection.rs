//! What the dispatch pipeline knows of the client connection a call came on: the client's
//! address (what failed logins are throttled by, [`crate::api::limits::peer`]) and whether
//! an earlier read call on it already caught up with the cluster store
//! (`etcd-reads = "connection"`, [`crate::db::Db::sync`]).
//!
//! `server.rs` builds one [`Connection`] per accepted connection and runs each of its
//! requests inside [`on`], so every face (XML-RPC, JSON-RPC, Redfish, XClarity, the web
//! page) reaches the pipeline with it without passing it along. One task-local for both:
//! each scope is resumed at every poll of the request, and a scope's output (the whole
//! response) is moved out through it, three copies of it per scope (a second scope for the
//! address cost a fan-out's woken waiter about 0.2k instructions). State of the connection
//! itself, never a map keyed by address: two clients behind one address are two
//! connections, and a closed connection's state goes with it. Calls outside any
//! connection (in-process callers, `Async.` tasks, tests) have no address and count as a
//! new connection's first call each time: they sync, never read staler.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One client connection's address and read state: a single flag, no lock.
#[derive(Debug, Default)]
pub struct Connection {
    /// The client's address (none for a connection made in tests).
    peer: Option<IpAddr>,
    /// A read call on this connection synced (everything acknowledged anywhere before
    /// its request arrived is in the tables, and the tables only go forward).
    synced: AtomicBool,
}

impl Connection {
    /// A new connection from `peer`.
    pub fn from(peer: IpAddr) -> Connection {
        Connection {
            peer: Some(peer),
            synced: AtomicBool::new(false),
        }
    }
}

tokio::task_local! {
    static CONNECTION: Arc<Connection>;
}

/// Runs `f` (one request) as a call on `conn`. (A plain function: an `async fn` would
/// store `f` twice, as its argument and as the future it awaits.)
pub fn on<F: Future>(conn: Arc<Connection>, f: F) -> impl Future<Output = F::Output> {
    CONNECTION.scope(conn, f)
}

/// The client address of the current request, if it came on a connection (in-process
/// callers and tests have none).
pub fn peer() -> Option<IpAddr> {
    CONNECTION.try_with(|c| c.peer).ok().flatten()
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

    /// The address is the connection's, and there is none outside a connection.
    #[tokio::test]
    async fn the_peer_is_the_connections() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let from = Arc::new(Connection::from(ip));
        assert_eq!(on(from.clone(), async { peer() }).await, Some(ip));
        assert_eq!(
            on(Arc::new(Connection::default()), async { peer() }).await,
            None
        );
        assert_eq!(peer(), None);
    }
}
