//! `xapi-taskd cluster …`: look at a deployment on etcd from the command line, and move a
//! single node's data into one, with the same options as `serve` and the `user` commands
//! (flags, or the data directory's `xapi-taskd.toml`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Options;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// The etcd members (name, URLs, leader, Raft term and index, db size), this
    /// deployment's revision, its live front-ends and its GC leader. Exit status 1 when
    /// etcd has no quorum or refuses this deployment's keys (credentials, permission, TLS).
    Status {
        /// Data directory (for its xapi-taskd.toml).
        #[arg(long, default_value = "./xapi-taskd-data")]
        data_dir: PathBuf,
        /// One JSON object instead of lines for people.
        #[arg(long)]
        json: bool,
        /// `serve`'s options: those of the store say where the cluster is.
        #[command(
            flatten,
            next_help_heading = "Options of serve (those of the store are used)"
        )]
        store: Box<Options>,
    },
    /// Copy a stopped single-node server's data (every task, session, deletion record,
    /// the pool and host identity, the users file) into an empty --etcd-prefix, for
    /// front-ends to serve (docs/operations.md, "From a single node to a cluster"). The
    /// store is verified first; a prefix holding a deployment is refused; an import
    /// stopped halfway leaves a prefix that front-ends refuse and that running the
    /// import again completes. Implies --store etcd.
    Import {
        /// The single node's data directory (its store.redb, users.json, identity.json
        /// and xapi-taskd.toml).
        #[arg(long, default_value = "./xapi-taskd-data")]
        data_dir: PathBuf,
        /// Most operations in one etcd transaction (etcd's --max-txn-ops is 128 by
        /// default).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(3..))]
        batch_ops: u32,
        /// Most bytes of keys and values in one transaction (etcd's request limit is
        /// 1.5 MiB by default).
        #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(4096..))]
        batch_bytes: u32,
        /// `serve`'s options: those of the store say where the cluster is.
        #[command(
            flatten,
            next_help_heading = "Options of serve (those of the store are used)"
        )]
        store: Box<Options>,
    },
}

/// Runs a `cluster` subcommand: the report on stdout; an error on one line of stderr.
pub fn run(cmd: ClusterCommand) -> ExitCode {
    let outcome = match cmd {
        ClusterCommand::Import {
            data_dir,
            batch_ops,
            batch_bytes,
            mut store,
        } => {
            // The data directory's own file says `redb` (it is a single node's).
            store.store.get_or_insert_with(|| "etcd".to_string());
            import(&data_dir, batch_ops as usize, batch_bytes as usize, *store).map(|()| true)
        }
        ClusterCommand::Status {
            data_dir,
            json,
            store,
        } => status(&data_dir, json, *store),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xapi-taskd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the report; whether the deployment is healthy.
fn status(data_dir: &Path, json: bool, store: Options) -> Result<bool, String> {
    let settings = store.settings(data_dir)?;
    #[cfg(feature = "etcd")]
    {
        let config = crate::cluster::etcd_config(&settings.store)
            .map_err(|_| "cluster status needs --store etcd (or store = \"etcd\" in the file)")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let report = rt
            .block_on(crate::db::etcd::status::report(&config))
            .map_err(|e| e.0)?;
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
            );
        } else {
            print!("{}", crate::db::etcd::status::human(&report));
        }
        Ok(report.healthy())
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = (settings, json);
        Err("this build has no etcd support: build it with --features etcd".into())
    }
}

/// `cluster import`: the single node's store, verified as `store check` does (refusing a
/// damaged, missing or empty one, or one a running server holds), into the cluster.
fn import(data_dir: &Path, ops: usize, bytes: usize, store: Options) -> Result<(), String> {
    let settings = store.settings(data_dir)?;
    #[cfg(feature = "etcd")]
    {
        use crate::db::etcd::import::{self, Batching, Source};
        use crate::db::store::Store;
        let config = crate::cluster::etcd_config(&settings.store).map_err(|e| e.to_string())?;
        // Held until the import is done: no server can start on the directory meanwhile.
        let (held, loaded) = Store::open(data_dir, false).map_err(|e| e.message)?;
        let users_path = data_dir.join("users.json");
        let users = match std::fs::read(&users_path) {
            Ok(bytes) => {
                // Parsed and checked as a server would, then carried as the same bytes.
                crate::users::UserStore::open(data_dir)
                    .map_err(|e| e.to_string())?
                    .list()?;
                Some(bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: {e}", users_path.display())),
        };
        // Every server with a store has written one; without it, `identity_of` would
        // invent an identity (and write it into a directory the import only reads).
        if !data_dir.join("identity.json").is_file() {
            return Err(format!(
                "{} has no identity.json: it is not the data directory of a server that ran \
                 with a store",
                data_dir.display()
            ));
        }
        let (pool_ref, pool_uuid, host_ref, host_uuid) =
            crate::serve::identity_of(data_dir).map_err(|e| e.to_string())?;
        let (pool, host) = crate::serve::singletons(&settings, pool_uuid, host_uuid);
        let source = Source {
            loaded,
            identity: crate::db::etcd::Identity {
                pool_ref,
                pool,
                host_ref,
                host,
            },
            users,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let batching = Batching { ops, bytes };
        let mut progress = |line: String| eprintln!("xapi-taskd: import: {line}");
        let s = rt
            .block_on(import::run(&config, source, batching, &mut progress))
            .map_err(|e| e.0)?;
        drop(held);
        println!(
            "imported {} tasks ({} unfinished), {} sessions, {} deletion records{}, the pool \
             and host{} from {} into {} under {}",
            s.tasks,
            s.unfinished,
            s.sessions,
            s.tombstones,
            if s.tombstones_skipped > 0 {
                format!(" ({} of other classes left out)", s.tombstones_skipped)
            } else {
                String::new()
            },
            if s.users { ", the users file" } else { "" },
            data_dir.display(),
            config.endpoints.join(","),
            crate::db::etcd::keys::Keys::new(&config.prefix).prefix()
        );
        println!(
            "{} bytes in {} transactions, {:.1} s; the single node's generation {}, the \
             cluster's revision now {}{}",
            s.bytes,
            s.transactions,
            s.elapsed.as_secs_f64(),
            s.generation,
            s.revision,
            if s.restarted {
                " (an unfinished import was started over)"
            } else {
                ""
            }
        );
        Ok(())
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = (settings, ops, bytes);
        Err("this build has no etcd support: build it with --features etcd".into())
    }
}
