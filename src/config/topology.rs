//! How a Redis target is laid out: one server, a Redis Cluster (`cluster: true` with seed nodes)
//! or a primary managed by Sentinel (`sentinels` + `master_name`). Settings and their checks
//! only; `collect::topology` follows the live layout.

use super::{resolve_secret, RedisTarget};
use crate::secret::{RedisUrl, Secret};

/// Host of the URL a Sentinel target gets when it names none. `.invalid` can never resolve, so
/// it cannot be mistaken for a real server.
const PLACEHOLDER: &str = "redis://sentinel-target.invalid";

/// Serde default of `url`: only valid on a Sentinel target (checked in [`problems`]).
pub fn sentinel_placeholder_url() -> RedisUrl {
    // A constant, not input: it always parses (covered by the tests below).
    RedisUrl::parse(PLACEHOLDER).expect("constant placeholder URL parses")
}

fn url_given(t: &RedisTarget) -> bool {
    t.url.shown() != sentinel_placeholder_url().shown()
}

/// The layout of a resolved target.
#[derive(Debug, Clone, PartialEq)]
pub enum Topology {
    /// One server at `url`.
    Single,
    /// A Redis Cluster reached through these seed nodes (`host:port`, the URL's first).
    Cluster {
        /// Seed nodes.
        seeds: Vec<String>,
    },
    /// A primary that Sentinel manages.
    Sentinel {
        /// Sentinel addresses, `host:port`.
        sentinels: Vec<String>,
        /// The monitored primary's name.
        master_name: String,
        /// Collect replicas as well as the primary.
        replicas: bool,
        /// The sentinels' own password.
        password: Option<Secret>,
    },
}

/// Splits `host:port` (IPv6 in brackets); the message names what is wrong, not the input.
pub fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s.rsplit_once(':').ok_or("expected host:port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("expected host:port (no host)".into());
    }
    let port: u16 = port.parse().map_err(|_| "expected host:port (bad port)".to_string())?;
    if port == 0 {
        return Err("expected host:port (port 0)".into());
    }
    Ok((host.to_string(), port))
}

/// The default `target` name: the Sentinel master name.
pub fn default_name(t: &RedisTarget) -> Option<String> {
    (!t.sentinels.is_empty()).then(|| t.master_name.clone()).flatten()
}

/// Every problem with a target's cluster / Sentinel settings.
pub fn problems(t: &RedisTarget) -> Vec<String> {
    let mut out = Vec::new();
    let sentinel = !t.sentinels.is_empty();
    if !url_given(t) && !sentinel {
        out.push("missing field `url`".to_string());
    }
    if t.cluster && sentinel {
        out.push("cluster: true and sentinels exclude each other".into());
    }
    if !t.seeds.is_empty() && !t.cluster {
        out.push("seeds need cluster: true".into());
    }
    if t.cluster
        && t.url
            .shown()
            .trim_end_matches('/')
            .rsplit_once('/')
            .is_some_and(|(_, db)| db.parse::<u32>().is_ok_and(|d| d != 0))
    {
        out.push("a Redis Cluster has only database 0".into());
    }
    for (i, s) in t.seeds.iter().enumerate() {
        if let Err(e) = split_host_port(s) {
            out.push(format!("seeds[{i}]: {e}"));
        }
    }
    for (i, s) in t.sentinels.iter().enumerate() {
        if let Err(e) = split_host_port(s) {
            out.push(format!("sentinels[{i}]: {e}"));
        }
    }
    if sentinel && t.master_name.as_deref().is_none_or(str::is_empty) {
        out.push("sentinels need master_name".into());
    }
    let sentinel_only = t.master_name.is_some()
        || t.replicas
        || t.sentinel_password_env.is_some()
        || t.sentinel_password_file.is_some();
    if !sentinel && sentinel_only {
        out.push("master_name, replicas and sentinel_password_* need sentinels".into());
    }
    if t.sentinel_password_env.is_some() && t.sentinel_password_file.is_some() {
        out.push(
            "give the sentinel password in only one of sentinel_password_env, sentinel_password_file".into(),
        );
    } else if let Err(e) = resolve_secret(None, &t.sentinel_password_env, &t.sentinel_password_file) {
        out.push(format!("sentinel_{e}"));
    }
    out
}

/// The layout of a valid target.
pub fn resolve(t: &RedisTarget) -> Result<Topology, String> {
    if t.cluster {
        let first = t.url.host_port();
        let mut seeds = vec![first.clone()];
        seeds.extend(t.seeds.iter().filter(|s| **s != first).cloned());
        return Ok(Topology::Cluster { seeds });
    }
    if !t.sentinels.is_empty() {
        let password = resolve_secret(None, &t.sentinel_password_env, &t.sentinel_password_file)
            .map_err(|e| format!("sentinel_{e}"))?;
        return Ok(Topology::Sentinel {
            sentinels: t.sentinels.clone(),
            master_name: t.master_name.clone().unwrap_or_default(),
            replicas: t.replicas,
            password,
        });
    }
    Ok(Topology::Single)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, Topology};

    fn problems(src: &str) -> Vec<String> {
        match Config::parse(src, "t.yaml") {
            Err(ConfigError::Invalid { problems, .. }) => problems.into_iter().map(|p| p.message).collect(),
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    #[test]
    fn cluster_target_with_seeds() {
        let c = Config::parse(
            "redis:\n  - name: jobs\n    url: redis://10.0.0.1:7000\n    cluster: true\n    seeds: [10.0.0.2:7000, \"[::1]:7001\"]\n",
            "t.yaml",
        )
        .expect("valid");
        let t = c.redis_targets().expect("resolves");
        assert_eq!(
            t[0].topology,
            Topology::Cluster {
                seeds: vec!["10.0.0.1:7000".into(), "10.0.0.2:7000".into(), "[::1]:7001".into()]
            }
        );
    }

    #[test]
    fn sentinel_target_needs_no_url_and_is_named_after_its_master() {
        let c = Config::parse(
            "redis:\n  - sentinels: [127.0.0.1:26379, 127.0.0.1:26380]\n    master_name: mymaster\n    replicas: true\n",
            "t.yaml",
        )
        .expect("valid");
        let t = c.redis_targets().expect("resolves");
        assert_eq!(t[0].name, "mymaster");
        match &t[0].topology {
            Topology::Sentinel { sentinels, master_name, replicas, password } => {
                assert_eq!(sentinels.len(), 2);
                assert_eq!(master_name, "mymaster");
                assert!(*replicas);
                assert!(password.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn topology_mistakes_are_each_reported() {
        let p = problems("redis:\n  - name: a\n    cluster: true\n");
        assert!(p.iter().any(|m| m.contains("missing field `url`")), "{p:?}");
        let p = problems(
            "redis:\n  - url: redis://h:1/3\n    cluster: true\n    sentinels: [x]\n    seeds: [nope]\n",
        );
        for want in [
            "exclude each other",
            "only database 0",
            "seeds[0]: expected host:port",
            "sentinels[0]: expected host:port",
            "need master_name",
        ] {
            assert!(p.iter().any(|m| m.contains(want)), "{want}: {p:?}");
        }
        let p = problems("redis:\n  - url: redis://h:1\n    master_name: m\n    seeds: [h:2]\n");
        assert!(p.iter().any(|m| m.contains("need sentinels")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("seeds need cluster")), "{p:?}");
        let p = problems(
            "redis:\n  - sentinels: [h:1]\n    master_name: m\n    sentinel_password_env: REDLINE_SURELY_UNSET_SENTINEL\n",
        );
        assert!(p.iter().any(|m| m.contains("REDLINE_SURELY_UNSET_SENTINEL is not set")), "{p:?}");
    }
}
