//! Isolation benchmark: the same calls in each isolation mode of the real
//! server — `"none"` (warm isolate), `"frozen"` (kept isolate, frozen
//! built-ins, reset after each call), `"isolate"` (fresh isolate), `"process"`
//! (worker process) — next to the restexec model (`deno run` per call) and a
//! Deno `Worker` per call when a `deno` binary is found (`DENO_BIN` or the
//! `PATH`; `npm install deno` provides one).
//!
//! Measured, in one run: for a trivial function and for sorting 10,000
//! numbers, warm (the same script each call) and cold (a new script each
//! call): median and p99 latency and requests per second. Also how far past
//! the deadline an infinite loop is stopped in each mode, the server's RSS
//! idle and per extra isolate thread, and the start-up time until the server
//! answers.
//!
//! Run: `cargo bench --bench isolation` (env `BENCH_SECONDS` sets each
//! throughput run, default 2; `BENCH_REQUESTS` the sequential latency
//! samples, default 300; `BENCH_CHILD_RUNS` the `deno` runs, default 20).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use common::{
    BodyMaker, Latency, Spawned, check, child_latency, client_runtime, connect, env_num, find_deno,
    latency_with, machine, percentile, rss_mib, send, throughput_with,
};

const TRIVIAL: &str = "export function f(p) { return { ok: true, n: p }; }";
const SORT: &str = "export function f(p) {\n\
    let x = p >>> 0 || 1;\n\
    const a = new Array(10000);\n\
    for (let i = 0; i < a.length; i++) { x = (x * 1103515245 + 12345) >>> 0; a[i] = x; }\n\
    a.sort((u, v) => u - v);\n\
    return { first: a[0], last: a[a.length - 1] };\n}";

/// Latency and throughput of one case.
#[derive(Clone)]
struct Row {
    name: String,
    median_us: f64,
    p99_us: f64,
    rps: Option<f64>,
}

fn body(script: &str, mode: &str, cold: bool, n: u64) -> Bytes {
    let script = if cold {
        format!("{script}\n// call {n}")
    } else {
        script.to_string()
    };
    Bytes::from(
        serde_json::json!({"script": script, "fn": "f", "payload": 7, "isolation": mode})
            .to_string(),
    )
}

impl Row {
    fn new(latency: Latency, rps: Option<f64>) -> Row {
        Row {
            name: String::new(),
            median_us: latency.median_us,
            p99_us: latency.p99_us,
            rps,
        }
    }
}

/// Sequential latency (after `samples / 10` warm-up calls) and throughput
/// with four connections; `cold` makes every call's script new.
async fn measure(
    server: &Spawned,
    script: &str,
    mode: &str,
    cold: bool,
    samples: usize,
    seconds: u64,
) -> Row {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (script, mode) = (script.to_string(), mode.to_string());
    let make: BodyMaker = Arc::new(move || {
        body(
            &script,
            &mode,
            cold,
            COUNTER.fetch_add(1, Ordering::Relaxed),
        )
    });
    let lat = latency_with(server.addr, "/run", &make, samples / 10, samples).await;
    let rps = throughput_with(server.addr, "/run", &make, 4, Duration::from_secs(seconds)).await;
    Row::new(lat, Some(rps))
}

/// How far past a 100 ms deadline an infinite loop is answered, over
/// `tries` calls: (median, max) in ms.
async fn overshoot(server: &Spawned, mode: &str, tries: usize) -> (f64, f64) {
    let addr = server.addr;
    let mut c = connect(addr).await;
    let b = Bytes::from(
        serde_json::json!({"script": "export function f() { while (true) {} }", "fn": "f",
                           "timeout": 100, "isolation": mode})
        .to_string(),
    );
    let mut ms = Vec::with_capacity(tries);
    for _ in 0..tries {
        let t = Instant::now();
        let (status, _) = send(&mut c, addr, "/run", &b).await;
        assert_eq!(status, 408);
        ms.push(t.elapsed().as_secs_f64() * 1000.0 - 100.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (percentile(&ms, 0.5), ms[ms.len() - 1])
}

/// PIDs of a server's `isoexec worker` children (not its compile helpers).
fn children(pid: u32) -> Vec<u32> {
    let is_worker = |child: u32| {
        std::fs::read(format!("/proc/{child}/cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"worker"))
    };
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok())
                        .filter(|p| is_worker(*p)),
                );
            }
        }
    }
    out
}

/// Starts a server with `env`, returning it and the time until `/health`
/// answered.
async fn start_timed(env: &[(&str, &str)]) -> (Spawned, Duration) {
    let t = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
    cmd.env("PORT", "0").env("LOG_LEVEL", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Spawned::start(cmd, common::ISOEXEC_LISTENING);
    let mut c = connect(server.addr).await;
    loop {
        let req = hyper::Request::get("/health")
            .header("host", server.addr.to_string())
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("request");
        c.ready().await.expect("ready");
        if c.send_request(req).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
    }
    (server, t.elapsed())
}

/// Latency of `runs` runs of `deno run` on a script.
fn deno_run(deno: &std::path::Path, dir: &std::path::Path, file: &str, runs: usize) -> Option<Row> {
    let lat = child_latency(
        || {
            let mut c = Command::new(deno);
            c.args(["run", "--no-prompt", file])
                .current_dir(dir)
                .env("DENO_NO_UPDATE_CHECK", "1");
            c
        },
        runs,
        &[0],
    )?;
    Some(Row::new(lat, None))
}

/// A Deno program that times `runs` Worker round trips (create, post the
/// payload, receive the result, terminate) and prints the times in µs.
fn deno_worker(
    deno: &std::path::Path,
    dir: &std::path::Path,
    body: &str,
    runs: usize,
) -> Option<Row> {
    let worker = format!("{body}\nself.onmessage = (e) => {{ self.postMessage(f(e.data)); }};\n");
    std::fs::write(dir.join("worker.js"), worker).ok()?;
    let host = format!(
        "const times = [];\n\
         for (let i = 0; i <= {runs}; i++) {{\n\
           const t = performance.now();\n\
           const w = new Worker(new URL('./worker.js', import.meta.url).href, {{ type: 'module' }});\n\
           await new Promise((resolve) => {{ w.onmessage = resolve; w.postMessage(7); }});\n\
           w.terminate();\n\
           if (i > 0) times.push((performance.now() - t) * 1000);\n\
         }}\n\
         console.log(JSON.stringify(times));\n"
    );
    std::fs::write(dir.join("workers.js"), host).ok()?;
    let out = Command::new(deno)
        .args(["run", "--no-prompt", "--allow-read", "workers.js"])
        .current_dir(dir)
        .env("DENO_NO_UPDATE_CHECK", "1")
        .output()
        .ok()?;
    let us: Vec<f64> = serde_json::from_slice(&out.stdout).ok()?;
    Some(Row::new(Latency::of(us), None))
}

fn print_rows(title: &str, rows: &[Row], baseline: Option<f64>) {
    println!();
    println!("{title}");
    println!();
    println!("| case | median | p99 | req/s | `deno run` median ÷ median |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        let rps = r.rps.map_or("—".to_string(), |v| format!("{v:.0}"));
        let ratio = baseline.map_or("—".to_string(), |b| format!("{:.0}×", b / r.median_us));
        let fmt = |us: f64| {
            if us >= 10_000.0 {
                format!("{:.1} ms", us / 1000.0)
            } else {
                format!("{us:.0} µs")
            }
        };
        println!(
            "| {} | {} | {} | {rps} | {ratio} |",
            r.name,
            fmt(r.median_us),
            fmt(r.p99_us)
        );
    }
}

fn main() {
    let seconds: u64 = env_num("BENCH_SECONDS", 2);
    let samples: usize = env_num("BENCH_REQUESTS", 300);
    let child_runs: usize = env_num("BENCH_CHILD_RUNS", 20);
    let rt = client_runtime();
    rt.block_on(async move {
        let (server, startup) = start_timed(&[]).await;
        let deno = find_deno();
        let dir = std::env::temp_dir().join(format!("isoexec-isobench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("bench dir");

        println!();
        println!("Machine: {}. Server: release build, default POOL_SIZE (2 × cores), PROCESS_PRESTART default.", machine());
        println!("Latency: {samples} sequential calls on one keep-alive connection (after {} warm-up); req/s: 4 connections for {seconds} s.", samples / 10);
        match &deno {
            Some(d) => println!("Baselines: `deno run` per call and a Deno `Worker` per call ({}).", d.display()),
            None => println!("Baselines skipped: no `deno` found (set DENO_BIN or put one on the PATH)."),
        }

        for (fname, script, main_js) in [
            ("trivial function", TRIVIAL, "console.log(JSON.stringify({ ok: true, n: 7 }));"),
            ("sort 10,000 numbers", SORT, "console.log(JSON.stringify(f(7)));"),
        ] {
            let mut rows = Vec::new();
            let baseline = deno.as_ref().and_then(|d| {
                let plain = script.replace("export function", "function");
                std::fs::write(dir.join("main.js"), format!("{plain}\n{main_js}\n")).ok()?;
                deno_run(d, &dir, "main.js", child_runs)
            });
            for (mode, label) in [("none", "\"none\""), ("frozen", "\"frozen\""), ("isolate", "\"isolate\""), ("process", "\"process\"")] {
                for cold in [false, true] {
                    let n = if mode == "process" { samples / 3 } else { samples };
                    let mut row = measure(&server, script, mode, cold, n.max(10), seconds).await;
                    row.name = format!("{label}, {}", if cold { "cold (new script each call)" } else { "warm" });
                    rows.push(row);
                }
            }
            if script == TRIVIAL {
                // The other way to run "process": a worker spawned per call.
                let (cold_server, _) = start_timed(&[("PROCESS_PRESTART", "0")]).await;
                let mut row = measure(&cold_server, script, "process", false, (samples / 3).max(10), seconds).await;
                row.name = "\"process\", warm, PROCESS_PRESTART=0 (spawn per call)".into();
                rows.push(row);
            }
            if let Some(d) = &deno {
                if let Some(b) = &baseline {
                    let mut r = b.clone();
                    r.name = "`deno run` per call (restexec model)".into();
                    rows.push(r);
                }
                let plain = script.replace("export function", "function");
                if let Some(mut r) = deno_worker(d, &dir, &plain, child_runs * 5) {
                    r.name = "Deno `Worker` per call".into();
                    rows.push(r);
                }
            }
            print_rows(&format!("**{fname}**"), &rows, baseline.as_ref().map(|b| b.median_us));
        }

        println!();
        println!("Deadline overshoot (infinite loop, `timeout: 100`, 50 tries, includes the HTTP round trip):");
        println!();
        println!("| mode | median | max |");
        println!("|---|---:|---:|");
        for mode in ["none", "frozen", "isolate", "process"] {
            let (median, max) = overshoot(&server, mode, 50).await;
            println!("| \"{mode}\" | {median:.1} ms | {max:.1} ms |");
        }

        let workers = children(server.child.id());
        let worker_rss = if workers.is_empty() {
            0.0
        } else {
            workers.iter().map(|&p| rss_mib(p)).sum::<f64>() / workers.len() as f64
        };
        drop(server);
        let (one, _) = start_timed(&[("POOL_SIZE", "1"), ("PROCESS_PRESTART", "0")]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_one = rss_mib(one.child.id());
        // The first "frozen" call gives the thread its frozen isolate.
        let frozen_call = Bytes::from(
            serde_json::json!({"script": TRIVIAL, "fn": "f", "payload": 1, "isolation": "frozen"})
                .to_string(),
        );
        check(one.addr, "/run", &frozen_call).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_frozen = rss_mib(one.child.id()) - rss_one;
        drop(one);
        let (four, _) = start_timed(&[("POOL_SIZE", "4"), ("PROCESS_PRESTART", "0")]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_four = rss_mib(four.child.id());
        drop(four);
        println!();
        println!("Memory and start-up:");
        println!();
        println!("| figure | value |");
        println!("|---|---:|");
        println!("| server RSS, idle, POOL_SIZE=1 (one spare isolate) | {rss_one:.1} MiB |");
        println!("| server RSS, idle, POOL_SIZE=4 | {rss_four:.1} MiB |");
        println!("| per extra isolate thread (with its spare isolate) | {:.1} MiB |", (rss_four - rss_one) / 3.0);
        println!("| a thread's frozen isolate (made by its first \"frozen\" call) | {rss_frozen:.1} MiB |");
        println!("| one idle pre-started worker process | {worker_rss:.1} MiB |");
        println!("| start-up until `/health` answers | {:.0} ms |", startup.as_secs_f64() * 1000.0);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
