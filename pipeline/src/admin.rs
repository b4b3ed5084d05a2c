//! Admin HTTP endpoint: `/healthz` (the process is up), `/readyz` (consuming: producer
//! initialised and partitions handled; 503 otherwise, e.g. while brokers are
//! unreachable) and `/metrics` (Prometheus text format).
//!
//! Three fixed GET routes need no framework: one request per connection, answered and
//! closed, requests capped at 8 KiB.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Metrics;

/// Binds `listen` and serves until the task is dropped.
pub async fn serve(listen: &str, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(listen, "admin endpoint up: /healthz /readyz /metrics");
    loop {
        let (stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &metrics).await {
                tracing::debug!(error = %e, "admin request failed");
            }
        });
    }
}

async fn handle(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    while n < buf.len() {
        let read = stream.read(&mut buf[n..]).await?;
        if read == 0 {
            break;
        }
        n += read;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let (status, ctype, body) = respond(head.lines().next().unwrap_or_default(), metrics);
    let resp = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

/// The status line `GET path` would get (for probes in tests and tools).
pub fn status_line(path: &str, metrics: &Metrics) -> &'static str {
    respond(&format!("GET {path} HTTP/1.1"), metrics).0
}

fn respond(request_line: &str, metrics: &Metrics) -> (&'static str, &'static str, String) {
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return ("405 Method Not Allowed", "text/plain", "only GET\n".into());
    }
    match path.split('?').next().unwrap_or("") {
        "/healthz" => ("200 OK", "text/plain", "ok\n".into()),
        "/readyz" if metrics.ready.load(Relaxed) => ("200 OK", "text/plain", "ready\n".into()),
        "/readyz" => (
            "503 Service Unavailable",
            "text/plain",
            "not ready: waiting for brokers or partition assignment\n".into(),
        ),
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        _ => (
            "404 Not Found",
            "text/plain",
            "try /healthz, /readyz or /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let m = Metrics::default();
        assert_eq!(respond("GET /healthz HTTP/1.1", &m).0, "200 OK");
        assert_eq!(
            respond("GET /readyz HTTP/1.1", &m).0,
            "503 Service Unavailable"
        );
        m.ready.store(true, Relaxed);
        assert_eq!(respond("GET /readyz HTTP/1.1", &m).0, "200 OK");
        assert!(respond("GET /metrics HTTP/1.1", &m)
            .2
            .contains("spamflow_ready 1"));
        assert_eq!(
            respond("POST /metrics HTTP/1.1", &m).0,
            "405 Method Not Allowed"
        );
        assert_eq!(respond("", &m).0, "405 Method Not Allowed");
        assert_eq!(respond("GET /nope HTTP/1.1", &m).0, "404 Not Found");
    }
}
