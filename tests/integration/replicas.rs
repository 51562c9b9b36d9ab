//! Several replicas on one PostgreSQL (`DATABASE_URL`): a real PostgreSQL
//! server started by the test (Debian's, as the `postgres` user, on a
//! loopback port) and real `isoexec` replicas. Where PostgreSQL is not
//! installed these tests say so and pass; with `ISOEXEC_REQUIRE_POSTGRES`
//! set (as `.ci/run` sets it) that is a failure instead.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::pg::Postgres;
use crate::support::Server;

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
    assert_eq!(r1.get("/ready").await.status, 200);
    pg.stop();
    let ready = r1.get("/ready").await;
    assert_eq!(
        ready.status,
        503,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert_eq!(ready.json()["store"], "unavailable");
    assert_eq!(r1.get("/health").await.status, 200, "liveness holds");
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
    assert_eq!(r1.get("/ready").await.status, 200);
}

/// A round-robin HTTP proxy over `backends` (the worst case for session
/// affinity): each request goes to the next backend, skipping one that
/// refuses the connection. Stops when dropped.
struct Proxy {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(backends: Vec<std::net::SocketAddr>) -> Proxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (backends, next) = (backends.clone(), next.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (backends, next) = (backends.clone(), next.clone());
                        async move {
                            let (parts, body) = hyper::Request::into_parts(req);
                            let body = http_body_util::BodyExt::collect(body).await?.to_bytes();
                            for _ in 0..backends.len() {
                                let i = next.fetch_add(1, Ordering::Relaxed) % backends.len();
                                let Ok(out) = tokio::net::TcpStream::connect(backends[i]).await
                                else {
                                    continue;
                                };
                                let (mut sender, conn) = hyper::client::conn::http1::handshake(
                                    hyper_util::rt::TokioIo::new(out),
                                )
                                .await?;
                                tokio::spawn(conn);
                                let mut forwarded = hyper::Request::builder()
                                    .method(parts.method.clone())
                                    .uri(parts.uri.clone());
                                for (k, v) in &parts.headers {
                                    forwarded = forwarded.header(k, v);
                                }
                                let forwarded = forwarded
                                    .body(http_body_util::Full::new(body.clone()))
                                    .unwrap();
                                let reply = sender.send_request(forwarded).await?;
                                let (rparts, rbody) = reply.into_parts();
                                let rbody =
                                    http_body_util::BodyExt::collect(rbody).await?.to_bytes();
                                return Ok::<_, hyper::Error>(hyper::Response::from_parts(
                                    rparts,
                                    http_body_util::Full::new(rbody),
                                ));
                            }
                            let mut none = hyper::Response::new(http_body_util::Full::new(
                                Bytes::from_static(b"no backend"),
                            ));
                            *none.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                            Ok(none)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { addr, task }
    }

    /// Sends `body` (JSON, or nothing) with `method` to `path`.
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let bytes = body.map_or_else(Vec::new, |b| serde_json::to_vec(b).unwrap());
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "proxy")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from(bytes)))
            .unwrap();
        let reply = sender.send_request(req).await.unwrap();
        let status = reply.status().as_u16();
        let body = http_body_util::BodyExt::collect(reply.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// As `send`, trying again while the answer is a 503 (the session's
    /// replica is gone and its lease not yet out), for at most `limit`.
    async fn send_until_served(
        &self,
        limit: Duration,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let until = Instant::now() + limit;
        loop {
            let (status, reply) = self.send(method, path, body).await;
            if status != 503 || Instant::now() > until {
                return (status, reply);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_session_is_served_through_any_replica_and_outlives_its_owner() {
    let Some(pg) = Postgres::start() else { return };
    let mut r = [
        replica(&pg, "r1", &[]),
        replica(&pg, "r2", &[]),
        replica(&pg, "r3", &[]),
    ];
    let proxy = Proxy::start(r.iter().map(|s| s.addr).collect()).await;

    // A notebook keeps its state whichever replica receives a cell.
    let (status, created) = proxy
        .send(
            "POST",
            "/api/v1/sessions",
            Some(&json!({"environment": "typescript", "mode": "notebook"})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let nb = created["session_id"].as_str().unwrap().to_string();
    let cell = |code: &str| json!({ "code": code });
    let path = format!("/api/v1/sessions/{nb}/execute");
    let (_, first) = proxy.send("POST", &path, Some(&cell("let x = 1"))).await;
    assert_eq!(first["status"], "completed", "{first}");
    for (code, want) in [("x + 1", 2), ("x += 10; x", 11), ("x * 2", 22)] {
        let (status, out) = proxy.send("POST", &path, Some(&cell(code))).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["result"], want, "{code}: {out}");
        assert_eq!(out["state_reset"], false);
    }
    let (status, info) = proxy
        .send("GET", &format!("/api/v1/sessions/{nb}"), None)
        .await;
    assert_eq!((status, info["mode"].as_str()), (200, Some("notebook")));
    let (_, listed) = proxy.send("GET", "/api/v1/sessions", None).await;
    assert!(
        listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["session_id"] == nb.as_str()),
        "{listed}"
    );

    // A script session's file, written through one replica.
    let (_, script) = proxy
        .send(
            "POST",
            "/api/v1/sessions",
            Some(&json!({"environment": "typescript"})),
        )
        .await;
    let sc = script["session_id"].as_str().unwrap().to_string();
    let spath = format!("/api/v1/sessions/{sc}/execute");
    let (_, lib) = proxy
        .send(
            "POST",
            &spath,
            Some(&json!({"code": "export const v = 21;", "filename": "lib.ts"})),
        )
        .await;
    assert_eq!(lib["status"], "completed", "{lib}");

    // The owners die; the next requests are adopted by a live replica.
    let owners = pg
        .query(&format!(
            "SELECT owner FROM sessions WHERE id IN ('{nb}', '{sc}')"
        ))
        .await;
    for row in owners {
        let name = row[0].clone().unwrap();
        let i: usize = name.trim_start_matches('r').parse::<usize>().unwrap() - 1;
        if r[i].is_running() {
            r[i].kill();
        }
    }
    let killed_at = Instant::now();
    let (status, after) = proxy
        .send_until_served(
            Duration::from_secs(15),
            "POST",
            &path,
            Some(&cell("typeof x")),
        )
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["state_reset"], true, "{after}");
    assert_eq!(after["result"], "undefined");
    assert!(killed_at.elapsed() < Duration::from_secs(15));
    let (status, used) = proxy
        .send_until_served(
            Duration::from_secs(15),
            "POST",
            &spath,
            Some(&json!({"code": "import { v } from './lib.ts';\nconsole.log(v * 2);"})),
        )
        .await;
    assert_eq!(status, 200, "{used}");
    assert_eq!(used["stdout"], "42\n", "{used}");
    // One owner each, a live one.
    let owners = pg
        .query(&format!(
            "SELECT count(DISTINCT owner), count(*) FROM sessions WHERE id IN ('{nb}', '{sc}')"
        ))
        .await;
    assert_eq!(owners[0][1].as_deref(), Some("2"));
}

#[tokio::test]
async fn a_replica_told_to_stop_finishes_its_job_and_claims_no_more() {
    let Some(pg) = Postgres::start() else { return };
    let mut r1 = replica(&pg, "r1", &[("POOL_SIZE", "1")]);
    let busy = "const t = Date.now(); while (Date.now() - t < 1500) {} console.log('a')";
    let a = r1
        .post(
            "/execute/code?wait=false",
            &json!({"lang": "js", "code": busy}),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = within(Duration::from_secs(20), async || {
        let rec = r1.get(&format!("/execute/jobs/{a}")).await.json();
        (rec["status"] == "running").then_some(())
    })
    .await;
    assert!(started.is_some(), "the first job never started");
    let b = r1
        .post(
            "/execute/code?wait=false",
            &json!({"lang": "js", "code": "console.log('b')"}),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    r1.terminate();
    let exited = r1.wait_exit(Duration::from_secs(30));
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    let rows = pg
        .query(&format!(
            "SELECT id, status, coalesce(claimed_by, '-') FROM jobs WHERE id IN ('{a}', '{b}') \
             ORDER BY seq"
        ))
        .await;
    // The running job finished on r1; the queued one was left for others.
    assert_eq!(rows[0][1].as_deref(), Some("done"), "{rows:?}");
    assert_eq!(rows[0][2].as_deref(), Some("r1"));
    assert_eq!(rows[1][1].as_deref(), Some("queued"), "{rows:?}");
    let r2 = replica(&pg, "r2", &[]);
    let rec = within(Duration::from_secs(20), async || {
        let rec = r2.get(&format!("/execute/jobs/{b}")).await.json();
        (rec["status"] == "done").then_some(rec)
    })
    .await
    .expect("the queued job never ran on the other replica");
    assert_eq!(rec["output"], "b\n");
    let by = pg
        .query(&format!("SELECT claimed_by FROM jobs WHERE id = '{b}'"))
        .await;
    assert_eq!(by[0][0].as_deref(), Some("r2"));
}

/// A TCP relay to `target` that can be cut (every connection dropped, new
/// ones refused) and restored: a replica's own link to the database.
struct Link {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    async fn start(target: u16) -> Link {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::Relaxed) {
                    continue;
                }
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let watch = async {
                        while !flag.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        () = watch => {}
                    }
                });
            }
        });
        Link { port, cut, task }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::Relaxed);
    }
}

// Two workers: the relay runs while a replica starts (which blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_out_of_touch_with_the_store_gives_its_sessions_up() {
    let Some(pg) = Postgres::start() else { return };
    let link = Link::start(pg.port).await;
    let through_link = format!("postgres://isoexec@127.0.0.1:{}/postgres", link.port);
    let a = replica(&pg, "ra", &[("DATABASE_URL", through_link.as_str())]);
    let b = replica(&pg, "rb", &[]);
    let created = a
        .post(
            "/api/v1/sessions",
            &json!({"environment": "typescript", "mode": "notebook"}),
        )
        .await
        .json();
    let id = created["session_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/sessions/{id}/execute");
    let first = a.post(&path, &json!({"code": "let y = 5"})).await.json();
    assert_eq!(first["status"], "completed", "{first}");
    // Served through b, forwarded to a: the state is a's.
    let via_b = b.post(&path, &json!({"code": "y"})).await.json();
    assert_eq!(via_b["result"], 5, "{via_b}");

    // a loses the database: past its lease it acts on the session no more,
    // and b adopts it.
    link.set_cut(true);
    let refused = within(Duration::from_secs(15), async || {
        let r = a.post(&path, &json!({"code": "y"})).await;
        (r.status == 503).then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "a went on serving a session it may have lost"
    );
    let adopted = within(Duration::from_secs(15), async || {
        let r = b.post(&path, &json!({"code": "typeof y"})).await;
        (r.status == 200).then(|| r.json())
    })
    .await
    .expect("b never adopted the session");
    assert_eq!(adopted["state_reset"], true, "{adopted}");
    let next = b.post(&path, &json!({"code": "let y = 7; y"})).await.json();
    assert_eq!(next["result"], 7);

    // Back in touch, a ends its copy; the session stays b's, whoever asks.
    link.set_cut(false);
    let ended = within(Duration::from_secs(20), async || {
        let r = a.post(&path, &json!({"code": "y"})).await;
        (r.status == 200).then(|| r.json())
    })
    .await
    .expect("a never came back");
    assert_eq!(ended["result"], 7, "a answered from its own copy: {ended}");
    let owner = pg
        .query(&format!("SELECT owner FROM sessions WHERE id = '{id}'"))
        .await;
    assert_eq!(owner[0][0].as_deref(), Some("rb"));
}
