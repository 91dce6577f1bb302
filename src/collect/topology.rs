//! Targets made of several Redis nodes (a Redis Cluster, a Sentinel-managed primary and its
//! replicas). A [`Source`] reads the layout; this module follows it: one [`RedisCollector`] (one
//! persistent connection) per node, every node collected concurrently under its own deadline
//! with `node` and `role` labels, queues read on the node that owns their keys, discovery on
//! every primary, and a failover counted when a node known as a replica turns primary.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::queues::{discovery, QueueRef, Queues, System};
use super::redis::{describe, RedisCollector};
use super::window::Window;
use super::{BoxFuture, CollectError, Collector};
use crate::config::{split_host_port, Limits, ResolvedRedis, Topology};
use crate::metrics::{label, Family, FamilySet, Label};
use crate::names as n;
use crate::secret::RedisUrl;

/// Shares of the collection deadline by which each phase must end: the layout read, the
/// nodes (all at once), the queue pipelines (all at once). Later phases get what earlier ones
/// left, so a slow TLS handshake borrows from the queue phase instead of failing the node.
const TOPOLOGY_END: f64 = 0.3;
const NODES_END: f64 = 0.7;
const QUEUES_END: f64 = 0.95;

/// A node's role as the layout reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves writes (owns slots, or is Sentinel's master).
    Primary,
    /// Follows a primary.
    Replica,
}

impl Role {
    /// The `role` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// One node of the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// `host:port`, the `node` label and where redline connects.
    pub addr: String,
    /// Stable identity across address changes (cluster node id; the address under Sentinel).
    pub id: String,
    /// Role.
    pub role: Role,
    /// Whether redline collects this node (Sentinel replicas only when asked for).
    pub collect: bool,
}

/// Which node serves a queue's keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Owner {
    /// Redis Cluster: inclusive slot ranges and the primary serving each.
    Slots(Vec<(u16, u16, String)>),
    /// One primary holds every key (Sentinel); `None` while unknown.
    Primary(Option<String>),
}

impl Owner {
    fn of_slot(&self, slot: u16) -> Option<&str> {
        match self {
            Owner::Slots(ranges) => {
                ranges.iter().find(|(a, b, _)| (*a..=*b).contains(&slot)).map(|(_, _, addr)| addr.as_str())
            }
            Owner::Primary(p) => p.as_deref(),
        }
    }
}

/// What one topology read learned.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Every node known.
    pub nodes: Vec<NodeSpec>,
    /// Who serves which keys.
    pub owner: Owner,
    /// Target-wide facts (cluster state, sentinel views), labelled with `target` only.
    pub families: Vec<Family>,
}

/// Reads the layout of a multi-node target.
pub trait Source: Send + 'static {
    /// Reads the current layout. `conns` are the live connections of the nodes collected
    /// last time, primaries first (a source may use them instead of opening its own).
    fn refresh(
        &mut self,
        conns: Vec<(String, MultiplexedConnection)>,
    ) -> BoxFuture<'_, Result<Layout, CollectError>>;

    /// Families the source reports every collection, whether or not the last read worked
    /// (e.g. which sentinels answered).
    fn status(&self) -> Vec<Family> {
        Vec::new()
    }
}

/// One collected node.
struct Node {
    collector: RedisCollector,
    role: Role,
    up: bool,
    /// Queue discovery on this node (primaries only) and what it found.
    discovery: Option<(tokio::task::JoinHandle<()>, Arc<RwLock<discovery::Found>>)>,
    queue_trips: u64,
    /// Window sizing of this node's queue pipeline (see `window.rs`).
    window: Window,
    discovery_trips: Arc<AtomicU64>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some((task, _)) = self.discovery.take() {
            task.abort();
        }
    }
}

/// Why a queue was not read this collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unread {
    CrossSlot,
    NodeDown,
    NoOwner,
}

impl Unread {
    fn as_str(self) -> &'static str {
        match self {
            Unread::CrossSlot => "cross_slot",
            Unread::NodeDown => "node_down",
            Unread::NoOwner => "no_owner",
        }
    }
}

/// Collects every node of a cluster or Sentinel target as one `redis` target.
pub struct TopologyCollector {
    target: ResolvedRedis,
    limits: Limits,
    source: Box<dyn Source>,
    nodes: BTreeMap<String, Node>,
    layout: Option<Layout>,
    /// Last role seen per node id, to spot a replica turning primary.
    roles: HashMap<String, Role>,
    failovers: u64,
    refreshes: [u64; 2],
    redirections: [u64; 2],
    queues: Option<Queues>,
    /// The collection's deadline (the scheduler's); phases end at shares of it.
    budget: Duration,
}

impl TopologyCollector {
    /// Prepares the collector; nothing connects before the first collection.
    pub fn new(target: ResolvedRedis, limits: Limits, source: Box<dyn Source>) -> Self {
        let queues =
            (!target.queues.is_empty()).then(|| Queues::new(&target.name, target.queues.clone(), &limits));
        let budget = target.timeout;
        Self {
            target,
            limits,
            source,
            nodes: BTreeMap::new(),
            layout: None,
            roles: HashMap::new(),
            failovers: 0,
            refreshes: [0; 2],
            redirections: [0; 2],
            queues,
            budget,
        }
    }

    /// The settings of one node: the target's scheme, user, password and TLS at `addr`.
    fn node_target(&self, addr: &str) -> Result<ResolvedRedis, String> {
        let mut t = self.target.clone();
        t.url = node_url(&self.target.url, addr)?;
        t.queues = Vec::new();
        // Connect and reply timeouts of a node: within its phase, so a hung node costs its own
        // data, not the whole target's.
        t.timeout = self.budget.mul_f64(NODES_END);
        t.topology = Topology::Single;
        Ok(t)
    }

    fn live_connections(&self) -> Vec<(String, MultiplexedConnection)> {
        let mut out: Vec<(bool, String, MultiplexedConnection)> = self
            .nodes
            .iter()
            .filter_map(|(a, n)| {
                n.collector.current_connection().map(|c| (n.role != Role::Primary, a.clone(), c))
            })
            .collect();
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        out.into_iter().map(|(_, a, c)| (a, c)).collect()
    }

    /// Applies a new layout: counts failovers, adds and removes node collectors.
    fn apply(&mut self, layout: Layout) {
        for spec in &layout.nodes {
            let before = self.roles.insert(spec.id.clone(), spec.role);
            if before == Some(Role::Replica) && spec.role == Role::Primary {
                self.failovers += 1;
                tracing::info!(target_name = %self.target.name, node = %spec.addr, "failover: replica is now the primary");
            }
        }
        let wanted: BTreeMap<&str, Role> =
            layout.nodes.iter().filter(|s| s.collect).map(|s| (s.addr.as_str(), s.role)).collect();
        self.nodes.retain(|addr, _| wanted.contains_key(addr.as_str()));
        for (addr, role) in wanted {
            if let Some(node) = self.nodes.get_mut(addr) {
                if node.role != role {
                    node.role = role;
                    if let Some((task, _)) = node.discovery.take() {
                        task.abort();
                    }
                }
                continue;
            }
            let built = self.node_target(addr).and_then(|t| RedisCollector::new(t, self.limits.clone()));
            match built {
                Ok(collector) => {
                    self.nodes.insert(
                        addr.to_string(),
                        Node {
                            collector,
                            role,
                            up: false,
                            discovery: None,
                            queue_trips: 0,
                            window: Window::new(),
                            discovery_trips: Arc::default(),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(target_name = %self.target.name, node = %addr, "cannot collect node: {e}")
                }
            }
        }
        self.layout = Some(layout);
    }

    async fn collect_all(&mut self) -> Result<Vec<Family>, CollectError> {
        let conns = self.live_connections();
        let start = tokio::time::Instant::now();
        let refreshed =
            tokio::time::timeout_at(start + self.budget.mul_f64(TOPOLOGY_END), self.source.refresh(conns))
                .await;
        match refreshed {
            Ok(Ok(layout)) => {
                self.refreshes[0] += 1;
                self.apply(layout);
            }
            Ok(Err(e)) => {
                self.refreshes[1] += 1;
                let Some(l) = self.layout.as_mut() else { return Err(e) };
                // Keep following the last known nodes, but serve no stale target-wide facts.
                l.families.clear();
                tracing::debug!(target_name = %self.target.name, "topology read failed, keeping the last one: {e}");
            }
            Err(_) => {
                self.refreshes[1] += 1;
                let Some(l) = self.layout.as_mut() else {
                    return Err(CollectError::Timeout(start.elapsed()));
                };
                l.families.clear();
            }
        }
        let mut out = FamilySet::new();
        self.collect_nodes(&mut out, start + self.budget.mul_f64(NODES_END)).await;
        if self.queues.is_some() {
            self.collect_queues(&mut out, start + self.budget.mul_f64(QUEUES_END)).await;
        }
        let t = || label("target", self.target.name.clone());
        // After the queue reads, so this collection's own pipelines are counted.
        for (addr, node) in self.nodes.iter().filter(|(_, n)| n.up) {
            let l = vec![
                t(),
                label("node", addr.clone()),
                label("role", node.role.as_str()),
                label("purpose", "queues"),
            ];
            out.add(&n::REDIS_ROUND_TRIPS, l, node.queue_trips as f64);
        }
        out.add(&n::REDIS_FAILOVERS, vec![t()], self.failovers as f64);
        for (outcome, v) in ["ok", "error"].iter().zip(self.refreshes) {
            out.add(&n::REDIS_TOPOLOGY_REFRESHES, vec![t(), label("outcome", *outcome)], v as f64);
        }
        if matches!(self.layout.as_ref().map(|l| &l.owner), Some(Owner::Slots(_))) {
            for (kind, v) in ["moved", "ask"].iter().zip(self.redirections) {
                out.add(&n::REDIS_CLUSTER_REDIRECTIONS, vec![t(), label("kind", *kind)], v as f64);
            }
        }
        if let Some(l) = &self.layout {
            out.extend(l.families.iter().cloned());
        }
        out.extend(self.source.status());
        Ok(out.into_families())
    }

    /// Collects every node at once, all by `deadline`.
    async fn collect_nodes(&mut self, out: &mut FamilySet, deadline: tokio::time::Instant) {
        let results = futures_util::future::join_all(self.nodes.values_mut().map(|node| async move {
            match tokio::time::timeout_at(deadline, node.collector.collect()).await {
                Ok(r) => r,
                Err(_) => {
                    node.collector.reset();
                    Err(CollectError::Timeout(deadline.elapsed()))
                }
            }
        }))
        .await;
        let target = self.target.name.clone();
        for ((addr, node), result) in self.nodes.iter_mut().zip(results) {
            let tags = [label("node", addr.clone()), label("role", node.role.as_str())];
            node.up = result.is_ok();
            if let Err(e) = &result {
                tracing::debug!(target_name = %target, node = %addr, "node collection failed: {e}");
            }
            let mut up = vec![label("target", target.clone())];
            up.extend(tags.iter().cloned());
            out.add(&n::REDIS_NODE_UP, up, if node.up { 1.0 } else { 0.0 });
            let Ok(families) = result else { continue };
            for mut f in families {
                let trips = f.name == n::REDIS_ROUND_TRIPS.name;
                for s in &mut f.samples {
                    if trips && has(&s.labels, "purpose", "discovery") {
                        if let crate::metrics::Value::Number(v) = &mut s.value {
                            *v += node.discovery_trips.load(Ordering::Relaxed) as f64;
                        }
                    }
                    tag(&mut s.labels, &tags);
                }
                out.extend([f]);
            }
        }
    }

    /// Keeps one discovery task on every primary and merges what they found.
    fn discover(&mut self) {
        let Some(queues) = &self.queues else { return };
        let sources = queues.sources().to_vec();
        if !sources.iter().any(|s| s.discovers()) {
            return;
        }
        let mut all = discovery::Found::default();
        let mut complete = true;
        for node in self.nodes.values_mut() {
            if node.role != Role::Primary {
                continue;
            }
            let finished = node.discovery.as_ref().is_none_or(|(t, _)| t.is_finished());
            if finished {
                // First time, or the task ended with its connection: start again on the live one.
                if let Some(conn) = node.collector.current_connection() {
                    let found = node.discovery.take().map(|(_, f)| f).unwrap_or_default();
                    let budget = discovery::Budget {
                        interval: self.limits.discovery_interval,
                        per_round: self.limits.discovery_budget,
                        round_trips: node.discovery_trips.clone(),
                        max_queues: self.limits.max_queues,
                        // The cap is per target: one node cannot tell whether the target's total
                        // passes it, so every pass ranks (one length read per queue per pass).
                        rank_always: true,
                    };
                    let task = tokio::spawn(discovery::run(conn, sources.clone(), found.clone(), budget));
                    node.discovery = Some((task, found));
                }
            }
            if let Some((_, found)) = &node.discovery {
                let f = found.read().unwrap_or_else(|p| p.into_inner());
                all.queues.extend(f.queues.iter().cloned());
                all.backlog.extend(f.backlog.iter().map(|(q, b)| (q.clone(), *b)));
                all.last_pass = all.last_pass.max(f.last_pass);
                complete &= f.last_pass.is_some();
            } else {
                complete = false;
            }
        }
        let mut discovered = queues.discovered.write().unwrap_or_else(|p| p.into_inner());
        if !complete {
            // A primary has not finished its first pass (new, or just promoted): keep what the
            // others found before, so its queues keep their state across a failover.
            all.queues.extend(discovered.queues.iter().cloned());
        }
        *discovered = all;
    }

    /// Reads every queue on the node that serves its keys: one pipeline per node, all at once.
    async fn collect_queues(&mut self, out: &mut FamilySet, deadline: tokio::time::Instant) {
        self.discover();
        let (Some(queues), Some(layout)) = (self.queues.as_mut(), self.layout.as_ref()) else { return };
        let mut by_node: BTreeMap<String, Vec<QueueRef>> = BTreeMap::new();
        let mut unread: Vec<(QueueRef, Unread)> = Vec::new();
        for q in queues.select() {
            let owner = match &layout.owner {
                Owner::Slots(_) => match queue_slot(&q) {
                    Some(slot) => layout.owner.of_slot(slot),
                    None => {
                        unread.push((q, Unread::CrossSlot));
                        continue;
                    }
                },
                Owner::Primary(p) => p.as_deref(),
            };
            match owner.and_then(|a| self.nodes.get(a).filter(|n| n.up).map(|_| a)) {
                Some(addr) => by_node.entry(addr.to_string()).or_default().push(q),
                None if owner.is_some() => unread.push((q, Unread::NodeDown)),
                None => unread.push((q, Unread::NoOwner)),
            }
        }
        let mut work = Vec::new();
        for (addr, qs) in by_node {
            let Some(conn) = self.nodes.get(&addr).and_then(|n| n.collector.current_connection()) else {
                unread.extend(qs.into_iter().map(|q| (q, Unread::NodeDown)));
                continue;
            };
            let Some(window) = self.nodes.get(&addr).map(|n| n.window.clone()) else { continue };
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            let names = qs.clone();
            let plan = queues.plan_for(&mut pipe, qs);
            let groups: Vec<usize> = plan.groups().collect();
            let cmds: Vec<redis::Cmd> = pipe.cmd_iter().cloned().collect();
            work.push((addr, conn, (cmds, groups, window), plan, names));
        }
        // Each node's pipeline in windows of bounded cost, all nodes at once.
        let replies = futures_util::future::join_all(work.iter_mut().map(
            |(_, conn, (cmds, groups, window), plan, _)| {
                let mut conn = conn.clone();
                let cmds = std::mem::take(cmds);
                async move {
                    // The first round, then the later ones (BullMQ: the jobs the first named).
                    let rounds = async {
                        let first = window.run(&mut conn, cmds, groups).await?;
                        plan.finish(window, &mut conn, &first).await?;
                        Ok::<_, redis::RedisError>(first)
                    };
                    match tokio::time::timeout_at(deadline, rounds).await {
                        Ok(Ok(r)) => Ok(r),
                        Ok(Err(e)) => Err(describe(&e)),
                        Err(_) => Err("the queue read passed the collection's deadline".to_string()),
                    }
                }
            },
        ))
        .await;
        for ((addr, _, (_, _, window), plan, names), result) in work.into_iter().zip(replies) {
            if let Some(node) = self.nodes.get_mut(&addr) {
                node.queue_trips += window.trips - node.window.trips;
                node.window = window;
            }
            match result {
                Ok(replies) => {
                    for r in &replies {
                        if let Err(e) = r {
                            match e.kind() {
                                redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => {
                                    self.redirections[0] += 1
                                }
                                redis::ErrorKind::Server(redis::ServerErrorKind::Ask) => {
                                    self.redirections[1] += 1
                                }
                                _ => {}
                            }
                        }
                    }
                    queues.read_part(plan, &replies, out);
                }
                Err(e) => {
                    tracing::debug!(target_name = %self.target.name, node = %addr, "queue read failed: {e}");
                    if let Some(node) = self.nodes.get_mut(&addr) {
                        // The connection's state is unknown: reconnect next time.
                        node.collector.reset();
                    }
                    unread.extend(names.into_iter().map(|q| (q, Unread::NodeDown)));
                }
            }
        }
        for (q, why) in unread {
            let mut l = super::queues::queue_labels(&self.target.name, &q);
            l.push(label("reason", why.as_str()));
            out.add(&n::QUEUE_UNREADABLE, l, 1.0);
        }
        queues.summary(out);
    }
}

/// Whether a label set has `key="value"`.
fn has(labels: &[Label], key: &str, value: &str) -> bool {
    labels.iter().any(|(k, v)| k == key && &**v == value)
}

/// Puts `node` and `role` right after `target`; a label the sample already has is kept (the
/// server's own `role` on `redline_redis_instance_info`).
fn tag(labels: &mut Vec<Label>, tags: &[Label]) {
    let mut at = labels.iter().position(|(k, _)| k == "target").map_or(0, |i| i + 1);
    for t in tags {
        if !labels.iter().any(|(k, _)| *k == t.0) {
            labels.insert(at, t.clone());
            at += 1;
        }
    }
}

/// `url` pointed at `addr` (`host:port`), keeping scheme and database.
pub fn node_url(url: &RedisUrl, addr: &str) -> Result<RedisUrl, String> {
    let (host, port) = split_host_port(addr).map_err(|e| format!("node address {addr}: {e}"))?;
    let mut u = url::Url::parse(&url.shown()).map_err(|e| format!("invalid Redis URL: {e}"))?;
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    u.set_host(Some(&host)).map_err(|e| format!("node address {addr}: {e}"))?;
    u.set_port(Some(port)).map_err(|_| format!("node address {addr}: bad port"))?;
    RedisUrl::parse(u.as_str()).map_err(|e| format!("node address {addr}: {e}"))
}

/// The one hash slot all of a queue's keys live in, or `None` when they span several.
pub fn queue_slot(q: &QueueRef) -> Option<u16> {
    let keys = queue_keys(q);
    let first = super::redis_cluster::key_slot(keys.first()?.as_bytes());
    keys.iter().all(|k| super::redis_cluster::key_slot(k.as_bytes()) == first).then_some(first)
}

/// Keys that stand for every key a queue's read touches: its lists and sets, and the job
/// hashes or server-wide keys named from the same prefix.
fn queue_keys(q: &QueueRef) -> Vec<String> {
    let (p, name) = (&q.prefix, &q.name);
    match q.system {
        System::Bullmq | System::Bull => {
            let mut k = super::queues::bullmq::keys(p, name);
            k.push(format!("{p}:{name}:1"));
            k.push(format!("{p}:{name}:1:lock"));
            k
        }
        System::Rq => vec![format!("{p}:queue:{name}"), format!("{p}:wip:{name}"), format!("{p}:job:1")],
        System::Sidekiq => {
            let ns = if p.is_empty() { String::new() } else { format!("{p}:") };
            vec![format!("{ns}queue:{name}"), format!("{ns}schedule"), format!("{ns}processes")]
        }
        System::Celery => vec![format!("{p}{name}"), format!("{p}unacked")],
        System::Stream => vec![format!("{p}{name}")],
    }
}

impl Collector for TopologyCollector {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn target(&self) -> &str {
        &self.target.name
    }

    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, CollectError>> {
        Box::pin(self.collect_all())
    }

    fn reset(&mut self) {
        for node in self.nodes.values_mut() {
            node.collector.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(system: System, prefix: &str, name: &str) -> QueueRef {
        QueueRef { system, prefix: prefix.into(), name: name.into() }
    }

    #[test]
    fn hash_tagged_queues_live_in_one_slot_and_plain_ones_span_several() {
        let tagged = q(System::Bullmq, "{jobs}", "pay");
        assert_eq!(queue_slot(&tagged), Some(super::super::redis_cluster::key_slot(b"jobs")));
        assert_eq!(
            queue_slot(&q(System::Bullmq, "bull", "{pay}")),
            Some(super::super::redis_cluster::key_slot(b"pay"))
        );
        assert_eq!(queue_slot(&q(System::Bullmq, "bull", "pay")), None);
        assert!(queue_slot(&q(System::Stream, "", "events")).is_some());
        assert!(queue_slot(&q(System::Rq, "{rq}", "default")).is_some());
    }

    #[test]
    fn node_url_keeps_scheme_and_database_and_drops_nothing_secret() {
        let u = RedisUrl::parse("rediss://app@10.0.0.1:7000/0").expect("url");
        assert_eq!(node_url(&u, "10.0.0.9:7005").expect("ok").shown(), "rediss://app@10.0.0.9:7005/0");
        assert_eq!(node_url(&u, "[::1]:7001").expect("ok").host_port(), "[::1]:7001");
        assert!(node_url(&u, "nope").is_err());
    }

    #[test]
    fn node_labels_go_after_target() {
        let mut l = vec![label("target", "t"), label("cmd", "get")];
        tag(&mut l, &[label("node", "a:1"), label("role", "primary")]);
        let keys: Vec<&str> = l.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["target", "node", "role", "cmd"]);
        let mut info = vec![label("target", "t"), label("role", "master")];
        tag(&mut info, &[label("node", "a:1"), label("role", "primary")]);
        assert_eq!(info, vec![label("target", "t"), label("node", "a:1"), label("role", "master")]);
    }

    #[test]
    fn slot_owner_lookup() {
        let o = Owner::Slots(vec![(0, 5460, "a".into()), (5461, 16383, "b".into())]);
        assert_eq!(o.of_slot(0), Some("a"));
        assert_eq!(o.of_slot(5461), Some("b"));
        assert_eq!(Owner::Slots(vec![]).of_slot(3), None);
        assert_eq!(Owner::Primary(Some("p".into())).of_slot(9), Some("p"));
    }
}
