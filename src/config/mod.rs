//! Daemon configuration: the YAML file `redline run --config` reads, parsed in two steps
//! (raw serde structs, then validation that reports every problem with its line).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub mod pg_tls;
pub mod queues;
pub mod topology;

pub use pg_tls::{PgTls, PostgresTls};
pub use queues::{QueueSource, System};
pub use topology::{split_host_port, Topology};

use crate::secret::{HttpUrl, PgDsn, RedisUrl, Secret};

/// Largest configuration or thresholds file accepted. Real files are a few KB; the bound keeps a
/// runaway generator or a wrong file from stalling a reload.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Deepest nesting (block indentation levels, sequence markers and flow brackets together)
/// accepted. Real files nest about 6 deep; the YAML parser slows down sharply on deep flow
/// nesting, so deeper files are refused before it runs.
pub const MAX_DEPTH: usize = 64;
/// Shortest collection interval accepted: collecting more often only loads the targets.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Most `limits.queue_histograms` patterns: each is matched once per queue, and more than this
/// is a list of queue names that wants `true` instead.
pub const MAX_HISTOGRAM_PATTERNS: usize = 1000;
/// Shortest collection deadline accepted: no real target answers a collection faster.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// The whole daemon configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address `/metrics` listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Defaults for every collector's interval and deadline.
    #[serde(default)]
    pub collection: Collection,
    /// The host collector (CPU, memory, disks, network of this machine).
    #[serde(default)]
    pub host: HostConfig,
    /// Redis targets.
    #[serde(default)]
    pub redis: Vec<RedisTarget>,
    /// PostgreSQL targets.
    #[serde(default)]
    pub postgres: Vec<PostgresTarget>,
    /// Bounds on cardinality and work per collection.
    #[serde(default)]
    pub limits: Limits,
    /// The thresholds file and what to regenerate when it changes.
    #[serde(default)]
    pub thresholds: ThresholdsConfig,
}

/// Where the thresholds live and what a change to them updates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsConfig {
    /// Thresholds file, relative to this config file's directory. Without it the built-in
    /// defaults apply and nothing is watched.
    pub file: Option<PathBuf>,
    /// Rewrite redline.rules.yml (and its promtool tests) here when the thresholds change.
    pub rules_dir: Option<PathBuf>,
    /// Rewrite the Grafana dashboards here when the thresholds change.
    pub dashboards_dir: Option<PathBuf>,
    /// POST here after rewriting rules (Prometheus' `/-/reload`, needs --web.enable-lifecycle).
    /// `http://user:password@…` credentials are sent as basic auth and never logged.
    pub prometheus_reload_url: Option<HttpUrl>,
}

/// Collection cadence defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collection {
    /// How often each collector runs (e.g. `10s`).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Deadline for one collection; must not exceed the interval.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for Collection {
    fn default() -> Self {
        Self { interval: default_interval(), timeout: default_timeout() }
    }
}

/// Host collector settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Whether to collect host metrics.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overrides `collection.interval`.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self { enabled: true, interval: None }
    }
}

/// One Redis server to watch (or a Redis Cluster / a Sentinel-managed primary: see `cluster`
/// and `sentinels`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTarget {
    /// Value of the `target` label; defaults to `host:port` of the URL (`master_name` for a
    /// Sentinel target).
    pub name: Option<String>,
    /// `redis://[user[:password]@]host:port[/db]` or `rediss://…` for TLS. A password here is
    /// accepted but `password_env` / `password_file` keep it out of the file. On a cluster target,
    /// a seed node; on a Sentinel target optional: its scheme, user, password and database apply
    /// to the primary and replicas (its host is not used).
    #[serde(default = "topology::sentinel_placeholder_url")]
    pub url: RedisUrl,
    /// Redis Cluster: discover every shard from the seed nodes (`url`, `seeds`) and collect every
    /// node; queues are read on the node that owns their hash slot.
    #[serde(default)]
    pub cluster: bool,
    /// More cluster seed nodes, `host:port`, tried when `url` does not answer.
    #[serde(default)]
    pub seeds: Vec<String>,
    /// Sentinel: `host:port` of the sentinels that know `master_name`.
    #[serde(default)]
    pub sentinels: Vec<String>,
    /// Sentinel: the monitored primary's name (`sentinel monitor <name> …`).
    pub master_name: Option<String>,
    /// Sentinel: collect the primary's replicas too (default: the primary only).
    #[serde(default)]
    pub replicas: bool,
    /// Sentinel: environment variable with the sentinels' own password (`requirepass` of the
    /// sentinels); without it sentinels are contacted without AUTH.
    pub sentinel_password_env: Option<String>,
    /// Sentinel: file whose first line is the sentinels' password.
    pub sentinel_password_file: Option<PathBuf>,
    /// ACL user name (overrides the one in the URL).
    pub username: Option<String>,
    /// Name of an environment variable that holds the password.
    pub password_env: Option<String>,
    /// Path of a file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Overrides `collection.interval` for this target.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Overrides `collection.timeout` for this target.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Job queues stored on this server.
    #[serde(default)]
    pub queues: Vec<QueueSource>,
    /// Certificates for a `rediss://` URL; without it the system trust store verifies the server.
    pub tls: Option<RedisTls>,
}

/// TLS files for a `rediss://` target (PEM; absolute paths, or relative to the working directory
/// like `password_file`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTls {
    /// CA bundle that verifies the server, instead of the system trust store.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for servers that require one (`tls-auth-clients yes`).
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<PathBuf>,
}

/// TLS material read from a target's [`RedisTls`] files.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsMaterial {
    /// PEM CA bundle.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate and its key (the key is never printed).
    pub client: Option<(Vec<u8>, Secret)>,
}

/// One PostgreSQL server to watch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTarget {
    /// Value of the `target` label; defaults to `host:port/dbname`.
    pub name: Option<String>,
    /// `postgres://user@host:port/dbname` or `host=… user=… dbname=…`. Least privilege:
    /// a role granted `pg_monitor` (see README).
    pub dsn: PgDsn,
    /// Name of an environment variable that holds the password.
    pub password_env: Option<String>,
    /// Path of a file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Overrides `collection.interval` for this target.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Overrides `collection.timeout`; also the server-side `statement_timeout`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// pg_stat_statements: how many statements get their own series (by total time).
    #[serde(default = "default_statements_top")]
    pub statements_top: usize,
    /// A statement whose mean time exceeds this counts as slow.
    #[serde(default = "default_slow_statement", with = "humantime_serde")]
    pub slow_statement: Duration,
    /// Tables with the most dead tuples / the oldest vacuum reported (connected database).
    #[serde(default = "default_tables_top")]
    pub tables_top: usize,
    /// TLS (sslmode, CA, client certificate); the DSN's `sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey` may be used instead. Without either: libpq's default, `prefer`.
    pub tls: Option<PostgresTls>,
}

/// Bounds that keep the output and the work per collection small.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most per-command series (commandstats, latency histograms) per Redis target.
    #[serde(default = "default_max_commands")]
    pub max_commands: usize,
    /// SLOWLOG entries fetched per collection to find the slowest new one.
    #[serde(default = "default_slowlog_entries")]
    pub slowlog_entries: usize,
    /// Most queues collected per Redis target; the rest are counted in `redline_queue_dropped`.
    #[serde(default = "default_max_queues")]
    pub max_queues: usize,
    /// Bull and RQ: most finished jobs per queue and collection whose hashes are read for the
    /// duration histograms (counts stay exact). BullMQ times its jobs from the events stream,
    /// bounded separately.
    #[serde(default = "default_max_finished_samples")]
    pub max_finished_samples: usize,
    /// Queues with their own wait/processing histograms (36 series per queue): none by default,
    /// `true` for all, or glob patterns of queue names. Every queue's jobs feed the histograms of
    /// its system and prefix whatever this says; queues named in SLOs always keep theirs.
    #[serde(default)]
    pub queue_histograms: queues::QueueHistograms,
    /// Time between queue discovery passes.
    #[serde(default = "default_discovery_interval", with = "humantime_serde")]
    pub discovery_interval: Duration,
    /// Most SCAN time per discovery round; a larger keyspace is scanned over several rounds.
    #[serde(default = "default_discovery_budget", with = "humantime_serde")]
    pub discovery_budget: Duration,
    /// Histogram buckets the thresholds file's SLOs need; not read from the config: the
    /// reloader fills it and the queue collectors read it on every collection.
    #[serde(skip)]
    pub slo_buckets: crate::slo::SharedBuckets,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_commands: default_max_commands(),
            slowlog_entries: default_slowlog_entries(),
            max_queues: default_max_queues(),
            max_finished_samples: default_max_finished_samples(),
            queue_histograms: Default::default(),
            discovery_interval: default_discovery_interval(),
            discovery_budget: default_discovery_budget(),
            slo_buckets: Default::default(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9860))
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_commands() -> usize {
    200
}
fn default_slowlog_entries() -> usize {
    32
}
fn default_statements_top() -> usize {
    20
}
fn default_slow_statement() -> Duration {
    Duration::from_millis(500)
}
fn default_tables_top() -> usize {
    10
}
fn default_max_queues() -> usize {
    1000
}
fn default_max_finished_samples() -> usize {
    500
}
fn default_discovery_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_discovery_budget() -> Duration {
    Duration::from_millis(250)
}
fn yes() -> bool {
    true
}

/// One problem in a configuration file, with its place when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Errors loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {cause}")]
    Read {
        /// File.
        path: String,
        /// Cause (part of the message, not a separate source: printed once).
        cause: std::io::Error,
    },
    /// The file was read but is not valid; every problem found is listed.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        /// File.
        path: String,
        /// Problems, in file order where known.
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match (p.line, p.column) {
            (Some(l), Some(c)) => format!("{path}:{l}:{c}: {}", p.message),
            (Some(l), None) => format!("{path}:{l}: {}", p.message),
            _ => format!("{path}: {}", p.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Turns a serde_yaml_ng error into a located problem. The message keeps serde's own wording
/// ("unknown field `x`, expected one of …") without its trailing "at line … column …", and
/// without any value from the file (see [`scrub_yaml_message`]).
pub fn yaml_problem(e: &serde_yaml_ng::Error) -> Problem {
    let text = e.to_string();
    let message = match text.find(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let loc = e.location();
    Problem {
        line: loc.as_ref().map(|l| l.line()),
        column: loc.as_ref().map(|l| l.column()),
        message: scrub_yaml_message(message),
    }
}

/// Removes every value of the file from a serde/YAML message: a value may be a password (a URL
/// with credentials written where a mapping was expected gives `invalid type: string
/// "redis://:pw@…"`). Quoted scalars go; a backquoted token stays only when it is a field name
/// (`unknown field `pasword``) or one of the expected names; any URL credentials left are cut.
pub fn scrub_yaml_message(message: &str) -> String {
    let identifier = |t: &str| {
        let mut c = t.chars();
        c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && t.len() <= 64
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == '-')
    };
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A Debug-quoted scalar: skip to the closing quote, honouring escapes.
                while let Some(x) = chars.next() {
                    match x {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                if out.ends_with("string ") {
                    out.truncate(out.len() - "string ".len());
                    out.push_str("a string");
                } else {
                    out.push_str("a value");
                }
            }
            '`' => {
                let token: String = chars.by_ref().take_while(|x| *x != '`').collect();
                let named = out.ends_with("field ") || out.contains("expected");
                if named && identifier(&token) {
                    out.push('`');
                    out.push_str(&token);
                    out.push('`');
                } else {
                    // `integer `-5``, `unknown variant `x``: the value is dropped, the kind stays.
                    while out.ends_with(' ') {
                        out.pop();
                    }
                }
            }
            c => out.push(c),
        }
    }
    crate::secret::redact_userinfo(&out)
}

/// Refuses text too large or too deeply nested to parse quickly (see [`MAX_FILE_BYTES`],
/// [`MAX_DEPTH`]). The depth is estimated without parsing: indentation levels, leading `- `
/// markers and open flow brackets outside quotes and comments.
pub fn check_shape(src: &str) -> Result<(), Problem> {
    if src.len() > MAX_FILE_BYTES {
        return Err(Problem {
            line: None,
            column: None,
            message: format!("the file is {} bytes; at most {MAX_FILE_BYTES} are accepted", src.len()),
        });
    }
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    for (i, line) in src.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        let mut depth_here = 0;
        if quote.is_none() && flow == 0 && !body.is_empty() && !body.starts_with('#') {
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            let mut rest = body;
            while let Some(r) = rest.strip_prefix("- ") {
                depth_here += 1;
                rest = r.trim_start_matches(' ');
            }
        }
        let mut prev = ' ';
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some('"'), '"') => quote = None,
                (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                }
                (Some('\''), '\'') => quote = None,
                (Some(_), _) => {}
                (None, '#') if prev.is_whitespace() => break,
                (None, '"' | '\'') if matches!(prev, ' ' | '\t' | ':' | '[' | '{' | ',' | '-') => {
                    quote = Some(c)
                }
                (None, '[' | '{') => flow += 1,
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = c;
            if indents.len() + depth_here + flow > MAX_DEPTH {
                return Err(Problem {
                    line: Some(i + 1),
                    column: None,
                    message: format!("nested more than {MAX_DEPTH} levels deep"),
                });
            }
        }
    }
    Ok(())
}

/// Parses YAML text with the shape limits, scrubbed messages, and "the file is empty" for a
/// file that holds no document (blank, only comments, or `null`): a reload must never turn a
/// truncated file into "no targets" or "no thresholds".
pub fn parse_yaml<T: DeserializeOwned>(src: &str, path: &str, empty_hint: &str) -> Result<T, ConfigError> {
    let invalid = |problems| ConfigError::Invalid { path: path.to_string(), problems };
    check_shape(src).map_err(|p| invalid(vec![p]))?;
    let value: Option<T> = serde_yaml_ng::from_str(src).map_err(|e| invalid(vec![yaml_problem(&e)]))?;
    value.ok_or_else(|| {
        invalid(vec![Problem {
            line: None,
            column: None,
            message: format!("the file is empty; {empty_hint}"),
        }])
    })
}

/// 1-based line of the first line containing `needle`, for problems found after parsing.
pub fn line_of(src: &str, needle: &str) -> Option<usize> {
    src.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// 1-based line where item `index` of the top-level block sequence `key:` starts.
/// Block style only (what people write); flow style yields `None` and the message stands alone.
pub fn item_line(src: &str, key: &str, index: usize) -> Option<usize> {
    item_lines(src, key).get(index).copied()
}

/// 1-based start lines of every item of the top-level block sequence `key:`, in one pass (a
/// file with thousands of items must not be rescanned per item).
pub fn item_lines(src: &str, key: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let lines: Vec<&str> = src.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == format!("{key}:")) else {
        return out;
    };
    let mut item_indent = None;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = l.len() - trimmed.len();
        if indent == 0 && !trimmed.starts_with('-') {
            break; // next top-level key
        }
        if (trimmed.starts_with("- ") || trimmed == "-") && indent == *item_indent.get_or_insert(indent) {
            out.push(i + 1);
        }
    }
    out
}

/// Replaces `${VAR}` / `${VAR:-default}`; `$$` is a literal `$`. Unset variables without a
/// default are problems at their line. Values are not echoed (they may be secrets).
pub fn expand_env(src: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(src.len());
    let mut problems = Vec::new();
    for (i, whole) in src.split_inclusive('\n').enumerate() {
        // Comments are left as they are (they may document the ${VAR} syntax itself).
        let (line, comment) = whole.split_at(comment_start(whole));
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    problems.push(Problem {
                        line: Some(i + 1),
                        column: Some(pos + 1),
                        message: "unclosed ${".into(),
                    });
                    out.push_str(&rest[pos..]);
                    rest = "";
                    break;
                };
                let expr = &body[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                match (get(name), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => problems.push(Problem {
                        line: Some(i + 1),
                        column: Some(pos + 1),
                        message: format!("environment variable {name} is not set (write ${{{name}:-default}} for a default)"),
                    }),
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Byte index where a YAML comment starts on this line (or its length): a `#` at the start or
/// after whitespace, outside quotes.
fn comment_start(line: &str) -> usize {
    let (mut single, mut double) = (false, false);
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => return i,
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line.len()
}

/// A Redis target after validation, with its secret resolved. Equality covers everything a
/// collector uses, secrets and TLS material included, so a reload sees a changed password.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRedis {
    /// `target` label value.
    pub name: String,
    /// URL without credentials (safe to show).
    pub url: RedisUrl,
    /// ACL user.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Collection interval.
    pub interval: Duration,
    /// Collection deadline.
    pub timeout: Duration,
    /// Job queues on this server.
    pub queues: Vec<QueueSource>,
    /// Certificates for TLS, when the target names any.
    pub tls: Option<TlsMaterial>,
    /// A single server, a cluster, or a Sentinel-managed primary.
    pub topology: Topology,
}

/// A PostgreSQL target after validation, with its secret resolved (equality as for
/// [`ResolvedRedis`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPostgres {
    /// `target` label value.
    pub name: String,
    /// Connection settings without the password.
    pub dsn: PgDsn,
    /// Password, if any (from the DSN, env or file).
    pub password: Option<Secret>,
    /// Collection interval.
    pub interval: Duration,
    /// Collection deadline and statement_timeout.
    pub timeout: Duration,
    /// Statements with their own series.
    pub statements_top: usize,
    /// Mean time over which a statement is slow.
    pub slow_statement: Duration,
    /// Tables reported.
    pub tables_top: usize,
    /// TLS mode and material.
    pub tls: PgTls,
}

impl Config {
    /// Parses and validates configuration text. `path` is only used in messages.
    /// `${VAR}` and `${VAR:-default}` are replaced from the environment first (sidecars).
    pub fn parse(src: &str, path: &str) -> Result<Config, ConfigError> {
        let invalid = |problems| ConfigError::Invalid { path: path.to_string(), problems };
        check_shape(src).map_err(|p| invalid(vec![p]))?;
        let expanded = expand_env(src, &|k| std::env::var(k).ok()).map_err(invalid)?;
        let src = expanded.as_str();
        // An empty file is refused, at start and on reload: a truncated file must not silently
        // become "no targets". `{}` is the explicit all-defaults configuration.
        let cfg: Config = parse_yaml(src, path, "write `{}` to run with every default")?;
        let problems = cfg.problems(src);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(invalid(problems))
        }
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let src = std::fs::read_to_string(path)
            .map_err(|cause| ConfigError::Read { path: shown.clone(), cause })?;
        let mut cfg = Config::parse(&src, &shown)?;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    /// Semantic checks serde cannot do; every problem is reported, not just the first.
    fn problems(&self, src: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |line: Option<usize>, message: String| {
            out.push(Problem { line, column: None, message });
        };
        if self.collection.interval < MIN_INTERVAL {
            push(line_of(src, "interval:"), format!("collection.interval must be at least {MIN_INTERVAL:?}"));
        }
        if self.collection.timeout < MIN_TIMEOUT {
            push(line_of(src, "timeout:"), format!("collection.timeout must be at least {MIN_TIMEOUT:?}"));
        }
        if self.collection.timeout > self.collection.interval {
            push(line_of(src, "timeout:"), "collection.timeout must not exceed collection.interval".into());
        }
        if self.host.interval.is_some_and(|i| i < MIN_INTERVAL) {
            push(line_of(src, "interval:"), format!("host.interval must be at least {MIN_INTERVAL:?}"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.redis.iter().enumerate() {
            let at = item_line(src, "redis", i);
            let name = self.redis_name(t);
            if name.is_empty() {
                // An empty `target` label is no label to Prometheus: per-target alerts break.
                push(at, format!("redis[{i}]: name must not be empty"));
            }
            let named: usize = t.queues.iter().map(|q| q.names.len()).sum();
            if named > self.limits.max_queues {
                push(
                    at,
                    format!(
                        "redis[{i}]: names {named} queues but limits.max_queues is {}: the cap would drop named queues",
                        self.limits.max_queues
                    ),
                );
            }
            if !names.insert(name.clone()) {
                push(
                    at,
                    format!("redis[{i}]: duplicate target name {name:?}; give each target a unique `name`"),
                );
            }
            let sources = [t.url.password().is_some(), t.password_env.is_some(), t.password_file.is_some()];
            if sources.iter().filter(|s| **s).count() > 1 {
                push(
                    at,
                    format!("redis[{i}]: give the password in only one of url, password_env, password_file"),
                );
            }
            let interval = t.interval.unwrap_or(self.collection.interval);
            if interval < MIN_INTERVAL || t.timeout.is_some_and(|x| x < MIN_TIMEOUT) {
                push(
                    at,
                    format!("redis[{i}]: interval must be at least {MIN_INTERVAL:?} and timeout at least {MIN_TIMEOUT:?}"),
                );
            }
            // Only when the target sets its own cadence; otherwise the global check covers it.
            let own_cadence = t.interval.is_some() || t.timeout.is_some();
            if own_cadence && t.timeout.unwrap_or(self.collection.timeout) > interval {
                push(at, format!("redis[{i}]: timeout must not exceed interval"));
            }
            if let Err(e) = resolve_password(t) {
                push(at, format!("redis[{i}]: {e}"));
            }
            if t.tls.is_some() && !t.url.is_tls() {
                push(at, format!("redis[{i}]: tls needs a rediss:// URL"));
            }
            if let Err(e) = t.tls.as_ref().map(read_tls).transpose() {
                push(at, format!("redis[{i}]: {e}"));
            }
            for e in topology::problems(t) {
                push(at, format!("redis[{i}]: {e}"));
            }
            for (j, q) in t.queues.iter().enumerate() {
                if q.names.iter().any(|n| n.is_empty()) {
                    push(at, format!("redis[{i}].queues[{j}]: queue names must not be empty"));
                }
                if q.prefix.as_deref() == Some("") {
                    push(at, format!("redis[{i}].queues[{j}]: prefix must not be empty"));
                }
                if !q.discovers() && q.names.is_empty() {
                    push(at, format!("redis[{i}].queues[{j}]: list queue names or set discover: true"));
                }
                for p in q.problems() {
                    push(at, format!("redis[{i}].queues[{j}]: {p}"));
                }
            }
        }
        for (i, t) in self.postgres.iter().enumerate() {
            let at = item_line(src, "postgres", i);
            let name = t.name.clone().unwrap_or_else(|| t.dsn.shown());
            if !names.insert(name.clone()) {
                push(
                    at,
                    format!(
                        "postgres[{i}]: duplicate target name {name:?}; give each target a unique `name`"
                    ),
                );
            }
            let sources = [t.dsn.password().is_some(), t.password_env.is_some(), t.password_file.is_some()];
            if sources.iter().filter(|s| **s).count() > 1 {
                push(
                    at,
                    format!(
                        "postgres[{i}]: give the password in only one of dsn, password_env, password_file"
                    ),
                );
            }
            if let Err(e) = resolve_secret(t.dsn.password(), &t.password_env, &t.password_file) {
                push(at, format!("postgres[{i}]: {e}"));
            }
            let interval = t.interval.unwrap_or(self.collection.interval);
            let timeout = t.timeout.unwrap_or(self.collection.timeout);
            if interval < MIN_INTERVAL || timeout < MIN_TIMEOUT || timeout > interval {
                push(
                    at,
                    format!("postgres[{i}]: interval must be at least {MIN_INTERVAL:?}, timeout at least {MIN_TIMEOUT:?} and not over the interval"),
                );
            }
            if let Err(e) = pg_tls::resolve(t.dsn.ssl(), t.tls.as_ref()) {
                push(at, format!("postgres[{i}]: {e}"));
            }
            if t.statements_top > 1000 || t.tables_top > 1000 {
                push(at, format!("postgres[{i}]: statements_top and tables_top must be at most 1000"));
            }
        }
        if self.limits.discovery_budget < Duration::from_millis(10)
            || self.limits.discovery_interval < MIN_INTERVAL
        {
            push(
                line_of(src, "discovery_"),
                format!("limits.discovery_interval must be at least {MIN_INTERVAL:?} and discovery_budget at least 10ms"),
            );
        }
        if self.limits.max_queues == 0 {
            push(
                line_of(src, "max_queues:"),
                "limits.max_queues must be at least 1 (no queue at all: leave out `queues`)".into(),
            );
        }
        if self.limits.queue_histograms.patterns() > MAX_HISTOGRAM_PATTERNS {
            push(
                line_of(src, "queue_histograms:"),
                format!("limits.queue_histograms: at most {MAX_HISTOGRAM_PATTERNS} patterns"),
            );
        }
        if self.limits.slowlog_entries == 0 || self.limits.slowlog_entries > 1024 {
            push(
                line_of(src, "slowlog_entries:"),
                "limits.slowlog_entries must be between 1 and 1024".into(),
            );
        }
        out.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        out
    }

    fn redis_name(&self, t: &RedisTarget) -> String {
        t.name.clone().or_else(|| topology::default_name(t)).unwrap_or_else(|| t.url.host_port())
    }

    /// Redis targets with names, cadence and passwords resolved (reads password and TLS files).
    pub fn redis_targets(&self) -> Result<Vec<ResolvedRedis>, ResolveError> {
        self.redis
            .iter()
            .map(|t| {
                let name = self.redis_name(t);
                let wrap = |source| ResolveError { kind: "redis", target: name.clone(), source };
                Ok(ResolvedRedis {
                    name: name.clone(),
                    url: t.url.clone(),
                    username: t.username.clone().or_else(|| t.url.username()),
                    password: resolve_password(t).map_err(wrap)?,
                    interval: t.interval.unwrap_or(self.collection.interval),
                    timeout: t.timeout.unwrap_or(self.collection.timeout),
                    queues: t.queues.clone(),
                    tls: t.tls.as_ref().map(read_tls).transpose().map_err(wrap)?,
                    topology: topology::resolve(t).map_err(|e| wrap(SecretError::Topology(e)))?,
                })
            })
            .collect()
    }

    /// Files the resolved targets read (password and TLS files): a reload watches them too, so
    /// a rotated password or certificate is applied.
    pub fn secret_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for t in &self.redis {
            out.extend(t.password_file.iter().cloned());
            if let Some(tls) = &t.tls {
                out.extend([&tls.ca_file, &tls.cert_file, &tls.key_file].into_iter().flatten().cloned());
            }
        }
        for t in &self.postgres {
            out.extend(t.password_file.iter().cloned());
        }
        out
    }

    /// Resolves relative thresholds paths against `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        let t = &mut self.thresholds;
        for p in [&mut t.file, &mut t.rules_dir, &mut t.dashboards_dir].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// PostgreSQL targets with names, cadence and passwords resolved (reads password files).
    pub fn postgres_targets(&self) -> Result<Vec<ResolvedPostgres>, ResolveError> {
        self.postgres
            .iter()
            .map(|t| {
                let name = t.name.clone().unwrap_or_else(|| t.dsn.shown());
                Ok(ResolvedPostgres {
                    name: name.clone(),
                    dsn: t.dsn.clone(),
                    password: resolve_secret(t.dsn.password(), &t.password_env, &t.password_file)
                        .map_err(|source| ResolveError { kind: "postgres", target: name.clone(), source })?,
                    interval: t.interval.unwrap_or(self.collection.interval),
                    timeout: t.timeout.unwrap_or(self.collection.timeout),
                    statements_top: t.statements_top,
                    slow_statement: t.slow_statement,
                    tables_top: t.tables_top,
                    tls: pg_tls::resolve(t.dsn.ssl(), t.tls.as_ref()).map_err(|e| ResolveError {
                        kind: "postgres",
                        target: name,
                        source: SecretError::Tls(e),
                    })?,
                })
            })
            .collect()
    }

    /// The host collector's interval.
    pub fn host_interval(&self) -> Duration {
        self.host.interval.unwrap_or(self.collection.interval)
    }
}

/// Why a target's secret or TLS material could not be read. Messages name the field and the
/// file, never the contents.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// PostgreSQL TLS settings or files that cannot be used (names the setting and file).
    #[error("{0}")]
    Tls(String),
    /// A cluster or Sentinel setting that cannot be resolved (names the field, never a value).
    #[error("{0}")]
    Topology(String),
    /// `password_env` names an unset variable.
    #[error("password_env: environment variable {0} is not set")]
    EnvUnset(String),
    /// `password_file` cannot be read.
    #[error("password_file: cannot read {path}: {cause}")]
    PasswordFile {
        /// The file.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A TLS file cannot be read.
    #[error("tls.{field}: cannot read {path}: {cause}")]
    TlsRead {
        /// `ca_file`, `cert_file` or `key_file`.
        field: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A TLS file holds no PEM block.
    #[error("tls.{field}: {path} is not a PEM file")]
    NotPem {
        /// `ca_file`, `cert_file` or `key_file`.
        field: &'static str,
        /// The file.
        path: String,
    },
    /// Only one of `cert_file` / `key_file` given.
    #[error("tls: cert_file and key_file go together")]
    CertWithoutKey,
}

/// A target whose secrets could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("{kind} target {target}: {source}")]
pub struct ResolveError {
    /// `redis` or `postgres`.
    pub kind: &'static str,
    /// The target's name.
    pub target: String,
    /// What failed.
    pub source: SecretError,
}

/// Finds a Redis target's password from whichever source it names; never echoes it.
fn resolve_password(t: &RedisTarget) -> Result<Option<Secret>, SecretError> {
    resolve_secret(t.url.password(), &t.password_env, &t.password_file)
}

/// Reads a target's TLS files; errors name the field and the file, never the contents.
fn read_tls(t: &RedisTls) -> Result<TlsMaterial, SecretError> {
    let pem = |field: &'static str, path: &PathBuf| -> Result<Vec<u8>, SecretError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|cause| SecretError::TlsRead {
            field,
            path: shown.clone(),
            cause,
        })?;
        if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(SecretError::NotPem { field, path: shown });
        }
        Ok(bytes)
    };
    let ca = t.ca_file.as_ref().map(|p| pem("ca_file", p)).transpose()?;
    let client = match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => {
            let key = String::from_utf8(pem("key_file", key)?)
                .map_err(|_| SecretError::NotPem { field: "key_file", path: key.display().to_string() })?;
            Some((pem("cert_file", cert)?, Secret::new(key)))
        }
        (None, None) => None,
        _ => return Err(SecretError::CertWithoutKey),
    };
    Ok(TlsMaterial { ca, client })
}

/// A password from an env var, a file, or inline (in that order); errors never contain it.
pub(crate) fn resolve_secret(
    inline: Option<Secret>,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, SecretError> {
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) => Ok(Some(Secret::new(v))),
            Err(_) => Err(SecretError::EnvUnset(var.clone())),
        };
    }
    if let Some(file) = file {
        return match std::fs::read_to_string(file) {
            Ok(v) => Ok(Some(Secret::new(v.lines().next().unwrap_or("").to_string()))),
            Err(cause) => Err(SecretError::PasswordFile { path: file.display().to_string(), cause }),
        };
    }
    Ok(inline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(src: &str) -> Vec<Problem> {
        match Config::parse(src, "t.yaml") {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    #[test]
    fn a_cap_that_would_drop_named_queues_an_empty_name_and_too_many_patterns_are_refused() {
        let p = problems(
            "limits:\n  max_queues: 1\nredis:\n  - url: redis://127.0.0.1:1\n    name: \"\"\n    queues:\n      - system: rq\n        names: [a, pay]\n",
        );
        let text: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
        assert!(text.iter().any(|m| m.contains("names 2 queues but limits.max_queues is 1")), "{text:?}");
        assert!(text.iter().any(|m| m.contains("name must not be empty")), "{text:?}");
        let p = problems("limits:\n  max_queues: 0\n");
        assert!(p.iter().any(|p| p.message.contains("max_queues must be at least 1")), "{p:?}");
        let many: Vec<String> = (0..=MAX_HISTOGRAM_PATTERNS).map(|i| format!("\"q{i}\"")).collect();
        let p = problems(&format!("limits:\n  queue_histograms: [{}]\n", many.join(", ")));
        assert!(p.iter().any(|p| p.message.contains("at most 1000 patterns")), "{p:?}");
    }

    #[test]
    fn env_expansion_with_defaults_and_errors() {
        let get = |k: &str| (k == "PORT").then(|| "6380".to_string());
        assert_eq!(expand_env("url: redis://h:${PORT}/0 $$x", &get).expect("ok"), "url: redis://h:6380/0 $x");
        assert_eq!(expand_env("a: ${NOPE:-7}\n", &get).expect("ok"), "a: 7\n");
        assert_eq!(expand_env("a: 1 # see ${VAR}\n", &get).expect("comment kept"), "a: 1 # see ${VAR}\n");
        assert_eq!(expand_env("a: \"x#${PORT}\"\n", &get).expect("quoted #"), "a: \"x#6380\"\n");
        let p = expand_env("a: 1\nb: ${MISSING}\n", &get).expect_err("missing");
        assert_eq!(p[0].line, Some(2));
        assert!(p[0].message.contains("MISSING"));
    }

    #[test]
    fn empty_file_is_refused_and_braces_give_defaults() {
        for empty in ["", "\n\n", "# only a comment\n", "~\n", "null\n", "---\n"] {
            let p = problems(empty);
            assert!(p[0].message.contains("the file is empty"), "{empty:?}: {p:?}");
        }
        let c = Config::parse("{}\n", "t.yaml").expect("{} is all defaults");
        assert_eq!(c.listen.port(), 9860);
        assert!(c.host.enabled);
        assert!(c.redis.is_empty());
    }

    #[test]
    fn type_errors_never_quote_the_value() {
        for src in [
            "redis:\n  - redis://:LeakPw@127.0.0.1:6402\n",
            "redis: redis://:LeakPw@127.0.0.1:6402\n",
            "postgres:\n  - postgres://u:LeakPw@h/db\n",
            "redis:\n  - url: redis://h:1\n    queues:\n      - system: LeakPw\n",
            "redis:\n  - url: redis://h:1\n    interval: LeakPw\n",
            "host:\n  enabled: LeakPw\n",
            "limits:\n  max_queues: -12345\n",
            "LeakPw\n",
            "\"redis://:LeakPw@h\": 1\n",
            "thresholds:\n  prometheus_reload_url: https://u:LeakPw@h/\n",
        ] {
            let err = Config::parse(src, "t.yaml").expect_err(src).to_string();
            assert!(!err.contains("LeakPw") && !err.contains("12345"), "{src}: {err}");
            assert!(err.starts_with("t.yaml:"), "{err}");
        }
        let err = Config::parse("redis:\n  - redis://:LeakPw@h:1\n", "t.yaml").expect_err("type");
        assert!(err.to_string().contains("invalid type: a string, expected struct RedisTarget"), "{err}");
        let err = Config::parse("bogus_key: 1\n", "t.yaml").expect_err("unknown");
        assert!(err.to_string().contains("unknown field `bogus_key`, expected one of `listen`"), "{err}");
    }

    #[test]
    fn deep_or_huge_files_are_refused_before_parsing() {
        let deep = format!("redis: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let p = problems(&deep);
        assert!(p[0].message.contains("nested more than"), "{p:?}");
        let block: String = (0..80).map(|i| format!("{}a{i}:\n", "  ".repeat(i))).collect();
        assert!(problems(&block)[0].message.contains("nested more than"));
        let huge = format!("# {}\nhost: {{}}\n", "x".repeat(MAX_FILE_BYTES));
        assert!(problems(&huge)[0].message.contains("at most"));
        // Brackets inside quotes and comments do not count.
        let quoted = format!("host: {{}} # {}\nlisten: \"127.0.0.1:1\"\n", "[".repeat(100));
        Config::parse(&quoted, "t.yaml").expect("comment brackets are not nesting");
    }

    #[test]
    fn intervals_below_the_minimum_are_refused() {
        for src in [
            "collection:\n  interval: 1ns\n  timeout: 1ns\n",
            "collection:\n  interval: 500ms\n  timeout: 100ms\n",
            "redis:\n  - url: redis://h:1\n    interval: 1ms\n    timeout: 1ms\n",
            "postgres:\n  - dsn: postgres://u@h/db\n    interval: 1us\n",
            "host:\n  interval: 10ms\n",
            "limits:\n  discovery_interval: 1ns\n",
        ] {
            let p = problems(src);
            assert!(p.iter().any(|p| p.message.contains("at least")), "{src}: {p:?}");
        }
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let p = problems("listen: 127.0.0.1:9000\nredis:\n  - url: redis://127.0.0.1:6379\n    pasword: x\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(4), "{p:?}");
        assert!(p[0].message.contains("unknown field `pasword`"), "{p:?}");
    }

    #[test]
    fn broken_yaml_names_the_line() {
        let p = problems("listen: 127.0.0.1:9000\nredis: [\n  - url: x\n");
        assert!(p[0].line.is_some(), "{p:?}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let p = problems("host:\n  enabled: maybe\n");
        assert_eq!(p[0].line, Some(2), "{p:?}");
    }

    #[test]
    fn bad_url_scheme_is_rejected_with_line() {
        let p = problems("redis:\n  - url: http://127.0.0.1:6379\n");
        assert_eq!(p[0].line, Some(2), "{p:?}");
        assert!(p[0].message.contains("redis://"), "{p:?}");
    }

    #[test]
    fn every_semantic_problem_is_reported() {
        let src = "collection:\n  interval: 5s\n  timeout: 10s\nredis:\n  - url: redis://127.0.0.1:6379\n  - url: redis://127.0.0.1:6379\n    password_env: REDLINE_TEST_SURELY_UNSET_VAR\n";
        let p = problems(src);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().any(|p| p.message.contains("timeout must not exceed")));
        assert!(p.iter().any(|p| p.message.contains("duplicate target name")));
        assert!(p.iter().any(|p| p.message.contains("REDLINE_TEST_SURELY_UNSET_VAR is not set")));
    }

    #[test]
    fn item_lines_are_found_in_block_sequences() {
        let src = "listen: x\nredis:\n  # first\n  - url: a\n    name: b\n\n  - url: c\nhost: {}\n";
        assert_eq!(item_line(src, "redis", 0), Some(4));
        assert_eq!(item_line(src, "redis", 1), Some(7));
        assert_eq!(item_line(src, "redis", 2), None);
        assert_eq!(item_line("redis: []\n", "redis", 0), None);
    }

    #[test]
    fn error_text_has_file_line_column() {
        let err = Config::parse("bogus: 1\n", "conf/redline.yaml").expect_err("unknown key");
        assert!(err.to_string().starts_with("conf/redline.yaml:1:1: unknown field `bogus`"), "{err}");
    }

    #[test]
    fn password_in_url_never_appears_in_errors_or_debug() {
        let src = "redis:\n  - url: redis://:hunter2@127.0.0.1:6379\n    password_env: ALSO\n";
        let err = Config::parse(src, "t.yaml").expect_err("two password sources");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let ok =
            Config::parse("redis:\n  - url: redis://:hunter2@127.0.0.1:6379\n", "t.yaml").expect("valid");
        assert!(!format!("{ok:?}").contains("hunter2"));
        let t = ok.redis_targets().expect("resolves");
        assert_eq!(t[0].password.as_ref().map(|s| s.expose()), Some("hunter2"));
        assert_eq!(t[0].name, "127.0.0.1:6379");
    }
}
