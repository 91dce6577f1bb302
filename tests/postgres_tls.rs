//! PostgreSQL over TLS against a spawned server with `ssl=on`, a private CA made by openssl for
//! the test, a server certificate for `localhost` only, and a `hostssl`-only pg_hba.conf (plain
//! TCP is refused) with client-certificate (`cert`) authentication for one role. Every sslmode
//! is tried: what libpq would connect connects, the rest is `redline_target_up 0` with the
//! reason in the log and no secret anywhere.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{issue_cert, make_ca, value, wait_for, Daemon, PgServer};

const PW: &str = "right-pg-pass";

/// Two CAs (`ca` trusted, `other-ca` not), a server certificate for DNS:localhost signed by `ca`
/// and a client certificate for the role `monitor`, readable by the postgres user.
fn certificates(dir: &Path) {
    for ca in ["ca", "other-ca"] {
        make_ca(dir, ca, &format!("redline test {ca}"));
    }
    for (name, cn, ext) in [
        ("server", "localhost", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "monitor", "extendedKeyUsage=clientAuth"),
    ] {
        issue_cert(dir, name, cn, ext);
    }
    std::fs::write(
        dir.join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all monitor 127.0.0.1/32 cert\n\
         hostssl all all 127.0.0.1/32 scram-sha-256\n",
    )
    .expect("hba");
    // The server refuses a key others can read.
    let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir).status().expect("chown");
    assert!(ok.success());
    let ok = Command::new("chmod").arg("600").arg(dir.join("server.key")).status().expect("chmod");
    assert!(ok.success());
}

fn tls_server(certs: &Path) -> PgServer {
    let f = |name: &str| certs.join(name).display().to_string();
    let pg = PgServer::start(&[
        "ssl=on",
        &format!("ssl_cert_file={}", f("server.pem")),
        &format!("ssl_key_file={}", f("server.key")),
        &format!("ssl_ca_file={}", f("ca.pem")),
        &format!("hba_file={}", f("pg_hba.conf")),
    ]);
    pg.psql("postgres", "CREATE ROLE monitor LOGIN; GRANT pg_monitor TO monitor");
    pg
}

/// The log lines about one target.
fn lines_for(log: &str, target: &str) -> String {
    let tag = format!("target={target}");
    log.lines().filter(|l| l.split_whitespace().any(|w| w == tag)).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_sslmode_against_a_hostssl_only_server() {
    let certs = tempfile::tempdir().expect("tempdir");
    certificates(certs.path());
    let pg = tls_server(certs.path());
    let p = pg.port;
    let f = |name: &str| certs.path().join(name).display().to_string();
    let (ca, other) = (f("ca.pem"), f("other-ca.pem"));
    let pw = "    password_env: REDLINE_PG_PW\n";
    let targets = [
        // (name, target body, connects)
        ("disable", format!("dsn: postgres://postgres@127.0.0.1:{p}/postgres?sslmode=disable\n{pw}"), false),
        ("default", format!("dsn: postgres://postgres@127.0.0.1:{p}/postgres\n{pw}"), true),
        ("allow", format!("dsn: postgres://postgres@127.0.0.1:{p}/postgres?sslmode=allow\n{pw}"), true),
        ("require", format!("dsn: host=127.0.0.1 port={p} user=postgres dbname=postgres sslmode=require\n{pw}"), true),
        (
            "require-wrong-ca",
            format!("dsn: postgres://postgres@127.0.0.1:{p}/postgres?sslmode=require&sslrootcert={other}\n{pw}"),
            false,
        ),
        (
            "prefer-wrong-ca",
            format!("dsn: postgres://postgres@127.0.0.1:{p}/postgres?sslmode=prefer&sslrootcert={other}\n{pw}"),
            false,
        ),
        (
            "verify-ca-by-ip",
            format!("dsn: postgres://postgres@127.0.0.1:{p}/postgres?sslmode=verify-ca&sslrootcert={ca}\n{pw}"),
            true,
        ),
        (
            "verify-full-by-ip",
            format!("dsn: postgres://postgres@127.0.0.1:{p}/postgres?sslmode=verify-full&sslrootcert={ca}\n{pw}"),
            false,
        ),
        (
            "verify-full",
            format!("dsn: host=localhost port={p} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{ca}'\n{pw}"),
            true,
        ),
        (
            "verify-full-wrong-ca",
            format!("dsn: postgres://postgres@localhost:{p}/postgres?sslmode=verify-full&sslrootcert={other}\n{pw}"),
            false,
        ),
        (
            "client-cert",
            format!(
                "dsn: postgres://monitor@localhost:{p}/postgres\n    tls:\n      mode: verify-full\n      ca_file: {ca}\n      cert_file: {}\n      key_file: {}\n",
                f("client.pem"),
                f("client.key")
            ),
            true,
        ),
        ("no-client-cert", format!("dsn: postgres://monitor@localhost:{p}/postgres?sslmode=verify-full&sslrootcert={ca}\n"), false),
    ];
    let body: String = targets.iter().map(|(name, t, _)| format!("  - name: {name}\n    {t}")).collect();
    let d = Daemon::start(
        &format!("collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\npostgres:\n{body}"),
        &[("REDLINE_PG_PW", PW)],
    );
    let up = |text: &str, t: &str| {
        value(text, &format!("redline_target_up{{collector=\"postgres\",target=\"{t}\"}}"))
    };
    wait_for("every target up or down as libpq would have it", Duration::from_secs(20), || {
        let text = d.scrape();
        targets.iter().all(|(t, _, ok)| up(&text, t) == Some(if *ok { 1.0 } else { 0.0 }))
    });
    let text = d.scrape();
    assert!(
        value(&text, "redline_pg_connections_max{target=\"client-cert\"}").unwrap_or(0.0) > 0.0,
        "{text}"
    );

    // The sessions that connected are all TLS; the client-certificate one shows its certificate.
    let sessions = pg.psql(
        "postgres",
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl), \
         count(*) FILTER (WHERE s.client_dn = '/CN=monitor') \
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'redline'",
    );
    let connected = targets.iter().filter(|t| t.2).count();
    assert_eq!(sessions.trim(), format!("{connected}|0|1"), "TLS sessions|plain sessions|client cert");

    let log = d.log_text();
    let reasons = [
        ("disable", "no encryption"),
        ("require-wrong-ca", "certificate verify failed"),
        ("prefer-wrong-ca", "with TLS: error performing TLS handshake"),
        ("prefer-wrong-ca", "then without TLS: no pg_hba.conf entry"),
        ("verify-full-by-ip", "mismatch"),
        ("verify-full-wrong-ca", "certificate verify failed"),
        ("no-client-cert", "certificate"),
    ];
    for (target, why) in reasons {
        let lines = lines_for(&log, target);
        assert!(lines.contains(why), "{target}: expected {why:?} in:\n{lines}\n--- whole log:\n{log}");
    }
    let key = std::fs::read_to_string(certs.path().join("client.key")).expect("key");
    let key_line = key.lines().nth(1).expect("a key line");
    for out in [&log, &text] {
        assert!(!out.contains(PW), "the password leaked");
        assert!(!out.contains(key_line), "the client key leaked");
    }
}

#[test]
fn a_server_without_tls() {
    let pg = PgServer::start(&[]);
    let p = pg.port;
    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\npostgres:\n\
             \x20 - name: prefer\n    dsn: postgres://postgres@127.0.0.1:{p}/postgres?sslmode=prefer\n    password_env: PW\n\
             \x20 - name: require\n    dsn: postgres://postgres@127.0.0.1:{p}/postgres?sslmode=require\n    password_env: PW\n"
        ),
        &[("PW", PW)],
    );
    let up =
        |t: &str| value(&d.scrape(), &format!("redline_target_up{{collector=\"postgres\",target=\"{t}\"}}"));
    wait_for("prefer falls back to plain, require refuses", Duration::from_secs(15), || {
        up("prefer") == Some(1.0) && up("require") == Some(0.0)
    });
    let log = d.log_text();
    assert!(lines_for(&log, "require").contains("server does not support TLS"), "{log}");
}

#[test]
fn tls_settings_are_checked_before_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("dsn: postgres://u@h/db?sslmode=verify-full", "sslmode verify-full needs a root certificate"),
        ("dsn: postgres://u@h/db?sslmode=sometimes", "sslmode must be"),
        (
            "dsn: postgres://u@h/db?sslrootcert=/nonexistent/ca.pem",
            "sslrootcert: cannot read /nonexistent/ca.pem",
        ),
        ("dsn: postgres://u@h/db?sslmode=require\n    tls:\n      mode: verify-ca", "differ"),
        ("dsn: postgres://u@h/db\n    tls:\n      cert_file: /etc/hostname", "go together"),
        ("dsn: host=h sslpassword=pw", "sslpassword is not supported"),
    ];
    for (target, needle) in cases {
        let (ok, text) =
            common::check_config(dir.path(), "redline.yaml", &format!("postgres:\n  - {target}\n"));
        assert!(!ok, "{target} was accepted");
        assert!(text.contains("redline.yaml:2") && text.contains(needle), "{target}: {text}");
    }
}
