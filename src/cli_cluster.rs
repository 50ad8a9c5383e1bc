//! `xapi-taskd cluster …`: look at a deployment on etcd from the command line, with the
//! same options as `serve` and the `user` commands (flags, or the data directory's
//! `xapi-taskd.toml`).

use std::path::PathBuf;
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
}

/// Runs a `cluster` subcommand: the report on stdout; an error on one line of stderr.
pub fn run(cmd: ClusterCommand) -> ExitCode {
    match status(cmd) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xapi-taskd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the report; whether the deployment is healthy.
fn status(cmd: ClusterCommand) -> Result<bool, String> {
    let ClusterCommand::Status {
        data_dir,
        json,
        store,
    } = cmd;
    let settings = store.settings(&data_dir)?;
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
