//! Sentinel-managed primaries: every collection asks each sentinel (one pipelined round trip
//! per sentinel, all at once) where the primary is, what replicas it has and whether a failover
//! could be authorised; a background task subscribes to `+switch-master` so a failover is seen
//! the moment a sentinel announces it (and, on connection loss, moves to the next sentinel while
//! the collections keep re-asking).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};

use super::backoff::Backoff;
use super::redis::{build_client, describe};
use super::topology::{node_url, Layout, NodeSpec, Owner, Role, Source};
use super::{BoxFuture, CollectError};
use crate::config::{ResolvedRedis, Topology};
use crate::metrics::{label, Family, FamilySet};
use crate::names as n;

/// What the `+switch-master` subscription saw.
#[derive(Debug, Default)]
struct Events {
    /// Announcements for our primary.
    switches: AtomicU64,
    /// The primary the latest announcement named.
    latest: Mutex<Option<String>>,
}

/// One sentinel and its connection.
struct Sentinel {
    addr: String,
    client: Client,
    conn: Option<MultiplexedConnection>,
    backoff: Backoff,
}

/// What one sentinel answered.
#[derive(Debug, Default, Clone, PartialEq)]
struct View {
    primary: Option<String>,
    replicas: Vec<String>,
    masters: Option<f64>,
    quorum_ok: bool,
    sentinels: Option<f64>,
    replica_count: Option<f64>,
}

/// Reads a Sentinel-managed primary's layout.
pub struct SentinelSource {
    target: String,
    master: String,
    replicas: bool,
    timeout: Duration,
    sentinels: Vec<Sentinel>,
    events: Arc<Events>,
    /// The `+switch-master` listener, started with the first refresh (inside the runtime).
    subscriber: Option<tokio::task::JoinHandle<()>>,
    /// Per-sentinel answers of the last refresh (`None`: did not answer).
    views: Vec<Option<View>>,
}

impl Drop for SentinelSource {
    fn drop(&mut self) {
        if let Some(s) = self.subscriber.take() {
            s.abort();
        }
    }
}

/// Settings for talking to one sentinel: the target's scheme and TLS files, the sentinels' own
/// password, no ACL user and no database (sentinels have none).
fn sentinel_target(
    t: &ResolvedRedis,
    addr: &str,
    password: &Option<crate::secret::Secret>,
) -> Result<ResolvedRedis, String> {
    let mut s = t.clone();
    let url = node_url(&t.url, addr)?;
    let mut u = url::Url::parse(&url.shown()).map_err(|e| format!("sentinel {addr}: {e}"))?;
    u.set_path("");
    let _ = u.set_username("");
    s.url = crate::secret::RedisUrl::parse(u.as_str()).map_err(|e| format!("sentinel {addr}: {e}"))?;
    s.username = None;
    s.password = password.clone();
    s.queues = Vec::new();
    Ok(s)
}

impl SentinelSource {
    /// A source for a Sentinel target; starts the `+switch-master` subscription.
    pub fn new(target: ResolvedRedis) -> Result<Self, String> {
        let Topology::Sentinel { sentinels, master_name, replicas, password } = &target.topology else {
            return Err(format!("redis target {}: not a Sentinel target", target.name));
        };
        let mut list = Vec::new();
        for addr in sentinels {
            let client = build_client(&sentinel_target(&target, addr, password)?)?;
            list.push(Sentinel {
                addr: addr.clone(),
                client,
                conn: None,
                backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            });
        }
        Ok(Self {
            target: target.name.clone(),
            master: master_name.clone(),
            replicas: *replicas,
            timeout: target.timeout,
            views: vec![None; list.len()],
            sentinels: list,
            events: Arc::new(Events::default()),
            subscriber: None,
        })
    }
}

/// Asks one sentinel everything in one pipelined round trip.
async fn ask(s: &mut Sentinel, master: &str, timeout: Duration) -> Result<View, String> {
    if s.conn.is_none() {
        if !s.backoff.ready() {
            return Err("backing off".into());
        }
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        match s.client.get_multiplexed_async_connection_with_config(&cfg).await {
            Ok(mut c) => {
                s.backoff.succeeded();
                if let Err(e) = super::redis::name_connection(&mut c).await {
                    tracing::debug!("sentinel refused CLIENT SETNAME: {e}");
                }
                s.conn = Some(c);
            }
            Err(e) => {
                s.backoff.failed();
                return Err(describe(&e));
            }
        }
    }
    let Some(conn) = s.conn.as_mut() else { return Err("no connection".into()) };
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    pipe.cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(master);
    pipe.cmd("SENTINEL").arg("MASTER").arg(master);
    pipe.cmd("SENTINEL").arg("REPLICAS").arg(master);
    pipe.cmd("SENTINEL").arg("CKQUORUM").arg(master);
    pipe.cmd("SENTINEL").arg("MASTERS");
    let replies: Vec<redis::RedisResult<Value>> = match pipe.query_async(conn).await {
        Ok(r) => r,
        Err(e) => {
            s.conn = None;
            s.backoff.failed();
            return Err(describe(&e));
        }
    };
    Ok(view(&replies))
}

/// Interprets the five replies of [`ask`].
fn view(r: &[redis::RedisResult<Value>]) -> View {
    let ok = |i: usize| r.get(i).and_then(|x| x.as_ref().ok());
    let mut v = View::default();
    if let Some(Value::Array(a)) = ok(0) {
        if let (Some(h), Some(p)) = (a.first().and_then(text), a.get(1).and_then(text)) {
            v.primary = Some(addr(&h, &p));
        }
    }
    if let Some(m) = ok(1) {
        let f = fields(m);
        let num = |k: &str| f.get(k).and_then(|x| x.parse::<f64>().ok());
        v.sentinels = num("num-other-sentinels").map(|x| x + 1.0);
        v.replica_count = num("num-slaves");
    }
    if let Some(Value::Array(list)) = ok(2) {
        for rep in list {
            let f = fields(rep);
            if let (Some(h), Some(p)) = (f.get("ip"), f.get("port")) {
                v.replicas.push(addr(h, p));
            }
        }
    }
    v.quorum_ok = matches!(ok(3), Some(Value::SimpleString(s)) if s.starts_with("OK"))
        || matches!(ok(3), Some(Value::Okay))
        || matches!(ok(3), Some(Value::BulkString(b)) if b.starts_with(b"OK"));
    if let Some(Value::Array(list)) = ok(4) {
        v.masters = Some(list.len() as f64);
    }
    v
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A sentinel's field list (flat array in RESP2, map in RESP3) as strings.
fn fields(v: &Value) -> HashMap<String, String> {
    match v {
        Value::Array(a) => a.chunks_exact(2).filter_map(|p| Some((text(&p[0])?, text(&p[1])?))).collect(),
        Value::Map(m) => m.iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect(),
        _ => HashMap::new(),
    }
}

fn addr(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The primary most sentinels name; a tie goes to the latest `+switch-master`, then to the
/// sentinel listed first.
fn elect(views: &[Option<View>], announced: Option<&str>) -> Option<String> {
    let mut votes: Vec<(String, usize, usize)> = Vec::new();
    for (i, p) in views.iter().enumerate().filter_map(|(i, v)| Some((i, v.as_ref()?.primary.clone()?))) {
        match votes.iter_mut().find(|(a, _, _)| *a == p) {
            Some(v) => v.1 += 1,
            None => votes.push((p, 1, i)),
        }
    }
    votes.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| (Some(b.0.as_str()) == announced).cmp(&(Some(a.0.as_str()) == announced)))
            .then(a.2.cmp(&b.2))
    });
    votes.into_iter().next().map(|v| v.0)
}

impl Source for SentinelSource {
    fn refresh(
        &mut self,
        _conns: Vec<(String, MultiplexedConnection)>,
    ) -> BoxFuture<'_, Result<Layout, CollectError>> {
        Box::pin(async move {
            if self.subscriber.is_none() {
                self.subscriber = Some(tokio::spawn(subscribe(
                    self.target.clone(),
                    self.sentinels.iter().map(|s| (s.addr.clone(), s.client.clone())).collect(),
                    self.master.clone(),
                    self.events.clone(),
                    self.timeout,
                )));
            }
            let (master, timeout) = (self.master.clone(), self.timeout);
            // Each sentinel within a share of the deadline: a hung one is reported down this
            // time instead of stalling the whole read (and leaving stale answers behind).
            let per = timeout.mul_f64(0.25);
            let answers = futures_util::future::join_all(self.sentinels.iter_mut().map(|s| {
                let master = master.clone();
                async move {
                    let r = tokio::time::timeout(per, ask(s, &master, per)).await;
                    r.unwrap_or_else(|_| {
                        s.conn = None;
                        s.backoff.failed();
                        Err(format!("no answer within {per:?}"))
                    })
                }
            }))
            .await;
            let mut last_error = String::from("no sentinel configured");
            self.views = answers
                .into_iter()
                .zip(&self.sentinels)
                .map(|(a, s)| match a {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::debug!(target_name = %self.target, sentinel = %s.addr, "sentinel did not answer: {e}");
                        last_error = format!("sentinel {}: {e}", s.addr);
                        None
                    }
                })
                .collect();
            let announced = self.events.latest.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let Some(primary) = elect(&self.views, announced.as_deref()) else {
                return Err(if self.views.iter().any(Option::is_some) {
                    CollectError::Query(format!("no sentinel knows a primary named {:?}", self.master))
                } else {
                    CollectError::Connect(format!("no sentinel answered (last: {last_error})"))
                });
            };
            let mut nodes = vec![NodeSpec {
                addr: primary.clone(),
                id: primary.clone(),
                role: Role::Primary,
                collect: true,
            }];
            // Replicas as the sentinels that agree on the primary list them.
            for v in self.views.iter().flatten().filter(|v| v.primary.as_deref() == Some(&primary)) {
                for r in &v.replicas {
                    if !nodes.iter().any(|n| n.addr == *r) {
                        nodes.push(NodeSpec {
                            addr: r.clone(),
                            id: r.clone(),
                            role: Role::Replica,
                            collect: self.replicas,
                        });
                    }
                }
            }
            Ok(Layout { nodes, owner: Owner::Primary(Some(primary)), families: Vec::new() })
        })
    }

    fn status(&self) -> Vec<Family> {
        let mut out = FamilySet::new();
        let t = || label("target", self.target.clone());
        for (s, v) in self.sentinels.iter().zip(&self.views) {
            let l = || vec![t(), label("sentinel", s.addr.clone())];
            out.add(&n::REDIS_SENTINEL_UP, l(), if v.is_some() { 1.0 } else { 0.0 });
            let Some(v) = v else { continue };
            out.add(&n::REDIS_SENTINEL_QUORUM_OK, l(), if v.quorum_ok { 1.0 } else { 0.0 });
            if let Some(m) = v.masters {
                out.add(&n::REDIS_SENTINEL_MASTERS, l(), m);
            }
            if let Some(x) = v.sentinels {
                out.add(&n::REDIS_SENTINEL_SENTINELS, l(), x);
            }
            if let Some(x) = v.replica_count {
                out.add(&n::REDIS_SENTINEL_REPLICAS, l(), x);
            }
        }
        out.add(&n::REDIS_SENTINEL_FAILOVERS, vec![t()], self.events.switches.load(Ordering::Relaxed) as f64);
        out.into_families()
    }
}

/// Listens for `+switch-master` on one sentinel at a time; on a lost connection moves on to the
/// next one (collections keep asking every sentinel meanwhile, so nothing is missed for long).
async fn subscribe(
    target: String,
    sentinels: Vec<(String, Client)>,
    master: String,
    events: Arc<Events>,
    timeout: Duration,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    for (at, client) in sentinels.iter().cycle() {
        while !backoff.ready() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (mut sink, mut stream) = match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
            Ok(Ok(ps)) => ps.split(),
            _ => {
                backoff.failed();
                continue;
            }
        };
        if !matches!(tokio::time::timeout(timeout, sink.subscribe("+switch-master")).await, Ok(Ok(()))) {
            backoff.failed();
            continue;
        }
        backoff.succeeded();
        tracing::debug!(target_name = %target, sentinel = %at, "subscribed to +switch-master");
        let mut ping = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let payload: String = msg.get_payload().unwrap_or_default();
                    // <master name> <old ip> <old port> <new ip> <new port>
                    let f: Vec<&str> = payload.split_whitespace().collect();
                    if f.len() == 5 && f[0] == master {
                        let new = addr(f[3], f[4]);
                        tracing::info!(target_name = %target, sentinel = %at, primary = %new, "sentinel announced a new primary");
                        *events.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(new);
                        events.switches.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ = ping.tick() => {
                    // A sentinel that stopped answering looks like silence: ping to tell.
                    if !matches!(tokio::time::timeout(timeout, sink.ping::<Value>()).await, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        tracing::debug!(target_name = %target, sentinel = %at, "+switch-master subscription lost; trying the next sentinel");
        backoff.failed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(primary: &str) -> Option<View> {
        Some(View { primary: Some(primary.into()), ..View::default() })
    }

    #[test]
    fn the_majority_names_the_primary_and_the_announcement_breaks_ties() {
        assert_eq!(elect(&[v("a:1"), v("b:1"), v("b:1")], None).as_deref(), Some("b:1"));
        assert_eq!(elect(&[v("a:1"), v("b:1"), None], None).as_deref(), Some("a:1"));
        assert_eq!(elect(&[v("a:1"), v("b:1"), None], Some("b:1")).as_deref(), Some("b:1"));
        assert_eq!(elect(&[None, None], None), None);
    }

    #[test]
    fn sentinel_replies_are_read_and_garbage_is_harmless() {
        let s = |x: &str| Value::BulkString(x.as_bytes().to_vec());
        let replies = vec![
            Ok(Value::Array(vec![s("127.0.0.1"), s("6380")])),
            Ok(Value::Array(vec![s("num-other-sentinels"), s("2"), s("num-slaves"), s("1")])),
            Ok(Value::Array(vec![Value::Array(vec![s("ip"), s("127.0.0.1"), s("port"), s("6381")])])),
            Ok(Value::SimpleString(
                "OK 3 usable Sentinels. Quorum and failover authorization can be reached".into(),
            )),
            Ok(Value::Array(vec![Value::Nil])),
        ];
        let got = view(&replies);
        assert_eq!(got.primary.as_deref(), Some("127.0.0.1:6380"));
        assert_eq!(got.replicas, vec!["127.0.0.1:6381".to_string()]);
        assert_eq!((got.sentinels, got.replica_count, got.masters), (Some(3.0), Some(1.0), Some(1.0)));
        assert!(got.quorum_ok);
        assert_eq!(view(&[Ok(Value::Int(4))]), View::default());
    }
}
