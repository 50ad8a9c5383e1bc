//! placeholder
use std::process::ExitCode;
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub conn: super::client::Connection,
    pub uuids: Vec<String>,
}
pub fn run(_a: &WatchArgs) -> ExitCode {
    ExitCode::FAILURE
}
