//! HTTP endpoints: `/metrics` (content-negotiated), `/-/healthy`, `/-/ready`.
//! Handlers only read the store; they never wait on a target.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::collect::Store;
use crate::expose::{self, Format};
use crate::reload::{Trigger, TriggerSender};

const LANDING: &str = "<html><head><title>redline</title></head><body><h1>redline</h1>\
<p><a href=\"/metrics\">/metrics</a> · <a href=\"/-/healthy\">/-/healthy</a> · <a href=\"/-/ready\">/-/ready</a></p>\
</body></html>\n";

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

const PLAIN: &str = "text/plain; charset=utf-8";

/// `POST /-/reload`: reloads and answers with the outcome (problems with file:line on failure).
async fn reload(tx: Option<&TriggerSender>) -> Response<Full<Bytes>> {
    let Some(tx) = tx else {
        return reply(StatusCode::NOT_FOUND, PLAIN, "reload is not enabled\n");
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

/// Answers one request.
pub fn handle(req: &Request<Incoming>, store: &Store) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "method not allowed\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            let body = expose::encode(store.snapshot(), format);
            reply(StatusCode::OK, format.content_type(), body)
        }
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
                async move {
                    let resp = if req.method() == Method::POST && req.uri().path() == "/-/reload" {
                        reload(reload_tx.as_ref()).await
                    } else {
                        handle(&req, &store)
                    };
                    Ok::<_, Infallible>(resp)
                }
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
