//! Secrets, and the URL types that keep their passwords apart from everything printable:
//! Redis targets, PostgreSQL DSNs and the plain-HTTP URLs redline calls (Prometheus' reload
//! endpoint, `redline snapshot --url`).

use std::fmt;

use serde::{Deserialize, Deserializer};

/// Why a URL or DSN was refused. Messages never contain the input (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all (the parser's reason, which never quotes the input).
    #[error("invalid {kind}: {reason}")]
    Syntax {
        /// What was being parsed ("Redis URL", "URL", …).
        kind: &'static str,
        /// The parser's reason.
        reason: String,
    },
    /// A URL with a scheme this field does not take.
    #[error("invalid {kind}: scheme {scheme} is not supported, use {expected}")]
    Scheme {
        /// What was being parsed.
        kind: &'static str,
        /// The scheme given.
        scheme: String,
        /// The schemes that work.
        expected: &'static str,
    },
    /// No host in the URL.
    #[error("invalid {kind}: no host")]
    NoHost {
        /// What was being parsed.
        kind: &'static str,
    },
    /// A Redis URL whose path is not a database number.
    #[error("invalid Redis URL: the path must be a database number")]
    Database,
    /// A PostgreSQL DSN tokio-postgres cannot read.
    #[error("invalid PostgreSQL DSN: expected postgres://user@host:port/db or host=… dbname=…")]
    Dsn,
    /// A PostgreSQL DSN whose TLS parameters are wrong; names the parameter, never a value.
    #[error("{0}")]
    Ssl(String),
}

/// A scheme for an error message: well-known ones by name, anything else (a mistyped value
/// that merely looks like `word:…` may be a password) not at all.
fn shown_scheme(scheme: &str) -> String {
    const KNOWN: &[&str] =
        &["http", "https", "redis", "rediss", "postgres", "postgresql", "unix", "tcp", "mysql"];
    if KNOWN.contains(&scheme) {
        scheme.to_string()
    } else {
        "(not shown)".to_string()
    }
}

/// A password. `Debug` and `Display` never show it; equality compares the value (to see a
/// changed password on reload) without printing it.
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
#[derive(Clone, PartialEq, Eq)]
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
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        const KIND: &str = "Redis URL";
        let mut url =
            url::Url::parse(s).map_err(|e| UrlError::Syntax { kind: KIND, reason: e.to_string() })?;
        match url.scheme() {
            "redis" | "rediss" => {}
            other => {
                return Err(UrlError::Scheme {
                    kind: KIND,
                    scheme: shown_scheme(other),
                    expected: "redis:// or rediss://",
                })
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost { kind: KIND });
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(UrlError::Database);
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

/// libpq's `sslmode`: whether and how TLS protects a PostgreSQL connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// Plain TCP first; TLS if the server refuses it.
    Allow,
    /// TLS first; plain TCP if the server has no TLS or the TLS attempt fails (libpq's default).
    Prefer,
    /// TLS only; the certificate is verified only when a root certificate is given.
    Require,
    /// TLS only; the server certificate must chain to the root certificate.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// The TLS parameters of a DSN (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`), which
/// tokio-postgres does not read itself. Paths are as written (files are read at resolution).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgSslParams {
    /// `sslmode`.
    pub mode: Option<SslMode>,
    /// `sslrootcert`: a PEM file, or `system` for the system trust store.
    pub root_cert: Option<String>,
    /// `sslcert`: the client certificate (PEM).
    pub cert: Option<String>,
    /// `sslkey`: the client certificate's private key (PEM, unencrypted).
    pub key: Option<String>,
}

/// libpq TLS parameters redline does not implement: named in an error rather than ignored.
const UNSUPPORTED_SSL_PARAMS: &[&str] = &[
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslcompression",
    "sslcertmode",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "requiressl",
];

/// Removes the TLS parameters from a DSN (URL or key=value form), returning the rest for
/// tokio-postgres. Errors name the parameter, never a value.
fn split_ssl_params(dsn: &str) -> Result<(String, PgSslParams), String> {
    let mut params = PgSslParams::default();
    let mut take = |key: &str, value: String| -> Result<bool, String> {
        let slot = match key {
            "sslmode" => {
                params.mode = Some(SslMode::parse(&value).ok_or(
                    "invalid PostgreSQL DSN: sslmode must be disable, allow, prefer, require, verify-ca or verify-full",
                )?);
                return Ok(true);
            }
            "sslrootcert" => &mut params.root_cert,
            "sslcert" => &mut params.cert,
            "sslkey" => &mut params.key,
            k if UNSUPPORTED_SSL_PARAMS.contains(&k) => {
                return Err(format!("invalid PostgreSQL DSN: {k} is not supported by redline"))
            }
            _ => return Ok(false),
        };
        *slot = Some(value);
        Ok(true)
    };
    let url_body = dsn.strip_prefix("postgres://").or_else(|| dsn.strip_prefix("postgresql://"));
    if let Some(body) = url_body {
        // Credentials end at the first '@' (as tokio-postgres reads them); the query follows '?'.
        let after_credentials = body.find('@').map_or(0, |i| i + 1);
        let Some(q) = body[after_credentials..].find('?').map(|i| i + after_credentials) else {
            return Ok((dsn.to_string(), params));
        };
        let mut kept = Vec::new();
        for pair in body[q + 1..].split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(&percent_decode_strict(k)?, percent_decode_strict(v)?)? {
                kept.push(pair);
            }
        }
        let head = &dsn[..dsn.len() - body.len() + q];
        let rest = if kept.is_empty() { head.to_string() } else { format!("{head}?{}", kept.join("&")) };
        return Ok((rest, params));
    }
    let mut kept = Vec::new();
    for (key, value, raw) in key_value_pairs(dsn)? {
        if !take(key, value)? {
            kept.push(raw);
        }
    }
    Ok((kept.join(" "), params))
}

/// `%XX` decoding as libpq does it (`+` stays `+`); invalid UTF-8 is an error.
fn percent_decode_strict(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or("invalid PostgreSQL DSN: bad %-escape in a parameter")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "invalid PostgreSQL DSN: a parameter is not UTF-8".to_string())
}

/// The `key = value` pairs of a key/value DSN with their raw text, following tokio-postgres'
/// (and libpq's) rules: values may be single-quoted, a backslash escapes the next character.
fn key_value_pairs(s: &str) -> Result<Vec<(&str, String, &str)>, String> {
    const BAD: &str = "invalid PostgreSQL DSN: expected postgres://user@host:port/db or host=… dbname=…";
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(start, _)) = it.peek() else { break };
        while it.next_if(|(_, c)| !c.is_whitespace() && *c != '=').is_some() {}
        let key_end = it.peek().map_or(s.len(), |(i, _)| *i);
        skip_ws(&mut it);
        if it.next().map(|(_, c)| c) != Some('=') || key_end == start {
            return Err(BAD.into());
        }
        skip_ws(&mut it);
        let mut value = String::new();
        if it.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match it.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(it.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                    None => return Err(BAD.into()),
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(BAD.into());
            }
        }
        let end = it.peek().map_or(s.len(), |(i, _)| *i);
        out.push((&s[start..key_end], value, &s[start..end]));
    }
    Ok(out)
}

/// PostgreSQL connection settings (URL or key=value) with any password split off. Equality
/// covers everything, TLS parameters and password included, so a reload can tell any change.
#[derive(Clone, PartialEq)]
pub struct PgDsn {
    config: tokio_postgres::Config,
    password: Option<Secret>,
    ssl: PgSslParams,
}

impl fmt::Debug for PgDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgDsn({})", self.shown())
    }
}

impl PgDsn {
    /// Parses a DSN; the error never contains the input (it may hold a password).
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let (s, ssl) = split_ssl_params(s).map_err(UrlError::Ssl)?;
        let mut config: tokio_postgres::Config = s.parse().map_err(|_| UrlError::Dsn)?;
        if config.get_hosts().is_empty() {
            return Err(UrlError::NoHost { kind: "PostgreSQL DSN" });
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
        Ok(PgDsn { config, password, ssl })
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

    /// Connection settings (no password; the collector adds it, and TLS from [`Self::ssl`]).
    pub fn config(&self) -> tokio_postgres::Config {
        self.config.clone()
    }

    /// The DSN's TLS parameters.
    pub fn ssl(&self) -> &PgSslParams {
        &self.ssl
    }
}

impl<'de> Deserialize<'de> for PgDsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PgDsn::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Credentials for HTTP basic authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name (may be shown).
    pub user: String,
    /// Password (never shown).
    pub password: Secret,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BasicAuth({}:***)", self.user)
    }
}

impl BasicAuth {
    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        use base64::Engine;
        let raw = format!("{}:{}", self.user, self.password.expose());
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// A plain `http://` URL whose `user:password@` part, if any, is split off into
/// [`BasicAuth`]: the URL itself is safe to print.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl {
    url: url::Url,
    auth: Option<BasicAuth>,
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpUrl({})", self.url)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl HttpUrl {
    /// Parses an `http://host[:port]/path` URL; the error never contains the input.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        const KIND: &str = "URL";
        let mut url =
            url::Url::parse(s).map_err(|e| UrlError::Syntax { kind: KIND, reason: e.to_string() })?;
        if url.scheme() != "http" {
            return Err(UrlError::Scheme {
                kind: KIND,
                scheme: shown_scheme(url.scheme()),
                expected: "http://",
            });
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost { kind: KIND });
        }
        let user = percent_decode(url.username());
        let password = url.password().map(percent_decode);
        let auth = (!user.is_empty() || password.is_some())
            .then(|| BasicAuth { user, password: Secret::new(password.unwrap_or_default()) });
        // Cannot fail for http:// URLs with a host.
        let _ = url.set_password(None);
        let _ = url.set_username("");
        Ok(HttpUrl { url, auth })
    }

    /// The URL without credentials.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The credentials to send, if the URL carried any.
    pub fn auth(&self) -> Option<&BasicAuth> {
        self.auth.as_ref()
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HttpUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Removes the `user:password@` part of every URL in `text` (`scheme://user:pw@host` ->
/// `scheme://host`), for text that may quote a URL someone typed: error messages of other
/// libraries, snapshot headers written by older versions.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#', whitespace or quote; userinfo is what
        // precedes its last '@'.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
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
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn pg_dsn_reads_tls_parameters_in_both_forms() {
        let url = PgDsn::parse(
            "postgres://app:p%3Fss@db.local:5433/orders?sslmode=verify-full&sslrootcert=/etc/ca%20dir/ca.pem&application_name=x&sslcert=/c.pem&sslkey=/k.pem",
        )
        .expect("url");
        let kv = PgDsn::parse(
            "host=db.local port=5433 user=app password='p?ss' dbname=orders sslmode = verify-full \
             sslrootcert='/etc/ca dir/ca.pem' sslcert=/c.pem sslkey=/k.pem",
        )
        .expect("key=value");
        for d in [&url, &kv] {
            assert_eq!(d.shown(), "db.local:5433/orders");
            assert_eq!(d.password().map(|p| p.expose().to_string()).as_deref(), Some("p?ss"));
            let ssl = d.ssl();
            assert_eq!(ssl.mode, Some(SslMode::VerifyFull));
            assert_eq!(ssl.root_cert.as_deref(), Some("/etc/ca dir/ca.pem"));
            assert_eq!(ssl.cert.as_deref(), Some("/c.pem"));
            assert_eq!(ssl.key.as_deref(), Some("/k.pem"));
        }
        let plain = PgDsn::parse("postgres://u@h/db").expect("no params");
        assert_eq!(plain.ssl(), &PgSslParams::default());
        for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
            let d = PgDsn::parse(&format!("host=h user=u sslmode={mode}")).expect(mode);
            assert_eq!(d.ssl().mode.map(SslMode::as_str), Some(mode));
        }
    }

    #[test]
    fn pg_dsn_tls_errors_name_the_parameter_not_the_value() {
        let e = PgDsn::parse("postgres://u:hunter2@h/db?sslmode=verify-hunter2").expect_err("bad mode");
        let e = e.to_string();
        assert!(e.contains("sslmode must be") && !e.contains("hunter2"), "{e}");
        let e = PgDsn::parse("host=h user=u password=hunter2 sslpassword=hunter2").expect_err("unsupported");
        let e = e.to_string();
        assert!(e.contains("sslpassword is not supported") && !e.contains("hunter2"), "{e}");
        let e = PgDsn::parse("host=h password='hunter2").expect_err("unterminated quote").to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn bad_urls_are_rejected_without_echoing_input() {
        for bad in ["http://x:6379", "redis://", "redis://h:6379/abc", "not a url :pw"] {
            let e = RedisUrl::parse(bad).expect_err(bad).to_string();
            assert!(!e.contains("pw"), "{e}");
        }
        assert!(RedisUrl::parse("rediss://h:6380").expect("tls").is_tls());
    }

    #[test]
    fn http_url_moves_credentials_to_basic_auth() {
        let u = HttpUrl::parse("http://admin:p%40ss@127.0.0.1:9090/-/reload").expect("valid");
        assert_eq!(u.to_string(), "http://127.0.0.1:9090/-/reload");
        assert!(!format!("{u:?}").contains("p@ss"));
        let auth = u.auth().expect("auth");
        assert_eq!((auth.user.as_str(), auth.password.expose()), ("admin", "p@ss"));
        assert_eq!(auth.header(), "Basic YWRtaW46cEBzcw==");
        assert!(HttpUrl::parse("http://127.0.0.1/").expect("valid").auth().is_none());
        for bad in ["https://u:pw@h/", "http://u:pw@/x", "u:pw@h"] {
            let e = HttpUrl::parse(bad).expect_err(bad).to_string();
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn userinfo_is_redacted_from_free_text() {
        assert_eq!(
            redact_userinfo("x \"redis://:LeakPw@h:1\" and postgres://u:pw@db/x, http://h/a@b"),
            "x \"redis://h:1\" and postgres://db/x, http://h/a@b"
        );
        assert_eq!(redact_userinfo("no urls here"), "no urls here");
    }

    #[test]
    fn changed_passwords_compare_unequal() {
        let a = RedisUrl::parse("redis://:one@h:1").expect("a");
        let b = RedisUrl::parse("redis://:two@h:1").expect("b");
        assert_ne!(a, b);
        assert_eq!(a, RedisUrl::parse("redis://:one@h:1").expect("a"));
        let p = PgDsn::parse("postgres://u:one@h/db").expect("p");
        assert_ne!(p, PgDsn::parse("postgres://u:two@h/db").expect("q"));
        assert_eq!(p, PgDsn::parse("postgres://u:one@h/db").expect("p"));
    }
}
