//! The Redis being inspected: one server, or every master of a Cluster.
//!
//! Key commands go through redis-rs (which routes them on a Cluster);
//! keyspace walks (`SCAN`) and their follow-up pipelines run per node,
//! because a `SCAN` cursor belongs to one node.

use std::fmt;
use std::time::Duration;

use cache_core::redis::aio::{ConnectionLike, MultiplexedConnection};
use cache_core::redis::cluster::ClusterClientBuilder;
use cache_core::redis::cluster_async::ClusterConnection;
use cache_core::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use cache_core::redis::{
    self, AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, FromRedisValue, Pipeline,
    RedisError, Value,
};
use cache_core::RedactedUrl;

use crate::error::CliError;

/// One node to walk: the single server, or a Cluster master's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node(Option<(String, u16)>);

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some((host, port)) => write!(f, "{host}:{port}"),
            None => f.write_str("the server"),
        }
    }
}

/// A connected Redis.
pub struct Server {
    connection: Connection,
    nodes: Vec<Node>,
    url: RedactedUrl,
    /// Whether `SCAN` takes `TYPE string` (Redis 6 and later); cleared the
    /// first time a server answers it with a syntax error.
    scan_by_type: bool,
}

enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// How many keys one `SCAN` step asks for.
pub const SCAN_BATCH: usize = 500;

impl Server {
    /// Connects to `url`; when that node has cluster mode on, connects to
    /// the Cluster and finds its masters.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Server, CliError> {
        let redacted = RedactedUrl::new(url);
        let connect_error = |source| CliError::connect(redacted.clone(), source);
        let client = redis::Client::open(url).map_err(connect_error)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let mut single = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(connect_error)?;
        let info: Result<String, RedisError> = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut single)
            .await;
        let cluster_enabled = match info {
            Ok(info) => info.contains("cluster_enabled:1"),
            // An ACL without +info (or a renamed INFO): nothing tells a
            // Cluster node apart, so treat it as one server; on a Cluster,
            // keys of other nodes answer MOVED, which the command reports.
            Err(e) if is_refusal(&e) => {
                eprintln!(
                    "note: {redacted} refused `INFO cluster` ({e}); treating it as a single server"
                );
                false
            }
            Err(e) => return Err(connect_error(e)),
        };
        if !cluster_enabled {
            return Ok(Server {
                connection: Connection::Single(single),
                nodes: vec![Node(None)],
                url: redacted,
                scan_by_type: true,
            });
        }
        // Asked of the node the URL names, so that a master listed without
        // a host is known to be on that node's host (as redis-rs reads it).
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut single)
            .await
            .map_err(connect_error)?;
        let answering_host = match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            _ => String::new(),
        };
        let masters = masters(slots, &answering_host);
        if masters.is_empty() {
            return Err(CliError::NoMasters { url: redacted });
        }
        let cluster = ClusterClientBuilder::new(vec![url])
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(connect_error)?
            .get_async_connection()
            .await
            .map_err(connect_error)?;
        Ok(Server {
            connection: Connection::Cluster(cluster),
            nodes: masters.into_iter().map(|m| Node(Some(m))).collect(),
            url: redacted,
            scan_by_type: true,
        })
    }

    /// The nodes a keyspace walk visits.
    pub fn nodes(&self) -> Vec<Node> {
        self.nodes.clone()
    }

    /// "redis at …" or "redis cluster at … (3 masters)".
    pub fn describe(&self) -> String {
        match self.connection {
            Connection::Single(_) => format!("redis at {}", self.url),
            Connection::Cluster(_) => {
                format!(
                    "redis cluster at {} ({} masters)",
                    self.url,
                    self.nodes.len()
                )
            }
        }
    }

    /// Sends a key command, routed by its key on a Cluster.
    pub async fn query<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        doing: &'static str,
    ) -> Result<T, CliError> {
        let result = match &mut self.connection {
            Connection::Single(c) => cmd.query_async(c).await,
            Connection::Cluster(c) => cmd.query_async(c).await,
        };
        result.map_err(|source| self.failed(doing, source))
    }

    /// Sends a pipeline of commands on one key (one slot on a Cluster).
    pub async fn query_pipeline<T: FromRedisValue>(
        &mut self,
        pipe: &Pipeline,
        doing: &'static str,
    ) -> Result<T, CliError> {
        let result = match &mut self.connection {
            Connection::Single(c) => pipe.query_async(c).await,
            Connection::Cluster(c) => pipe.query_async(c).await,
        };
        result.map_err(|source| self.failed(doing, source))
    }

    /// Sends `cmd` to `node`.
    pub async fn query_node<T: FromRedisValue>(
        &mut self,
        node: &Node,
        cmd: &Cmd,
        doing: &'static str,
    ) -> Result<T, CliError> {
        let result = match (&mut self.connection, &node.0) {
            (Connection::Cluster(c), Some((host, port))) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                c.route_command(cmd.clone(), route)
                    .await
                    .and_then(|v| redis::from_redis_value::<T>(v).map_err(RedisError::from))
            }
            (Connection::Single(c), _) => cmd.query_async(c).await,
            (Connection::Cluster(c), None) => cmd.query_async(c).await,
        };
        result.map_err(|source| self.failed(doing, source))
    }

    /// Sends `pipe` (commands on keys that live on `node`) to `node`; one
    /// reply per command, a command's error reply among them as a
    /// [`Value::ServerError`] (see [`reply_error`]).
    pub async fn pipeline_node(
        &mut self,
        node: &Node,
        pipe: &Pipeline,
        commands: usize,
        doing: &'static str,
    ) -> Result<Vec<Value>, CliError> {
        let result = match (&mut self.connection, &node.0) {
            (Connection::Cluster(c), Some((host, port))) => {
                let route = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                c.route_pipeline(pipe.clone(), 0, commands, route).await
            }
            (Connection::Single(c), _) => c.req_packed_commands(pipe, 0, commands).await,
            (Connection::Cluster(c), None) => c.req_packed_commands(pipe, 0, commands).await,
        };
        result.map_err(|source| self.failed(doing, source))
    }

    /// One `SCAN` step on `node`: the next cursor (0: done) and the keys,
    /// as bytes (a key need not be UTF-8). String keys only where the
    /// server filters by type (Redis 6 and later); from older servers every
    /// type, which the pipelines that follow meet as `WRONGTYPE`.
    pub async fn scan_step(
        &mut self,
        node: &Node,
        cursor: u64,
        glob: &str,
    ) -> Result<(u64, Vec<Vec<u8>>), CliError> {
        if self.scan_by_type {
            let by_type = scan_command(cursor, glob, true);
            match self.query_node(node, &by_type, "SCAN").await {
                Err(CliError::Redis { source, .. }) if is_syntax_error(&source) => {
                    self.scan_by_type = false;
                }
                done => return done,
            }
        }
        let untyped = scan_command(cursor, glob, false);
        self.query_node(node, &untyped, "SCAN").await
    }

    /// Makes [`scan_step`](Self::scan_step) do without `TYPE`, as it does
    /// on a Redis older than 6.
    #[cfg(test)]
    pub fn scan_without_type(&mut self) {
        self.scan_by_type = false;
    }

    /// The error of a failed `doing`.
    pub fn failed(&self, doing: &'static str, source: RedisError) -> CliError {
        CliError::Redis {
            url: self.url.clone(),
            doing,
            source,
        }
    }
}

/// `SCAN cursor MATCH glob COUNT n [TYPE string]`.
fn scan_command(cursor: u64, glob: &str, by_type: bool) -> Cmd {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(glob)
        .arg("COUNT")
        .arg(SCAN_BATCH);
    if by_type {
        scan.arg("TYPE").arg("string");
    }
    scan
}

/// The error a pipeline reply carries, if it is one.
pub fn reply_error(reply: &Value) -> Option<RedisError> {
    match reply {
        Value::ServerError(e) => Some(e.clone().into()),
        _ => None,
    }
}

/// Whether the server answered with an error reply (it understood the
/// request and refused it), rather than failing to answer.
fn is_refusal(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_))
}

/// `ERR syntax error`: what a Redis older than 6 answers to `SCAN … TYPE`.
/// Redis gives a syntax error no code of its own, so the reply's detail
/// (not redis-rs's rendering of the error) tells it apart.
pub fn is_syntax_error(e: &RedisError) -> bool {
    e.code() == Some("ERR")
        && e.detail()
            .is_some_and(|detail| detail.trim().eq_ignore_ascii_case("syntax error"))
}

/// The masters in a `CLUSTER SLOTS` reply (`[[start, end, [host, port,
/// id, …], replicas…], …]`), each once, in reply order. Read as redis-rs
/// reads it: a master without a host (empty, null, or the wildcard
/// `0.0.0.0` / `::`) is on `answering_host`, the node that sent the reply;
/// `?` is a master whose address is unknown, left out.
fn masters(slots: Value, answering_host: &str) -> Vec<(String, u16)> {
    let mut found: Vec<(String, u16)> = Vec::new();
    let Value::Array(ranges) = slots else {
        return found;
    };
    for range in ranges {
        let Value::Array(range) = range else {
            continue;
        };
        let Some(Value::Array(master)) = range.into_iter().nth(2) else {
            continue;
        };
        let mut fields = master.into_iter();
        let (Some(host), Some(Value::Int(port))) = (fields.next(), fields.next()) else {
            continue;
        };
        let host = match host {
            Value::BulkString(host) => String::from_utf8_lossy(&host).into_owned(),
            Value::Nil => String::new(),
            _ => continue,
        };
        let host = match host.as_str() {
            "" | "0.0.0.0" | "::" => answering_host.to_owned(),
            "?" => continue,
            _ => host,
        };
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if !host.is_empty() && !found.iter().any(|(h, p)| *h == host && *p == port) {
            found.push((host, port));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support;

    /// What a Redis before 6 answers to `SCAN … TYPE`, `ERR syntax error`,
    /// is recognised; a Redis 7 answers it to any unknown SCAN option.
    #[tokio::test]
    async fn an_unknown_scan_option_is_recognised_as_a_syntax_error() {
        let redis = support::redis_url_for_tests();
        let mut server = Server::connect(redis.url(), Duration::from_secs(5))
            .await
            .unwrap();
        let mut scan = scan_command(0, "*", false);
        scan.arg("NOSUCHOPTION").arg("string");
        let node = server.nodes()[0].clone();
        let Err(CliError::Redis { source, .. }) =
            server.query_node::<Value>(&node, &scan, "SCAN").await
        else {
            panic!("SCAN with an unknown option succeeded");
        };
        assert!(is_syntax_error(&source), "{source}");
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!is_syntax_error(&refused));
        // The real step, with TYPE, works on this server.
        assert!(server.scan_step(&node, 0, "*").await.is_ok());
        assert!(server.scan_by_type);
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn masters_are_the_first_node_of_each_slot_range_once() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(99),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![
                Value::Int(100),
                Value::Int(199),
                node("10.0.0.2", 7001),
            ]),
            Value::Array(vec![
                Value::Int(200),
                Value::Int(299),
                node("10.0.0.1", 7000),
            ]),
        ]);
        assert_eq!(
            masters(reply, "seed"),
            [("10.0.0.1".to_owned(), 7000), ("10.0.0.2".to_owned(), 7001)]
        );
        assert!(masters(Value::Nil, "seed").is_empty());
    }

    #[test]
    fn masters_without_a_host_are_on_the_answering_node_and_unknown_ones_left_out() {
        let range = |start, master: Value| {
            Value::Array(vec![Value::Int(start), Value::Int(start + 9), master])
        };
        let nil_host = Value::Array(vec![Value::Nil, Value::Int(7004)]);
        let reply = Value::Array(vec![
            range(0, node("", 7000)),
            range(10, node("0.0.0.0", 7001)),
            range(20, node("::", 7002)),
            range(30, node("?", 7003)),
            range(40, nil_host),
            range(50, node("10.0.0.9", 7005)),
        ]);
        let found: Vec<String> = masters(reply, "seed.example")
            .into_iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        assert_eq!(
            found,
            [
                "seed.example:7000",
                "seed.example:7001",
                "seed.example:7002",
                "seed.example:7004",
                "10.0.0.9:7005"
            ]
        );
        // Only unknown masters: none found (connect says so).
        let unknown = Value::Array(vec![range(0, node("?", 7000))]);
        assert!(masters(unknown, "seed").is_empty());
    }
}
