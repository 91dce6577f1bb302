//! `/metrics` serves bytes encoded once per snapshot: two scrapes of one snapshot are
//! byte-identical in each format, the gzip body decodes to the plain body, HEAD answers with
//! the headers alone, and the text passes `promtool check metrics`.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{wait_for, Daemon, RedisServer};

fn fetch(
    client: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    accept: Option<&str>,
    gzip: bool,
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = client.request(method, url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    if gzip {
        req = req.header("Accept-Encoding", "gzip");
    }
    let resp = req.send().expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    (headers, resp.bytes().expect("body").to_vec())
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn one_snapshot_is_served_as_the_same_bytes_plain_gzipped_and_to_head() {
    let r = RedisServer::start(&[]);
    // One collection at start, the next a minute later: the snapshot holds still meanwhile.
    let d = Daemon::start(
        &format!("collection:\n  interval: 60s\n  timeout: 5s\nhost:\n  enabled: false\nredis:\n  - name: t\n    url: {}\n", r.url()),
        &[],
    );
    wait_for("first collection", Duration::from_secs(10), || {
        d.scrape().contains("redline_redis_uptime_seconds")
    });
    let client =
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let url = format!("http://{}/metrics", d.addr);
    for accept in [None, Some("application/openmetrics-text; version=1.0.0; charset=utf-8")] {
        let (h1, plain) = fetch(&client, reqwest::Method::GET, &url, accept, false);
        let (_, again) = fetch(&client, reqwest::Method::GET, &url, accept, false);
        assert_eq!(plain, again, "two scrapes of one snapshot differ ({accept:?})");
        assert_eq!(header(&h1, "content-length"), Some(plain.len().to_string().as_str()));
        assert_eq!(header(&h1, "content-encoding"), None);

        let (hz, zipped) = fetch(&client, reqwest::Method::GET, &url, accept, true);
        assert_eq!(header(&hz, "content-encoding"), Some("gzip"));
        assert!(zipped.len() * 3 < plain.len(), "gzip barely shrinks: {} of {}", zipped.len(), plain.len());
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..]).read_to_end(&mut unzipped).expect("valid gzip");
        assert_eq!(unzipped, plain, "the gzip body is not the plain body ({accept:?})");
        let (_, zipped_again) = fetch(&client, reqwest::Method::GET, &url, accept, true);
        assert_eq!(zipped, zipped_again);

        let (hh, head_body) = fetch(&client, reqwest::Method::HEAD, &url, accept, false);
        assert!(head_body.is_empty(), "HEAD sent a body");
        assert_eq!(header(&hh, "content-length"), header(&h1, "content-length"));
        assert_eq!(header(&hh, "content-type"), header(&h1, "content-type"));
    }
    let text = String::from_utf8(fetch(&client, reqwest::Method::GET, &url, None, false).1).expect("utf-8");
    assert!(text.contains("redline_target_up{collector=\"redis\",target=\"t\"} 1"), "{text}");
    let complaints = common::promtool_check_metrics(&text);
    assert!(complaints.trim().is_empty(), "promtool check metrics: {complaints}");
    let om = String::from_utf8(
        fetch(
            &client,
            reqwest::Method::GET,
            &url,
            Some("application/openmetrics-text; version=1.0.0"),
            false,
        )
        .1,
    )
    .expect("utf-8");
    assert!(om.ends_with("# EOF\n") && om.matches("# EOF").count() == 1, "{om}");
    assert!(om.contains("# TYPE redline_collector_errors counter\nredline_collector_errors_total{"), "{om}");
}
