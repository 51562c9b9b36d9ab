//! Python benchmark: what a Python job and a Python notebook cell cost,
//! next to a JavaScript job and to a `python3 -c` child process per job (a
//! container or a child process per job pays at least that), in one run;
//! the time to restore an interpreter from the memory snapshot; and the
//! memory an idle Python notebook session holds.
//!
//! Run: `cargo bench --bench python` (env `BENCH_REQUESTS` sets the samples
//! per row, default 100; `BENCH_CHILD_RUNS` the `python3` runs, default 50).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use common::{
    Latency, Spawned, child_latency, client_runtime, connect, env_num, machine, rss_mib, send,
};

const PY: &str = "print('hello')";
const JS: &str = "console.log('hello')";
const NOTEBOOKS: usize = 10;

/// `n` jobs of `body`, one after the other; `pause` between them (time for
/// the isolate thread to make its next interpreter ready).
async fn jobs(addr: std::net::SocketAddr, body: &Bytes, n: usize, pause: Duration) -> Latency {
    let mut c = connect(addr).await;
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        tokio::time::sleep(pause).await;
        let t = Instant::now();
        let (status, reply) = send(&mut c, addr, "/execute/code", body).await;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        let v: Value = serde_json::from_slice(&reply).expect("json");
        assert_eq!(v["output"], "hello\n", "{v}");
    }
    Latency::of(us)
}

fn server(dir: &std::path::Path, pool: &str) -> Spawned {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
    cmd.env("PORT", "0")
        .env("LOG_LEVEL", "error")
        .env("POOL_SIZE", pool)
        .env("WORKSPACE_DIR", dir.join("ws"))
        .env("DATA_DIR", dir.join("data"));
    Spawned::start(cmd, common::ISOEXEC_LISTENING)
}

fn main() {
    let n: usize = env_num("BENCH_REQUESTS", 100);
    let child_runs: usize = env_num("BENCH_CHILD_RUNS", 50);
    let dir = std::env::temp_dir().join(format!("isoexec-bench-python-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let rt = client_runtime();
    let py = Bytes::from(json!({"lang": "python", "code": PY}).to_string());
    let js = Bytes::from(json!({"lang": "js", "code": JS}).to_string());
    let (rows, first, per_notebook) = rt.block_on(async {
        let s = server(&dir, "2");
        let addr = s.addr;
        // The first Python job of a process starts CPython and takes the
        // snapshot every later interpreter is restored from.
        let t = Instant::now();
        jobs(addr, &py, 1, Duration::ZERO).await;
        let first = t.elapsed();
        let mut rows: Vec<(String, Latency)> = Vec::new();
        let ready = Duration::from_millis(400);
        rows.push((
            "Python job, an interpreter ready (400 ms apart)".into(),
            jobs(addr, &py, n, ready).await,
        ));
        rows.push((
            "JavaScript job (400 ms apart)".into(),
            jobs(addr, &js, n.min(50), ready).await,
        ));
        rows.push((
            "JavaScript job, back to back".into(),
            jobs(addr, &js, n, Duration::ZERO).await,
        ));
        rows.push((
            "Python job, back to back (2 threads restoring)".into(),
            jobs(addr, &py, n, Duration::ZERO).await,
        ));

        // A notebook cell, in a session that already ran one.
        let mut c = connect(addr).await;
        let create = Bytes::from(json!({"environment": "python", "mode": "notebook"}).to_string());
        let (_, reply) = send(&mut c, addr, "/api/v1/sessions", &create).await;
        let id = serde_json::from_slice::<Value>(&reply).expect("json")["session_id"]
            .as_str()
            .expect("id")
            .to_string();
        let path = format!("/api/v1/sessions/{id}/execute");
        let cell = Bytes::from(
            json!({"code": "xs = list(range(10))\nsum(x * x for x in xs)"}).to_string(),
        );
        send(&mut c, addr, &path, &cell).await;
        let mut us = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let (status, reply) = send(&mut c, addr, &path, &cell).await;
            us.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(status, 200);
            let v: Value = serde_json::from_slice(&reply).expect("json");
            assert_eq!(v["result"], 285, "{v}");
        }
        rows.push(("Python notebook cell".into(), Latency::of(us)));

        // Idle memory per Python notebook: RSS growth over NOTEBOOKS
        // sessions that each ran one cell.
        let before = rss_mib(s.child.id());
        for _ in 0..NOTEBOOKS {
            let (_, reply) = send(&mut c, addr, "/api/v1/sessions", &create).await;
            let id = serde_json::from_slice::<Value>(&reply).expect("json")["session_id"]
                .as_str()
                .expect("id")
                .to_string();
            let path = format!("/api/v1/sessions/{id}/execute");
            send(&mut c, addr, &path, &Bytes::from(r#"{"code":"1"}"#)).await;
        }
        let per_notebook = (rss_mib(s.child.id()) - before) / NOTEBOOKS as f64;
        drop(s);

        // Restore: one isolate thread, jobs back to back, so each waits for
        // the interpreter the previous one's thread is restoring.
        let s = server(&dir, "1");
        jobs(s.addr, &py, 1, Duration::ZERO).await;
        rows.push((
            "Python job, 1 thread back to back (≈ restore + run)".into(),
            jobs(s.addr, &py, n.min(30), Duration::ZERO).await,
        ));
        drop(s);
        (rows, first, per_notebook)
    });
    let python3 = child_latency(
        || {
            let mut c = Command::new("python3");
            c.args(["-c", PY]);
            c
        },
        child_runs,
        &[0],
    );
    let _ = std::fs::remove_dir_all(&dir);

    println!("{}", machine());
    println!("median and p99 of {n} sequential requests per row (JavaScript 400 ms apart: 50)");
    println!();
    println!("| operation | median | p99 | vs `python3 -c` |");
    println!("|---|---:|---:|---:|");
    let vs = |l: &Latency| {
        python3.as_ref().map_or("—".to_string(), |p| {
            format!("{:.2}×", l.median_us / p.median_us)
        })
    };
    for (name, lat) in &rows {
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {} |",
            lat.median_us,
            lat.p99_us,
            vs(lat)
        );
    }
    match &python3 {
        Some(p) => println!(
            "| `python3 -c` child process per job | {:.0} µs | {:.0} µs | 1× |",
            p.median_us, p.p99_us
        ),
        None => println!("\nbaseline skipped: no `python3` on the PATH"),
    }
    println!();
    println!(
        "first Python job of a process (starts CPython, takes the snapshot): {:.0} ms",
        first.as_secs_f64() * 1e3
    );
    println!(
        "idle memory per Python notebook session (RSS growth over {NOTEBOOKS}): {per_notebook:.1} MiB"
    );
}
