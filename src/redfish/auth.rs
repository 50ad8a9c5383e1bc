//! Who is calling: Redfish sessions (`X-Auth-Token`) and HTTP Basic authentication, both
//! mapped onto XAPI sessions so that XAPI's users, roles, session GC and ownership rule
//! apply unchanged.
//!
//! - A Redfish session *is* an XAPI session: `POST …/Sessions` calls
//!   `session.login_with_password` (originator `redfish`), the `X-Auth-Token` is the
//!   session ref (`OpaqueRef:` + a uuid v4, unguessable) and the Redfish session `Id` is
//!   the session's uuid (path-safe, and not a credential). Any XAPI session ref works as
//!   a token, so an XML-RPC client can hand its session to a Redfish tool.
//! - Basic authentication would cost an argon2 hash (tens of milliseconds) per request if
//!   each request logged in. Instead a small cache maps a keyed BLAKE2b digest of
//!   `user` (length-prefixed) and `password` to an XAPI session (originator `redfish-basic`) for
//!   [`BASIC_TTL`]. The cache never holds a password, holds at most [`BASIC_CACHE_SIZE`]
//!   entries, and logs out the session of every entry it drops once the last request
//!   using it is done (a [`Lease`] each request holds), so it keeps at most one live
//!   session per credential pair beyond those still in use, and never pulls a session
//!   from under a request: neither the entry's expiry nor other users filling the cache
//!   can make another user's request in flight fail. A password change takes effect for Basic
//!   requests when the entry expires (at most [`BASIC_TTL`] later).
//!
//! Every check goes through the XAPI pipeline (`session.get_record` with the session
//! itself), so an expired or logged-out session is refused exactly as on XML-RPC.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use blake2::Blake2bMac512;
use blake2::digest::{KeyInit, Mac};
use hyper::HeaderMap;
use parking_lot::Mutex;

use crate::api::dispatch::Service;
use crate::api::error::{ApiError, codes};
use crate::face::xapi::{field, xapi};
use crate::wire::value::Value;

/// How long a Basic credential is trusted without a new password check.
pub const BASIC_TTL: Duration = Duration::from_secs(60);
/// Most Basic credential pairs remembered at once.
pub const BASIC_CACHE_SIZE: usize = 64;
/// `originator` of sessions made by `POST …/Sessions`.
pub const ORIGINATOR_SESSION: &str = "redfish";
/// `originator` of sessions made for Basic authentication (not listed as Redfish sessions).
pub const ORIGINATOR_BASIC: &str = "redfish-basic";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The XAPI session every call of this request uses.
    pub session_ref: String,
    /// The session's uuid: its Redfish `Id`.
    pub uuid: String,
    /// True when the caller came in with Basic credentials rather than a token.
    pub basic: bool,
    /// A Basic caller's hold on its cached session: the session is logged out only once
    /// the cache has dropped it and no request holds it any more.
    pub lease: Option<Arc<Lease>>,
}

/// A Basic session the cache handed out: logged out (through the service that made it)
/// when the last holder, the cache's entry or a request, lets go. The logout runs as a
/// task of its own, so whoever drops the last hold never waits for it.
pub struct Lease {
    svc: Weak<Service>,
    session_ref: String,
}

impl Lease {
    fn new(svc: &Arc<Service>, session_ref: String) -> Arc<Lease> {
        Arc::new(Lease {
            svc: Arc::downgrade(svc),
            session_ref,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(svc) = self.svc.upgrade() else {
            return; // the service is gone, and its sessions with it
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // shutting down: the session GC collects the idle session
        };
        let session_ref = std::mem::take(&mut self.session_ref);
        runtime.spawn(async move {
            let _ = logout(&svc, &session_ref).await;
        });
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lease")
    }
}

impl Caller {
    /// The session's record (`session.get_record`), for the Session resources; fetched
    /// only by them, since every other resource needs just the session's validity.
    pub async fn record(&self, svc: &Arc<Service>) -> Result<Value, ApiError> {
        let s = Value::str(&self.session_ref);
        xapi(svc, "session.get_record", vec![s.clone(), s]).await
    }
}

/// The user a session record belongs to.
pub fn user_name(record: &Value) -> String {
    field(record, "auth_user_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Administrator in Redfish terms: the local superuser or a pool-admin (the roles that
/// may act on other users' sessions), from the session's record.
pub fn is_admin(record: &Value) -> bool {
    let superuser = matches!(field(record, "is_local_superuser"), Some(Value::Bool(true)));
    let pool_admin = matches!(field(record, "rbac_permissions"), Some(Value::Array(p))
        if p.iter().any(|x| x.as_str() == Some("pool-admin")));
    superuser || pool_admin
}

/// Authenticates a request: `X-Auth-Token` first, then `Authorization: Basic`.
/// `Err(())` means "answer 401"; the caller says nothing about why.
pub async fn authenticate(svc: &Arc<Service>, headers: &HeaderMap) -> Result<Caller, ()> {
    if let Some(token) = token(headers) {
        return check(svc, token, false).await.map_err(|_| ());
    }
    let basic = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic);
    match basic {
        Some((user, password)) => basic_login(svc, &user, &password).await,
        None => Err(()),
    }
}

/// The `X-Auth-Token` a request authenticates with, if it has one (one that is not text
/// is no token: the request may still bring Basic credentials).
pub fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        // A name made at compile time: a `&str` key is parsed (and its case checked)
        // on every lookup.
        .get(const { hyper::header::HeaderName::from_static("x-auth-token") })
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Validates a session ref through the pipeline (`session.get_uuid`: the session check
/// of any call with it, and the uuid the Session resources are named by).
pub async fn check(svc: &Arc<Service>, session_ref: &str, basic: bool) -> Result<Caller, ApiError> {
    let uuid = xapi(
        svc,
        "session.get_uuid",
        vec![Value::str(session_ref), Value::str(session_ref)],
    )
    .await?;
    Ok(Caller {
        session_ref: session_ref.to_string(),
        uuid: uuid.as_str().unwrap_or_default().to_string(),
        basic,
        lease: None,
    })
}

/// `session.login_with_password` through the pipeline; returns the session ref.
pub async fn login(
    svc: &Arc<Service>,
    user: &str,
    password: &str,
    originator: &str,
) -> Result<String, ApiError> {
    let v = xapi(
        svc,
        "session.login_with_password",
        vec![
            Value::str(user),
            Value::str(password),
            Value::str("1.0"),
            Value::str(originator),
        ],
    )
    .await?;
    Ok(v.as_str().unwrap_or_default().to_string())
}

/// `session.logout` of `session_ref` through the pipeline.
pub async fn logout(svc: &Arc<Service>, session_ref: &str) -> Result<(), ApiError> {
    xapi(svc, "session.logout", vec![Value::str(session_ref)])
        .await
        .map(|_| ())
}

/// `Basic <base64(user:password)>` → (user, password).
///
/// RFC 7617 leaves the charset to the client: UTF-8 where the bytes are UTF-8, else
/// ISO-8859-1, which is what Python's `requests` (and so DMTF's tools) sends.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64_decode(rest.trim())?;
    let decoded = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().into_iter().map(char::from).collect(),
    };
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Standard base64 (RFC 4648, padding optional). Small enough not to need a crate.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// One remembered Basic credential pair.
struct Entry {
    /// Which service it belongs to (one process may run several, e.g. in tests).
    service: usize,
    digest: [u8; 64],
    /// The session, held for the entry; requests using it hold it too.
    lease: Arc<Lease>,
    expires: Instant,
}

/// The Basic-auth cache: a random key for the digests and at most `capacity` entries,
/// oldest first.
struct BasicCache {
    key: [u8; 32],
    capacity: usize,
    ttl: Duration,
    entries: Mutex<Vec<Entry>>,
}

/// The process's cache.
fn cache() -> &'static BasicCache {
    static CACHE: std::sync::OnceLock<BasicCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| BasicCache::new(BASIC_CACHE_SIZE, BASIC_TTL))
}

async fn basic_login(svc: &Arc<Service>, user: &str, password: &str) -> Result<Caller, ()> {
    cache().login(svc, user, password).await
}

impl BasicCache {
    fn new(capacity: usize, ttl: Duration) -> BasicCache {
        BasicCache {
            key: rand::random(),
            capacity,
            ttl,
            entries: Mutex::new(Vec::new()),
        }
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 64] {
        let mut mac =
            <Blake2bMac512 as KeyInit>::new_from_slice(&self.key).expect("a 32-byte key fits");
        // Length-prefixed: a NUL separator let "a\0b":"c" and "a":"b\0c" (both sendable
        // in a Basic header) share one entry.
        mac.update(&(user.len() as u64).to_le_bytes());
        mac.update(user.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The caller for these credentials: the cached session if it is still valid, else
    /// a new login (which replaces the entry). Failed logins are not cached. Entries
    /// dropped here (expired, replaced, pushed out by the capacity) release their hold
    /// on their sessions after the lock: each is logged out once no request holds it.
    async fn login(&self, svc: &Arc<Service>, user: &str, password: &str) -> Result<Caller, ()> {
        let service = Arc::as_ptr(svc) as usize;
        let digest = self.digest(user, password);
        let now = Instant::now();
        let find = |entries: &[Entry]| {
            entries
                .iter()
                .position(|e| e.service == service && e.digest == digest)
        };
        let (hit, expired) = {
            let mut entries = self.entries.lock();
            let (expired, kept): (Vec<Entry>, Vec<Entry>) =
                entries.drain(..).partition(|e| e.expires <= now);
            *entries = kept;
            (find(&entries).map(|i| entries[i].lease.clone()), expired)
        };
        drop(expired);
        if let Some(lease) = &hit {
            match check(svc, &lease.session_ref, true).await {
                Ok(caller) => {
                    return Ok(Caller {
                        lease: hit,
                        ..caller
                    });
                }
                // The session is gone (logged out or collected): log in afresh below.
                Err(e) if e.code == codes::SESSION_INVALID => {}
                // Anything else (the store unreachable) says nothing about the session,
                // which other requests may be using: keep it, refuse this one.
                Err(_) => return Err(()),
            }
        }
        // First use, or the session was logged out or collected: log in afresh.
        let Ok(mine) = login(svc, user, password, ORIGINATOR_BASIC).await else {
            return Err(());
        };
        let mine = Lease::new(svc, mine);
        let (chosen, dropped) = {
            let mut entries = self.entries.lock();
            let mut dropped = Vec::new();
            let chosen = match find(&entries) {
                // A request with the same credentials logged in meanwhile: use its
                // session too, and let ours (which no one else has seen) go.
                Some(i)
                    if !hit
                        .as_ref()
                        .is_some_and(|h| Arc::ptr_eq(h, &entries[i].lease)) =>
                {
                    dropped.push(mine);
                    entries[i].lease.clone()
                }
                found => {
                    if let Some(i) = found {
                        dropped.push(entries.remove(i).lease);
                    }
                    while entries.len() >= self.capacity {
                        dropped.push(entries.remove(0).lease);
                    }
                    entries.push(Entry {
                        service,
                        digest,
                        lease: mine.clone(),
                        expires: now + self.ttl,
                    });
                    mine
                }
            };
            (chosen, dropped)
        };
        drop(dropped);
        let caller = check(svc, &chosen.session_ref, true)
            .await
            .map_err(|_| ())?;
        Ok(Caller {
            lease: Some(chosen),
            ..caller
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_is_parsed() {
        // "root:pa:ss" — a colon in the password stays in the password.
        assert_eq!(
            parse_basic("Basic cm9vdDpwYTpzcw=="),
            Some(("root".into(), "pa:ss".into()))
        );
        assert_eq!(
            parse_basic("basic cm9vdDpwYTpzcw"),
            Some(("root".into(), "pa:ss".into()))
        );
        // "rüt:pw" in ISO-8859-1 (as Python's requests sends it) and in UTF-8.
        assert_eq!(
            parse_basic("Basic cvx0OnB3"),
            Some(("rüt".into(), "pw".into()))
        );
        assert_eq!(
            parse_basic("Basic csO8dDpwdw=="),
            Some(("rüt".into(), "pw".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic cm9vdA=="), None); // no colon
    }

    async fn service() -> (tempfile::TempDir, Arc<Service>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = crate::config::Settings::defaults(dir.path().to_path_buf());
        settings.ephemeral = true;
        let (svc, _) = crate::serve::open_service(&settings, Some("pw")).expect("service");
        (dir, svc)
    }

    #[tokio::test]
    async fn basic_credentials_reuse_one_xapi_session() {
        let (_dir, svc) = service().await;
        let cache = BasicCache::new(4, BASIC_TTL);
        let a = cache.login(&svc, "root", "pw").await.expect("login");
        let b = cache.login(&svc, "root", "pw").await.expect("cached");
        assert!(a.basic);
        assert_eq!(
            a.session_ref, b.session_ref,
            "one session per credential pair"
        );
        assert_eq!(user_name(&a.record(&svc).await.expect("record")), "root");
        assert!(cache.login(&svc, "root", "wrong").await.is_err());
        assert_eq!(cache.entries.lock().len(), 1, "failures are not cached");
        // A session logged out (or collected) behind the cache's back: log in afresh.
        logout(&svc, &a.session_ref).await.expect("logout");
        let c = cache.login(&svc, "root", "pw").await.expect("relogin");
        assert_ne!(c.session_ref, a.session_ref);
        assert_eq!(cache.entries.lock().len(), 1);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_logs_out_what_it_drops() {
        let (_dir, svc) = service().await;
        svc.users
            .add("alice", "read-only", "alice-pw")
            .expect("user");
        svc.users.add("bob", "read-only", "bob-pw").expect("user");
        let cache = BasicCache::new(2, BASIC_TTL);
        let root = cache.login(&svc, "root", "pw").await.expect("root");
        let alice = cache.login(&svc, "alice", "alice-pw").await.expect("alice");
        let bob = cache.login(&svc, "bob", "bob-pw").await.expect("bob");
        assert_eq!(cache.entries.lock().len(), 2);
        // The oldest entry went; its session stays while a request still holds it (other
        // users filling the cache must not fail root's request in flight), and is logged
        // out once that request is done.
        held_then_logged_out(&svc, root, "root's session outlived its last use").await;
        assert!(check(&svc, &alice.session_ref, true).await.is_ok());
        assert!(check(&svc, &bob.session_ref, true).await.is_ok());
    }

    /// `caller`'s session, dropped from the cache, still serves while `caller` holds it,
    /// and is refused within a few seconds once it lets go (a released lease logs its
    /// session out in a task of its own).
    async fn held_then_logged_out(svc: &Arc<Service>, caller: Caller, what: &str) {
        let session_ref = caller.session_ref.clone();
        tokio::task::yield_now().await;
        assert!(check(svc, &session_ref, true).await.is_ok());
        drop(caller);
        for _ in 0..200 {
            if check(svc, &session_ref, true).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_requests_never_log_out_a_session_in_use() {
        // sushy and redfishtool send requests in parallel with the same Basic header:
        // every request that is answered must have been served by a live session, so a
        // racing login must not log out the session another request is using.
        let (_dir, svc) = service().await;
        let cache = Arc::new(BasicCache::new(4, BASIC_TTL));
        let mut runs = Vec::new();
        for _ in 0..6 {
            let (cache, svc) = (cache.clone(), svc.clone());
            runs.push(tokio::spawn(async move {
                cache.login(&svc, "root", "pw").await.expect("login")
            }));
        }
        let mut callers = Vec::new();
        for r in runs {
            callers.push(r.await.expect("joined"));
        }
        for c in &callers {
            assert!(
                check(&svc, &c.session_ref, true).await.is_ok(),
                "a caller was handed a session that a racing login logged out"
            );
        }
        assert_eq!(cache.entries.lock().len(), 1);
    }

    #[tokio::test]
    async fn expired_entries_are_logged_out() {
        let (_dir, svc) = service().await;
        let cache = BasicCache::new(4, Duration::ZERO);
        let a = cache.login(&svc, "root", "pw").await.expect("login");
        let b = cache.login(&svc, "root", "pw").await.expect("again");
        assert_ne!(a.session_ref, b.session_ref);
        // The expired session serves the request that still holds it, then goes.
        held_then_logged_out(&svc, a, "the expired session was never logged out").await;
        assert!(check(&svc, &b.session_ref, true).await.is_ok());
    }

    #[test]
    fn digests_are_keyed_and_separate_user_from_password() {
        let c = cache();
        assert_ne!(c.digest("ab", "c"), c.digest("a", "bc"));
        assert_ne!(c.digest("a\0b", "c"), c.digest("a", "b\0c"));
        assert_ne!(
            c.digest("a", "b"),
            BasicCache::new(1, BASIC_TTL).digest("a", "b"),
            "keyed per cache"
        );
        assert_eq!(c.digest("a", "b"), c.digest("a", "b"));
    }
}
