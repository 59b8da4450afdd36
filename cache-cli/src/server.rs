//! The Redis being inspected: one server, or every master of a Cluster.
//!
//! Key commands go through redis-rs (which routes them on a Cluster);
//! keyspace walks (`SCAN`) and their follow-up pipelines run per node,
//! because a `SCAN` cursor belongs to one node.

use std::time::Duration;

use cache_core::redis::cluster::ClusterClientBuilder;
use cache_core::redis::cluster_async::ClusterConnection;
use cache_core::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use cache_core::redis::{
    self, aio::MultiplexedConnection, AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline,
    RedisError, Value,
};
use cache_core::RedactedUrl;

use crate::error::CliError;

/// One node to walk: the single server, or a Cluster master's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node(Option<(String, u16)>);

/// A connected Redis.
pub struct Server {
    connection: Connection,
    nodes: Vec<Node>,
    url: RedactedUrl,
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
        let connect_error = |source| CliError::Connect {
            url: redacted.clone(),
            source,
        };
        let client = redis::Client::open(url).map_err(connect_error)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let mut single = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(connect_error)?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut single)
            .await
            .map_err(connect_error)?;
        if !info.contains("cluster_enabled:1") {
            return Ok(Server {
                connection: Connection::Single(single),
                nodes: vec![Node(None)],
                url: redacted,
            });
        }
        let mut cluster = ClusterClientBuilder::new(vec![url])
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(connect_error)?
            .get_async_connection()
            .await
            .map_err(connect_error)?;
        let slots = cluster
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .map_err(connect_error)?;
        Ok(Server {
            connection: Connection::Cluster(cluster),
            nodes: masters(slots).into_iter().map(|m| Node(Some(m))).collect(),
            url: redacted,
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
    /// reply per command.
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
            (Connection::Single(c), _) => pipe.query_async(c).await,
            (Connection::Cluster(c), None) => pipe.query_async(c).await,
        };
        result.map_err(|source| self.failed(doing, source))
    }

    /// One `SCAN` step on `node`: the next cursor (0: done) and the keys.
    pub async fn scan_step(
        &mut self,
        node: &Node,
        cursor: u64,
        glob: &str,
    ) -> Result<(u64, Vec<String>), CliError> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(glob)
            .arg("COUNT")
            .arg(SCAN_BATCH)
            .arg("TYPE")
            .arg("string");
        self.query_node(node, &scan, "SCAN").await
    }

    fn failed(&self, doing: &'static str, source: RedisError) -> CliError {
        CliError::Redis {
            url: self.url.clone(),
            doing,
            source,
        }
    }
}

/// The masters in a `CLUSTER SLOTS` reply (`[[start, end, [host, port,
/// id, …], replicas…], …]`), each once, in reply order.
fn masters(slots: Value) -> Vec<(String, u16)> {
    let mut found: Vec<(String, u16)> = Vec::new();
    let Ok(ranges) = redis::from_redis_value::<Vec<Vec<Value>>>(slots) else {
        return found;
    };
    for range in ranges {
        let Some(master) = range.into_iter().nth(2) else {
            continue;
        };
        let Ok(fields) = redis::from_redis_value::<Vec<Value>>(master) else {
            continue;
        };
        let mut fields = fields.into_iter();
        let (Some(host), Some(port)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Ok(host), Ok(port)) = (
            redis::from_redis_value::<String>(host),
            redis::from_redis_value::<u16>(port),
        ) else {
            continue;
        };
        if !found.iter().any(|(h, p)| *h == host && *p == port) {
            found.push((host, port));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

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
            masters(reply),
            [("10.0.0.1".to_owned(), 7000), ("10.0.0.2".to_owned(), 7001)]
        );
        assert!(masters(Value::Nil).is_empty());
    }
}
