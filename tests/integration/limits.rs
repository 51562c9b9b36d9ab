//! Time, memory, output and queue limits: each ends in a clear error and the
//! server keeps serving with its pool at full size.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::Server;

const OK: &str = "export const f = (x) => x;";

#[tokio::test]
async fn an_infinite_loop_times_out_and_the_next_call_succeeds() {
    let s = Server::start();
    let started = Instant::now();
    let r = s
        .call(
            "export function f() { while (true) {} }",
            "f",
            json!({"timeout": 200}),
        )
        .await;
    // Liveness only: the kill lands long before this bound.
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["kind"], "timeout");
    assert_eq!(r.json()["error"], "Execution timeout");
    let r = s.call(OK, "f", json!({"payload": 7})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], 7);
    s.assert_healthy().await;
}

#[tokio::test]
async fn loops_at_module_top_level_and_in_finally_are_killed() {
    let s = Server::start();
    for script in [
        "while (true) {} export const f = () => 1;",
        "export function f() { try { throw 1 } finally { while (true) {} } }",
        "export async function f() { await null; for (;;) {} }",
    ] {
        let r = s.call(script, "f", json!({"timeout": 150})).await;
        assert_eq!(r.json()["kind"], "timeout", "{script}");
    }
    s.assert_healthy().await;
}

#[tokio::test]
async fn a_promise_kept_alive_by_timers_ends_at_the_deadline() {
    let s = Server::start();
    let script = r#"
        export function f() {
            return new Promise(() => { setInterval(() => {}, 10); });
        }
    "#;
    let started = Instant::now();
    let r = s.call(script, "f", json!({"timeout": 200})).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["kind"], "timeout");
}

#[tokio::test]
async fn timeout_values_are_validated_and_capped() {
    let s = Server::start();
    for bad in [json!(0), json!(-5), json!("abc"), json!(null), json!([1])] {
        if bad.is_null() {
            continue;
        }
        let r = s.call(OK, "f", json!({"timeout": bad})).await;
        assert_eq!(r.status, 400, "timeout {bad}");
        assert_eq!(r.json()["kind"], "bad_request");
    }
    // Above MAX_TIMEOUT is capped, not refused.
    let r = s
        .call(OK, "f", json!({"timeout": 999_999_999, "payload": 1}))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_memory_bomb_is_a_memory_limit_and_the_server_survives() {
    let s = Server::start_with(&[("MEMORY_LIMIT_MB", "64")]);
    let pid = s.pid();
    let bombs = [
        "export function f() { const a = []; while (true) { a.push({ n: a.length, s: 'y' + a.length }); } }",
        "export function f() { return new Array(1e8).fill(1.5).length; }",
        "export function f() { const a = []; while (true) { a.push(new Array(100000).fill(a.length)); } }",
    ];
    for bomb in bombs {
        let r = s.call(bomb, "f", json!({"timeout": 20000})).await;
        assert_eq!(r.status, 507, "{bomb}: {:?}", r.json());
        assert_eq!(r.json()["kind"], "memory_limit");
    }
    assert_eq!(s.pid(), pid);
    let r = s.call(OK, "f", json!({"payload": "still here"})).await;
    assert_eq!(r.json()["result"], "still here");
    s.assert_healthy().await;
}

#[tokio::test]
async fn array_buffer_memory_counts_against_the_limit() {
    let s = Server::start_with(&[("MEMORY_LIMIT_MB", "64")]);
    let pid = s.pid();
    let bombs = [
        // One buffer larger than the limit.
        "export function f() { return new ArrayBuffer(200 * 1024 * 1024).byteLength; }",
        // Many retained 1 MB buffers, with the failure caught by the script.
        "export function f() { const keep = []; try { while (true) keep.push(new Uint8Array(1 << 20)); } \
         catch (e) { return 'caught ' + keep.length; } }",
        // Growing typed arrays in a warm isolate.
        "export function f() { let b = new Float64Array(1024); while (true) { const n = new Float64Array(b.length * 2); n.set(b); b = n; } }",
    ];
    for (i, bomb) in bombs.iter().enumerate() {
        let mode = if i == 2 { "none" } else { "isolate" };
        let r = s
            .call(bomb, "f", json!({"timeout": 20000, "isolation": mode}))
            .await;
        assert_eq!(r.status, 507, "{bomb}: {:?}", r.json());
        assert_eq!(r.json()["kind"], "memory_limit");
    }
    // Buffers well under the limit are fine, and freed ones give room back.
    let r = s
        .call(
            "export function f() { let total = 0; for (let i = 0; i < 200; i++) total += new Uint8Array(1 << 20).length; return total; }",
            "f",
            json!({"isolation": "none"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["result"], 200 * (1 << 20));
    assert_eq!(s.pid(), pid);
    s.assert_healthy().await;
}

#[tokio::test]
async fn unbounded_recursion_is_a_catchable_range_error() {
    let s = Server::start();
    let r = s
        .call(
            "export function f() { const r = () => r(); return r(); }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["details"]["name"], "RangeError");
}

#[tokio::test]
async fn twenty_concurrent_calls_with_one_infinite_loop_all_come_back_right() {
    let s = std::sync::Arc::new(Server::start());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            if i == 7 {
                let r = s
                    .call("export function f() { while (true) {} }", "f", json!({"timeout": 300}))
                    .await;
                (i, r.status, r.json())
            } else {
                let script = "export async function f(n) { await new Promise(r => setTimeout(r, 5)); return n * n; }";
                let r = s.call(script, "f", json!({"payload": i})).await;
                (i, r.status, r.json())
            }
        }));
    }
    for t in tasks {
        let (i, status, body) = t.await.unwrap();
        if i == 7 {
            assert_eq!(status, 408);
            assert_eq!(body["kind"], "timeout");
        } else {
            assert_eq!(status, 200, "call {i}: {body}");
            assert_eq!(body["result"], i * i);
        }
    }
    s.assert_healthy().await;
}

#[tokio::test]
async fn cpu_budget_is_its_own_limit() {
    let s = Server::start();
    let r = s
        .call(
            "export function f() { while (true) {} }",
            "f",
            json!({"timeout": 5000, "cpuTimeout": 100}),
        )
        .await;
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["kind"], "cpu_limit");
    // Waiting on a timer uses no CPU: the CPU budget does not end it.
    let r = s
        .call(
            "export async function f() { await new Promise(r => setTimeout(r, 150)); return 'slept'; }",
            "f",
            json!({"cpuTimeout": 50}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["result"], "slept");
}

#[tokio::test]
async fn oversized_and_overdeep_results_are_output_limit() {
    let s = Server::start_with(&[("MAX_RESULT_BYTES", "1024"), ("MAX_JSON_DEPTH", "16")]);
    let r = s
        .call("export const f = () => 'x'.repeat(5000);", "f", json!({}))
        .await;
    assert_eq!(r.status, 507);
    assert_eq!(r.json()["kind"], "output_limit");
    let r = s
        .call("export const f = () => { let o: any = {}; for (let i = 0; i < 40; i++) o = {o}; return o; };", "f", json!({}))
        .await;
    assert_eq!(r.status, 507);
    assert_eq!(r.json()["kind"], "output_limit");
    let r = s
        .call("export const f = () => { let o: any = {}; for (let i = 0; i < 10; i++) o = {o}; return o; };", "f", json!({}))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn cycles_and_throwing_getters_are_exceptions() {
    let s = Server::start();
    let r = s
        .call(
            "export function f() { const a: any = {}; a.me = a; return a; }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["kind"], "exception");
    assert_eq!(r.json()["details"]["name"], "TypeError");
    let r = s
        .call(
            "export function f() { return { get x() { throw new Error('getter'); } }; }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["details"]["message"], "getter");
    // A getter that loops is stopped by the deadline.
    let r = s
        .call(
            "export function f() { return { get x() { for (;;) {} } }; }",
            "f",
            json!({"timeout": 150}),
        )
        .await;
    assert_eq!(r.json()["kind"], "timeout");
}

#[tokio::test]
async fn logs_are_kept_up_to_their_cap_and_flagged() {
    let s = Server::start_with(&[("MAX_LOG_ENTRIES", "5")]);
    let r = s
        .call(
            "export function f() { for (let i = 0; i < 100; i++) console.log(i); return 'done'; }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["result"], "done");
    assert_eq!(body["logs"].as_array().unwrap().len(), 5);
    assert_eq!(body["logsTruncated"], true);
}

#[tokio::test]
async fn a_deeply_nested_payload_is_refused() {
    let s = Server::start_with(&[("MAX_JSON_DEPTH", "32")]);
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let body =
        format!(r#"{{"script": "export const f = (x) => 1", "fn": "f", "payload": {deep}}}"#);
    let r = s.post_text("/run", body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["kind"], "bad_request");
}

#[tokio::test]
async fn a_full_queue_answers_overloaded_at_once() {
    let s = std::sync::Arc::new(Server::start_with(&[
        ("POOL_SIZE", "1"),
        ("QUEUE_SIZE", "0"),
    ]));
    let busy = {
        let s = s.clone();
        tokio::spawn(async move {
            s.call(
                "export function f() { while (true) {} }",
                "f",
                json!({"timeout": 1500}),
            )
            .await
        })
    };
    // Wait until the loop occupies the only isolate thread.
    for _ in 0..200 {
        if s.get("/health").await.json()["pool"]["busy"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let r = s.call(OK, "f", json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(r.status, 503, "{:?}", r.json());
    assert_eq!(r.json()["kind"], "overloaded");
    assert!(r.header("retry-after").is_some());
    assert_eq!(busy.await.unwrap().json()["kind"], "timeout");
    let r = s.call(OK, "f", json!({"payload": 1})).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_call_is_cancelled_when_its_client_disconnects() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    let body = serde_json::to_vec(&json!({
        "script": "export function f() { while (true) {} }",
        "fn": "f",
        "timeout": 60000,
    }))
    .unwrap();
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post("/run")
        .header("host", s.addr.to_string())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let pending = tokio::spawn(async move { sender.send_request(req).await });
    // Wait until the loop occupies the only isolate thread…
    let started = std::time::Instant::now();
    loop {
        let h = s.get("/health").await.json();
        if h["pool"]["busy"] == 1 {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // …then hang up. The loop must stop long before its 60 s deadline.
    pending.abort();
    conn.abort();
    let hung_up = std::time::Instant::now();
    s.assert_healthy().await;
    assert!(hung_up.elapsed() < std::time::Duration::from_secs(5));
    let r = s.call(OK, "f", json!({"payload": "next"})).await;
    assert_eq!(r.json()["result"], "next");
}

#[tokio::test]
async fn one_client_holds_at_most_script_threads_and_others_keep_moving() {
    let s = crate::support::Server::start_with(&[("POOL_SIZE", "2"), ("SCRIPT_THREADS", "1")]);
    let spin = "export function f() { while (true) {} }";
    let loops = async {
        tokio::join!(
            s.call(spin, "f", serde_json::json!({"timeout": 1500})),
            s.call(spin, "f", serde_json::json!({"timeout": 1500})),
        )
    };
    let probe = async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let health = s.get("/health").await.json();
        let started = std::time::Instant::now();
        // Another client (threads are shared out per client).
        let body = serde_json::json!({"script": "export const f = () => 'moving'", "fn": "f"});
        let normal = s
            .request(
                "POST",
                "/run",
                &[
                    ("content-type", "application/json"),
                    ("authorization", "Bearer another-client"),
                ],
                serde_json::to_vec(&body).unwrap_or_default(),
            )
            .await;
        (health, started.elapsed(), normal)
    };
    let ((a, b), (health, took, normal)) = tokio::join!(loops, probe);
    assert_eq!(a.json()["kind"], "timeout");
    assert_eq!(b.json()["kind"], "timeout");
    // The client holds one thread; its second call waits for it.
    assert_eq!(health["pool"]["busy"], 1, "{health}");
    assert_eq!(health["pool"]["queued"], 1, "{health}");
    // Another client's call runs on the free thread (liveness bound only).
    assert_eq!(normal.json()["result"], "moving");
    assert!(took < std::time::Duration::from_millis(1200), "{took:?}");
}

/// The watchdog sleeps until the earliest deadline it knows of; a call with
/// an earlier one must wake it. Here a call that waits on a timer holds a
/// 60 s deadline while a loop with a 200 ms one starts beside it: the loop
/// is killed at its own deadline, not at the other call's.
#[tokio::test]
async fn a_short_deadline_is_kept_while_a_long_one_is_armed() {
    let s = Server::start_with(&[("POOL_SIZE", "2")]);
    let wait = "export const f = (ms) => new Promise((r) => setTimeout(() => r('woke'), ms));";
    // Compiled beforehand, so that the waiting call's deadline is armed as
    // soon as a thread takes it.
    assert_eq!(s.call(wait, "f", json!({"payload": 1})).await.status, 200);
    let waiting = s.call(wait, "f", json!({"payload": 4000, "timeout": 60000}));
    let looping = async {
        // The waiting call holds a thread (and its deadline is armed) first.
        let limit = Instant::now() + Duration::from_secs(20);
        while s.get("/health").await.json()["pool"]["busy"] != 1 {
            assert!(Instant::now() < limit, "the waiting call never started");
            tokio::task::yield_now().await;
        }
        let started = Instant::now();
        let r = s
            .call(
                "export function f() { while (true) {} }",
                "f",
                json!({"timeout": 200}),
            )
            .await;
        (r, started.elapsed())
    };
    let (waited, (looped, took)) = tokio::join!(waiting, looping);
    assert_eq!(
        looped.status,
        408,
        "{}",
        String::from_utf8_lossy(&looped.body)
    );
    assert_eq!(looped.json()["kind"], "timeout");
    // Liveness only: well before the waiting call's timer, let alone its deadline.
    assert!(took < Duration::from_millis(3000), "the loop ran {took:?}");
    assert_eq!(waited.status, 200);
    assert_eq!(waited.json()["result"], "woke");
}
