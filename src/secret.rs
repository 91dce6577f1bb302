//! Secrets and the Redis URL type that keeps its password apart from everything printable.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A password. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    /// The secret itself, for the one place that must send it (AUTH).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A `redis://` or `rediss://` URL with any password split off into a [`Secret`].
#[derive(Clone)]
pub struct RedisUrl {
    /// The URL with the password removed: safe for logs and labels.
    url: url::Url,
    password: Option<Secret>,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.url)
    }
}

impl RedisUrl {
    /// Parses a URL; the error never contains the input (it may hold a password).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut url = url::Url::parse(s).map_err(|e| format!("invalid Redis URL: {e}"))?;
        match url.scheme() {
            "redis" | "rediss" => {}
            other => {
                return Err(format!(
                    "invalid Redis URL: scheme {other:?} is not supported, use redis:// or rediss://"
                ))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("invalid Redis URL: no host".into());
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err("invalid Redis URL: the path must be a database number".into());
        }
        let password = url.password().map(|p| {
            let decoded = percent_decode(p);
            Secret::new(decoded)
        });
        // Cannot fail for redis:// URLs with a host.
        let _ = url.set_password(None);
        Ok(RedisUrl { url, password })
    }

    /// URL without password, for messages.
    pub fn shown(&self) -> String {
        self.url.to_string()
    }

    /// `host:port` (default port 6379), the default target name.
    pub fn host_port(&self) -> String {
        let host = self.url.host_str().unwrap_or("");
        format!("{host}:{}", self.url.port().unwrap_or(6379))
    }

    /// The password embedded in the URL, if any.
    pub fn password(&self) -> Option<Secret> {
        self.password.clone()
    }

    /// The user embedded in the URL, if any.
    pub fn username(&self) -> Option<String> {
        Some(self.url.username()).filter(|u| !u.is_empty()).map(percent_decode)
    }

    /// Whether the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "rediss"
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RedisUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// PostgreSQL connection settings (URL or key=value) with any password split off.
#[derive(Clone)]
pub struct PgDsn {
    config: tokio_postgres::Config,
    password: Option<Secret>,
}

impl fmt::Debug for PgDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgDsn({})", self.shown())
    }
}

impl PgDsn {
    /// Parses a DSN; the error never contains the input (it may hold a password).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut config: tokio_postgres::Config = s.parse().map_err(|_| {
            "invalid PostgreSQL DSN: expected postgres://user@host:port/db or host=… dbname=…".to_string()
        })?;
        if config.get_hosts().is_empty() {
            return Err("invalid PostgreSQL DSN: no host".into());
        }
        let password = config.get_password().map(|p| Secret::new(String::from_utf8_lossy(p).into_owned()));
        // Rebuild without the password: tokio-postgres has no way to unset it.
        let mut clean = tokio_postgres::Config::new();
        for h in config.get_hosts() {
            match h {
                tokio_postgres::config::Host::Tcp(t) => clean.host(t),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => clean.host_path(p),
            };
        }
        for p in config.get_ports() {
            clean.port(*p);
        }
        if let Some(u) = config.get_user() {
            clean.user(u);
        }
        if let Some(d) = config.get_dbname() {
            clean.dbname(d);
        }
        config = clean;
        Ok(PgDsn { config, password })
    }

    /// `host:port/dbname`, the default target name and what messages show.
    pub fn shown(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().or(self.config.get_user()).unwrap_or("postgres");
        format!("{host}:{port}/{db}")
    }

    /// The password embedded in the DSN, if any.
    pub fn password(&self) -> Option<Secret> {
        self.password.clone()
    }

    /// Connection settings (no password; the collector adds it).
    pub fn config(&self) -> tokio_postgres::Config {
        self.config.clone()
    }
}

impl<'de> Deserialize<'de> for PgDsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PgDsn::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_split_off_and_hidden() {
        let u = RedisUrl::parse("redis://app:s%40cret@10.0.0.1:6380/2").expect("valid");
        assert_eq!(u.password().map(|s| s.expose().to_string()).as_deref(), Some("s@cret"));
        assert_eq!(u.username().as_deref(), Some("app"));
        assert!(!u.shown().contains("cret"));
        assert!(!format!("{u:?}").contains("cret"));
        assert_eq!(u.host_port(), "10.0.0.1:6380");
    }

    #[test]
    fn pg_dsn_hides_password_in_every_form() {
        for dsn in [
            "postgres://app:pa55word@db.local:5433/orders",
            "host=db.local port=5433 user=app password=pa55word dbname=orders",
        ] {
            let d = PgDsn::parse(dsn).expect(dsn);
            assert_eq!(d.shown(), "db.local:5433/orders");
            assert_eq!(d.password().map(|s| s.expose().to_string()).as_deref(), Some("pa55word"));
            assert!(!format!("{d:?}").contains("pa55word"));
            assert!(d.config().get_password().is_none());
        }
        let e = PgDsn::parse("postgres://a:secret@:::bad").expect_err("bad");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn bad_urls_are_rejected_without_echoing_input() {
        for bad in ["http://x:6379", "redis://", "redis://h:6379/abc", "not a url :pw"] {
            let e = RedisUrl::parse(bad).expect_err(bad);
            assert!(!e.contains("pw"), "{e}");
        }
        assert!(RedisUrl::parse("rediss://h:6380").expect("tls").is_tls());
    }
}
