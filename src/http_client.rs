//! A minimal HTTP/1.1 client over hyper for redline's two outbound calls: Prometheus'
//! `/-/reload` and `redline snapshot --url`. Plain http only, 127.0.0.1-style endpoints.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

/// Sends `method` to an `http://` URL; returns status and body.
pub async fn request(method: hyper::Method, url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let u = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if u.scheme() != "http" {
        return Err("only http:// URLs are supported".into());
    }
    let host = u.host_str().ok_or("URL has no host")?.to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    let fut = async {
        let stream =
            tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| "timed out".to_string())?
}
