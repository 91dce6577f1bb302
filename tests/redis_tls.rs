//! `rediss://` targets against real TLS redis-servers, with certificates made by openssl for
//! the test: a private CA verifies the server, a client certificate passes `tls-auth-clients`,
//! and an untrusted server or a missing client certificate is `up 0` with a log line.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{free_port, issue_cert, make_ca, value, wait_for, Daemon, RedisServer};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn certificates(dir: &Path) {
    make_ca(dir, "ca", "redline test CA");
    for (name, ext) in
        [("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "extendedKeyUsage=clientAuth")]
    {
        issue_cert(dir, name, name, ext);
    }
}

/// A redis-server with a TLS port beside its plain one; returns the TLS port.
fn tls_server(dir: &Path, auth_clients: &str) -> (RedisServer, u16) {
    let tls_port = free_port();
    let path = |f: &str| dir.join(f).display().to_string();
    let server = RedisServer::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &path("server.pem"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        auth_clients,
    ]);
    (server, tls_port)
}

#[test]
fn rediss_with_a_private_ca_and_client_certificates() {
    let certs = tempfile::tempdir().expect("tempdir");
    certificates(certs.path());
    let (_one_way, p1) = tls_server(certs.path(), "no");
    let (_mutual, p2) = tls_server(certs.path(), "yes");
    let f = |name: &str| certs.path().join(name).display().to_string();
    let ca = format!("    tls:\n      ca_file: {}\n", f("ca.pem"));
    let d = Daemon::start(
        &format!(
            "collection:\n  interval: 1s\n  timeout: 900ms\nhost:\n  enabled: false\nredis:\n\
             - name: verified\n    url: rediss://127.0.0.1:{p1}\n{ca}\
             - name: untrusted\n    url: rediss://127.0.0.1:{p1}\n\
             - name: mutual\n    url: rediss://127.0.0.1:{p2}\n{ca}      cert_file: {cert}\n      key_file: {key}\n\
             - name: nocert\n    url: rediss://127.0.0.1:{p2}\n{ca}",
            cert = f("client.pem"),
            key = f("client.key"),
        )
        .replace("\n- name", "\n  - name"),
        &[],
    );
    let up = |t: &str, text: &str| {
        value(text, &format!("redline_target_up{{collector=\"redis\",target=\"{t}\"}}"))
    };
    wait_for("verified and mutual up, the others down", Duration::from_secs(15), || {
        let t = d.scrape();
        up("verified", &t) == Some(1.0)
            && up("mutual", &t) == Some(1.0)
            && up("untrusted", &t) == Some(0.0)
            && up("nocert", &t) == Some(0.0)
    });
    let text = d.scrape();
    for t in ["verified", "mutual"] {
        assert!(
            value(&text, &format!("redline_redis_clients_connected{{target=\"{t}\"}}")).unwrap_or(0.0) >= 1.0,
            "{text}"
        );
    }
    let log = d.log_text();
    assert!(log.contains("untrusted") && log.to_lowercase().contains("certificate"), "{log}");
    let key = std::fs::read_to_string(certs.path().join("client.key")).expect("key");
    let key_body = key.lines().nth(1).expect("a key line");
    assert!(!log.contains(key_body) && !text.contains(key_body), "the client key leaked");
}

#[test]
fn tls_settings_are_checked_before_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("not.pem"), "hello").expect("write");
    let cases = [
        ("url: redis://127.0.0.1:6379\n    tls:\n      ca_file: /etc/hostname", "tls needs a rediss:// URL"),
        (
            "url: rediss://127.0.0.1:6379\n    tls:\n      ca_file: /nonexistent/ca.pem",
            "tls.ca_file: cannot read /nonexistent/ca.pem",
        ),
        (
            &format!(
                "url: rediss://127.0.0.1:6379\n    tls:\n      ca_file: {}",
                dir.path().join("not.pem").display()
            ),
            "is not a PEM file",
        ),
        (
            "url: rediss://127.0.0.1:6379\n    tls:\n      cert_file: /etc/hostname",
            "cert_file and key_file go together",
        ),
    ];
    for (target, needle) in cases {
        let (ok, text) = common::check_config(dir.path(), "redline.yaml", &format!("redis:\n  - {target}\n"));
        assert!(!ok, "{target} was accepted");
        assert!(text.contains("redline.yaml:2:") && text.contains(needle), "{target}: {text}");
    }
}
