//! Node-program benchmark: a grader-style CommonJS program (`require`,
//! stdin read whole, `process.stdout.write`) as a `node` job, the same
//! logic as an ES-module `js` job, and the same program run by a `node`
//! child process per job (what a child process or container per job pays
//! at least), in one run.
//!
//! With the test packages installed (`cd tests/npm && npm ci`), it also
//! measures a program that imports a large package (zod, 600 KB of ES
//! module source): its first run (the package transpiled and cached) and
//! later ones.
//!
//! Run: `cargo bench --bench node` (env `BENCH_REQUESTS` sets the samples
//! per row, default 300; `BENCH_CHILD_RUNS` the `node` runs, default 30).
//! The child-process row needs `node` on the PATH (or `NODE_BIN`).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use bytes::Bytes;
use serde_json::json;

use common::{Latency, Spawned, client_runtime, connect, env_num, machine, send};

const CJS: &str = "const lines = require('fs').readFileSync(0, 'utf8').trim().split('\\n');\n\
                   const xs = lines.map(Number);\n\
                   process.stdout.write(String(xs.reduce((a, b) => a + b, 0)) + '\\n');";
const ESM: &str = "import { readFileSync } from 'node:fs';\n\
                   const xs = readFileSync(0, 'utf8').trim().split('\\n').map(Number);\n\
                   process.stdout.write(String(xs.reduce((a, b) => a + b, 0)) + '\\n');";
const STDIN: &str = "1\n2\n3\n";

fn main() {
    let n: usize = env_num("BENCH_REQUESTS", 300);
    let child_runs: usize = env_num("BENCH_CHILD_RUNS", 30);
    let dir = std::env::temp_dir().join(format!("isoexec-bench-node-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let rt = client_runtime();
    let packages = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    let zod = packages.join("node_modules/zod/package.json").is_file();
    let rows = rt.block_on(async {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
        cmd.env("PORT", "0")
            .env("LOG_LEVEL", "error")
            .env("WORKSPACE_DIR", dir.join("ws"))
            .env("DATA_DIR", dir.join("data"))
            .env("VENDOR_DIR", &packages);
        let server = Spawned::start(cmd, common::ISOEXEC_LISTENING);
        let addr = server.addr;
        let mut c = connect(addr).await;
        let mut rows = Vec::new();
        for (name, lang, code) in [
            (
                "`node` job, CommonJS (require, stdin, process.stdout)",
                "node",
                CJS,
            ),
            ("`js` job, ES module (node:fs import)", "js", ESM),
        ] {
            let body = Bytes::from(json!({"lang": lang, "code": code, "stdin": STDIN}).to_string());
            let mut us = Vec::with_capacity(n);
            for i in 0..n + 20 {
                let t = Instant::now();
                let (status, reply) = send(&mut c, addr, "/execute/code", &body).await;
                let took = t.elapsed().as_secs_f64() * 1e6;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
                let v: serde_json::Value = serde_json::from_slice(&reply).expect("json");
                assert_eq!(v["output"], "6\n", "{v}");
                if i >= 20 {
                    us.push(took);
                }
            }
            rows.push((name.to_string(), Latency::of(us)));
        }
        if zod {
            let code = "import { z } from 'zod';\n\
                        const User = z.object({ name: z.string(), age: z.number().int() });\n\
                        console.log(User.parse({ name: 'ada', age: 36 }).age);";
            let body = Bytes::from(json!({"lang": "js", "code": code}).to_string());
            let t = Instant::now();
            let (status, reply) = send(&mut c, addr, "/execute/code", &body).await;
            let first = t.elapsed().as_secs_f64() * 1e6;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
            let v: serde_json::Value = serde_json::from_slice(&reply).expect("json");
            assert_eq!(v["output"], "36\n", "{v}");
            rows.push((
                "`js` job importing zod, first run (zod transpiled and cached)".into(),
                Latency::of(vec![first]),
            ));
            let mut us = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                send(&mut c, addr, "/execute/code", &body).await;
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
            rows.push(("`js` job importing zod, later runs".into(), Latency::of(us)));
        }
        rows
    });
    let node_bin: std::ffi::OsString =
        std::env::var_os("NODE_BIN").unwrap_or_else(|| "node".into());
    std::fs::write(dir.join("main.js"), CJS).expect("program");
    let mut child_us = Vec::new();
    for i in 0..child_runs + 2 {
        let t = Instant::now();
        let Ok(mut child) = Command::new(&node_bin)
            .arg(dir.join("main.js"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            break;
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(STDIN.as_bytes());
        }
        let out = child.wait_with_output().expect("node");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "6\n");
        if i >= 2 {
            child_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let child = (!child_us.is_empty()).then(|| Latency::of(child_us));
    if !zod {
        println!("zod rows skipped: the test packages are not installed (cd tests/npm && npm ci)");
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!("{}", machine());
    println!("median and p99 of {n} sequential jobs per row (after 20 warm-up jobs)");
    println!();
    println!("| case | median | p99 | vs `node` child process |");
    println!("|---|---:|---:|---:|");
    for (name, lat) in &rows {
        let vs = child.as_ref().map_or("—".to_string(), |c| {
            format!("{:.1}× faster", c.median_us / lat.median_us)
        });
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {vs} |",
            lat.median_us, lat.p99_us
        );
    }
    match &child {
        Some(c) => println!(
            "| `node main.js` child process per job | {:.0} µs | {:.0} µs | 1× |",
            c.median_us, c.p99_us
        ),
        None => println!("\nbaseline skipped: no `node` on the PATH (set NODE_BIN)"),
    }
}
