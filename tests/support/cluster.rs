//! A private local Redis Cluster for tests: three masters (and, on request,
//! a replica each) on free loopback ports, joined by `redis-cli --cluster create`, stopped and
//! removed when the last handle is dropped. Std-only, like `support/mod.rs`,
//! which it builds on; include both:
//!
//! ```ignore
//! #[path = "support/mod.rs"] mod support;
//! #[path = "support/cluster.rs"] mod cluster_support;
//! ```
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{redis_cmd, RedisServer, RespValue};

/// Masters of the test cluster.
pub const MASTERS: usize = 3;
/// How long the cluster may take to agree on its slots after `create`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running cluster; the servers stop when it is dropped.
pub struct LocalCluster {
    pub nodes: Vec<RedisServer>,
}

impl LocalCluster {
    /// Starts `MASTERS` cluster-enabled servers, assigns the 16384 slots over
    /// them and waits until every node reports `cluster_state:ok`.
    pub fn start() -> LocalCluster {
        Self::start_with_node_timeout(Duration::from_secs(2))
    }

    /// [`start`](Self::start) with another `cluster-node-timeout` (how long
    /// a silent node goes before the others flag it; Redis's default is 15 s).
    pub fn start_with_node_timeout(node_timeout: Duration) -> LocalCluster {
        Self::start_nodes(0, node_timeout)
    }

    /// Three masters with one replica each (six nodes), for failover: a
    /// replica promotes itself about `node_timeout` after its master dies.
    pub fn start_with_replicas(node_timeout: Duration) -> LocalCluster {
        Self::start_nodes(1, node_timeout)
    }

    fn start_nodes(replicas: usize, node_timeout: Duration) -> LocalCluster {
        let node_timeout = node_timeout.as_millis().to_string();
        let nodes: Vec<RedisServer> = (0..MASTERS * (1 + replicas))
            .map(|_| {
                RedisServer::start_with_args(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "{dir}/nodes.conf",
                    "--cluster-node-timeout",
                    &node_timeout,
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli not found on PATH: install redis-tools (or run scripts/test.sh)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create {addresses:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = LocalCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let states: Vec<String> = self
                .nodes
                .iter()
                .map(|n| {
                    redis_cmd(n.port, &[b"CLUSTER", b"INFO"])
                        .as_str()
                        .unwrap_or_default()
                })
                .collect();
            let replicas_synced = self.nodes.iter().all(|n| {
                let info = redis_cmd(n.port, &[b"INFO", b"replication"])
                    .as_str()
                    .unwrap_or_default();
                info.contains("role:master") || info.contains("master_link_status:up")
            });
            if replicas_synced && states.iter().all(|s| s.contains("cluster_state:ok")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the test cluster did not reach cluster_state:ok within {READY_TIMEOUT:?}: {states:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Seed URLs for `Cache::builder().cluster_urls(…)`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// The node that owns `key`'s slot (asked with `CLUSTER KEYSLOT` and
    /// `CLUSTER SLOTS`, independently of the library under test).
    pub fn node_of(&self, key: &str) -> &RedisServer {
        let port = self.nodes[0].port;
        let slot = redis_cmd(port, &[b"CLUSTER", b"KEYSLOT", key.as_bytes()])
            .as_int()
            .expect("CLUSTER KEYSLOT answers an integer");
        let ranges = redis_cmd(port, &[b"CLUSTER", b"SLOTS"]);
        for range in ranges.as_array().expect("CLUSTER SLOTS answers an array") {
            let range = range.as_array().expect("a slot range");
            let (start, end) = (range[0].as_int().unwrap(), range[1].as_int().unwrap());
            if (start..=end).contains(&slot) {
                let master_port = range[2].as_array().unwrap()[1].as_int().unwrap();
                return self
                    .nodes
                    .iter()
                    .find(|n| i64::from(n.port) == master_port)
                    .expect("the slot's master is one of ours");
            }
        }
        panic!("slot {slot} of {key:?} is not assigned");
    }

    /// The port of the master of `slot` as the node on `asked` sees it
    /// (`None`: no answer, or the slot is not served).
    pub fn master_of_slot(&self, asked: u16, slot: i64) -> Option<u16> {
        let ranges = crate::support::try_redis_cmd(asked, &[b"CLUSTER", b"SLOTS"]).ok()?;
        ranges.as_array()?.iter().find_map(|range| {
            let range = range.as_array()?;
            let (start, end) = (range.first()?.as_int()?, range.get(1)?.as_int()?);
            if !(start..=end).contains(&slot) {
                return None;
            }
            u16::try_from(range.get(2)?.as_array()?.get(1)?.as_int()?).ok()
        })
    }

    /// `key`'s hash slot.
    pub fn slot_of(&self, key: &str) -> i64 {
        redis_cmd(
            self.nodes[0].port,
            &[b"CLUSTER", b"KEYSLOT", key.as_bytes()],
        )
        .as_int()
        .expect("CLUSTER KEYSLOT answers an integer")
    }

    /// The node on `port`.
    pub fn node_of_port(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of the cluster")
    }

    /// The node on `port`, to kill or restart it.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of the cluster")
    }

    /// Every key on one node matching `pattern` (`KEYS`: fine on a test node).
    pub fn keys_on(&self, node: &RedisServer, pattern: &str) -> Vec<String> {
        match redis_cmd(node.port, &[b"KEYS", pattern.as_bytes()]) {
            RespValue::Array(keys) => keys.iter().filter_map(RespValue::as_str).collect(),
            other => panic!("KEYS answered {other:?}"),
        }
    }
}

/// The cluster of this test binary, shared by the tests running at the same
/// time and stopped when the last of them drops its handle.
pub fn shared_cluster() -> Arc<LocalCluster> {
    static SHARED: Mutex<Weak<LocalCluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cluster) = shared.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(LocalCluster::start());
    *shared = Arc::downgrade(&cluster);
    cluster
}
