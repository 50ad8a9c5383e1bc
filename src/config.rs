//! `serve`'s settings: one table of options that is both the command line (`--name`) and
//! the configuration file (`name = value`, TOML), so the two can never drift apart.
//!
//! Precedence: a flag beats the file, the file beats the built-in default. The file is
//! `--config <path>`, or `xapi-taskd.toml` in the data directory when it exists. Unknown
//! keys are refused, so a typo does not silently leave a default in place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::api::gc::Retention;
use crate::db::backend::ReadMode;
use crate::server::Limits;

/// The configuration file's name in the data directory.
pub const CONFIG_FILE: &str = "xapi-taskd.toml";

/// Every `serve` option. All are optional here; [`Options::resolve`] applies defaults.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Options {
    /// Address and port for HTTP [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Address and port for HTTPS (off unless given); the certificate is xapi-ssl.pem in
    /// the data directory, generated self-signed on first start.
    #[arg(long)]
    pub tls_listen: Option<SocketAddr>,
    /// Keep everything in memory only, as xapi does: a restart loses all tasks and
    /// sessions [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub ephemeral: Option<bool>,
    /// Largest request body accepted, in bytes (xapi: 300 KiB) [default: 307200].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Connections served at once; more get 503 [default: 1024].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Connections one client address (IPv6: its /64) may hold of those; more get 503,
    /// so one client cannot take them all [default: a quarter of max-connections, at
    /// least 16: 256].
    #[arg(long)]
    pub max_connections_per_address: Option<usize>,
    /// Seconds a client has to send a request's head; also how long an idle keep-alive
    /// connection is kept [default: 30].
    #[arg(long)]
    pub header_timeout: Option<f64>,
    /// Seconds a client has to send a request's body [default: 30].
    #[arg(long)]
    pub body_timeout: Option<f64>,
    /// Most pending or cancelling tasks at once; more are TOO_MANY_PENDING_TASKS
    /// [default: 100000].
    #[arg(long)]
    pub max_pending_tasks: Option<usize>,
    /// Sessions one user may hold; logging in beyond it logs out that user's least
    /// recently active session that owns no unfinished task (xapi's per-user cap,
    /// `db_gc_util.ml`) [default: 500].
    #[arg(long)]
    pub max_sessions_per_user: Option<usize>,
    /// Seconds a completed task is kept after it finished (xapi: 3900) [default: 3900].
    #[arg(long)]
    pub completed_task_timeout: Option<i64>,
    /// Seconds after which a pending task whose progress stalls is removed (xapi: 86400)
    /// [default: 86400].
    #[arg(long)]
    pub pending_task_timeout: Option<i64>,
    /// Completed tasks kept at most, pending ones counting against it (xapi: 200)
    /// [default: 200].
    #[arg(long)]
    pub max_tasks: Option<usize>,
    /// Seconds an idle session without unfinished tasks is kept (xapi: 86400)
    /// [default: 86400].
    #[arg(long)]
    pub session_timeout: Option<i64>,
    /// Seconds between garbage-collection passes (xapi: 30) [default: 30].
    #[arg(long)]
    pub gc_interval: Option<f64>,
    /// Where tasks, sessions and users are kept: `redb` (this data directory, one
    /// server) or `etcd` (an etcd v3 cluster shared by any number of front-ends; needs a
    /// build with the `etcd` feature) [default: redb].
    #[arg(long)]
    pub store: Option<String>,
    /// The etcd cluster's members, as URLs (`--etcd-endpoints URL,URL,…`; in the file, a
    /// list of strings). Required with `store = "etcd"`.
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Option<Vec<String>>,
    /// Prefix of every key in etcd, so that several deployments can share one cluster
    /// [default: /xapi-taskd/].
    #[arg(long)]
    pub etcd_prefix: Option<String>,
    /// Seconds a call keeps trying to reach the etcd cluster (members failing over, an
    /// election) before it is answered INTERNAL_ERROR [default: 15].
    #[arg(long)]
    pub etcd_timeout: Option<f64>,
    /// When a read call first makes sure this front-end has everything acknowledged
    /// anywhere (one etcd round trip, shared by concurrent calls). `connection`: the
    /// first read call on each client connection does; later ones on it read this
    /// front-end's cache while it is fresh (see etcd-fresh). A client that moves to
    /// another front-end (a new connection) reads its writes there; NOT given: a client
    /// with two connections open at once to two front-ends (or an HTTP proxy sharing
    /// upstream connections between clients) can read, on the older connection, a state
    /// older than a write just acknowledged on the other: by the watch's lag (a few
    /// ms) normally, by at most etcd-fresh if the watch stalls.
    /// `linearizable`: every read call does (read-your-writes across connections too).
    /// `cached`: none while the watch is up (stale by the watch's lag, no
    /// read-your-writes across front-ends) [default: connection].
    #[arg(long)]
    pub etcd_reads: Option<String>,
    /// Seconds the cache counts as current after a round trip proved it
    /// (etcd-reads = "connection"; a background probe runs one every half of it). Past
    /// it (a front-end cut off from etcd, even with its watch stream still looking
    /// open) every read syncs first, and fails with a clear error until etcd answers
    /// again: so a cut-off front-end serves what it has for at most this long. 1 s:
    /// two probes a second per front-end cost etcd nothing, and it is above etcd's own
    /// election timeout's scale of stalls, so a leader change does not make healthy
    /// front-ends' reads wait [default: 1].
    #[arg(long)]
    pub etcd_fresh: Option<f64>,
    /// The etcd user this front-end authenticates as (etcd's `auth enable`); its role
    /// needs readwrite on etcd-prefix. Needs etcd-password-file.
    #[arg(long)]
    pub etcd_user: Option<String>,
    /// File whose first line is etcd-user's password (not a flag's value, which `ps`
    /// shows); read at start and at every re-authentication.
    #[arg(long)]
    pub etcd_password_file: Option<PathBuf>,
    /// CA certificate(s), PEM, that the etcd members' certificates must chain to; the
    /// endpoints are then https:// URLs.
    #[arg(long)]
    pub etcd_ca_file: Option<PathBuf>,
    /// This front-end's client certificate, PEM, for etcd's --client-cert-auth (with
    /// etcd-key-file).
    #[arg(long)]
    pub etcd_cert_file: Option<PathBuf>,
    /// The private key of etcd-cert-file, PEM.
    #[arg(long)]
    pub etcd_key_file: Option<PathBuf>,
    /// Start with a new, empty store even though identity.json shows that this data
    /// directory had one (which is then missing, empty or never initialised). For once,
    /// after deciding to give up the lost store [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub allow_empty_store: Option<bool>,
    /// Seconds a call waits for its change to become durable before it is answered
    /// INTERNAL_ERROR (the change stays in memory and its commit is retried) [default: 30].
    #[arg(long)]
    pub durable_timeout: Option<f64>,
    // ----- hardening: per-user quotas and bounds on shared resources (security.md) -----
    /// Unfinished tasks one user may have; more are TOO_MANY_PENDING_TASKS
    /// [default: 10000].
    #[arg(long)]
    pub max_pending_tasks_per_user: Option<usize>,
    /// Bytes one client-set task field may hold (a map or list: all its entries);
    /// more is VALUE_NOT_SUPPORTED [default: 65536].
    #[arg(long)]
    pub max_task_field_bytes: Option<usize>,
    /// Bytes the client-set fields of one task may hold together [default: 131072].
    #[arg(long)]
    pub max_task_bytes: Option<usize>,
    /// Bytes the tasks of one user may hold together, 1 KiB a row included
    /// [default: 67108864].
    #[arg(long)]
    pub max_task_bytes_per_user: Option<usize>,
    /// Entries one session's legacy event.register list may hold (after removing
    /// duplicates) [default: 256].
    #[arg(long)]
    pub max_event_subscriptions: Option<usize>,
    /// Bytes of row snapshots the legacy event.next queue keeps (xapi: 10 MB)
    /// [default: 10485760].
    #[arg(long)]
    pub max_event_queue_bytes: Option<usize>,
    /// Longest *_where filter expression, in bytes [default: 32768].
    #[arg(long)]
    pub max_filter_bytes: Option<usize>,
    /// Most terms (comparisons, and/or/not, true/false) in a *_where filter
    /// [default: 2048].
    #[arg(long)]
    pub max_filter_nodes: Option<usize>,
    /// Password checks (argon2, ~19 MiB each) run at once; others wait up to 10 s
    /// [default: 4].
    #[arg(long)]
    pub max_concurrent_logins: Option<usize>,
    /// Failed logins per user and per client address answered without delay; each
    /// further one is answered after twice the previous delay (0.1 s up to 5 s)
    /// [default: 5].
    #[arg(long)]
    pub login_free_failures: Option<u32>,
    /// Largest request head (request line and headers), in bytes; more gets HTTP 431
    /// [default: 65536].
    #[arg(long)]
    pub max_header_bytes: Option<usize>,
}

/// Where the data is kept.
// Built once at start-up and read once: the etcd variant's size costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// `store.redb` in the data directory (or memory only, with `--ephemeral`).
    Redb,
    /// An etcd cluster shared by the front-ends.
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
        /// How long a call keeps trying to reach the cluster.
        timeout: Duration,
        /// When reads sync first.
        reads: ReadMode,
        /// How long a sync keeps the cache current (`ReadMode::Connection`).
        fresh: Duration,
        /// Who the front-end is to etcd, and how it checks the members.
        access: EtcdAccess,
    },
}

/// How a front-end authenticates to etcd and protects its connections (every field
/// optional: none is a plain, unauthenticated connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdAccess {
    pub user: Option<String>,
    /// The password is this file's first line (read when used, never kept in settings).
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdAccess {
    /// Checks that the options go together and agree with the endpoints' schemes.
    fn check(&self, endpoints: &[String]) -> Result<(), String> {
        if self.user.is_some() != self.password_file.is_some() {
            return Err("etcd-user and etcd-password-file go together".into());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("etcd-cert-file and etcd-key-file go together".into());
        }
        if self.cert_file.is_some() && self.ca_file.is_none() {
            return Err("etcd-cert-file needs etcd-ca-file (TLS to the members)".into());
        }
        for e in endpoints {
            let https = e.starts_with("https://");
            if self.ca_file.is_some() && !https {
                return Err(format!(
                    "etcd endpoint {e}: etcd-ca-file is set, so the endpoint must be an \
                     https:// URL"
                ));
            }
            if https && self.ca_file.is_none() {
                return Err(format!(
                    "etcd endpoint {e}: an https:// endpoint needs etcd-ca-file (the CA \
                     that signed the members' certificates)"
                ));
            }
        }
        Ok(())
    }
}

impl Options {
    /// The settings of a command other than `serve` (`user …`, `cluster status`): these
    /// options over the data directory's `xapi-taskd.toml` and the defaults. They take
    /// the same options as `serve` so that one file or one set of flags points all of
    /// them at the same store; only the store's matter to them.
    pub fn settings(self, data_dir: &Path) -> Result<Settings, String> {
        load(data_dir.to_path_buf(), None, self)
    }
}

/// Settings of a running server, every value decided.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub tls_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub ephemeral: bool,
    pub limits: Limits,
    pub retention: Retention,
    /// Most pending/cancelling tasks at once.
    pub max_unfinished_tasks: usize,
    pub max_sessions_per_user: usize,
    pub store: StoreChoice,
    /// Create a new store even where identity.json says there was one.
    pub allow_empty_store: bool,
    /// Longest a call waits for its change to be durable.
    pub durable_timeout: Duration,
    /// Per-task and per-user task limits.
    pub task_limits: crate::db::quota::TaskLimits,
    /// Filter, event and login bounds.
    pub api_limits: crate::api::limits::ApiLimits,
}

fn seconds(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{name} must be a positive number of seconds, not {v}"))
}

impl Options {
    /// `self` with every option `over` sets replaced by its value.
    pub fn overlay(self, over: Options) -> Options {
        macro_rules! pick {
            ($($f:ident),*) => { Options { $($f: over.$f.or(self.$f)),* } };
        }
        pick!(
            listen,
            tls_listen,
            ephemeral,
            max_body_bytes,
            max_connections,
            max_connections_per_address,
            header_timeout,
            body_timeout,
            max_pending_tasks,
            max_sessions_per_user,
            completed_task_timeout,
            pending_task_timeout,
            max_tasks,
            session_timeout,
            gc_interval,
            store,
            etcd_endpoints,
            etcd_prefix,
            etcd_timeout,
            etcd_reads,
            etcd_fresh,
            etcd_user,
            etcd_password_file,
            etcd_ca_file,
            etcd_cert_file,
            etcd_key_file,
            allow_empty_store,
            durable_timeout,
            max_pending_tasks_per_user,
            max_task_field_bytes,
            max_task_bytes,
            max_task_bytes_per_user,
            max_event_subscriptions,
            max_event_queue_bytes,
            max_filter_bytes,
            max_filter_nodes,
            max_concurrent_logins,
            login_free_failures,
            max_header_bytes
        )
    }

    /// Reads a configuration file.
    pub fn from_file(path: &Path) -> Result<Options, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Settings from these options and the built-in defaults.
    pub fn resolve(self, data_dir: PathBuf) -> Result<Settings, String> {
        let limits_default = Limits::default();
        let retention_default = Retention::default();
        let limits = Limits {
            max_body_bytes: self.max_body_bytes.unwrap_or(limits_default.max_body_bytes),
            max_connections: self
                .max_connections
                .unwrap_or(limits_default.max_connections)
                .max(1),
            max_connections_per_address: self
                .max_connections_per_address
                .unwrap_or_else(|| {
                    let all = self
                        .max_connections
                        .unwrap_or(limits_default.max_connections);
                    (all / 4).max(all.min(16))
                })
                .max(1),
            header_timeout: match self.header_timeout {
                Some(v) => seconds("header-timeout", v)?,
                None => limits_default.header_timeout,
            },
            body_timeout: match self.body_timeout {
                Some(v) => seconds("body-timeout", v)?,
                None => limits_default.body_timeout,
            },
            // hyper refuses read buffers under 8 KiB.
            max_header_bytes: self
                .max_header_bytes
                .unwrap_or(limits_default.max_header_bytes)
                .max(8192),
        };
        let task_default = crate::db::quota::TaskLimits::default();
        let task_limits = crate::db::quota::TaskLimits {
            field_bytes: self
                .max_task_field_bytes
                .unwrap_or(task_default.field_bytes),
            task_bytes: self.max_task_bytes.unwrap_or(task_default.task_bytes),
            user_bytes: self
                .max_task_bytes_per_user
                .unwrap_or(task_default.user_bytes),
            user_unfinished: self
                .max_pending_tasks_per_user
                .unwrap_or(task_default.user_unfinished),
        };
        let api_default = crate::api::limits::ApiLimits::default();
        let api_limits = crate::api::limits::ApiLimits {
            max_event_subscriptions: self
                .max_event_subscriptions
                .unwrap_or(api_default.max_event_subscriptions)
                .max(1),
            max_event_queue_bytes: self
                .max_event_queue_bytes
                .unwrap_or(api_default.max_event_queue_bytes),
            max_filter_bytes: self
                .max_filter_bytes
                .unwrap_or(api_default.max_filter_bytes),
            max_filter_nodes: self
                .max_filter_nodes
                .unwrap_or(api_default.max_filter_nodes)
                .max(1),
            max_concurrent_logins: self
                .max_concurrent_logins
                .unwrap_or(api_default.max_concurrent_logins)
                .max(1),
            login_free_failures: self
                .login_free_failures
                .unwrap_or(api_default.login_free_failures),
        };
        let retention = Retention {
            completed_task_timeout: self
                .completed_task_timeout
                .unwrap_or(retention_default.completed_task_timeout),
            pending_task_timeout: self
                .pending_task_timeout
                .unwrap_or(retention_default.pending_task_timeout),
            max_tasks: self.max_tasks.unwrap_or(retention_default.max_tasks),
            session_timeout: self
                .session_timeout
                .unwrap_or(retention_default.session_timeout),
            interval: match self.gc_interval {
                Some(v) => seconds("gc-interval", v)?.max(Duration::from_millis(10)),
                None => retention_default.interval,
            },
        };
        let ephemeral = self.ephemeral.unwrap_or(false);
        let store = match self.store.as_deref().unwrap_or("redb") {
            "redb" => StoreChoice::Redb,
            "etcd" => {
                let endpoints: Vec<String> = self
                    .etcd_endpoints
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| e.trim().to_string())
                    .filter(|e| !e.is_empty())
                    .collect();
                if endpoints.is_empty() {
                    return Err("store = \"etcd\" needs etcd-endpoints".to_string());
                }
                if ephemeral {
                    return Err("ephemeral and store = \"etcd\" exclude each other".to_string());
                }
                let access = EtcdAccess {
                    user: self.etcd_user,
                    password_file: self.etcd_password_file,
                    ca_file: self.etcd_ca_file,
                    cert_file: self.etcd_cert_file,
                    key_file: self.etcd_key_file,
                };
                access.check(&endpoints)?;
                StoreChoice::Etcd {
                    endpoints,
                    prefix: self
                        .etcd_prefix
                        .unwrap_or_else(|| "/xapi-taskd/".to_string()),
                    timeout: match self.etcd_timeout {
                        Some(v) => seconds("etcd-timeout", v)?,
                        None => Duration::from_secs(15),
                    },
                    reads: match self.etcd_reads.as_deref() {
                        None | Some("connection") => ReadMode::Connection,
                        Some("linearizable") => ReadMode::Linearizable,
                        Some("cached") => ReadMode::Cached,
                        Some(other) => {
                            return Err(format!(
                                "etcd-reads must be \"connection\", \"linearizable\" or \"cached\", \
                                 not {other:?}"
                            ));
                        }
                    },
                    fresh: match self.etcd_fresh {
                        // Bounded: below 10 ms the prober would send barriers back to
                        // back; above an hour a cut-off front-end serves stale reads
                        // for longer than any operator means.
                        Some(v) if !(0.01..=3600.0).contains(&v) => {
                            return Err(format!(
                                "etcd-fresh must be between 0.01 and 3600 seconds, not {v}"
                            ));
                        }
                        Some(v) => seconds("etcd-fresh", v)?,
                        None => Duration::from_secs(1),
                    },
                    access,
                }
            }
            other => return Err(format!("store must be \"redb\" or \"etcd\", not {other:?}")),
        };
        Ok(Settings {
            listen: self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            tls_listen: self.tls_listen,
            data_dir,
            ephemeral,
            limits,
            retention,
            max_unfinished_tasks: self.max_pending_tasks.unwrap_or(100_000),
            max_sessions_per_user: self.max_sessions_per_user.unwrap_or(500).max(1),
            store,
            allow_empty_store: self.allow_empty_store.unwrap_or(false),
            durable_timeout: match self.durable_timeout {
                Some(v) => seconds("durable-timeout", v)?,
                None => crate::db::journal::DURABLE_TIMEOUT,
            },
            task_limits,
            api_limits,
        })
    }
}

impl Settings {
    /// The defaults, for a data directory (used by tests and embedders).
    pub fn defaults(data_dir: PathBuf) -> Settings {
        Options::default()
            .resolve(data_dir)
            .expect("the defaults are valid")
    }
}

/// The settings of `serve`: the file (explicit, or the data directory's if present)
/// overlaid with the flags.
pub fn load(data_dir: PathBuf, config: Option<&Path>, flags: Options) -> Result<Settings, String> {
    let default_file = data_dir.join(CONFIG_FILE);
    let file = match config {
        Some(path) => Options::from_file(path)?,
        None if default_file.exists() => Options::from_file(&default_file)?,
        None => Options::default(),
    };
    file.overlay(flags).resolve(data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "completed-task-timeout = 60\nmax-tasks = 5\ngc-interval = 0.5\n",
        )
        .unwrap();
        let flags = Options {
            max_tasks: Some(7),
            ..Options::default()
        };
        let s = load(dir.path().to_path_buf(), None, flags).unwrap();
        assert_eq!(s.retention.completed_task_timeout, 60);
        assert_eq!(s.retention.max_tasks, 7);
        assert_eq!(s.retention.interval, Duration::from_millis(500));
        assert_eq!(s.retention.session_timeout, 86_400);
        assert!(!s.ephemeral);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "completed-task-timout = 60\n").unwrap();
        let err = load(dir.path().to_path_buf(), Some(&path), Options::default()).unwrap_err();
        assert!(
            err.contains("x.toml") && err.contains("completed-task-timout"),
            "{err}"
        );
        std::fs::write(&path, "header-timeout = -1\n").unwrap();
        let err = load(dir.path().to_path_buf(), Some(&path), Options::default()).unwrap_err();
        assert!(err.contains("header-timeout"), "{err}");
    }

    #[test]
    fn etcd_reads_default_to_a_sync_per_connection_and_name_the_other_modes() {
        let dir = tempfile::tempdir().unwrap();
        let reads = |extra: &str| -> Result<(ReadMode, Duration), String> {
            let path = dir.path().join("r.toml");
            let text =
                format!("store = \"etcd\"\netcd-endpoints = [\"http://127.0.0.1:1\"]\n{extra}");
            std::fs::write(&path, text).unwrap();
            match load(dir.path().to_path_buf(), Some(&path), Options::default())?.store {
                StoreChoice::Etcd { reads, fresh, .. } => Ok((reads, fresh)),
                other => panic!("{other:?}"),
            }
        };
        let second = Duration::from_secs(1);
        assert_eq!(reads(""), Ok((ReadMode::Connection, second)));
        assert_eq!(
            reads("etcd-reads = \"connection\"\netcd-fresh = 0.25\n"),
            Ok((ReadMode::Connection, Duration::from_millis(250)))
        );
        assert_eq!(
            reads("etcd-reads = \"linearizable\"\n"),
            Ok((ReadMode::Linearizable, second))
        );
        assert_eq!(
            reads("etcd-reads = \"cached\"\n"),
            Ok((ReadMode::Cached, second))
        );
        let err = reads("etcd-reads = \"sometimes\"\n").unwrap_err();
        assert!(
            err.contains("etcd-reads") && err.contains("connection"),
            "{err}"
        );
        let err = reads("etcd-fresh = 0\n").unwrap_err();
        assert!(err.contains("etcd-fresh"), "{err}");
        for v in ["0.001", "1e12", "nan"] {
            let err = reads(&format!("etcd-fresh = {v}\n")).unwrap_err();
            assert!(err.contains("etcd-fresh"), "{v}: {err}");
        }
    }

    #[test]
    fn the_etcd_store_needs_endpoints_and_takes_them_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "store = \"etcd\"\netcd-endpoints = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n",
        )
        .unwrap();
        let s = load(dir.path().to_path_buf(), Some(&path), Options::default()).unwrap();
        assert_eq!(
            s.store,
            StoreChoice::Etcd {
                endpoints: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
                prefix: "/xapi-taskd/".into(),
                timeout: Duration::from_secs(15),
                reads: ReadMode::Connection,
                fresh: Duration::from_secs(1),
                access: EtcdAccess::default(),
            }
        );
        let flags = Options {
            store: Some("etcd".into()),
            ..Options::default()
        };
        let err = flags.resolve(dir.path().to_path_buf()).unwrap_err();
        assert!(err.contains("etcd-endpoints"), "{err}");
        let bad = Options {
            store: Some("mysql".into()),
            ..Options::default()
        };
        assert!(bad.resolve(dir.path().to_path_buf()).is_err());
    }

    #[test]
    fn etcd_auth_and_tls_options_come_from_the_file_and_must_go_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "store = \"etcd\"\netcd-endpoints = [\"https://10.0.0.1:2379\"]\n\
             etcd-user = \"xt\"\netcd-password-file = \"/etc/xt/etcd-pw\"\n\
             etcd-ca-file = \"/etc/xt/ca.pem\"\netcd-cert-file = \"/etc/xt/c.pem\"\n\
             etcd-key-file = \"/etc/xt/c.key\"\n",
        )
        .unwrap();
        let s = load(dir.path().to_path_buf(), Some(&path), Options::default()).unwrap();
        let StoreChoice::Etcd { access, .. } = s.store else {
            panic!("{:?}", s.store)
        };
        assert_eq!(access.user.as_deref(), Some("xt"));
        assert_eq!(access.password_file, Some(PathBuf::from("/etc/xt/etcd-pw")));
        assert_eq!(access.key_file, Some(PathBuf::from("/etc/xt/c.key")));
        let etcd = |endpoint: &str, access: EtcdAccess| {
            Options {
                store: Some("etcd".into()),
                etcd_endpoints: Some(vec![endpoint.into()]),
                etcd_user: access.user,
                etcd_password_file: access.password_file,
                etcd_ca_file: access.ca_file,
                etcd_cert_file: access.cert_file,
                etcd_key_file: access.key_file,
                ..Options::default()
            }
            .resolve(PathBuf::from("/tmp"))
            .map(drop)
        };
        let p = |s: &str| Some(PathBuf::from(s));
        // (user, password file, CA, certificate, key); "" is not given.
        let a = |fields: [&str; 5]| {
            let [user, password_file, ca_file, cert_file, key_file] =
                fields.map(|f| (!f.is_empty()).then(|| f.to_string()));
            EtcdAccess {
                user,
                password_file: password_file.map(PathBuf::from),
                ca_file: ca_file.map(PathBuf::from),
                cert_file: cert_file.map(PathBuf::from),
                key_file: key_file.map(PathBuf::from),
            }
        };
        #[rustfmt::skip]
        let refused = [
            ("http://e:1", a(["u", "", "", "", ""]), "etcd-password-file"),
            ("http://e:1", a(["", "/p", "", "", ""]), "etcd-user"),
            ("https://e:1", a(["", "", "/ca", "/c", ""]), "etcd-key-file"),
            ("https://e:1", a(["", "", "", "/c", "/k"]), "etcd-ca-file"),
            ("http://e:1", a(["", "", "/ca", "", ""]), "http://e:1"),
            ("https://e:1", a(["", "", "", "", ""]), "https://e:1"),
        ];
        for (endpoint, access, says) in refused {
            let err = etcd(endpoint, access.clone()).unwrap_err();
            assert!(err.contains(says), "{access:?}: {err}");
        }
        let tls = EtcdAccess {
            ca_file: p("/ca"),
            ..Default::default()
        };
        assert_eq!(etcd("https://e:1", tls), Ok(()));
        assert_eq!(etcd("http://e:1", EtcdAccess::default()), Ok(()));
    }

    #[test]
    fn quotas_and_bounds_come_from_the_file_and_flags_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "max-pending-tasks-per-user = 7\nmax-filter-nodes = 9\nmax-header-bytes = 100\n",
        )
        .unwrap();
        let flags = Options {
            login_free_failures: Some(2),
            ..Options::default()
        };
        let s = load(dir.path().to_path_buf(), None, flags).unwrap();
        assert_eq!(s.task_limits.user_unfinished, 7);
        assert_eq!(s.task_limits.field_bytes, 65_536);
        assert_eq!(s.api_limits.max_filter_nodes, 9);
        assert_eq!(s.api_limits.login_free_failures, 2);
        assert_eq!(s.api_limits.max_concurrent_logins, 4);
        assert_eq!(s.limits.max_header_bytes, 8192, "hyper's minimum");
        let d = Settings::defaults(dir.path().to_path_buf());
        assert_eq!(d.api_limits.max_event_queue_bytes, 10 * 1024 * 1024);
        assert_eq!(d.task_limits.user_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn an_explicit_file_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert!(load(dir.path().to_path_buf(), Some(&missing), Options::default()).is_err());
    }
}
