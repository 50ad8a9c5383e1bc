//! The durable store behind the in-memory database: one redb file, `store.redb`, in the
//! data directory.
//!
//! The in-memory tables stay the read path (as xapi's database cache does); the store
//! only receives batches of changed rows and gives them back at start. Each batch is one
//! redb write transaction committed with `Durability::Immediate` (fsync), so a batch is
//! on disk entirely or not at all: after a crash the store holds exactly the state of
//! some committed batch.
//!
//! Rows are stored as JSON, keyed by ref: readable with any redb tool, tolerant of new
//! fields (they take their defaults), and cheap next to the fsync that dominates a commit.
//!
//! Tables:
//! - `tasks`, `sessions`: ref → row.
//! - `tombstones`: generation → deleted task (class, ref, creation generation), the newest
//!   [`MAX_TOMBSTONES`](super::changes::MAX_TOMBSTONES), so that `event.from` tokens
//!   issued before a restart still get their `del` events.
//! - `meta`: `format`, `generation` (the database generation at the last commit), and the
//!   pool's and host's stamps.
//!
//! **Integrity.** A store is only ever served whole and sound, or refused with a message
//! that says what is wrong and what to do:
//! - Every open verifies the checksum of every page of the committed trees (redb's
//!   integrity check on open). A plain redb open trusts a file that was closed cleanly and
//!   can panic on one damaged outside redb; a page damaged after its commit would
//!   otherwise be served as altered rows. After a clean close redb's last commit is a
//!   two-phase one, so damage to it is refused rather than silently rolled back to the
//!   commit before (after a crash, rolling back a torn last commit is the recovery, and
//!   that commit was never acknowledged).
//! - A panic inside redb while opening, loading or committing is caught and reported as
//!   damage: it never takes the server down.
//! - Every row is decoded and the rows are checked against each other ([`verify`]).
//! - A store that is missing, 0 bytes long or holds no xapi-taskd tables is created only
//!   when the caller says a new store is expected ([`Store::open`]'s `allow_new`): beside
//!   an `identity.json` that says the directory had a store, it means the store was lost.
//!
//! **After an I/O error** redb refuses every later write of that handle
//! (`StorageError::PreviousIo`) until the database is reopened. So a failed commit drops
//! the handle; the next commit (the writer retries, see `journal.rs`) reopens the file —
//! recovering it to its last commit and verifying it again — checks that it is still the
//! file this server wrote, and commits the batch again. Writing a batch twice is harmless:
//! it holds whole rows and counters, not increments.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use serde::{Deserialize, Serialize};

use super::changes::MAX_TOMBSTONES;
use super::verify;
use super::{SessionRow, Stamp, TaskRow};

const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const TOMBSTONES: TableDefinition<u64, &[u8]> = TableDefinition::new("tombstones");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The store file's name in the data directory.
pub const STORE_FILE: &str = "store.redb";

/// Version of the row encoding; a store written by a newer, incompatible version is
/// refused rather than misread.
const FORMAT: u64 = 1;

/// A deleted task, kept so that `event.from` can report its deletion after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub class: String,
    pub r: String,
    pub created: u64,
}

/// Everything one commit writes: the rows that changed (None = deleted) since the last
/// commit, new tombstones, and the counters.
#[derive(Debug, Default)]
pub struct Batch {
    pub tasks: Vec<(String, Option<TaskRow>)>,
    pub sessions: Vec<(String, Option<SessionRow>)>,
    pub tombstones: Vec<(u64, Tombstone)>,
    pub generation: u64,
    /// The pool's and host's stamps, when they changed.
    pub singletons: Option<(Stamp, Stamp)>,
}

/// What the store held at start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub tasks: Vec<(String, TaskRow)>,
    pub sessions: Vec<(String, SessionRow)>,
    pub tombstones: Vec<(u64, Tombstone)>,
    pub generation: u64,
    pub pool_stamp: Stamp,
    pub host_stamp: Stamp,
}

/// What kind of trouble a [`StoreError`] reports, for callers that act on it (the
/// `store` commands tell "a server is running" from "the file is damaged").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Another process (a running server) has the file open.
    InUse,
    /// The file's pages, rows or format are not what xapi-taskd wrote.
    Damaged,
    /// The file is missing, empty or was never initialised, where a store was expected.
    Missing,
    /// The file could not be read or written (permissions, a failing or full disk).
    Io,
}

/// Errors of the store, with enough context to act on them.
#[derive(Debug)]
pub struct StoreError {
    pub problem: Problem,
    pub message: String,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> StoreError {
        let e: redb::Error = e.into();
        let problem = match &e {
            redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => Problem::InUse,
            redb::Error::Corrupted(_)
            | redb::Error::UpgradeRequired(_)
            | redb::Error::RepairAborted => Problem::Damaged,
            redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                Problem::Damaged
            }
            // "Not a redb database: magic number mismatch" comes as an I/O error.
            redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => Problem::Damaged,
            _ => Problem::Io,
        };
        StoreError {
            problem,
            message: e.to_string(),
        }
    }
}

impl StoreError {
    fn new(problem: Problem, message: impl Into<String>) -> StoreError {
        StoreError {
            problem,
            message: message.into(),
        }
    }

    /// This error, about the file at `path`, with what the operator can do about it.
    fn about(self, path: &Path) -> StoreError {
        let p = path.display();
        let message = match self.problem {
            Problem::InUse => format!(
                "{p} is in use by another process (is a server running on this data \
                 directory?): {}",
                self.message
            ),
            Problem::Damaged => format!(
                "{p} is damaged: {}. The server does not start on a damaged store. Restore \
                 the last backup (`xapi-taskd store restore FILE`, which keeps the damaged \
                 file beside it), or move the file away and start with --allow-empty-store \
                 to begin again without its tasks and sessions. `xapi-taskd store check` \
                 tells whether a copy is sound.",
                self.message
            ),
            Problem::Missing => format!("{p} {}", self.message),
            Problem::Io => format!("{p}: {}", self.message),
        };
        StoreError {
            problem: self.problem,
            message,
        }
    }
}

/// A panic's message, for reporting a panic inside redb as an error.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs `f`, turning a panic (redb's, on a damaged file) into a `Damaged` error.
fn unpanicked<T>(what: &str, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(StoreError::new(
            Problem::Damaged,
            format!("redb panicked while {what} ({})", panic_text(&*panic)),
        ))
    })
}

/// Opens the redb file at `path` (creating it if missing), verifying every page.
fn open_db(path: &Path) -> Result<Database, StoreError> {
    unpanicked("opening the file", || {
        Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|e| match e {
                DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::new(Problem::InUse, e.to_string())
                }
                e => StoreError::from(e),
            })
    })
}

/// The open store.
pub struct Store {
    path: PathBuf,
    /// None after a failed commit: the next commit reopens the file first (see the module
    /// comment).
    db: Option<Database>,
    /// The generation of the last batch known to be committed, against which a reopened
    /// file is checked.
    committed: u64,
}

impl Store {
    /// Opens the store in `data_dir`, verifies it and reads it back. If the file is missing,
    /// empty or holds no xapi-taskd tables, a new store is created only if `allow_new`;
    /// otherwise that is an error (`Problem::Missing`). redb takes a lock on the file, so a
    /// second server on the same data directory is refused here (`Problem::InUse`).
    pub fn open(data_dir: &Path, allow_new: bool) -> Result<(Store, Loaded), StoreError> {
        Store::open_file(&data_dir.join(STORE_FILE), allow_new)
    }

    /// [`Store::open`] for a store file at any path (backups are store files too).
    pub fn open_file(path: &Path, allow_new: bool) -> Result<(Store, Loaded), StoreError> {
        Store::open_inner(path, allow_new).map_err(|e| e.about(path))
    }

    fn open_inner(path: &Path, allow_new: bool) -> Result<(Store, Loaded), StoreError> {
        // Looked at before redb sees the file: it would initialise a 0-byte file.
        match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 && !allow_new => {
                return Err(StoreError::new(Problem::Missing, "is empty (0 bytes)"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !allow_new => {
                return Err(StoreError::new(Problem::Missing, "is missing"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::new(Problem::Io, e.to_string())),
        }
        let db = open_db(path)?;
        let mut store = Store {
            path: path.to_path_buf(),
            db: Some(db),
            committed: 0,
        };
        let loaded = unpanicked("reading the rows", || {
            store.init(allow_new)?;
            store.load()
        })?;
        let problems = verify::rows(&loaded);
        if !problems.is_empty() {
            return Err(StoreError::new(Problem::Damaged, problems.join("; ")));
        }
        store.committed = loaded.generation;
        Ok((store, loaded))
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db
            .as_ref()
            .ok_or_else(|| StoreError::new(Problem::Io, "the store is not open"))
    }

    /// Creates the tables and checks the format.
    fn init(&self, allow_new: bool) -> Result<(), StoreError> {
        let txn = self.db()?.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let format = meta.get("format")?.map(|v| v.value());
            match format {
                None if !allow_new => {
                    return Err(StoreError::new(
                        Problem::Missing,
                        "holds no xapi-taskd tables",
                    ));
                }
                None => {
                    meta.insert("format", FORMAT)?;
                }
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(StoreError::new(
                        Problem::Damaged,
                        format!(
                            "it has format {other}; this version reads format {FORMAT} (was \
                             it written by a newer xapi-taskd?)"
                        ),
                    ));
                }
            }
            txn.open_table(TASKS)?;
            txn.open_table(SESSIONS)?;
            txn.open_table(TOMBSTONES)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db()?.begin_read()?;
        let mut out = Loaded::default();
        for entry in txn.open_table(TASKS)?.iter()? {
            let (k, v) = entry?;
            out.tasks
                .push((k.value().to_string(), decode(k.value(), v.value())?));
        }
        for entry in txn.open_table(SESSIONS)?.iter()? {
            let (k, v) = entry?;
            out.sessions
                .push((k.value().to_string(), decode(k.value(), v.value())?));
        }
        for entry in txn.open_table(TOMBSTONES)?.iter()? {
            let (k, v) = entry?;
            out.tombstones
                .push((k.value(), decode(&k.value().to_string(), v.value())?));
        }
        let meta = txn.open_table(META)?;
        let get = |key: &str| -> Result<u64, StoreError> {
            Ok(meta.get(key)?.map(|v| v.value()).unwrap_or(0))
        };
        out.generation = get("generation")?;
        out.pool_stamp = Stamp {
            created: get("pool_created")?,
            modified: get("pool_modified")?,
        };
        out.host_stamp = Stamp {
            created: get("host_created")?,
            modified: get("host_modified")?,
        };
        Ok(out)
    }

    /// Writes one batch in one transaction and makes it durable before returning. After a
    /// failure, the next call reopens the file first (see the module comment).
    pub fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if self.db.is_none() {
            self.reopen(batch.generation)?;
        }
        let result = unpanicked("committing", || self.write(batch));
        match result {
            Ok(()) => {
                self.committed = batch.generation;
                Ok(())
            }
            Err(e) => {
                // The handle refuses every later write after an I/O error; a panic may
                // have left it in any state. Either way, start again from the file.
                self.db = None;
                Err(e)
            }
        }
    }

    /// Opens the file again after a failed commit. It must hold either the last batch
    /// this server committed or the one that failed (which may have reached the disk
    /// before its error); anything else means it was changed underneath the server, and
    /// writing on top of it could mix two histories.
    fn reopen(&mut self, pending: u64) -> Result<(), StoreError> {
        let db = open_db(&self.path).map_err(|e| e.about(&self.path))?;
        let generation = unpanicked("reopening", || {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(meta.get("generation")?.map(|v| v.value()).unwrap_or(0))
        })?;
        if generation != self.committed && generation != pending {
            return Err(StoreError::new(
                Problem::Damaged,
                format!(
                    "{} changed underneath the server: it is at generation {generation}, but \
                     the server last committed generation {}",
                    self.path.display(),
                    self.committed
                ),
            ));
        }
        tracing::debug!(
            "store: reopened {} after a failed commit (generation {generation})",
            self.path.display()
        );
        self.db = Some(db);
        Ok(())
    }

    /// Writes a copy of this store to a new store file at `dest`, which must not exist:
    /// every table, from one read transaction (so one commit's state), in one durable
    /// write transaction. The copy holds no free pages (it is as small as the rows).
    pub fn copy_to(&self, dest: &Path) -> Result<(), StoreError> {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|e| StoreError::new(Problem::Io, format!("{}: {e}", dest.display())))?;
        unpanicked("copying", || {
            let out = Database::create(dest)?;
            let src = self.db()?.begin_read()?;
            let mut txn = out.begin_write()?;
            txn.set_durability(Durability::Immediate)
                .map_err(|e| StoreError::new(Problem::Io, e.to_string()))?;
            copy_table(&src, &txn, TASKS)?;
            copy_table(&src, &txn, SESSIONS)?;
            copy_table(&src, &txn, TOMBSTONES)?;
            copy_table(&src, &txn, META)?;
            txn.commit()?;
            out.close()?;
            Ok(())
        })
    }

    fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::new(Problem::Io, e.to_string()))?;
        {
            write_rows(&mut txn.open_table(TASKS)?, &batch.tasks)?;
            write_rows(&mut txn.open_table(SESSIONS)?, &batch.sessions)?;
            let mut tombstones = txn.open_table(TOMBSTONES)?;
            for (g, t) in &batch.tombstones {
                tombstones.insert(*g, encode(t).as_slice())?;
            }
            if !batch.tombstones.is_empty() {
                let excess = tombstones.len()?.saturating_sub(MAX_TOMBSTONES as u64);
                for _ in 0..excess {
                    tombstones.pop_first()?;
                }
            }
            let mut meta = txn.open_table(META)?;
            meta.insert("generation", batch.generation)?;
            if let Some((pool, host)) = batch.singletons {
                meta.insert("pool_created", pool.created)?;
                meta.insert("pool_modified", pool.modified)?;
                meta.insert("host_created", host.created)?;
                meta.insert("host_modified", host.modified)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// Copies every entry of one table from `src` to `dst`.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &redb::ReadTransaction,
    dst: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let from = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    for entry in from.iter()? {
        let (k, v) = entry?;
        to.insert(k.value(), v.value())?;
    }
    Ok(())
}

/// Puts changed rows in a table, or removes the deleted ones (`None`).
fn write_rows<T: Serialize>(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    rows: &[(String, Option<T>)],
) -> Result<(), StoreError> {
    for (r, row) in rows {
        match row {
            Some(row) => {
                table.insert(r.as_str(), encode(row).as_slice())?;
            }
            None => {
                table.remove(r.as_str())?;
            }
        }
    }
    Ok(())
}

fn encode<T: Serialize>(row: &T) -> Vec<u8> {
    // Rows are plain data (strings, numbers, maps with string keys): serialising them
    // cannot fail.
    serde_json::to_vec(row).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::new(Problem::Damaged, format!("row {key} cannot be read: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::NULL_REF;

    #[test]
    fn a_batch_comes_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TaskRow::new("label", "desc", NULL_REF, "OpaqueRef:h");
        t.progress = f64::NAN;
        t.other_config = thin_vec::thin_vec![("k".into(), "v".into())];
        t.stamp = Stamp {
            created: 3,
            modified: 7,
        };
        {
            let (mut store, loaded) = Store::open(dir.path(), true).unwrap();
            assert!(loaded.tasks.is_empty());
            let batch = Batch {
                tasks: vec![
                    ("OpaqueRef:a".into(), Some(t.clone())),
                    ("OpaqueRef:b".into(), Some(t.clone())),
                ],
                generation: 9,
                ..Batch::default()
            };
            store.commit(&batch).unwrap();
            let batch = Batch {
                tasks: vec![("OpaqueRef:b".into(), None)],
                tombstones: vec![(
                    10,
                    Tombstone {
                        class: "task".into(),
                        r: "OpaqueRef:b".into(),
                        created: 3,
                    },
                )],
                generation: 10,
                ..Batch::default()
            };
            store.commit(&batch).unwrap();
        }
        let (_store, loaded) = Store::open(dir.path(), true).unwrap();
        assert_eq!(loaded.generation, 10);
        assert_eq!(loaded.tasks.len(), 1);
        let (r, back) = &loaded.tasks[0];
        assert_eq!(r, "OpaqueRef:a");
        assert!(back.progress.is_nan());
        let mut back = back.clone();
        back.progress = t.progress;
        assert_eq!(back.uuid, t.uuid);
        assert_eq!(back.other_config, t.other_config);
        assert_eq!(back.stamp, t.stamp);
        assert_eq!(loaded.tombstones.len(), 1);
    }

    #[test]
    fn tombstones_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(dir.path(), true).unwrap();
        let stone = |g: u64| {
            (
                g,
                Tombstone {
                    class: "task".into(),
                    r: format!("OpaqueRef:{g}"),
                    created: 1,
                },
            )
        };
        let batch = Batch {
            tombstones: (1..=(MAX_TOMBSTONES as u64 + 5)).map(stone).collect(),
            ..Batch::default()
        };
        store.commit(&batch).unwrap();
        drop(store);
        let (_, loaded) = Store::open(dir.path(), true).unwrap();
        assert_eq!(loaded.tombstones.len(), MAX_TOMBSTONES);
        assert_eq!(loaded.tombstones[0].0, 6);
    }

    #[test]
    fn a_second_server_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_first, _) = Store::open(dir.path(), true).unwrap();
        let err = Store::open(dir.path(), true).err().expect("must be locked");
        assert!(err.message.contains(STORE_FILE), "{err}");
        assert_eq!(err.problem, Problem::InUse);
    }

    /// A store of `n` tasks (three of them a family), written and closed cleanly; returns
    /// its file and what it holds.
    fn sample(dir: &Path, n: usize) -> (PathBuf, Vec<(String, TaskRow)>) {
        let (mut store, _) = Store::open(dir, true).unwrap();
        let mut tasks: Vec<(String, TaskRow)> = (0..n)
            .map(|i| {
                let mut t = TaskRow::new(&format!("task {i}"), "a description", NULL_REF, "h");
                t.other_config = thin_vec::thin_vec![("k".into(), "v".repeat(i % 50))];
                (format!("OpaqueRef:{i:04}"), t)
            })
            .collect();
        tasks[1].1.subtask_of = "OpaqueRef:0000".into();
        tasks[0].1.subtasks.push("OpaqueRef:0001".into());
        let batch = Batch {
            tasks: tasks
                .iter()
                .map(|(r, t)| (r.clone(), Some(t.clone())))
                .collect(),
            generation: 5,
            ..Batch::default()
        };
        store.commit(&batch).unwrap();
        tasks.sort_by(|a, b| a.0.cmp(&b.0));
        (dir.join(STORE_FILE), tasks)
    }

    fn tasks_of(loaded: &Loaded) -> Vec<(String, TaskRow)> {
        let mut t = loaded.tasks.clone();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    }

    #[test]
    fn a_truncated_or_zeroed_store_is_refused_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = sample(dir.path(), 200);
        let good = std::fs::read(&file).unwrap();
        for (what, bytes) in [
            ("truncated to half", good[..good.len() / 2].to_vec()),
            ("truncated inside the header", good[..300].to_vec()),
            ("zeroed", vec![0; good.len()]),
            (
                "random",
                (0..good.len()).map(|i| (i * 7919 % 251) as u8).collect(),
            ),
        ] {
            std::fs::write(&file, &bytes).unwrap();
            let err = Store::open(dir.path(), false).err().expect(what);
            assert_eq!(err.problem, Problem::Damaged, "{what}: {err}");
            assert!(err.message.contains("is damaged"), "{what}: {err}");
            assert!(err.message.contains("store restore"), "{what}: {err}");
        }
    }

    /// Every single-bit flip, at offsets across every page of a cleanly closed store, is
    /// either refused as damage or harmless (the bit was in a free page or an old commit
    /// slot, and exactly what was written comes back). Never a panic, never altered rows.
    #[test]
    fn a_flipped_bit_anywhere_is_refused_or_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let (file, tasks) = sample(dir.path(), 150);
        let good = std::fs::read(&file).unwrap();
        let (mut refused, mut harmless) = (0, 0);
        let mut offsets: Vec<usize> = (0..512).step_by(7).collect();
        for page in 0..good.len() / 4096 {
            offsets.extend([page * 4096 + 40, page * 4096 + 1500, page * 4096 + 3000]);
        }
        for offset in offsets {
            // The god byte's primary bit chooses which of two valid commit slots is
            // current: flipping it serves the commit before the last, which no checksum
            // can tell (docs/security.md, Store). Every other bit is covered.
            let bit = if offset == 9 { 0x02 } else { 0x10 };
            let mut bytes = good.clone();
            bytes[offset] ^= bit;
            std::fs::write(&file, &bytes).unwrap();
            match Store::open(dir.path(), false) {
                Ok((_, loaded)) => {
                    assert_eq!(tasks_of(&loaded).len(), tasks.len(), "offset {offset}");
                    for (a, b) in tasks_of(&loaded).iter().zip(&tasks) {
                        assert_eq!(a.0, b.0, "offset {offset}");
                        assert_eq!(a.1.other_config, b.1.other_config, "offset {offset}");
                        assert_eq!(a.1.name_label, b.1.name_label, "offset {offset}");
                        assert_eq!(a.1.uuid, b.1.uuid, "offset {offset}");
                    }
                    harmless += 1;
                }
                Err(e) => {
                    assert_eq!(e.problem, Problem::Damaged, "offset {offset}: {e}");
                    refused += 1;
                }
            }
        }
        assert!(
            refused > 10 && harmless > 10,
            "{refused} refused, {harmless} harmless"
        );
    }

    #[test]
    fn an_empty_or_missing_store_is_created_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(STORE_FILE);
        let err = Store::open(dir.path(), false).err().unwrap();
        assert_eq!(err.problem, Problem::Missing);
        assert!(err.message.contains("is missing"), "{err}");
        assert!(!file.exists(), "a refused open must not create the file");

        std::fs::write(&file, b"").unwrap();
        let err = Store::open(dir.path(), false).err().unwrap();
        assert!(err.message.contains("is empty (0 bytes)"), "{err}");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "left as it was");

        // A redb file that xapi-taskd never initialised.
        drop(Database::create(&file).unwrap());
        let err = Store::open(dir.path(), false).err().unwrap();
        assert_eq!(err.problem, Problem::Missing);
        assert!(err.message.contains("holds no xapi-taskd tables"), "{err}");

        let (_, loaded) = Store::open(dir.path(), true).unwrap();
        assert!(loaded.tasks.is_empty());
    }

    #[test]
    fn rows_that_break_the_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(dir.path(), true).unwrap();
        let mut t = TaskRow::new("p", "", NULL_REF, "h");
        t.subtasks.push("OpaqueRef:nobody".into());
        let batch = Batch {
            tasks: vec![("OpaqueRef:p".into(), Some(t))],
            generation: 3,
            ..Batch::default()
        };
        store.commit(&batch).unwrap();
        drop(store);
        let err = Store::open(dir.path(), false).err().unwrap();
        assert_eq!(err.problem, Problem::Damaged);
        assert!(
            err.message.contains("OpaqueRef:nobody, which is missing"),
            "{err}"
        );
    }

    /// After a failed commit the handle is dropped and the next commit reopens the file:
    /// the batch goes in, and the file is checked to be the one this store wrote.
    #[test]
    fn a_commit_after_a_failure_reopens_and_checks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = sample(dir.path(), 3);
        let (mut store, _) = Store::open(dir.path(), false).unwrap();
        store.db = None; // as a failed commit leaves it
        let t = TaskRow::new("after", "", NULL_REF, "h");
        let batch = Batch {
            tasks: vec![("OpaqueRef:after".into(), Some(t))],
            generation: 6,
            ..Batch::default()
        };
        store.commit(&batch).unwrap();
        assert_eq!(store.committed, 6);

        // The file is swapped for another store meanwhile: never written over.
        let other = tempfile::tempdir().unwrap();
        let (other_file, _) = sample(other.path(), 2);
        store.db = None;
        std::fs::copy(&other_file, &file).unwrap();
        let batch = Batch {
            generation: 9,
            ..Batch::default()
        };
        let err = store.commit(&batch).err().unwrap();
        assert!(
            err.message.contains("changed underneath the server"),
            "{err}"
        );
        assert!(store.db.is_none());
        drop(store);
        let (_, loaded) = Store::open(other.path(), false).unwrap();
        assert_eq!(loaded.generation, 5);
    }
}
