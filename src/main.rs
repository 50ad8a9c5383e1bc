//! The `xapi-taskd` command: `serve`, `user` to manage local users, `store` to check,
//! back up and restore the durable store, `cluster status` for a deployment on etcd and `cluster import` into one, and the client subcommands (`watch`, `tasks`, `task-list`, …) that talk to a running server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xapi_taskd::cli::ClientCommand;
use xapi_taskd::cli_cluster::ClusterCommand;
use xapi_taskd::cli_store::{self, StoreCommand};
use xapi_taskd::cli_user::{self, UserCommand};
use xapi_taskd::config::{self, Options};
use xapi_taskd::serve::serve;

#[derive(Parser)]
#[command(name = "xapi-taskd", version, about = "A XAPI task server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Data directory (users, store, certificate, identity).
        #[arg(long, default_value = "./xapi-taskd-data")]
        data_dir: PathBuf,
        /// Configuration file (TOML, keys named as the flags) [default:
        /// <data-dir>/xapi-taskd.toml if it exists].
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: Box<Options>,
    },
    /// Manage local users (password read from stdin).
    User {
        #[command(subcommand)]
        cmd: UserCommand,
    },
    /// Look at a deployment on etcd (`cluster status`), or move a single node into one
    /// (`cluster import`).
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCommand,
    },
    /// Check, back up or restore the durable store (server stopped).
    Store {
        #[command(subcommand)]
        cmd: StoreCommand,
    },
    #[command(flatten)]
    Client(ClientCommand),
}

/// mimalloc, not glibc's malloc: a reply is a burst of small allocations freed together,
/// often on another worker thread, which glibc's arenas serve slowly (a fifth of the
/// server's CPU during an event fan-out went to `_int_malloc`/`_int_free`) and keep
/// resident afterwards (glibc needed a `malloc_trim` after every large reply). Figures in
/// docs/performance.md. Called the way `malloc` is (`alloc.rs`).
#[global_allocator]
static GLOBAL: xapi_taskd::alloc::Allocator = xapi_taskd::alloc::Allocator;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3); the Rust bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed pages go back to the system at once. mimalloc's default delays that by 1 s, times
/// 10 for its arenas, and only acts on the delay when a thread next allocates: after a
/// 150 MB `get_all_records` reply the process stayed at its peak (~680 MiB with 100,000
/// tasks) for ~10 s. Immediately, it stays at ~100 MiB; the cost is a handful of `madvise`
/// calls per second under load (measured: none visible in the benchmark).
fn release_freed_memory_at_once() {
    // SAFETY: mi_option_set only stores a value mimalloc reads when it next purges; it
    // has no preconditions and is thread-safe.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// Success, or the error on one line of stderr and exit status 1.
fn exit_with(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xapi-taskd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    release_freed_memory_at_once();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            data_dir,
            config,
            options,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("XAPI_TASKD_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            let settings = match config::load(data_dir, config.as_deref(), *options) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("xapi-taskd: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("xapi-taskd: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xapi-taskd: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Client(cmd) => xapi_taskd::cli::run(cmd),
        Command::User { cmd } => exit_with(cli_user::run(cmd)),
        Command::Store { cmd } => exit_with(cli_store::run(cmd)),
        Command::Cluster { cmd } => xapi_taskd::cli_cluster::run(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_option_is_the_one_we_think() {
        // mimalloc v3's default purge delay is 1000 ms; no option next to it has that
        // default, so a shifted enum in a new mimalloc would fail here.
        // SAFETY: mi_option_get/set have no preconditions.
        unsafe {
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY + 1), 0);
            release_freed_memory_at_once();
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 0);
        }
    }
}
