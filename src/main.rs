//! The `xapi-taskd` command: `serve`, `user` to manage local users, and the client
//! subcommands (`watch`, `tasks`, `task-list`, …) that talk to a running server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xapi_taskd::cli::ClientCommand;
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
    #[command(flatten)]
    Client(ClientCommand),
}

fn main() -> ExitCode {
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
        Command::User { cmd } => match cli_user::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xapi-taskd: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
