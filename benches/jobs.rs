//! Code-job benchmark: what the durable record costs. The same trivial
//! program runs through `POST /execute` (a saved file, no record) and
//! `POST /execute/code` (a record written before and completed after the
//! run, in SQLite), in the same run, with the same client.
//!
//! Run: `cargo bench --bench jobs` (env `BENCH_SECONDS` sets the length of
//! each throughput run, default 3; `BENCH_REQUESTS` the sequential latency
//! samples, default 1000).

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;

use common::{Spawned, check, client_runtime, env_num, latency, machine, throughput};

const PROGRAM: &str = "console.log(JSON.stringify({ ok: true }));";

fn main() {
    let seconds: u64 = env_num("BENCH_SECONDS", 3);
    let samples: usize = env_num("BENCH_REQUESTS", 1000);
    let dir = std::env::temp_dir().join(format!("isoexec-bench-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("ws")).expect("bench dir");
    std::fs::write(dir.join("ws/trivial.ts"), PROGRAM).expect("program");
    let rt = client_runtime();
    rt.block_on(async {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
        cmd.env("PORT", "0")
            .env("LOG_LEVEL", "error")
            .env("WORKSPACE_DIR", dir.join("ws"))
            .env("DATA_DIR", dir.join("data"));
        let server = Spawned::start(cmd, common::ISOEXEC_LISTENING);
        let execute = Bytes::from(r#"{"codeId":"trivial"}"#);
        let job = Bytes::from(serde_json::json!({"lang": "js", "code": PROGRAM}).to_string());
        let mut rows = Vec::new();
        for (name, path, body) in [
            ("/execute (saved file, no record)", "/execute", &execute),
            ("/execute/code (SQLite record)", "/execute/code", &job),
        ] {
            check(server.addr, path, body).await;
            let lat = latency(server.addr, path, body, samples).await;
            let rps = throughput(server.addr, path, body, 4, Duration::from_secs(seconds)).await;
            rows.push((name, lat, rps));
        }
        drop(server);
        println!("{}", machine());
        println!(
            "trivial program; median and p99 of {samples} sequential calls, req/s with 4 connections for {seconds} s"
        );
        println!();
        println!("| operation | median | p99 | req/s | vs /execute |");
        println!("|---|---:|---:|---:|---:|");
        let base = rows[0].1.median_us;
        for (name, lat, rps) in &rows {
            println!(
                "| {name} | {:.0} µs | {:.0} µs | {:.0} | {:.2}× |",
                lat.median_us,
                lat.p99_us,
                rps,
                lat.median_us / base
            );
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
