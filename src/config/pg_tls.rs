//! TLS for PostgreSQL targets: a target's `tls:` block merged with its DSN's `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey`, with the files read and checked once at load time,
//! so `redline check` reports a missing CA, a key that does not match its certificate, or a
//! `verify-full` without a root certificate before the daemon starts.

use std::fmt;
use std::path::{Path, PathBuf};

use openssl::pkey::PKey;
use openssl::x509::X509;
use serde::Deserialize;

pub use crate::secret::SslMode;
use crate::secret::{PgSslParams, Secret};

/// TLS settings of a PostgreSQL target; each may be given in the DSN instead (libpq names in
/// brackets), not in both with different values. PEM files; absolute paths, or relative to the
/// working directory like `password_file`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTls {
    /// [`sslmode`] disable, allow, prefer (default), require, verify-ca or verify-full, with
    /// libpq's meaning (see README).
    pub mode: Option<SslMode>,
    /// [`sslrootcert`] CA certificates that verify the server, or `system` for the system trust
    /// store (then the mode defaults to, and must be, verify-full).
    pub ca_file: Option<PathBuf>,
    /// [`sslcert`] client certificate, for `cert` authentication or `clientcert=verify-*`.
    pub cert_file: Option<PathBuf>,
    /// [`sslkey`] the client certificate's private key (unencrypted).
    pub key_file: Option<PathBuf>,
}

/// Where the server certificate's trust comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// The system trust store (`sslrootcert=system`).
    System,
    /// CA certificates from a PEM file, and nothing else.
    Pem(Vec<u8>),
}

/// A PostgreSQL target's TLS, resolved: the mode and the PEM material it needs. Equality
/// compares the material itself, so a reload sees a replaced CA or key file.
#[derive(Clone, PartialEq)]
pub struct PgTls {
    /// How TLS is used and what is verified.
    pub mode: SslMode,
    /// Trust for the server certificate; `None`: the certificate is not verified (libpq's
    /// `prefer`/`require` without a root certificate).
    pub roots: Option<RootCerts>,
    /// Client certificate (chain) and its key (never printed).
    pub client: Option<(Vec<u8>, Secret)>,
}

impl Default for PgTls {
    fn default() -> Self {
        Self { mode: SslMode::Prefer, roots: None, client: None }
    }
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = match &self.roots {
            None => "none",
            Some(RootCerts::System) => "system",
            Some(RootCerts::Pem(_)) => "file",
        };
        write!(f, "PgTls(mode={}, roots={roots}, client_cert={})", self.mode.as_str(), self.client.is_some())
    }
}

/// One setting that may come from the DSN or the `tls:` block.
fn pick<T: PartialEq>(
    dsn: Option<T>,
    block: Option<T>,
    dsn_name: &str,
    block_name: &str,
) -> Result<Option<(T, String)>, String> {
    match (dsn, block) {
        (Some(a), Some(b)) if a != b => {
            Err(format!("{dsn_name} in the dsn and tls.{block_name} differ; give it in one place"))
        }
        (Some(a), _) => Ok(Some((a, dsn_name.to_string()))),
        (None, Some(b)) => Ok(Some((b, format!("tls.{block_name}")))),
        (None, None) => Ok(None),
    }
}

fn read_pem(field: &str, path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!("{field}: {} is not a PEM file", path.display()));
    }
    Ok(bytes)
}

fn certificates(field: &str, path: &Path) -> Result<(Vec<u8>, Vec<X509>), String> {
    let pem = read_pem(field, path)?;
    match X509::stack_from_pem(&pem) {
        Ok(certs) if !certs.is_empty() => Ok((pem, certs)),
        _ => Err(format!("{field}: {} holds no PEM certificate", path.display())),
    }
}

/// Merges the DSN's TLS parameters with the target's `tls:` block and reads the files.
/// Errors name the setting and the file, never a key's contents.
pub fn resolve(dsn: &PgSslParams, block: Option<&PostgresTls>) -> Result<PgTls, String> {
    let empty = PostgresTls::default();
    let block = block.unwrap_or(&empty);
    let path = |s: &Option<String>| s.as_ref().map(PathBuf::from);
    let mode = pick(dsn.mode, block.mode, "sslmode", "mode")?.map(|(m, _)| m);
    let root = pick(path(&dsn.root_cert), block.ca_file.clone(), "sslrootcert", "ca_file")?;
    let cert = pick(path(&dsn.cert), block.cert_file.clone(), "sslcert", "cert_file")?;
    let key = pick(path(&dsn.key), block.key_file.clone(), "sslkey", "key_file")?;

    let roots = match &root {
        None => None,
        Some((p, _)) if p.as_os_str() == "system" => Some(RootCerts::System),
        Some((p, field)) => Some(RootCerts::Pem(certificates(field, p)?.0)),
    };
    let mode = match (mode, &roots) {
        // libpq 16: sslrootcert=system means verify-full, and nothing weaker.
        (None, Some(RootCerts::System)) => SslMode::VerifyFull,
        (Some(m), Some(RootCerts::System)) if m != SslMode::VerifyFull => {
            return Err(format!(
                "sslmode {} may not be used with sslrootcert=system (use verify-full)",
                m.as_str()
            ))
        }
        (Some(m @ (SslMode::VerifyCa | SslMode::VerifyFull)), None) => {
            return Err(format!(
                "sslmode {} needs a root certificate: sslrootcert or tls.ca_file (a PEM file, or `system`)",
                m.as_str()
            ))
        }
        (m, _) => m.unwrap_or(SslMode::Prefer),
    };
    let client = match (cert, key) {
        (None, None) => None,
        (Some((cert_path, cert_field)), Some((key_path, key_field))) => {
            let (cert_pem, chain) = certificates(&cert_field, &cert_path)?;
            let key_pem = read_pem(&key_field, &key_path)?;
            let key = PKey::private_key_from_pem(&key_pem).map_err(|_| {
                format!(
                    "{key_field}: {} is not an unencrypted PEM private key (sslpassword is not supported)",
                    key_path.display()
                )
            })?;
            let matches = chain[0].public_key().map(|p| p.public_eq(&key)).unwrap_or(false);
            if !matches {
                return Err(format!(
                    "{key_field}: {} is not the key of the certificate in {}",
                    key_path.display(),
                    cert_path.display()
                ));
            }
            let key_text = String::from_utf8(key_pem)
                .map_err(|_| format!("{key_field}: {} is not a PEM file", key_path.display()))?;
            Some((cert_pem, Secret::new(key_text)))
        }
        _ => return Err("sslcert and sslkey (tls.cert_file and tls.key_file) go together".into()),
    };
    Ok(PgTls { mode, roots, client })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::Private;
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;

    fn self_signed(cn: &str) -> (X509, PKey<Private>) {
        let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", cn).expect("cn");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&Asn1Time::days_from_now(0).expect("t")).expect("nb");
        b.set_not_after(&Asn1Time::days_from_now(1).expect("t")).expect("na");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        (b.build(), key)
    }

    fn files(dir: &Path) -> (String, String, String) {
        let (cert, key) = self_signed("client");
        let (_, other_key) = self_signed("other");
        let w = |name: &str, bytes: Vec<u8>| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).expect("write");
            p.display().to_string()
        };
        w("other.key", other_key.private_key_to_pem_pkcs8().expect("pem"));
        (
            w("ca.pem", cert.to_pem().expect("pem")),
            w("client.pem", cert.to_pem().expect("pem")),
            w("client.key", key.private_key_to_pem_pkcs8().expect("pem")),
        )
    }

    fn params(
        mode: Option<SslMode>,
        root: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> PgSslParams {
        PgSslParams {
            mode,
            root_cert: root.map(String::from),
            cert: cert.map(String::from),
            key: key.map(String::from),
        }
    }

    #[test]
    fn libpq_defaults_and_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = files(dir.path());
        assert_eq!(resolve(&PgSslParams::default(), None).expect("default").mode, SslMode::Prefer);
        let system = resolve(&params(None, Some("system"), None, None), None).expect("system");
        assert_eq!((system.mode, system.roots), (SslMode::VerifyFull, Some(RootCerts::System)));
        let e = resolve(&params(Some(SslMode::Require), Some("system"), None, None), None).expect_err("weak");
        assert!(e.contains("use verify-full"), "{e}");
        for m in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let e = resolve(&params(Some(m), None, None, None), None).expect_err("no root");
            assert!(e.contains("needs a root certificate"), "{e}");
        }
        let full = resolve(&params(Some(SslMode::VerifyCa), Some(&ca), Some(&cert), Some(&key)), None)
            .expect("verify-ca with files");
        assert!(matches!(full.roots, Some(RootCerts::Pem(_))) && full.client.is_some());
        assert!(!format!("{full:?}").contains("PRIVATE"), "{full:?}");
    }

    #[test]
    fn dsn_and_block_merge_and_conflict() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = files(dir.path());
        let block = PostgresTls {
            mode: Some(SslMode::VerifyFull),
            ca_file: Some(ca.clone().into()),
            cert_file: Some(cert.into()),
            key_file: Some(key.into()),
        };
        let t = resolve(&PgSslParams::default(), Some(&block)).expect("block only");
        assert_eq!(t.mode, SslMode::VerifyFull);
        let same = params(Some(SslMode::VerifyFull), Some(&ca), None, None);
        assert!(resolve(&same, Some(&block)).is_ok(), "equal values are no conflict");
        let e =
            resolve(&params(Some(SslMode::Require), None, None, None), Some(&block)).expect_err("conflict");
        assert!(e.contains("sslmode in the dsn and tls.mode differ"), "{e}");
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, _) = files(dir.path());
        let other_key = dir.path().join("other.key").display().to_string();
        std::fs::write(dir.path().join("junk.pem"), "hello").expect("write");
        let junk = dir.path().join("junk.pem").display().to_string();
        let cases = [
            (
                params(None, Some("/nonexistent/ca.pem"), None, None),
                "sslrootcert: cannot read /nonexistent/ca.pem",
            ),
            (params(None, Some(&junk), None, None), "is not a PEM file"),
            (params(None, Some(&ca), Some(&cert), None), "go together"),
            (params(None, None, Some(&cert), Some(&other_key)), "is not the key of the certificate"),
            (params(None, None, Some(&cert), Some(&ca)), "not an unencrypted PEM private key"),
        ];
        for (p, want) in cases {
            let e = resolve(&p, None).expect_err(want);
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("PRIVATE KEY"), "{e}");
        }
    }
}
