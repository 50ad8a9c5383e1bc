//! Cluster mode as an operator deploys it, against the real `etcd` (one member each: what
//! is tested here is the connection to a member — credentials, tokens, permissions, TLS —
//! not replication, which `tests/cluster.rs` covers with three):
//!
//! - etcd authentication: a front-end whose role covers its prefix works, and keeps
//!   working after its token expired (`--auth-token-ttl 1`) or its password was changed
//!   (the password file re-read); one whose role covers another prefix, a wrong password
//!   or no user at all is refused at start with a message saying which; a permission
//!   revoked while it runs gives a clear `INTERNAL_ERROR`, and granting it back heals it.
//! - TLS with client certificates: works; a wrong CA fails at once naming the endpoint;
//!   an http:// endpoint with TLS options is refused by the options.
//! - three members with authentication, one of them down when the front-end starts: it
//!   serves the front-end once back (authenticated then).
//! - `xapi-taskd cluster status` (the real binary): members, quorum, the deployment's
//!   revision, the live front-ends and the GC leader; exit status 1 when the store is
//!   refused or etcd has lost its quorum; the `user` commands with the same options.
//!
//! Needs the `etcd` feature, and the `etcd`, `etcdctl` and `openssl` commands (skipped
//! without etcd).

#![cfg(feature = "etcd")]

mod common;
mod etcd;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ROOT_PASSWORD, call, login_root, s};
use xapi_taskd::api::dispatch::Service;
use xapi_taskd::config::{Options, Settings};
use xapi_taskd::serve::open_any_service;
use xapi_taskd::wire::value::Value;

/// Settings of a front-end on `endpoints` under `prefix`, from the options table (as
/// flags would give them), with `extra` options.
fn settings(dir: &Path, endpoints: &[String], prefix: &str, extra: Options) -> Settings {
    let options = Options {
        store: Some("etcd".into()),
        etcd_endpoints: Some(endpoints.to_vec()),
        etcd_prefix: Some(prefix.into()),
        etcd_timeout: Some(4.0),
        ..extra
    };
    options.resolve(dir.to_path_buf()).expect("valid options")
}

/// The error of a front-end that must not start.
async fn refused(settings: &Settings) -> String {
    match open(settings).await {
        Ok(_) => panic!("the front-end started"),
        Err(e) => e,
    }
}

async fn open(settings: &Settings) -> Result<Arc<Service>, String> {
    let opened = tokio::time::timeout(
        Duration::from_secs(30),
        open_any_service(settings, Some(ROOT_PASSWORD)),
    )
    .await
    .map_err(|_| "no answer within 30 s (a hang)".to_string())?;
    opened.map(|(svc, _)| svc).map_err(|e| e.to_string())
}

/// Transactions the member at `endpoint` refused for permissions so far (its own
/// `/metrics`).
fn refused_txns(endpoint: &str) -> u64 {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("metrics");
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    body.lines()
        .filter(|l| {
            l.starts_with("grpc_server_handled_total{")
                && l.contains("grpc_method=\"Txn\"")
                && l.contains("grpc_code=\"PermissionDenied\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A task created and found again: the front-end reads and writes its prefix.
async fn works(svc: &Arc<Service>) {
    let session = login_root(svc).await;
    let task = call(svc, "task.create", vec![s(&session), s("t"), s("d")])
        .await
        .expect("task.create");
    let all = call(svc, "task.get_all", vec![s(&session)])
        .await
        .expect("task.get_all");
    let Value::Array(all) = all else {
        panic!("{all:?}")
    };
    assert!(all.contains(&task), "{all:?} lacks {task:?}");
}

fn password_file(dir: &Path, name: &str, password: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    path
}

fn as_user(user: &str, password_file: &Path) -> Options {
    Options {
        etcd_user: Some(user.into()),
        etcd_password_file: Some(password_file.to_path_buf()),
        ..Options::default()
    }
}

/// Turns etcd's authentication on as its documentation does (root first), with a role
/// limited to a prefix and a user `NAME` (password `NAME-pw`) for each of `users`
/// (name, role, prefix); returns a runner of etcdctl as root.
fn enable_auth<'a>(
    cluster: &'a etcd::Cluster,
    users: &[(&str, &str, &str)],
) -> impl Fn(&[&str]) -> String + 'a {
    cluster
        .etcdctl(None, &["user", "add", "root:rootpw"])
        .unwrap();
    cluster
        .etcdctl(None, &["user", "grant-role", "root", "root"])
        .unwrap();
    cluster.etcdctl(None, &["auth", "enable"]).unwrap();
    let ctl = |args: &[&str]| cluster.etcdctl(Some("root:rootpw"), args).expect("etcdctl");
    for (user, role, prefix) in users {
        ctl(&["role", "add", role]);
        ctl(&[
            "role",
            "grant-permission",
            role,
            "--prefix=true",
            "readwrite",
            prefix,
        ]);
        ctl(&["user", "add", &format!("{user}:{user}-pw")]);
        ctl(&["user", "grant-role", user, role]);
    }
    ctl
}

/// The real binary's `cluster status --json` with `args`: (exit success, the report).
fn status(args: &[String]) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_xapi-taskd"))
        .args([
            "cluster",
            "status",
            "--json",
            "--store",
            "etcd",
            "--etcd-timeout",
            "3",
        ])
        .args(args)
        .output()
        .expect("run xapi-taskd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| serde_json::json!({ "stderr": stderr, "stdout": stdout }));
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_auth_limits_a_front_end_to_its_prefix_and_tokens_renew_by_themselves() {
    let setup = etcd::Setup {
        auth_token_ttl: Some(1),
        ..etcd::Setup::default()
    };
    let Some(cluster) = etcd::Cluster::start_with(1, setup) else {
        return;
    };
    let ctl = enable_auth(&cluster, &[("alice", "ra", "/a/"), ("bob", "rb", "/b/")]);
    let dir = tempfile::tempdir().unwrap();
    let endpoints = cluster.endpoints();
    let alice_pw = password_file(dir.path(), "alice", "alice-pw");
    let alice = settings(dir.path(), &endpoints, "/a/", as_user("alice", &alice_pw));
    let svc = open(&alice).await.expect("alice's front-end on /a/ starts");
    works(&svc).await;

    // The token expires after a second unused; the front-end authenticates again by
    // itself. etcd's log shows that it really expired.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        cluster.log(0).contains("deleted a simple token"),
        "the token never expired: the test proves nothing"
    );
    works(&svc).await;

    // A new password, in the file: read again when etcd refuses the old one.
    std::fs::write(&alice_pw, "alice-new\n").unwrap();
    let mut passwd = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &endpoints[0], "--user", "root:rootpw"])
        .args(["user", "passwd", "alice", "--interactive=false"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        passwd
            .stdin
            .take()
            .unwrap()
            .write_all(b"alice-new\n")
            .unwrap();
    }
    assert!(passwd.wait().unwrap().success());
    let session = login_root(&svc).await;
    call(
        &svc,
        "task.create",
        vec![s(&session), s("after"), s("passwd")],
    )
    .await
    .expect("a write after the password changed");

    // A permission revoked while the front-end runs: a clear XAPI error, then healed.
    let tasks: Vec<String> = futures_util::future::join_all((0..16).map(|i| {
        let (svc, session) = (&svc, &session);
        async move {
            let t = call(
                svc,
                "task.create",
                vec![s(session), s(&format!("g{i}")), s("")],
            );
            match t.await.expect("task.create") {
                Value::String(t) => t,
                other => panic!("{other:?}"),
            }
        }
    }))
    .await;
    ctl(&["role", "revoke-permission", "ra", "--prefix=true", "/a/"]);
    // Writes of 16 tasks at once go out in groups (one transaction for several tasks'
    // batches): a group refused for its sender's permissions answers all of its batches
    // with the refusal, rather than sending each alone to be refused again. Counted on
    // etcd: at most one refused transaction per write (each group sent alone again
    // would make one more per group).
    let before = refused_txns(&endpoints[0]);
    let writes = futures_util::future::join_all(tasks.iter().map(|t| {
        call(
            &svc,
            "task.set_progress",
            vec![s(&session), s(t), Value::Double(0.5)],
        )
    }))
    .await;
    for w in &writes {
        let err = w.as_ref().expect_err("no permission, no write");
        assert!(
            err.join(" ")
                .contains("has no permission on the keys under /a/"),
            "{err:?}"
        );
    }
    let refusals = refused_txns(&endpoints[0]) - before;
    eprintln!("16 refused writes: {refusals} refused transactions");
    assert!(
        (1..=16).contains(&refusals),
        "{refusals} refused transactions"
    );
    let err = call(&svc, "task.get_all", vec![s(&session)])
        .await
        .expect_err("no permission, no answer");
    assert_eq!(err[0], "INTERNAL_ERROR", "{err:?}");
    let text = err.join(" ");
    assert!(
        text.contains("\"alice\" has no permission on the keys under /a/"),
        "{err:?}"
    );
    ctl(&[
        "role",
        "grant-permission",
        "ra",
        "--prefix=true",
        "readwrite",
        "/a/",
    ]);
    works(&svc).await;

    // Refused at start, each with what to fix: a role on another prefix, a wrong
    // password, no user.
    let bob_pw = password_file(dir.path(), "bob", "bob-pw");
    let bob_on_a = settings(dir.path(), &endpoints, "/a/", as_user("bob", &bob_pw));
    let err = refused(&bob_on_a).await;
    assert!(
        err.contains("\"bob\" has no permission on the keys under /a/")
            && err.contains(&endpoints[0]),
        "{err}"
    );
    let wrong = password_file(dir.path(), "wrong", "nope");
    let err = refused(&settings(
        dir.path(),
        &endpoints,
        "/a/",
        as_user("alice", &wrong),
    ))
    .await;
    assert!(
        err.contains("refused the credentials of user \"alice\""),
        "{err}"
    );
    let err = refused(&settings(dir.path(), &endpoints, "/a/", Options::default())).await;
    assert!(
        err.contains("set etcd-user and etcd-password-file"),
        "{err}"
    );
    let err = Options {
        store: Some("etcd".into()),
        etcd_endpoints: Some(endpoints.clone()),
        etcd_user: Some("alice".into()),
        ..Options::default()
    }
    .resolve(dir.path().to_path_buf())
    .expect_err("a user needs a password file");
    assert!(err.contains("etcd-password-file"), "{err}");

    // `cluster status` with the same options: alice's deployment is healthy and shows
    // her front-end; bob's view of /a/ is refused (exit status 1).
    let mut args = vec![
        "--etcd-endpoints".to_string(),
        endpoints.join(","),
        "--etcd-prefix".into(),
        "/a/".into(),
        "--etcd-user".into(),
        "alice".into(),
        "--etcd-password-file".into(),
        alice_pw.display().to_string(),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let (ok, report) = status(&args);
        assert!(ok, "{report}");
        // The GC election is won a moment after the start.
        if report["gc_leader"].is_string() || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(report["quorum"], true, "{report}");
    assert_eq!(report["members"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["members"][0]["leader"], true, "{report}");
    assert!(report["data_revision"].as_u64().unwrap() > 0, "{report}");
    assert!(report["tasks"].as_i64().unwrap() >= 3, "{report}");
    let front_ends = report["front_ends"].as_array().unwrap();
    assert_eq!(front_ends.len(), 1, "{report}");
    assert_eq!(front_ends[0]["gc_leader"], true, "{report}");
    assert_eq!(front_ends[0]["id"], report["gc_leader"], "{report}");
    // The user commands take the same options.
    let out = Command::new(env!("CARGO_BIN_EXE_xapi-taskd"))
        .args(["user", "list", "--store", "etcd", "--data-dir"])
        .arg(dir.path())
        .args(&args)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.starts_with("root "),
        "{listed} {out:?}"
    );
    args[5] = "bob".into();
    args[7] = bob_pw.display().to_string();
    let (ok, report) = status(&args);
    assert!(!ok, "bob's status of /a/ must fail: {report}");
    assert!(
        report["problems"].to_string().contains("no permission"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_and_wrong_settings_fail_at_start_naming_the_endpoint() {
    let setup = etcd::Setup {
        tls: true,
        client_cert_auth: true,
        ..etcd::Setup::default()
    };
    let Some(cluster) = etcd::Cluster::start_with(1, setup) else {
        return;
    };
    let tls = cluster.tls.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = cluster.endpoints();
    assert!(endpoints[0].starts_with("https://"));
    let with = |ca: &Path| Options {
        etcd_ca_file: Some(ca.to_path_buf()),
        etcd_cert_file: Some(tls.client_cert.clone()),
        etcd_key_file: Some(tls.client_key.clone()),
        ..Options::default()
    };
    let svc = open(&settings(dir.path(), &endpoints, "/t/", with(&tls.ca)))
        .await
        .expect("a front-end with the right CA and a client certificate");
    works(&svc).await;

    // A CA that did not sign the member's certificate: refused at once.
    let started = Instant::now();
    let err = refused(&settings(
        dir.path(),
        &endpoints,
        "/t/",
        with(&tls.other_ca),
    ))
    .await;
    assert!(
        err.contains(&endpoints[0]) && err.contains("TLS failed") && err.contains("etcd-ca-file"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // TLS options with a plain endpoint, and an https endpoint without a CA: the options
    // say so, naming the endpoint.
    let plain = endpoints[0].replace("https://", "http://");
    let err = Options {
        store: Some("etcd".into()),
        etcd_endpoints: Some(vec![plain.clone()]),
        ..with(&tls.ca)
    }
    .resolve(dir.path().to_path_buf())
    .expect_err("TLS options with http://");
    assert!(err.contains(&plain) && err.contains("https://"), "{err}");
    let err = Options {
        store: Some("etcd".into()),
        etcd_endpoints: Some(endpoints.clone()),
        ..Options::default()
    }
    .resolve(dir.path().to_path_buf())
    .expect_err("https:// without a CA");
    assert!(err.contains("etcd-ca-file"), "{err}");

    // `cluster status` over TLS.
    let args: Vec<String> = [
        "--etcd-endpoints",
        &endpoints[0],
        "--etcd-prefix",
        "/t/",
        "--etcd-ca-file",
        &tls.ca.display().to_string(),
        "--etcd-cert-file",
        &tls.client_cert.display().to_string(),
        "--etcd-key-file",
        &tls.client_key.display().to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let (ok, report) = status(&args);
    assert!(ok, "{report}");
    assert_eq!(report["quorum"], true, "{report}");
    assert!(
        report["members"][0]["status"]["raft_term"]
            .as_u64()
            .unwrap()
            > 0,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_with_auth_one_down_at_start_then_status_and_quorum_loss() {
    let Some(mut cluster) = etcd::Cluster::start(3) else {
        return;
    };
    let _ = enable_auth(&cluster, &[("quinn", "rq", "/q/")]);
    let dir = tempfile::tempdir().unwrap();
    let endpoints = cluster.endpoints();
    let pw = password_file(dir.path(), "quinn", "quinn-pw");
    // A member down when the front-end starts (so not authenticated then), which later
    // serves it: back, then the other two killed and restarted in turn so that calls
    // move to it while a quorum remains.
    cluster.kill(2);
    let svc = open(&settings(
        dir.path(),
        &endpoints,
        "/q/",
        as_user("quinn", &pw),
    ))
    .await
    .expect("front-end with a member down");
    works(&svc).await;
    cluster.restart(2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in [0, 1] {
        cluster.kill(i);
        works(&svc).await;
        cluster.restart(i);
    }
    works(&svc).await;
    let args = vec![
        "--etcd-endpoints".to_string(),
        endpoints.join(","),
        "--etcd-prefix".into(),
        "/q/".into(),
        "--etcd-user".into(),
        "quinn".into(),
        "--etcd-password-file".into(),
        pw.display().to_string(),
    ];
    let (ok, report) = status(&args);
    assert!(ok, "{report}");
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{report}");
    assert_eq!(
        members.iter().filter(|m| m["leader"] == true).count(),
        1,
        "{report}"
    );
    for m in members {
        assert!(m["status"]["db_size"].as_i64().unwrap() > 0, "{report}");
        assert_eq!(m["client_urls"].as_array().unwrap().len(), 1, "{report}");
    }
    assert_eq!(report["layout"], 1, "{report}");
    assert_eq!(
        report["front_ends"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    let human = Command::new(env!("CARGO_BIN_EXE_xapi-taskd"))
        .args(["cluster", "status", "--store", "etcd"])
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success(), "{human:?}");
    assert!(
        text.contains("etcd members (3):")
            && text.contains(" leader ")
            && text.contains("quorum: yes"),
        "{text}"
    );

    // Two of three gone: no quorum, exit status 1.
    cluster.kill(1);
    cluster.kill(2);
    let started = Instant::now();
    let (ok, report) = status(&args);
    assert!(!ok, "{report}");
    assert_eq!(report["quorum"], false, "{report}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(svc);
}
