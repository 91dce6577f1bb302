//! HTTP endpoints: `/metrics` (content-negotiated, gzip when asked), `/-/healthy`, `/-/ready`,
//! and `POST /-/reload` when the lifecycle API is enabled. Handlers only read the store; they
//! never wait on a target, and a body not encoded yet is encoded on the blocking pool.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::collect::Store;
use crate::expose::Format;
use crate::reload::{Trigger, TriggerSender};

const LANDING: &str = "<html><head><title>redline</title></head><body><h1>redline</h1>\
<p><a href=\"/metrics\">/metrics</a> · <a href=\"/-/healthy\">/-/healthy</a> · <a href=\"/-/ready\">/-/ready</a></p>\
</body></html>\n";

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const PLAIN: &str = "text/plain; charset=utf-8";

/// 405 with the methods the path does take.
fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "method not allowed\n");
    r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// `POST /-/reload`: reloads and answers with the outcome (problems with file:line on failure;
/// they never contain a secret). 403 unless the lifecycle API is enabled, as in Prometheus.
async fn reload(tx: Option<&TriggerSender>) -> Response<Full<Bytes>> {
    let Some(tx) = tx else {
        return reply(
            StatusCode::FORBIDDEN,
            PLAIN,
            "Lifecycle API is not enabled (start redline with --web.enable-lifecycle; SIGHUP reloads too).\n",
        );
    };
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    if tx.send(Trigger { reply: Some(reply_tx) }).await.is_err() {
        return reply(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "reloader stopped\n");
    }
    match reply_rx.await {
        Ok(Ok(())) => reply(StatusCode::OK, PLAIN, "reloaded\n"),
        Ok(Err(problems)) => reply(StatusCode::BAD_REQUEST, PLAIN, format!("{problems}\n")),
        Err(_) => reply(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "reloader stopped\n"),
    }
}

/// Whether `Accept-Encoding` takes gzip (a `q=0` refuses it).
pub fn accepts_gzip(header: Option<&str>) -> bool {
    header.is_some_and(|h| {
        h.split(',').any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let refused = it
                .any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f64>().ok()) == Some(0.0));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

/// `/metrics`: the current snapshot's bytes, encoded at most once per snapshot and format.
async fn metrics(req: &Request<Incoming>, store: &Store) -> Response<Full<Bytes>> {
    let format = Format::negotiate(req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
    let gzipped = accepts_gzip(req.headers().get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()));
    let exposition = store.exposition();
    let body = match exposition.cached(format, gzipped) {
        Some(b) => b,
        // First scrape of this snapshot: encoding a big snapshot takes milliseconds of CPU, so
        // it runs on the blocking pool, off the threads that serve other requests.
        None => {
            let e = exposition.clone();
            match tokio::task::spawn_blocking(move || e.body(format, gzipped)).await {
                Ok(b) => b,
                Err(_) => return reply(StatusCode::INTERNAL_SERVER_ERROR, PLAIN, "encoding failed\n"),
            }
        }
    };
    let mut r = reply(StatusCode::OK, format.content_type(), body);
    r.headers_mut().insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    if gzipped {
        r.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// Answers one request.
pub async fn handle(
    req: &Request<Incoming>,
    store: &Store,
    reload_tx: Option<&TriggerSender>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/-/reload" {
        return match *req.method() {
            Method::POST | Method::PUT => reload(reload_tx).await,
            _ => not_allowed("POST, PUT"),
        };
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return not_allowed("GET, HEAD");
    }
    match path {
        "/metrics" => metrics(req, store).await,
        "/-/healthy" => reply(StatusCode::OK, PLAIN, "OK\n"),
        "/-/ready" if store.ready() => reply(StatusCode::OK, PLAIN, "ready\n"),
        "/-/ready" => reply(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "waiting for the first collection\n"),
        "/" => reply(StatusCode::OK, "text/html; charset=utf-8", LANDING),
        _ => reply(StatusCode::NOT_FOUND, PLAIN, "not found\n"),
    }
}

/// Serves HTTP on `listener` until `shutdown` completes. With `reload`, `POST /-/reload` works.
pub async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    reload_tx: Option<TriggerSender>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: log, pause, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let store = store.clone();
        let reload_tx = reload_tx.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let store = store.clone();
                let reload_tx = reload_tx.clone();
                async move { Ok::<_, Infallible>(handle(&req, &store, reload_tx.as_ref()).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!("connection error: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation_honours_q_zero() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
