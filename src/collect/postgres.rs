//! The PostgreSQL collector: one persistent connection per target (reconnect with backoff),
//! `statement_timeout` and a shorter `lock_timeout` set for the session, and the whole
//! collection sent as one simple-query batch: one round trip, whatever the number of databases.
//! A query group the server refuses for good (missing extension, missing privilege) is found
//! once, logged once, reported as `redline_pg_query_allowed{query} 0`, and left out from then
//! on; one that fails for a passing reason (timeout, cancel) is counted in
//! `redline_pg_query_errors_total` and asked again next time.

use std::collections::BTreeMap;

use postgres_openssl::MakeTlsConnector;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::backoff::Backoff;
use super::postgres_sql::{self as sql, Caps, Limits, Refused};
use super::postgres_tls::{self, ConnectFailure};
use super::{BoxFuture, CollectError, Collector};
use crate::config::ResolvedPostgres;
use crate::metrics::{label, Family, FamilySet};
use crate::names as n;

/// Collects one PostgreSQL server.
pub struct PostgresCollector {
    target: ResolvedPostgres,
    client: Option<(Client, Caps, JoinHandle<()>)>,
    /// Built once from the target's TLS material (loading CA stores costs milliseconds: not
    /// inside a collection's deadline); an error is reported by every connect attempt.
    connector: Result<MakeTlsConnector, String>,
    backoff: Backoff,
    last_error: String,
    refused: Refused,
    /// Transient failures so far, by (group, SQLSTATE).
    transient: BTreeMap<(&'static str, String), u64>,
    /// The last transient error logged per group, so a lasting one is logged once.
    transient_logged: BTreeMap<&'static str, String>,
}

impl PostgresCollector {
    /// Prepares the collector; connects on the first collection.
    pub fn new(target: ResolvedPostgres) -> Self {
        let backoff = Backoff::for_interval(target.interval);
        let connector = postgres_tls::connector(&target.tls);
        Self {
            target,
            client: None,
            connector,
            backoff,
            last_error: String::new(),
            refused: Refused::new(),
            transient: BTreeMap::new(),
            transient_logged: BTreeMap::new(),
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            statements_top: self.target.statements_top,
            slow_seconds: self.target.slow_statement.as_secs_f64(),
            tables_top: self.target.tables_top,
        }
    }

    async fn connect(&mut self) -> Result<(), CollectError> {
        if self.client.is_some() {
            return Ok(());
        }
        if !self.backoff.ready() {
            return Err(CollectError::BackingOff(self.last_error.clone()));
        }
        let mut cfg = self.target.dsn.config();
        if let Some(p) = &self.target.password {
            cfg.password(p.expose());
        }
        let timeout_ms = self.target.timeout.as_millis().max(1);
        // A monitoring query never waits long on a lock: it fails fast (transient, retried)
        // and leaves time for the rest of the batch.
        let lock_ms = (timeout_ms / 4).max(1);
        cfg.application_name("redline")
            .connect_timeout(self.target.timeout)
            // Every query of the session is bounded server-side too.
            .options(format!("-c statement_timeout={timeout_ms} -c lock_timeout={lock_ms}"));
        let started = Instant::now();
        let connector = match &self.connector {
            Ok(c) => c.clone(),
            Err(e) => {
                self.backoff.failed_since(started);
                self.last_error = e.clone();
                return Err(CollectError::Connect(self.last_error.clone()));
            }
        };
        let tls = &self.target.tls;
        let result = async {
            let (client, connection) =
                postgres_tls::connect(cfg, tls, &connector).await.map_err(|f| describe_failure(&f))?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("postgres connection closed: {e}");
                }
            });
            match client.simple_query(sql::PROBE).await {
                Ok(msgs) => Ok((client, rows(msgs), task)),
                Err(e) => {
                    task.abort();
                    Err(describe(&e))
                }
            }
        }
        .await;
        match result {
            Ok((client, rows, task)) => {
                let first = rows.first();
                let version =
                    first.and_then(|r| r.first()).and_then(|v| v.as_deref()).and_then(|v| v.parse().ok());
                let statements = first.and_then(|r| r.get(1)).and_then(|v| v.as_deref()) == Some("1");
                let caps = Caps { version: version.unwrap_or(0), statements };
                self.backoff.succeeded();
                self.refused.clear();
                self.client = Some((client, caps, task));
                Ok(())
            }
            Err(e) => {
                self.backoff.failed_since(started);
                self.last_error = e;
                Err(CollectError::Connect(self.last_error.clone()))
            }
        }
    }

    fn drop_client(&mut self) {
        if let Some((_, _, task)) = self.client.take() {
            task.abort();
        }
    }

    async fn collect_once(&mut self) -> Result<Vec<Family>, CollectError> {
        self.connect().await?;
        let Some((client, caps, _)) = &self.client else {
            return Err(CollectError::Connect("not connected".into()));
        };
        let caps = caps.clone();
        let limits = self.limits();
        let batch: Vec<(&'static str, String)> =
            sql::batch(&caps, &limits).into_iter().filter(|(g, _)| !self.refused.contains_key(g)).collect();
        let text = batch.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join(";\n");
        let mut failed_now: Vec<&'static str> = Vec::new();
        let rows = match client.simple_query(&text).await {
            Ok(msgs) => rows(msgs),
            Err(e) if e.as_db_error().is_some() => {
                // One statement failed and aborted the batch: run each group alone to find which.
                let mut all = Vec::new();
                for (group, stmt) in &batch {
                    let e = match client.simple_query(stmt).await {
                        Ok(msgs) => {
                            all.extend(rows(msgs));
                            continue;
                        }
                        Err(e) => e,
                    };
                    let Some(code) = e.as_db_error().map(|db| db.code().code().to_string()) else {
                        return Err(self.fail(e));
                    };
                    if failed_now.contains(group) {
                        continue;
                    }
                    failed_now.push(group);
                    if sql::is_permanent(&code) {
                        if !self.refused.contains_key(group) {
                            tracing::info!(
                                target_name = %self.target.name,
                                "PostgreSQL refused the {group} queries: {}; not asking again on this connection",
                                describe(&e)
                            );
                            self.refused.insert(group, describe(&e));
                        }
                    } else {
                        *self.transient.entry((group, code.clone())).or_default() += 1;
                        if self.transient_logged.get(group) != Some(&code) {
                            tracing::warn!(
                                target_name = %self.target.name,
                                "PostgreSQL could not run the {group} queries this time: {}; asking again next collection",
                                describe(&e)
                            );
                            self.transient_logged.insert(group, code);
                        }
                    }
                }
                all
            }
            Err(e) => return Err(self.fail(e)),
        };
        // A group that ran again clears its transient log state (its next failure is logged).
        self.transient_logged.retain(|g, _| failed_now.contains(g));
        let mut out = FamilySet::new();
        sql::families(&rows, &self.target.name, &limits, &mut out);
        // Every group the server could run, statements included even when not installed.
        let all_groups = sql::groups(&sql::batch(&Caps { statements: true, ..caps.clone() }, &limits));
        for g in all_groups {
            let missing = g == "statements" && !caps.statements;
            let allowed = if missing || self.refused.contains_key(g) { 0.0 } else { 1.0 };
            out.add(
                &n::PG_QUERY_ALLOWED,
                vec![label("target", self.target.name.clone()), label("query", g)],
                allowed,
            );
        }
        for ((group, code), count) in &self.transient {
            let labels = vec![
                label("target", self.target.name.clone()),
                label("query", *group),
                label("sqlstate", code.as_str()),
            ];
            out.add(&n::PG_QUERY_ERRORS, labels, *count as f64);
        }
        Ok(out.into_families())
    }

    fn fail(&mut self, e: tokio_postgres::Error) -> CollectError {
        self.drop_client();
        self.backoff.failed();
        self.last_error = describe(&e);
        CollectError::Query(self.last_error.clone())
    }
}

/// Rows of a simple-query reply as text cells.
fn rows(msgs: Vec<SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect()
}

/// A failed connect as text: the one attempt's reason, or each attempt's in order
/// (`allow`/`prefer` try both ways).
fn describe_failure(f: &ConnectFailure) -> String {
    match f.attempts.as_slice() {
        [(_, e)] => describe(e),
        many => {
            many.iter().map(|(how, e)| format!("{how}: {}", describe(e))).collect::<Vec<_>>().join("; then ")
        }
    }
}

/// An error as text safe to log: tokio-postgres never includes the password; the server's
/// message and code are kept.
fn describe(e: &tokio_postgres::Error) -> String {
    let mut s = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            if let Some(src) = std::error::Error::source(e) {
                s = format!("{s}: {src}");
            }
            s
        }
    };
    crate::text::truncate(&mut s, 500);
    s
}

impl Collector for PostgresCollector {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn target(&self) -> &str {
        &self.target.name
    }

    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, CollectError>> {
        Box::pin(self.collect_once())
    }

    fn reset(&mut self) {
        self.drop_client();
        // The collection that overran started one deadline ago.
        let started = Instant::now().checked_sub(self.target.timeout).unwrap_or_else(Instant::now);
        self.backoff.failed_since(started);
        self.last_error = "previous collection timed out".into();
    }
}

impl Drop for PostgresCollector {
    fn drop(&mut self) {
        self.drop_client();
    }
}
