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
    fn bad_urls_are_rejected_without_echoing_input() {
        for bad in ["http://x:6379", "redis://", "redis://h:6379/abc", "not a url :pw"] {
            let e = RedisUrl::parse(bad).expect_err(bad);
            assert!(!e.contains("pw"), "{e}");
        }
        assert!(RedisUrl::parse("rediss://h:6380").expect("tls").is_tls());
    }
}
