//! The event class (xapi's `xapi_event.ml`, spec §5): `event.from`, the legacy
//! `register`/`unregister`/`next`, `get_current_id` and `inject`.
//!
//! Waiting costs nothing: a blocked call sleeps on the database's watch channel and a
//! deadline. One change wakes every waiter with a single store; each then asks the change
//! index for what happened after its own token, so the work per wake-up is proportional to
//! what changed, not to the number of objects. No lock is held while a waiter sleeps, and
//! the reply is serialised after the read lock is released.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use md5::{Digest, Md5};
use rustc_hash::FxHashMap;
use tokio::sync::watch;
use tokio::time::Instant;

use super::datamodel::{self, CLASSES};
use super::dispatch::{Ctx, RequestMeta, Service};
use super::error::{ApiError, codes};
use super::marshal::{arg, ocaml_int64};
use super::record::reply_record;
use crate::db::{Change, LegacySubscription, Mark, Op, Tables};
use crate::wire::encode::{Codec, to_codec};
use crate::wire::value::Value;

/// Longest wait: xapi uses 24 h when the timeout is negative or not a number.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A parsed subscription: `*`, `class` or `class/ref` (class lower-cased, ref exact).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sub {
    All,
    Class(ClassName),
    Object(ClassName, String),
}

/// A subscription's class: the datamodel's own name when it has the class, so that a
/// sleeping waiter holds no copy of it and a woken one frees none (one of the four frees
/// of a `task/<ref>` waiter's values); else the lower-cased text, which matches nothing
/// but is kept as it was given (a legacy subscription's text, a kept batch's key).
type ClassName = std::borrow::Cow<'static, str>;

fn class_name(given: &str) -> ClassName {
    let known = |name: &str| datamodel::class(name).map(|c| ClassName::Borrowed(c.name));
    // Lower-casing ASCII without capitals changes nothing: no copy to look it up.
    if given.is_ascii() && !given.bytes().any(|b| b.is_ascii_uppercase()) {
        return known(given).unwrap_or_else(|| ClassName::Owned(given.to_string()));
    }
    let lower = given.to_lowercase();
    known(&lower).unwrap_or(ClassName::Owned(lower))
}

impl Sub {
    fn parse(s: &str) -> Sub {
        if s == "*" {
            return Sub::All;
        }
        match s.split_once('/') {
            Some((class, r)) => Sub::Object(class_name(class), r.to_string()),
            None => Sub::Class(class_name(s)),
        }
    }

    /// The normalised text kept in a session's legacy subscription.
    fn text(&self) -> String {
        match self {
            Sub::All => "*".to_string(),
            Sub::Class(c) => c.to_string(),
            Sub::Object(c, r) => format!("{c}/{r}"),
        }
    }

    fn matches(&self, class: &str, r: &str) -> bool {
        match self {
            Sub::All => true,
            Sub::Class(c) => c.as_ref() == class,
            Sub::Object(c, o) => c.as_ref() == class && o == r,
        }
    }
}

fn any_matches(subs: &[Sub], class: &str, r: &str) -> bool {
    subs.iter().any(|s| s.matches(class, r))
}

/// `%020d,%020d`, so that tokens compare as strings.
fn token(generation: u64) -> String {
    format!("{generation:020},{:020}", 0)
}

/// xapi's `Token.of_string`: `""` or `"<gen>,<msg_gen>"` with OCaml integers.
fn parse_token(t: &str) -> Result<u64, ApiError> {
    if t.is_empty() {
        return Ok(0);
    }
    let bad = || ApiError::new(codes::EVENT_FROM_TOKEN_PARSE_FAILURE, [t]);
    let (g, m) = t.split_once(',').ok_or_else(bad)?;
    if m.contains(',') {
        return Err(bad());
    }
    let g = ocaml_int64(g).ok_or_else(bad)?;
    ocaml_int64(m).ok_or_else(bad)?;
    Ok(u64::try_from(g).unwrap_or(0))
}

fn wait_for(timeout: f64) -> Duration {
    if timeout.is_nan() || timeout < 0.0 {
        return MAX_WAIT;
    }
    Duration::try_from_secs_f64(timeout).unwrap_or(MAX_WAIT)
}

fn session_gone(session_ref: &str) -> ApiError {
    ApiError::new(codes::SESSION_INVALID, [session_ref])
}

fn event_value(
    id: String,
    timestamp: String,
    class: &str,
    op: Op,
    r: &str,
    snapshot: Option<Value>,
) -> Value {
    let mut members = vec![
        ("id".to_string(), Value::String(id)),
        ("timestamp".to_string(), Value::String(timestamp)),
        ("class".to_string(), Value::str(class)),
        ("operation".to_string(), Value::str(op.as_str())),
        ("ref".to_string(), Value::str(r)),
    ];
    if let Some(s) = snapshot {
        members.push(("snapshot".to_string(), s));
    }
    Value::Struct(members)
}

/// `valid_ref_counts`: every table's row count, as int32 (`<i4>`).
fn ref_counts(tables: &Tables) -> Value {
    let counts = CLASSES
        .iter()
        .filter(|c| c.implicit)
        .map(|c| {
            let n = i32::try_from(tables.count(c.name)).unwrap_or(i32::MAX);
            (c.name.to_string(), Value::Int32(n))
        })
        .collect();
    Value::Struct(counts)
}

/// One `event.from` batch after generation `since`: adds, then mods, then dels (xapi's
/// order), each coalesced per object.
/// The events after `since`, the ref counts, the token, the sequence number the answer
/// reflects (see [`crate::db::journal`]), and the tables' marks it was read at (what a
/// shared batch is keyed by, and what the caller's later looks check their session by).
type Collected = (Vec<Value>, Value, u64, u64, Mark);

fn collect(
    svc: &Service,
    session_ref: &str,
    codec: Option<Codec>,
    subs: &[Sub],
    since: u64,
) -> Result<Collected, ApiError> {
    let tables = svc.db.read();
    if tables.session(session_ref).is_none() {
        return Err(session_gone(session_ref));
    }
    let (mut adds, mut mods, mut dels) = (Vec::new(), Vec::new(), Vec::new());
    for (g, change) in tables.changes_since(since) {
        match change {
            Change::Live { class, r } => {
                if !any_matches(subs, class, r) {
                    continue;
                }
                let (Some(stamp), Some(row), Some(def)) = (
                    tables.stamp(class, r),
                    tables.row(class, r),
                    datamodel::class(class),
                ) else {
                    continue;
                };
                let op = if stamp.created > since {
                    Op::Add
                } else {
                    Op::Mod
                };
                let ev = event_value(
                    g.to_string(),
                    "0.0".into(),
                    class,
                    op,
                    r,
                    Some(reply_record(codec, def, row, None)),
                );
                if op == Op::Add {
                    adds.push(ev)
                } else {
                    mods.push(ev)
                }
            }
            Change::Deleted { class, r, created } => {
                if created <= since && any_matches(subs, class, r) {
                    dels.push(event_value(
                        g.to_string(),
                        "0.0".into(),
                        class,
                        Op::Del,
                        r,
                        None,
                    ));
                }
            }
        }
    }
    adds.append(&mut mods);
    adds.append(&mut dels);
    Ok((
        adds,
        ref_counts(&tables),
        tables.generation(),
        tables.seq(),
        tables.mark(),
    ))
}

/// A call's outcome: its value, or (an `event.from` with nothing to answer yet) the wait
/// itself, which the pipeline finishes once the call's own values are dropped
/// ([`crate::api::dispatch::dispatch`]): the parsed call, the pipeline's copies of its
/// arguments and the caller are freed before the call sleeps, not when ten thousand
/// waiters wake at once, and the pipeline's layers are not resumed at wake-up.
pub enum Answer {
    Done(Value),
    Wait(Wait),
}

impl Answer {
    /// The value, after the wait if there is one.
    pub async fn finish(self, svc: &Service, meta: &RequestMeta) -> Result<Value, ApiError> {
        match self {
            Answer::Done(v) => Ok(v),
            Answer::Wait(w) => w.finish(svc, meta).await,
        }
    }
}

/// A sleeping `event.from`: only what its answer needs (the caller's session, its
/// subscriptions, its token and deadline, its deadline bucket with the bucket's epoch it
/// last looked at, see [`Deadlines`], and the tables' count of gone sessions when a look
/// last saw its session, see [`Batches::find`]).
pub struct Wait {
    session_ref: String,
    subs: Vec<Sub>,
    since: u64,
    deadline: Instant,
    bucket: Option<Ticket>,
    seen: u64,
    gone: Option<u64>,
}

/// `event.from(classes, token, timeout)`.
pub async fn from(ctx: &Ctx<'_>, args: &[Value]) -> Result<Answer, ApiError> {
    let subs: Vec<Sub> = arg::strings(&args[0])
        .iter()
        .map(|s| Sub::parse(s))
        .collect();
    let since = parse_token(arg::string(&args[1]))?;
    let timeout = wait_for(arg::float(&args[2]));
    let deadline = Instant::now() + timeout;
    // A change that lands after a look wakes us: the receiver starts with the current
    // generation seen, and `changed` marks the one it returns for seen, so any later
    // store is unseen. (No `borrow_and_update` per look: that is the channel's lock,
    // which 10,000 waiters woken at once would take in turn on both cores.)
    let rx = ctx.svc.db.subscribe();
    let mut wait = Wait {
        session_ref: ctx.caller().session_ref.to_string(),
        subs,
        since,
        deadline,
        bucket: None,
        seen: 0,
        gone: None,
    };
    match wait.look(ctx.svc, ctx.meta).await? {
        Some(v) => Ok(Answer::Done(v)),
        None => {
            // Nothing to answer yet: the reply's buffer is not needed while we sleep.
            ctx.meta.reply.release();
            // From now on the bucket wakes us, at a change and at the bucket's end. Its
            // forwarder passes on every change after the join; one that landed between
            // the look and the join is in our own receiver: then look again at once (an
            // epoch we have not seen).
            let (bucket, seen) = ctx.svc.event_deadlines.join(&ctx.svc.db, deadline, timeout);
            wait.seen = seen;
            if rx.has_changed().unwrap_or(true) {
                wait.seen = wait.seen.wrapping_sub(1);
            }
            wait.bucket = Some(bucket);
            Ok(Answer::Wait(wait))
        }
    }
}

impl Wait {
    /// Sleeps until a change or the deadline, looks again, and so on until there is an
    /// answer.
    pub async fn finish(mut self, svc: &Service, meta: &RequestMeta) -> Result<Value, ApiError> {
        // No timer of our own: the bucket wakes us at every change and once at its end,
        // which is at or after our deadline (the look then answers). A woken waiter has
        // nothing to cancel or unlink: `notify_waiters` took it off the bucket's list.
        let Some(ticket) = self.bucket.take() else {
            return self.sleep_alone(svc, meta).await;
        };
        let bucket = &ticket.0;
        loop {
            let epoch = bucket.epoch.load(Ordering::Acquire);
            if epoch != self.seen {
                self.seen = epoch;
                if let Some(v) = self.look(svc, meta).await? {
                    return Ok(v);
                }
                if bucket.ended.load(Ordering::Acquire) {
                    // Past the bucket's end yet not answered: its rules exclude this.
                    break;
                }
                continue;
            }
            // On the list before the epoch is checked again: a change passed on after
            // that check notifies us, one before it moved the epoch.
            let woken = bucket.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if bucket.epoch.load(Ordering::Acquire) == self.seen {
                if bucket.ended.load(Ordering::Acquire) {
                    // The forwarder is gone and we saw its last move: nothing would wake
                    // us. (`join` reads the epoch under the buckets' lock, before that
                    // move, so this should not happen; a wait must never sleep for ever.)
                    break;
                }
                woken.await;
            }
        }
        drop(ticket);
        self.sleep_alone(svc, meta).await
    }

    /// The wait without a bucket, on the database's watch and a timer of its own: only
    /// if a bucket's forwarder ended before this waiter's deadline, which its rules
    /// exclude (kept so that a wait still ends at its deadline if they were broken).
    async fn sleep_alone(mut self, svc: &Service, meta: &RequestMeta) -> Result<Value, ApiError> {
        self.bucket = None;
        let mut rx = svc.db.subscribe();
        let deadline = tokio::time::sleep_until(self.deadline);
        tokio::pin!(deadline);
        loop {
            if let Some(v) = self.look(svc, meta).await? {
                return Ok(v);
            }
            tokio::select! {
                biased;
                changed = rx.changed() => if changed.is_err() {
                    return Err(ApiError::internal("the database is shutting down"));
                },
                () = &mut deadline => {}
            }
        }
    }

    /// One look: the answer if there is one now (a change after the token, the deadline
    /// passed, or the server stopping), else `None`.
    async fn look(&mut self, svc: &Service, meta: &RequestMeta) -> Result<Option<Value>, ApiError> {
        let codec = meta.codec;
        let shared = match codec {
            Some(codec) => svc.event_batches.find(svc, self, codec)?,
            None => None,
        };
        let (subs, since) = (&self.subs[..], self.since);
        if let (Some(codec), Some(kept)) = (codec, shared) {
            durable(svc, kept.seq).await?;
            return Ok(Some(answer(meta, codec, kept.bytes, kept.whole)));
        }
        let (events, counts, generation, seq, mark) =
            collect(svc, &self.session_ref, codec, subs, since)?;
        self.gone = Some(mark.gone);
        let stopping = svc.db.is_stopping();
        if events.is_empty() && !stopping && Instant::now() < self.deadline {
            return Ok(None);
        }
        let empty = events.is_empty();
        durable(svc, seq).await?;
        let batch = Value::Struct(vec![
            ("events".to_string(), Value::Array(events)),
            ("valid_ref_counts".to_string(), counts),
            ("token".to_string(), Value::String(token(generation))),
        ]);
        Ok(Some(match codec {
            Some(codec) if !empty => {
                let bytes = to_codec(codec, &batch);
                let key = BatchKey {
                    codec,
                    subs: subs.to_vec(),
                    since,
                    state: mark.state,
                };
                let whole = svc.event_batches.keep(key, bytes.clone(), seq);
                answer(meta, codec, bytes, whole)
            }
            _ => batch,
        }))
    }
}

/// Shared deadline buckets for sleeping `event.from` calls.
///
/// Every change wakes every waiter (one store in the database's watch channel), so a
/// waiter's own timer is almost never the thing that ends its wait, yet each one put an
/// entry in tokio's timer wheel and, woken by a change, cancelled it under the wheel's
/// lock: a quarter of a woken waiter's own work in a fan-out. Here waiters whose
/// deadlines are close share one bucket: one forwarder task holds the bucket's single
/// timer and a receiver of the database's watch, and at every change moves the bucket's
/// epoch and wakes the bucket's waiters (`Notify::notify_waiters`), and once more at the
/// bucket's end. A waiter sleeps on that alone, so it has no timer entry to cancel, and
/// nothing to unlink when woken: `notify_waiters` took it off the list. (A watch channel
/// per bucket did the same with 0.2k more per woken waiter: its `changed` makes and drops
/// a second registration before it sees the new version.)
///
/// Bounds. A bucket's end is its waiters' deadlines rounded up to a multiple of its
/// width, [`bucket_width`] of the timeout: the largest power of two milliseconds not
/// above 1/32 of the timeout, at least 1 ms and at most 1,024 ms. So a wait never ends
/// before its deadline (the look checks the deadline itself; the end only says when to
/// look), and ends less than one width after it (plus tokio's 1 ms timer tick and
/// scheduling). The work is bounded too: a bucket lives while it has a waiter and until
/// its end, so there are never more buckets than sleeping waiters; a change costs one
/// forwarder wake-up per bucket, and long waits (the common 30 s–24 h) get 1 s buckets,
/// so waiters arriving over a second share one.
pub struct Deadlines {
    /// Bucket ends are counted from here (any fixed instant would do).
    origin: Instant,
    /// Live buckets by their end (nanoseconds after `origin`); the lock is held only to
    /// find, add or remove one, never across an await.
    buckets: Arc<BucketMap>,
}

type BucketMap = parking_lot::Mutex<FxHashMap<u64, Arc<Bucket>>>;

/// One deadline bucket, shared by its waiters and its forwarder.
#[derive(Default)]
struct Bucket {
    /// Moves at every change passed on, and once more at the bucket's end.
    epoch: AtomicU64,
    /// Set (before the last move of `epoch`) when the bucket's end has passed.
    ended: AtomicBool,
    /// Where waiters sleep.
    wake: tokio::sync::Notify,
    /// Waiters holding a [`Ticket`]; changed only under the buckets' lock when it grows.
    waiters: AtomicUsize,
    /// Tells the forwarder that the last waiter left.
    empty: tokio::sync::Notify,
}

/// A waiter's hold on its bucket: the last one to go tells the forwarder, which then
/// ends, so a bucket does not outlive its waiters.
struct Ticket(Arc<Bucket>);

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.0.waiters.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.empty.notify_one();
        }
    }
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            origin: Instant::now(),
            buckets: Arc::default(),
        }
    }
}

/// How far past its deadline a wait of `timeout` may end: see [`Deadlines`].
fn bucket_width(timeout: Duration) -> Duration {
    let ms = u64::try_from(timeout.as_millis() / 32)
        .unwrap_or(u64::MAX)
        .clamp(1, 1024);
    // The largest power of two not above `ms`, so that a coarser bucket's end is also
    // on every finer grid and waits of different timeouts can share it.
    Duration::from_millis(1 << ms.ilog2())
}

impl Deadlines {
    /// How many buckets are live (each has a forwarder task), for tests and diagnostics.
    pub fn buckets(&self) -> usize {
        self.buckets.lock().len()
    }

    /// The end of the bucket for `deadline` (of a wait of `timeout`): its key and instant.
    fn end(&self, deadline: Instant, timeout: Duration) -> (u64, Instant) {
        // Nanoseconds after `origin`: 24 h are 8.6e13, far from u64's limit.
        let width = bucket_width(timeout).as_nanos() as u64;
        let after = u64::try_from(deadline.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX / 2);
        let key = after.div_ceil(width) * width;
        (key, self.origin + Duration::from_nanos(key))
    }

    /// A ticket for the bucket of `deadline`, made (with its forwarder) if there is none.
    /// Every change after this call is passed on to it: a new bucket's forwarder
    /// subscribes to the database before this returns, an existing one did earlier. With
    /// it, the bucket's epoch as it was when the ticket was given (what the waiter has seen).
    fn join(&self, db: &crate::db::Db, deadline: Instant, timeout: Duration) -> (Ticket, u64) {
        let (key, end) = self.end(deadline, timeout);
        // The epoch is read under the buckets' lock: the forwarder removes its bucket under
        // that lock before its last move of the epoch, so a waiter that found the bucket
        // in the map has not seen that move and will be woken by it. (Read after the
        // lock, the last move could come first: the waiter would then sleep on a bucket
        // whose forwarder had ended, for ever.)
        let ticket = |b: &Arc<Bucket>| {
            b.waiters.fetch_add(1, Ordering::AcqRel);
            (Ticket(b.clone()), b.epoch.load(Ordering::Acquire))
        };
        if let Some(b) = self.buckets.lock().get(&key) {
            return ticket(b);
        }
        // Subscribed outside the buckets' lock: it takes the tables' read lock.
        let changes = db.subscribe();
        let mut buckets = self.buckets.lock();
        if let Some(b) = buckets.get(&key) {
            return ticket(b);
        }
        let bucket = Arc::new(Bucket::default());
        let t = ticket(&bucket);
        buckets.insert(key, bucket.clone());
        drop(buckets);
        tokio::spawn(forward(self.buckets.clone(), key, end, bucket, changes));
        t
    }
}

/// A bucket's forwarder: passes every change on to the bucket's waiters until the
/// bucket's end, then wakes them once more with `ended` set (each looks: its deadline has
/// passed). It also ends as soon as the bucket has no waiter left (all answered), so an
/// idle bucket costs no wake-up per change.
async fn forward(
    buckets: Arc<BucketMap>,
    key: u64,
    end: Instant,
    bucket: Arc<Bucket>,
    mut changes: watch::Receiver<u64>,
) {
    let timer = tokio::time::sleep_until(end);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            changed = changes.changed() => match changed {
                Ok(()) => {
                    // The epoch first: a waiter checks it after putting itself on the
                    // list, so it either sees the move or is on the list to be woken.
                    bucket.epoch.fetch_add(1, Ordering::AcqRel);
                    bucket.wake.notify_waiters();
                }
                Err(_) => break,
            },
            () = &mut timer => break,
            () = bucket.empty.notified() => {
                // Waiters join under the buckets' lock, so none can join once this
                // found none and removed the bucket.
                let mut map = buckets.lock();
                if bucket.waiters.load(Ordering::Acquire) == 0 {
                    map.remove(&key);
                    return;
                }
            }
        }
    }
    {
        let mut map = buckets.lock();
        if map.get(&key).is_some_and(|b| Arc::ptr_eq(b, &bucket)) {
            map.remove(&key);
        }
    }
    bucket.ended.store(true, Ordering::Release);
    bucket.epoch.fetch_add(1, Ordering::AcqRel);
    bucket.wake.notify_waiters();
}

/// A non-empty batch as the call's answer: the whole shared reply body when there is one
/// and the server lent a buffer (an XML-RPC request: the server sends those bytes as
/// they are, with nothing written per waiter), else the batch for the server to wrap.
fn answer(
    meta: &RequestMeta,
    codec: Codec,
    bytes: bytes::Bytes,
    whole: Option<bytes::Bytes>,
) -> Value {
    if let Some(body) = whole
        && meta.reply.whole(body)
    {
        // The empty `Encoded` stands for "in the reply's buffer", as for a record.
        return Value::Encoded(codec, bytes::Bytes::new());
    }
    Value::Encoded(codec, bytes)
}

/// Only durable state is reported, so that a token stays valid across a crash: after a
/// restart the database is at least at this generation. (At shutdown there is no wait.)
/// Without a store (`--ephemeral`) nothing is ever waited for, so the backend's boxed
/// wait is not even built: a fan-out wakes thousands of waiters at once, and that
/// allocation and its cross-thread free were a tenth of each one's own work.
async fn durable(svc: &Service, seq: u64) -> Result<(), ApiError> {
    if svc.db.is_stopping() || !svc.db.is_durable() {
        return Ok(());
    }
    svc.db.wait_durable(seq).await.map_err(ApiError::internal)
}

/// The last non-empty `event.from` batch written in a reply's codec, for the waiters
/// that ask for the same one. One change wakes every waiter at once, and waiters with the
/// same subscriptions and token (a fan-out: many watchers of one task) would each build
/// and write the same bytes; the batch is a function of the subscriptions, the token, the
/// database's generation (every evented write moves it) and the session count (sessions
/// are not evented, but `valid_ref_counts` counts them), so the first one written answers
/// the others. For XML-RPC, whose envelope around a result is the same for every call,
/// the whole reply body is kept too, so that each waiter's answer is those shared bytes
/// (JSON-RPC's envelope carries the request's own `id`: each waiter's is written around
/// the shared batch). One entry per codec, so that XML-RPC and JSON-RPC waiters woken by
/// the same change do not replace each other's batch (one entry for both thrashed: each
/// waiter of the other codec wrote the batch again), each of at most [`MAX_KEPT_BATCH`]
/// bytes (twice that with the XML-RPC body), replaced by the next batch of its codec.
#[derive(Default)]
pub struct Batches([parking_lot::Mutex<Option<(BatchKey, Kept)>>; 3]);

/// The entry of a codec's batches.
fn slot(codec: Codec) -> usize {
    match codec {
        Codec::XmlRpc => 0,
        Codec::JsonRpc => 1,
        Codec::View => 2,
    }
}

/// A kept batch: its bytes, the whole XML-RPC reply around them, and the durable
/// sequence number it reflects.
#[derive(Clone)]
struct Kept {
    bytes: bytes::Bytes,
    whole: Option<bytes::Bytes>,
    seq: u64,
}

/// The largest batch kept for sharing: a fan-out's batch is one or a few records (a few
/// KB); a first `event.from` of a large database is not worth holding on to.
const MAX_KEPT_BATCH: usize = 256 * 1024;

/// What a batch is a function of: the codec, the subscriptions, the token, and the
/// tables' state (see [`crate::db::Marks`]: it moves with the generation, which every
/// evented write moves, and with the session count, which `valid_ref_counts` reports
/// although sessions make no events).
#[derive(PartialEq)]
pub struct BatchKey {
    codec: Codec,
    subs: Vec<Sub>,
    since: u64,
    state: u64,
}

impl Batches {
    /// The kept batch, if it is the one this waiter would get now. The waiter's session
    /// is checked first, as [`collect`] does: without the tables' lock when no session
    /// has gone since a look of this waiter last saw its own (the tables' marks, read in
    /// the order [`crate::db::Marks::state_if_none_gone_since`] gives), else under the
    /// lock, looked up, which also notes the marks for the next look. A fan-out's
    /// waiters, woken by one change, take no lock of the tables and look nothing up.
    fn find(&self, svc: &Service, wait: &mut Wait, codec: Codec) -> Result<Option<Kept>, ApiError> {
        let unlocked = wait
            .gone
            .and_then(|gone| svc.db.marks().state_if_none_gone_since(gone));
        let state = match unlocked {
            Some(state) => state,
            None => {
                let tables = svc.db.read();
                if tables.session(&wait.session_ref).is_none() {
                    return Err(session_gone(&wait.session_ref));
                }
                let mark = tables.mark();
                wait.gone = Some(mark.gone);
                mark.state
            }
        };
        let kept = self.0[slot(codec)].lock();
        Ok(kept.as_ref().and_then(|(key, kept)| {
            let same = key.since == wait.since && key.state == state && key.subs == wait.subs;
            same.then(|| kept.clone())
        }))
    }

    /// Keeps a batch for the next waiters and answers the whole XML-RPC reply around it
    /// (written once, here, under no lock); one larger than [`MAX_KEPT_BATCH`] is not
    /// kept (the entry lives until the next batch replaces it).
    fn keep(&self, key: BatchKey, bytes: bytes::Bytes, seq: u64) -> Option<bytes::Bytes> {
        if bytes.len() > MAX_KEPT_BATCH {
            return None;
        }
        let whole = (key.codec == Codec::XmlRpc).then(|| {
            let mut out = Vec::with_capacity(bytes.len() + 256);
            let result = Ok(Value::Encoded(key.codec, bytes.clone()));
            crate::wire::xmlrpc::write_response(&mut out, &result);
            bytes::Bytes::from(out)
        });
        let kept = Kept {
            bytes,
            whole: whole.clone(),
            seq,
        };
        let entry = &self.0[slot(key.codec)];
        *entry.lock() = Some((key, kept));
        whole
    }
}

/// `SESSION_NOT_REGISTERED ["trackid=<md5 of the session ref>"]`, as xapi (which hashes
/// rather than echo a secret).
fn not_registered(session_ref: &str) -> ApiError {
    let digest = Md5::digest(session_ref.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    ApiError::new(codes::SESSION_NOT_REGISTERED, [format!("trackid={hex}")])
}

/// Runs `f` on the caller's legacy subscription, creating it (from the current event id)
/// if the session has none: xapi's `get_subscription`.
fn with_subscription(
    ctx: &Ctx<'_>,
    f: impl FnOnce(&mut LegacySubscription),
) -> Result<Value, ApiError> {
    let mut tables = ctx.svc.db.memory_mut();
    let current = tables.legacy.last_id;
    let legacy = tables
        .legacy_subscription_mut(&ctx.caller().session_ref)
        .ok_or_else(|| session_gone(&ctx.caller().session_ref))?;
    let created = legacy.is_none();
    let sub = legacy.get_or_insert_with(|| LegacySubscription {
        subs: Vec::new(),
        last_id: current,
    });
    f(sub);
    if created {
        tables.legacy.listeners += 1;
    }
    Ok(Value::void())
}

/// `event.register(classes)`: adds to the session's subscriptions. xapi appends blindly;
/// here an entry already present is not added again (matching is the same either way),
/// and a list that would grow past `max-event-subscriptions` is refused, so no session can
/// make every `event.next` wake-up scan a million entries.
pub fn register(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let mut new: Vec<String> = Vec::new();
    for s in arg::strings(&args[0]) {
        let text = Sub::parse(&s).text();
        if !new.contains(&text) {
            new.push(text);
        }
    }
    let max = ctx.svc.limits.max_event_subscriptions;
    let mut refused = None;
    let reply = with_subscription(ctx, |sub| {
        new.retain(|s| !sub.subs.contains(s));
        if sub.subs.len() + new.len() > max {
            refused = Some(sub.subs.len() + new.len());
            return;
        }
        new.append(&mut sub.subs);
        sub.subs = new;
    })?;
    match refused {
        Some(n) => Err(ApiError::new(
            codes::VALUE_NOT_SUPPORTED,
            [
                "classes".to_string(),
                format!("{n} subscriptions"),
                format!(
                    "a session may hold at most {max} event subscriptions \
                     (max-event-subscriptions)"
                ),
            ],
        )),
        None => Ok(reply),
    }
}

pub fn unregister(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let gone: Vec<String> = arg::strings(&args[0])
        .iter()
        .map(|s| Sub::parse(s).text())
        .collect();
    with_subscription(ctx, |sub| sub.subs.retain(|s| !gone.contains(s)))
}

/// `event.next`: every write since the last call that matches the session's
/// subscriptions, one event per write, `del` with the row as it was; blocks until there is
/// at least one. `EVENTS_LOST` when the bounded queue dropped events this session had not
/// read (the session then continues from the present).
pub async fn next(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let session_ref = ctx.caller().session_ref.clone();
    let deadline = Instant::now() + MAX_WAIT;
    let mut rx = ctx.svc.db.subscribe();
    loop {
        rx.borrow_and_update();
        let events = {
            let mut tables = ctx.svc.db.memory_mut();
            let current = tables.legacy.last_id;
            let oldest = tables.legacy.oldest_id();
            let sub = tables
                .session(&session_ref)
                .ok_or_else(|| session_gone(&session_ref))?
                .legacy_events
                .clone()
                .ok_or_else(|| not_registered(&session_ref))?;
            let lost = sub.last_id < current && sub.last_id + 1 < oldest;
            if let Some(Some(s)) = tables.legacy_subscription_mut(&session_ref) {
                s.last_id = current;
            }
            if lost {
                return Err(ApiError::new(codes::EVENTS_LOST, Vec::<String>::new()));
            }
            // Bounded work under the lock: at most `max-event-subscriptions` entries,
            // and the matching events are shared pointers; records are built after it.
            let subs: Vec<Sub> = sub.subs.iter().map(|s| Sub::parse(s)).collect();
            tables
                .legacy
                .events
                .iter()
                .filter(|e| e.id > sub.last_id && any_matches(&subs, e.class, &e.r))
                .cloned()
                .collect::<Vec<_>>()
        };
        let events: Vec<Value> = events
            .into_iter()
            .filter_map(|e| {
                let def = datamodel::class(e.class)?;
                let snapshot = reply_record(ctx.meta.codec, def, e.snapshot.as_row(), None);
                Some(event_value(
                    e.id.to_string(),
                    format!("{}.", e.timestamp),
                    e.class,
                    e.op,
                    &e.r,
                    Some(snapshot),
                ))
            })
            .collect();
        if !events.is_empty() || ctx.svc.db.is_stopping() {
            return Ok(Value::Array(events));
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            Err(_) => return Ok(Value::Array(Vec::new())),
            Ok(Err(_)) => return Err(ApiError::internal("the database is shutting down")),
        }
    }
}

pub fn get_current_id(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let id = ctx.svc.db.read().legacy.last_id;
    Ok(Value::Int(i64::try_from(id).unwrap_or(i64::MAX)))
}

/// `event.inject(class, ref)`: touches the object (a `mod` for every watcher) and returns
/// the token just before that change. The class must be the object's table name exactly.
pub async fn inject(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let class = arg::string(&args[0]);
    let r = arg::string(&args[1]);
    let ((), g) = ctx
        .svc
        .db
        .transact_at(|tx| {
            let exists = match class {
                "task" => tx.task(r).is_some(),
                _ => tx.untracked().stamp(class, r).is_some(),
            };
            let class = datamodel::class(class)
                .filter(|_| exists)
                .ok_or_else(|| ApiError::handle_invalid(class, r))?;
            tx.touch(class.name, r);
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(Value::String(token(g - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(token(1234), "00000000000000001234,00000000000000000000");
        assert_eq!(parse_token("").unwrap(), 0);
        assert_eq!(parse_token(&token(77)).unwrap(), 77);
        assert_eq!(parse_token("5,0").unwrap(), 5);
        for bad in ["abc", "1", "1,2,3", "x,0", ","] {
            let e = parse_token(bad).unwrap_err();
            assert_eq!(e.description(), vec!["EVENT_FROM_TOKEN_PARSE_FAILURE", bad]);
        }
    }

    #[test]
    fn subscriptions() {
        assert!(Sub::parse("*").matches("task", "r"));
        assert!(Sub::parse("TASK").matches("task", "r"));
        assert!(!Sub::parse("task").matches("pool", "r"));
        assert!(Sub::parse("task/OpaqueRef:a").matches("task", "OpaqueRef:a"));
        assert!(!Sub::parse("task/OpaqueRef:a").matches("task", "OpaqueRef:b"));
        // A known class is the datamodel's name, however it was written; an unknown one
        // keeps its lower-cased text and matches nothing else.
        for given in ["task", "Task", "TASK/OpaqueRef:a"] {
            let (Sub::Class(c) | Sub::Object(c, _)) = Sub::parse(given) else {
                panic!("{given}")
            };
            assert!(matches!(c, ClassName::Borrowed("task")), "{given}: {c:?}");
        }
        assert_eq!(
            Sub::parse("Nosuch/OpaqueRef:a").text(),
            "nosuch/OpaqueRef:a"
        );
        assert_eq!(Sub::parse("ÉVÉNEMENT").text(), "événement");
        assert!(Sub::parse("Nosuch").matches("nosuch", "r"));
        assert!(!Sub::parse("Nosuch").matches("task", "r"));
    }

    /// A waiter that joins a bucket whose end has already passed is given the epoch as it
    /// was before the forwarder's last move, so that last move (its wake-up at the end)
    /// is one it has not seen: reading the epoch after `join` let the move come first,
    /// and the waiter then slept for ever on a bucket whose forwarder was gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bucket_that_ends_at_once_still_wakes_its_waiter() {
        use crate::db::{Db, HostRow, PoolRow, new_ref};
        let db = Db::new(new_ref(), PoolRow::default(), new_ref(), HostRow::default());
        let deadlines = Deadlines::default();
        for _ in 0..20 {
            let past = Instant::now() - Duration::from_millis(5);
            let (ticket, seen) = deadlines.join(&db, past, Duration::from_millis(1));
            let started = std::time::Instant::now();
            while !ticket.0.ended.load(Ordering::Acquire) {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "the bucket never ended"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_ne!(ticket.0.epoch.load(Ordering::Acquire), seen);
        }
    }

    #[test]
    fn bucket_widths() {
        let ms = Duration::from_millis;
        assert_eq!(bucket_width(Duration::ZERO), ms(1));
        assert_eq!(bucket_width(ms(63)), ms(1));
        assert_eq!(bucket_width(ms(64)), ms(2));
        assert_eq!(bucket_width(ms(300)), ms(8));
        assert_eq!(bucket_width(Duration::from_secs(1)), ms(16));
        assert_eq!(bucket_width(Duration::from_secs(30)), ms(512));
        assert_eq!(bucket_width(Duration::from_secs(120)), ms(1024));
        assert_eq!(bucket_width(MAX_WAIT), ms(1024));
        for t in [0, 1, 31, 32, 33, 100, 999, 5_000, 40_000, 86_400_000] {
            let (t, w) = (ms(t), bucket_width(ms(t)));
            assert!(w >= ms(1) && w <= ms(1024) && (w <= t / 32 || w == ms(1)));
        }
    }

    /// A deadline on a bucket's edge keeps that bucket; one just past it gets the next
    /// one, never the one before (that would end the wait early); none is more than a
    /// width late; and deadlines in one cell share a bucket.
    #[test]
    fn bucket_ends_are_never_early_nor_a_width_late() {
        let d = Deadlines::default();
        for timeout in [
            Duration::from_millis(20),
            Duration::from_millis(300),
            MAX_WAIT,
        ] {
            let w = bucket_width(timeout);
            let edge = d.origin + w * 1000;
            for (deadline, cell) in [
                (edge, 1000),
                (edge + Duration::from_nanos(1), 1001),
                (edge + w / 2, 1001),
                (edge + w - Duration::from_nanos(1), 1001),
                (edge + w, 1001),
                (edge + w + Duration::from_nanos(1), 1002),
            ] {
                let (key, end) = d.end(deadline, timeout);
                assert!(end >= deadline, "{timeout:?}: {end:?} before {deadline:?}");
                assert!(end - deadline < w, "{timeout:?}: {end:?} a width late");
                assert_eq!(end, d.origin + w * cell);
                assert_eq!(u128::from(key), (w * cell).as_nanos());
            }
        }
        // A coarse bucket's end is on the finer grids: waits of other timeouts share it.
        let coarse = d.end(d.origin + Duration::from_millis(4096), MAX_WAIT);
        let fine = d.end(
            d.origin + Duration::from_millis(4096),
            Duration::from_millis(300),
        );
        assert_eq!(coarse, fine);
    }

    #[test]
    fn timeouts() {
        assert_eq!(wait_for(-1.0), MAX_WAIT);
        assert_eq!(wait_for(f64::NAN), MAX_WAIT);
        assert_eq!(wait_for(0.5), Duration::from_millis(500));
        assert_eq!(wait_for(1e300), MAX_WAIT);
    }
}
