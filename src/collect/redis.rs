//! The Redis collector: one persistent connection per target, one pipeline per collection sent
//! in windows of bounded cost (`window.rs`), optional commands probed once and reported as
//! capabilities.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, Value};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::queues::{discovery, Queues};
use super::redis_replies::{self as replies, Info};
use super::window::Window;
use super::{BoxFuture, CollectError, Collector};
use crate::config::{Limits, ResolvedRedis};
use crate::metrics::{label, Family, FamilySet};
use crate::names as n;

/// Optional commands; a server may refuse any of them (managed Redis, ACLs, old versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Optional {
    ConfigMaxclients,
    SlowlogLen,
    SlowlogGet,
    LatencyLatest,
    LatencyHistogram,
}

impl Optional {
    const ALL: [Optional; 5] = [
        Optional::ConfigMaxclients,
        Optional::SlowlogLen,
        Optional::SlowlogGet,
        Optional::LatencyLatest,
        Optional::LatencyHistogram,
    ];

    fn label(self) -> &'static str {
        match self {
            Optional::ConfigMaxclients => "config",
            Optional::SlowlogLen | Optional::SlowlogGet => "slowlog",
            Optional::LatencyLatest => "latency_latest",
            Optional::LatencyHistogram => "latency_histogram",
        }
    }

    fn add_to(self, pipe: &mut redis::Pipeline, slowlog_entries: usize) {
        match self {
            Optional::ConfigMaxclients => pipe.cmd("CONFIG").arg("GET").arg("maxclients"),
            Optional::SlowlogLen => pipe.cmd("SLOWLOG").arg("LEN"),
            Optional::SlowlogGet => pipe.cmd("SLOWLOG").arg("GET").arg(slowlog_entries),
            Optional::LatencyLatest => pipe.cmd("LATENCY").arg("LATEST"),
            Optional::LatencyHistogram => pipe.cmd("LATENCY").arg("HISTOGRAM"),
        };
    }
}

/// Collects one Redis server.
pub struct RedisCollector {
    target: ResolvedRedis,
    limits: Limits,
    client: Client,
    conn: Option<MultiplexedConnection>,
    backoff: Backoff,
    last_connect_error: String,
    /// `None`: not tried on this connection yet; `Some(false)`: refused, not sent again.
    allowed: HashMap<&'static str, bool>,
    slowlog_last_id: Option<i64>,
    /// The server's `run_id`: a new one (restart, failover) restarts the slow log's ids.
    run_id: Option<String>,
    timeout: Duration,
    queues: Option<Queues>,
    discovery: Option<tokio::task::JoinHandle<()>>,
    /// Requests sent, for `redline_redis_round_trips_total` (collect, discovery).
    round_trips: [Arc<AtomicU64>; 2],
    /// Pipeline window sizing (the collection goes out in windows of bounded cost).
    window: Window,
}

impl Drop for RedisCollector {
    fn drop(&mut self) {
        if let Some(d) = self.discovery.take() {
            d.abort();
        }
    }
}

impl RedisCollector {
    /// Prepares the client; connects lazily on the first collection.
    pub fn new(target: ResolvedRedis, limits: Limits) -> Result<Self, String> {
        let client = build_client(&target)?;
        let timeout = target.timeout;
        let backoff = Backoff::for_interval(target.interval);
        let queues =
            (!target.queues.is_empty()).then(|| Queues::new(&target.name, target.queues.clone(), &limits));
        Ok(Self {
            target,
            limits,
            client,
            conn: None,
            backoff,
            last_connect_error: String::new(),
            allowed: HashMap::new(),
            slowlog_last_id: None,
            run_id: None,
            timeout,
            queues,
            discovery: None,
            round_trips: Default::default(),
            window: Window::new(),
        })
    }

    /// The connection of the last collection, if it is still held (cluster and Sentinel
    /// targets run their queue and topology commands on it: one connection per node).
    pub(crate) fn current_connection(&self) -> Option<MultiplexedConnection> {
        self.conn.clone()
    }

    async fn connection(&mut self) -> Result<MultiplexedConnection, CollectError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        if !self.backoff.ready() {
            return Err(CollectError::BackingOff(self.last_connect_error.clone()));
        }
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let started = Instant::now();
        match self.client.get_multiplexed_async_connection_with_config(&cfg).await {
            Ok(mut c) => {
                self.backoff.succeeded();
                self.round_trips[0].fetch_add(1, Ordering::Relaxed);
                if let Err(e) = name_connection(&mut c).await {
                    tracing::info!(target_name = %self.target.name, "Redis refused CLIENT SETNAME: {e}");
                }
                // A new connection may be a different server (failover): probe again.
                self.allowed.clear();
                self.conn = Some(c.clone());
                self.start_discovery(c.clone());
                Ok(c)
            }
            Err(e) => {
                self.backoff.failed_since(started);
                self.last_connect_error = describe(&e);
                Err(CollectError::Connect(self.last_connect_error.clone()))
            }
        }
    }

    /// (Re)starts background queue discovery on a fresh connection.
    fn start_discovery(&mut self, conn: MultiplexedConnection) {
        if let Some(old) = self.discovery.take() {
            old.abort();
        }
        let Some(q) = &self.queues else { return };
        let budget = discovery::Budget {
            interval: self.limits.discovery_interval,
            per_round: self.limits.discovery_budget,
            round_trips: self.round_trips[1].clone(),
            max_queues: self.limits.max_queues,
            rank_always: false,
        };
        let task = discovery::run(conn, q.sources().to_vec(), q.discovered.clone(), budget);
        self.discovery = Some(tokio::spawn(task));
    }

    async fn collect_once(&mut self) -> Result<Vec<Family>, CollectError> {
        let started = Instant::now();
        let mut conn = self.connection().await?;
        let optional: Vec<Optional> =
            Optional::ALL.iter().copied().filter(|o| self.allowed.get(o.label()) != Some(&false)).collect();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // Not `INFO ALL`: its `latencystats` section (Redis 7: percentiles of every command) made
        // it the one server command over 1 ms in SLOWLOG; nothing here reads it. Two commands,
        // each answered by every Redis version.
        pipe.cmd("INFO").arg("default");
        pipe.cmd("INFO").arg("commandstats");
        for o in &optional {
            o.add_to(&mut pipe, self.limits.slowlog_entries);
        }
        let mut plan = self.queues.as_mut().map(|q| q.plan(&mut pipe));
        // Each server command alone, then the queues' units: windows never split a unit.
        let mut groups = vec![1; INFO_COMMANDS + optional.len()];
        if let Some(p) = &plan {
            groups.extend(p.groups());
        }
        let cmds: Vec<redis::Cmd> = pipe.cmd_iter().cloned().collect();
        let trips_before = self.window.trips;
        let base = INFO_COMMANDS + optional.len();
        let mut sent = self.window.run(&mut conn, cmds, &groups).await;
        // The queue reads' later rounds (BullMQ: the jobs the first round named).
        if let (Ok(replies), Some(plan)) = (&sent, plan.as_mut()) {
            let first = replies.get(base..).unwrap_or(&[]);
            if let Err(e) = plan.finish(&mut self.window, &mut conn, first).await {
                sent = Err(e);
            }
        }
        self.round_trips[0].fetch_add(self.window.trips - trips_before, Ordering::Relaxed);
        let replies: Vec<redis::RedisResult<Value>> = match sent {
            Ok(r) => r,
            Err(e) => {
                // Unknown connection state: reconnect next time.
                self.conn = None;
                self.backoff.failed_since(started);
                self.last_connect_error = describe(&e);
                return Err(CollectError::Query(self.last_connect_error.clone()));
            }
        };
        let (server_replies, queue_replies) = replies.split_at(base.min(replies.len()));
        let mut it = server_replies.iter().cloned();
        let mut info_text = String::new();
        for _ in 0..INFO_COMMANDS {
            match it.next() {
                Some(Ok(v)) => {
                    info_text.push_str(&value_text(&v));
                    info_text.push_str("\r\n");
                }
                Some(Err(e)) => return Err(CollectError::Query(format!("INFO: {}", describe(&e)))),
                None => return Err(CollectError::Query("empty pipeline reply".into())),
            }
        }
        let mut got: HashMap<Optional, Value> = HashMap::new();
        for (o, r) in optional.iter().zip(it) {
            match r {
                Ok(v) => {
                    self.allowed.insert(o.label(), true);
                    got.insert(*o, v);
                }
                Err(e) => {
                    if self.allowed.insert(o.label(), false) != Some(false) {
                        tracing::info!(
                            target_name = %self.target.name,
                            "Redis refused {}: {}; not sending it again on this connection",
                            o.label(),
                            describe(&e)
                        );
                    }
                }
            }
        }
        let mut families = self.families(&info_text, &got);
        let mut trips = Family::new(&n::REDIS_ROUND_TRIPS);
        for (purpose, counter) in ["collect", "discovery"].iter().zip(&self.round_trips) {
            let labels = vec![label("target", self.target.name.clone()), label("purpose", *purpose)];
            trips.push(labels, counter.load(Ordering::Relaxed) as f64);
        }
        families.push(trips);
        if let (Some(queues), Some(plan)) = (self.queues.as_mut(), plan) {
            let mut out = FamilySet::new();
            queues.read(plan, queue_replies, &mut out);
            families.extend(out.into_families());
        }
        Ok(families)
    }

    fn families(&mut self, info_text: &str, got: &HashMap<Optional, Value>) -> Vec<Family> {
        let target = self.target.name.as_str();
        let info = Info::parse(info_text);
        if let Some(run_id) = info.get("run_id") {
            if self.run_id.as_deref() != Some(run_id) {
                if self.run_id.is_some() {
                    // Another server process: every entry in its slow log is new to us.
                    self.slowlog_last_id = Some(-1);
                }
                self.run_id = Some(run_id.to_string());
            }
        }
        let mut out = FamilySet::new();
        let maxclients = got.get(&Optional::ConfigMaxclients).and_then(config_value);
        replies::info_families(&info, target, maxclients, self.limits.max_commands, &mut out);

        let mut caps: Vec<&str> = Optional::ALL.iter().map(|o| o.label()).collect();
        caps.dedup();
        for cap in caps {
            let v = match self.allowed.get(cap) {
                Some(false) => 0.0,
                _ => 1.0,
            };
            out.add(&n::REDIS_COMMAND_ALLOWED, vec![label("target", target), label("command", cap)], v);
        }

        if let Some(Value::Int(len)) = got.get(&Optional::SlowlogLen) {
            let len = *len as f64;
            out.add(&n::REDIS_SLOWLOG_LENGTH, vec![label("target", target)], len);
        }
        if let Some(v) = got.get(&Optional::SlowlogGet) {
            let view = replies::slowlog(v, self.slowlog_last_id);
            self.slowlog_last_id = view.last_id;
            if let Some(id) = view.last_id {
                out.add(&n::REDIS_SLOWLOG_ENTRIES, vec![label("target", target)], (id + 1).max(0) as f64);
            }
            out.add(&n::REDIS_SLOWLOG_NEW_MAX, vec![label("target", target)], view.slowest_new_seconds);
        }
        if let Some(v) = got.get(&Optional::LatencyLatest) {
            replies::latency_latest(v, target, &mut out);
        }
        if let Some(v) = got.get(&Optional::LatencyHistogram) {
            // Same bounded command set as commandstats: the busiest `max_commands`.
            let mut cmds: Vec<_> = info.cmdstats.iter().collect();
            cmds.sort_by(|a, b| b.calls.total_cmp(&a.calls).then(a.name.cmp(b.name)));
            let sums: HashMap<&str, f64> =
                cmds.into_iter().take(self.limits.max_commands).map(|c| (c.name, c.usec)).collect();
            replies::latency_histograms(v, target, &sums, &mut out);
        }
        out.into_families()
    }
}

/// A client for `target` with its user, password and TLS files (cluster and Sentinel targets
/// build one per discovered node from the same settings).
pub(crate) fn build_client(target: &ResolvedRedis) -> Result<Client, String> {
    let shown = target.url.shown();
    let mut info = shown
        .as_str()
        .into_connection_info()
        .map_err(|e| format!("redis target {}: invalid URL: {:?}", target.name, e.kind()))?;
    let mut settings = info.redis_settings().clone();
    if let Some(u) = &target.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &target.password {
        settings = settings.set_password(p.expose());
    }
    info = info.set_redis_settings(settings);
    match &target.tls {
        None => Client::open(info),
        Some(tls) => Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: tls.client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.expose().as_bytes().to_vec(),
                }),
                root_cert: tls.ca.clone(),
            },
        ),
    }
    .map_err(|e| format!("redis target {}: {:?}", target.name, e.kind()))
}

/// `INFO default` and `INFO commandstats`, first in every collection's pipeline.
const INFO_COMMANDS: usize = 2;

/// The name every redline connection gives itself (`CLIENT SETNAME`), so that `SLOWLOG` and
/// `CLIENT LIST` entries are attributable to redline. It contains no `:`, so it can never look
/// like a BullMQ/Bull worker (`prefix:base64(queue)[:w:…]`, see `bullmq::workers`).
pub(crate) const CLIENT_NAME: &str = "redline";

/// Names a fresh connection [`CLIENT_NAME`] (one round trip). A refusal (an ACL without
/// `+client|setname`, a proxy) is returned for the caller to log; the connection stays usable.
pub(crate) async fn name_connection(conn: &mut MultiplexedConnection) -> Result<(), String> {
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(CLIENT_NAME)
        .query_async::<()>(conn)
        .await
        .map_err(|e| describe(&e))
}

/// `CONFIG GET x` -> `[x, value]` (RESP2) or a map (RESP3).
fn config_value(v: &Value) -> Option<f64> {
    match v {
        Value::Array(a) => a.get(1).and_then(|x| value_text(x).parse().ok()),
        Value::Map(m) => m.first().and_then(|(_, x)| value_text(x).parse().ok()),
        _ => None,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

/// A redis error as text safe to log: kind, code and detail from the server or the OS.
/// redis-rs never includes the password in these.
pub(crate) fn describe(e: &redis::RedisError) -> String {
    let mut s = e.to_string();
    crate::text::truncate(&mut s, 300);
    s
}

impl Collector for RedisCollector {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn target(&self) -> &str {
        &self.target.name
    }

    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, CollectError>> {
        Box::pin(self.collect_once())
    }

    fn reset(&mut self) {
        self.conn = None;
        // The collection that overran started one deadline ago.
        self.backoff.failed_since(Instant::now().checked_sub(self.timeout).unwrap_or_else(Instant::now));
        self.last_connect_error = "previous collection timed out".into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_multibyte_error_text_is_clipped_without_panicking() {
        let e = redis::RedisError::from((redis::ErrorKind::Io, "server said", "é€🦀".repeat(100)));
        let s = describe(&e);
        assert!(s.len() <= 300 && s.starts_with("server said"), "{s}");
        // The old byte truncation panicked here: byte 300 is inside a character.
        assert!(!e.to_string().is_char_boundary(300));
    }
}
