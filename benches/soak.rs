//! Soak run: a mixed load against the real server on loopback — 90% normal
//! calls, 10% hostile ones (infinite loops, memory bombs, huge outputs,
//! exceptions) — for a bounded time. Reports requests served, replies by
//! kind, the p99 latency of the normal calls with and without the hostile
//! share, and the server's RSS, thread count and open files at the start
//! and at the end (they must not creep).
//!
//! Run: `cargo bench --bench soak` (env `SOAK_SECONDS`, default 180, is the
//! mixed phase; the normal-only phase before it lasts a sixth of that;
//! `SOAK_ISOLATION`, default `isolate`, the isolation of every call;
//! `SOAK_BIN` another build of the server to soak instead, for a comparison).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use common::{Spawned, client_runtime, connect, env_num, machine, percentile, send};

const NORMAL: &str =
    "export function f(p) { let s = 0; for (let i = 0; i < 1000; i++) s += i * p; return { s }; }";

/// The hostile share, in turn.
const HOSTILE: [(&str, &str); 4] = [
    ("loop", "export function f() { while (true) {} }"),
    (
        "memory bomb",
        "export function f() { const a = []; while (true) a.push(new Array(100000).fill(1)); }",
    ),
    (
        "huge output",
        "export function f() { return 'x'.repeat(16 * 1024 * 1024); }",
    ),
    (
        "exception",
        "export function f() { throw new Error('hostile'); }",
    ),
];

/// RSS (KiB), threads and open file descriptors of a process.
fn figures(pid: u32) -> (u64, u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (field("VmRSS:"), field("Threads:"), fds)
}

#[derive(Default)]
struct Tally {
    kinds: BTreeMap<String, u64>,
    normal_us: Vec<f64>,
    served: u64,
}

/// `clients` connections sending for `length`; every tenth call of a client
/// is hostile when `hostile` is set.
async fn phase(server: &Spawned, clients: usize, length: Duration, hostile: bool) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Instant::now() + length;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (tally, addr) = (tally.clone(), server.addr);
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            let mut n = 0u64;
            while Instant::now() < stop {
                n += 1;
                let hostile_call = hostile && n % 10 == (client as u64 % 10);
                let script = if hostile_call {
                    HOSTILE[(n / 10) as usize % HOSTILE.len()].1
                } else {
                    NORMAL
                };
                let body = Bytes::from(
                    serde_json::json!({"script": script, "fn": "f", "payload": n % 7, "timeout": 500, "isolation": isolation()})
                        .to_string(),
                );
                let t = Instant::now();
                let (status, bytes) = send(&mut c, addr, "/run", &body).await;
                let us = t.elapsed().as_secs_f64() * 1e6;
                let kind = if status == 200 {
                    "ok".to_string()
                } else {
                    serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["kind"].as_str().map(String::from))
                        .unwrap_or_else(|| format!("status {status}"))
                };
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                t.served += 1;
                *t.kinds.entry(kind).or_default() += 1;
                if !hostile_call {
                    assert_eq!(status, 200, "a normal call failed: {}", String::from_utf8_lossy(&bytes));
                    t.normal_us.push(us);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let mut t = Arc::try_unwrap(tally)
        .ok()
        .expect("all clients done")
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    t.normal_us.sort_by(|a, b| a.total_cmp(b));
    t
}

/// The isolation every call asks for (`SOAK_ISOLATION`).
fn isolation() -> String {
    std::env::var("SOAK_ISOLATION").unwrap_or_else(|_| "isolate".into())
}

fn main() {
    let seconds: u64 = env_num("SOAK_SECONDS", 180);
    let rt = client_runtime();
    rt.block_on(async move {
        let bin = std::env::var("SOAK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_isoexec").into());
        let mut cmd = Command::new(&bin);
        cmd.env("PORT", "0")
            .env("LOG_LEVEL", "error")
            .env("MEMORY_LIMIT_MB", "64")
            .env("PROCESS_PRESTART", "0");
        let server = Spawned::start(cmd, common::ISOEXEC_LISTENING);
        let pid = server.child.id();
        // Warm up so the start figures are those of a running server.
        phase(&server, 2, Duration::from_secs(2), false).await;
        let start = figures(pid);
        let calm = phase(&server, 4, Duration::from_secs((seconds / 6).max(5)), false).await;
        let mixed = phase(&server, 4, Duration::from_secs(seconds), true).await;
        let end = figures(pid);
        assert_eq!(server.child.id(), pid);

        println!();
        println!("Server: {bin}");
        println!("Soak: {} — release build, default POOL_SIZE (2 × cores) and SCRIPT_THREADS (cores), MEMORY_LIMIT_MB=64, 4 clients, timeout 500 ms, isolation \"{}\".", machine(), isolation());
        println!("Normal-only phase {} s, then mixed phase {seconds} s (every tenth call hostile: loop, memory bomb, 16 MiB output, exception in turn).", (seconds / 6).max(5));
        println!();
        println!("| phase | requests | req/s | normal p50 | normal p99 |");
        println!("|---|---:|---:|---:|---:|");
        for (name, t, secs) in [("normal only", &calm, (seconds / 6).max(5)), ("mixed, 10% hostile", &mixed, seconds)] {
            println!(
                "| {name} | {} | {:.0} | {:.0} µs | {:.0} µs |",
                t.served,
                t.served as f64 / secs as f64,
                percentile(&t.normal_us, 0.5),
                percentile(&t.normal_us, 0.99)
            );
        }
        println!();
        println!("Replies in the mixed phase, by kind:");
        println!();
        println!("| kind | count |");
        println!("|---|---:|");
        for (kind, n) in &mixed.kinds {
            println!("| {kind} | {n} |");
        }
        println!();
        println!("| server | start | end |");
        println!("|---|---:|---:|");
        println!("| RSS | {:.1} MiB | {:.1} MiB |", start.0 as f64 / 1024.0, end.0 as f64 / 1024.0);
        println!("| threads | {} | {} |", start.1, end.1);
        println!("| open files | {} | {} |", start.2, end.2);
    });
}
