//! `xapi-taskd user …`: manage local users from the command line.
//!
//! These commands edit the data directory's users file directly (under its lock); a
//! running server sees the change at the next login, no restart or signal needed.
//! Passwords come from stdin, never from arguments (which other users can read in `ps`).

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::Options;
use crate::users::{self, ROOT, User, UserStore};

const DEFAULT_DATA_DIR: &str = "./xapi-taskd-data";

/// What `user list` shows as root's role: root has no XAPI role, it is the local superuser.
const SUPERUSER_ROLE: &str = "local-superuser";

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user with one of xapi's roles; the password is read from stdin.
    Add {
        name: String,
        /// pool-admin, pool-operator, vm-power-admin, vm-admin, vm-operator, client-cert or
        /// read-only.
        #[arg(long)]
        role: String,
        /// Data directory (users, identity).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// `serve`'s options: those of the store say where the users are.
        #[command(
            flatten,
            next_help_heading = "Options of serve (those of the store are used)"
        )]
        store: Box<Options>,
    },
    /// Remove a user (root cannot be removed).
    Remove {
        name: String,
        /// Data directory (users, identity).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// `serve`'s options: those of the store say where the users are.
        #[command(
            flatten,
            next_help_heading = "Options of serve (those of the store are used)"
        )]
        store: Box<Options>,
    },
    /// List users, one per line: NAME ROLE ID (root's role shows as local-superuser).
    List {
        /// Data directory (users, identity).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// `serve`'s options: those of the store say where the users are.
        #[command(
            flatten,
            next_help_heading = "Options of serve (those of the store are used)"
        )]
        store: Box<Options>,
    },
    /// Set a user's password (root's too); the new password is read from stdin.
    Passwd {
        name: String,
        /// Data directory (users, identity).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// `serve`'s options: those of the store say where the users are.
        #[command(
            flatten,
            next_help_heading = "Options of serve (those of the store are used)"
        )]
        store: Box<Options>,
    },
}

/// Where passwords come from.
enum Input<'a> {
    /// An interactive terminal: prompt on stderr, no echo, type it twice.
    Terminal,
    /// A pipe or file: the first line.
    Lines(&'a mut dyn BufRead),
}

/// Runs one `user` subcommand, printing results on stdout. An error comes back as one line
/// for the caller to print.
pub fn run(cmd: UserCommand) -> Result<(), String> {
    let stdin = io::stdin();
    let mut out = io::stdout().lock();
    if stdin.is_terminal() {
        run_with(cmd, Input::Terminal, &mut out)
    } else {
        run_with(cmd, Input::Lines(&mut stdin.lock()), &mut out)
    }
}

fn run_with(cmd: UserCommand, input: Input<'_>, out: &mut dyn Write) -> Result<(), String> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            data_dir,
            store,
        } => {
            // Everything that can be checked is checked before asking for a password.
            users::check_new_user(&name, &role)?;
            let (store, _rt) = open(&data_dir, store)?;
            if find(&store, &name)?.is_some() {
                return Err(format!("user {name:?} already exists"));
            }
            let password = read_password(input, &format!("Password for {name}: "))?;
            let user = store.add(&name, &role, &password)?;
            print(
                out,
                format_args!("added user {} ({role}) with id {}", user.name, user.id),
            )
        }
        UserCommand::Remove {
            name,
            data_dir,
            store,
        } => {
            open(&data_dir, store)?.0.remove(&name)?;
            print(out, format_args!("removed user {name}"))
        }
        UserCommand::List { data_dir, store } => {
            for u in open(&data_dir, store)?.0.list()? {
                let role = u.role.as_deref().unwrap_or(SUPERUSER_ROLE);
                print(out, format_args!("{} {role} {}", u.name, u.id))?;
            }
            Ok(())
        }
        UserCommand::Passwd {
            name,
            data_dir,
            store,
        } => {
            let (store, _rt) = open(&data_dir, store)?;
            // Root may not exist yet (server never started): passwd then creates it.
            if name != ROOT && find(&store, &name)?.is_none() {
                return Err(format!("no user {name:?}"));
            }
            let password = read_password(input, &format!("New password for {name}: "))?;
            store.set_password(&name, &password)?;
            print(out, format_args!("changed the password of {name}"))
        }
    }
}

/// A runtime for the calls to a cluster, kept alive as long as the store is used.
type Runtime = Option<tokio::runtime::Runtime>;

fn open(dir: &Path, flags: Box<Options>) -> Result<(UserStore, Runtime), String> {
    // Where the users are: the data directory's own file, or — as its `xapi-taskd.toml`
    // says, or the flags (the same names as `serve`'s) — the cluster's, in etcd.
    let settings = flags.settings(dir)?;
    match settings.store {
        crate::config::StoreChoice::Redb => UserStore::open(dir)
            .map(|s| (s, None))
            .map_err(|e| format!("cannot open the data directory: {e}")),
        #[cfg(feature = "etcd")]
        store => {
            // Multi-threaded: the store's blocking calls drive it from this thread with a
            // runtime handle, which a current-thread runtime does not allow.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let users = crate::cluster::user_store(dir, &store, &rt)
                .map_err(|e| format!("cannot use the cluster's users: {e}"))?;
            Ok((users, Some(rt)))
        }
        #[cfg(not(feature = "etcd"))]
        _ => Err("this build has no etcd support: build it with --features etcd".into()),
    }
}

fn find(store: &UserStore, name: &str) -> Result<Option<User>, String> {
    Ok(store.list()?.into_iter().find(|u| u.name == name))
}

/// Writes one line. A reader that went away (`user list | head -1`) is not an error (and
/// not a panic, as with `println!`); other write errors are.
fn print(out: &mut dyn Write, line: std::fmt::Arguments<'_>) -> Result<(), String> {
    match writeln!(out, "{line}") {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

fn read_password(input: Input<'_>, prompt: &str) -> Result<String, String> {
    match input {
        Input::Lines(r) => read_password_line(r),
        Input::Terminal => {
            let first = prompt_password(prompt)?;
            let again = prompt_password("Retype it: ")?;
            if first != again {
                return Err("the passwords do not match".into());
            }
            Ok(first)
        }
    }
}

/// One line, without its line ending (`\n` or `\r\n`); everything else, spaces included,
/// is part of the password. Only that line is read.
fn read_password_line(r: &mut dyn BufRead) -> Result<String, String> {
    let mut line = String::new();
    let n = r.read_line(&mut line).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => "the password on stdin is not valid UTF-8".to_string(),
        _ => format!("cannot read the password from stdin: {e}"),
    })?;
    if n == 0 {
        return Err("no password on stdin (give it as one line, e.g. through a pipe)".into());
    }
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(password.to_string())
}

/// Prompts on stderr and reads a line from the terminal with echo turned off.
///
/// Echo is switched with the system's `stty` (on stdin, the terminal) rather than a
/// terminal crate: one line each way, no dependency. If `stty` is missing the password is
/// read with echo, after a warning. If the command is killed (Ctrl-C) while echo is off,
/// the shell may be left without echo: `stty sane` restores it.
///
/// Echo goes off before the prompt is shown: a password typed (or pasted) as soon as the
/// prompt appears must not be echoed.
pub fn prompt_password(prompt: &str) -> Result<String, String> {
    let mut err = io::stderr();
    let echo = EchoOff::new();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    if echo.is_none() {
        let _ = write!(err, "(warning: cannot turn off echo) ");
        let _ = err.flush();
    }
    let result = read_password_line(&mut io::stdin().lock());
    if echo.is_some() {
        drop(echo);
        // The user's Enter was not echoed either.
        let _ = writeln!(err);
    }
    result
}

/// Terminal echo turned off for as long as this lives; the saved settings are restored on
/// drop, on error paths too.
struct EchoOff {
    saved: String,
}

impl EchoOff {
    fn new() -> Option<EchoOff> {
        let saved = stty(&["-g"])?;
        let saved = saved.trim().to_string();
        if saved.is_empty() {
            return None;
        }
        stty(&["-echo"])?;
        Some(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if stty(&[self.saved.as_str()]).is_none() {
            let _ = stty(&["echo"]);
        }
    }
}

/// Runs `stty ARGS` on the terminal that is our stdin; its stdout, or None on failure.
fn stty(args: &[&str]) -> Option<String> {
    let out = Command::new("stty")
        .args(args)
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if out.status.success() {
        String::from_utf8(out.stdout).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> io::Cursor<Vec<u8>> {
        io::Cursor::new(s.as_bytes().to_vec())
    }

    /// Runs a command with `stdin` as piped input; returns (result, stdout).
    fn cli(cmd: UserCommand, stdin: &str) -> (Result<(), String>, String) {
        let mut input = lines(stdin);
        let mut out = Vec::new();
        let r = run_with(cmd, Input::Lines(&mut input), &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    fn add(dir: &Path, name: &str, role: &str) -> UserCommand {
        UserCommand::Add {
            name: name.into(),
            role: role.into(),
            data_dir: dir.into(),
            store: Default::default(),
        }
    }

    fn list(dir: &Path) -> UserCommand {
        UserCommand::List {
            data_dir: dir.into(),
            store: Default::default(),
        }
    }

    #[test]
    fn password_lines() {
        let read = |s: &str| read_password_line(&mut lines(s));
        assert_eq!(read("pw\n").unwrap(), "pw");
        assert_eq!(read("pw\r\n").unwrap(), "pw");
        assert_eq!(read("pw").unwrap(), "pw");
        assert_eq!(read(" p w \n").unwrap(), " p w ");
        assert_eq!(read("\u{e9}t\u{e9}\n").unwrap(), "\u{e9}t\u{e9}");
        assert_eq!(read("first\nsecond\n").unwrap(), "first");
        assert!(read("").unwrap_err().contains("no password"));
        assert!(read("\n").unwrap_err().contains("empty"));
        assert!(read("\r\n").unwrap_err().contains("empty"));
        let mut bad = io::Cursor::new(b"\xff\xfe\n".to_vec());
        assert!(read_password_line(&mut bad).unwrap_err().contains("UTF-8"));
        // Only the first line is consumed.
        let mut two = lines("a\nb\n");
        read_password_line(&mut two).unwrap();
        assert_eq!(read_password_line(&mut two).unwrap(), "b");
    }

    #[test]
    fn add_list_passwd_remove_end_to_end() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("data");
        let store = UserStore::open(&dir).unwrap();
        store.ensure_root(Some("rootpw")).unwrap();

        let (r, out) = cli(add(&dir, "alice", "vm-operator"), "alice-pw\n");
        r.unwrap();
        let id = store.list().unwrap()[1].id.clone();
        assert_eq!(
            out,
            format!("added user alice (vm-operator) with id {id}\n")
        );
        assert!(store.authenticate("alice", "alice-pw").is_ok());

        let (r, out) = cli(list(&dir), "");
        r.unwrap();
        let root_id = store.list().unwrap()[0].id.clone();
        assert_eq!(
            out,
            format!("root local-superuser {root_id}\nalice vm-operator {id}\n")
        );

        let passwd = |name: &str| UserCommand::Passwd {
            name: name.into(),
            data_dir: dir.clone(),
            store: Default::default(),
        };
        let (r, out) = cli(passwd("alice"), "new-pw\r\n");
        r.unwrap();
        assert_eq!(out, "changed the password of alice\n");
        assert_eq!(store.authenticate("alice", "new-pw").unwrap().id, id);
        cli(passwd("root"), "new-root\n").0.unwrap();
        assert!(store.authenticate("root", "new-root").is_ok());

        let remove = |name: &str| UserCommand::Remove {
            name: name.into(),
            data_dir: dir.clone(),
            store: Default::default(),
        };
        let (r, out) = cli(remove("alice"), "");
        r.unwrap();
        assert_eq!(out, "removed user alice\n");
        assert_eq!(store.list().unwrap().len(), 1);
        let err = cli(remove("alice"), "").0.unwrap_err();
        assert!(err.contains("no user"), "{err}");
        let err = cli(remove("root"), "").0.unwrap_err();
        assert!(err.contains("cannot be removed"), "{err}");
    }

    #[test]
    fn errors_are_one_line_and_change_nothing() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("data");
        cli(add(&dir, "alice", "read-only"), "pw\n").0.unwrap();
        let before = fs_content(&dir);
        let cases = [
            (add(&dir, "bob", "super-admin"), "pw\n", "unknown role"),
            (add(&dir, "alice", "read-only"), "pw\n", "already exists"),
            (add(&dir, "root", "pool-admin"), "pw\n", "superuser"),
            (add(&dir, "", "read-only"), "pw\n", "empty"),
            (add(&dir, "bob", "read-only"), "", "no password"),
            (add(&dir, "bob", "read-only"), "\n", "empty"),
            (
                UserCommand::Passwd {
                    name: "carol".into(),
                    data_dir: dir.clone(),
                    store: Default::default(),
                },
                "pw\n",
                "no user",
            ),
            (
                UserCommand::Passwd {
                    name: "alice".into(),
                    data_dir: dir.clone(),
                    store: Default::default(),
                },
                "",
                "no password",
            ),
        ];
        for (cmd, stdin, want) in cases {
            let (r, out) = cli(cmd, stdin);
            let err = r.unwrap_err();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
            assert!(!err.contains('\n'), "{err:?}");
            assert_eq!(out, "");
        }
        let err = cli(add(&dir, "bob", "admin"), "pw\n").0.unwrap_err();
        assert!(err.contains(&users::ROLES.join(", ")), "{err}");
        assert_eq!(fs_content(&dir), before);

        // A damaged users file: a clear error naming the file.
        std::fs::write(dir.join("users.json"), "{").unwrap();
        let err = cli(list(&dir), "").0.unwrap_err();
        assert!(err.contains("users.json is damaged"), "{err}");
        assert!(!err.contains('\n'), "{err:?}");
    }

    #[test]
    fn passwd_root_works_before_the_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = UserCommand::Passwd {
            name: "root".into(),
            data_dir: dir.path().into(),
            store: Default::default(),
        };
        cli(passwd, "chosen\n").0.unwrap();
        let store = UserStore::open(dir.path()).unwrap();
        assert_eq!(store.authenticate("root", "chosen").unwrap().role, None);
        let (_, out) = cli(list(dir.path()), "");
        assert!(out.starts_with("root local-superuser "), "{out}");
    }

    #[test]
    fn commands_parse_with_the_documented_names() {
        use clap::{FromArgMatches, Subcommand};
        let cmd = UserCommand::augment_subcommands(clap::Command::new("user"));
        let parse = |args: &[&str]| {
            let m = cmd.clone().try_get_matches_from(args).unwrap();
            UserCommand::from_arg_matches(&m).unwrap()
        };
        match parse(&["user", "add", "alice", "--role", "read-only"]) {
            UserCommand::Add {
                name,
                role,
                data_dir,
                ..
            } => {
                assert_eq!((name.as_str(), role.as_str()), ("alice", "read-only"));
                assert_eq!(data_dir, PathBuf::from("./xapi-taskd-data"));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["user", "passwd", "root", "--data-dir", "/d"]) {
            UserCommand::Passwd { name, data_dir, .. } => {
                assert_eq!((name.as_str(), data_dir), ("root", PathBuf::from("/d")));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["user", "remove", "bob", "--data-dir", "/d"]),
            UserCommand::Remove { .. }
        ));
        assert!(matches!(parse(&["user", "list"]), UserCommand::List { .. }));
        assert!(
            cmd.clone()
                .try_get_matches_from(["user", "add", "alice"])
                .is_err(),
            "--role is required"
        );
    }

    fn fs_content(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("users.json")).unwrap()
    }
}
