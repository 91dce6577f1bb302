//! A minimal HTTP/1.1 client over hyper for redline's two outbound calls: Prometheus'
//! `/-/reload` and `redline snapshot --url`. Plain http only; credentials in the URL are sent as
//! basic auth and never appear in a message.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

use crate::secret::HttpUrl;

/// Why a request failed. Messages name the URL without its credentials.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No TCP connection.
    #[error("cannot connect to {url}: {cause}")]
    Connect {
        /// URL without credentials.
        url: String,
        /// The socket error.
        cause: std::io::Error,
    },
    /// The connection broke or the answer was not HTTP.
    #[error("{url}: {cause}")]
    Protocol {
        /// URL without credentials.
        url: String,
        /// hyper's error.
        cause: hyper::Error,
    },
    /// The request could not be built (a bad path).
    #[error("{url}: cannot build the request: {cause}")]
    Request {
        /// URL without credentials.
        url: String,
        /// The builder's error.
        cause: hyper::http::Error,
    },
    /// No complete answer in time.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout {
        /// URL without credentials.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
}

/// Sends `method` to `url`; returns status and body.
pub async fn request(
    method: hyper::Method,
    url: &HttpUrl,
    timeout: Duration,
) -> Result<(u16, Bytes), HttpError> {
    let u = url.url();
    let shown = url.to_string();
    let host = u.host_str().unwrap_or_default().to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    let fut = async {
        // An IPv6 literal keeps its brackets in the URL's host but not for the socket.
        let connect_host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((connect_host, port))
            .await
            .map_err(|cause| HttpError::Connect { url: shown.clone(), cause })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|cause| HttpError::Protocol { url: shown.clone(), cause })?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("{host}:{port}"));
        if let Some(auth) = url.auth() {
            req = req.header(hyper::header::AUTHORIZATION, auth.header());
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|cause| HttpError::Request { url: shown.clone(), cause })?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|cause| HttpError::Protocol { url: shown.clone(), cause })?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|cause| HttpError::Protocol { url: shown.clone(), cause })?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| HttpError::Timeout { url: shown.clone(), timeout })?
}
