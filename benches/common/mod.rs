//! Helpers shared by the benchmarks: servers started as child processes,
//! keep-alive HTTP/1.1 clients (hyper's, for calls the benchmarks check; a
//! lean one for the loops that measure), latency and throughput loops, and
//! the machine description printed above each table.

#![allow(dead_code, reason = "each benchmark uses a different subset")]

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

#[path = "../../tests/spawn.rs"]
mod spawn;
pub use spawn::ISOEXEC_LISTENING;

pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A server process started for the benchmark, killed on drop.
pub struct Spawned {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Spawned {
    pub fn isoexec() -> Spawned {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
        cmd.env("PORT", "0").env("LOG_LEVEL", "error");
        Spawned::start(cmd, ISOEXEC_LISTENING)
    }

    pub fn start(cmd: Command, prefix: &str) -> Spawned {
        let (child, addr) = spawn::spawn_listening(cmd, prefix);
        Spawned { child, addr }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    sender
}

pub async fn send(
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

pub async fn check(addr: SocketAddr, path: &str, body: &Bytes) {
    let mut c = connect(addr).await;
    let (status, bytes) = send(&mut c, addr, path, body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
}

/// A keep-alive HTTP/1.1 connection for the measuring loops, spoken as a
/// load generator such as wrk speaks it: the request is written in one
/// piece and the answer read by its `Content-Length` (or its chunks), with
/// no HTTP library in between. The client shares the cores with the server
/// it measures, so what it spends per request is taken from the server's
/// throughput — more from a server that uses both cores than from one that
/// uses one.
pub struct RawConn {
    stream: TcpStream,
    addr: SocketAddr,
    request: Vec<u8>,
    answer: Vec<u8>,
}

impl RawConn {
    pub async fn open(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            addr,
            request: Vec::with_capacity(64 * 1024),
            answer: Vec::with_capacity(64 * 1024),
        }
    }

    /// POSTs `body` (JSON) to `path`; the answer's status and whole text
    /// (head and body), or the error that ended the connection.
    pub async fn post(&mut self, path: &str, body: &[u8]) -> std::io::Result<(u16, &[u8])> {
        use std::io::Write;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.request.clear();
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.addr,
            body.len()
        )?;
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request).await?;
        self.answer.clear();
        loop {
            if let Some(end) = answer_end(&self.answer) {
                assert_eq!(end, self.answer.len(), "more came than one answer");
                let status = std::str::from_utf8(self.answer.get(9..12).unwrap_or_default())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return Ok((status, &self.answer));
            }
            if self.stream.read_buf(&mut self.answer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// [`RawConn::post`] that must answer 200.
    pub async fn post_ok(&mut self, path: &str, body: &[u8]) {
        let (status, answer) = self.post(path, body).await.expect("request");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(answer));
    }
}

/// Where the HTTP/1.1 answer at the start of `buf` ends, once it is all
/// there.
fn answer_end(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&buf[..head]).expect("answer head");
    let mut length = 0;
    let mut chunked = false;
    for (name, value) in text.split("\r\n").skip(1).filter_map(|l| l.split_once(':')) {
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().expect("content-length");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    if !chunked {
        return (buf.len() >= head + length).then_some(head + length);
    }
    // Chunks: a hex size line, the data, CRLF; then size 0, trailers and
    // an empty line.
    let line_end = |at: usize| -> Option<usize> {
        buf.get(at..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|n| at + n)
    };
    let mut at = head;
    loop {
        let end = line_end(at)?;
        let size = std::str::from_utf8(&buf[at..end]).expect("chunk size");
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        at = end + 2;
        if size == 0 {
            loop {
                let end = line_end(at)?;
                if end == at {
                    return Some(at + 2);
                }
                at = end + 2;
            }
        }
        at += size + 2;
        if buf.len() < at {
            return None;
        }
    }
}

#[derive(Clone, Copy)]
pub struct Latency {
    pub median_us: f64,
    pub p99_us: f64,
}

impl Latency {
    /// Median and p99 of samples in microseconds.
    pub fn of(mut us: Vec<f64>) -> Latency {
        us.sort_by(|a, b| a.total_cmp(b));
        Latency {
            median_us: percentile(&us, 0.50),
            p99_us: percentile(&us, 0.99),
        }
    }
}

/// Makes the body of each request (a fixed one, or a new one per call).
pub type BodyMaker = Arc<dyn Fn() -> Bytes + Send + Sync>;

/// A maker that sends `body` every time.
pub fn fixed(body: &Bytes) -> BodyMaker {
    let body = body.clone();
    Arc::new(move || body.clone())
}

/// Sequential requests on one keep-alive connection, after 200 warm-up
/// requests.
pub async fn latency(addr: SocketAddr, path: &str, body: &Bytes, samples: usize) -> Latency {
    latency_with(addr, path, &fixed(body), 200, samples).await
}

/// Sequential requests on one keep-alive connection, each with a body from
/// `make`, after `warmup` requests that are not counted.
pub async fn latency_with(
    addr: SocketAddr,
    path: &str,
    make: &BodyMaker,
    warmup: usize,
    samples: usize,
) -> Latency {
    let (path, make) = (path.to_string(), make.clone());
    on_client_thread(move || latency_loop(addr, path, make, warmup, samples)).await
}

async fn latency_loop(
    addr: SocketAddr,
    path: String,
    make: BodyMaker,
    warmup: usize,
    samples: usize,
) -> Latency {
    let mut c = RawConn::open(addr).await;
    let mut us = Vec::with_capacity(samples);
    for i in 0..warmup + samples {
        let body = make();
        let t = Instant::now();
        c.post_ok(&path, &body).await;
        if i >= warmup {
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Latency::of(us)
}

/// Sequential requests to several targets, taken in turns: `rounds` times,
/// `samples / rounds` requests to each target, each on its own keep-alive
/// connection, after 200 warm-up requests to each. Whatever the machine
/// does meanwhile (another tenant, a frequency change) falls on all targets
/// alike, so their differences hold better than from runs one after
/// another. Each turn takes the targets in another order (a fixed
/// shuffle): what a target leaves behind (a cold cache, a busy core) falls
/// on different ones each turn, not always on the one after it.
pub async fn latency_interleaved(
    targets: &[(SocketAddr, &str, Bytes)],
    rounds: usize,
    samples: usize,
) -> Vec<Latency> {
    latency_by_turn(targets, rounds, samples)
        .await
        .into_iter()
        .map(|(latency, _)| latency)
        .collect()
}

/// As [`latency_interleaved`], with each target's median in each turn too
/// (turn `k` of every target falls in the same stretch of time, so the
/// ratio of two targets' medians in a turn is little moved by what else
/// the machine did then).
pub async fn latency_by_turn(
    targets: &[(SocketAddr, &str, Bytes)],
    rounds: usize,
    samples: usize,
) -> Vec<(Latency, Vec<f64>)> {
    let targets: Vec<(SocketAddr, String, Bytes)> = targets
        .iter()
        .map(|(addr, path, body)| (*addr, path.to_string(), body.clone()))
        .collect();
    on_client_thread(move || interleaved_loop(targets, rounds, samples)).await
}

async fn interleaved_loop(
    targets: Vec<(SocketAddr, String, Bytes)>,
    rounds: usize,
    samples: usize,
) -> Vec<(Latency, Vec<f64>)> {
    let mut conns = Vec::with_capacity(targets.len());
    for (addr, path, body) in &targets {
        let mut c = RawConn::open(*addr).await;
        for _ in 0..200 {
            c.post_ok(path, body).await;
        }
        conns.push(c);
    }
    let rounds = rounds.max(1);
    let per_round = samples.div_ceil(rounds);
    let mut us = vec![Vec::with_capacity(per_round * rounds); targets.len()];
    let mut turn_medians = vec![Vec::with_capacity(rounds); targets.len()];
    let mut order: Vec<usize> = (0..targets.len()).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..rounds {
        // Fisher–Yates with a small xorshift: the same orders every run.
        for k in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(k, (seed % (k as u64 + 1)) as usize);
        }
        for &i in &order {
            let (addr, path, body) = &targets[i];
            // A server may close a connection idle for a few seconds
            // (Node's default is 5 s) while the other targets take their
            // turns: each turn starts with an untimed request, on a new
            // connection if the old one was closed.
            if conns[i].post(path, body).await.is_err() {
                conns[i] = RawConn::open(*addr).await;
                conns[i].post_ok(path, body).await;
            }
            let from = us[i].len();
            for _ in 0..per_round {
                let t = Instant::now();
                conns[i].post_ok(path, body).await;
                us[i].push(t.elapsed().as_secs_f64() * 1e6);
            }
            turn_medians[i].push(Latency::of(us[i][from..].to_vec()).median_us);
        }
    }
    us.into_iter().map(Latency::of).zip(turn_medians).collect()
}

/// Runs the future `make` gives on a thread of its own, in a
/// single-threaded runtime: a timed request's answer then wakes the thread
/// that waits for it, not a runtime worker that must wake it in turn. The
/// thread starts at once; the returned future waits for its result.
fn on_client_thread<F, Fut, T>(make: F) -> impl std::future::Future<Output = T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let thread = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime")
            .block_on(make())
    });
    async move { thread.await.expect("client thread") }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `connections` keep-alive connections sending back to back for `length`,
/// as wrk sends them: two client threads, each driving its share of the
/// connections from one event loop of its own ([`RawConn`]). Every answer
/// must be a 200.
pub async fn throughput(
    addr: SocketAddr,
    path: &str,
    body: &Bytes,
    connections: usize,
    length: Duration,
) -> f64 {
    throughput_with(addr, path, &fixed(body), connections, length).await
}

/// As [`throughput`], each request with a body from `make`.
pub async fn throughput_with(
    addr: SocketAddr,
    path: &str,
    make: &BodyMaker,
    connections: usize,
    length: Duration,
) -> f64 {
    const CLIENT_THREADS: usize = 2;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads = connections.clamp(1, CLIENT_THREADS);
    let start = Instant::now();
    let clients: Vec<_> = (0..threads)
        .map(|t| {
            let mine = (t..connections).step_by(threads).count();
            let (done, stop, make, path) =
                (done.clone(), stop.clone(), make.clone(), path.to_string());
            on_client_thread(move || async move {
                let conns: Vec<_> = (0..mine)
                    .map(|_| {
                        let (done, stop, make, path) =
                            (done.clone(), stop.clone(), make.clone(), path.clone());
                        tokio::spawn(async move {
                            let mut c = RawConn::open(addr).await;
                            while !stop.load(Ordering::Relaxed) {
                                c.post_ok(&path, &make()).await;
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                for conn in conns {
                    conn.await.expect("client connection");
                }
            })
        })
        .collect();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let count = done.load(Ordering::Relaxed);
    for client in clients {
        client.await;
    }
    count as f64 / elapsed
}

/// A `deno` executable: `DENO_BIN`, else the first `deno` on the `PATH`.
pub fn find_deno() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("DENO_BIN") {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("deno"))
        .find(|p| p.is_file())
}

/// Wall time of `runs` runs of a command (after one warm-up run); `None`
/// if a run fails to start or exits with a code not in `ok_codes`.
pub fn child_latency(
    mut make: impl FnMut() -> Command,
    runs: usize,
    ok_codes: &[i32],
) -> Option<Latency> {
    let ok = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.code().is_some_and(|c| ok_codes.contains(&c)))
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
    Some(Latency::of(us))
}

/// The multi-threaded client runtime every benchmark drives its load from.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// "N cores, CPU model" of this machine.
pub fn machine() -> String {
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
    format!("{cores} cores, {cpu}")
}

/// Resident set size of a process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Set in the environment of the floor server (the benchmark's own binary).
const FLOOR_ENV: &str = "ISOEXEC_BENCH_FLOOR";
pub const FLOOR_BODY: &str = r#"{"result":{"ok":true},"logs":[]}"#;

/// Serves the floor when this process was started as it; call first in a
/// benchmark's `main` and return when it answers true.
pub fn serve_floor_if_asked() -> bool {
    match std::env::var(FLOOR_ENV).as_deref() {
        Ok("per-connection") => run_floor_server(true),
        Ok(_) => run_floor_server(false),
        Err(_) => return false,
    }
    true
}

/// The floor server: this benchmark's own binary, serving fixed bytes.
pub fn spawn_floor() -> Spawned {
    spawn_floor_as("1")
}

/// The floor with each connection on a thread of its own, as isoexec's
/// connection threads serve a connection alone on one when they can.
pub fn spawn_floor_per_connection() -> Spawned {
    spawn_floor_as("per-connection")
}

fn spawn_floor_as(kind: &str) -> Spawned {
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.env(FLOOR_ENV, kind);
    Spawned::start(cmd, "floor listening on http://")
}

/// The floor: the same hyper stack with a handler that only returns bytes,
/// its connections on the runtime's workers or each on a thread of its own.
fn run_floor_server(per_connection: bool) {
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
            let serve = |stream: tokio::net::TcpStream| async move {
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
                        Ok::<_, std::convert::Infallible>(r)
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            };
            if per_connection {
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async move {
                        if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                            serve(stream).await;
                        }
                    });
                });
            } else {
                tokio::spawn(serve(stream));
            }
        }
    });
}
