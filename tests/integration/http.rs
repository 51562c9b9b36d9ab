//! The HTTP surface: routing, bodies, request ids, auth, HTTP/2, start-up
//! configuration errors and graceful shutdown.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;

use crate::support::Server;

#[tokio::test]
async fn health_reports_status_uptime_version_and_pool() {
    let s = Server::start_with(&[("POOL_SIZE", "3")]);
    let r = s.get("/health").await;
    assert_eq!(r.status, 200);
    let h = r.json();
    assert_eq!(h["status"], "ok");
    assert!(h["uptime"].as_f64().unwrap() >= 0.0);
    assert!(h["version"].is_string());
    assert_eq!(h["pool"]["size"], 3);
    assert_eq!(h["pool"]["queued"], 0);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let s = Server::start();
    let r = s
        .request(
            "GET",
            "/health",
            &[("x-request-id", "abc-123")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let a = s.get("/health").await;
    let b = s.get("/nope").await;
    let (a, b) = (
        a.header("x-request-id").unwrap(),
        b.header("x-request-id").unwrap(),
    );
    assert!(!a.is_empty());
    assert_ne!(a, b);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_have_their_kinds() {
    let s = Server::start();
    let r = s.get("/missing").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["kind"], "not_found");
    let r = s.get("/run").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["kind"], "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let s = Server::start();
    for body in [
        "{not json",
        "[]",
        r#"{"fn": "f"}"#,
        r#"{"script": "export const f = () => 1"}"#,
        r#"{"script": 42, "fn": "f"}"#,
        r#"{"script": "export const f = () => 1", "fn": ""}"#,
        "{\"script\": \"x\", \"fn\": \"f\"} trailing",
    ] {
        let r = s.request("POST", "/run", &[], body.to_string()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["kind"], "bad_request", "{body}");
        assert!(r.json()["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let r = s.request("POST", "/run", &[], vec![0xff, 0xfe, 0x7b]).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_with_and_without_length() {
    let s = Server::start_with(&[("MAX_BODY_BYTES", "2048")]);
    let big = json!({"script": "export const f = () => 1", "fn": "f", "payload": "x".repeat(4000)});
    let r = s.post("/run", &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["kind"], "payload_too_large");

    // Chunked, with no Content-Length.
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let body = Chunks((0..8).map(|_| Bytes::from(vec![b' '; 1024])).collect());
    let req = hyper::Request::post("/run")
        .header("host", "x")
        .body(body)
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["kind"], "payload_too_large");
}

/// A request body of several chunks and no declared length (sent chunked).
struct Chunks(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[tokio::test]
async fn api_key_guards_every_route_but_health() {
    let s = Server::start_with(&[("API_KEY", "sesame")]);
    let body =
        serde_json::to_vec(&json!({"script": "export const f = () => 1", "fn": "f"})).unwrap();
    let r = s.request("POST", "/run", &[], body.clone()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["kind"], "unauthorized");
    let r = s
        .request(
            "POST",
            "/run",
            &[("authorization", "Bearer wrong")],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = s
        .request("POST", "/run", &[("authorization", "Bearer sesame")], body)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get("/health").await.status, 200);
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let s = Server::start();
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let body =
        serde_json::to_vec(&json!({"script": "export const f = () => 'h2'", "fn": "f"})).unwrap();
    let req = hyper::Request::post(format!("http://{}/run", s.addr))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["result"], "h2");
}

#[test]
fn a_bad_setting_stops_the_server_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isoexec"))
        .env("PORT", "not-a-port")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PORT"), "{err}");
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn sigterm_finishes_in_flight_calls_then_exits() {
    let mut s = Server::start();
    let addr = s.addr;
    let call = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let body = serde_json::to_vec(&json!({
            "script": "export async function f() { await new Promise(r => setTimeout(r, 300)); return 'finished'; }",
            "fn": "f"
        }))
        .unwrap();
        let req = hyper::Request::post("/run")
            .header("host", "x")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        )
    });
    // Let the call reach a worker, then ask the server to stop.
    for _ in 0..100 {
        if s.get("/health").await.json()["pool"]["busy"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.terminate();
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["result"], "finished");
    let exit = tokio::task::spawn_blocking(move || {
        let status = s.wait_exit(Duration::from_secs(10));
        (status, s.is_running())
    })
    .await
    .unwrap();
    assert!(exit.0.is_some_and(|st| st.success()), "{exit:?}");
}

/// Connections share their threads (`HTTP_THREADS`), so a large body is
/// checked and parsed off the connection's thread: while one client's
/// body of several MiB is being read through, the others' requests on the
/// same thread are answered.
#[tokio::test]
async fn a_large_body_does_not_hold_up_other_connections() {
    let s = Server::start_with(&[("HTTP_THREADS", "1")]);
    let items: Vec<_> = (0..100_000)
        .map(|i| json!({"id": i, "tag": "abcdefgh", "v": [1, 2, 3, 4]}))
        .collect();
    let big = serde_json::to_vec(&json!({
        "script": "export const f = (p) => p.items.length;",
        "fn": "f",
        "payload": {"items": items},
    }))
    .unwrap();
    assert!(big.len() > 4 << 20, "{} bytes", big.len());
    let done = std::sync::atomic::AtomicBool::new(false);
    let big_call = async {
        let started = std::time::Instant::now();
        let r = s.post_text("/run", big).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (r, started.elapsed())
    };
    let probes = async {
        let (mut answered, mut longest) = (0, Duration::ZERO);
        let mut last = std::time::Instant::now();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            assert_eq!(s.get("/health").await.status, 200);
            answered += 1;
            longest = longest.max(last.elapsed());
            last = std::time::Instant::now();
        }
        (answered, longest)
    };
    let ((r, took), (answered, longest)) = tokio::join!(big_call, probes);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["result"], 100_000);
    // The body's check and parse take most of the big call; had they run
    // on the connection thread, one probe would have waited through them.
    assert!(answered >= 2, "{answered} probes answered in {took:?}");
    assert!(
        longest < took / 2,
        "a probe waited {longest:?} while the big call took {took:?}"
    );
}
