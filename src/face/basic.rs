//! HTTP Basic authentication for every REST face (Redfish, XClarity), mapped onto XAPI
//! sessions so that XAPI's users, roles, session GC, login guard and ownership rule apply
//! unchanged. One implementation and one cache for all faces.
//!
//! Basic authentication would cost an argon2 hash (tens of milliseconds) per request if
//! each request logged in. Instead a small cache maps a keyed BLAKE2b digest of the face's
//! `originator`, `user` (length-prefixed) and `password` to an XAPI session (made with that
//! originator, so a session says which face made it) for [`BASIC_TTL`]. The cache never
//! holds a password, holds at most [`BASIC_CACHE_SIZE`] entries (all faces together), and
//! logs out the session of every entry it drops once the last request using it is done
//! (a [`Lease`] each request holds), so it keeps at most one live session per credential
//! pair and face beyond those still in use, and never pulls a session from under a
//! request: neither the entry's expiry nor other users filling the cache can make another
//! user's request in flight fail. A password change takes effect for Basic requests when
//! the entry expires (at most [`BASIC_TTL`] later).
//!
//! Logins go through `session.login_with_password` in the pipeline, so the login guard's
//! bounds (`api/login_guard.rs`: concurrency, negative cache, backoff) hold for Basic
//! requests exactly as for any login; every reuse is checked through the pipeline
//! (`session.get_uuid` with the session itself), so a session logged out or collected
//! behind the cache's back is noticed and replaced.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use blake2::Blake2bMac512;
use blake2::digest::{KeyInit, Mac};
use hyper::HeaderMap;
use parking_lot::Mutex;

use crate::api::dispatch::Service;
use crate::api::error::{ApiError, codes};
use crate::face::xapi::{text, xapi};
use crate::wire::value::Value;

/// How long a Basic credential is trusted without a new password check.
pub const BASIC_TTL: Duration = Duration::from_secs(60);
/// Most Basic credential pairs remembered at once (all faces together).
pub const BASIC_CACHE_SIZE: usize = 64;

/// A Basic session the cache handed out: logged out (through the service that made it)
/// when the last holder, the cache's entry or a request, lets go. The logout runs as a
/// task of its own, so whoever drops the last hold never waits for it.
pub struct Lease {
    svc: Weak<Service>,
    session_ref: String,
    uuid: String,
    user: String,
}

impl Lease {
    /// The XAPI session every call of a request holding this lease uses.
    pub fn session_ref(&self) -> &str {
        &self.session_ref
    }

    /// The session's uuid (a Redfish session's `Id`).
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The session's `auth_user_name`.
    pub fn user(&self) -> &str {
        &self.user
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

/// The `Authorization: Basic` credentials of a request, if it has them.
pub fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_basic)
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

/// The session for Basic credentials `user`/`password` on the face whose sessions carry
/// `originator`: the cached one while it is valid, else a new login. The error is the
/// login's (wrong credentials, the login guard's refusals) or, for a cached session that
/// could not be checked, the check's; a face maps it to its protocol.
pub async fn session(
    svc: &Arc<Service>,
    originator: &'static str,
    user: &str,
    password: &str,
) -> Result<Arc<Lease>, ApiError> {
    cache().login(svc, originator, user, password).await
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

/// Checks that a cached session is still valid (`session.get_uuid` with itself: the
/// session check of any call).
async fn still_valid(svc: &Arc<Service>, session_ref: &str) -> Result<(), ApiError> {
    let s = Value::str(session_ref);
    xapi(svc, "session.get_uuid", vec![s.clone(), s])
        .await
        .map(|_| ())
}

/// A new session's lease, with the two fields faces need of it (fixed for the session's
/// life, so read once).
async fn new_lease(svc: &Arc<Service>, session_ref: String) -> Result<Arc<Lease>, ApiError> {
    let s = Value::str(&session_ref);
    let record = xapi(svc, "session.get_record", vec![s.clone(), s]).await;
    let lease = Arc::new(Lease {
        svc: Arc::downgrade(svc),
        uuid: record.as_ref().map(|r| text(r, "uuid")).unwrap_or_default(),
        user: record
            .as_ref()
            .map(|r| text(r, "auth_user_name"))
            .unwrap_or_default(),
        session_ref,
    });
    // On an error the lease is dropped here, and its session logged out.
    record.map(|_| lease)
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

    fn digest(&self, originator: &str, user: &str, password: &str) -> [u8; 64] {
        let mut mac =
            <Blake2bMac512 as KeyInit>::new_from_slice(&self.key).expect("a 32-byte key fits");
        // Length-prefixed: a NUL separator let "a\0b":"c" and "a":"b\0c" (both sendable
        // in a Basic header) share one entry.
        mac.update(&(originator.len() as u64).to_le_bytes());
        mac.update(originator.as_bytes());
        mac.update(&(user.len() as u64).to_le_bytes());
        mac.update(user.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The session for these credentials: the cached one if it is still valid, else a
    /// new login (which replaces the entry). Failed logins are not cached. Entries
    /// dropped here (expired, replaced, pushed out by the capacity) release their hold
    /// on their sessions after the lock: each is logged out once no request holds it.
    async fn login(
        &self,
        svc: &Arc<Service>,
        originator: &'static str,
        user: &str,
        password: &str,
    ) -> Result<Arc<Lease>, ApiError> {
        let service = Arc::as_ptr(svc) as usize;
        let digest = self.digest(originator, user, password);
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
            match still_valid(svc, &lease.session_ref).await {
                Ok(()) => return Ok(lease.clone()),
                // The session is gone (logged out or collected): log in afresh below.
                Err(e) if e.code == codes::SESSION_INVALID => {}
                // Anything else (the store unreachable) says nothing about the session,
                // which other requests may be using: keep it, refuse this one.
                Err(e) => return Err(e),
            }
        }
        // First use, or the session was logged out or collected: log in afresh.
        let mine = login(svc, user, password, originator).await?;
        let mine = new_lease(svc, mine).await?;
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
        still_valid(svc, &chosen.session_ref).await?;
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACE: &str = "test-basic";

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
        let mut h = HeaderMap::new();
        assert_eq!(credentials(&h), None);
        h.insert(
            hyper::header::AUTHORIZATION,
            "Basic cm9vdDpwYTpzcw==".parse().unwrap(),
        );
        assert_eq!(credentials(&h), Some(("root".into(), "pa:ss".into())));
    }

    async fn service() -> (tempfile::TempDir, Arc<Service>) {
        crate::serve::ephemeral_service()
    }

    async fn originator_of(svc: &Arc<Service>, lease: &Lease) -> String {
        let s = Value::str(lease.session_ref());
        let record = xapi(svc, "session.get_record", vec![s.clone(), s])
            .await
            .expect("record");
        text(&record, "originator")
    }

    #[tokio::test]
    async fn basic_credentials_reuse_one_xapi_session() {
        let (_dir, svc) = service().await;
        let cache = BasicCache::new(4, BASIC_TTL);
        let a = cache.login(&svc, FACE, "root", "pw").await.expect("login");
        let b = cache.login(&svc, FACE, "root", "pw").await.expect("cached");
        assert_eq!(
            a.session_ref, b.session_ref,
            "one session per credential pair"
        );
        assert_eq!(a.user(), "root");
        assert_eq!(a.uuid().len(), 36);
        assert_eq!(originator_of(&svc, &a).await, FACE);
        let wrong = cache.login(&svc, FACE, "root", "wrong").await.unwrap_err();
        assert_eq!(wrong.code, codes::SESSION_AUTHENTICATION_FAILED);
        assert_eq!(cache.entries.lock().len(), 1, "failures are not cached");
        // A session logged out (or collected) behind the cache's back: log in afresh.
        logout(&svc, &a.session_ref).await.expect("logout");
        let c = cache
            .login(&svc, FACE, "root", "pw")
            .await
            .expect("relogin");
        assert_ne!(c.session_ref, a.session_ref);
        assert_eq!(cache.entries.lock().len(), 1);
    }

    #[tokio::test]
    async fn each_face_gets_sessions_of_its_own_originator() {
        let (_dir, svc) = service().await;
        let cache = BasicCache::new(4, BASIC_TTL);
        let a = cache.login(&svc, "face-a", "root", "pw").await.expect("a");
        let b = cache.login(&svc, "face-b", "root", "pw").await.expect("b");
        assert_ne!(a.session_ref, b.session_ref);
        assert_eq!(originator_of(&svc, &a).await, "face-a");
        assert_eq!(originator_of(&svc, &b).await, "face-b");
        assert_eq!(cache.entries.lock().len(), 2);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_logs_out_what_it_drops() {
        let (_dir, svc) = service().await;
        svc.users
            .add("alice", "read-only", "alice-pw")
            .expect("user");
        svc.users.add("bob", "read-only", "bob-pw").expect("user");
        let cache = BasicCache::new(2, BASIC_TTL);
        let root = cache.login(&svc, FACE, "root", "pw").await.expect("root");
        let alice = cache
            .login(&svc, FACE, "alice", "alice-pw")
            .await
            .expect("alice");
        let bob = cache.login(&svc, FACE, "bob", "bob-pw").await.expect("bob");
        assert_eq!(cache.entries.lock().len(), 2);
        // The oldest entry went; its session stays while a request still holds it (other
        // users filling the cache must not fail root's request in flight), and is logged
        // out once that request is done.
        held_then_logged_out(&svc, root, "root's session outlived its last use").await;
        assert!(still_valid(&svc, &alice.session_ref).await.is_ok());
        assert!(still_valid(&svc, &bob.session_ref).await.is_ok());
    }

    /// `lease`'s session, dropped from the cache, still serves while `lease` is held, and
    /// is refused within a few seconds once it is let go (a released lease logs its
    /// session out in a task of its own).
    async fn held_then_logged_out(svc: &Arc<Service>, lease: Arc<Lease>, what: &str) {
        let session_ref = lease.session_ref.clone();
        tokio::task::yield_now().await;
        assert!(still_valid(svc, &session_ref).await.is_ok());
        drop(lease);
        for _ in 0..200 {
            if still_valid(svc, &session_ref).await.is_err() {
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
                cache.login(&svc, FACE, "root", "pw").await.expect("login")
            }));
        }
        let mut leases = Vec::new();
        for r in runs {
            leases.push(r.await.expect("joined"));
        }
        for l in &leases {
            assert!(
                still_valid(&svc, &l.session_ref).await.is_ok(),
                "a caller was handed a session that a racing login logged out"
            );
        }
        assert_eq!(cache.entries.lock().len(), 1);
    }

    #[tokio::test]
    async fn expired_entries_are_logged_out() {
        let (_dir, svc) = service().await;
        let cache = BasicCache::new(4, Duration::ZERO);
        let a = cache.login(&svc, FACE, "root", "pw").await.expect("login");
        let b = cache.login(&svc, FACE, "root", "pw").await.expect("again");
        assert_ne!(a.session_ref, b.session_ref);
        // The expired session serves the request that still holds it, then goes.
        held_then_logged_out(&svc, a, "the expired session was never logged out").await;
        assert!(still_valid(&svc, &b.session_ref).await.is_ok());
    }

    #[test]
    fn digests_are_keyed_and_separate_fields() {
        let c = cache();
        assert_ne!(c.digest(FACE, "ab", "c"), c.digest(FACE, "a", "bc"));
        assert_ne!(c.digest(FACE, "a\0b", "c"), c.digest(FACE, "a", "b\0c"));
        assert_ne!(c.digest("ab", "c", "d"), c.digest("a", "bc", "d"));
        assert_ne!(
            c.digest(FACE, "a", "b"),
            BasicCache::new(1, BASIC_TTL).digest(FACE, "a", "b"),
            "keyed per cache"
        );
        assert_eq!(c.digest(FACE, "a", "b"), c.digest(FACE, "a", "b"));
    }
}
