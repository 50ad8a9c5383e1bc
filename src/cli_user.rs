//! `xapi-taskd user …`: manage local users from the command line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::users::{ROLES, UserStore};

const DEFAULT_DATA_DIR: &str = "./xapi-taskd-data";

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user with one of xapi's roles; the password is read from stdin.
    Add {
        name: String,
        /// pool-admin, pool-operator, vm-power-admin, vm-admin, vm-operator, client-cert or read-only.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Remove a user (root cannot be removed).
    Remove {
        name: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// List users: name, role and id.
    List {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Set a user's password (root's too); the new password is read from stdin.
    Passwd {
        name: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

/// Reads one line from stdin, without its line ending. On a terminal a prompt goes to
/// stderr (the password is echoed: no extra dependency just to hide it; pipe it in to
/// keep it off the screen).
fn read_password(prompt: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err("no password given on stdin".into());
    }
    Ok(password)
}

fn open(dir: &Path) -> Result<UserStore, String> {
    UserStore::open(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs one `user` subcommand; errors come back as one line for the caller to print.
pub fn run(cmd: UserCommand) -> Result<(), String> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            data_dir,
        } => {
            if !ROLES.contains(&role.as_str()) {
                return Err(format!(
                    "unknown role {role:?}; roles are: {}",
                    ROLES.join(", ")
                ));
            }
            let store = open(&data_dir)?;
            let password = read_password(&format!("Password for {name}: "))?;
            let user = store.add(&name, &role, &password)?;
            println!("added {} ({}) with id {}", user.name, role, user.id);
        }
        UserCommand::Remove { name, data_dir } => {
            open(&data_dir)?.remove(&name)?;
            println!("removed {name}");
        }
        UserCommand::List { data_dir } => {
            for u in open(&data_dir)?.list()? {
                let role = u.role.as_deref().unwrap_or("local-superuser");
                println!("{} {} {}", u.name, role, u.id);
            }
        }
        UserCommand::Passwd { name, data_dir } => {
            let store = open(&data_dir)?;
            let password = read_password(&format!("New password for {name}: "))?;
            store.set_password(&name, &password)?;
            println!("password of {name} changed");
        }
    }
    Ok(())
}
