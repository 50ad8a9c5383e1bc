//! Cluster mode's glue (`serve --store etcd`, the `user` commands against a cluster): the
//! etcd backend under the service, and the users file kept in etcd.

use std::io;
use std::sync::Arc;

use crate::api::dispatch::Service;
use crate::config::{Settings, StoreChoice};
use crate::db::Db;
use crate::db::etcd::{Config, Etcd, Identity, KeyFile};
use crate::serve::{identity_of, service, singletons};
use crate::users::{RemoteFile, UserStore};

/// The users file in etcd, for the (blocking) user store: each call runs on the runtime
/// that owns the connection. Callers are blocking threads (logins hash passwords on
/// tokio's blocking pool) or a command's main thread, never a runtime worker.
struct EtcdUsersFile {
    file: KeyFile,
    rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for EtcdUsersFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the users file in etcd")
    }
}

impl RemoteFile for EtcdUsersFile {
    fn read(&self) -> Result<Option<(Vec<u8>, i64)>, String> {
        self.rt.block_on(self.file.read()).map_err(|e| e.0)
    }

    fn replace(&self, content: &[u8], expected: Option<i64>) -> Result<bool, String> {
        self.rt
            .block_on(self.file.replace(content, expected))
            .map_err(|e| e.0)
    }
}

pub(crate) fn etcd_config(settings_store: &StoreChoice) -> io::Result<Config> {
    match settings_store {
        StoreChoice::Etcd {
            endpoints,
            prefix,
            timeout,
            reads,
            fresh,
            access,
        } => {
            let mut config = Config::new(endpoints.clone(), prefix.clone());
            config.budget = *timeout;
            config.reads = *reads;
            config.fresh = *fresh;
            config.access = access.clone();
            // One member gets a share of the budget before the next is tried.
            config.request_timeout = config.request_timeout.min(*timeout / 3);
            Ok(config)
        }
        StoreChoice::Redb => Err(io::Error::other("not an etcd store")),
    }
}

/// A user store on the cluster's users file, for the `user` commands (`rt` runs the calls).
pub fn user_store(
    data_dir: &std::path::Path,
    store: &StoreChoice,
    rt: &tokio::runtime::Runtime,
) -> io::Result<UserStore> {
    let config = etcd_config(store)?;
    let file = rt
        .block_on(KeyFile::users(&config))
        .map_err(|e| io::Error::other(e.0))?;
    let remote = EtcdUsersFile {
        file,
        rt: rt.handle().clone(),
    };
    UserStore::with_remote(data_dir, Box::new(remote))
}

/// The service of a front-end: the etcd backend (its cache loaded, its loops running) and
/// the cluster's users (root created if this is the first front-end).
pub async fn open_service(
    settings: &Settings,
    root_password: Option<&str>,
) -> io::Result<(Arc<Service>, Option<String>)> {
    let config = etcd_config(&settings.store)?;
    let (pool_ref, pool_uuid, host_ref, host_uuid) = identity_of(&settings.data_dir)?;
    let (pool, host) = singletons(settings, pool_uuid, host_uuid);
    let identity = Identity {
        pool_ref,
        pool,
        host_ref,
        host,
    };
    let (tables, backend) = Etcd::open(&config, identity)
        .await
        .map_err(|e| io::Error::other(e.0))?;
    let remote = EtcdUsersFile {
        file: backend.users_file(),
        rt: tokio::runtime::Handle::current(),
    };
    let users = UserStore::with_remote(&settings.data_dir, Box::new(remote))?;
    let password = root_password.map(str::to_string);
    let (users, generated) = tokio::task::spawn_blocking(move || {
        // Two front-ends starting at once may both try to create root: the loser finds
        // it created.
        let first = users.ensure_root(password.as_deref());
        let generated = match first {
            Ok(g) => Ok(g),
            Err(_) => users.ensure_root(password.as_deref()),
        };
        (users, generated)
    })
    .await
    .map_err(io::Error::other)?;
    let generated = generated?;
    let db = Db::with_backend(tables, Box::new(backend));
    Ok((Arc::new(service(settings, db, users)), generated))
}
