//! `xapi-taskd store …`: check, back up and restore the durable store.
//!
//! All three work on a stopped server's data directory. redb gives the server an
//! exclusive lock on `store.redb`, and a copy read from under a writing server would mix
//! pages of different commits; so these commands take the same lock and refuse while a
//! server runs. (A filesystem snapshot of a running server's directory is consistent too:
//! every commit is crash-safe, so the snapshot opens at its last commit. See
//! docs/operations.md, Backup.)
//!
//! Every store these commands read is opened and verified exactly as `serve` does (every
//! page checksum, every row, the links between rows), so "check says sound" means "the
//! server will start on it with these contents".

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::db::store::{Loaded, Problem, STORE_FILE, Store, StoreError};

const DEFAULT_DATA_DIR: &str = "./xapi-taskd-data";

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Verify a store (the data directory's, or FILE) as the server does at start, and say
    /// what it holds. Exit status 1 if it is damaged, missing or in use.
    Check {
        /// A store file to check instead of the data directory's (e.g. a backup).
        file: Option<PathBuf>,
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Write a verified copy of the data directory's store to FILE (which must not exist).
    /// The server must be stopped.
    Backup {
        file: PathBuf,
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Replace the data directory's store with the backup FILE, once it is verified. The
    /// store it replaces is kept beside it as store.redb.replaced-<time>. The server must be
    /// stopped.
    Restore {
        file: PathBuf,
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

/// Runs one `store` subcommand, printing results on stdout. An error comes back as one
/// line for the caller to print.
pub fn run(cmd: StoreCommand) -> Result<(), String> {
    let mut out = io::stdout().lock();
    run_with(cmd, &mut out)
}

fn run_with(cmd: StoreCommand, out: &mut dyn Write) -> Result<(), String> {
    match cmd {
        StoreCommand::Check { file, data_dir } => {
            let path = file.unwrap_or_else(|| data_dir.join(STORE_FILE));
            let (_, loaded) = Store::open_file(&path, false).map_err(message)?;
            say(
                out,
                format!("{}: sound; {}", path.display(), summary(&loaded)),
            )
        }
        StoreCommand::Backup { file, data_dir } => {
            if file.exists() {
                return Err(format!(
                    "{} exists; remove it or choose another name",
                    file.display()
                ));
            }
            let (store, loaded) = Store::open(&data_dir, false).map_err(message)?;
            let partial = sibling(&file, ".partial")?;
            let _ = std::fs::remove_file(&partial);
            store.copy_to(&partial).map_err(message)?;
            drop(store);
            // The copy must itself be a sound store with the same contents.
            let (copy, again) = Store::open_file(&partial, false).map_err(message)?;
            drop(copy);
            if summary(&again) != summary(&loaded) {
                return Err(format!(
                    "the copy in {} does not hold what the store holds",
                    partial.display()
                ));
            }
            rename_durably(&partial, &file)?;
            say(
                out,
                format!("backed up {} to {}", summary(&loaded), file.display()),
            )
        }
        StoreCommand::Restore { file, data_dir } => restore(&file, &data_dir, out),
    }
}

/// Verifies a copy of the backup beside the store, then swaps it in by rename, keeping
/// the store it replaces. Working on a copy leaves the backup itself untouched (opening
/// a store may finish a crash recovery in it).
fn restore(file: &Path, data_dir: &Path, out: &mut dyn Write) -> Result<(), String> {
    let target = data_dir.join(STORE_FILE);
    let incoming = data_dir.join(format!("{STORE_FILE}.restoring"));
    if !data_dir.is_dir() {
        return Err(format!("{} is not a directory", data_dir.display()));
    }
    refuse_if_in_use(&target)?;
    let _ = std::fs::remove_file(&incoming);
    std::fs::copy(file, &incoming).map_err(|e| format!("cannot copy {}: {e}", file.display()))?;
    let loaded = match Store::open_file(&incoming, false) {
        Ok((_, loaded)) => loaded,
        Err(e) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(format!(
                "{} is not a sound store, nothing was changed: {}",
                file.display(),
                e.message
            ));
        }
    };
    let kept = if target.exists() {
        let stamp = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .map_err(|e| e.to_string())?;
        let kept = data_dir.join(format!("{STORE_FILE}.replaced-{stamp}"));
        rename_durably(&target, &kept)?;
        Some(kept)
    } else {
        None
    };
    rename_durably(&incoming, &target)?;
    let mut text = format!(
        "restored {} from {} into {}",
        summary(&loaded),
        file.display(),
        target.display()
    );
    if let Some(kept) = kept {
        text += &format!("; the store it replaced is kept as {}", kept.display());
    }
    say(out, text)
}

/// Refuses while a server (or anything else) holds the store open. A damaged or missing
/// store is fine: that is what a restore is for.
fn refuse_if_in_use(target: &Path) -> Result<(), String> {
    if !target.exists() {
        return Ok(());
    }
    match Store::open_file(target, true) {
        Err(e) if e.problem == Problem::InUse => Err(message(e)),
        _ => Ok(()),
    }
}

/// One line about what a store holds.
fn summary(loaded: &Loaded) -> String {
    let pending = loaded
        .tasks
        .iter()
        .filter(|(_, t)| !t.status.is_completed())
        .count();
    format!(
        "{} tasks ({pending} unfinished), {} sessions, {} deletion records, generation {}",
        loaded.tasks.len(),
        loaded.sessions.len(),
        loaded.tombstones.len(),
        loaded.generation
    )
}

fn message(e: StoreError) -> String {
    e.message
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> Result<PathBuf, String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

/// Renames `from` to `to` and syncs the directory, so that the rename survives a crash.
fn rename_durably(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to)
        .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))?;
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

fn say(out: &mut dyn Write, line: String) -> Result<(), String> {
    writeln!(out, "{line}").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::store::Batch;
    use crate::db::{NULL_REF, TaskRow};

    fn run(cmd: StoreCommand) -> Result<String, String> {
        let mut out = Vec::new();
        run_with(cmd, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// A data directory whose store holds `n` tasks.
    fn data_dir(n: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(dir.path(), true).unwrap();
        let batch = Batch {
            tasks: (0..n)
                .map(|i| {
                    let t = TaskRow::new(&format!("t{i}"), "", NULL_REF, "h");
                    (format!("OpaqueRef:{i}"), Some(t))
                })
                .collect(),
            generation: 10 + n as u64,
            ..Batch::default()
        };
        store.commit(&batch).unwrap();
        dir
    }

    #[test]
    fn backup_then_restore_brings_the_state_back_and_keeps_the_replaced_store() {
        let dir = data_dir(5);
        let backup = dir.path().join("backup.redb");
        let line = run(StoreCommand::Backup {
            file: backup.clone(),
            data_dir: dir.path().into(),
        })
        .unwrap();
        assert!(
            line.starts_with("backed up 5 tasks (5 unfinished)"),
            "{line}"
        );
        let err = run(StoreCommand::Backup {
            file: backup.clone(),
            data_dir: dir.path().into(),
        })
        .unwrap_err();
        assert!(err.contains("exists"), "{err}");

        // The live store moves on (and then gets damaged).
        let store_file = dir.path().join(STORE_FILE);
        std::fs::write(&store_file, b"not a store at all").unwrap();
        let err = run(StoreCommand::Check {
            file: None,
            data_dir: dir.path().into(),
        })
        .unwrap_err();
        assert!(err.contains("is damaged"), "{err}");

        let line = run(StoreCommand::Restore {
            file: backup.clone(),
            data_dir: dir.path().into(),
        })
        .unwrap();
        assert!(line.starts_with("restored 5 tasks"), "{line}");
        assert!(line.contains("store.redb.replaced-"), "{line}");
        let (_, loaded) = Store::open(dir.path(), false).unwrap();
        assert_eq!(loaded.tasks.len(), 5);
        assert_eq!(loaded.generation, 15);
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("store.redb.replaced-"))
            .collect();
        assert_eq!(kept.len(), 1);
        let kept = std::fs::read(dir.path().join(&kept[0])).unwrap();
        assert_eq!(kept, b"not a store at all");
    }

    #[test]
    fn a_damaged_backup_is_not_restored() {
        let dir = data_dir(3);
        let bad = dir.path().join("bad.redb");
        std::fs::write(&bad, vec![0u8; 8192]).unwrap();
        let err = run(StoreCommand::Restore {
            file: bad,
            data_dir: dir.path().into(),
        })
        .unwrap_err();
        assert!(
            err.contains("is not a sound store, nothing was changed"),
            "{err}"
        );
        let (_, loaded) = Store::open(dir.path(), false).unwrap();
        assert_eq!(loaded.tasks.len(), 3);
        assert!(!dir.path().join("store.redb.restoring").exists());
    }

    #[test]
    fn nothing_is_done_while_a_server_holds_the_store() {
        let dir = data_dir(2);
        let backup = dir.path().join("b.redb");
        let held = Store::open(dir.path(), false).unwrap();
        let err = run(StoreCommand::Backup {
            file: backup.clone(),
            data_dir: dir.path().into(),
        })
        .unwrap_err();
        assert!(err.contains("is a server running"), "{err}");
        assert!(!backup.exists());
        drop(held);
        run(StoreCommand::Backup {
            file: backup.clone(),
            data_dir: dir.path().into(),
        })
        .unwrap();
        let held = Store::open(dir.path(), false).unwrap();
        let err = run(StoreCommand::Restore {
            file: backup,
            data_dir: dir.path().into(),
        })
        .unwrap_err();
        assert!(err.contains("is a server running"), "{err}");
        drop(held);
    }

    #[test]
    fn check_names_what_a_sound_store_holds() {
        let dir = data_dir(4);
        let line = run(StoreCommand::Check {
            file: None,
            data_dir: dir.path().into(),
        })
        .unwrap();
        assert!(
            line.contains(
                "sound; 4 tasks (4 unfinished), 0 sessions, 0 deletion records, generation 14"
            ),
            "{line}"
        );
        let err = run(StoreCommand::Check {
            file: Some(dir.path().join("none.redb")),
            data_dir: dir.path().into(),
        })
        .unwrap_err();
        assert!(err.contains("none.redb is missing"), "{err}");
    }
}
