//! `xapi-taskd serve`: opens the data directory, builds the service and runs the server.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::api::datamodel::{API_VERSION_MAJOR, API_VERSION_MINOR};
use crate::api::dispatch::Service;
use crate::api::gc::Retention;
use crate::db::{Db, HostRow, PoolRow, new_ref, new_uuid};
use crate::server::{self, Limits};
use crate::users::UserStore;

/// What `serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub limits: Limits,
    pub retention: Retention,
    /// Most pending/cancelling tasks at once (`--max-pending-tasks`).
    pub max_unfinished_tasks: usize,
}

/// The pool's and host's refs and uuids, kept in the data dir so that they stay the same
/// across restarts (clients cache them, e.g. Xen Orchestra's pool ref).
#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    pool_ref: String,
    pool_uuid: String,
    host_ref: String,
    host_uuid: String,
}

fn load_identity(data_dir: &Path) -> io::Result<Identity> {
    let path = data_dir.join("identity.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = Identity {
                pool_ref: new_ref(),
                pool_uuid: new_uuid(),
                host_ref: new_ref(),
                host_uuid: new_uuid(),
            };
            let tmp = data_dir.join("identity.json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&id)?)?;
            std::fs::rename(&tmp, &path)?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Opens the data dir: users (bootstrapping root) and the pool/host identity.
/// Returns the service and, on first start without `XAPI_TASKD_ROOT_PASSWORD`, the
/// generated root password (the caller prints it once).
pub fn open_service(
    data_dir: &Path,
    listen: SocketAddr,
    root_password: Option<&str>,
    max_unfinished_tasks: usize,
    retention: Retention,
) -> io::Result<(Arc<Service>, Option<String>)> {
    let users = UserStore::open(data_dir)?;
    let generated = users.ensure_root(root_password)?;
    let id = load_identity(data_dir)?;
    let name = hostname();
    let version = env!("CARGO_PKG_VERSION").to_string();
    let pool = PoolRow {
        uuid: id.pool_uuid,
        name_label: String::new(),
        name_description: String::new(),
        master: String::new(),
        other_config: Vec::new(),
    };
    let host = HostRow {
        uuid: id.host_uuid,
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
        address: listen.ip().to_string(),
    };
    let svc = Service {
        api: Api::build(),
        db: Db::new(id.pool_ref, pool, id.host_ref, host),
        users,
        max_unfinished_tasks,
        retention,
    };
    Ok((Arc::new(svc), generated))
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn serve(config: ServeConfig) -> io::Result<()> {
    let root_password = std::env::var("XAPI_TASKD_ROOT_PASSWORD").ok();
    let (svc, generated) = open_service(
        &config.data_dir,
        config.listen,
        root_password.as_deref(),
        config.max_unfinished_tasks,
        config.retention.clone(),
    )?;
    if let Some(pw) = generated {
        println!(
            "Generated a password for root: {pw}\n(also written to {}, mode 0600)",
            config.data_dir.join("root-password").display()
        );
    }
    let listener = server::bind(config.listen).await?;
    let local = listener.local_addr()?;
    tracing::info!("xapi-taskd listening on http://{local}");
    println!("xapi-taskd listening on http://{local}");
    let gc = tokio::spawn(crate::api::gc::run(svc.clone(), config.retention.clone()));
    server::run(listener, svc, config.limits, shutdown_signal()).await;
    gc.abort();
    tracing::info!("xapi-taskd stopped");
    Ok(())
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
