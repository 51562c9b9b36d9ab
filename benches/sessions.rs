//! Session benchmark: how long a session takes from `POST /api/v1/sessions`
//! to ready, what one script-mode run and one notebook cell cost, and the
//! memory an idle notebook session holds — next to `deno run` of the same
//! program per execute (what a container-per-session design pays on top of
//! that, it pays at session start), when a `deno` binary is found.
//!
//! Run: `cargo bench --bench sessions` (env `BENCH_REQUESTS` sets the runs
//! per row, default 300; `BENCH_CHILD_RUNS` the `deno run` runs, default 20).

mod common;

use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};

use common::{
    Latency, Spawned, child_latency, client_runtime, connect, env_num, find_deno, machine, rss_mib,
    send,
};

const PROGRAM: &str = "console.log(JSON.stringify({ ok: 6 * 7 }));";
const NOTEBOOK_SESSIONS: usize = 20;

fn main() {
    let runs: usize = env_num("BENCH_REQUESTS", 300);
    let child_runs: usize = env_num("BENCH_CHILD_RUNS", 20);
    let dir = std::env::temp_dir().join(format!("isoexec-bench-sessions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    std::fs::write(dir.join("main.ts"), PROGRAM).expect("program");
    let rt = client_runtime();
    let rows = rt.block_on(async {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
        cmd.env("PORT", "0")
            .env("LOG_LEVEL", "error")
            .env("MAX_SESSIONS", "1000")
            .env("WORKSPACE_DIR", dir.join("ws"))
            .env("DATA_DIR", dir.join("data"));
        let server = Spawned::start(cmd, common::ISOEXEC_LISTENING);
        let addr = server.addr;
        let mut c = connect(addr).await;
        let create = |mode: &'static str| {
            Bytes::from(json!({"environment": "typescript", "mode": mode}).to_string())
        };
        let mut rows: Vec<(String, Latency)> = Vec::new();
        for mode in ["script", "notebook"] {
            let body = create(mode);
            let mut us = Vec::new();
            let mut ids = Vec::new();
            for _ in 0..runs.min(100) {
                let t = Instant::now();
                let (status, reply) = send(&mut c, addr, "/api/v1/sessions", &body).await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
                us.push(t.elapsed().as_secs_f64() * 1e6);
                let v: Value = serde_json::from_slice(&reply).expect("json");
                ids.push(v["session_id"].as_str().expect("id").to_string());
            }
            rows.push((
                format!("create a {mode} session (to ready)"),
                Latency::of(us),
            ));
            for id in ids {
                delete(addr, &id).await;
            }
        }
        for (mode, code) in [("script", PROGRAM), ("notebook", "6 * 7")] {
            let (_, reply) = send(&mut c, addr, "/api/v1/sessions", &create(mode)).await;
            let v: Value = serde_json::from_slice(&reply).expect("json");
            let id = v["session_id"].as_str().expect("id").to_string();
            let path = format!("/api/v1/sessions/{id}/execute");
            let body = Bytes::from(json!({"code": code}).to_string());
            let (status, reply) = send(&mut c, addr, &path, &body).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
            let mut us = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                send(&mut c, addr, &path, &body).await;
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
            let name = if mode == "script" {
                "script-mode run"
            } else {
                "notebook cell"
            };
            rows.push((name.to_string(), Latency::of(us)));
            delete(addr, &id).await;
        }
        // Idle memory per notebook session.
        let before = rss_mib(server.child.id());
        let mut ids = Vec::new();
        for _ in 0..NOTEBOOK_SESSIONS {
            let (_, reply) = send(&mut c, addr, "/api/v1/sessions", &create("notebook")).await;
            let v: Value = serde_json::from_slice(&reply).expect("json");
            let id = v["session_id"].as_str().expect("id").to_string();
            // One cell, so the isolate exists.
            let path = format!("/api/v1/sessions/{id}/execute");
            send(&mut c, addr, &path, &Bytes::from(r#"{"code":"1"}"#)).await;
            ids.push(id);
        }
        let per = (rss_mib(server.child.id()) - before) / NOTEBOOK_SESSIONS as f64;
        for id in ids {
            delete(addr, &id).await;
        }
        (rows, per)
    });
    let deno = find_deno().and_then(|bin| {
        child_latency(
            || {
                let mut c = Command::new(&bin);
                c.args(["run", "--no-prompt", "main.ts"])
                    .current_dir(&dir)
                    .env("DENO_NO_UPDATE_CHECK", "1")
                    .env("NO_COLOR", "1");
                c
            },
            child_runs,
            &[0],
        )
        .map(|l| (bin, l))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (rows, per_notebook) = rows;
    println!("{}", machine());
    println!("median and p99 of {runs} sequential requests (creates: at most 100)");
    println!();
    println!("| operation | median | p99 | vs `deno run` per execute |");
    println!("|---|---:|---:|---:|");
    for (name, lat) in &rows {
        let vs = deno.as_ref().map_or("—".to_string(), |(_, d)| {
            format!("{:.1}× faster", d.median_us / lat.median_us)
        });
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {vs} |",
            lat.median_us, lat.p99_us
        );
    }
    match &deno {
        Some((bin, d)) => println!(
            "| `deno run main.ts` per execute ({}) | {:.0} µs | {:.0} µs | 1× |",
            bin.display(),
            d.median_us,
            d.p99_us
        ),
        None => println!(
            "\nbaseline skipped: no `deno` on the PATH (set DENO_BIN or install the npm package `deno`)"
        ),
    }
    println!();
    println!(
        "idle memory per notebook session (RSS growth over {NOTEBOOK_SESSIONS} sessions): {per_notebook:.1} MiB"
    );
}

async fn delete(addr: std::net::SocketAddr, id: &str) {
    use http_body_util::{BodyExt, Full};
    let mut c = connect(addr).await;
    c.ready().await.expect("ready");
    let req = hyper::Request::delete(format!("/api/v1/sessions/{id}"))
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = c.send_request(req).await.expect("send");
    let _ = resp.into_body().collect().await;
}
