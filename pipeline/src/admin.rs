//! Admin HTTP endpoint: `/healthz` (the engine makes progress: its loop turns and read
//! records get committed, within `admin.stall_timeout_ms`; 503 otherwise, so that
//! Kubernetes restarts a stalled instance), `/readyz` (consuming: producer initialised
//! and partitions handled; 503 otherwise, e.g. while brokers are unreachable) and
//! `/metrics` (Prometheus text format).
//!
//! Three fixed GET routes need no framework: one request per connection, answered and
//! closed, requests capped at 8 KiB and 5 seconds, at most 64 connections at once (more
//! are closed at once). An accept error (e.g. out of file descriptors) is logged and
//! retried after a pause; it never ends the endpoint.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::metrics::{mono_ms, Metrics};

/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request and read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `listen` and serves until the task is dropped. `stall` is how long the engine may
/// go without progress before `/healthz` says 503.
pub async fn serve(listen: &str, metrics: Arc<Metrics>, stall: Duration) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(listen, "admin endpoint up: /healthz /readyz /metrics");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like pass; the probes will come back.
                tracing::warn!(error = %e, "admin endpoint cannot accept; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: the stream is dropped, i.e. closed
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(REQUEST_TIMEOUT, handle(stream, &metrics, stall)).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "admin request failed"),
                Err(_) => tracing::debug!("admin request timed out"),
                Ok(Ok(())) => {}
            }
        });
    }
}

async fn handle(mut stream: TcpStream, metrics: &Metrics, stall: Duration) -> std::io::Result<()> {
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
    let (status, ctype, body) = respond(head.lines().next().unwrap_or_default(), metrics, stall);
    let resp = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

/// The status line `GET path` would get (for probes in tests and tools).
pub fn status_line(path: &str, metrics: &Metrics, stall: Duration) -> &'static str {
    respond(&format!("GET {path} HTTP/1.1"), metrics, stall).0
}

fn respond(
    request_line: &str,
    metrics: &Metrics,
    stall: Duration,
) -> (&'static str, &'static str, String) {
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return ("405 Method Not Allowed", "text/plain", "only GET\n".into());
    }
    match path.split('?').next().unwrap_or("") {
        "/healthz" => match metrics.progress(mono_ms(), stall.as_millis() as u64) {
            Ok(()) => ("200 OK", "text/plain", "ok\n".into()),
            Err(why) => (
                "503 Service Unavailable",
                "text/plain",
                format!("stalled: {why}\n"),
            ),
        },
        "/readyz" if metrics.ready.load(Relaxed) && metrics.rules_fallback.load(Relaxed) => (
            "200 OK",
            "text/plain",
            "ready, serving the last good rule pack: the pack in rules.dir was rejected (see the log)\n".into(),
        ),
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

    const STALL: Duration = Duration::from_secs(60);

    fn respond(line: &str, m: &Metrics) -> (&'static str, &'static str, String) {
        super::respond(line, m, STALL)
    }

    #[test]
    fn healthz_says_503_when_the_engine_stops_turning_or_commits_stall() {
        let m = Metrics::default();
        let now = mono_ms() + 1_000_000;
        assert!(m.progress(now, 60_000).is_ok(), "not started yet: healthy");
        m.heartbeat_ms.store(now - 1_000, Relaxed);
        assert!(m.progress(now, 60_000).is_ok());
        m.uncommitted_since_ms.store(now - 61_000, Relaxed);
        m.aborts.store(7, Relaxed);
        let why = m.progress(now, 60_000).unwrap_err();
        assert!(
            why.contains("not committed") && why.contains("7 aborts"),
            "{why}"
        );
        m.uncommitted_since_ms.store(0, Relaxed);
        m.heartbeat_ms.store(now - 61_000, Relaxed);
        assert!(m
            .progress(now, 60_000)
            .unwrap_err()
            .contains("has not turned"));
    }

    #[test]
    fn healthz_says_503_once_a_background_thread_ends_while_the_instance_runs() {
        use crate::metrics::ThreadWatch;
        use crate::runtime::Stop;
        use std::sync::Arc;
        let m = Arc::new(Metrics::default());
        let stopping = Stop::new();
        let (m2, s2) = (m.clone(), stopping.clone());
        let stopped_thread = std::thread::spawn(move || {
            let _watch = ThreadWatch::new(m2, "rule pack watcher", s2.clone());
            s2.trigger();
        });
        stopped_thread.join().unwrap();
        assert_eq!(
            respond("GET /healthz HTTP/1.1", &m).0,
            "200 OK",
            "ended on stop: healthy"
        );

        let m2 = m.clone();
        let returned = std::thread::spawn(move || {
            let _watch = ThreadWatch::new(m2, "registry follower", Stop::new());
        });
        returned.join().unwrap();
        let (status, _, body) = respond("GET /healthz HTTP/1.1", &m);
        assert_eq!(status, "503 Service Unavailable");
        assert!(body.contains("registry follower"), "{body}");

        let m2 = m.clone();
        let panicked = std::thread::spawn(move || {
            let _watch = ThreadWatch::new(m2, "report checker", Stop::new());
            panic!("a follower's bug");
        });
        assert!(panicked.join().is_err());
        let body = respond("GET /healthz HTTP/1.1", &m).2;
        assert!(body.contains("registry follower, report checker"), "{body}");
        assert!(respond("GET /metrics HTTP/1.1", &m)
            .2
            .contains("spamflow_background_threads_ended 2"));
    }

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
