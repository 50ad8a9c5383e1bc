//! A real etcd cluster for the Rust tests: N members of the `etcd` binary on loopback
//! ports of their own (never 2379/2380), data in a temporary directory, killed by their
//! own PIDs when dropped. (The pytest suites have the same in `xmlrpc-tests/etcd_cluster.py`.)

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub dir: tempfile::TempDir,
    names: Vec<String>,
    client_ports: Vec<u16>,
    peer_ports: Vec<u16>,
    token: String,
    children: Vec<Option<Child>>,
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
        };
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
        let client = format!("http://127.0.0.1:{}", self.client_ports[i]);
        let peer = format!("http://127.0.0.1:{}", self.peer_ports[i]);
        let data = self.dir.path().join(&self.names[i]);
        let log = self.dir.path().join(format!("{}.log", self.names[i]));
        let child = Command::new(binary().unwrap())
            .args(["--name", &self.names[i]])
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
        self.client_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect()
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
