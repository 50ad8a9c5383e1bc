//! `xapi-taskd serve`: opens the data directory, builds the service and runs the server.

use std::io;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::api::datamodel::{API_VERSION_MAJOR, API_VERSION_MINOR};
use crate::api::dispatch::Service;
use crate::config::{Settings, StoreChoice};
use crate::db::store::{Problem, Store};
use crate::db::{Db, HostRow, PoolRow, new_ref, new_uuid};
use crate::server;
use crate::users::UserStore;

/// The pool's and host's refs and uuids, kept in the data dir so that they stay the same
/// across restarts (clients cache them, e.g. Xen Orchestra's pool ref).
#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    pool_ref: String,
    pool_uuid: String,
    host_ref: String,
    host_uuid: String,
    /// Whether this data directory has had a durable store. From then on, a store that is
    /// missing or empty was lost, and the server refuses to start on it (unless
    /// `--allow-empty-store`). Files written before this field existed say nothing; the
    /// servers that wrote them kept a store unless run `--ephemeral`, so the safe reading
    /// is yes.
    #[serde(default = "yes")]
    store: bool,
}

fn yes() -> bool {
    true
}

const IDENTITY_FILE: &str = "identity.json";

impl Identity {
    fn new() -> Identity {
        Identity {
            pool_ref: new_ref(),
            pool_uuid: new_uuid(),
            host_ref: new_ref(),
            host_uuid: new_uuid(),
            store: false,
        }
    }
}

/// The data directory's identity, if it has one yet.
fn read_identity(data_dir: &Path) -> io::Result<Option<Identity>> {
    let path = data_dir.join(IDENTITY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_identity(data_dir: &Path, id: &Identity) -> io::Result<()> {
    crate::users::write_atomically(data_dir, IDENTITY_FILE, &serde_json::to_vec_pretty(id)?)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The pool and host rows this server presents (uuids from its identity).
pub(crate) fn singletons(
    settings: &Settings,
    pool_uuid: String,
    host_uuid: String,
) -> (PoolRow, HostRow) {
    let name = hostname();
    let version = env!("CARGO_PKG_VERSION").to_string();
    let pool = PoolRow {
        uuid: pool_uuid,
        name_label: String::new(),
        name_description: String::new(),
        master: String::new(),
        other_config: Vec::new(),
    };
    let host = HostRow {
        uuid: host_uuid,
        name_label: name.clone(),
        name_description: "xapi-taskd".to_string(),
        api_version_major: API_VERSION_MAJOR,
        api_version_minor: API_VERSION_MINOR,
        api_version_vendor: "xapi-taskd".to_string(),
        api_version_vendor_implementation: Vec::new(),
        enabled: true,
        software_version: vec![
            ("product_brand".to_string(), "xapi-taskd".to_string()),
            ("product_version".to_string(), version.clone()),
            (
                "xapi".to_string(),
                format!("{API_VERSION_MAJOR}.{API_VERSION_MINOR}"),
            ),
            ("xapi-taskd".to_string(), version),
        ],
        other_config: Vec::new(),
        hostname: name,
        address: settings.listen.ip().to_string(),
    };
    (pool, host)
}

/// The service over a database and a user store, with the settings' limits.
pub(crate) fn service(settings: &Settings, db: Db, users: UserStore) -> Service {
    db.configure(
        &settings.task_limits,
        settings.api_limits.max_event_queue_bytes,
    );
    Service {
        api: Api::build(),
        db,
        users,
        max_unfinished_tasks: settings.max_unfinished_tasks,
        max_sessions_per_user: settings.max_sessions_per_user,
        retention: settings.retention.clone(),
        limits: settings.api_limits.clone(),
        login_guard: crate::api::login_guard::LoginGuard::new(
            settings.api_limits.max_concurrent_logins,
            settings.api_limits.login_free_failures,
        ),
        event_batches: Default::default(),
        event_deadlines: Default::default(),
    }
}

/// For unit tests: an ephemeral service in a new temporary data dir (kept alive by the
/// returned guard), root's password `pw`. Call it inside a runtime.
#[cfg(test)]
pub(crate) fn ephemeral_service() -> (tempfile::TempDir, Arc<Service>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::defaults(dir.path().to_path_buf());
    settings.ephemeral = true;
    let (svc, _) = open_service(&settings, Some("pw")).expect("service");
    (dir, svc)
}

/// Opens the data dir: users (bootstrapping root), the pool/host identity and, unless
/// ephemeral, the store (loading every task and session it holds).
/// Returns the service and, on first start without `XAPI_TASKD_ROOT_PASSWORD`, the
/// generated root password (the caller prints it once).
pub fn open_service(
    settings: &Settings,
    root_password: Option<&str>,
) -> io::Result<(Arc<Service>, Option<String>)> {
    let data_dir = settings.data_dir.as_path();
    std::fs::create_dir_all(data_dir)?;
    let users = UserStore::open(data_dir)?;
    let generated = users.ensure_root(root_password)?;
    let known = read_identity(data_dir)?;
    let mut rewrite_identity = known.is_none();
    let had_store = known.as_ref().is_some_and(|id| id.store);
    let mut id = known.unwrap_or_else(Identity::new);
    let (pool, host) = singletons(settings, id.pool_uuid.clone(), id.host_uuid.clone());
    let (pool_ref, host_ref) = (id.pool_ref.clone(), id.host_ref.clone());
    let db = if settings.ephemeral {
        Db::new(pool_ref, pool, host_ref, host)
    } else {
        // A new store only where none was kept before, or where the operator says so.
        let allow_new = !had_store || settings.allow_empty_store;
        if had_store && settings.allow_empty_store {
            tracing::warn!(
                "allow-empty-store is set: a missing or empty store is not refused; \
                 remove the option once this start is done"
            );
        }
        let opened = Store::open(data_dir, allow_new).map_err(|e| match e.problem {
            Problem::Missing => io::Error::other(format!(
                "{}, but identity.json shows that this data directory has had a store: its \
                 tasks and sessions would be lost. Put the store back (`xapi-taskd store \
                 restore FILE`), or start once with --allow-empty-store to begin again with \
                 an empty store.",
                e.message
            )),
            _ => io::Error::other(e.message),
        })?;
        let loaded = &opened.1;
        tracing::info!(
            "store: {} tasks, {} sessions, generation {}",
            loaded.tasks.len(),
            loaded.sessions.len(),
            loaded.generation
        );
        // Recorded once the store exists, so that a crash in between leaves a directory
        // that still starts.
        if !id.store {
            id.store = true;
            rewrite_identity = true;
        }
        Db::restore(
            pool_ref,
            pool,
            host_ref,
            host,
            opened,
            settings.durable_timeout,
        )
    };
    if rewrite_identity {
        write_identity(data_dir, &id)?;
    }
    Ok((Arc::new(service(settings, db, users)), generated))
}

/// The pool's and host's refs and uuids this data directory would give a new cluster
/// (pool ref, pool uuid, host ref, host uuid).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(crate) fn identity_of(data_dir: &Path) -> io::Result<(String, String, String, String)> {
    std::fs::create_dir_all(data_dir)?;
    let id = match read_identity(data_dir)? {
        Some(id) => id,
        None => {
            let id = Identity::new();
            write_identity(data_dir, &id)?;
            id
        }
    };
    Ok((id.pool_ref, id.pool_uuid, id.host_ref, id.host_uuid))
}

/// [`open_service`], or the cluster's when the store is etcd.
pub async fn open_any_service(
    settings: &Settings,
    root_password: Option<&str>,
) -> io::Result<(Arc<Service>, Option<String>)> {
    match &settings.store {
        StoreChoice::Redb => open_service(settings, root_password),
        #[cfg(feature = "etcd")]
        StoreChoice::Etcd { .. } => crate::cluster::open_service(settings, root_password).await,
        #[cfg(not(feature = "etcd"))]
        StoreChoice::Etcd { .. } => Err(io::Error::other(
            "this build has no etcd support: build it with `cargo build --features etcd`",
        )),
    }
}

/// Runs the server until Ctrl-C or SIGTERM, then shuts down cleanly: stop accepting,
/// answer event waiters, let in-flight calls finish, commit the last changes.
pub async fn serve(settings: Settings) -> io::Result<()> {
    let root_password = std::env::var("XAPI_TASKD_ROOT_PASSWORD").ok();
    let (svc, generated) = open_any_service(&settings, root_password.as_deref()).await?;
    if let Some(pw) = generated {
        println!(
            "Generated a password for root: {pw}\n(also written to {}, mode 0600)",
            settings.data_dir.join("root-password").display()
        );
    }
    // The certificate (generated on first start, which takes a moment) is ready before
    // any socket is bound, so that a client that finds the server accepting finds every
    // listener ready.
    let acceptor = match settings.tls_listen {
        Some(_) => Some(crate::tls::acceptor(
            &settings.data_dir,
            &certificate_names(&settings),
        )?),
        None => None,
    };
    let mut listeners = Vec::new();
    let tcp = server::bind(settings.listen).await?;
    let local = tcp.local_addr()?;
    tracing::info!("xapi-taskd listening on http://{local}");
    println!("xapi-taskd listening on http://{local}");
    listeners.push(server::Listener { tcp, tls: None });
    if let (Some(addr), Some(acceptor)) = (settings.tls_listen, acceptor) {
        let tcp = server::bind(addr).await?;
        let local = tcp.local_addr()?;
        tracing::info!("xapi-taskd listening on https://{local}");
        println!("xapi-taskd listening on https://{local}");
        listeners.push(server::Listener {
            tcp,
            tls: Some(acceptor),
        });
    }
    if settings.store != StoreChoice::Redb {
        println!("{}", svc.db.describe());
    } else if svc.db.is_durable() {
        println!(
            "store: {}",
            settings
                .data_dir
                .join(crate::db::store::STORE_FILE)
                .display()
        );
    } else {
        println!("ephemeral: nothing is kept across a restart");
    }
    let gc = tokio::spawn(crate::api::gc::run(svc.clone(), settings.retention.clone()));
    server::run(
        listeners,
        svc.clone(),
        settings.limits.clone(),
        shutdown_signal(),
    )
    .await;
    gc.abort();
    let _ = gc.await;
    // Everything acknowledged is already durable; this commits what GC and finished
    // Async tasks changed since.
    svc.db.close();
    tracing::info!("xapi-taskd stopped");
    Ok(())
}

/// Names a generated certificate is valid for: the host name, `localhost` and the
/// addresses the server listens on.
fn certificate_names(settings: &Settings) -> Vec<String> {
    let mut names = vec![hostname(), "localhost".to_string(), "127.0.0.1".to_string()];
    for addr in [Some(settings.listen), settings.tls_listen]
        .into_iter()
        .flatten()
    {
        let ip = addr.ip();
        if !ip.is_unspecified() {
            names.push(ip.to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
