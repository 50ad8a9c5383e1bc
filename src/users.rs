//! Local users: names, XAPI roles, stable ids and argon2id password hashes, kept in
//! `users.json` in the data directory.
//!
//! The server and the `xapi-taskd user` commands are different processes, so the store
//! re-reads the file when it changed (by modification time, length and inode) and every
//! read-modify-write by a command holds an advisory lock on `users.lock`. Writes are
//! atomic: a temporary file is written, synced and renamed over the old one, then the
//! directory is synced. Passwords are never stored or logged in clear.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// xapi's role names, in its order (decreasing privilege).
pub const ROLES: [&str; 7] = crate::api::datamodel::ROLE_NAMES;

/// The local superuser.
pub const ROOT: &str = "root";

/// A user as the rest of the server sees it (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Stable id, the session's `auth_user_sid`; never changes for the life of the user.
    pub id: String,
    /// None only for root, the local superuser.
    pub role: Option<String>,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    UnknownUser,
    BadPassword,
    /// The users file could not be read.
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    users: Vec<Entry>,
}

/// File identity used to notice changes made by another process.
type Stamp = (i64, i64, u64, u64);

/// The user store of one data directory.
pub struct UserStore {
    dir: PathBuf,
    cache: Mutex<Option<(Stamp, Vec<Entry>)>>,
    /// A hash of a random password, verified against when the user is unknown so that a
    /// probe for user names takes as long as a wrong password.
    dummy_hash: String,
}

fn hasher() -> Argon2<'static> {
    if cfg!(test) {
        // Cheap parameters keep unit tests fast; production uses argon2's defaults
        // (argon2id, 19 MiB, 2 passes).
        let params = argon2::Params::new(8, 1, 1, None).expect("valid argon2 params");
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
    } else {
        Argon2::default()
    }
}

fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random password of 24 characters from the OS CSPRNG.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err("a user name must have 1 to 128 characters".into());
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a user name cannot contain spaces or control characters".into());
    }
    Ok(())
}

fn check_role(role: &str) -> Result<(), String> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(format!(
            "unknown role {role:?}; roles are: {}",
            ROLES.join(", ")
        ))
    }
}

fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        Err("the password is empty".into())
    } else {
        Ok(())
    }
}

impl UserStore {
    /// Opens the store of `data_dir`, creating the directory (0700) if needed.
    pub fn open(data_dir: &Path) -> io::Result<UserStore> {
        fs::create_dir_all(data_dir)?;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))?;
        let dummy_hash = hash_password(&generate_password()).map_err(io::Error::other)?;
        Ok(UserStore {
            dir: data_dir.to_path_buf(),
            cache: Mutex::new(None),
            dummy_hash,
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("users.json")
    }

    /// The current entries, from the cache unless the file changed.
    fn entries(&self) -> Result<Vec<Entry>, String> {
        let path = self.path();
        let stamp = match fs::metadata(&path) {
            Ok(m) => (m.mtime(), m.mtime_nsec(), m.len(), m.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut cache = self.cache.lock();
        if let Some((s, entries)) = cache.as_ref()
            && *s == stamp
        {
            return Ok(entries.clone());
        }
        let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: UsersFile = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is damaged: {e}", path.display()))?;
        *cache = Some((stamp, file.users.clone()));
        Ok(file.users)
    }

    /// Replaces the file atomically (temp file, fsync, rename, fsync of the directory).
    fn save(&self, users: Vec<Entry>) -> Result<(), String> {
        let err = |e: io::Error| format!("cannot write the users file: {e}");
        let tmp = self.dir.join("users.json.tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        let body = serde_json::to_vec_pretty(&UsersFile { users }).map_err(|e| e.to_string())?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, self.path()).map_err(err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }

    /// Runs a read-modify-write under the advisory lock shared with other processes.
    fn modify<T>(&self, f: impl FnOnce(&mut Vec<Entry>) -> Result<T, String>) -> Result<T, String> {
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.dir.join("users.lock"))
            .map_err(|e| format!("cannot open the users lock: {e}"))?;
        lock.lock()
            .map_err(|e| format!("cannot lock the users file: {e}"))?;
        let mut users = self.entries()?;
        let out = f(&mut users)?;
        self.save(users)?;
        Ok(out)
    }

    /// Creates `root` if the store has no root yet. Its password is `env_password`, or a
    /// generated one that is written to `DIR/root-password` (0600) and returned so that
    /// the caller can print it once.
    pub fn ensure_root(&self, env_password: Option<&str>) -> io::Result<Option<String>> {
        let generated = self
            .modify(|users| {
                if users.iter().any(|u| u.name == ROOT) {
                    return Ok(None);
                }
                let (password, generated) = match env_password.filter(|p| !p.is_empty()) {
                    Some(p) => (p.to_string(), None),
                    None => {
                        let p = generate_password();
                        (p.clone(), Some(p))
                    }
                };
                users.insert(
                    0,
                    Entry {
                        name: ROOT.to_string(),
                        id: uuid::Uuid::new_v4().to_string(),
                        role: None,
                        hash: hash_password(&password)?,
                    },
                );
                Ok(generated)
            })
            .map_err(io::Error::other)?;
        if let Some(p) = &generated {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(self.dir.join("root-password"))?;
            writeln!(f, "{p}")?;
            f.sync_all()?;
        }
        Ok(generated)
    }

    /// Checks a password. CPU-heavy by design (argon2): call it off the async workers.
    pub fn authenticate(&self, name: &str, password: &str) -> Result<User, AuthError> {
        let users = self.entries().map_err(AuthError::Store)?;
        match users.into_iter().find(|u| u.name == name) {
            Some(u) if verify(password, &u.hash) => Ok(User {
                name: u.name,
                id: u.id,
                role: u.role,
            }),
            Some(_) => Err(AuthError::BadPassword),
            None => {
                let _ = verify(password, &self.dummy_hash);
                Err(AuthError::UnknownUser)
            }
        }
    }

    pub fn add(&self, name: &str, role: &str, password: &str) -> Result<User, String> {
        check_name(name)?;
        if name == ROOT {
            return Err("root is the local superuser and always exists".into());
        }
        check_role(role)?;
        check_password(password)?;
        let hash = hash_password(password)?;
        self.modify(|users| {
            if users.iter().any(|u| u.name == name) {
                return Err(format!("user {name:?} already exists"));
            }
            let entry = Entry {
                name: name.to_string(),
                id: uuid::Uuid::new_v4().to_string(),
                role: Some(role.to_string()),
                hash,
            };
            let user = User {
                name: entry.name.clone(),
                id: entry.id.clone(),
                role: entry.role.clone(),
            };
            users.push(entry);
            Ok(user)
        })
    }

    pub fn remove(&self, name: &str) -> Result<(), String> {
        if name == ROOT {
            return Err("root cannot be removed".into());
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

    pub fn set_password(&self, name: &str, password: &str) -> Result<(), String> {
        check_password(password)?;
        let hash = hash_password(password)?;
        self.modify(|users| match users.iter_mut().find(|u| u.name == name) {
            Some(u) => {
                u.hash = hash;
                Ok(())
            }
            None => Err(format!("no user {name:?}")),
        })
    }

    pub fn list(&self) -> Result<Vec<User>, String> {
        Ok(self
            .entries()?
            .into_iter()
            .map(|u| User {
                name: u.name,
                id: u.id,
                role: u.role,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn root_bootstrap_with_env_and_generated_passwords() {
        let (dir, s) = store();
        assert_eq!(s.ensure_root(Some("pw")).unwrap(), None);
        assert!(s.authenticate("root", "pw").is_ok());
        assert!(!dir.path().join("root-password").exists());
        // Existing root: nothing changes.
        assert_eq!(s.ensure_root(Some("other")).unwrap(), None);
        assert!(s.authenticate("root", "pw").is_ok());

        let (dir, s) = store();
        let generated = s.ensure_root(None).unwrap().expect("a generated password");
        assert_eq!(generated.len(), 24);
        let file = dir.path().join("root-password");
        assert_eq!(fs::read_to_string(&file).unwrap().trim(), generated);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let root = s.authenticate("root", &generated).unwrap();
        assert_eq!(root.role, None);
    }

    #[test]
    fn authenticate_add_remove_list_passwd() {
        let (dir, s) = store();
        s.ensure_root(Some("rootpw")).unwrap();
        let alice = s.add("alice", "read-only", "secret").unwrap();
        assert_eq!(s.authenticate("alice", "secret").unwrap(), alice);
        assert_eq!(s.authenticate("alice", "nope"), Err(AuthError::BadPassword));
        assert_eq!(s.authenticate("bob", "secret"), Err(AuthError::UnknownUser));
        assert!(
            s.add("alice", "read-only", "x")
                .unwrap_err()
                .contains("already exists")
        );
        assert!(
            s.add("bob", "admin", "x")
                .unwrap_err()
                .contains("pool-admin")
        );
        assert!(s.add("root", "pool-admin", "x").is_err());
        assert!(s.add("", "pool-admin", "x").is_err());
        assert!(s.add("carol", "pool-admin", "").is_err());
        s.set_password("alice", "new").unwrap();
        let again = s.authenticate("alice", "new").unwrap();
        assert_eq!(again.id, alice.id, "the id survives a password change");
        let names: Vec<String> = s.list().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, vec!["root", "alice"]);
        assert!(s.remove("root").is_err());
        s.remove("alice").unwrap();
        assert!(s.remove("alice").is_err());
        let content = fs::read_to_string(dir.path().join("users.json")).unwrap();
        assert!(!content.contains("rootpw") && !content.contains("secret"));
        assert_eq!(
            fs::metadata(dir.path().join("users.json"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    #[test]
    fn a_second_store_sees_changes_and_damage_is_an_error() {
        let (dir, a) = store();
        let b = UserStore::open(dir.path()).unwrap();
        a.ensure_root(Some("pw")).unwrap();
        assert!(b.authenticate("root", "pw").is_ok());
        a.add("dave", "pool-operator", "d").unwrap();
        assert_eq!(
            b.authenticate("dave", "d").unwrap().role.as_deref(),
            Some("pool-operator")
        );
        fs::write(dir.path().join("users.json"), b"{not json").unwrap();
        assert!(matches!(
            b.authenticate("dave", "d"),
            Err(AuthError::Store(_))
        ));
        assert!(a.add("eve", "read-only", "e").is_err());
    }
}
