//! `xapi-taskd cluster status`: what an operator needs to see of a deployment on etcd,
//! read from the cluster itself — its members as each configured endpoint reports them
//! (etcd's `Maintenance.Status` and `Cluster.MemberList`), and this deployment's keys
//! under its prefix ([`super::keys`]): the layout, the newest data revision, the live
//! front-ends (`c/node/…`, each on its lease) and the garbage collector's leader (the
//! `c/gc` election). Nothing here is invented: a front-end keeps no other state in etcd.
//!
//! "Quorum" is shown by a linearizable read of this deployment's keys succeeding (etcd
//! serves one only with a leader confirmed by a majority), not inferred from the member
//! count.

use std::time::Duration;

use etcd_client::{Client, GetOptions};
use serde::Serialize;

use super::keys::range_end;
use super::{Config, Inner};
use crate::db::backend::BackendError;

/// One etcd member.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// etcd's member id, in hex as etcdctl shows it.
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
    /// Whether this member is the Raft leader (as the members that answered report it).
    pub leader: bool,
    /// What it reported through one of the configured endpoints (None: none answered).
    pub status: Option<MemberStatus>,
}

/// A member's own `Maintenance.Status`.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// The configured endpoint that answered for it.
    pub endpoint: String,
    pub version: String,
    pub db_size: i64,
    pub db_size_in_use: i64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    /// The member id it believes leads (0: none).
    pub leader_id: String,
    pub errors: Vec<String>,
}

/// A live front-end: its membership key and what is left of its lease.
#[derive(Debug, Clone, Serialize)]
pub struct FrontEnd {
    pub id: String,
    /// Seconds left on its lease (renewed every 2 s; gone 10 s after the process stops).
    pub lease_ttl: i64,
    pub gc_leader: bool,
}

/// Everything `cluster status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub members: Vec<Member>,
    /// A linearizable read succeeded: a leader with a majority behind it (None: etcd
    /// refused this deployment's keys, so it could not be told).
    pub quorum: Option<bool>,
    /// The deployment's key layout version (`c/format`; None: never started here).
    pub layout: Option<u64>,
    /// The newest data revision of this deployment (`d/meta/last`'s mod revision): the
    /// `event.from` token every front-end has reached once it is current.
    pub data_revision: Option<u64>,
    /// The cluster's revision (all deployments and control keys move it).
    pub cluster_revision: Option<u64>,
    pub tasks: Option<i64>,
    pub sessions: Option<i64>,
    pub front_ends: Vec<FrontEnd>,
    /// The front-end id that runs the garbage collector.
    pub gc_leader: Option<String>,
    /// What could not be read, one line each.
    pub problems: Vec<String>,
}

impl Report {
    /// The exit status's meaning: the deployment can serve (quorum, its keys readable).
    pub fn healthy(&self) -> bool {
        self.quorum == Some(true)
    }
}

/// Reads the report. Fails only when no connection can be made at all (a TLS failure,
/// credentials refused: the message says which endpoint and why).
pub async fn report(config: &Config) -> Result<Report, BackendError> {
    let inner = Inner::connect(config).await?;
    let timeout = inner.conn.timeout;
    let mut problems = Vec::new();
    let statuses = futures_util::future::join_all(
        (0..inner.conn.endpoints().len()).map(|i| member_status(&inner, i, timeout)),
    )
    .await;
    let mut found = Vec::new();
    for s in statuses {
        match s {
            Ok(s) => found.push(s),
            Err(e) => problems.push(e),
        }
    }
    let mut members = Vec::new();
    let list = inner
        .conn
        .retry(timeout, |mut c| async move { c.member_list().await })
        .await;
    match list {
        Ok(list) => {
            for m in list.members() {
                let status = found.iter().find(|(id, _)| *id == m.id()).map(|(_, s)| s);
                members.push(Member {
                    id: format!("{:x}", m.id()),
                    name: m.name().to_string(),
                    peer_urls: m.peer_urls().to_vec(),
                    client_urls: m.client_urls().to_vec(),
                    learner: m.is_learner(),
                    leader: false,
                    status: status.cloned(),
                });
            }
        }
        Err(e) => problems.push(format!("member list: {e}")),
    }
    // The leader most of the members that answered name (they agree unless an election
    // is under way).
    let leader = found
        .iter()
        .map(|(_, s)| s.leader_id.clone())
        .filter(|l| l != "0")
        .max_by_key(|l| found.iter().filter(|(_, s)| &s.leader_id == l).count());
    for m in &mut members {
        m.leader = leader.as_deref() == Some(m.id.as_str());
    }
    let mut report = Report {
        endpoints: inner.conn.endpoints().to_vec(),
        prefix: inner.keys.prefix().to_string(),
        members,
        quorum: Some(false),
        layout: None,
        data_revision: None,
        cluster_revision: None,
        tasks: None,
        sessions: None,
        front_ends: Vec::new(),
        gc_leader: None,
        problems,
    };
    if let Err(e) = deployment(&inner, &mut report, timeout).await {
        // A permission or credentials refusal is the store refusing this front-end; any
        // other failure of a linearizable read is a cluster without quorum.
        let refused = e.0.contains("permission") || e.0.contains("credentials");
        if refused {
            report.quorum = None;
        }
        report.problems.push(if refused {
            format!("refused: {e}")
        } else {
            format!("no linearizable read of {} ({e})", report.prefix)
        });
    }
    Ok(report)
}

/// One endpoint's member status: (member id, status).
async fn member_status(
    inner: &Inner,
    i: usize,
    timeout: Duration,
) -> Result<(u64, MemberStatus), String> {
    let endpoint = inner.conn.endpoint(i).to_string();
    let mut c: Client = inner.conn.member_client(i);
    match tokio::time::timeout(timeout, c.status()).await {
        Ok(Ok(s)) => {
            let id = s.header().map_or(0, |h| h.member_id());
            Ok((
                id,
                MemberStatus {
                    endpoint,
                    version: s.version().to_string(),
                    db_size: s.db_size(),
                    db_size_in_use: s.raft_used_db_size(),
                    raft_term: s.raft_term(),
                    raft_index: s.raft_index(),
                    raft_applied_index: s.raft_applied_index(),
                    leader_id: format!("{:x}", s.leader()),
                    errors: s.errors().to_vec(),
                },
            ))
        }
        Ok(Err(e)) => Err(format!("endpoint {endpoint}: {}", inner.conn.explain(&e))),
        Err(_) => Err(format!("endpoint {endpoint}: no answer in {timeout:?}")),
    }
}

/// This deployment's keys, read linearizably.
async fn deployment(
    inner: &Inner,
    report: &mut Report,
    budget: Duration,
) -> Result<(), BackendError> {
    let keys = &inner.keys;
    let get = |key: String, options: Option<GetOptions>| {
        inner.conn.retry(budget, move |mut c| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.get(key, options).await }
        })
    };
    let count = |prefix: String| {
        let end = range_end(&prefix);
        get(
            prefix,
            Some(GetOptions::new().with_range(end).with_count_only()),
        )
    };
    let format = get(keys.format(), None).await?;
    report.quorum = Some(true);
    report.cluster_revision = format.header().map(|h| h.revision().max(0) as u64);
    report.layout = format
        .kvs()
        .first()
        .and_then(|kv| std::str::from_utf8(kv.value()).ok()?.parse().ok());
    if let Some(kv) = get(keys.import(), None).await?.kvs().first() {
        report.problems.push(format!(
            "an unfinished `cluster import` (id {}): front-ends refuse this prefix until the \
             import is run again and completes",
            String::from_utf8_lossy(kv.value())
        ));
    }
    let last = get(keys.last(), Some(GetOptions::new().with_keys_only())).await?;
    report.data_revision = last.kvs().first().map(|kv| kv.mod_revision().max(0) as u64);
    report.tasks = Some(count(format!("{}d/task/", keys.prefix())).await?.count());
    report.sessions = Some(count(format!("{}d/session/", keys.prefix())).await?.count());
    // etcd's own answer (`Election.Leader`: the candidate with the oldest key); its
    // value is the front-end's id.
    let (_, mut c) = inner.conn.client();
    let leader = tokio::time::timeout(budget, c.leader(keys.election())).await;
    report.gc_leader = match leader {
        Ok(Ok(r)) => r
            .kv()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
        // Not a failure: no front-end campaigns (none runs).
        Ok(Err(e)) if e.to_string().contains("no leader") => None,
        Ok(Err(e)) => return Err(BackendError(inner.conn.explain(&e))),
        Err(_) => return Err(BackendError("the GC election: no answer".into())),
    };
    let nodes = keys.nodes();
    let live = get(
        nodes.clone(),
        Some(GetOptions::new().with_range(range_end(&nodes))),
    )
    .await?;
    for kv in live.kvs() {
        let id = String::from_utf8_lossy(kv.value()).into_owned();
        let lease = kv.lease();
        let ttl = inner
            .conn
            .retry(budget, move |mut c| async move {
                c.lease_time_to_live(lease, None).await
            })
            .await
            .map_or(-1, |r| r.ttl());
        report.front_ends.push(FrontEnd {
            gc_leader: report.gc_leader.as_deref() == Some(id.as_str()),
            id,
            lease_ttl: ttl,
        });
    }
    Ok(())
}

/// The report for people.
pub fn human(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "etcd members ({}):", r.members.len());
    for m in &r.members {
        let role = if m.leader {
            "leader"
        } else if m.learner {
            "learner"
        } else {
            "follower"
        };
        let _ = write!(
            out,
            "  {} {} {role} peer {} client {}",
            m.name,
            m.id,
            m.peer_urls.join(","),
            m.client_urls.join(",")
        );
        match &m.status {
            Some(s) => {
                let _ = writeln!(
                    out,
                    " | etcd {} term {} index {} applied {} db {} B ({} B in use){}",
                    s.version,
                    s.raft_term,
                    s.raft_index,
                    s.raft_applied_index,
                    s.db_size,
                    s.db_size_in_use,
                    if s.errors.is_empty() {
                        String::new()
                    } else {
                        format!(" errors: {}", s.errors.join("; "))
                    }
                );
            }
            None => {
                let _ = writeln!(out, " | no answer through the configured endpoints");
            }
        }
    }
    let quorum = match r.quorum {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "unknown (etcd refused this deployment's keys)",
    };
    let _ = writeln!(out, "quorum: {quorum}");
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let _ = writeln!(
        out,
        "deployment {}: layout {}, data revision {}, cluster revision {}, {} tasks, {} sessions",
        r.prefix,
        opt(r.layout),
        opt(r.data_revision),
        opt(r.cluster_revision),
        r.tasks.map_or("-".into(), |v| v.to_string()),
        r.sessions.map_or("-".into(), |v| v.to_string()),
    );
    let _ = writeln!(out, "front-ends ({}):", r.front_ends.len());
    for f in &r.front_ends {
        let _ = writeln!(
            out,
            "  {} lease {} s{}",
            f.id,
            f.lease_ttl,
            if f.gc_leader { " (runs the GC)" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "GC leader: {}",
        r.gc_leader.as_deref().unwrap_or("none")
    );
    for p in &r.problems {
        let _ = writeln!(out, "problem: {p}");
    }
    out
}
