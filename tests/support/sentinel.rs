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

use crate::support::{free_port, RedisServer, RespConnection, RespValue};

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
    /// The sentinels' `requirepass`, if any.
    pub sentinel_password: Option<String>,
}

impl SentinelGroup {
    /// Starts the group; `down_after` is the sentinels'
    /// `down-after-milliseconds` (how long a silent master goes before it
    /// is failed over). Waits until both replicas are in sync and every
    /// sentinel sees them.
    pub fn start(down_after: Duration) -> SentinelGroup {
        Self::start_with_passwords(down_after, None, None)
    }

    /// [`start`](Self::start) with `requirepass` on the data nodes
    /// (`data`) and on the sentinels (`sentinel`).
    pub fn start_with_passwords(
        down_after: Duration,
        data: Option<&str>,
        sentinel: Option<&str>,
    ) -> SentinelGroup {
        let auth: Vec<&str> = match data {
            Some(pw) => vec!["--requirepass", pw, "--masterauth", pw],
            None => Vec::new(),
        };
        let master = RedisServer::start_with_args(&auth);
        let port = master.port.to_string();
        let mut nodes = vec![master];
        for _ in 0..2 {
            let mut args = vec!["--replicaof", "127.0.0.1", &port];
            args.extend(&auth);
            nodes.push(RedisServer::start_with_args(&args));
        }
        let sentinels = (0..3)
            .map(|_| start_sentinel(nodes[0].port, down_after, data, sentinel))
            .collect();
        let group = SentinelGroup {
            nodes,
            sentinels,
            sentinel_password: sentinel.map(str::to_owned),
        };
        group.wait_until_ready();
        group
    }

    /// The sentinels' URLs, for `CacheBuilder::sentinel`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(|s| self.url_of(s.port)).collect()
    }

    fn url_of(&self, port: u16) -> String {
        match &self.sentinel_password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        }
    }

    /// One command to the sentinel on `port`.
    pub fn sentinel_cmd(&self, port: u16, args: &[&[u8]]) -> std::io::Result<RespValue> {
        RespConnection::connect_url(&self.url_of(port))?.try_cmd(args)
    }

    /// The master's port as the first answering sentinel names it.
    pub fn master_port(&self) -> Option<u16> {
        self.master_port_skipping(0)
    }

    /// [`master_port`](Self::master_port), not asking the first `skip`
    /// sentinels (e.g. a paused one, which would not answer).
    pub fn master_port_skipping(&self, skip: usize) -> Option<u16> {
        self.sentinels.iter().skip(skip).find_map(|s| {
            let reply = self
                .sentinel_cmd(
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
    pub fn node_of_port(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of the group")
    }

    /// The data node listening on `port`, to kill or restart it.
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
                let info = self
                    .sentinel_cmd(s.port, &[b"INFO", b"sentinel"])
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

fn start_sentinel(
    master_port: u16,
    down_after: Duration,
    data_password: Option<&str>,
    password: Option<&str>,
) -> SentinelProcess {
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
             sentinel parallel-syncs {MASTER_NAME} 1\n{data_auth}{auth}",
            dir = dir.display(),
            down = down_after.as_millis(),
            data_auth = data_password
                .map(|pw| format!("sentinel auth-pass {MASTER_NAME} {pw}\n"))
                .unwrap_or_default(),
            auth = password
                .map(|pw| format!("requirepass {pw}\n"))
                .unwrap_or_default(),
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
    let answers = || {
        let reply = RespConnection::connect_port(port).and_then(|mut c| c.try_cmd(&[b"PING"]));
        match reply {
            Ok(RespValue::Simple(s)) => s == "PONG",
            Ok(RespValue::Error(e)) => e.starts_with("NOAUTH"),
            _ => false,
        }
    };
    while !answers() {
        assert!(
            Instant::now() < deadline,
            "sentinel on port {port} did not answer PING"
        );
        thread::sleep(Duration::from_millis(20));
    }
    sentinel
}
