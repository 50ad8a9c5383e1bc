//! Client subcommands: talk to a running server over its APIs (JSON-RPC; LXCA's REST API
//! for `tasks`), for operators in terminals. One file per concern:
//! - [`client`]: connection options, password, login/logout, JSON-RPC calls;
//! - [`task`]: task records as decoded from the API;
//! - [`xe`]: `task-list`, `task-cancel`, `task-destroy`, `task-param-list` in xe's style;
//! - [`tasks`]: XClarity's `tasks` command, over [`lxca`], a small LXCA REST client (the
//!   job mapping is the XClarity face's own, `crate::xclarity::mapping`);
//! - [`watch`]: the live view driven by `event.from`.
//!
//! Every failure is one line on stderr (`error: …`) and a non-zero exit; see `docs/cli.md`.

pub mod client;
pub mod lxca;
pub mod task;
pub mod tasks;
pub mod watch;
pub mod xe;

use std::io::Write;
use std::process::ExitCode;

use client::CliError;

/// The client subcommands, flattened into the binary's top-level commands.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Follow tasks live (progress bars, ETA) until they finish; exit 1 if any failed.
    Watch(watch::WatchArgs),
    /// XClarity-style jobs: list, cancel, delete, create, update (-j -c -a -u -t).
    Tasks(tasks::TasksArgs),
    /// xe task-list: every task (params=…, field=value filters, --minimal).
    #[command(name = "task-list")]
    TaskList(xe::XeArgs),
    /// xe task-cancel uuid=…: request cancellation.
    #[command(name = "task-cancel")]
    TaskCancel(xe::XeArgs),
    /// xe task-destroy uuid=…: destroy (a pending task goes when it finishes).
    #[command(name = "task-destroy")]
    TaskDestroy(xe::XeArgs),
    /// xe task-param-list uuid=…: every field of one task.
    #[command(name = "task-param-list")]
    TaskParamList(xe::XeArgs),
}

/// Runs a client subcommand: its output on stdout, an error as one line on stderr.
pub fn run(cmd: ClientCommand) -> ExitCode {
    let result = match cmd {
        ClientCommand::Watch(args) => return watch::run(&args),
        ClientCommand::Tasks(args) => tasks::run(&args),
        ClientCommand::TaskList(args) => xe::run(xe::XeCommand::List, &args),
        ClientCommand::TaskCancel(args) => xe::run(xe::XeCommand::Cancel, &args),
        ClientCommand::TaskDestroy(args) => xe::run(xe::XeCommand::Destroy, &args),
        ClientCommand::TaskParamList(args) => xe::run(xe::XeCommand::ParamList, &args),
    };
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // A reader that went away (`| head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    report(&CliError::msg(format!("cannot write to stdout: {e}")))
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => report(&e),
    }
}

/// Prints `error: …` on stderr; exit code 1.
pub fn report(e: &CliError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
