//! A real 3-primary + 3-replica Redis Cluster on free local ports: redline discovers every node
//! from one seed, reads BullMQ queues (produced through ioredis' Cluster client) on the node
//! that owns their slot with the library's own counts, and follows a SIGKILLed primary's
//! failover without a restart.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{free_port, redis_cli, value, wait_for, Daemon, RedisServer};

/// Six cluster-enabled servers joined by `redis-cli --cluster create`, replicas in sync.
struct Cluster {
    nodes: Vec<RedisServer>,
    /// Arguments every redis-cli call needs (password, TLS).
    cli_args: Vec<String>,
}

impl Cluster {
    fn start() -> Self {
        Self::start_with(6, 1, &[], &[])
    }

    /// `n` cluster-enabled servers with `replicas` replicas per primary; `server_args` go to
    /// every server (password, TLS), `cli_args` to every redis-cli call.
    fn start_with(n: usize, replicas: u8, server_args: &[&str], cli_args: &[&str]) -> Self {
        let nodes: Vec<RedisServer> = (0..n)
            .map(|_| {
                let bus = free_port().to_string();
                let mut args = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &bus,
                    // Fail over fast, and even if the replica lost its primary a while ago.
                    "--cluster-node-timeout",
                    "500",
                    "--cluster-replica-validity-factor",
                    "0",
                ];
                args.extend(server_args);
                RedisServer::start(&args)
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .args(cli_args)
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("All 16384 slots covered"), "cluster create: {text}");
        let c = Cluster { nodes, cli_args: cli_args.iter().map(|a| a.to_string()).collect() };
        let want_synced = n - n / (replicas as usize + 1);
        wait_for("cluster ok everywhere and replicas in sync", Duration::from_secs(30), || {
            let ok = (0..n).all(|i| c.cli(i, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            let synced = (0..n)
                .filter(|i| c.cli(*i, &["INFO", "replication"]).contains("master_link_status:up"))
                .count();
            ok && synced == want_synced
        });
        c
    }

    /// redis-cli on node `i`, authenticated.
    fn cli(&self, i: usize, args: &[&str]) -> String {
        let mut all: Vec<&str> = self.cli_args.iter().map(String::as_str).collect();
        all.extend(args);
        redis_cli(self.nodes[i].port, &all)
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Role of each live node's address as a surviving node sees it: `addr -> primary|replica`.
    fn roles(&self, via: u16) -> BTreeMap<String, &'static str> {
        redis_cli(via, &["CLUSTER", "NODES"])
            .lines()
            .filter(|l| !l.contains("fail"))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let addr = f.get(1)?.split('@').next()?.to_string();
                Some((addr, if f.get(2)?.contains("master") { "primary" } else { "replica" }))
            })
            .collect()
    }

    /// Port of the primary serving `key`'s slot.
    fn owner_of(&self, key: &str) -> u16 {
        let p = self.owner_of_via(self.nodes[0].port, key);
        assert_ne!(p, 0, "no owner for {key}");
        p
    }
}

/// Runs tests/producers/bull.js against the cluster and returns its first output line.
fn bull(action: &str, ports: &[u16], opts: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/producers");
    let cluster = format!("{ports:?}");
    let json = format!(r#"{{"cluster":{cluster},{opts}}}"#);
    let out = Command::new("node")
        .current_dir(dir)
        .args(["bull.js", "bullmq", action, &json])
        .output()
        .expect("node");
    assert!(out.status.success(), "bull.js {action} {json}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string()
}

/// getJobCounts() of a queue, as numbers by state.
fn job_counts(ports: &[u16], prefix: &str, queue: &str) -> BTreeMap<String, f64> {
    let line = bull("counts", ports, &format!(r#""prefix":"{prefix}","queue":"{queue}""#));
    let v: serde_json::Value = serde_json::from_str(&line).expect("counts JSON");
    v.as_object().expect("object").iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(-1.0))).collect()
}

/// redline's jobs by state for one queue (the state names are getJobCounts()' own).
fn redline_counts(text: &str, prefix: &str, queue: &str) -> BTreeMap<String, f64> {
    let head = format!(
        "redline_queue_jobs{{target=\"c\",system=\"bullmq\",prefix=\"{prefix}\",queue=\"{queue}\",state=\""
    );
    text.lines()
        .filter_map(|l| l.strip_prefix(&head))
        .filter_map(|rest| {
            let (state, v) = rest.split_once("\"} ")?;
            Some((state.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Every count the library gives equals redline's.
fn assert_counts_match(text: &str, ports: &[u16], prefix: &str, queue: &str) {
    let lib = job_counts(ports, prefix, queue);
    let ours = redline_counts(text, prefix, queue);
    assert!(lib.len() >= 7, "{lib:?}");
    for (state, n) in &lib {
        assert_eq!(
            common::state_count(state, ours.get(state).copied()),
            Some(*n),
            "{prefix}/{queue} {state}: library {lib:?}, redline {ours:?}"
        );
    }
}

fn node_up(text: &str) -> BTreeMap<String, (String, f64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("redline_redis_node_up{target=\"c\",node=\""))
        .filter_map(|rest| {
            let (node, rest) = rest.split_once("\",role=\"")?;
            let (role, v) = rest.split_once("\"} ")?;
            Some((node.to_string(), (role.to_string(), v.parse().ok()?)))
        })
        .collect()
}

#[test]
fn cluster_nodes_queues_by_slot_and_a_failover_followed_without_restart() {
    let c = Cluster::start();
    let ports = c.ports();
    // Two hash-tagged prefixes whose slots live on two different shards.
    assert_ne!(c.owner_of("{jobs}"), c.owner_of("{mail}"));
    bull("add", &ports, r#""prefix":"{jobs}","queue":"pay","count":5"#);
    bull("add", &ports, r#""prefix":"{jobs}","queue":"pay","count":2,"delay":3600000"#);
    bull("add", &ports, r#""prefix":"{jobs}","queue":"pay","count":3,"priority":2"#);
    bull("add", &ports, r#""prefix":"{mail}","queue":"send","count":4"#);

    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nlimits:\n  discovery_interval: 1s\nredis:\n  - name: c\n    cluster: true\n    url: redis://127.0.0.1:{}\n    seeds: [\"127.0.0.1:{}\"]\n    queues:\n      - system: bullmq\n        prefix: \"{{jobs}}\"\n      - system: bullmq\n        prefix: \"{{mail}}\"\n      - system: bullmq\n        names: [plain]\n",
            ports[0], ports[1]
        ),
        &[],
    );
    wait_for("six nodes up, both queues read", Duration::from_secs(20), || {
        let t = d.scrape();
        node_up(&t).values().filter(|(_, v)| *v == 1.0).count() == 6
            && !redline_counts(&t, "{jobs}", "pay").is_empty()
            && !redline_counts(&t, "{mail}", "send").is_empty()
    });
    let t = d.scrape();
    let nodes = node_up(&t);
    let roles = c.roles(ports[0]);
    for (addr, role) in &roles {
        assert_eq!(nodes.get(addr).map(|(r, _)| r.as_str()), Some(*role), "{addr}: {nodes:?}");
        // Every node's own server metrics, labelled with the node.
        assert!(
            value(
                &t,
                &format!("redline_redis_uptime_seconds{{target=\"c\",node=\"{addr}\",role=\"{role}\"}}")
            )
            .is_some(),
            "uptime of {addr}"
        );
    }
    assert_eq!(value(&t, "redline_redis_cluster_state{target=\"c\"}"), Some(1.0));
    assert_eq!(value(&t, "redline_redis_cluster_slots{target=\"c\",state=\"ok\"}"), Some(16384.0));
    assert_eq!(value(&t, "redline_redis_cluster_known_nodes{target=\"c\"}"), Some(6.0));
    assert_eq!(value(&t, "redline_redis_cluster_shards{target=\"c\"}"), Some(3.0));
    assert_eq!(value(&t, "redline_redis_failovers_total{target=\"c\"}"), Some(0.0));
    assert_counts_match(&t, &ports, "{jobs}", "pay");
    assert_counts_match(&t, &ports, "{mail}", "send");
    assert_eq!(redline_counts(&t, "{jobs}", "pay").get("waiting"), Some(&5.0));
    // `bull:plain:*` keys hash to many slots: reported, not half-read.
    assert_eq!(
        value(
            &t,
            "redline_queue_unreadable{target=\"c\",system=\"bullmq\",prefix=\"bull\",queue=\"plain\",reason=\"cross_slot\"}"
        ),
        Some(1.0)
    );
    assert!(!t.contains("queue=\"plain\",state="), "a cross-slot queue must not be read");
    // Queue reads go to the primaries owning the queues' slots, one pipeline per collection.
    for key in ["{jobs}", "{mail}"] {
        let node = format!("127.0.0.1:{}", c.owner_of(key));
        let trips = format!(
            "redline_redis_round_trips_total{{target=\"c\",node=\"{node}\",role=\"primary\",purpose=\"queues\"}}"
        );
        assert!(value(&t, &trips).unwrap_or(0.0) >= 1.0, "{trips}");
    }
    let complaints = common::promtool_check_metrics(&t);
    assert!(complaints.trim().is_empty(), "{complaints}");

    // Every cluster/Sentinel name the generated rules and dashboards query is exposed.
    let missing = common::unexposed(
        &t,
        &["redline_redis_cluster_", "redline_redis_node_up", "redline_redis_failovers"],
    );
    assert!(missing.is_empty(), "queried but not exposed: {missing:?}");

    // SIGKILL the primary that serves {jobs}: its replica takes over, redline follows.
    let victim = c.owner_of("{jobs}");
    let victim_addr = format!("127.0.0.1:{victim}");
    let mut c = c;
    let i = c.nodes.iter().position(|n| n.port == victim).expect("victim");
    c.nodes[i].kill();
    let survivor = c.nodes.iter().find(|n| n.port != victim).expect("survivor").port;
    wait_for("the cluster promoted a replica", Duration::from_secs(30), || {
        c.nodes
            .iter()
            .filter(|n| n.port != victim)
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
            && ![0, victim].contains(&c.owner_of_via(survivor, "{jobs}"))
    });
    let promoted = format!("127.0.0.1:{}", c.owner_of_via(survivor, "{jobs}"));
    let refreshes = |t: &str| {
        value(t, "redline_redis_topology_refreshes_total{target=\"c\",outcome=\"ok\"}").unwrap_or(0.0)
    };
    let at_promotion = refreshes(&d.scrape());
    wait_for("redline sees the new primary", Duration::from_secs(15), || {
        let t = d.scrape();
        node_up(&t).get(&promoted) == Some(&("primary".to_string(), 1.0))
            && value(&t, "redline_redis_failovers_total{target=\"c\"}") == Some(1.0)
    });
    let t = d.scrape();
    // Followed within two topology reads of the promotion, by the same daemon (no restart).
    assert!(refreshes(&t) <= at_promotion + 2.0, "took {} reads", refreshes(&t) - at_promotion);
    assert_eq!(node_up(&t).get(&victim_addr).map(|(_, v)| *v), Some(0.0), "the killed node is down: {t}");
    wait_for("queues read on the new primary", Duration::from_secs(10), || {
        let t = d.scrape();
        redline_counts(&t, "{jobs}", "pay").get("waiting") == Some(&5.0)
    });
    let t = d.scrape();
    assert_counts_match(
        &t,
        &ports.iter().copied().filter(|p| *p != victim).collect::<Vec<_>>(),
        "{jobs}",
        "pay",
    );
    assert!(!d.log_text().contains("panicked"), "{}", d.log_text());
}

impl Cluster {
    /// [`Cluster::owner_of`] asked through a given node (after one died).
    fn owner_of_via(&self, via: u16, key: &str) -> u16 {
        let slot: u16 = redis_cli(via, &["CLUSTER", "KEYSLOT", key]).trim().parse().expect("slot");
        for l in redis_cli(via, &["CLUSTER", "NODES"])
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
        {
            let f: Vec<&str> = l.split_whitespace().collect();
            for r in f.iter().skip(8) {
                let (lo, hi) = r.split_once('-').unwrap_or((r, r));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
                    if (lo..=hi).contains(&slot) {
                        return f[1]
                            .split('@')
                            .next()
                            .and_then(|a| a.rsplit(':').next())
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0);
                    }
                }
            }
        }
        0
    }
}

#[test]
fn auth_reaches_every_node_a_dead_seed_is_skipped_and_a_non_cluster_server_is_named() {
    let pw = "cluster-secret-pw";
    let c = Cluster::start_with(
        3,
        0,
        &["--requirepass", pw, "--masterauth", pw],
        &["-a", pw, "--no-auth-warning"],
    );
    let plain = RedisServer::start(&[]);
    let dead = free_port();
    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nredis:\n  - name: c\n    cluster: true\n    url: redis://127.0.0.1:{dead}\n    seeds: [\"127.0.0.1:{}\"]\n    password_env: REDLINE_TEST_CLUSTER_PW\n  - name: nc\n    cluster: true\n    url: {}\n",
            c.nodes[1].port,
            plain.url()
        ),
        &[("REDLINE_TEST_CLUSTER_PW", "cluster-secret-pw")],
    );
    wait_for("three primaries up through the second seed", Duration::from_secs(20), || {
        let t = d.scrape();
        node_up(&t).values().filter(|(r, v)| r == "primary" && *v == 1.0).count() == 3
            && value(&t, "redline_target_up{collector=\"redis\",target=\"nc\"}") == Some(0.0)
    });
    let t = d.scrape();
    assert_eq!(value(&t, "redline_redis_cluster_shards{target=\"c\"}"), Some(3.0));
    assert_eq!(value(&t, "redline_target_up{collector=\"redis\",target=\"c\"}"), Some(1.0));
    let log = d.log_text();
    assert!(log.contains("cluster support disabled"), "the log names why nc fails: {log}");
    assert!(!t.contains("cluster-secret-pw") && !log.contains("cluster-secret-pw"), "password leaked");
}

#[test]
fn tls_reaches_every_node_on_its_tls_port() {
    // A private CA and a server certificate for 127.0.0.1, shared by the nodes.
    let certs = tempfile::tempdir().expect("tempdir");
    let dir = certs.path();
    common::make_ca(dir, "ca", "redline cluster CA");
    common::issue_cert(dir, "node", "node", "subjectAltName=IP:127.0.0.1");
    let f = |name: &str| dir.join(name).display().to_string();
    let (cert, key, ca) = (f("node.pem"), f("node.key"), f("ca.pem"));
    // TLS only: every node's plain port is off, and the cluster bus and replication use TLS too.
    // Six distinct ports chosen up front (3 TLS ports, 3 bus ports), so no pick repeats another
    // that is not bound yet.
    let mut all: Vec<u16> = Vec::new();
    while all.len() < 6 {
        let p = free_port();
        if !all.contains(&p) {
            all.push(p);
        }
    }
    let (ports, buses) = (all[..3].to_vec(), all[3..].to_vec());
    let nodes: Vec<RedisServer> = ports
        .iter()
        .zip(&buses)
        .map(|(p, b)| {
            let (tls_port, bus) = (p.to_string(), b.to_string());
            RedisServer::start_on(
                *p,
                &[
                    "--port",
                    "0",
                    "--tls-port",
                    &tls_port,
                    "--tls-cert-file",
                    &cert,
                    "--tls-key-file",
                    &key,
                    "--tls-ca-cert-file",
                    &ca,
                    "--tls-auth-clients",
                    "no",
                    "--tls-cluster",
                    "yes",
                    "--tls-replication",
                    "yes",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "500",
                ],
            )
        })
        .collect();
    let cli = ["--tls", "--cacert", ca.as_str()];
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = Command::new("redis-cli")
        .args(cli)
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-yes"])
        .output()
        .expect("redis-cli");
    assert!(String::from_utf8_lossy(&out.stdout).contains("All 16384 slots covered"), "{out:?}");
    let c = Cluster { nodes, cli_args: cli.iter().map(|a| a.to_string()).collect() };
    wait_for("TLS cluster ok", Duration::from_secs(30), || {
        (0..3).all(|i| c.cli(i, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    });
    let d = Daemon::start(
        &format!(
            // TLS handshakes of a debug build on a loaded 2-core machine: a roomy deadline.
            "collection:\n  interval: 2s\n  timeout: 1900ms\nhost:\n  enabled: false\nredis:\n  - name: c\n    cluster: true\n    url: rediss://127.0.0.1:{}\n    tls:\n      ca_file: {ca}\n",
            ports[0]
        ),
        &[],
    );
    wait_for("three TLS primaries up", Duration::from_secs(40), || {
        node_up(&d.scrape()).values().filter(|(r, v)| r == "primary" && *v == 1.0).count() == 3
    });
    let t = d.scrape();
    assert_eq!(value(&t, "redline_redis_cluster_state{target=\"c\"}"), Some(1.0));
    for a in &addrs {
        assert!(node_up(&t).contains_key(a), "{a} (its TLS port) is the node address: {t}");
    }
}
