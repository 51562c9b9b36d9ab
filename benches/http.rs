//! HTTP benchmark: warm calls of a trivial function through the real server
//! (`"none"`, `"frozen"` and `"isolate"`), next to a bare hyper handler that
//! returns a fixed JSON body (the floor), all measured in the same run with
//! the same client over keep-alive connections, the latency samples of the
//! cases taken in turns.
//!
//! `ISOEXEC_BASELINE_BIN=path/to/isoexec` adds that build's `"none"` and
//! `"frozen"` rows, measured in the same turns: the way to compare a change
//! with the build before it.
//!
//! A second table measures the restexec API — `/execute` of the hello-world
//! example and `/lint` of a 200-line file — next to a `deno` child process
//! per call (`deno run` / `deno lint --json`), when a `deno` binary is found
//! (`DENO_BIN` or the `PATH`; `npm install deno` provides one).
//!
//! Run: `cargo bench --bench http` (env `BENCH_SECONDS` sets the length of
//! each throughput run, default 3; `BENCH_REQUESTS` the number of sequential
//! latency samples, default 2000; `BENCH_CHILD_RUNS` the child-process runs,
//! default 20).

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;

use common::{
    Latency, Spawned, check, child_latency, client_runtime, env_num, find_deno, latency, machine,
    throughput,
};

/// A server binary to measure beside this build, in the same turns.
const BASELINE_ENV: &str = "ISOEXEC_BASELINE_BIN";
/// Turns the latency samples are taken in (see `latency_interleaved`).
const LATENCY_ROUNDS: usize = 10;
const TRIVIAL: &str = "export function f(p) { return { ok: true, n: p }; }";

fn main() {
    if common::serve_floor_if_asked() {
        return;
    }
    let seconds: u64 = env_num("BENCH_SECONDS", 3);
    let samples: usize = env_num("BENCH_REQUESTS", 2000);
    let rt = client_runtime();
    rt.block_on(async move {
        let floor = common::spawn_floor();
        let server = Spawned::isoexec();
        let body_none = none_body();
        let body_iso =
            serde_json::json!({"script": TRIVIAL, "fn": "f", "payload": 1, "isolation": "isolate"})
                .to_string();
        let body_frozen =
            serde_json::json!({"script": TRIVIAL, "fn": "f", "payload": 1, "isolation": "frozen"})
                .to_string();

        // A build to compare with (say, of the previous commit), measured in
        // the same turns as this one.
        let baseline = std::env::var_os(BASELINE_ENV).map(|bin| {
            let mut cmd = Command::new(bin);
            cmd.env("PORT", "0").env("LOG_LEVEL", "error");
            Spawned::start(cmd, common::ISOEXEC_LISTENING)
        });
        let mut cases = vec![
            (
                "bare hyper handler (floor)",
                floor.addr,
                "/",
                common::FLOOR_BODY.to_string(),
            ),
            (
                "isoexec, isolation \"none\"",
                server.addr,
                "/run",
                body_none,
            ),
            (
                "isoexec, isolation \"isolate\"",
                server.addr,
                "/run",
                body_iso,
            ),
            (
                "isoexec, isolation \"frozen\"",
                server.addr,
                "/run",
                body_frozen.clone(),
            ),
        ];
        if let Some(b) = &baseline {
            cases.push(("baseline build, \"none\"", b.addr, "/run", none_body()));
            cases.push(("baseline build, \"frozen\"", b.addr, "/run", body_frozen));
        }
        let targets: Vec<_> = cases
            .iter()
            .map(|(_, addr, path, body)| (*addr, *path, Bytes::from(body.clone())))
            .collect();
        for (addr, path, body) in &targets {
            check(*addr, path, body).await;
        }
        let latencies = common::latency_interleaved(&targets, LATENCY_ROUNDS, samples).await;
        let mut rows = Vec::new();
        for ((name, ..), ((addr, path, body), lat)) in
            cases.iter().zip(targets.iter().zip(latencies))
        {
            let rps = throughput(*addr, path, body, 4, Duration::from_secs(seconds)).await;
            rows.push((*name, lat, rps));
        }
        // What metrics cost: the "none" call again while /metrics is
        // scraped ten times a second (Prometheus scrapes every 15 s or so).
        let body = Bytes::from(none_body());
        let scraping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let scraper = {
            let (addr, scraping) = (server.addr, scraping.clone());
            tokio::spawn(async move {
                let mut c = common::connect(addr).await;
                let mut scrapes = 0u64;
                while scraping.load(std::sync::atomic::Ordering::Relaxed) {
                    c.ready().await.expect("ready");
                    let req = Request::get("/metrics")
                        .header("host", addr.to_string())
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    let resp = c.send_request(req).await.expect("scrape");
                    let _ = resp.into_body().collect().await;
                    scrapes += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                scrapes
            })
        };
        let lat = latency(server.addr, "/run", &body, samples).await;
        let rps = throughput(server.addr, "/run", &body, 4, Duration::from_secs(seconds)).await;
        scraping.store(false, std::sync::atomic::Ordering::Relaxed);
        let scrapes = scraper.await.unwrap_or(0);
        assert!(scrapes > 0, "the scraper never ran");
        rows.push(("isoexec, \"none\", /metrics scraped 10×/s", lat, rps));
        print_report(&rows, samples, seconds);
        drop(baseline);
        drop(server);
        drop(floor);
        restexec_section(seconds).await;
    });
}

/// The body of a trivial `"none"` call.
fn none_body() -> String {
    serde_json::json!({"script": TRIVIAL, "fn": "f", "payload": 1, "isolation": "none"}).to_string()
}

/// Lines of the file `/lint` is measured on.
const LINT_LINES: usize = 200;

/// A TypeScript file of about `LINT_LINES` lines with a few lint findings.
fn lint_source() -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.lines().count() < LINT_LINES {
        s.push_str(&format!(
            "interface Item{i} {{\n  id: number;\n  name: string;\n}}\n\
             export function make{i}(id: number, name: string): Item{i} {{\n  const unused{i} = id * 2;\n  \
             if (name.length > 3) {{\n    return {{ id, name: name.toUpperCase() }};\n  }}\n  \
             return {{ id, name }};\n}}\n\n"
        ));
        i += 1;
    }
    s
}

/// `/execute` of the hello-world example and `/lint` of a 200-line file,
/// next to the same work done the restexec way (a `deno` child process per
/// call) when a `deno` binary is found.
async fn restexec_section(seconds: u64) {
    let dir = std::env::temp_dir().join(format!("isoexec-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let hello = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/workspace/hello-world.ts"
    );
    std::fs::copy(hello, dir.join("hello-world.ts")).expect("copy hello-world");
    std::fs::write(dir.join("lint200.ts"), lint_source()).expect("lint file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
    cmd.env("PORT", "0")
        .env("LOG_LEVEL", "error")
        .env("WORKSPACE_DIR", &dir);
    let server = Spawned::start(cmd, common::ISOEXEC_LISTENING);
    let samples = env_num("BENCH_CHILD_RUNS", 20usize);

    let exec_body = Bytes::from(r#"{"codeId":"hello-world"}"#);
    let lint_body = Bytes::from(r#"{"codeId":"lint200"}"#);
    check(server.addr, "/execute", &exec_body).await;
    check(server.addr, "/lint", &lint_body).await;
    let exec_lat = latency(server.addr, "/execute", &exec_body, 1000).await;
    let exec_rps = throughput(
        server.addr,
        "/execute",
        &exec_body,
        4,
        Duration::from_secs(seconds),
    )
    .await;
    let lint_lat = latency(server.addr, "/lint", &lint_body, 500).await;
    let lint_rps = throughput(
        server.addr,
        "/lint",
        &lint_body,
        4,
        Duration::from_secs(seconds),
    )
    .await;
    drop(server);

    let deno = find_deno();
    let (deno_run, deno_lint) = match &deno {
        Some(bin) => {
            let child = |args: &[&str]| {
                let mut c = Command::new(bin);
                c.args(args)
                    .current_dir(&dir)
                    .env("DENO_NO_UPDATE_CHECK", "1")
                    .env("NO_COLOR", "1");
                c
            };
            // `deno lint` exits with 1 when it has findings.
            let median = |l: Option<Latency>| l.map(|l| l.median_us);
            let run = median(child_latency(
                || child(&["run", "--no-prompt", "hello-world.ts"]),
                samples,
                &[0, 1],
            ));
            let lint = median(child_latency(
                || child(&["lint", "--json", "lint200.ts"]),
                samples,
                &[0, 1],
            ));
            (run, lint)
        }
        None => (None, None),
    };
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!("restexec API (median of 1000 / 500 sequential calls; req/s with 4 connections):");
    match &deno {
        Some(bin) => println!(
            "baseline: `deno run` / `deno lint --json` as a child process per call ({}), median of {samples} runs",
            bin.display()
        ),
        None => println!(
            "baseline skipped: no `deno` on the PATH (set DENO_BIN or install the npm package `deno`)"
        ),
    }
    println!();
    println!(
        "| operation | isoexec median | isoexec p99 | isoexec req/s | child process median | speed-up |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, lat, rps, child) in [
        ("/execute hello-world", &exec_lat, exec_rps, deno_run),
        ("/lint 200-line file", &lint_lat, lint_rps, deno_lint),
    ] {
        let (child_text, ratio) = match child {
            Some(us) => (
                format!("{:.1} ms", us / 1000.0),
                format!("{:.0}×", us / lat.median_us),
            ),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {rps:.0} | {child_text} | {ratio} |",
            lat.median_us, lat.p99_us
        );
    }
}

fn print_report(rows: &[(&str, Latency, f64)], samples: usize, seconds: u64) {
    println!();
    println!(
        "Machine: {}. Server: release build, default POOL_SIZE (2 × cores) and SCRIPT_THREADS (cores).",
        machine()
    );
    println!(
        "Latency: {samples} sequential requests per case on one keep-alive connection each (after 200 warm-up), the cases taken in {LATENCY_ROUNDS} turns."
    );
    println!("Throughput: 4 keep-alive connections for {seconds} s.");
    println!();
    println!("| case | median | p99 | req/s | median over floor |");
    println!("|---|---:|---:|---:|---:|");
    let floor = rows[0].1.median_us;
    for (name, lat, rps) in rows {
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {:.0} | {:+.0} µs ({:.2}×) |",
            lat.median_us,
            lat.p99_us,
            rps,
            lat.median_us - floor,
            lat.median_us / floor
        );
    }
}
