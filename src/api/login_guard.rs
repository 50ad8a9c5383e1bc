//! Bounded password work (`session.login_with_password`, and so Redfish Basic and every
//! later face, which log in through the dispatcher).
//!
//! An argon2 check costs ~19 MiB and tens of milliseconds by design. Without bounds, 100
//! simultaneous wrong passwords cost over a gigabyte and seconds of latency for everyone.
//! xapi has no such bounds (PAM does the work there); these are ours:
//!
//! - **Concurrency**: at most `max-concurrent-logins` checks run at once; a login waits
//!   for a place up to [`VERIFY_WAIT`], then is refused with a message saying so.
//! - **Negative cache**: a (user, stored hash, password) triple that failed is remembered
//!   (as a keyed BLAKE2b digest, never the password; at most [`NEGATIVE_CAPACITY`] for
//!   [`NEGATIVE_TTL`]), so repeating it costs no argon2. This is what makes repeated bad
//!   Redfish Basic requests cheap. The stored hash is part of the key, so a password
//!   change (or a new user of that name) makes old entries miss.
//! - **Backoff**: failures are counted per user name and per client address (IPv6 by
//!   /64). Past `login-free-failures`, a *failure* is answered only after a delay that
//!   doubles with each further failure ([`BASE_DELAY`] up to [`MAX_DELAY`]); counts are
//!   forgotten [`FORGET_AFTER`] after the last failure, and a user's count on their next
//!   success. A correct password is never delayed by its user's count, so an attacker
//!   guessing alice's password cannot lock alice out: they only slow their own wrong
//!   answers. To stop parallel connections from side-stepping the delay, an address past
//!   its free failures has at most [`PER_ADDRESS_IN_FLIGHT`] logins in progress (delays
//!   included); more are refused at once. That refusal does reach other clients behind
//!   the same address (a NAT or a proxy) while its count lasts, which is the price of a
//!   per-address bound; an address without failures is never limited this way.
//! - **Timing**: an unknown user costs what a wrong password costs (the dummy hash in
//!   `users.rs`), and both go through the same cache and delays.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use blake2::Blake2bMac;
use blake2::digest::{KeyInit, Mac, consts::U32};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::api::limits::address_key;
use crate::users::{AuthError, Credential, User};

/// How long a login waits for a verification slot before it is refused.
pub const VERIFY_WAIT: Duration = Duration::from_secs(10);
/// Logins in progress at once from one address past its free failures (delayed answers
/// included).
pub const PER_ADDRESS_IN_FLIGHT: usize = 8;
/// The first delay after the free failures; each further failure doubles it.
pub const BASE_DELAY: Duration = Duration::from_millis(100);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// Failure counts are forgotten this long after the last failure.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Most users and addresses with failure counts kept (each).
pub const MAX_TRACKED: usize = 16_384;
/// Most failed credential digests remembered.
pub const NEGATIVE_CAPACITY: usize = 4096;
/// How long a failed credential is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(600);

/// Why a login did not succeed.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong password or unknown user (indistinguishable on purpose).
    Failed,
    /// Too many logins in progress: the message says which bound.
    Busy(&'static str),
    /// The users file could not be read.
    Store(String),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failure counts per key, bounded.
#[derive(Debug)]
struct Counts<K> {
    map: HashMap<K, Failures>,
}

impl<K: std::hash::Hash + Eq + Clone> Counts<K> {
    fn new() -> Counts<K> {
        Counts {
            map: HashMap::new(),
        }
    }

    fn get(&self, k: &K, now: Instant) -> u32 {
        match self.map.get(k) {
            Some(f) if now.duration_since(f.last) < FORGET_AFTER => f.count,
            _ => 0,
        }
    }

    fn fail(&mut self, k: &K, now: Instant) -> u32 {
        let count = self.get(k, now).saturating_add(1);
        if !self.map.contains_key(k) && self.map.len() >= MAX_TRACKED {
            self.map
                .retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if self.map.len() >= MAX_TRACKED {
                // Still full of recent failures: forget the stalest one.
                let stalest = self
                    .map
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone());
                if let Some(old) = stalest {
                    self.map.remove(&old);
                }
            }
        }
        self.map.insert(k.clone(), Failures { count, last: now });
        count
    }

    fn clear(&mut self, k: &K) {
        self.map.remove(k);
    }
}

/// Failed credential digests, oldest first.
#[derive(Debug, Default)]
struct Negative {
    set: HashSet<[u8; 32]>,
    order: VecDeque<([u8; 32], Instant)>,
}

impl Negative {
    fn expire(&mut self, now: Instant) {
        while let Some((d, t)) = self.order.front() {
            if now.duration_since(*t) < NEGATIVE_TTL && self.order.len() <= NEGATIVE_CAPACITY {
                break;
            }
            self.set.remove(d);
            self.order.pop_front();
        }
    }

    fn contains(&mut self, d: &[u8; 32], now: Instant) -> bool {
        self.expire(now);
        self.set.contains(d)
    }

    fn insert(&mut self, d: [u8; 32], now: Instant) {
        if self.set.insert(d) {
            self.order.push_back((d, now));
        }
        self.expire(now);
    }
}

/// A user name as counted: a keyed digest, so that a count costs the same few bytes
/// whatever name was sent (anyone may send a ~300 KB name, and every name tried is counted,
/// known or not, so that counting cannot tell the two apart).
type NameKey = [u8; 32];

#[derive(Debug)]
struct State {
    users: Counts<NameKey>,
    addresses: Counts<IpAddr>,
    in_flight: HashMap<IpAddr, usize>,
    negative: Negative,
}

/// The login throttle of one service.
#[derive(Debug)]
pub struct LoginGuard {
    verifications: Arc<Semaphore>,
    free_failures: u32,
    key: [u8; 32],
    state: Mutex<State>,
}

/// The delay before answering the `count`th failure.
pub fn delay(free: u32, count: u32) -> Duration {
    if count <= free {
        return Duration::ZERO;
    }
    let doublings = (count - free - 1).min(16);
    (BASE_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

/// Gives an address's in-flight place back when the login ends, however it ends.
struct InFlight<'a> {
    guard: &'a LoginGuard,
    address: Option<IpAddr>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(a) = self.address {
            let mut st = self.guard.state.lock();
            if let Some(n) = st.in_flight.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    st.in_flight.remove(&a);
                }
            }
        }
    }
}

impl LoginGuard {
    pub fn new(max_concurrent: usize, free_failures: u32) -> LoginGuard {
        LoginGuard {
            verifications: Arc::new(Semaphore::new(max_concurrent.max(1))),
            free_failures,
            key: rand::random(),
            state: Mutex::new(State {
                users: Counts::new(),
                addresses: Counts::new(),
                in_flight: HashMap::new(),
                negative: Negative::default(),
            }),
        }
    }

    /// The keyed digest of `parts` (each length-prefixed, so no two lists collide).
    fn mac(&self, parts: &[&str]) -> [u8; 32] {
        let mut mac =
            <Blake2bMac<U32> as KeyInit>::new_from_slice(&self.key).expect("a 32-byte key fits");
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// What a failed (user, stored hash, password) is remembered as.
    fn digest(&self, name: &str, hash: &str, password: &str) -> [u8; 32] {
        self.mac(&[name, hash, password])
    }

    /// What a user name's failures are counted under (a separate domain from
    /// [`Self::digest`]: one part, where a credential has three).
    fn name_key(&self, name: &str) -> NameKey {
        self.mac(&[name])
    }

    /// Checks `name`'s password within the bounds above, from `peer` if known.
    /// `credential` reads the user's stored credential (`UserStore::credential`); it runs
    /// on the blocking pool.
    pub async fn login(
        &self,
        credential: impl FnOnce() -> Result<Credential, AuthError> + Send + 'static,
        name: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<User, Refusal> {
        let address = peer.map(address_key);
        {
            let mut st = self.state.lock();
            if let Some(a) = address {
                // Only an address past its free failures is limited, so a burst of
                // good logins from behind one NAT or proxy is never refused.
                let suspect = st.addresses.get(&a, Instant::now()) >= self.free_failures;
                let n = st.in_flight.entry(a).or_insert(0);
                if suspect && *n >= PER_ADDRESS_IN_FLIGHT {
                    return Err(Refusal::Busy(
                        "Too many logins in progress from this address; try again later",
                    ));
                }
                *n += 1;
            }
        }
        let _in_flight = InFlight {
            guard: self,
            address,
        };
        let credential = tokio::task::spawn_blocking(credential)
            .await
            .map_err(|e| Refusal::Store(e.to_string()))?
            .map_err(|e| match e {
                AuthError::Store(m) => Refusal::Store(m),
                _ => Refusal::Failed,
            })?;
        let digest = self.digest(name, &credential.hash, password);
        let cached = self.state.lock().negative.contains(&digest, Instant::now());
        let outcome = if cached {
            Err(AuthError::BadPassword)
        } else {
            let permit =
                tokio::time::timeout(VERIFY_WAIT, self.verifications.clone().acquire_owned())
                    .await
                    .map_err(|_| Refusal::Busy("Too many logins at once; try again later"))?
                    .map_err(|_| Refusal::Busy("the server is shutting down"))?;
            // Identical credentials sent at once all miss the cache; the first to be
            // checked fills it, so those that waited for a place look again.
            if self.state.lock().negative.contains(&digest, Instant::now()) {
                Err(AuthError::BadPassword)
            } else {
                let pw = password.to_string();
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    credential.check(&pw)
                })
                .await
                .map_err(|e| Refusal::Store(e.to_string()))?
            }
        };
        let now = Instant::now();
        // Hashed before the lock is taken: a name may be ~300 KB.
        let key = self.name_key(name);
        match outcome {
            Ok(user) => {
                self.state.lock().users.clear(&key);
                Ok(user)
            }
            Err(AuthError::Store(m)) => Err(Refusal::Store(m)),
            Err(_) => {
                let wait = {
                    let mut st = self.state.lock();
                    st.negative.insert(digest, now);
                    let by_user = st.users.fail(&key, now);
                    let by_address = address.map_or(0, |a| st.addresses.fail(&a, now));
                    delay(self.free_failures, by_user.max(by_address))
                };
                tokio::time::sleep(wait).await;
                Err(Refusal::Failed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::UserStore;

    #[test]
    fn delays_double_after_the_free_failures_up_to_the_cap() {
        assert_eq!(delay(5, 0), Duration::ZERO);
        assert_eq!(delay(5, 5), Duration::ZERO);
        assert_eq!(delay(5, 6), Duration::from_millis(100));
        assert_eq!(delay(5, 7), Duration::from_millis(200));
        assert_eq!(delay(5, 10), Duration::from_millis(1600));
        assert_eq!(delay(5, 12), MAX_DELAY);
        assert_eq!(delay(5, u32::MAX), MAX_DELAY);
        assert_eq!(delay(0, 1), BASE_DELAY);
    }

    #[test]
    fn counts_are_bounded_and_forgotten() {
        let now = Instant::now();
        let mut c: Counts<u32> = Counts::new();
        for k in 0..(MAX_TRACKED as u32 + 10) {
            c.fail(&k, now);
        }
        assert_eq!(c.map.len(), MAX_TRACKED);
        assert_eq!(c.fail(&7, now), 2);
        assert_eq!(c.get(&7, now + FORGET_AFTER), 0);
        c.clear(&7);
        assert_eq!(c.get(&7, now), 0);
    }

    #[test]
    fn the_negative_cache_is_bounded_and_expires() {
        let now = Instant::now();
        let mut n = Negative::default();
        for i in 0..(NEGATIVE_CAPACITY + 5) {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            n.insert(d, now);
        }
        assert_eq!(n.set.len(), NEGATIVE_CAPACITY);
        assert!(!n.contains(&[0u8; 32], now), "the oldest went first");
        let mut last = [0u8; 32];
        last[..8].copy_from_slice(&((NEGATIVE_CAPACITY + 4) as u64).to_le_bytes());
        assert!(n.contains(&last, now));
        assert!(!n.contains(&last, now + NEGATIVE_TTL));
    }

    fn lookup(
        users: &Arc<UserStore>,
        name: &str,
    ) -> impl FnOnce() -> Result<Credential, AuthError> + Send + 'static {
        let (users, name) = (users.clone(), name.to_string());
        move || users.credential(&name)
    }

    #[tokio::test]
    async fn repeated_failures_cost_no_argon2_and_a_success_is_not_delayed() {
        let dir = tempfile::tempdir().unwrap();
        let users = Arc::new(UserStore::open(dir.path()).unwrap());
        users.ensure_root(Some("right")).unwrap();
        let guard = LoginGuard::new(1, 1);
        let peer = Some("192.0.2.1".parse().unwrap());
        assert_eq!(
            guard
                .login(lookup(&users, "root"), "root", "wrong", peer)
                .await,
            Err(Refusal::Failed)
        );
        let digest = {
            let cred = users.credential("root").unwrap();
            guard.digest("root", &cred.hash, "wrong")
        };
        assert!(
            guard
                .state
                .lock()
                .negative
                .contains(&digest, Instant::now())
        );
        // The second failure is the first delayed one (free = 1): 100 ms.
        let t = Instant::now();
        assert_eq!(
            guard
                .login(lookup(&users, "root"), "root", "wrong", peer)
                .await,
            Err(Refusal::Failed)
        );
        assert!(t.elapsed() >= BASE_DELAY);
        // The right password is answered at once, and clears the user's count.
        let t = Instant::now();
        assert!(
            guard
                .login(lookup(&users, "root"), "root", "right", peer)
                .await
                .is_ok()
        );
        assert!(t.elapsed() < BASE_DELAY * 5, "{:?}", t.elapsed());
        assert_eq!(
            guard
                .state
                .lock()
                .users
                .get(&guard.name_key("root"), Instant::now()),
            0
        );
        assert!(guard.state.lock().in_flight.is_empty());
        // The in-flight bound applies only to an address past its free failures.
        let clean: IpAddr = "192.0.2.2".parse().unwrap();
        guard
            .state
            .lock()
            .in_flight
            .insert(clean, PER_ADDRESS_IN_FLIGHT);
        assert!(
            guard
                .login(lookup(&users, "root"), "root", "right", Some(clean))
                .await
                .is_ok()
        );
        guard.state.lock().addresses.fail(&clean, Instant::now());
        assert!(matches!(
            guard
                .login(lookup(&users, "root"), "root", "right", Some(clean))
                .await,
            Err(Refusal::Busy(_))
        ));
        guard.state.lock().in_flight.clear();
        // An unknown user goes the same way.
        assert_eq!(
            guard
                .login(lookup(&users, "nobody"), "nobody", "x", None)
                .await,
            Err(Refusal::Failed)
        );
    }
}
