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

use std::path::Path;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::{Deserialize, Serialize};

use super::changes::MAX_TOMBSTONES;
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

/// Errors of the store, with enough context to act on them.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> StoreError {
        StoreError(e.into().to_string())
    }
}

/// The open store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store in `data_dir` and reads it back. redb takes a lock on
    /// the file, so a second server on the same data directory is refused here.
    pub fn open(data_dir: &Path) -> Result<(Store, Loaded), StoreError> {
        let path = data_dir.join(STORE_FILE);
        let db =
            Database::create(&path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        let store = Store { db };
        store.init()?;
        let loaded = store.load()?;
        Ok((store, loaded))
    }

    /// Creates the tables and checks the format.
    fn init(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            txn.open_table(TASKS)?;
            txn.open_table(SESSIONS)?;
            txn.open_table(TOMBSTONES)?;
            let mut meta = txn.open_table(META)?;
            let format = meta.get("format")?.map(|v| v.value());
            match format {
                None => {
                    meta.insert("format", FORMAT)?;
                }
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(StoreError(format!(
                        "{STORE_FILE} has format {other}; this version reads format {FORMAT}"
                    )));
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read()?;
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

    /// Writes one batch in one transaction and makes it durable before returning.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError(e.to_string()))?;
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
        .map_err(|e| StoreError(format!("{STORE_FILE}: row {key} cannot be read: {e}")))
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
            let (store, loaded) = Store::open(dir.path()).unwrap();
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
        let (_store, loaded) = Store::open(dir.path()).unwrap();
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
        let (store, _) = Store::open(dir.path()).unwrap();
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
        let (_, loaded) = Store::open(dir.path()).unwrap();
        assert_eq!(loaded.tombstones.len(), MAX_TOMBSTONES);
        assert_eq!(loaded.tombstones[0].0, 6);
    }

    #[test]
    fn a_second_server_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_first, _) = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).err().expect("must be locked");
        assert!(err.0.contains(STORE_FILE), "{err}");
    }
}
