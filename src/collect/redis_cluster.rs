//! Redis Cluster layout: hash slots (CRC16 of the key or its `{hash tag}`), and the shards,
//! primaries and replicas read with `CLUSTER SHARDS` (Redis 7+) or `CLUSTER NODES` (before),
//! plus the cluster-wide facts of `CLUSTER INFO`, in one round trip to one node.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

use super::redis::{build_client, describe, name_connection};
use super::topology::{node_url, Layout, NodeSpec, Owner, Role, Source};
use super::{BoxFuture, CollectError};
use crate::config::ResolvedRedis;
use crate::metrics::{label, FamilySet};
use crate::names as n;

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The hash slot of a key: only the part inside the first non-empty `{…}` counts.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter().position(|&b| b == b'}').filter(|&close| close > 0).map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

/// `CLUSTER INFO` fields as target-wide families.
pub fn info_families(text: &str, target: &str, out: &mut FamilySet) {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.trim_end().strip_prefix(k).and_then(|r| r.strip_prefix(':')).map(str::to_string))
    };
    let num = |k: &str| get(k).and_then(|v| v.parse::<f64>().ok());
    let t = || label("target", target.to_string());
    if let Some(state) = get("cluster_state") {
        out.add(&n::REDIS_CLUSTER_STATE, vec![t()], if state == "ok" { 1.0 } else { 0.0 });
    }
    for state in ["assigned", "ok", "pfail", "fail"] {
        if let Some(v) = num(&format!("cluster_slots_{state}")) {
            out.add(&n::REDIS_CLUSTER_SLOTS, vec![t(), label("state", state)], v);
        }
    }
    if let Some(v) = num("cluster_known_nodes") {
        out.add(&n::REDIS_CLUSTER_KNOWN_NODES, vec![t()], v);
    }
    if let Some(v) = num("cluster_size") {
        out.add(&n::REDIS_CLUSTER_SHARDS, vec![t()], v);
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Key/value pairs of a RESP2 flat array or a RESP3 map.
fn pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(a) => a.chunks_exact(2).filter_map(|p| Some((text(&p[0])?, &p[1]))).collect(),
        Value::Map(m) => m.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => Vec::new(),
    }
}

fn field<'a>(p: &'a [(String, &'a Value)], key: &str) -> Option<&'a Value> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// `host:port` for a node, bracketing IPv6 hosts.
fn addr(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Nodes, and the inclusive slot ranges with the primary serving each.
pub type Parsed = (Vec<NodeSpec>, Vec<(u16, u16, String)>);

/// Parses `CLUSTER SHARDS`. `tls`: connect to `tls-port` where a node announces one.
pub fn parse_shards(v: &Value, tls: bool) -> Result<Parsed, String> {
    let Value::Array(shards) = v else { return Err("CLUSTER SHARDS: not an array".into()) };
    let (mut nodes, mut ranges) = (Vec::new(), Vec::new());
    for shard in shards {
        let p = pairs(shard);
        let slots: Vec<u16> = match field(&p, "slots") {
            Some(Value::Array(a)) => a.iter().filter_map(|s| text(s)?.parse().ok()).collect(),
            _ => Vec::new(),
        };
        let Some(Value::Array(members)) = field(&p, "nodes") else {
            return Err("CLUSTER SHARDS: a shard without nodes".into());
        };
        let mut primary: Option<(bool, String)> = None;
        for m in members {
            let f = pairs(m);
            let s = |k: &str| field(&f, k).and_then(text);
            let (Some(id), Some(role)) = (s("id"), s("role")) else {
                return Err("CLUSTER SHARDS: a node without id or role".into());
            };
            let host = s("endpoint").filter(|e| !e.is_empty() && e != "?").or_else(|| s("ip"));
            let port =
                if tls { s("tls-port").or_else(|| s("port")) } else { s("port").or_else(|| s("tls-port")) };
            let (Some(host), Some(port)) = (host, port) else { continue };
            let a = addr(&host, &port);
            let role = if role == "master" { Role::Primary } else { Role::Replica };
            let online = s("health").as_deref() != Some("fail");
            if role == Role::Primary && primary.as_ref().is_none_or(|(was_online, _)| !was_online && online) {
                primary = Some((online, a.clone()));
            }
            nodes.push(NodeSpec { addr: a, id, role, collect: true });
        }
        if let Some((_, p)) = primary {
            for r in slots.chunks_exact(2) {
                ranges.push((r[0], r[1], p.clone()));
            }
        }
    }
    Ok((nodes, ranges))
}

/// Parses `CLUSTER NODES` (Redis before 7, and clusters that refuse `CLUSTER SHARDS`).
pub fn parse_nodes(text: &str) -> Result<Parsed, String> {
    let (mut nodes, mut ranges) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return Err("CLUSTER NODES: a line with fewer than 8 fields".into());
        }
        let flags: Vec<&str> = f[2].split(',').collect();
        if flags.iter().any(|x| matches!(*x, "handshake" | "noaddr")) {
            continue;
        }
        // ip:port@cport[,hostname]
        let a = f[1].split(['@', ',']).next().unwrap_or("");
        let Some((host, port)) = a.rsplit_once(':') else { continue };
        if host.is_empty() || port == "0" {
            continue;
        }
        let a = addr(host.trim_start_matches('[').trim_end_matches(']'), port);
        let role = if flags.contains(&"master") { Role::Primary } else { Role::Replica };
        if role == Role::Primary {
            for s in &f[8..] {
                if s.starts_with('[') {
                    continue; // a slot being imported or migrated: still served by its owner
                }
                let (lo, hi) = s.split_once('-').unwrap_or((s, s));
                if let (Ok(lo), Ok(hi)) = (lo.parse(), hi.parse()) {
                    ranges.push((lo, hi, a.clone()));
                }
            }
        }
        nodes.push(NodeSpec { addr: a, id: f[0].to_string(), role, collect: true });
    }
    Ok((nodes, ranges))
}

/// Reads a cluster's layout from a known node, or from the seeds when none answers.
pub struct ClusterSource {
    target: ResolvedRedis,
    seeds: Vec<String>,
    /// The server refused `CLUSTER SHARDS` (Redis 6): use `CLUSTER NODES`.
    nodes_only: bool,
}

impl ClusterSource {
    /// A source for `target`, bootstrapping from `seeds` (`host:port`).
    pub fn new(target: ResolvedRedis, seeds: Vec<String>) -> Self {
        Self { target, seeds, nodes_only: false }
    }

    async fn query(&mut self, conn: &mut MultiplexedConnection) -> Result<Layout, CollectError> {
        loop {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            pipe.cmd("CLUSTER").arg(if self.nodes_only { "NODES" } else { "SHARDS" });
            pipe.cmd("CLUSTER").arg("INFO");
            let replies: Vec<redis::RedisResult<Value>> =
                pipe.query_async(conn).await.map_err(|e| CollectError::Query(describe(&e)))?;
            let mut it = replies.into_iter();
            let (layout, info) = (it.next(), it.next());
            let layout = match layout {
                Some(Ok(v)) => v,
                Some(Err(e))
                    if !self.nodes_only
                        && describe(&e).to_ascii_lowercase().contains("unknown subcommand") =>
                {
                    self.nodes_only = true;
                    continue;
                }
                Some(Err(e)) => return Err(CollectError::Query(format!("CLUSTER: {}", describe(&e)))),
                None => return Err(CollectError::Query("CLUSTER: empty reply".into())),
            };
            let parsed = if self.nodes_only {
                parse_nodes(&text(&layout).unwrap_or_default())
            } else {
                parse_shards(&layout, self.target.url.is_tls())
            };
            let (nodes, ranges) = parsed.map_err(CollectError::Query)?;
            if nodes.is_empty() {
                return Err(CollectError::Query("CLUSTER: no nodes".into()));
            }
            let mut facts = FamilySet::new();
            if let Some(Ok(v)) = info {
                info_families(&text(&v).unwrap_or_default(), &self.target.name, &mut facts);
            }
            return Ok(Layout { nodes, owner: Owner::Slots(ranges), families: facts.into_families() });
        }
    }

    async fn ask_seed(&mut self, seed: &str) -> Result<Layout, CollectError> {
        let mut t = self.target.clone();
        t.url = node_url(&self.target.url, seed).map_err(CollectError::Connect)?;
        let client = build_client(&t).map_err(CollectError::Connect)?;
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.target.timeout))
            .set_response_timeout(Some(self.target.timeout));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| CollectError::Connect(format!("seed {seed}: {}", describe(&e))))?;
        if let Err(e) = name_connection(&mut conn).await {
            tracing::debug!(target_name = %self.target.name, "seed {seed} refused CLIENT SETNAME: {e}");
        }
        self.query(&mut conn).await
    }
}

impl Source for ClusterSource {
    fn refresh(
        &mut self,
        conns: Vec<(String, MultiplexedConnection)>,
    ) -> BoxFuture<'_, Result<Layout, CollectError>> {
        Box::pin(async move {
            let mut last = CollectError::Connect("no node known yet".into());
            // Steady state: ask a node we already hold a connection to (no extra connection).
            // Each attempt within a share of the deadline, so one hung node cannot use it all.
            let per = self.target.timeout.mul_f64(0.15);
            for (addr, mut conn) in conns {
                let answer = tokio::time::timeout(per, self.query(&mut conn)).await;
                match answer.unwrap_or(Err(CollectError::Timeout(per))) {
                    Ok(l) => return Ok(l),
                    Err(e) => {
                        tracing::debug!(target_name = %self.target.name, node = %addr, "topology read failed: {e}");
                        last = e;
                    }
                }
            }
            for seed in self.seeds.clone() {
                match self.ask_seed(&seed).await {
                    Ok(l) => return Ok(l),
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster_spec() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"), "empty tag: whole key");
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"{bull}:q:wait"), key_slot(b"bull"));
    }

    #[test]
    fn cluster_nodes_text_from_redis_7() {
        let text = include_str!("../../tests/fixtures/cluster_nodes_failover.txt");
        let (nodes, ranges) = parse_nodes(text).expect("parses");
        assert_eq!(nodes.len(), 6);
        let primaries: Vec<&str> =
            nodes.iter().filter(|n| n.role == Role::Primary).map(|n| n.addr.as_str()).collect();
        assert_eq!(primaries.len(), 4, "the failed old primary is still listed: {primaries:?}");
        assert_eq!(ranges.iter().map(|(a, b, _)| (b - a) as u32 + 1).sum::<u32>(), 16384);
        assert!(parse_nodes("garbage line\n").is_err());
    }

    #[test]
    fn cluster_info_facts() {
        let mut out = FamilySet::new();
        info_families(
            "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:10922\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:5462\r\ncluster_known_nodes:6\r\ncluster_size:3\r\n",
            "t",
            &mut out,
        );
        let f = out.into_families();
        let get =
            |name: &str| f.iter().find(|f| f.name == name).map(|f| f.samples.clone()).unwrap_or_default();
        assert_eq!(get("redline_redis_cluster_state")[0].value, crate::metrics::Value::Number(0.0));
        assert_eq!(get("redline_redis_cluster_slots").len(), 4);
        assert_eq!(get("redline_redis_cluster_shards")[0].value, crate::metrics::Value::Number(3.0));
    }

    /// A `CLUSTER SHARDS` reply as Redis 7.0 sends it (RESP2), after a failover: the dead old
    /// primary alone in a shard without slots, its former replica now serving them.
    fn shards_after_failover() -> Value {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let node = |id: &str, port: i64, role: &str, health: &str| {
            Value::Array(vec![
                b("id"),
                b(id),
                b("port"),
                Value::Int(port),
                b("ip"),
                b("127.0.0.1"),
                b("endpoint"),
                b("127.0.0.1"),
                b("role"),
                b(role),
                b("replication-offset"),
                Value::Int(14),
                b("health"),
                b(health),
            ])
        };
        let shard = |slots: &[i64], nodes: Vec<Value>| {
            Value::Array(vec![
                b("slots"),
                Value::Array(slots.iter().map(|s| Value::Int(*s)).collect()),
                b("nodes"),
                Value::Array(nodes),
            ])
        };
        Value::Array(vec![
            shard(&[], vec![node("old", 7001, "master", "fail")]),
            shard(
                &[0, 5460],
                vec![node("a", 7000, "master", "online"), node("a2", 7004, "replica", "online")],
            ),
            shard(&[5461, 10922], vec![node("new", 7005, "master", "online")]),
            shard(
                &[10923, 16383],
                vec![node("c", 7002, "master", "online"), node("c2", 7003, "replica", "online")],
            ),
        ])
    }

    #[test]
    fn cluster_shards_reply_from_redis_7() {
        let (nodes, ranges) = parse_shards(&shards_after_failover(), false).expect("parses");
        assert_eq!(nodes.len(), 6);
        assert_eq!(
            ranges,
            vec![
                (0, 5460, "127.0.0.1:7000".to_string()),
                (5461, 10922, "127.0.0.1:7005".to_string()),
                (10923, 16383, "127.0.0.1:7002".to_string()),
            ]
        );
        let old = nodes.iter().find(|n| n.id == "old").expect("old primary listed");
        assert_eq!((old.addr.as_str(), old.role), ("127.0.0.1:7001", Role::Primary));
    }

    #[test]
    fn garbage_shards_reply_is_an_error_not_a_panic() {
        assert!(parse_shards(&Value::Int(1), false).is_err());
        let bad = Value::Array(vec![Value::Array(vec![Value::BulkString(b"slots".to_vec())])]);
        assert!(parse_shards(&bad, false).is_err());
    }
}
