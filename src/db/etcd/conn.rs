//! Endpoints and failover, managed here rather than by etcd-client's balancer; and how
//! the backend proves who it is (etcd user and password, TLS with a client certificate).
//!
//! The client library's balancer keeps routing a share of calls to a dead member
//! (etcd-client issue 39; its maintainers leave health handling to the application), so
//! this backend keeps one client per endpoint and talks to one member at a time — the
//! same one for its writes and its watch (a failover moves both) — and moves to the
//! next member on the first transport error. Every
//! call has a timeout; the caller decides whether to retry (a read always may; a write
//! only as described in [`super::txn`]).
//!
//! **The member in use is the Raft leader** once this front-end has found it
//! ([`Conn::follow_leader`], once a second). A follower does not decide a write: it
//! forwards the proposal to the leader and answers only once the leader's next message
//! has told it the entry committed and it has applied it too — two more hops between
//! members per write than the leader's own answer, for nothing the write needs. Measured
//! on one machine (bench/cluster.rs, etcd's own `set_progress`-shaped transaction, one
//! client): 0.55–0.58 ms at the leader, 0.71–0.73 at a follower. The watch moves with
//! it (it resumes on the new member from the next revision, as after a failure,
//! [`Conn::moves`]): once every front-end has found the leader, a write the leader
//! acknowledges is in its watch streams already, to every front-end (after a leader
//! change, or for a front-end that cannot reach the leader, only once its watch has
//! it: nothing relies on it, `settle` and the barriers wait for revisions). Which member
//! leads is only a hint: one that stopped leading still forwards (correct, only slower
//! until the next look), and a transport error moves on to the next member as before.
//! A member that failed a call is not gone back to for [`FAILED_REST`], whether or not
//! it leads: a leader that answers `Status` but not writes or watches (overloaded, or
//! behind a path that lets only small calls through) would otherwise be returned to
//! every second, each return costing a call its timeout.
//!
//! **Authentication.** etcd answers `Authenticate` with a token that every later call
//! carries. A simple token (etcd's default) lives `--auth-token-ttl` seconds (300) after
//! its last use, in the members' memory only (a restarted member may have lost it); a
//! JWT is refused once the auth store changes. etcd-client 0.21 sends the token it got at
//! connect for ever unless told otherwise; with `with_auto_token_refresh` a call refused
//! with "invalid auth token" authenticates once more (concurrent callers share that) and
//! is sent again — for every call the library makes, the watch's creation and the
//! election's included. It does not do so for "revision of auth store is old" or "user
//! name is empty" (a client whose first authentication never happened), which etcd's own
//! Go client refreshes on too, nor when its refresh is refused (a password changed
//! since). Those make this module authenticate that member's client again, with the
//! password file's current content: at once and sending the call again in
//! [`Conn::retry`] (reads, leases); for a transaction, which is answered with the error
//! (nothing was committed), in the background for the next call ([`Conn::refused`]); a
//! token never obtained counts as the member's failure, so the call moves to another
//! member ([`retryable`]). The password is read from `etcd-password-file` at start and
//! again at every authentication of ours, so a rotated password is picked up without a
//! restart; it is never logged nor put in an error.
//!
//! A member that is down when the front-end starts cannot be authenticated then: a
//! background task tries it again every second until it answers ([`Conn::new`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use super::channel;

use crate::config::EtcdAccess;
use crate::db::backend::BackendError;

/// How long a member that failed a call is not chosen again by [`Conn::follow_leader`]
/// (a failover still may come back to it sooner, in turn): a few of its timeouts, long
/// enough that a leader failing writes costs a call's timeout every 10 s rather than
/// every second, short enough that a leader back to health is used again soon.
pub const FAILED_REST: Duration = Duration::from_secs(10);

/// How the backend reaches the cluster.
pub struct Conn {
    endpoints: Vec<String>,
    clients: Vec<Client>,
    current: AtomicUsize,
    /// Counts the moves of the member in use (to the leader, [`Conn::follow_leader`], or
    /// away from a member that failed, [`Conn::failed`]), so that the watch follows
    /// ([`Conn::moves`]).
    moved: tokio::sync::watch::Sender<u64>,
    /// Per member: when it last failed a call (nanoseconds since `epoch`, 0: never), so
    /// that following the leader does not undo a failover at once.
    failed_at: Vec<AtomicU64>,
    epoch: Instant,
    /// Longest wait for one call.
    pub timeout: Duration,
    access: EtcdAccess,
    /// The deployment's key prefix, for error messages.
    prefix: String,
    /// Stops the background authentication of members that were down at start.
    closed: Arc<AtomicBool>,
    /// etcd refused a call for a reason only the operator can change (credentials,
    /// permission): logged once when it starts and once when it ends, not per call.
    refusing: AtomicBool,
    /// Per member: a background re-authentication ([`Conn::refused`]) is running, so
    /// refused calls meanwhile do not each start one (each costs etcd a password check).
    reauthenticating: Arc<Vec<AtomicBool>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl Conn {
    /// Clients for every endpoint (they connect lazily: a member that is down now is
    /// tried again when its turn comes), then one call to each member at once: a member
    /// that answers with a TLS failure, or refuses the credentials or their absence,
    /// stops the start with a message naming it; one that does not answer is left for
    /// later (and, with a user, authenticated in the background once it answers).
    pub async fn new(
        endpoints: &[String],
        timeout: Duration,
        access: &EtcdAccess,
        prefix: &str,
    ) -> Result<Conn, BackendError> {
        if endpoints.is_empty() {
            return Err(BackendError("etcd-endpoints is empty".into()));
        }
        // The connection itself (connect timeout, TLS, keep-alive pings every 2 s, a
        // connection dropped when one goes unanswered for 2 s) is [`channel`]'s; the
        // library adds the metadata below and the token's refresh.
        let options = ConnectOptions::new()
            // A member cut off from its leader refuses calls (and cancels watches)
            // instead of serving a stale view.
            .with_require_leader(true)
            // Acts once a client has credentials (after `authenticate`).
            .with_auto_token_refresh(access.user.is_some());
        let tls = tls_config(access)?;
        let mut clients = Vec::new();
        for e in endpoints {
            let target = channel::Target::new(
                e,
                tls.clone(),
                Duration::from_secs(1),
                Duration::from_secs(2),
            )
            .map_err(|err| BackendError(format!("etcd endpoint {e}: {err}")))?;
            let direct = channel::Direct::new(target).channel();
            let c = Client::from_channel(direct, Some(options.clone()))
                .await
                .map_err(|err| BackendError(format!("etcd endpoint {e}: {err}")))?;
            clients.push(c);
        }
        let conn = Conn {
            endpoints: endpoints.to_vec(),
            clients,
            current: AtomicUsize::new(0),
            moved: tokio::sync::watch::Sender::new(0),
            failed_at: endpoints.iter().map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            timeout,
            access: access.clone(),
            prefix: prefix.to_string(),
            closed: Arc::new(AtomicBool::new(false)),
            refusing: AtomicBool::new(false),
            reauthenticating: Arc::new(endpoints.iter().map(|_| AtomicBool::new(false)).collect()),
        };
        conn.check_members().await?;
        Ok(conn)
    }

    /// The start-up call to every member (see [`Conn::new`]).
    async fn check_members(&self) -> Result<(), BackendError> {
        let checks = self.clients.iter().enumerate().map(|(i, c)| {
            let mut c = c.clone();
            async move {
                let r = match &self.access.user {
                    Some(_) => self.authenticate(&mut c).await,
                    None => {
                        let probe = c.get(self.prefix.as_str(), Some(keys_only()));
                        match tokio::time::timeout(self.timeout, probe).await {
                            Ok(r) => r.map(drop).map_err(|e| self.refusal(e)),
                            Err(_) => Err(Refusal::Unreachable("no answer".into())),
                        }
                    }
                };
                (i, r)
            }
        });
        let mut later = Vec::new();
        for (i, r) in futures_util::future::join_all(checks).await {
            match r {
                Ok(()) => {}
                Err(Refusal::Unreachable(why)) => {
                    tracing::warn!(
                        "etcd endpoint {}: not reachable at start ({why})",
                        self.endpoint(i)
                    );
                    later.push(self.clients[i].clone());
                }
                Err(Refusal::Fatal(why)) => {
                    return Err(BackendError(format!(
                        "etcd endpoint {}: {why}",
                        self.endpoint(i)
                    )));
                }
            }
        }
        if self.access.user.is_some() && !later.is_empty() {
            tokio::spawn(authenticate_later(
                later,
                self.access.clone(),
                self.prefix.clone(),
                self.timeout,
                self.closed.clone(),
            ));
        }
        Ok(())
    }

    /// Authenticates `client` with the configured user and the password file's current
    /// content; the client then carries the token (and refreshes it when it expires).
    async fn authenticate(&self, client: &mut Client) -> Result<(), Refusal> {
        authenticate(client, &self.access, &self.prefix, self.timeout).await
    }

    fn refusal(&self, e: etcd_client::Error) -> Refusal {
        refusal(e, &self.access, &self.prefix)
    }

    /// The member in use, and its client.
    pub fn client(&self) -> (usize, Client) {
        let i = self.current.load(Ordering::SeqCst) % self.clients.len();
        (i, self.clients[i].clone())
    }

    /// The client of endpoint `i`, whichever is in use.
    pub fn member_client(&self, i: usize) -> Client {
        self.clients[i % self.clients.len()].clone()
    }

    /// Changes whenever the member in use moves (to the leader, or off a member that
    /// failed): the watch, open on the member it started on, reconnects to the new one.
    pub fn moves(&self) -> tokio::sync::watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// Makes the Raft leader the member in use, looking every `every` until `closed`: the
    /// member in use names the leader's id, and the leader's own endpoint must answer,
    /// naming itself, before this front-end moves there (a leader it cannot reach is not
    /// chosen again and again). Member ids are learned from each member's own answer (its
    /// header), not from the URLs it advertises, which need not be the ones configured
    /// here. Any failure leaves the member in use as it is.
    pub async fn follow_leader(&self, every: Duration, closed: &AtomicBool) {
        let mut ids: Vec<Option<u64>> = vec![None; self.clients.len()];
        while !closed.load(Ordering::SeqCst) {
            let (i, _) = self.client();
            if let Some(j) = self.leader_to_use(i, &mut ids).await
                && self.switch(i, j)
            {
                tracing::debug!(
                    "etcd: {} leads; this front-end now uses it",
                    self.endpoint(j)
                );
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The member to move to from `i` (in use): the leader `i` names, once that leader's
    /// own endpoint answered naming itself, unless it failed a call lately. `ids` keeps
    /// the members' ids as they answered.
    async fn leader_to_use(&self, i: usize, ids: &mut [Option<u64>]) -> Option<usize> {
        let (id, leader) = self.status_of(i).await?;
        if leader == 0 || id == leader {
            return None;
        }
        ids[i] = Some(id);
        if !ids.contains(&Some(leader)) {
            // A leader not met yet (at start, or a member replaced): ask every member
            // who it is.
            for (j, slot) in ids.iter_mut().enumerate() {
                if let Some((id, _)) = self.status_of(j).await {
                    *slot = Some(id);
                }
            }
        }
        let j = ids.iter().position(|id| *id == Some(leader))?;
        if self.failed_recently(j) {
            return None;
        }
        let (id, said) = self.status_of(j).await?;
        (id == leader && said == leader).then_some(j)
    }

    /// Moves the member in use from `from` to `to` unless another caller moved it
    /// first, and tells the watch; whether this call moved it.
    fn switch(&self, from: usize, to: usize) -> bool {
        let moved = self
            .current
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if moved {
            self.moved.send_modify(|n| *n += 1);
        }
        moved
    }

    /// Nanoseconds since `epoch`, at least 1 (0 is "never").
    fn now(&self) -> u64 {
        (self.epoch.elapsed().as_nanos() as u64).max(1)
    }

    /// Member `i`'s own id and the leader it names (0: none), or None if it does not
    /// answer in time.
    async fn status_of(&self, i: usize) -> Option<(u64, u64)> {
        let mut c = self.member_client(i);
        match tokio::time::timeout(self.timeout, c.status()).await {
            Ok(Ok(s)) => Some((s.header()?.member_id(), s.leader())),
            _ => None,
        }
    }

    /// Member `i` failed a call: move to the next one (unless another caller already did),
    /// the watch with it, and remember when.
    pub fn failed(&self, i: usize) {
        self.failed_at[i % self.clients.len()].store(self.now(), Ordering::Relaxed);
        // The watch moves too: a write that failed over while the watch stayed would
        // leave the two on different members, the watch possibly on a stream that is
        // dead but not yet seen to be (until the keep-alive ends it).
        self.switch(i, (i + 1) % self.clients.len());
    }

    /// Whether member `i` failed a call less than [`FAILED_REST`] ago.
    fn failed_recently(&self, i: usize) -> bool {
        let at = self.failed_at[i % self.clients.len()].load(Ordering::Relaxed);
        at != 0 && self.now() - at < FAILED_REST.as_nanos() as u64
    }

    pub fn endpoint(&self, i: usize) -> &str {
        &self.endpoints[i % self.endpoints.len()]
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// What an error etcd answered means, for a log line or an XAPI error: the
    /// authentication and permission refusals in an operator's terms.
    pub fn explain(&self, e: &etcd_client::Error) -> String {
        explain(e, &self.access, &self.prefix)
    }

    /// [`Conn::explain`] of an error that ends a call, from member `i`: a refusal of the
    /// credentials or of a permission is logged (once, until a call succeeds again).
    pub fn refused(&self, i: usize, e: &etcd_client::Error) -> String {
        let why = format!("etcd {}: {}", self.endpoint(i), self.explain(e));
        let m = grpc_message(e);
        let operator = m.contains("permission denied")
            || m.contains("authentication failed")
            || m.contains("user name is empty");
        if operator {
            self.log_refusal(&why);
        }
        let member = i % self.clients.len();
        if self.access.user.is_some()
            && token_refused(e)
            && !self.reauthenticating[member].swap(true, Ordering::SeqCst)
        {
            // The library refreshed with the password it was given (changed since?):
            // authenticate with the file's, for the next call (this one is answered).
            let (mut client, access) = (self.member_client(i), self.access.clone());
            let (prefix, timeout) = (self.prefix.clone(), self.timeout);
            let (running, endpoint) = (self.reauthenticating.clone(), self.endpoint(i).to_string());
            let refusing_logged = self.refusing.load(Ordering::SeqCst);
            tokio::spawn(async move {
                if let Err(Refusal::Fatal(why)) =
                    authenticate(&mut client, &access, &prefix, timeout).await
                    && !refusing_logged
                {
                    tracing::error!("etcd {endpoint}: {why}");
                }
                running[member].store(false, Ordering::SeqCst);
            });
        }
        why
    }

    /// Logs a refusal only the operator can end, once until a call is accepted again.
    fn log_refusal(&self, why: &str) {
        if !self.refusing.swap(true, Ordering::SeqCst) {
            tracing::error!("{why}");
        }
    }

    /// A call succeeded: ends a refusal [`Conn::refused`] logged.
    pub fn accepted(&self) {
        if self.refusing.load(Ordering::Relaxed) && self.refusing.swap(false, Ordering::SeqCst) {
            tracing::info!("etcd accepts this front-end's calls again");
        }
    }

    /// Runs an idempotent call (a read, a lease keep-alive) on the current member, moving
    /// through the members on failure until `budget` is spent. A refusal of this client's
    /// token (expired beyond what the library refreshes, from an old auth revision, never
    /// obtained, a password changed since) authenticates this member's client once more,
    /// with the password file's current content, and sends the call again.
    pub async fn retry<T, F, Fut>(&self, budget: Duration, mut call: F) -> Result<T, BackendError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + budget;
        let mut last;
        let mut pause = Duration::from_millis(20);
        let mut authenticated = false;
        loop {
            let (i, mut client) = self.client();
            match tokio::time::timeout(self.timeout, call(client.clone())).await {
                Ok(Ok(v)) => {
                    self.accepted();
                    return Ok(v);
                }
                Ok(Err(e)) if self.access.user.is_some() && !authenticated && token_refused(&e) => {
                    authenticated = true;
                    match self.authenticate(&mut client).await {
                        Ok(()) => continue,
                        Err(Refusal::Fatal(why)) => {
                            let why = format!("etcd {}: {why}", self.endpoint(i));
                            self.log_refusal(&why);
                            return Err(BackendError(why));
                        }
                        Err(Refusal::Unreachable(why)) => {
                            last = format!("{}: {why}", self.endpoint(i))
                        }
                    }
                }
                // Without a user, a refused token is etcd asking for one.
                Ok(Err(e))
                    if !retryable(&e) || (self.access.user.is_none() && token_refused(&e)) =>
                {
                    return Err(BackendError(self.refused(i, &e)));
                }
                Ok(Err(e)) => last = format!("{}: {}", self.endpoint(i), self.explain(&e)),
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

fn keys_only() -> etcd_client::GetOptions {
    etcd_client::GetOptions::new()
        .with_keys_only()
        .with_limit(1)
}

/// Why a member could not be used.
enum Refusal {
    /// It did not answer, or not in time: try again later.
    Unreachable(String),
    /// It answered, and will answer the same until the operator changes something (TLS,
    /// the credentials, the role): the message says what.
    Fatal(String),
}

fn refusal(e: etcd_client::Error, access: &EtcdAccess, prefix: &str) -> Refusal {
    if let Some(tls) = tls_failure(&e) {
        Refusal::Fatal(tls)
    } else if retryable(&e) && !(access.user.is_none() && token_refused(&e)) {
        Refusal::Unreachable(explain(&e, access, prefix))
    } else {
        Refusal::Fatal(explain(&e, access, prefix))
    }
}

/// The first line of the password file (without its line end); never logged.
fn password(access: &EtcdAccess) -> Result<String, Refusal> {
    let Some(path) = &access.password_file else {
        return Err(Refusal::Fatal("etcd-user needs etcd-password-file".into()));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Refusal::Fatal(format!("etcd-password-file {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(Refusal::Fatal(format!(
            "etcd-password-file {} is empty",
            path.display()
        )));
    }
    Ok(line.to_string())
}

async fn authenticate(
    client: &mut Client,
    access: &EtcdAccess,
    prefix: &str,
    timeout: Duration,
) -> Result<(), Refusal> {
    let Some(user) = &access.user else {
        return Ok(());
    };
    let password = password(access)?;
    let call = client.update_user(Some((user.clone(), password)));
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(())) => Ok(()),
        Err(_) => Err(Refusal::Unreachable(format!("no answer in {timeout:?}"))),
        Ok(Err(e)) if grpc_message(&e).contains("authentication is not enabled") => {
            // No token is needed; the client goes on without one.
            tracing::warn!("etcd-user is set but etcd has authentication disabled");
            Ok(())
        }
        Ok(Err(e)) => Err(refusal(e, access, prefix)),
    }
}

/// What a refused `Authenticate` means to an operator.
fn credentials_refused(access: &EtcdAccess) -> String {
    format!(
        "etcd refused the credentials of user {:?} (etcd-user, etcd-password-file)",
        access.user.as_deref().unwrap_or("")
    )
}

/// Authenticates, every second, the clients of members that were down at start, until
/// each has answered (or the connection is dropped).
async fn authenticate_later(
    mut clients: Vec<Client>,
    access: EtcdAccess,
    prefix: String,
    timeout: Duration,
    closed: Arc<AtomicBool>,
) {
    while !clients.is_empty() && !closed.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut still = Vec::new();
        for mut c in clients {
            match authenticate(&mut c, &access, &prefix, timeout).await {
                Ok(()) => {}
                Err(Refusal::Unreachable(_)) => still.push(c),
                Err(Refusal::Fatal(why)) => tracing::error!("etcd: {why}"),
            }
        }
        clients = still;
    }
}

/// The TLS settings of the connections, if any: the CA the members' certificates must
/// chain to, and this front-end's certificate for etcd's `--client-cert-auth`. The files
/// are checked here, so that a wrong path or an empty file stops the start with its name.
fn tls_config(access: &EtcdAccess) -> Result<Option<Arc<rustls::ClientConfig>>, BackendError> {
    let Some(ca) = &access.ca_file else {
        return Ok(None);
    };
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| BackendError(format!("{what} {}: {e}", path.display())))
    };
    let pem = read("etcd-ca-file", ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
        roots.add(cert).map_err(|e| {
            BackendError(format!("etcd-ca-file {}: a certificate: {e}", ca.display()))
        })?;
    }
    if roots.is_empty() {
        return Err(BackendError(format!(
            "etcd-ca-file {} holds no PEM certificate",
            ca.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let mut config = match (&access.cert_file, &access.key_file) {
        (Some(cert), Some(key)) => {
            let cert_pem = read("etcd-cert-file", cert)?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .flatten()
                .collect();
            if chain.is_empty() {
                return Err(BackendError(format!(
                    "etcd-cert-file {} holds no PEM certificate",
                    cert.display()
                )));
            }
            let key_pem = read("etcd-key-file", key)?;
            let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                BackendError(format!(
                    "etcd-key-file {}: no private key: {e}",
                    key.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, private).map_err(|e| {
                BackendError(format!(
                    "etcd-cert-file {} and etcd-key-file {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(BackendError(
                "etcd-cert-file and etcd-key-file go together".into(),
            ));
        }
    };
    // gRPC over TLS is HTTP/2, chosen by ALPN (etcd's gRPC server requires it).
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// etcd's message in an error it answered (empty for a transport error).
fn grpc_message(e: &etcd_client::Error) -> &str {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message(),
        _ => "",
    }
}

/// A refusal of the token this client sent (or of its lack), which authenticating
/// again can cure: etcd's `ErrInvalidAuthToken`, `ErrAuthOldRevision`, `ErrUserEmpty`
/// (`api/v3rpc/rpctypes/error.go`), and a refusal of the password the library refreshed
/// with (the file may hold a new one).
fn token_refused(e: &etcd_client::Error) -> bool {
    let m = grpc_message(e);
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() as i32 == 16)
        || m.contains("invalid auth token")
        || m.contains("revision of auth store is old")
        || m.contains("user name is empty")
        || m.contains("authentication failed")
}

/// A TLS failure (a certificate the CA does not vouch for, a member that does not speak
/// TLS, or one that speaks it to a plain client), in terms an operator can act on.
fn tls_failure(e: &etcd_client::Error) -> Option<String> {
    let text = chain(e);
    let lower = text.to_lowercase();
    let tls = [
        "certificate",
        "tls",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
    ];
    tls.iter().any(|w| lower.contains(w)).then(|| {
        format!(
            "TLS failed ({text}); check etcd-ca-file (the CA that signed the members' \
             certificates), etcd-cert-file and etcd-key-file, and that the endpoint's \
             scheme (https:// or http://) is what the member serves"
        )
    })
}

/// An error and its sources, on one line.
fn chain(e: &etcd_client::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// See [`Conn::explain`].
fn explain(e: &etcd_client::Error, access: &EtcdAccess, prefix: &str) -> String {
    let m = grpc_message(e);
    let user = access.user.as_deref();
    if m.contains("permission denied") {
        match user {
            Some(u) => format!(
                "etcd user {u:?} has no permission on the keys under {prefix} (etcd: {m}); \
                 grant one of its roles readwrite on that prefix: etcdctl role \
                 grant-permission ROLE --prefix=true readwrite {prefix}"
            ),
            None => format!("etcd: {m} (no etcd-user is set)"),
        }
    } else if m.contains("user name is empty") && user.is_none() {
        format!("etcd has authentication enabled: set etcd-user and etcd-password-file (etcd: {m})")
    } else if m.contains("authentication failed") {
        format!("{} (etcd: {m})", credentials_refused(access))
    } else if ["connection closed", "broken pipe", "connection reset"]
        .iter()
        .any(|w| chain(e).contains(w))
    {
        // A member that accepts the connection and drops it at once: most often TLS on
        // one side only, or a client certificate it requires and did not get.
        format!(
            "the member closed the connection ({}); if it serves TLS, give an https:// \
             endpoint and etcd-ca-file; if it requires client certificates \
             (--client-cert-auth), etcd-cert-file and etcd-key-file",
            chain(e)
        )
    } else if !m.is_empty() {
        format!("etcd: {m}")
    } else {
        e.to_string()
    }
}

/// Whether etcd refused who sent a request (its credentials, its token, its role's
/// permissions) rather than what it asks: any other request from this front-end, a
/// smaller one included, would be refused the same way until the operator acts or the
/// token is renewed.
pub fn access_refused(e: &etcd_client::Error) -> bool {
    let m = grpc_message(e);
    token_refused(e)
        || m.contains("permission denied")
        || matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() as i32 == 7)
}

/// Whether an error is the transport's (try another member) rather than the request's.
pub fn retryable(e: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    // gRPC codes that mean "this request is wrong", whichever member answers:
    // INVALID_ARGUMENT 3, PERMISSION_DENIED 7, RESOURCE_EXHAUSTED 8 (etcd's NOSPACE
    // alarm and request-too-large), FAILED_PRECONDITION 9, OUT_OF_RANGE 11 (compacted),
    // UNAUTHENTICATED 16.
    // A token never obtained (the member was down at start) is this member's client's
    // trouble: another member may serve the call. A refused password or an old auth
    // revision is every member's: the call is answered, and [`Conn::refused`]
    // authenticates again for the next one.
    let m = grpc_message(e);
    if token_refused(e)
        && !m.contains("authentication failed")
        && !m.contains("revision of auth store is old")
    {
        return true;
    }
    match e {
        E::GRpcStatus(s) => !matches!(s.code() as i32, 3 | 7 | 8 | 9 | 11 | 16),
        E::InvalidArgs(_) | E::InvalidUri(_) | E::Utf8Error(_) => false,
        _ => true,
    }
}
