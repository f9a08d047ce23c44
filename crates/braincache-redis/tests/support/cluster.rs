//! A throwaway 3-master Redis Cluster for tests: three `redis-server --cluster-enabled yes` on
//! free loopback ports, each with its own folder and cluster config file, joined with
//! `redis-cli --cluster create`; every wait bounded, every server killed by pid when dropped.
//!
//! The servers run with `cluster-require-full-coverage no`, so the masters still up keep
//! serving their slots when one is killed, and `cluster-node-timeout 2000`.

#![allow(dead_code)]

use braincache_core::testkit::servers::{RedisServer, redis_ping as ping};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTUP: Duration = Duration::from_secs(20);

/// One node of the cluster.
pub struct Node {
    child: Child,
    port: u16,
}

impl Node {
    /// The port it listens on (127.0.0.1 only); the cluster bus is `port + 10000`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL, by pid) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running 3-master cluster.
pub struct RedisCluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts a cluster, or prints a skip notice and returns `None` without `redis-server`.
    pub fn start_or_skip() -> Option<RedisCluster> {
        if !RedisServer::installed_or_skip() {
            return None;
        }
        let mut last = None;
        for _ in 0..3 {
            match RedisCluster::start() {
                Ok(c) => return Some(c),
                Err(e) => last = Some(e),
            }
        }
        panic!("could not start a redis cluster: {last:?}");
    }

    fn start() -> Result<RedisCluster, String> {
        let dir = std::env::temp_dir().join(format!(
            "braincache-cluster-{}-{}",
            std::process::id(),
            cluster_port()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            let port = cluster_port();
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--cluster-node-timeout", "2000"])
                .args(["--cluster-require-full-coverage", "no"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--dir", &node_dir.to_string_lossy()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawn redis-server: {e}"))?;
            cluster.nodes.push(Node { child, port });
        }
        let start = Instant::now();
        for n in &cluster.nodes {
            while !ping(n.port) {
                if start.elapsed() > STARTUP {
                    return Err(format!("node {} did not answer PING", n.port));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run redis-cli --cluster create: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        // Every node must see the whole cluster as ok before tests start.
        for n in &cluster.nodes {
            loop {
                let info = cluster.cli(n.port, &["CLUSTER", "INFO"]);
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    break;
                }
                if start.elapsed() > STARTUP {
                    return Err(format!(
                        "node {} never reached cluster_state:ok: {info}",
                        n.port
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Runs `redis-cli -p port args...` and returns its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `DBSIZE` of the node on `port`.
    pub fn dbsize(&self, port: u16) -> usize {
        self.cli(port, &["DBSIZE"])
            .trim()
            .parse()
            .unwrap_or(usize::MAX)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback port whose cluster bus port (`+ 10000`) is free too.
fn cluster_port() -> u16 {
    for _ in 0..1000 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        if port > 55_000 {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair (p, p + 10000) found");
}
