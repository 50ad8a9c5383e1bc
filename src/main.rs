//! The `xapi-taskd` command: `serve`, `user` to manage local users, and the client
//! subcommands (`watch`, `tasks`, `task-list`, …) that talk to a running server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{Parser, Subcommand};
use xapi_taskd::api::gc::Retention;
use xapi_taskd::cli::ClientCommand;
use xapi_taskd::cli_user::{self, UserCommand};
use xapi_taskd::serve::{ServeConfig, serve};
use xapi_taskd::server::Limits;

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
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Data directory (users, identity).
        #[arg(long, default_value = "./xapi-taskd-data")]
        data_dir: PathBuf,
        /// Largest request body accepted, in bytes (xapi: 300 KiB).
        #[arg(long, default_value_t = 300 * 1024)]
        max_body_bytes: usize,
        /// Connections served at once.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Seconds a completed task is kept after it finished (xapi: 3900).
        #[arg(long, default_value_t = 3900)]
        completed_task_timeout: i64,
        /// Seconds after which a pending task whose progress stalls is removed (xapi: 86400).
        #[arg(long, default_value_t = 86_400)]
        pending_task_timeout: i64,
        /// Completed tasks kept at most, pending ones counting against it (xapi: 200).
        #[arg(long, default_value_t = 200)]
        max_tasks: usize,
        /// Seconds an idle session without unfinished tasks is kept (xapi: 86400).
        #[arg(long, default_value_t = 86_400)]
        session_timeout: i64,
        /// Most pending or cancelling tasks at once; more are TOO_MANY_PENDING_TASKS.
        #[arg(long, default_value_t = 100_000)]
        max_pending_tasks: usize,
        /// Seconds between garbage-collection passes (xapi: 30).
        #[arg(long, default_value_t = 30.0)]
        gc_interval: f64,
    },
    /// Manage local users (password read from stdin).
    User {
        #[command(subcommand)]
        cmd: UserCommand,
    },
    #[command(flatten)]
    Client(ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            max_body_bytes,
            max_connections,
            completed_task_timeout,
            pending_task_timeout,
            max_tasks,
            session_timeout,
            gc_interval,
            max_pending_tasks,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("XAPI_TASKD_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            let config = ServeConfig {
                listen,
                data_dir,
                limits: Limits {
                    max_body_bytes,
                    max_connections,
                    ..Limits::default()
                },
                retention: Retention {
                    completed_task_timeout,
                    pending_task_timeout,
                    max_tasks,
                    session_timeout,
                    interval: Duration::try_from_secs_f64(gc_interval)
                        .unwrap_or(Duration::from_secs(30))
                        .max(Duration::from_millis(10)),
                },
                max_unfinished_tasks: max_pending_tasks,
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
            match runtime.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xapi-taskd: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Client(cmd) => xapi_taskd::cli::run(cmd),
        Command::User { cmd } => match cli_user::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xapi-taskd: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
