//! What changed since a generation: the index behind `event.from`, and the bounded queue
//! behind the legacy `event.next`.
//!
//! xapi answers `event.from` by scanning every table for rows whose generation is newer
//! than the client's token. With many objects and many watchers that scan is the cost of
//! every wake-up, so this index keeps each live object exactly once, under the
//! generation of its last change (`BTreeMap<generation, change>`): a client's question
//! "what changed after G" is a range query, proportional to the answer, not to the
//! database. Deleted objects stay as tombstones, at most [`MAX_TOMBSTONES`] of them
//! (xapi keeps ≤512 per table); older deletions are forgotten, as in xapi.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Deletion records kept for `event.from` clients that are behind.
pub const MAX_TOMBSTONES: usize = 16_384;

/// Events kept for legacy `event.next` clients, at most; the queue is also bounded in
/// bytes ([`LegacyQueue::max_bytes`]; xapi bounds its queue by size, 10 MB).
pub const MAX_LEGACY_EVENTS: usize = 16_384;

/// What a legacy event costs besides its snapshot (the event itself, its ref).
pub const LEGACY_EVENT_OVERHEAD: usize = 128;

/// How many bytes a snapshot holds, for the queue's byte budget.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for () {
    fn weight(&self) -> usize {
        0
    }
}

/// One entry of the change index, as [`ChangeIndex::since`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// A live object, last changed at this entry's generation.
    Live { class: &'static str, r: &'a str },
    /// A deleted object and the generation it had been created at: a client whose token is
    /// older than its creation never saw it, so it gets no `del` for it.
    Deleted {
        class: &'static str,
        r: &'a str,
        created: u64,
    },
}

/// What the index keeps per entry (the ref is in the key).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Live(&'static str),
    Deleted(&'static str, u64),
}

/// The change index. Keyed by (generation, ref): several objects can share a generation
/// when a shared store commits them in one transaction (a child and its parent's link).
#[derive(Debug, Default)]
pub struct ChangeIndex {
    entries: BTreeMap<(u64, Arc<str>), Entry>,
    tombstones: VecDeque<(u64, Arc<str>)>,
}

impl ChangeIndex {
    /// Records that a live object changed at `generation` (it was at `previous`, or is new
    /// when `previous` is None).
    /// The ref is shared with the table's key (one allocation per object, not one per
    /// index).
    pub fn touch(
        &mut self,
        class: &'static str,
        r: Arc<str>,
        previous: Option<u64>,
        generation: u64,
    ) {
        let mut key = (previous.unwrap_or(generation), r);
        if previous.is_some() {
            self.entries.remove(&key);
        }
        key.0 = generation;
        self.entries.insert(key, Entry::Live(class));
    }

    /// Records a deletion at `generation` of an object last changed at `previous`.
    pub fn delete(
        &mut self,
        class: &'static str,
        r: Arc<str>,
        previous: u64,
        created: u64,
        generation: u64,
    ) {
        let mut key = (previous, r);
        self.entries.remove(&key);
        key.0 = generation;
        self.tombstones.push_back(key.clone());
        self.entries.insert(key, Entry::Deleted(class, created));
        while self.tombstones.len() > MAX_TOMBSTONES {
            if let Some(old) = self.tombstones.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// Every change after generation `since`, oldest first.
    pub fn since(&self, since: u64) -> impl Iterator<Item = (u64, Change<'_>)> {
        let start: Arc<str> = Arc::from("");
        self.entries
            .range((since.saturating_add(1), start)..)
            .map(|((g, r), e)| {
                let change = match e {
                    Entry::Live(class) => Change::Live { class, r },
                    Entry::Deleted(class, created) => Change::Deleted {
                        class,
                        r,
                        created: *created,
                    },
                };
                (*g, change)
            })
    }
}

/// The operation of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Mod,
    Del,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Mod => "mod",
            Op::Del => "del",
        }
    }
}

/// A legacy event: one per write, with the row as it was right after the write (before
/// it, for `del`), because `event.next` shows each write rather than the current state.
#[derive(Debug, Clone)]
pub struct LegacyEvent<R> {
    pub id: u64,
    pub timestamp: i64,
    pub class: &'static str,
    pub op: Op,
    pub r: String,
    /// Shared, so that `event.next` copies a pointer under the lock and builds the
    /// record after releasing it.
    pub snapshot: Arc<R>,
    /// What this event counts against the byte budget.
    pub bytes: usize,
}

/// The bounded queue of legacy events. Empty and free while no session has registered.
#[derive(Debug)]
pub struct LegacyQueue<R> {
    pub events: VecDeque<LegacyEvent<R>>,
    /// Id of the last event recorded (`event.get_current_id`).
    pub last_id: u64,
    /// Sessions registered for legacy events; nothing is recorded while it is zero.
    pub listeners: usize,
    /// Bytes the queued events hold, and the most they may hold: the oldest events go
    /// first (readers that had not seen them get `EVENTS_LOST`). One event is always
    /// kept, however large, so the newest write is never lost to its own size.
    pub bytes: usize,
    pub max_bytes: usize,
}

impl<R> Default for LegacyQueue<R> {
    fn default() -> Self {
        LegacyQueue {
            events: VecDeque::new(),
            last_id: 0,
            listeners: 0,
            bytes: 0,
            max_bytes: 10 * 1024 * 1024,
        }
    }
}

impl<R: Weigh> LegacyQueue<R> {
    /// Records an event. Callers take the snapshot only while someone is listening
    /// ([`LegacyQueue::wants_snapshots`]); without one only the id advances.
    pub fn push(
        &mut self,
        class: &'static str,
        op: Op,
        r: &str,
        timestamp: i64,
        snapshot: Option<R>,
    ) {
        self.last_id += 1;
        let Some(snapshot) = snapshot else {
            return;
        };
        let bytes = snapshot.weight() + r.len() + LEGACY_EVENT_OVERHEAD;
        self.events.push_back(LegacyEvent {
            id: self.last_id,
            timestamp,
            class,
            op,
            r: r.to_string(),
            snapshot: Arc::new(snapshot),
            bytes,
        });
        self.bytes += bytes;
        while self.events.len() > MAX_LEGACY_EVENTS
            || (self.bytes > self.max_bytes && self.events.len() > 1)
        {
            if let Some(old) = self.events.pop_front() {
                self.bytes -= old.bytes;
            }
        }
    }

    /// Forgets every event (when the last listener goes).
    pub fn clear(&mut self) {
        self.events.clear();
        self.bytes = 0;
    }

    pub fn wants_snapshots(&self) -> bool {
        self.listeners > 0
    }

    /// Id of the oldest event still queued (events before it are lost).
    pub fn oldest_id(&self) -> u64 {
        self.events
            .front()
            .map(|e| e.id)
            .unwrap_or(self.last_id + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_object_appears_once_under_its_last_change() {
        let mut ix = ChangeIndex::default();
        ix.touch("task", "a".into(), None, 2);
        ix.touch("task", "b".into(), None, 3);
        ix.touch("task", "a".into(), Some(2), 4);
        let got: Vec<u64> = ix.since(0).map(|(g, _)| g).collect();
        assert_eq!(got, vec![3, 4]);
        assert_eq!(ix.since(3).count(), 1);
        ix.delete("task", "b".into(), 3, 3, 5);
        let last = ix.since(4).next().unwrap();
        assert_eq!(
            last,
            (
                5,
                Change::Deleted {
                    class: "task",
                    r: "b",
                    created: 3
                }
            )
        );
    }

    #[test]
    fn tombstones_are_bounded() {
        let mut ix = ChangeIndex::default();
        for i in 0..(MAX_TOMBSTONES as u64 + 10) {
            ix.touch("task", i.to_string().into(), None, 2 * i + 1);
            ix.delete(
                "task",
                i.to_string().into(),
                2 * i + 1,
                2 * i + 1,
                2 * i + 2,
            );
        }
        assert_eq!(ix.since(0).count(), MAX_TOMBSTONES);
    }

    #[test]
    fn legacy_queue_records_only_with_listeners_and_is_bounded() {
        let mut q: LegacyQueue<()> = LegacyQueue::default();
        q.push("task", Op::Add, "a", 0, q.wants_snapshots().then_some(()));
        assert!(q.events.is_empty());
        assert_eq!(q.last_id, 1);
        q.listeners = 1;
        for _ in 0..MAX_LEGACY_EVENTS + 5 {
            let snap = q.wants_snapshots().then_some(());
            q.push("task", Op::Mod, "a", 0, snap);
        }
        assert_eq!(q.events.len(), MAX_LEGACY_EVENTS);
        assert_eq!(q.oldest_id(), 7);
    }

    struct Blob(usize);
    impl Weigh for Blob {
        fn weight(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn legacy_queue_is_bounded_in_bytes_and_keeps_the_newest_event() {
        let mut q: LegacyQueue<Blob> = LegacyQueue {
            max_bytes: 10_000,
            listeners: 1,
            ..LegacyQueue::default()
        };
        for _ in 0..100 {
            q.push("task", Op::Mod, "r", 0, Some(Blob(1000)));
        }
        let each = 1000 + 1 + LEGACY_EVENT_OVERHEAD;
        assert_eq!(q.events.len(), 10_000 / each);
        assert_eq!(q.bytes, q.events.len() * each);
        assert_eq!(q.events.back().unwrap().id, 100);
        q.push("task", Op::Mod, "r", 0, Some(Blob(1_000_000)));
        assert_eq!(q.events.len(), 1, "one event stays, however large");
        q.clear();
        assert_eq!((q.events.len(), q.bytes), (0, 0));
    }
}
