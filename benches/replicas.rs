//! Replicas benchmark: what the shared store costs, in one run against a
//! real PostgreSQL started here (Debian's, loopback, `fsync=off`).
//!
//! - `/execute/code` with no record (`/execute` of a saved file), with its
//!   record in SQLite, and with its record in PostgreSQL;
//! - a notebook cell sent to the replica that holds the session, and the
//!   same cell sent to another replica, which forwards it;
//! - how fast two replicas drain a queue of trivial `wait=false` jobs
//!   (claims and completed records per second).
//!
//! Run: `cargo bench --bench replicas` (env `BENCH_REQUESTS` sets the
//! sequential latency samples, default 1000; `BENCH_QUEUED` the jobs
//! drained, default 1000).

mod common;

#[path = "../tests/pg.rs"]
mod pg;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;

use common::{Spawned, check, client_runtime, env_num, latency, machine, send};
use pg::Postgres;

const PROGRAM: &str = "console.log(JSON.stringify({ ok: true }));";

fn server(dir: &std::path::Path, name: &str, database: Option<&str>) -> Spawned {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
    cmd.env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("LOG_LEVEL", "error")
        .env("QUEUE_SIZE", "100000")
        .env("WORKSPACE_DIR", dir.join(name).join("ws"))
        .env("DATA_DIR", dir.join(name).join("data"))
        .env("REPLICA_ID", name);
    if let Some(url) = database {
        cmd.env("DATABASE_URL", url);
    }
    Spawned::start(cmd, common::ISOEXEC_LISTENING)
}

fn main() {
    let samples: usize = env_num("BENCH_REQUESTS", 1000);
    let queued: usize = env_num("BENCH_QUEUED", 1000);
    let Some(pg) = Postgres::start() else {
        eprintln!("no PostgreSQL here: nothing measured");
        return;
    };
    let dir = std::env::temp_dir().join(format!("isoexec-bench-replicas-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("local/ws")).expect("bench dir");
    std::fs::write(dir.join("local/ws/trivial.ts"), PROGRAM).expect("program");
    let url = pg.url();
    let rt = client_runtime();
    rt.block_on(async {
        let local = server(&dir, "local", None);
        let p1 = server(&dir, "p1", Some(&url));
        let p2 = server(&dir, "p2", Some(&url));
        let execute = Bytes::from(r#"{"codeId":"trivial"}"#);
        let job = Bytes::from(serde_json::json!({"lang": "js", "code": PROGRAM}).to_string());
        let mut rows = Vec::new();
        for (name, addr, path, body) in [
            ("/execute (saved file, no record)", local.addr, "/execute", &execute),
            ("/execute/code, SQLite record", local.addr, "/execute/code", &job),
            ("/execute/code, PostgreSQL record", p1.addr, "/execute/code", &job),
        ] {
            check(addr, path, body).await;
            rows.push((name, latency(addr, path, body, samples).await));
        }

        // A notebook on p1; its cells sent to p1, and to p2 (forwarded).
        let mut c = common::connect(p1.addr).await;
        let create = Bytes::from(r#"{"environment":"typescript","mode":"notebook"}"#);
        let (_, created) = send(&mut c, p1.addr, "/api/v1/sessions", &create).await;
        let created: serde_json::Value = serde_json::from_slice(&created).expect("session");
        let id = created["session_id"].as_str().expect("an id").to_string();
        let path = format!("/api/v1/sessions/{id}/execute");
        let cell = Bytes::from(r#"{"code":"1 + 1"}"#);
        let direct = latency(p1.addr, &path, &cell, samples).await;
        let forwarded = latency(p2.addr, &path, &cell, samples).await;

        // A queue of trivial jobs, put in at once, drained by p1 and p2.
        pg.query(&format!(
            "INSERT INTO jobs (id, lang, code, timeout_ms, status, created_at_ms) \
             SELECT 'bench-' || g, 'js', $${PROGRAM}$$, 5000, 'queued', 0 \
             FROM generate_series(1, {queued}) g; NOTIFY isoexec_jobs"
        ))
        .await;
        let started = Instant::now();
        let until = started + Duration::from_secs(300);
        loop {
            let left = pg
                .query("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
                .await;
            if left[0][0].as_deref() == Some("0") || Instant::now() > until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drained = started.elapsed();
        let spread = pg
            .query(
                "SELECT claimed_by, count(*) FROM jobs WHERE id LIKE 'bench-%' \
                 AND status = 'done' AND attempts = 1 GROUP BY claimed_by ORDER BY claimed_by",
            )
            .await;

        println!("{}", machine());
        println!(
            "PostgreSQL at 127.0.0.1 (fsync=off); median and p99 of {samples} sequential calls on one keep-alive connection"
        );
        println!();
        println!("| operation | median | p99 | over the first row |");
        println!("|---|---:|---:|---:|");
        let base = rows[0].1.median_us;
        for (name, lat) in &rows {
            println!(
                "| {name} | {:.0} µs | {:.0} µs | +{:.0} µs |",
                lat.median_us,
                lat.p99_us,
                lat.median_us - base
            );
        }
        println!(
            "| notebook cell, to the replica holding the session | {:.0} µs | {:.0} µs | |",
            direct.median_us, direct.p99_us
        );
        println!(
            "| notebook cell, to another replica (forwarded) | {:.0} µs | {:.0} µs | +{:.0} µs over direct |",
            forwarded.median_us,
            forwarded.p99_us,
            forwarded.median_us - direct.median_us
        );
        println!();
        println!(
            "{queued} queued trivial jobs drained by two replicas (POOL_SIZE default) in {:.2} s: {:.0} jobs/s (each a claim, a run and a completed record); per replica: {}",
            drained.as_secs_f64(),
            queued as f64 / drained.as_secs_f64(),
            spread
                .iter()
                .map(|r| format!(
                    "{} {}",
                    r[0].as_deref().unwrap_or("-"),
                    r[1].as_deref().unwrap_or("0")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        drop((local, p1, p2));
    });
    let _ = std::fs::remove_dir_all(&dir);
}
