//! HTTP benchmark: warm calls of a trivial function through the real server
//! (`"none"` and `"isolate"`), next to a bare hyper handler that returns a
//! fixed JSON body (the floor), all measured in the same run with the same
//! client over keep-alive connections.
//!
//! Run: `cargo bench --bench http` (env `BENCH_SECONDS` sets the length of
//! each throughput run, default 3; `BENCH_REQUESTS` the number of sequential
//! latency samples, default 2000).

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
    });
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
