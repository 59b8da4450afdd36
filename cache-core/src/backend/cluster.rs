//! The Redis Cluster backend: the same breaker, time budget and leases as
//! for one Redis (see [`RedisBackend`]), over redis-rs's cluster connection.
//!
//! A `ClusterConnection` is itself multiplexed and routes every command to
//! the master of its key's hash slot (following `MOVED`/`ASK` and refreshing
//! the slot map), so it is leased and shared exactly like a single server's
//! `MultiplexedConnection`. deadpool manages it through [`ClusterManager`]
//! rather than deadpool-redis's cluster `Manager`, because that one cannot
//! set connect/response timeouts, retries or TLS roots: without them a dead
//! master would stall a call through redis-rs's default 16 retries instead
//! of failing open within the configured timeout.
//!
//! What differs from one server:
//! * `get_many`: the same `MGET`, which redis-rs splits into one `MGET` per
//!   hash slot, sent concurrently and recombined in order;
//! * `set_many`: one pipeline per hash slot, sent concurrently;
//! * `delete_matching`: `SCAN` on every master (a cluster `SCAN` only walks
//!   one node), `UNLINK` routed per slot;
//! * locks: `SET NX PX` and the compare-and-delete script touch one key, so
//!   one slot, and route like any other command.

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use deadpool_redis::redis::{self, RedisError};
use deadpool_redis::PoolError;

use super::hash_slot::hash_slot;
use super::node_breakers::{NodeBreakers, Route, SlotRange};
use super::redis::{connection_info, Entry, RedisSettings};
use super::shared_connection::LeasePool;
use super::RedisBackend;
use crate::error::{Error, Result};
use crate::key::KeyMatcher;
use crate::redacted_url::RedactedUrl;

/// Creates cluster connections with this crate's timeouts and TLS roots, and
/// health-checks them with `PING` when a lease is renewed.
pub(crate) struct ClusterManager {
    client: ClusterClient,
    /// The seed nodes' (host, port), asked in turn for `CLUSTER NODES`.
    seeds: Vec<(String, u16)>,
}

impl managed::Manager for ClusterManager {
    type Type = ClusterConnection;
    type Error = RedisError;

    async fn create(&self) -> std::result::Result<ClusterConnection, RedisError> {
        self.client.get_async_connection().await
    }

    async fn recycle(
        &self,
        conn: &mut ClusterConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        redis::cmd("PING").query_async::<String>(conn).await?;
        Ok(())
    }
}

/// A deadpool pool of cluster connections.
pub(crate) type ClusterPool = managed::Pool<ClusterManager>;

impl LeasePool for ClusterPool {
    type Conn = ClusterConnection;
    type Object = managed::Object<ClusterManager>;

    fn checkout(
        &self,
    ) -> impl std::future::Future<Output = std::result::Result<Self::Object, PoolError>> + Send
    {
        self.get()
    }

    fn connection(object: &Self::Object) -> ClusterConnection {
        (**object).clone()
    }

    fn detach(object: Self::Object) {
        drop(managed::Object::take(object));
    }

    /// `CLUSTER SLOTS`, asked of the given masters in turn (those with a
    /// closed breaker first), then of any node: at most one response
    /// timeout per node asked, in the background.
    async fn slot_ranges(
        mut conn: ClusterConnection,
        nodes: Vec<(String, u16)>,
    ) -> Option<Vec<SlotRange>> {
        let targets = nodes
            .into_iter()
            .map(|(host, port)| SingleNodeRoutingInfo::ByAddress { host, port })
            .chain([SingleNodeRoutingInfo::Random]);
        for target in targets {
            let asked = conn
                .route_command(
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(target),
                )
                .await;
            if let Some(ranges) = asked.ok().as_ref().and_then(parse_cluster_slots) {
                return Some(ranges);
            }
        }
        None
    }
}

impl RedisBackend<ClusterPool> {
    /// A backend for the cluster the `seeds` (node URLs, see
    /// `CacheBuilder::cluster_urls`) belong to; `settings.url` is not used.
    /// Validates the URLs but makes no connection yet.
    pub(crate) fn cluster(seeds: &[String], settings: RedisSettings) -> Result<Self> {
        if seeds.is_empty() {
            return Err(Error::Config(
                "cluster_urls needs at least one node URL, e.g. redis://10.0.0.1:7000".into(),
            ));
        }
        let url = RedactedUrl::list(seeds);
        let invalid = |source| Error::InvalidUrl {
            url: url.clone(),
            source,
        };
        let infos = seeds
            .iter()
            .map(|seed| connection_info(seed, None))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let seeds = infos
            .iter()
            .filter_map(|info| match info.addr() {
                redis::ConnectionAddr::Tcp(host, port)
                | redis::ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
                _ => None,
            })
            .collect();
        let client = ClusterClientBuilder::new(infos)
            .connection_timeout(settings.connect_timeout)
            .response_timeout(settings.response_timeout)
            // A failing node is the circuit breaker's business: one retry
            // follows a MOVED/ASK redirection, more would only stall callers.
            .retries(1);
        #[cfg(feature = "tls")]
        let client = match &settings.tls_ca {
            Some(ca) => client.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            }),
            None => client,
        };
        #[cfg(not(feature = "tls"))]
        if settings.tls_ca.is_some() {
            return Err(Error::Config(
                "a TLS CA file needs the `tls` cargo feature of cache-memoize".into(),
            ));
        }
        let client = client.build().map_err(invalid)?;
        let pool = managed::Pool::builder(ClusterManager { client, seeds })
            .max_size((settings.connections.max(1) + 1) * 3)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.response_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let breakers = NodeBreakers::cluster(settings.breaker);
        Ok(Self::with_pool(pool, url, &settings, breakers))
    }

    /// One `MGET` per hash slot, all sent at once, each answering to the
    /// breaker of its slot's master, recombined in order.
    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            by_slot.entry(hash_slot(key)).or_default().push(i);
        }
        let reads = by_slot.into_iter().map(|(slot, indices)| async move {
            let group: Vec<&String> = indices.iter().map(|&i| &keys[i]).collect();
            let values: Vec<Option<Vec<u8>>> = self
                .run(Route::Slot(slot), |mut c| async move {
                    redis::cmd("MGET").arg(&group).query_async(&mut c).await
                })
                .await?;
            Ok::<_, Error>((indices, values))
        });
        let mut found = vec![None; keys.len()];
        for (indices, values) in futures::future::try_join_all(reads).await? {
            for (i, value) in indices.into_iter().zip(values) {
                found[i] = value;
            }
        }
        Ok(found)
    }

    /// One pipeline of `SET key value [PX ttl]` per hash slot (a pipeline
    /// is routed to one node, and its keys must share a slot), all sent at once.
    pub(crate) async fn set_many(&self, entries: &[Entry], ttl: Option<Duration>) -> Result<()> {
        let mut by_slot: BTreeMap<u16, Vec<&Entry>> = BTreeMap::new();
        for entry in entries {
            by_slot.entry(hash_slot(&entry.0)).or_default().push(entry);
        }
        let writes = by_slot
            .into_iter()
            .map(|(slot, group)| self.write_pipeline(group, ttl, Route::Slot(slot)));
        futures::future::try_join_all(writes).await.map(drop)
    }

    /// `SCAN … MATCH` on every master, `UNLINK` of what matched (redis-rs
    /// splits it per slot): a cluster-wide prefix delete.
    ///
    /// A master that is flagged failed (or has no address), or does not
    /// answer, keeps its entries, which it serves again when it is back: the
    /// other masters are cleared all the same, and the result is then
    /// [`Error::MastersUnreached`], naming them, rather than a count that
    /// looks complete.
    pub(crate) async fn delete_matching(&self, matcher: &KeyMatcher) -> Result<u64> {
        let nodes = self.cluster_nodes().await?;
        let mut deleted = 0;
        let mut unreached = Vec::new();
        for master in masters(&nodes) {
            let address = format!("{}:{}", master.host, master.port);
            if let Some(flag) = master.unusable {
                unreached.push(format!("{address} (flagged `{flag}` in CLUSTER NODES)"));
                continue;
            }
            match self
                .delete_matching_on(&master.host, master.port, matcher)
                .await
            {
                Ok(n) => deleted += n,
                Err(e) => unreached.push(format!("{address} ({e})")),
            }
        }
        if unreached.is_empty() {
            Ok(deleted)
        } else {
            Err(Error::MastersUnreached { unreached, deleted })
        }
    }

    /// `CLUSTER NODES` from a node that answers: any node first, then the
    /// seed nodes in turn (the first one asked may be the one that is down).
    async fn cluster_nodes(&self) -> Result<String> {
        let ask = |routing: SingleNodeRoutingInfo| {
            self.run(Route::Any, move |mut c| async move {
                let value = c
                    .route_command(
                        redis::cmd("CLUSTER").arg("NODES").clone(),
                        RoutingInfo::SingleNode(routing),
                    )
                    .await?;
                Ok(redis::from_redis_value(value)?)
            })
        };
        let mut outcome = ask(SingleNodeRoutingInfo::Random).await;
        for (host, port) in &self.connections.pool().manager().seeds {
            if outcome.is_ok() {
                break;
            }
            outcome = ask(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: *port,
            })
            .await;
        }
        outcome
    }

    async fn delete_matching_on(&self, host: &str, port: u16, matcher: &KeyMatcher) -> Result<u64> {
        let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.to_owned(),
            port,
        });
        let address = format!("{host}:{port}");
        // The UNLINKs went to this node over the cluster connection's one
        // connection to it; a WAIT routed there follows them on it.
        self.scan_and_unlink(
            matcher,
            Route::Node(&address),
            |mut c, scan| {
                let node = node.clone();
                async move { Ok(redis::from_redis_value(c.route_command(scan, node).await?)?) }
            },
            |mut c, wait| {
                let node = node.clone();
                async move { Ok(redis::from_redis_value(c.route_command(wait, node).await?)?) }
            },
        )
        .await
    }
}

/// The slot ranges and their masters' `host:port` in a `CLUSTER SLOTS`
/// reply (`[[start, end, [host, port, id, …], replicas…], …]`); ranges whose
/// master has no known endpoint (`""` or `"?"`) are left out.
fn parse_cluster_slots(reply: &redis::Value) -> Option<Vec<SlotRange>> {
    use redis::Value;
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut parsed = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        let (Some(host), Some(Value::Int(port))) = (master.first().and_then(text), master.get(1))
        else {
            return None;
        };
        if host.is_empty() || host == "?" {
            continue;
        }
        parsed.push((
            u16::try_from(*start).ok()?,
            u16::try_from(*end).ok()?,
            format!("{host}:{port}"),
        ));
    }
    Some(parsed)
}

/// A master in a `CLUSTER NODES` reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Master {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `fail` or `noaddr` when it cannot be reached.
    pub(crate) unusable: Option<&'static str>,
}

/// The masters in a `CLUSTER NODES` reply. Nodes still in `handshake` are
/// not members yet and are left out.
pub(crate) fn masters(nodes: &str) -> Vec<Master> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags: Vec<&str> = fields.next()?.split(',').collect();
            if !flags.contains(&"master") || flags.contains(&"handshake") {
                return None;
            }
            let unusable = ["fail", "noaddr"]
                .into_iter()
                .find(|flag| flags.contains(flag));
            // host:port@cport[,hostname]
            let host_port = address.split('@').next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            Some(Master {
                host: host.to_owned(),
                port: port.parse().ok()?,
                unusable,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ranges_are_read_from_cluster_slots() {
        use redis::Value;
        let node = |host: &str, port| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 30001),
                node("127.0.0.1", 30004),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node("", 30002)]),
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                node("10.0.0.3", 30003),
            ]),
        ]);
        assert_eq!(
            parse_cluster_slots(&reply),
            Some(vec![
                (0, 5460, "127.0.0.1:30001".into()),
                (10923, 16383, "10.0.0.3:30003".into()),
            ])
        );
        assert_eq!(parse_cluster_slots(&Value::Okay), None);
    }

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:30002@40002 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:30003@40003,host3 master,fail - 0 0 3 connected
d4 127.0.0.1:30004@40004 slave a1 0 0 1 connected
";
        let master = |port, unusable| Master {
            host: "127.0.0.1".into(),
            port,
            unusable,
        };
        assert_eq!(
            masters(nodes),
            vec![
                master(30001, None),
                master(30002, None),
                master(30003, Some("fail"))
            ]
        );
    }
}
