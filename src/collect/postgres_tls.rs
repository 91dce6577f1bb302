//! Connecting to PostgreSQL with libpq's `sslmode` semantics, over the system OpenSSL:
//!
//! | mode | attempts | server certificate |
//! |---|---|---|
//! | disable | plain | — |
//! | allow | plain, then TLS if pg_hba.conf had no entry for plain | verified only with a root certificate |
//! | prefer | TLS (plain if the server has none), then plain if the handshake failed or pg_hba.conf had no entry for TLS | verified only with a root certificate |
//! | require | TLS | verified (chain only) only with a root certificate |
//! | verify-ca | TLS | chain to the root certificate |
//! | verify-full | TLS | chain, and the certificate names the host |
//!
//! As in libpq, a root certificate turns `prefer`/`require` into chain verification; unlike
//! libpq, nothing is read from `~/.postgresql/` or `PGSSL*` variables: the config says it all.

use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use postgres_openssl::{MakeTlsConnector, TlsStream};
use tokio_postgres::config::SslMode as Wire;
use tokio_postgres::{Client, Config, Connection, Socket};

use crate::config::pg_tls::RootCerts;
use crate::config::PgTls;
use crate::secret::SslMode;

/// A connection being set up or running, TLS or not.
pub type PgConnection = Connection<Socket, TlsStream<Socket>>;

/// The attempts one connect makes, in order, with the wording messages use for each.
fn attempts(mode: SslMode) -> &'static [(Wire, &'static str)] {
    match mode {
        SslMode::Disable => &[(Wire::Disable, "without TLS")],
        SslMode::Allow => &[(Wire::Disable, "without TLS"), (Wire::Require, "with TLS")],
        SslMode::Prefer => &[(Wire::Prefer, "with TLS"), (Wire::Disable, "without TLS")],
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[(Wire::Require, "with TLS")],
    }
}

/// Builds the OpenSSL connector for a target. Fails only on material that `config::pg_tls`
/// already checked, so an error here is unexpected; it names no secret.
pub fn connector(tls: &PgTls) -> Result<MakeTlsConnector, String> {
    fn err(what: &'static str) -> impl Fn(openssl::error::ErrorStack) -> String {
        move |e| format!("TLS set-up: {what}: {e}")
    }
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(err("OpenSSL"))?;
    match &tls.roots {
        // libpq without a root certificate: encryption, no verification.
        None => b.set_verify(SslVerifyMode::NONE),
        // The builder already trusts the system store.
        Some(RootCerts::System) => b.set_verify(SslVerifyMode::PEER),
        Some(RootCerts::Pem(pem)) => {
            // Only the given CAs, as libpq: the system store is not consulted.
            let mut store = X509StoreBuilder::new().map_err(err("CA store"))?;
            for cert in X509::stack_from_pem(pem).map_err(err("CA file"))? {
                store.add_cert(cert).map_err(err("CA file"))?;
            }
            b.set_cert_store(store.build());
            b.set_verify(SslVerifyMode::PEER);
        }
    }
    if let Some((cert, key)) = &tls.client {
        let mut chain = X509::stack_from_pem(cert).map_err(err("client certificate"))?.into_iter();
        let leaf = chain.next().ok_or("TLS set-up: client certificate file holds no certificate")?;
        b.set_certificate(&leaf).map_err(err("client certificate"))?;
        for extra in chain {
            b.add_extra_chain_cert(extra).map_err(err("client certificate chain"))?;
        }
        let key = PKey::private_key_from_pem(key.expose().as_bytes()).map_err(err("client key"))?;
        b.set_private_key(&key).map_err(err("client key"))?;
        b.check_private_key().map_err(err("client key"))?;
    }
    let mut connector = MakeTlsConnector::new(b.build());
    let full = tls.mode == SslMode::VerifyFull;
    connector.set_callback(move |cfg, _host| {
        // verify-ca checks the chain only; verify-full also the host name (or IP address).
        cfg.set_verify_hostname(full);
        Ok(())
    });
    Ok(connector)
}

/// Why a connect failed: each attempt made, in order, with its error.
#[derive(Debug)]
pub struct ConnectFailure {
    /// `("with TLS" | "without TLS", error)`.
    pub attempts: Vec<(&'static str, tokio_postgres::Error)>,
}

/// Whether a failed attempt lets the next one (in `allow`/`prefer`) go ahead: pg_hba.conf had
/// no entry for this kind of connection (`hostssl`/`hostnossl`, SQLSTATE 28000) or the TLS
/// handshake failed. A wrong password, a refused or timed-out TCP connect would fail the same
/// way again.
fn falls_back(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        return db.code().code() == "28000";
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<openssl::ssl::Error>() || s.is::<openssl::error::ErrorStack>() {
            return true;
        }
        source = s.source();
    }
    // postgres-openssl's handshake error type is private; tokio-postgres names the kind.
    e.to_string().starts_with("error performing TLS handshake")
}

/// Connects as `tls.mode` says; `cfg` carries everything but the TLS mode.
pub async fn connect(
    mut cfg: Config,
    tls: &PgTls,
    connector: &MakeTlsConnector,
) -> Result<(Client, PgConnection), ConnectFailure> {
    let plan = attempts(tls.mode);
    let mut failure = ConnectFailure { attempts: Vec::new() };
    for (i, (wire, how)) in plan.iter().enumerate() {
        cfg.ssl_mode(*wire);
        match cfg.connect(connector.clone()).await {
            Ok(pair) => return Ok(pair),
            Err(e) => {
                let again = i + 1 < plan.len() && falls_back(&e);
                failure.attempts.push((how, e));
                if !again {
                    break;
                }
            }
        }
    }
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_follow_libpq() {
        let modes = |m| attempts(m).iter().map(|(w, _)| *w).collect::<Vec<_>>();
        assert_eq!(modes(SslMode::Disable), [Wire::Disable]);
        assert_eq!(modes(SslMode::Allow), [Wire::Disable, Wire::Require]);
        assert_eq!(modes(SslMode::Prefer), [Wire::Prefer, Wire::Disable]);
        for m in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            assert_eq!(modes(m), [Wire::Require]);
        }
    }

    #[test]
    fn connectors_build_for_every_mode_without_material() {
        for mode in [SslMode::Disable, SslMode::Allow, SslMode::Prefer, SslMode::Require] {
            assert!(connector(&PgTls { mode, roots: None, client: None }).is_ok());
        }
        let system = PgTls { mode: SslMode::VerifyFull, roots: Some(RootCerts::System), client: None };
        assert!(connector(&system).is_ok());
    }
}
