//! HTTP benchmark: warm calls of a trivial function through the real server
//! (`"none"` and `"isolate"`), next to a bare hyper handler that returns a
//! fixed JSON body (the floor), all measured in the same run with the same
//! client over keep-alive connections.
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

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;

const FLOOR_ENV: &str = "ISOEXEC_BENCH_FLOOR";
const FLOOR_BODY: &str = r#"{"result":{"ok":true},"logs":[]}"#;
const TRIVIAL: &str = "export function f(p) { return { ok: true, n: p }; }";

fn main() {
    if std::env::var_os(FLOOR_ENV).is_some() {
        run_floor_server();
        return;
    }
    let seconds: u64 = env_num("BENCH_SECONDS", 3);
    let samples: usize = env_num("BENCH_REQUESTS", 2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let floor = Spawned::floor();
        let server = Spawned::isoexec();
        let body_none =
            serde_json::json!({"script": TRIVIAL, "fn": "f", "payload": 1, "isolation": "none"})
                .to_string();
        let body_iso =
            serde_json::json!({"script": TRIVIAL, "fn": "f", "payload": 1, "isolation": "isolate"})
                .to_string();

        let cases = [
            (
                "bare hyper handler (floor)",
                floor.addr,
                "/",
                FLOOR_BODY.to_string(),
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
        ];
        let mut rows = Vec::new();
        for (name, addr, path, body) in cases {
            let body = Bytes::from(body);
            check(addr, path, &body).await;
            let lat = latency(addr, path, &body, samples).await;
            let rps = throughput(addr, path, &body, 4, Duration::from_secs(seconds)).await;
            rows.push((name, lat, rps));
        }
        print_report(&rows, samples, seconds);
        drop(server);
        drop(floor);
        restexec_section(seconds).await;
    });
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

/// A `deno` executable: `DENO_BIN`, else the first `deno` on the `PATH`.
fn find_deno() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("DENO_BIN") {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("deno"))
        .find(|p| p.is_file())
}

/// Median wall time of `runs` runs of a command (after one warm-up run),
/// in microseconds.
fn child_median_us(mut make: impl FnMut() -> Command, runs: usize) -> Option<f64> {
    let ok = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success() || s.code() == Some(1))
    };
    if !ok(&mut make()) {
        return None;
    }
    let mut us = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        if !ok(&mut make()) {
            return None;
        }
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    us.sort_by(|a, b| a.total_cmp(b));
    Some(percentile(&us, 0.5))
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
    let server = Spawned::start(cmd, "isoexec listening on http://");
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
            let run = child_median_us(|| child(&["run", "--no-prompt", "hello-world.ts"]), samples);
            let lint = child_median_us(|| child(&["lint", "--json", "lint200.ts"]), samples);
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

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A server process started for the benchmark, killed on drop.
struct Spawned {
    child: Child,
    addr: SocketAddr,
}

impl Spawned {
    fn isoexec() -> Spawned {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
        cmd.env("PORT", "0").env("LOG_LEVEL", "error");
        Spawned::start(cmd, "isoexec listening on http://")
    }

    fn floor() -> Spawned {
        let mut cmd = Command::new(std::env::current_exe().expect("own path"));
        cmd.env(FLOOR_ENV, "1");
        Spawned::start(cmd, "floor listening on http://")
    }

    fn start(mut cmd: Command, prefix: &str) -> Spawned {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let addr = line
            .trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .parse()
            .expect("address");
        Spawned { child, addr }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The floor: the same hyper stack with a handler that only returns bytes.
fn run_floor_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!(
            "floor listening on http://{}",
            listener.local_addr().expect("addr")
        );
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        let mut r = hyper::Response::new(Full::new(Bytes::from_static(
                            FLOOR_BODY.as_bytes(),
                        )));
                        r.headers_mut().insert(
                            "content-type",
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(r)
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    path: &str,
    body: &Bytes,
) -> (u16, Bytes) {
    sender.ready().await.expect("ready");
    let req = Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body().collect().await.expect("body").to_bytes(),
    )
}

async fn check(addr: SocketAddr, path: &str, body: &Bytes) {
    let mut c = connect(addr).await;
    let (status, bytes) = send(&mut c, addr, path, body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
}

struct Latency {
    median_us: f64,
    p99_us: f64,
}

/// Sequential requests on one keep-alive connection, after a warm-up.
async fn latency(addr: SocketAddr, path: &str, body: &Bytes, samples: usize) -> Latency {
    let mut c = connect(addr).await;
    for _ in 0..200 {
        send(&mut c, addr, path, body).await;
    }
    let mut us = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        let (status, _) = send(&mut c, addr, path, body).await;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(status, 200);
    }
    us.sort_by(|a, b| a.total_cmp(b));
    Latency {
        median_us: percentile(&us, 0.50),
        p99_us: percentile(&us, 0.99),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `connections` keep-alive connections sending back to back for `length`.
async fn throughput(
    addr: SocketAddr,
    path: &str,
    body: &Bytes,
    connections: usize,
    length: Duration,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (done, stop, body, path) = (done.clone(), stop.clone(), body.clone(), path.to_string());
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = send(&mut c, addr, &path, &body).await;
                assert_eq!(status, 200);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let count = done.load(Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    count as f64 / elapsed
}

fn print_report(rows: &[(&str, Latency, f64)], samples: usize, seconds: u64) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!("Machine: {cores} cores, {cpu}. Server: release build, POOL_SIZE = cores.");
    println!(
        "Latency: {samples} sequential requests on one keep-alive connection (after 200 warm-up)."
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
