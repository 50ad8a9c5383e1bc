//! A real etcd cluster for the Rust tests: N members of the `etcd` binary on loopback
//! ports of their own (never 2379/2380), data in a temporary directory, killed by their
//! own PIDs when dropped. (The pytest suites have the same in `xmlrpc-tests/etcd_cluster.py`.)
//!
//! [`Cluster::start_with`] adds what an operator's cluster has: TLS on the client port
//! (certificates made here with Debian's `openssl` command: a CA, the members' certificate
//! for 127.0.0.1, a client certificate, and a second CA that signed none of them),
//! client-certificate authentication, and a short simple-token TTL for etcd's
//! authentication, which [`Cluster::etcdctl`] sets up like an operator would.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub dir: tempfile::TempDir,
    names: Vec<String>,
    client_ports: Vec<u16>,
    peer_ports: Vec<u16>,
    token: String,
    children: Vec<Option<Child>>,
    setup: Setup,
    /// The certificates, with TLS.
    pub tls: Option<Tls>,
}

/// What a cluster started by [`Cluster::start_with`] has beyond plain members.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// TLS on the client port.
    pub tls: bool,
    /// Members refuse clients without a certificate from the CA (needs `tls`).
    pub client_cert_auth: bool,
    /// `--auth-token-ttl`: seconds a simple token lives unused (etcd's default is 300).
    pub auth_token_ttl: Option<u32>,
}

/// PEM files made for a TLS cluster.
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca: PathBuf,
    /// A CA that signed nothing here (a wrong `etcd-ca-file`).
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Tls {
    /// Makes the certificates in `dir` with the `openssl` command.
    fn make(dir: &Path) -> Tls {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl (Debian's openssl package)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let self_signed = |name: &str| {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ])
        };
        self_signed("ca");
        self_signed("other-ca");
        let signed = |name: &str, ext: &str| {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ]);
        };
        signed(
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        );
        signed("client", "extendedKeyUsage=clientAuth\n");
        Tls {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port != 2379 && port != 2380 {
            return port;
        }
    }
}

/// The `etcd` binary, if installed (CI installs Debian's etcd-server).
pub fn binary() -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|d| format!("{d}/etcd"))
        .find(|p| std::path::Path::new(p).exists())
}

impl Cluster {
    /// Starts `members` members and waits until each answers its health check.
    pub fn start(members: usize) -> Option<Cluster> {
        Cluster::start_with(members, Setup::default())
    }

    /// [`Cluster::start`] with TLS, client-certificate authentication or a token TTL.
    pub fn start_with(members: usize, setup: Setup) -> Option<Cluster> {
        let Some(_) = binary() else {
            eprintln!("etcd is not installed: skipping the etcd tests (CI installs it)");
            return None;
        };
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            tempfile::tempdir_in("/dev/shm").unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let mut c = Cluster {
            dir: base,
            names: (0..members).map(|i| format!("m{i}")).collect(),
            client_ports: (0..members).map(|_| free_port()).collect(),
            peer_ports: (0..members).map(|_| free_port()).collect(),
            token: format!("xt-rs-{}-{}", std::process::id(), free_port()),
            children: (0..members).map(|_| None).collect(),
            setup: setup.clone(),
            tls: None,
        };
        if setup.tls {
            let certs = c.dir.path().join("certs");
            std::fs::create_dir(&certs).unwrap();
            c.tls = Some(Tls::make(&certs));
        }
        for i in 0..members {
            c.spawn(i);
        }
        for i in 0..members {
            c.wait_healthy(i);
        }
        Some(c)
    }

    fn spawn(&mut self, i: usize) {
        let cluster: Vec<String> = self
            .names
            .iter()
            .zip(&self.peer_ports)
            .map(|(n, p)| format!("{n}=http://127.0.0.1:{p}"))
            .collect();
        let client = self.endpoints()[i].clone();
        let peer = format!("http://127.0.0.1:{}", self.peer_ports[i]);
        let data = self.dir.path().join(&self.names[i]);
        let log = self.dir.path().join(format!("{}.log", self.names[i]));
        let mut extra: Vec<String> = Vec::new();
        if let Some(t) = &self.tls {
            for (flag, path) in [
                ("--cert-file", &t.server_cert),
                ("--key-file", &t.server_key),
            ] {
                extra.push(flag.into());
                extra.push(path.display().to_string());
            }
            if self.setup.client_cert_auth {
                extra.push("--client-cert-auth".into());
                extra.push("--trusted-ca-file".into());
                extra.push(t.ca.display().to_string());
            }
        }
        if let Some(ttl) = self.setup.auth_token_ttl {
            extra.push("--auth-token-ttl".into());
            extra.push(ttl.to_string());
        }
        let child = Command::new(binary().unwrap())
            .args(["--name", &self.names[i]])
            .args(&extra)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--logger", "zap", "--pre-vote"])
            .arg("--log-outputs")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.children[i] = Some(child);
    }

    fn wait_healthy(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        if self.tls.is_some() {
            // The health page is behind TLS too: ask etcdctl.
            loop {
                let endpoint = self.endpoints()[i].clone();
                let out = self.etcdctl_at(&endpoint, None, &["endpoint", "health"]);
                if out.is_ok() {
                    return;
                }
                if let Some(Some(c)) = self.children.get_mut(i)
                    && let Ok(Some(status)) = c.try_wait()
                {
                    panic!("etcd member {i} exited: {status}");
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {i} not healthy: {out:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let addr = format!("127.0.0.1:{}", self.client_ports[i]);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains("\"health\":\"true\"") {
                    return;
                }
            }
            if let Some(Some(c)) = self.children.get_mut(i)
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("etcd member {i} exited: {status}");
            }
            assert!(Instant::now() < deadline, "etcd member {i} not healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        let scheme = if self.setup.tls { "https" } else { "http" };
        self.client_ports
            .iter()
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect()
    }

    /// Runs `etcdctl` (API v3) against every member, as `user` ("name:password") if
    /// given, with the cluster's client certificate if it has TLS; its stdout, or its
    /// stderr as the error.
    pub fn etcdctl(&self, user: Option<&str>, args: &[&str]) -> Result<String, String> {
        self.etcdctl_at(&self.endpoints().join(","), user, args)
    }

    fn etcdctl_at(
        &self,
        endpoints: &str,
        user: Option<&str>,
        args: &[&str],
    ) -> Result<String, String> {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(endpoints)
            .args(["--command-timeout", "10s"]);
        if let Some(t) = &self.tls {
            cmd.arg("--cacert").arg(&t.ca);
            cmd.arg("--cert").arg(&t.client_cert);
            cmd.arg("--key").arg(&t.client_key);
        }
        if let Some(u) = user {
            cmd.arg("--user").arg(u);
        }
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("etcdctl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Member `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.names[i])))
            .unwrap_or_default()
    }

    /// The members' process ids (of those running).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(Child::id).collect()
    }

    /// SIGKILL of member `i` (a crash).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
