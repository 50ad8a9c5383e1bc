//! Endpoints and failover, managed here rather than by etcd-client's balancer.
//!
//! The client library's balancer keeps routing a share of calls to a dead member
//! (etcd-client issue 39; its maintainers leave health handling to the application), so
//! this backend keeps one client per endpoint and talks to one member at a time — the
//! same one for its writes and its watch, so that a write's own event arrives before its
//! acknowledgement — and moves to the next member on the first transport error. Every
//! call has a timeout; the caller decides whether to retry (a read always may; a write
//! only as described in [`super::txn`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use crate::db::backend::BackendError;

/// How the backend reaches the cluster.
pub struct Conn {
    endpoints: Vec<String>,
    clients: Vec<Client>,
    current: AtomicUsize,
    /// Longest wait for one call.
    pub timeout: Duration,
}

impl Conn {
    /// Clients for every endpoint (they connect lazily: a member that is down now is
    /// tried again when its turn comes).
    pub async fn new(endpoints: &[String], timeout: Duration) -> Result<Conn, BackendError> {
        if endpoints.is_empty() {
            return Err(BackendError("etcd-endpoints is empty".into()));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            // A member cut off from its leader refuses calls (and cancels watches)
            // instead of serving a stale view.
            .with_require_leader(true);
        let mut clients = Vec::new();
        for e in endpoints {
            let c = Client::connect([e.as_str()], Some(options.clone()))
                .await
                .map_err(|err| BackendError(format!("etcd endpoint {e}: {err}")))?;
            clients.push(c);
        }
        Ok(Conn {
            endpoints: endpoints.to_vec(),
            clients,
            current: AtomicUsize::new(0),
            timeout,
        })
    }

    /// The member in use, and its client.
    pub fn client(&self) -> (usize, Client) {
        let i = self.current.load(Ordering::SeqCst) % self.clients.len();
        (i, self.clients[i].clone())
    }

    /// Member `i` failed a call: move to the next one (unless another caller already did).
    pub fn failed(&self, i: usize) {
        let next = (i + 1) % self.clients.len();
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn endpoint(&self, i: usize) -> &str {
        &self.endpoints[i % self.endpoints.len()]
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Runs an idempotent call (a read, a lease keep-alive) on the current member, moving
    /// through the members on failure until `budget` is spent.
    pub async fn retry<T, F, Fut>(&self, budget: Duration, mut call: F) -> Result<T, BackendError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + budget;
        let mut last;
        let mut pause = Duration::from_millis(20);
        loop {
            let (i, client) = self.client();
            match tokio::time::timeout(self.timeout, call(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !retryable(&e) => {
                    return Err(BackendError(format!("etcd {}: {e}", self.endpoint(i))));
                }
                Ok(Err(e)) => last = format!("{}: {e}", self.endpoint(i)),
                Err(_) => last = format!("{}: no answer in {:?}", self.endpoint(i), self.timeout),
            }
            self.failed(i);
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(BackendError(format!("etcd cannot be reached ({last})")));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// Whether an error is the transport's (try another member) rather than the request's.
pub fn retryable(e: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    // gRPC codes that mean "this request is wrong", whichever member answers:
    // INVALID_ARGUMENT 3, PERMISSION_DENIED 7, RESOURCE_EXHAUSTED 8 (etcd's NOSPACE
    // alarm and request-too-large), FAILED_PRECONDITION 9, OUT_OF_RANGE 11 (compacted),
    // UNAUTHENTICATED 16.
    match e {
        E::GRpcStatus(s) => !matches!(s.code() as i32, 3 | 7 | 8 | 9 | 11 | 16),
        E::InvalidArgs(_) | E::InvalidUri(_) | E::Utf8Error(_) => false,
        _ => true,
    }
}
