//! `"none"` and `"frozen"` calls run on the thread that read their request when that
//! thread serves their connection alone, and never where they could hold
//! up another connection.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Conn, Server, stat_cpu_ticks};

const ON_LANE: &str = "isoexec_calls_on_connection_thread_total";
const COUNTER: &str = "let n = 0; export function f() { n += 1; return n; }";
const SPIN: &str = "export function f() { while (true) {} }";

/// Waits until a connection thread has spent `cpu` running, the sign that
/// a looping call runs there (which one: a connection the test harness
/// made while the server started may still hold the first); fails after
/// 10 s.
async fn loop_runs_on_connection_thread(s: &Server, cpu: Duration) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while busiest_connection_thread(s.pid()) < cpu {
        assert!(
            Instant::now() < deadline,
            "the loop did not run on a connection thread"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The most CPU time (user and system) one of the server's connection
/// threads (`isoexec-http-<n>`, not the reserve, which runs no calls) has
/// used.
fn busiest_connection_thread(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    let mut most = Duration::ZERO;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let numbered = comm
            .trim()
            .strip_prefix("isoexec-http-")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if numbered {
            let stat = task.path().join("stat");
            let ticks = stat_cpu_ticks(&stat.to_string_lossy());
            most = most.max(Duration::from_millis(ticks * 10));
        }
    }
    most
}

/// Waits until `/metrics` says `name` reached `at_least`.
async fn metric_reaches(s: &Server, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.metric(name).await < at_least {
        assert!(Instant::now() < deadline, "{name} never reached {at_least}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_connection_alone_on_its_thread_has_its_calls_run_there() {
    let s = Server::start();
    let mut conn = s.connect().await;
    for want in 1..=5 {
        let r = conn.call(COUNTER, "f", json!({"isolation": "none"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        // One warm isolate: the thread's own, kept between the calls.
        assert_eq!(r.json()["result"], want);
    }
    assert_eq!(s.metric(ON_LANE).await, 5.0);
    // "frozen" calls run there too, each on a new module instance.
    for _ in 0..3 {
        let r = conn
            .call(COUNTER, "f", json!({"isolation": "frozen"}))
            .await;
        assert_eq!(r.json()["result"], 1);
    }
    assert_eq!(s.metric(ON_LANE).await, 8.0);
    // A fresh isolate per call is the isolate threads' work.
    let r = conn
        .call(COUNTER, "f", json!({"isolation": "isolate"}))
        .await;
    assert_eq!(r.json()["result"], 1);
    assert_eq!(s.metric(ON_LANE).await, 8.0);
    // The warm isolate was kept across the other modes' calls.
    let r = conn.call(COUNTER, "f", json!({"isolation": "none"})).await;
    assert_eq!(r.json()["result"], 6);
}

#[tokio::test]
async fn a_looping_call_on_its_connection_thread_holds_up_no_other_connection() {
    // One connection thread (and the reserve); two isolate threads, so the
    // client's share of threads (two) leaves it one more call.
    let s = Server::start_with(&[("HTTP_THREADS", "1"), ("POOL_SIZE", "2")]);
    let mut looping = s.connect().await;
    let spin = tokio::spawn(async move {
        looping
            .call(SPIN, "f", json!({"isolation": "none", "timeout": 20000}))
            .await
    });
    // The loop runs on the only connection thread (no other connection is
    // opened before it does: one would share the thread)...
    loop_runs_on_connection_thread(&s, Duration::from_millis(300)).await;
    assert_eq!(s.metric(ON_LANE).await, 1.0);
    // ...and new connections are served meanwhile, calls included.
    let h = s.get("/health").await;
    assert_eq!(h.status, 200);
    // The loop takes one of the pool's places, as on an isolate thread.
    assert_eq!(h.json()["pool"]["busy"], 1, "{}", h.json());
    let r = s
        .call(
            "export const f = () => 42",
            "f",
            json!({"isolation": "none"}),
        )
        .await;
    assert_eq!(r.json()["result"], 42);
    assert!(!spin.is_finished(), "other connections waited for the loop");
    // The client hangs up: the loop (20 s) is stopped with it, though its
    // thread cannot read the socket while it runs; the pool is idle again
    // within two seconds (`assert_healthy`).
    spin.abort();
    let _ = spin.await;
    s.assert_healthy().await;
    // The thread takes calls again once the loop is stopped.
    let mut conn = s.connect().await;
    let r = conn.call(COUNTER, "f", json!({"isolation": "none"})).await;
    assert_eq!(r.status, 200);
    s.assert_healthy().await;
}

#[tokio::test]
async fn a_call_is_not_run_on_a_thread_another_connection_shares() {
    let s = Server::start_with(&[("HTTP_THREADS", "1"), ("POOL_SIZE", "1")]);
    // An idle keep-alive connection already on the only connection thread.
    let mut idle = s.connect().await;
    assert_eq!(idle.get("/health").await.status, 200);
    let before = s.metric(ON_LANE).await;
    let mut looping = s.connect().await;
    let spin = tokio::spawn(async move {
        looping
            .call(SPIN, "f", json!({"isolation": "none", "timeout": 20000}))
            .await
    });
    // The loop went to the isolate thread: the idle connection's thread
    // still answers it at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = idle.get("/health").await.json();
        if h["pool"]["busy"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the loop never started: {h}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(idle.get("/health").await.status, 200);
    assert!(
        !spin.is_finished(),
        "the idle connection waited for the loop"
    );
    assert_eq!(s.metric(ON_LANE).await, before);
    // The client hangs up; the loop is stopped with it.
    spin.abort();
    let _ = spin.await;
    s.assert_healthy().await;
}

#[tokio::test]
async fn a_caller_that_goes_away_frees_its_connection_thread() {
    // Four connection threads: the metrics requests go to the others.
    let s = Server::start_with(&[("HTTP_THREADS", "4")]);
    let mut waiting = s.connect().await;
    let waits = "export async function f() { await new Promise((r) => setTimeout(r, 30000)); }";
    let call = tokio::spawn(async move {
        waiting
            .call(waits, "f", json!({"isolation": "none", "timeout": 60000}))
            .await
    });
    metric_reaches(&s, ON_LANE, 1.0).await;
    // The client hangs up mid-call.
    call.abort();
    let _ = call.await;
    // The thread is free again: a new connection alone there has its
    // calls run there, promptly.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = s.connect().await;
        let r = conn.call(COUNTER, "f", json!({"isolation": "none"})).await;
        assert_eq!(r.status, 200);
        if s.metric(ON_LANE).await >= 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the thread stayed busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_http2_connections_calls_leave_its_thread_free_for_its_other_streams() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    let s = Server::start_with(&[("POOL_SIZE", "2")]);
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let send = |path: &str, body: Option<serde_json::Value>| {
        let mut sender = sender.clone();
        let uri = format!("http://{}{path}", s.addr);
        async move {
            let req = match body {
                Some(b) => hyper::Request::post(uri)
                    .body(Full::new(Bytes::from(b.to_string())))
                    .unwrap(),
                None => hyper::Request::get(uri)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            };
            let resp = sender.send_request(req).await.unwrap();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        }
    };
    let spin = tokio::spawn(send(
        "/run",
        Some(json!({"script": SPIN, "fn": "f", "isolation": "none", "timeout": 20000})),
    ));
    // The loop starts (on an isolate thread) while the connection is open...
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = send("/health", None).await;
        if h["pool"]["busy"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the loop never started: {h}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...and another stream of the same connection is answered meanwhile.
    let r = send(
        "/run",
        Some(json!({"script": "export const f = () => 7", "fn": "f", "isolation": "none"})),
    )
    .await;
    assert_eq!(r["result"], 7, "{r}");
    assert!(!spin.is_finished(), "the other stream waited for the loop");
    assert_eq!(s.metric(ON_LANE).await, 0.0);
    // The looping stream is reset; its loop is stopped with it.
    spin.abort();
    let _ = spin.await;
    s.assert_healthy().await;
}

#[tokio::test]
async fn work_a_request_starts_in_the_background_is_not_held_up_by_a_call_on_its_thread() {
    let s = Server::start_with(&[("HTTP_THREADS", "4")]);
    // The first connection: it gets the first connection thread.
    let mut conn = s.connect().await;
    // A background job that waits a second, from this connection...
    let job = "await new Promise((r) => setTimeout(r, 1000)); console.log('done');";
    let r = conn
        .post_text(
            "/execute/code?wait=false",
            json!({"lang": "js", "code": job}).to_string(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    // ...running on an isolate thread, not waiting in the queue (a client's
    // waiting work goes first: its next call would wait behind it)...
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = conn.get("/health").await.json();
        if h["pool"]["busy"] == 1 && h["pool"]["queued"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started: {h}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...then a loop on the same connection, run on its thread for up to
    // 20 s (the client hangs up long before).
    let spin = tokio::spawn(async move {
        conn.call(SPIN, "f", json!({"isolation": "none", "timeout": 20000}))
            .await
    });
    // No other connection is opened until the loop runs on that thread
    // (one would share it)...
    loop_runs_on_connection_thread(&s, Duration::from_millis(200)).await;
    // ...and the job's record is completed while the loop still runs: what
    // the request started does not live on the looping thread. (The job
    // waits a second; the bound is for a loaded machine.)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.get(&format!("/execute/jobs/{id}")).await.json();
        if r["status"] == "done" {
            assert_eq!(r["output"], "done\n", "{r}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the job waited for the loop: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!spin.is_finished(), "the loop ended before the job");
    assert_eq!(s.metric(ON_LANE).await, 1.0);
    // The client hangs up; the loop is stopped with it.
    spin.abort();
    let _ = spin.await;
}

/// A call on a connection's thread whose isolate was killed gets it
/// replaced once its answer has gone, so the connection's next call finds
/// an isolate ready (a looping call answers, and the next one does not pay
/// for a new isolate).
#[tokio::test]
async fn a_killed_isolate_on_a_connection_thread_is_replaced_after_the_answer() {
    const CREATED: &str = "isoexec_isolates_created_total";
    let s = Server::start_with(&[("HTTP_THREADS", "1"), ("POOL_SIZE", "1")]);
    let mut conn = s.connect().await;
    for want in 1..=2 {
        let r = conn.call(COUNTER, "f", json!({"isolation": "none"})).await;
        assert_eq!(r.json()["result"], want, "{}", r.text());
    }
    // Read on the same connection: another one on the thread would keep
    // the replacement from being made (it would have to wait for it).
    let before = metric_on(&mut conn, CREATED).await;
    let r = conn
        .call(SPIN, "f", json!({"isolation": "none", "timeout": 300}))
        .await;
    assert_eq!(r.json()["kind"], "timeout", "{}", r.text());
    // No call is made: the replacement is made after the answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_on(&mut conn, CREATED).await < before + 1.0 {
        assert!(
            Instant::now() < deadline,
            "no isolate was made after the answer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let made = metric_on(&mut conn, CREATED).await;
    // The next call runs in it: a new isolate, and no other made for it.
    let r = conn.call(COUNTER, "f", json!({"isolation": "none"})).await;
    assert_eq!(r.json()["result"], 1, "{}", r.text());
    assert_eq!(metric_on(&mut conn, CREATED).await, made);
    assert_eq!(metric_on(&mut conn, ON_LANE).await, 4.0);
}

/// The value of the unlabelled series `name` in `/metrics`, asked on `conn`.
async fn metric_on(conn: &mut Conn, name: &str) -> f64 {
    let text = conn.get("/metrics").await.text();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics: {text}"))
}
