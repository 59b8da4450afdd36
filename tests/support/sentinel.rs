//! A private Redis Sentinel group for tests: a master, two replicas and
//! three sentinels on free loopback ports, all stopped and removed when the
//! group is dropped. Std-only; include with `support/mod.rs`:
//!
//! ```ignore
//! #[path = "support/mod.rs"] mod support;
//! #[path = "support/sentinel.rs"] mod sentinel_support;
//! ```
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{free_port, try_redis_cmd, RedisServer, RespValue};

/// The master group's name.
pub const MASTER_NAME: &str = "mymaster";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One `redis-server --sentinel` process.
pub struct SentinelProcess {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A master, two replicas and three sentinels (quorum 2).
pub struct SentinelGroup {
    /// `nodes[0]` is the first master.
    pub nodes: Vec<RedisServer>,
    pub sentinels: Vec<SentinelProcess>,
}

impl SentinelGroup {
    /// Starts the group; `down_after` is the sentinels'
    /// `down-after-milliseconds` (how long a silent master goes before it
    /// is failed over). Waits until both replicas are in sync and every
    /// sentinel sees them.
    pub fn start(down_after: Duration) -> SentinelGroup {
        let master = RedisServer::start();
        let port = master.port.to_string();
        let mut nodes = vec![master];
        for _ in 0..2 {
            nodes.push(RedisServer::start_with_args(&[
                "--replicaof",
                "127.0.0.1",
                &port,
            ]));
        }
        let sentinels = (0..3)
            .map(|_| start_sentinel(nodes[0].port, down_after))
            .collect();
        let group = SentinelGroup { nodes, sentinels };
        group.wait_until_ready();
        group
    }

    /// The sentinels' URLs, for `CacheBuilder::sentinel`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// The master's port as the first answering sentinel names it.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let reply = try_redis_cmd(
                s.port,
                &[
                    b"SENTINEL",
                    b"get-master-addr-by-name",
                    MASTER_NAME.as_bytes(),
                ],
            )
            .ok()?;
            reply.as_array()?.get(1)?.as_str()?.parse().ok()
        })
    }

    /// The data node listening on `port`.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of the group")
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let replicas_synced = self.nodes[1..].iter().all(|n| {
                n.cmd(&[b"INFO", b"replication"])
                    .as_str()
                    .is_some_and(|i| i.contains("master_link_status:up"))
            });
            let sentinels_see_all = self.sentinels.iter().all(|s| {
                let info = try_redis_cmd(s.port, &[b"INFO", b"sentinel"])
                    .ok()
                    .and_then(|r| r.as_str())
                    .unwrap_or_default();
                info.contains("slaves=2") && info.contains("sentinels=3")
            });
            if replicas_synced && sentinels_see_all {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinel group was not ready within {READY_TIMEOUT:?} \
                 (replicas synced: {replicas_synced}, sentinels see all: {sentinels_see_all})"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn start_sentinel(master_port: u16, down_after: Duration) -> SentinelProcess {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("cm-sentinel-{}-{port}", std::process::id()));
    fs::create_dir_all(&dir).expect("a sentinel temp dir");
    let conf = dir.join("sentinel.conf");
    // Sentinel rewrites its configuration file, so it must be writable.
    fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} {down}\n\
             sentinel failover-timeout {MASTER_NAME} 10000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n",
            dir = dir.display(),
            down = down_after.as_millis(),
        ),
    )
    .expect("write sentinel.conf");
    let child = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server not found on PATH");
    let sentinel = SentinelProcess { port, child, dir };
    let deadline = Instant::now() + READY_TIMEOUT;
    while !matches!(try_redis_cmd(port, &[b"PING"]), Ok(RespValue::Simple(ref s)) if s == "PONG") {
        assert!(
            Instant::now() < deadline,
            "sentinel on port {port} did not answer PING"
        );
        thread::sleep(Duration::from_millis(20));
    }
    sentinel
}
