//! Local users: names, XAPI roles, stable ids and argon2id password hashes, kept in
//! `users.json` in the data directory.
//!
//! The server and the `xapi-taskd user` commands are different processes that share this
//! file, so:
//! - every read-modify-write holds an advisory lock on `users.lock`, so that concurrent
//!   commands do not lose each other's changes;
//! - writes are atomic (temporary file, fsync, rename, fsync of the directory), so a reader
//!   sees the old file or the new one, never half of one, and needs no lock;
//! - the store keeps no copy of the users: it re-reads the file at each call, so a running
//!   server sees a change at the next login. The file is small and a login costs an argon2
//!   hash anyway (tens of milliseconds), so the read is noise; a cache keyed on the file's
//!   mtime/size/inode would be cheaper still but can miss a change (coarse timestamps,
//!   reused inodes, a password change keeps the size), which would let a changed password
//!   keep working.
//!
//! Passwords are never stored or logged in clear: the file holds PHC strings (argon2id).
//!
//! File format (`users.json`, mode 0600):
//! ```json
//! {
//!   "version": 1,
//!   "users": [
//!     { "name": "root", "id": "…uuid…", "hash": "$argon2id$v=19$m=19456,t=2,p=1$…" },
//!     { "name": "alice", "id": "…uuid…", "role": "vm-operator", "hash": "$argon2id$…" }
//!   ]
//! }
//! ```

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// xapi's role names, in its order (decreasing privilege, `datamodel_roles.ml`). These
/// exact strings are what operators pass to `user add --role` and what sessions report.
pub const ROLES: [&str; 7] = crate::api::datamodel::ROLE_NAMES;

/// The local superuser. It has no role (it has every permission, like a PAM login as root
/// on xapi), always exists once the server has started, and cannot be added or removed.
pub const ROOT: &str = "root";

/// File names inside the data directory.
const USERS_FILE: &str = "users.json";
const LOCK_FILE: &str = "users.lock";
/// Where a generated root password is left for the operator (only when generated).
pub const ROOT_PASSWORD_FILE: &str = "root-password";

/// The only `users.json` layout this code understands; a file from a newer layout is
/// refused rather than rewritten without the fields it does not know.
const FORMAT_VERSION: u32 = 1;

/// Longest user name, in bytes.
const MAX_NAME_LEN: usize = 128;

/// Length of a generated root password.
const GENERATED_PASSWORD_LEN: usize = 24;

/// A user as the rest of the server sees it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Stable id (a UUID), the session's `auth_user_sid`: it identifies the user for task
    /// ownership, so it is made once at `add` and never changes (not by `passwd` either).
    /// A user removed and added again under the same name gets a new id and does not
    /// inherit the old user's tasks.
    pub id: String,
    /// One of [`ROLES`]; `None` only for root, the local superuser.
    pub role: Option<String>,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No such user. The server answers exactly as for [`AuthError::BadPassword`], and
    /// [`UserStore::authenticate`] takes as long, so user names cannot be probed.
    UnknownUser,
    BadPassword,
    /// The users file could not be read or is damaged (an operator problem, not the
    /// caller's): the message says which file and why.
    Store(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    name: String,
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    /// argon2id PHC string.
    hash: String,
}

impl Entry {
    fn user(&self) -> User {
        User {
            name: self.name.clone(),
            id: self.id.clone(),
            role: self.role.clone(),
        }
    }
}

fn default_version() -> u32 {
    FORMAT_VERSION
}

#[derive(Debug, Serialize, Deserialize)]
struct UsersFile {
    #[serde(default = "default_version")]
    version: u32,
    users: Vec<Entry>,
}

/// Where the users file lives when a shared store keeps it (cluster mode keeps it in
/// etcd, so that every front-end and every `user` command sees the same users).
/// Read-modify-writes are compare-and-swaps on the file's version instead of a lock.
pub trait RemoteFile: Send + Sync + std::fmt::Debug {
    /// The file's content and version, or None while there is no file.
    fn read(&self) -> Result<Option<(Vec<u8>, i64)>, String>;
    /// Writes `content` if the file is still at version `expected` (None: still absent);
    /// false when someone else wrote first.
    fn replace(&self, content: &[u8], expected: Option<i64>) -> Result<bool, String>;
}

/// The user store of one data directory. It holds no user data in memory (see the module
/// documentation), so any number of instances, in any number of processes, agree.
#[derive(Debug)]
pub struct UserStore {
    dir: PathBuf,
    /// Set when the users file is kept by a shared store rather than in `dir`.
    remote: Option<Box<dyn RemoteFile>>,
    /// A hash of a random password, verified against when the user is unknown so that a
    /// probe for user names costs as much as a wrong password. Made on first use so that
    /// the `user` commands, which never authenticate, do not pay for it.
    dummy_hash: OnceLock<String>,
}

/// The argon2 instance used for new hashes. Verification takes its parameters from the
/// stored PHC string, so hashes made with other parameters keep working.
fn hasher() -> Argon2<'static> {
    if cfg!(test) {
        // Cheap parameters keep unit tests fast; production uses argon2's defaults
        // (argon2id, 19 MiB, 2 passes, 1 lane: OWASP's recommendation).
        let params = argon2::Params::new(8, 1, 1, None).expect("valid argon2 params");
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
    } else {
        Argon2::default()
    }
}

fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("cannot hash: {e}"))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash: {e}"))
}

#[cfg(test)]
thread_local! {
    /// Argon2 verifications done by this thread, so tests can check that an unknown user
    /// costs one, like a wrong password.
    static VERIFICATIONS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn verify(password: &str, hash: &str) -> bool {
    #[cfg(test)]
    VERIFICATIONS.with(|v| v.set(v.get() + 1));
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random password from a CSPRNG (`rand::rng()`: ChaCha seeded by the OS), 24 characters
/// from an alphabet of 57 without look-alikes (0/O, 1/l/I): about 140 bits.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..GENERATED_PASSWORD_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Checks a user name for `add`: 1 to 128 bytes, no whitespace or control characters
/// (`user list` prints space-separated columns and names end up in logs), and no leading
/// `-` (it would be taken for an option on the command line).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the user name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the user name is too long ({} bytes, at most {MAX_NAME_LEN})",
            name.len()
        ));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "the user name {name:?} contains spaces or control characters"
        ));
    }
    if name.starts_with('-') {
        return Err(format!("the user name {name:?} starts with '-'"));
    }
    Ok(())
}

/// Checks a role name: exactly one of [`ROLES`].
pub fn check_role(role: &str) -> Result<(), String> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(format!(
            "unknown role {role:?}; the roles are: {}",
            ROLES.join(", ")
        ))
    }
}

/// Checks what `add` checks before touching the file: a valid name other than root and a
/// valid role. The command line calls it before asking for a password.
pub fn check_new_user(name: &str, role: &str) -> Result<(), String> {
    check_name(name)?;
    if name == ROOT {
        return Err(
            "root is the local superuser: it always exists and has no role (use `user passwd root` to change its password)"
                .into(),
        );
    }
    check_role(role)
}

fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        Err("the password is empty".into())
    } else {
        Ok(())
    }
}

/// Checks what the file says, so that a hand-edited or damaged file gives one clear error
/// instead of odd behaviour later (a role the RBAC layer does not know, two users with one
/// name, a hash that can never match).
fn validate(file: &UsersFile) -> Result<(), String> {
    if file.version != FORMAT_VERSION {
        return Err(format!(
            "format version {} is not supported (this xapi-taskd reads version {FORMAT_VERSION})",
            file.version
        ));
    }
    let mut names = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for u in &file.users {
        check_name(&u.name).map_err(|e| format!("bad user: {e}"))?;
        if !names.insert(u.name.as_str()) {
            return Err(format!("user {:?} appears twice", u.name));
        }
        if u.id.is_empty() || !ids.insert(u.id.as_str()) {
            return Err(format!("user {:?} has an empty or duplicate id", u.name));
        }
        match (u.name == ROOT, &u.role) {
            (true, Some(_)) => return Err("root has a role (it must have none)".into()),
            (false, None) => return Err(format!("user {:?} has no role", u.name)),
            (false, Some(r)) => check_role(r).map_err(|e| format!("user {:?}: {e}", u.name))?,
            (true, None) => {}
        }
        PasswordHash::new(&u.hash)
            .map_err(|e| format!("user {:?} has a malformed password hash: {e}", u.name))?;
    }
    Ok(())
}

/// Removes `path` if it exists.
fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Replaces `dir/name` with `content` atomically, mode 0600: a temporary file in the same
/// directory is written and synced, renamed over the target, then the directory is synced
/// so that the rename itself survives a crash. Callers hold the users lock, so the fixed
/// temporary name cannot clash.
pub(crate) fn write_atomically(dir: &Path, name: &str, content: &[u8]) -> io::Result<()> {
    let target = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    // A leftover from a crash may have any mode: start afresh so that 0600 applies.
    remove_if_exists(&tmp)?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &target)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl UserStore {
    /// Opens the store of `data_dir`, creating the directory (and missing parents, mode
    /// 0700: it holds password hashes) if needed. An existing directory keeps its mode.
    /// The users file need not exist: until then the store has no users.
    pub fn open(data_dir: &Path) -> io::Result<UserStore> {
        if !data_dir.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", data_dir.display())))?;
        }
        Ok(UserStore {
            dir: data_dir.to_path_buf(),
            remote: None,
            dummy_hash: OnceLock::new(),
        })
    }

    /// A store whose users file `remote` keeps (`data_dir` still holds a generated
    /// root password).
    pub fn with_remote(data_dir: &Path, remote: Box<dyn RemoteFile>) -> io::Result<UserStore> {
        let mut store = UserStore::open(data_dir)?;
        store.remote = Some(remote);
        Ok(store)
    }

    fn parse(&self, bytes: &[u8]) -> Result<Vec<Entry>, String> {
        let path = self.path();
        let file: UsersFile = serde_json::from_slice(bytes)
            .map_err(|e| format!("{} is damaged: {e}", path.display()))?;
        validate(&file).map_err(|e| format!("{} is damaged: {e}", path.display()))?;
        Ok(file.users)
    }

    fn encode(users: Vec<Entry>) -> Result<Vec<u8>, String> {
        let file = UsersFile {
            version: FORMAT_VERSION,
            users,
        };
        let mut body = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        body.push(b'\n');
        Ok(body)
    }

    fn path(&self) -> PathBuf {
        self.dir.join(USERS_FILE)
    }

    /// The users as the file says now (none if there is no file yet).
    fn load(&self) -> Result<Vec<Entry>, String> {
        if let Some(remote) = &self.remote {
            return match remote.read()? {
                Some((bytes, _)) => self.parse(&bytes),
                None => Ok(Vec::new()),
            };
        }
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let file: UsersFile = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is damaged: {e}", path.display()))?;
        validate(&file).map_err(|e| format!("{} is damaged: {e}", path.display()))?;
        Ok(file.users)
    }

    fn save(&self, users: Vec<Entry>) -> Result<(), String> {
        let body = UserStore::encode(users)?;
        write_atomically(&self.dir, USERS_FILE, &body)
            .map_err(|e| format!("cannot write {}: {e}", self.path().display()))
    }

    /// Holds the advisory lock shared with other processes (released when dropped).
    fn lock(&self) -> Result<File, String> {
        let path = self.dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        lock.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(lock)
    }

    /// Runs a read-modify-write under the lock, writing the file only if `f` changed the
    /// users. A damaged file is an error here too, and is left as it is.
    fn modify<T>(&self, f: impl FnOnce(&mut Vec<Entry>) -> Result<T, String>) -> Result<T, String> {
        if let Some(remote) = &self.remote {
            return modify_remote(self, &**remote, f);
        }
        let _lock = self.lock()?;
        let before = self.load()?;
        let mut users = before.clone();
        let out = f(&mut users)?;
        if users != before {
            self.save(users)?;
        }
        Ok(out)
    }

    /// Creates `root` if the store has none; if root exists, does nothing (its password is
    /// changed with `user passwd root`, not by restarting with another environment).
    ///
    /// Root's password is `env_password` (`XAPI_TASKD_ROOT_PASSWORD`); if that is absent or
    /// empty, one is generated, written to `DIR/root-password` (mode 0600, exactly the
    /// password, no newline, so that reading the whole file gives it) and returned so
    /// that the caller can print it once. The password file is written before the users
    /// file, so a crash in between leaves no root whose password nobody knows.
    pub fn ensure_root(&self, env_password: Option<&str>) -> io::Result<Option<String>> {
        // Usual case, no lock needed: root exists.
        if self.has_root().map_err(io::Error::other)? {
            return Ok(None);
        }
        self.modify(|users| {
            if users.iter().any(|u| u.name == ROOT) {
                return Ok(None);
            }
            let (password, generated) = match env_password.filter(|p| !p.is_empty()) {
                Some(p) => (p.to_string(), None),
                None => {
                    let p = generate_password();
                    write_atomically(&self.dir, ROOT_PASSWORD_FILE, p.as_bytes()).map_err(|e| {
                        format!(
                            "cannot write {}: {e}",
                            self.dir.join(ROOT_PASSWORD_FILE).display()
                        )
                    })?;
                    (p.clone(), Some(p))
                }
            };
            users.insert(0, new_root(&password)?);
            Ok(generated)
        })
        .map_err(io::Error::other)
    }

    fn has_root(&self) -> Result<bool, String> {
        Ok(self.load()?.iter().any(|u| u.name == ROOT))
    }

    /// Checks a password. CPU-heavy by design (argon2, tens of milliseconds): the server
    /// calls it on the blocking pool. An unknown user is verified against a dummy hash,
    /// so it takes as long as a wrong password and user names cannot be probed by timing.
    pub fn authenticate(&self, name: &str, password: &str) -> Result<User, AuthError> {
        let credential = self.credential(name)?;
        credential.check(password)
    }

    /// What a password of `name` is checked against: the user and their hash, or, for
    /// an unknown name, the dummy hash (so both cost one argon2 verification). Cheap:
    /// it reads the users file, nothing more; [`Credential::check`] is the slow part.
    pub fn credential(&self, name: &str) -> Result<Credential, AuthError> {
        // Made before the lookup, so the first call costs the same whoever it names.
        let dummy = self
            .dummy_hash
            .get_or_init(|| hash_password(&generate_password()).unwrap_or_default());
        let users = self.load().map_err(AuthError::Store)?;
        Ok(match users.iter().find(|u| u.name == name) {
            Some(u) => Credential {
                user: Some(u.user()),
                hash: u.hash.clone(),
            },
            None => Credential {
                user: None,
                hash: dummy.clone(),
            },
        })
    }
}

/// A user's stored credential (or the dummy one of an unknown name), for one login.
#[derive(Debug, Clone)]
pub struct Credential {
    pub user: Option<User>,
    /// The PHC string: changes whenever the password does.
    pub hash: String,
}

impl Credential {
    /// Verifies a password (argon2: tens of milliseconds and ~19 MiB).
    pub fn check(&self, password: &str) -> Result<User, AuthError> {
        let good = verify(password, &self.hash);
        match &self.user {
            Some(u) if good => Ok(u.clone()),
            Some(_) => Err(AuthError::BadPassword),
            None => Err(AuthError::UnknownUser),
        }
    }
}

impl UserStore {
    /// Adds a user with one of [`ROLES`] and a new id. Refuses root, a bad name or role,
    /// an empty password and an existing name.
    pub fn add(&self, name: &str, role: &str, password: &str) -> Result<User, String> {
        check_new_user(name, role)?;
        check_password(password)?;
        // Hash outside the lock: it is the slow part.
        let hash = hash_password(password)?;
        self.modify(|users| {
            if users.iter().any(|u| u.name == name) {
                return Err(format!("user {name:?} already exists"));
            }
            let entry = Entry {
                name: name.to_string(),
                id: new_id(users),
                role: Some(role.to_string()),
                hash,
            };
            let user = entry.user();
            users.push(entry);
            Ok(user)
        })
    }

    /// Removes a user. Root cannot be removed (the server would have no superuser).
    /// Existing sessions of the user are the server's business; its next login fails.
    pub fn remove(&self, name: &str) -> Result<(), String> {
        if name == ROOT {
            return Err("root is the local superuser and cannot be removed".into());
        }
        self.modify(|users| {
            let before = users.len();
            users.retain(|u| u.name != name);
            if users.len() == before {
                Err(format!("no user {name:?}"))
            } else {
                Ok(())
            }
        })
    }

    /// Changes a user's password; the id and role stay. Works for root too, and creates
    /// root if the server has not started yet, so an operator can choose root's password
    /// before the first start.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), String> {
        check_password(password)?;
        let hash = hash_password(password)?;
        self.modify(|users| match users.iter_mut().find(|u| u.name == name) {
            Some(u) => {
                u.hash = hash;
                Ok(())
            }
            None if name == ROOT => {
                let id = new_id(users);
                users.insert(
                    0,
                    Entry {
                        name: ROOT.to_string(),
                        id,
                        role: None,
                        hash,
                    },
                );
                Ok(())
            }
            None => Err(format!("no user {name:?}")),
        })
    }

    /// All users, in file order (root first once it exists, then by time of `add`).
    pub fn list(&self) -> Result<Vec<User>, String> {
        Ok(self.load()?.iter().map(Entry::user).collect())
    }
}

/// [`UserStore::modify`] on a shared users file: read, change, compare-and-swap. A
/// concurrent change makes it fail (nothing written), for the caller to try again.
fn modify_remote<T>(
    store: &UserStore,
    remote: &dyn RemoteFile,
    f: impl FnOnce(&mut Vec<Entry>) -> Result<T, String>,
) -> Result<T, String> {
    let (before, version) = match remote.read()? {
        Some((bytes, v)) => (store.parse(&bytes)?, Some(v)),
        None => (Vec::new(), None),
    };
    let mut users = before.clone();
    let out = f(&mut users)?;
    if users == before || remote.replace(&UserStore::encode(users)?, version)? {
        Ok(out)
    } else {
        Err("the users changed meanwhile (another command or server); try again".into())
    }
}

fn new_root(password: &str) -> Result<Entry, String> {
    Ok(Entry {
        name: ROOT.to_string(),
        id: uuid::Uuid::new_v4().to_string(),
        role: None,
        hash: hash_password(password)?,
    })
}

/// A fresh UUID not used by any user (a collision is astronomically unlikely, but an id
/// is an identity, so make sure).
fn new_id(users: &[Entry]) -> String {
    loop {
        let id = uuid::Uuid::new_v4().to_string();
        if users.iter().all(|u| u.id != id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn store() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::open(dir.path()).unwrap();
        (dir, s)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn users_file(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join(USERS_FILE)
    }

    fn verifications() -> u32 {
        VERIFICATIONS.with(|v| v.get())
    }

    #[test]
    fn open_creates_the_data_dir_0700_and_no_file() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("a/b");
        let s = UserStore::open(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&top.path().join("a")), 0o700);
        assert!(!dir.join(USERS_FILE).exists());
        assert_eq!(s.list().unwrap(), vec![]);
        assert_eq!(s.authenticate("root", "x"), Err(AuthError::UnknownUser));
        // An existing directory keeps its mode.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        UserStore::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o750);
        // A data dir that is a file is an error, not a panic.
        let file = top.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(UserStore::open(&file).is_err());
    }

    #[test]
    fn root_bootstrap_with_env_password() {
        let (dir, s) = store();
        assert_eq!(s.ensure_root(Some("pw-\u{e9}t\u{e9}")).unwrap(), None);
        assert!(!dir.path().join(ROOT_PASSWORD_FILE).exists());
        let root = s.authenticate("root", "pw-\u{e9}t\u{e9}").unwrap();
        assert_eq!(root.role, None);
        assert!(uuid::Uuid::parse_str(&root.id).is_ok());
        assert_eq!(mode(&users_file(&dir)), 0o600);
        // Root exists: nothing changes, not even the file (checked after each call: an
        // inode can be reused by the write after next).
        let stamp = || {
            let m = fs::metadata(users_file(&dir)).unwrap();
            (m.ino(), m.mtime(), m.mtime_nsec())
        };
        let before = stamp();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(s.ensure_root(Some("other")).unwrap(), None);
        assert_eq!(stamp(), before);
        assert_eq!(s.ensure_root(None).unwrap(), None);
        assert_eq!(stamp(), before);
        assert!(s.authenticate("root", "pw-\u{e9}t\u{e9}").is_ok());
        assert_eq!(s.authenticate("root", "other"), Err(AuthError::BadPassword));
        assert!(!dir.path().join(ROOT_PASSWORD_FILE).exists());
    }

    #[test]
    fn root_bootstrap_with_generated_password() {
        for env in [None, Some("")] {
            let (dir, s) = store();
            let generated = s.ensure_root(env).unwrap().expect("a generated password");
            assert_eq!(generated.len(), GENERATED_PASSWORD_LEN);
            assert!(generated.chars().all(|c| c.is_ascii_alphanumeric()));
            let file = dir.path().join(ROOT_PASSWORD_FILE);
            assert_eq!(fs::read_to_string(&file).unwrap(), generated);
            assert_eq!(mode(&file), 0o600);
            assert!(
                !dir.path()
                    .join(format!("{ROOT_PASSWORD_FILE}.tmp"))
                    .exists()
            );
            assert_eq!(s.authenticate("root", &generated).unwrap().role, None);
            assert!(
                !fs::read_to_string(users_file(&dir))
                    .unwrap()
                    .contains(&generated)
            );
            // Second start: root exists, nothing generated, the file is left alone.
            assert_eq!(s.ensure_root(None).unwrap(), None);
            assert_eq!(fs::read_to_string(&file).unwrap(), generated);
        }
        // Two generated passwords differ.
        let (_d1, a) = store();
        let (_d2, b) = store();
        assert_ne!(a.ensure_root(None).unwrap(), b.ensure_root(None).unwrap());
    }

    #[test]
    fn authenticate_good_bad_unknown_and_equal_cost() {
        let (_dir, s) = store();
        s.ensure_root(Some("rootpw")).unwrap();
        let alice = s.add("alice", "read-only", "secret").unwrap();
        assert_eq!(s.authenticate("alice", "secret").unwrap(), alice);
        assert_eq!(
            s.authenticate("alice", "Secret"),
            Err(AuthError::BadPassword)
        );
        assert_eq!(s.authenticate("alice", ""), Err(AuthError::BadPassword));
        assert_eq!(
            s.authenticate("Alice", "secret"),
            Err(AuthError::UnknownUser)
        );
        assert_eq!(s.authenticate("bob", "secret"), Err(AuthError::UnknownUser));
        assert_eq!(
            s.authenticate("root", "secret"),
            Err(AuthError::BadPassword)
        );
        // An unknown user costs one argon2 verification, like a wrong password.
        let n = verifications();
        let _ = s.authenticate("alice", "wrong");
        let wrong = verifications() - n;
        let n = verifications();
        let _ = s.authenticate("nobody", "wrong");
        let unknown = verifications() - n;
        assert_eq!((wrong, unknown), (1, 1));
        // The dummy hash is a real argon2id hash (so verifying it costs a real hash).
        let dummy = s.dummy_hash.get().unwrap();
        assert!(dummy.starts_with("$argon2id$"), "{dummy}");
    }

    #[test]
    fn add_list_passwd_remove() {
        let (dir, s) = store();
        s.ensure_root(Some("rootpw")).unwrap();
        let alice = s.add("alice", "vm-operator", "a-pw").unwrap();
        assert_eq!(alice.role.as_deref(), Some("vm-operator"));
        assert!(uuid::Uuid::parse_str(&alice.id).is_ok());
        let bob = s.add("bob@example", "pool-admin", "b-pw").unwrap();
        assert_ne!(alice.id, bob.id);
        let listed = s.list().unwrap();
        let names: Vec<&str> = listed.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["root", "alice", "bob@example"]);
        assert_eq!(listed[1], alice);
        assert_eq!(listed[2], bob);

        // passwd: the new password works, the old one no longer, the id stays.
        s.set_password("alice", "a-pw-2").unwrap();
        assert_eq!(s.authenticate("alice", "a-pw"), Err(AuthError::BadPassword));
        assert_eq!(s.authenticate("alice", "a-pw-2").unwrap(), alice);
        assert_eq!(s.list().unwrap()[1], alice);
        assert!(
            s.set_password("carol", "x")
                .unwrap_err()
                .contains("no user")
        );
        assert!(s.set_password("alice", "").unwrap_err().contains("empty"));
        assert!(s.authenticate("alice", "a-pw-2").is_ok());

        s.remove("alice").unwrap();
        assert_eq!(
            s.authenticate("alice", "a-pw-2"),
            Err(AuthError::UnknownUser)
        );
        assert!(s.remove("alice").unwrap_err().contains("no user"));
        let names: Vec<String> = s.list().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["root", "bob@example"]);
        // Added again: a new identity.
        let again = s.add("alice", "vm-operator", "a-pw").unwrap();
        assert_ne!(again.id, alice.id);

        assert_eq!(mode(&users_file(&dir)), 0o600);
        assert!(!dir.path().join(format!("{USERS_FILE}.tmp")).exists());
        assert!(dir.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn duplicate_bad_names_bad_roles_and_empty_passwords_are_refused() {
        let (_dir, s) = store();
        s.add("alice", "read-only", "pw").unwrap();
        let err = s.add("alice", "pool-admin", "other").unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(s.list().unwrap()[0].role.as_deref(), Some("read-only"));
        assert!(s.authenticate("alice", "pw").is_ok());

        for bad in ["admin", "Pool-Admin", "pool_admin", "", "pool-admin "] {
            let err = s.add("bob", bad, "pw").unwrap_err();
            assert!(err.contains("unknown role"), "{err}");
            assert!(err.contains(&ROLES.join(", ")), "{err}");
        }
        for (i, role) in ROLES.iter().enumerate() {
            let u = s.add(&format!("u{i}"), role, "pw").unwrap();
            assert_eq!(u.role.as_deref(), Some(*role));
        }

        let long = "x".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "a b", "a\tb", "a\nb", "a\u{7f}", "-rf", long.as_str()] {
            assert!(s.add(bad, "read-only", "pw").is_err(), "{bad:?} accepted");
        }
        assert!(s.add(&"x".repeat(MAX_NAME_LEN), "read-only", "pw").is_ok());
        assert!(s.add("\u{e9}l\u{e8}ve", "read-only", "pw").is_ok());
        assert!(
            s.add("carol", "read-only", "")
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            s.list()
                .unwrap()
                .iter()
                .all(|u| u.name != "bob" && u.name != "carol")
        );
    }

    #[test]
    fn root_is_protected() {
        let (_dir, s) = store();
        s.ensure_root(Some("rootpw")).unwrap();
        let root = s.list().unwrap()[0].clone();
        for role in ROLES {
            let err = s.add("root", role, "pw").unwrap_err();
            assert!(err.contains("superuser"), "{err}");
        }
        assert!(s.remove("root").unwrap_err().contains("cannot be removed"));
        // passwd root works and keeps root's id and (absent) role.
        s.set_password("root", "new-root-pw").unwrap();
        assert_eq!(
            s.authenticate("root", "rootpw"),
            Err(AuthError::BadPassword)
        );
        assert_eq!(s.authenticate("root", "new-root-pw").unwrap(), root);
        assert_eq!(root.role, None);
    }

    #[test]
    fn passwd_root_before_first_start_creates_it() {
        let (dir, s) = store();
        s.set_password("root", "chosen").unwrap();
        let root = s.authenticate("root", "chosen").unwrap();
        assert_eq!(root.role, None);
        // The server's bootstrap then leaves it alone.
        assert_eq!(s.ensure_root(None).unwrap(), None);
        assert!(!dir.path().join(ROOT_PASSWORD_FILE).exists());
        assert_eq!(s.authenticate("root", "chosen").unwrap(), root);
    }

    #[test]
    fn a_second_store_sees_changes_at_once() {
        let (dir, a) = store();
        let b = UserStore::open(dir.path()).unwrap();
        assert_eq!(b.authenticate("dave", "d"), Err(AuthError::UnknownUser));
        a.ensure_root(Some("pw")).unwrap();
        assert!(b.authenticate("root", "pw").is_ok());
        let dave = a.add("dave", "pool-operator", "d").unwrap();
        assert_eq!(b.authenticate("dave", "d").unwrap(), dave);
        // Password changes of the same length, back to back, are seen each time.
        for pw in ["e1", "e2", "e3", "e4"] {
            a.set_password("dave", pw).unwrap();
            assert_eq!(b.authenticate("dave", pw).unwrap(), dave);
        }
        assert_eq!(b.authenticate("dave", "d"), Err(AuthError::BadPassword));
        // And the other way round.
        b.remove("dave").unwrap();
        assert_eq!(a.authenticate("dave", "e4"), Err(AuthError::UnknownUser));
        assert_eq!(a.list().unwrap().len(), 1);
    }

    #[test]
    fn concurrent_writers_do_not_lose_changes() {
        let (dir, s) = store();
        s.ensure_root(Some("pw")).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    // Each thread has its own store and lock file handle, as another
                    // process would.
                    let s = UserStore::open(&path).unwrap();
                    for j in 0..5 {
                        s.add(&format!("u{i}-{j}"), "read-only", "pw").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let users = s.list().unwrap();
        assert_eq!(users.len(), 1 + 8 * 5);
        for i in 0..8 {
            for j in 0..5 {
                assert!(users.iter().any(|u| u.name == format!("u{i}-{j}")));
            }
        }
    }

    #[test]
    fn a_damaged_file_is_an_error_and_is_left_alone() {
        let (dir, s) = store();
        s.ensure_root(Some("pw")).unwrap();
        let alice = s.add("alice", "read-only", "pw").unwrap();
        let good = fs::read_to_string(users_file(&dir)).unwrap();
        let root_hash = {
            let f: UsersFile = serde_json::from_str(&good).unwrap();
            f.users[0].hash.clone()
        };
        let entry = |name: &str, id: &str, role: Option<&str>, hash: &str| serde_json::json!({ "name": name, "id": id, "role": role, "hash": hash });
        let damaged: Vec<String> = vec![
            "{not json".into(),
            String::new(),
            "[]".into(),
            "\u{0}\u{ff}".into(),
            r#"{"users": [{"name": "x"}]}"#.into(),
            serde_json::json!({"version": 2, "users": []}).to_string(),
            serde_json::json!({"users": [
                entry("a", "1", Some("read-only"), &root_hash),
                entry("a", "2", Some("read-only"), &root_hash)]})
            .to_string(),
            serde_json::json!({"users": [
                entry("a", "1", Some("read-only"), &root_hash),
                entry("b", "1", Some("read-only"), &root_hash)]})
            .to_string(),
            serde_json::json!({"users": [entry("a", "1", Some("superuser"), &root_hash)]})
                .to_string(),
            serde_json::json!({"users": [entry("a", "1", None, &root_hash)]}).to_string(),
            serde_json::json!({"users": [entry("root", "1", Some("pool-admin"), &root_hash)]})
                .to_string(),
            serde_json::json!({"users": [entry("a b", "1", Some("read-only"), &root_hash)]})
                .to_string(),
            serde_json::json!({"users": [entry("a", "1", Some("read-only"), "plaintext")]})
                .to_string(),
        ];
        for content in damaged {
            fs::write(users_file(&dir), &content).unwrap();
            match s.authenticate("alice", "pw") {
                Err(AuthError::Store(msg)) => {
                    assert!(msg.contains("is damaged"), "{msg}");
                    assert!(msg.contains(USERS_FILE), "{msg}");
                    assert!(!msg.contains('\n'), "{msg}");
                }
                other => panic!("{content:?}: {other:?}"),
            }
            assert!(s.list().is_err());
            assert!(s.add("eve", "read-only", "e").is_err());
            assert!(s.remove("alice").is_err());
            assert!(s.set_password("alice", "x").is_err());
            assert!(s.ensure_root(Some("pw")).is_err());
            // Never overwritten: the operator can still repair it.
            assert_eq!(fs::read_to_string(users_file(&dir)).unwrap(), content);
        }
        // Repaired (and a file without "version" is read as version 1).
        let mut f: serde_json::Value = serde_json::from_str(&good).unwrap();
        f.as_object_mut().unwrap().remove("version");
        fs::write(users_file(&dir), f.to_string()).unwrap();
        assert_eq!(s.authenticate("alice", "pw").unwrap(), alice);
    }

    #[test]
    fn the_users_file_never_holds_a_clear_password() {
        let (dir, s) = store();
        s.ensure_root(Some("root-secret-1")).unwrap();
        s.add("alice", "read-only", "alice-secret-2").unwrap();
        s.set_password("alice", "alice-secret-3").unwrap();
        s.set_password("root", "root-secret-4").unwrap();
        let content = fs::read_to_string(users_file(&dir)).unwrap();
        for pw in [
            "root-secret-1",
            "alice-secret-2",
            "alice-secret-3",
            "root-secret-4",
        ] {
            assert!(!content.contains(pw), "{pw} in {content}");
        }
        let file: UsersFile = serde_json::from_str(&content).unwrap();
        assert_eq!(file.version, FORMAT_VERSION);
        assert!(file.users.iter().all(|u| u.hash.starts_with("$argon2id$")));
        // Nothing else in the directory holds them either.
        for e in fs::read_dir(dir.path()).unwrap() {
            let bytes = fs::read(e.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("secret"), "{text}");
        }
    }

    #[test]
    fn hashes_made_with_other_parameters_still_verify() {
        // Production hashes use argon2's defaults, tests cheap parameters: verification
        // must take the parameters from the stored PHC string, not from the hasher.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("pw", &phc));
        assert!(!verify("px", &phc));
        assert!(!verify("pw", "not a hash"));
    }
}
