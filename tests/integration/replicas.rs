//! Several replicas on one PostgreSQL (`DATABASE_URL`): a real PostgreSQL
//! server started by the test (Debian's, as the `postgres` user, on a
//! loopback port) and real `isoexec` replicas. Where PostgreSQL is not
//! installed these tests say so and pass; with `ISOEXEC_REQUIRE_POSTGRES`
//! set (as `.ci/run` sets it) that is a failure instead.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::{Server, TempDir};

/// A PostgreSQL server of the test's own, stopped (immediately) when dropped.
pub struct Postgres {
    bin: PathBuf,
    dir: TempDir,
    pub port: u16,
}

fn as_postgres(args: &[&str]) -> Command {
    // initdb and pg_ctl refuse to run as root.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]);
        c.args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    cmd.stdout(std::process::Stdio::null());
    cmd
}

impl Postgres {
    /// Starts a fresh server, or says why it cannot (`None`).
    pub fn start() -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|dirs| {
                dirs.flatten()
                    .map(|d| d.path().join("bin"))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            });
        let Some(bin) = bin else {
            let why = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)";
            assert!(
                std::env::var_os("ISOEXEC_REQUIRE_POSTGRES").is_none(),
                "{why}, and ISOEXEC_REQUIRE_POSTGRES is set"
            );
            eprintln!("skipped: {why}; install Debian's postgresql to run it");
            return None;
        };
        let dir = TempDir::new("pg");
        let chown = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir.0)
            .status();
        if unsafe { libc::geteuid() } == 0 {
            assert!(
                chown.is_ok_and(|s| s.success()),
                "chown of the data directory"
            );
        }
        let data = dir.0.join("data");
        let path = |name: &str| bin.join(name).display().to_string();
        let status = as_postgres(&[
            &path("initdb"),
            "-D",
            &data.display().to_string(),
            "-A",
            "trust",
            "-U",
            "isoexec",
            "--no-sync",
        ])
        .status()
        .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = Postgres { bin, dir, port };
        pg.pg_ctl_start();
        Some(pg)
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.0.display()
        );
        let status = as_postgres(&[
            &self.bin.join("pg_ctl").display().to_string(),
            "-D",
            &self.dir.0.join("data").display().to_string(),
            "-l",
            &self.dir.0.join("log").display().to_string(),
            "-w",
            "-o",
            &options,
            "start",
        ])
        .status()
        .expect("run pg_ctl");
        assert!(status.success(), "pg_ctl start failed");
    }

    /// Stops the server at once (as a crash would).
    pub fn stop(&self) {
        let _ = as_postgres(&[
            &self.bin.join("pg_ctl").display().to_string(),
            "-D",
            &self.dir.0.join("data").display().to_string(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .status();
    }

    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    pub fn url(&self) -> String {
        format!("postgres://isoexec@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` and returns its rows, each a list of text values.
    pub async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test's PostgreSQL");
        let driver = tokio::spawn(connection);
        let mut out = Vec::new();
        for message in client.simple_query(sql).await.expect("query") {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                out.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(String::from))
                        .collect(),
                );
            }
        }
        drop(client);
        let _ = driver.await;
        out
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A replica of `pg`'s store named `name`.
fn replica(pg: &Postgres, name: &str, extra: &[(&str, &str)]) -> Server {
    let url = pg.url();
    let mut env = vec![
        ("DATABASE_URL", url.as_str()),
        ("REPLICA_ID", name),
        ("LEASE_MS", "2000"),
        ("HEARTBEAT_MS", "250"),
        ("POOL_SIZE", "2"),
    ];
    env.extend_from_slice(extra);
    Server::start_with(&env)
}

/// Polls `f` until it gives `Some`, for at most `limit`.
async fn within<T>(limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn saved_code_saved_on_one_replica_runs_on_every_other() {
    let Some(pg) = Postgres::start() else { return };
    let r = [
        replica(&pg, "r1", &[]),
        replica(&pg, "r2", &[]),
        replica(&pg, "r3", &[]),
    ];
    let save = |i: usize, id: &str, code: &str| {
        let body = json!({"codeId": id, "code": code});
        let server = &r[i];
        async move {
            let reply = server.put("/workspace", &body).await;
            assert_eq!(
                reply.status,
                200,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
        }
    };
    save(0, "lib", "export const n: number = 41;").await;
    save(
        1,
        "main",
        "import { n } from './lib.ts';\nconsole.log(JSON.stringify({ v: n + 1 }));",
    )
    .await;
    // The import between saved files resolves on a replica that saved
    // neither.
    for server in &r {
        let out = server.post("/execute", &json!({"codeId": "main"})).await;
        assert_eq!(out.status, 200, "{}", String::from_utf8_lossy(&out.body));
        assert_eq!(out.json()["result"], json!({"v": 42}));
    }
    // A new save anywhere is what the next call everywhere runs.
    save(2, "lib", "export const n: number = 1;").await;
    for server in &r {
        let out = server.post("/execute", &json!({"codeId": "main"})).await;
        assert_eq!(out.json()["result"], json!({"v": 2}));
    }
    let listings: BTreeSet<String> = {
        let mut all = BTreeSet::new();
        for server in &r {
            let list = server.get("/workspace").await.json();
            let ids: Vec<Value> = list["result"]["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["codeId"].clone())
                .collect();
            all.insert(serde_json::to_string(&ids).unwrap());
        }
        all
    };
    assert_eq!(
        listings.into_iter().collect::<Vec<_>>(),
        vec![r#"["lib","main"]"#.to_string()]
    );
    // A delete on one replica is seen by the others.
    let gone = r[1]
        .request("DELETE", "/workspace/lib", &[], Bytes::new())
        .await;
    assert_eq!(gone.status, 200);
    for server in &r {
        assert_eq!(server.get("/workspace/lib").await.status, 404);
        let out = server.post("/execute", &json!({"codeId": "main"})).await;
        assert_ne!(out.status, 200, "main still imported a deleted file");
    }
    // Every version is a row; the head names the last.
    let versions = pg
        .query("SELECT count(*) FROM workspace_files WHERE code_id = 'lib'")
        .await;
    assert_eq!(versions[0][0].as_deref(), Some("2"));
}

#[tokio::test]
async fn queued_jobs_run_once_each_spread_over_the_replicas() {
    let Some(pg) = Postgres::start() else { return };
    let r = [
        replica(&pg, "r1", &[]),
        replica(&pg, "r2", &[]),
        replica(&pg, "r3", &[]),
    ];
    let mut ids = Vec::new();
    for i in 0..200 {
        let body = json!({"lang": "js", "code": format!("console.log({i})")});
        let reply = r[i % 3].post("/execute/code?wait=false", &body).await;
        assert_eq!(
            reply.status,
            202,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        ids.push((i, reply.json()["id"].as_str().unwrap().to_string()));
    }
    let done = within(Duration::from_secs(60), async || {
        let rows = pg
            .query("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
            .await;
        (rows[0][0].as_deref() == Some("0")).then_some(())
    })
    .await;
    assert!(done.is_some(), "the queue did not drain within 60 s");
    // Each ran once, on at least two replicas.
    let attempts = pg
        .query("SELECT count(*) FILTER (WHERE attempts = 1), count(DISTINCT claimed_by) FROM jobs")
        .await;
    assert_eq!(
        attempts[0][0].as_deref(),
        Some("200"),
        "a job was claimed twice or never"
    );
    let replicas: u32 = attempts[0][1].as_deref().unwrap().parse().unwrap();
    assert!(replicas >= 2, "all jobs ran on one replica");
    // Every replica answers with the same record.
    for (i, id) in ids.iter().step_by(17) {
        let mut seen = BTreeSet::new();
        for server in &r {
            let record = server.get(&format!("/execute/jobs/{id}")).await.json();
            assert_eq!(record["status"], "done");
            assert_eq!(record["output"], format!("{i}\n"));
            seen.insert(record.to_string());
        }
        assert_eq!(seen.len(), 1, "replicas disagree on {id}");
    }
}

#[tokio::test]
async fn a_lost_replica_s_job_ends_as_an_error_and_the_queue_runs_elsewhere() {
    let Some(pg) = Postgres::start() else { return };
    // One claim at a time on r1: the loop holds it, the rest stays queued.
    let mut r1 = replica(&pg, "r1", &[("POOL_SIZE", "1")]);
    let looping = r1
        .post(
            "/execute/code?wait=false",
            &json!({"lang": "js", "code": "while (true) {}", "timeout": 120000}),
        )
        .await;
    assert_eq!(looping.status, 202);
    let id = looping.json()["id"].as_str().unwrap().to_string();
    let running = within(Duration::from_secs(20), async || {
        let rec = r1.get(&format!("/execute/jobs/{id}")).await.json();
        (rec["status"] == "running").then_some(())
    })
    .await;
    assert!(running.is_some(), "the loop never started");
    let mut queued = Vec::new();
    for i in 0..3 {
        let reply = r1
            .post(
                "/execute/code?wait=false",
                &json!({"lang": "js", "code": format!("console.log('after {i}')")}),
            )
            .await;
        queued.push(reply.json()["id"].as_str().unwrap().to_string());
    }
    r1.kill();
    let killed_at = Instant::now();
    let r2 = replica(&pg, "r2", &[]);
    let lost = within(Duration::from_secs(15), async || {
        let rec = r2.get(&format!("/execute/jobs/{id}")).await.json();
        (rec["status"] == "error").then_some(rec)
    })
    .await
    .expect("the lost replica's job never ended");
    assert_eq!(lost["error"], "interrupted: replica lost");
    // Within the lease (2 s) and a few heartbeats, start-up included.
    assert!(killed_at.elapsed() < Duration::from_secs(15));
    for (i, q) in queued.iter().enumerate() {
        let rec = within(Duration::from_secs(20), async || {
            let rec = r2.get(&format!("/execute/jobs/{q}")).await.json();
            (rec["status"] == "done").then_some(rec)
        })
        .await
        .expect("a queued job of the lost replica never ran");
        assert_eq!(rec["output"], format!("after {i}\n"));
    }
}

#[tokio::test]
async fn with_the_database_down_stored_routes_answer_503_and_recover() {
    let Some(pg) = Postgres::start() else { return };
    let r1 = replica(&pg, "r1", &[]);
    pg.stop();
    let job = r1
        .post(
            "/execute/code",
            &json!({"lang": "js", "code": "console.log(1)"}),
        )
        .await;
    assert_eq!(job.status, 503, "{}", String::from_utf8_lossy(&job.body));
    assert_eq!(job.json()["kind"], "storage_unavailable");
    assert!(job.header("retry-after").is_some());
    let saved = r1
        .put(
            "/workspace",
            &json!({"codeId": "a", "code": "console.log(1)"}),
        )
        .await;
    assert_eq!(
        saved.status,
        503,
        "{}",
        String::from_utf8_lossy(&saved.body)
    );
    assert!(saved.header("retry-after").is_some());
    // A function call needs no store.
    let call = r1
        .post(
            "/run",
            &json!({"script": "export const f = () => 7", "fn": "f"}),
        )
        .await;
    assert_eq!(call.json()["result"], 7);
    pg.restart();
    let back = within(Duration::from_secs(20), async || {
        let job = r1
            .post(
                "/execute/code",
                &json!({"lang": "js", "code": "console.log(2)"}),
            )
            .await;
        (job.status == 200).then_some(job.json())
    })
    .await
    .expect("the replica did not recover when the database came back");
    assert_eq!(back["output"], "2\n");
}
