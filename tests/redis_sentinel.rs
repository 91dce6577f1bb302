//! A real Sentinel setup on free local ports (1 primary, 1 replica, 3 sentinels): redline finds
//! the primary through the sentinels, reads its BullMQ queue, reports the sentinels' view, and
//! follows `SENTINEL FAILOVER` without a restart.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bull_js, free_port, qlabels_prefixed, redis_cli, value, wait_for, Daemon, RedisServer};

/// One `redis-server --sentinel` with its own config file, killed on drop.
struct Sentinel {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(primary: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {primary} 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 10000\n",
                dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sentinel did not start on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sentinel { port, child, _dir: dir }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Port of the primary the sentinel on `port` names.
fn primary_port(port: u16) -> Option<u16> {
    let out = redis_cli(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"]);
    out.lines().nth(1)?.trim().parse().ok()
}

#[test]
fn sentinel_primary_queues_and_a_failover_followed_without_restart() {
    let primary = RedisServer::start(&[]);
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    wait_for("replica in sync", Duration::from_secs(15), || {
        replica.cli(&["INFO", "replication"]).contains("master_link_status:up")
    });
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(primary.port)).collect();
    wait_for("sentinels know each other and the replica", Duration::from_secs(20), || {
        sentinels.iter().all(|s| {
            let m = redis_cli(s.port, &["SENTINEL", "MASTER", "mymaster"]);
            let field = |k: &str| m.lines().skip_while(|l| *l != k).nth(1).map(str::trim).map(String::from);
            field("num-other-sentinels").as_deref() == Some("2")
                && field("num-slaves").as_deref() == Some("1")
        })
    });
    let p = primary.port;
    bull_js("bullmq", "add", &format!(r#"{{"port":{p},"queue":"pay","prefix":"app","count":3}}"#));
    wait_for("jobs replicated", Duration::from_secs(10), || {
        replica.cli(&["LLEN", "app:pay:wait"]).trim() == "3"
    });

    let list: Vec<String> = sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nredis:\n  - sentinels: [{}]\n    master_name: mymaster\n    replicas: true\n    queues:\n      - system: bullmq\n        prefix: app\n        names: [pay]\n",
            list.join(", ")
        ),
        &[],
    );
    let node =
        |port: u16, role: &str| format!("{{target=\"mymaster\",node=\"127.0.0.1:{port}\",role=\"{role}\"}}");
    let waiting = |t: &str| {
        value(
            t,
            &format!(
                "redline_queue_jobs{}",
                qlabels_prefixed("bullmq", "app", "pay", ",state=\"waiting\"")
                    .replace("target=\"t\"", "target=\"mymaster\"")
            ),
        )
    };
    wait_for("primary and replica collected, queue read", Duration::from_secs(20), || {
        let t = d.scrape();
        value(&t, &format!("redline_redis_node_up{}", node(primary.port, "primary"))) == Some(1.0)
            && value(&t, &format!("redline_redis_node_up{}", node(replica.port, "replica"))) == Some(1.0)
            && waiting(&t) == Some(3.0)
    });
    let t = d.scrape();
    for s in &sentinels {
        let l = format!("{{target=\"mymaster\",sentinel=\"127.0.0.1:{}\"}}", s.port);
        assert_eq!(value(&t, &format!("redline_redis_sentinel_up{l}")), Some(1.0), "{l}");
        assert_eq!(value(&t, &format!("redline_redis_sentinel_quorum_ok{l}")), Some(1.0), "{l}");
        assert_eq!(value(&t, &format!("redline_redis_sentinel_masters{l}")), Some(1.0), "{l}");
        assert_eq!(value(&t, &format!("redline_redis_sentinel_sentinels{l}")), Some(3.0), "{l}");
        assert_eq!(value(&t, &format!("redline_redis_sentinel_replicas{l}")), Some(1.0), "{l}");
    }
    assert_eq!(value(&t, "redline_redis_failovers_total{target=\"mymaster\"}"), Some(0.0));
    assert_eq!(value(&t, "redline_redis_sentinel_failovers_total{target=\"mymaster\"}"), Some(0.0));
    assert!(value(&t, &format!("redline_redis_uptime_seconds{}", node(replica.port, "replica"))).is_some());
    let complaints = common::promtool_check_metrics(&t);
    assert!(complaints.trim().is_empty(), "{complaints}");

    // Every cluster/Sentinel name the generated rules and dashboards query is exposed.
    let missing = common::unexposed(
        &t,
        &["redline_redis_sentinel_", "redline_redis_node_up", "redline_redis_failovers"],
    );
    assert!(missing.is_empty(), "queried but not exposed: {missing:?}");

    // A failover ordered through a sentinel: the replica becomes the primary.
    let ok = redis_cli(sentinels[0].port, &["SENTINEL", "FAILOVER", "mymaster"]);
    assert!(ok.contains("OK"), "{ok}");
    wait_for("sentinels name the replica as primary", Duration::from_secs(30), || {
        sentinels.iter().all(|s| primary_port(s.port) == Some(replica.port))
    });
    wait_for("redline follows the new primary", Duration::from_secs(15), || {
        let t = d.scrape();
        value(&t, &format!("redline_redis_node_up{}", node(replica.port, "primary"))) == Some(1.0)
            && value(&t, "redline_redis_failovers_total{target=\"mymaster\"}") == Some(1.0)
    });
    wait_for(
        "the announcement was heard and the queue is read on the new primary",
        Duration::from_secs(15),
        || {
            let t = d.scrape();
            value(&t, "redline_redis_sentinel_failovers_total{target=\"mymaster\"}") == Some(1.0)
                && waiting(&t) == Some(3.0)
        },
    );
    // A frozen sentinel (SIGSTOP) is reported down; the primary is still collected.
    let frozen = &sentinels[2];
    let ok = Command::new("kill").args(["-STOP", &frozen.child.id().to_string()]).status().expect("kill");
    assert!(ok.success());
    let frozen_up =
        format!("redline_redis_sentinel_up{{target=\"mymaster\",sentinel=\"127.0.0.1:{}\"}}", frozen.port);
    wait_for("the frozen sentinel is down, the primary still read", Duration::from_secs(15), || {
        let t = d.scrape();
        value(&t, &frozen_up) == Some(0.0)
            && value(&t, &format!("redline_redis_node_up{}", node(replica.port, "primary"))) == Some(1.0)
            && waiting(&t) == Some(3.0)
    });
    let _ = Command::new("kill").args(["-CONT", &frozen.child.id().to_string()]).status();
    let log = d.log_text();
    assert!(log.contains("sentinel announced a new primary"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
