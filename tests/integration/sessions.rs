//! The session API over real HTTP: the lifecycle a live-coding client
//! follows, script files that persist, notebooks whose cells build on each
//! other, and the limits around them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Reply, Server};

async fn create(s: &Server, environment: &str, mode: &str) -> String {
    let r = s
        .post(
            "/api/v1/sessions",
            &json!({"environment": environment, "mode": mode}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["environment"], environment);
    assert_eq!(j["mode"], mode);
    j["session_id"].as_str().unwrap().to_string()
}

async fn exec(s: &Server, id: &str, body: Value) -> Value {
    let r = s
        .post(&format!("/api/v1/sessions/{id}/execute"), &body)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn wait_ready(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let j = s.get(&format!("/api/v1/sessions/{id}")).await.json();
        if j["status"] == "ready" {
            return j;
        }
        assert!(Instant::now() < deadline, "never ready: {j}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_client_follows_the_lifecycle_in_every_environment_and_mode() {
    let s = Server::start();
    let envs = s.get("/api/v1/environments").await.json();
    assert_eq!(envs, json!(["typescript", "javascript", "node", "python"]));
    assert_eq!(
        s.get("/api/v1/health").await.json(),
        json!({"status": "ok"})
    );
    for env in ["typescript", "javascript", "node"] {
        for mode in ["script", "notebook"] {
            let id = create(&s, env, mode).await;
            let before = wait_ready(&s, &id).await;
            assert_eq!(before["container_id"], Value::Null);
            assert_eq!(before["last_execution"], Value::Null);
            for field in ["created_at", "expires_at"] {
                assert!(before[field].as_str().unwrap().ends_with('Z'), "{field}");
            }
            let code = if mode == "script" {
                "console.log(6 * 7); console.error('note');"
            } else {
                "console.log(6 * 7); console.error('note'); 40 + 2"
            };
            let r = exec(&s, &id, json!({"code": code})).await;
            assert_eq!(r["session_id"], id);
            assert_eq!(r["status"], "completed", "{env} {mode}: {r}");
            assert_eq!(r["stdout"], "42\n");
            assert_eq!(r["stderr"], "note\n");
            assert_eq!(r["exit_code"], 0);
            assert!(r["execution_time"].as_f64().unwrap() > 0.0);
            if mode == "notebook" {
                assert_eq!(r["result"], 42);
            }
            let after = s.get(&format!("/api/v1/sessions/{id}")).await.json();
            assert!(after["last_execution"].is_string());
            let list = s.get("/api/v1/sessions").await.json();
            assert!(
                list["sessions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["session_id"] == id)
            );
            let r = s
                .request("DELETE", &format!("/api/v1/sessions/{id}"), &[], "")
                .await;
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["status"], "stopped");
            // A deleted session reads `stopped` for a while (clients poll
            // for it), and runs nothing.
            let r = s.get(&format!("/api/v1/sessions/{id}")).await;
            assert_eq!(
                (r.status, r.json()["status"].clone()),
                (200, json!("stopped"))
            );
            let r = s
                .post(
                    &format!("/api/v1/sessions/{id}/execute"),
                    &json!({"code": "1"}),
                )
                .await;
            assert_eq!(r.status, 404);
            assert_eq!(r.json()["detail"], "Session not found");
        }
    }
    let r = s
        .post("/api/v1/sessions", &json!({"environment": "python-ml"}))
        .await;
    assert_eq!(r.status, 400);
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("typescript, javascript, node, python"),
        "{detail}"
    );
    assert!(detail.contains("numpy"), "{detail}");
    assert_eq!(r.json()["details"]["available"], envs);
}

#[tokio::test]
async fn script_files_persist_in_their_session_and_nowhere_else() {
    let s = Server::start();
    let a = create(&s, "typescript", "script").await;
    let b = create(&s, "typescript", "script").await;
    let r = exec(
        &s,
        &a,
        json!({"filename": "lib.ts", "code": "export const twice = (n: number): number => n * 2;"}),
    )
    .await;
    assert_eq!(r["status"], "completed");
    let r = exec(
        &s,
        &a,
        json!({"code": "import { twice } from './lib.ts';\nDeno.writeTextFileSync('note.txt', String(twice(21)));\nconsole.log(Deno.readTextFileSync('note.txt'));"}),
    )
    .await;
    assert_eq!(r["stdout"], "42\n", "{r}");
    // Session b sees none of a's files, by import or by path.
    let a_dir = a_dir_of(&s, &a, &b).await;
    let r = exec(
        &s,
        &b,
        json!({"code": "import { twice } from './lib.ts'; console.log(twice(1));"}),
    )
    .await;
    // The program failed: completed, exit code 1 (the session executor's
    // contract), its error on stderr.
    assert_eq!(
        (r["status"].as_str(), r["exit_code"].as_i64()),
        (Some("completed"), Some(1)),
        "{r}"
    );
    let r = exec(
        &s,
        &b,
        json!({"code": format!("console.log(Deno.readTextFileSync('{a_dir}/note.txt'));")}),
    )
    .await;
    assert_eq!(
        (r["status"].as_str(), r["exit_code"].as_i64()),
        (Some("completed"), Some(1)),
        "{r}"
    );
    assert!(
        r["stderr"].as_str().unwrap().contains("PermissionDenied"),
        "{r}"
    );
    // Nor anything outside its own directory.
    for code in [
        "Deno.writeTextFileSync('/tmp/escape.txt', 'x')",
        "Deno.readTextFileSync('../../jobs.db')",
    ] {
        let r = exec(&s, &b, json!({"code": code})).await;
        assert_eq!(r["exit_code"], 1, "{code}: {r}");
        assert!(
            r["stderr"].as_str().unwrap().contains("PermissionDenied"),
            "{code}: {r}"
        );
    }
    for bad in ["../x.ts", "/etc/x.ts", "x.rb"] {
        let r = s
            .post(
                &format!("/api/v1/sessions/{b}/execute"),
                &json!({"code": "1", "filename": bad}),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["detail"].is_string());
    }
}

/// The directory of session `a`, as session `b` learns it (a's own view of
/// its working directory).
/// Where the server keeps session `a`'s files (its output names them
/// `/session/…` instead).
async fn a_dir_of(s: &Server, a: &str, _b: &str) -> String {
    let r = exec(
        s,
        a,
        json!({"code": "console.log(new URL('.', import.meta.url).pathname)"}),
    )
    .await;
    assert_eq!(r["stdout"], "/session/\n", "{r}");
    let dir = s.data_dir().join("sessions").join(a);
    std::fs::canonicalize(&dir)
        .unwrap_or(dir)
        .display()
        .to_string()
}

#[tokio::test]
async fn notebook_cells_build_on_each_other_and_survive_timeouts_and_interrupts() {
    let s = Server::start();
    let id = create(&s, "typescript", "notebook").await;
    let cells = [
        (
            "interface P { x: number }\nconst p: P = { x: 20 };",
            json!(null),
        ),
        ("let total = p.x * 2;", json!(null)),
        ("total += await Promise.resolve(2);\ntotal", json!(42)),
        ("let total = 'again';\ntotal", json!("again")),
        (
            "({ list: [1, 2], ok: true })",
            json!({"list": [1, 2], "ok": true}),
        ),
        (
            "new Uint8Array([72, 105])",
            json!("data:text/plain;base64,SGk="),
        ),
        ("10n ** 20n", json!("100000000000000000000")),
    ];
    for (code, want) in cells {
        let r = exec(&s, &id, json!({"code": code})).await;
        assert_eq!(r["status"], "completed", "{code}: {r}");
        assert_eq!(r["result"], want, "{code}");
    }
    // A cell past its timeout stops; the state stays.
    let r = exec(
        &s,
        &id,
        json!({"code": "p.x = 21; while (true) {}", "timeout": 300}),
    )
    .await;
    assert_eq!(r["status"], "timeout");
    assert_eq!(r["state_reset"], false);
    assert_eq!(exec(&s, &id, json!({"code": "p.x"})).await["result"], 21);
    // An interrupt does the same.
    let (r, _) = tokio::join!(
        exec(
            &s,
            &id,
            json!({"code": "p.x = 22; for (;;) {}", "timeout": 60000})
        ),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let r = s
                .post(&format!("/api/v1/sessions/{id}/interrupt"), &json!({}))
                .await;
            assert_eq!(r.json()["interrupted"], true);
        }
    );
    assert_eq!(r["status"], "error");
    assert_eq!(r["interrupted"], true);
    assert_eq!(exec(&s, &id, json!({"code": "p.x"})).await["result"], 22);
    // An exception keeps the state too.
    let r = exec(&s, &id, json!({"code": "throw new RangeError('no')"})).await;
    assert_eq!(
        (r["status"].as_str(), r["exit_code"].as_i64()),
        (Some("completed"), Some(1)),
        "{r}"
    );
    assert!(r["stderr"].as_str().unwrap().contains("RangeError: no"));
    assert_eq!(
        exec(&s, &id, json!({"code": "p.x + 1"})).await["result"],
        23
    );
    // Deno.exit ends the cell with its code, and the state with it.
    let r = exec(&s, &id, json!({"code": "console.log('bye'); Deno.exit(3)"})).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["exit_code"], 3, "{r}");
    assert_eq!(r["stdout"], "bye\n", "{r}");
    assert_eq!(r["state_reset"], true, "{r}");
    let r = exec(&s, &id, json!({"code": "typeof p"})).await;
    assert_eq!(r["result"], "undefined", "{r}");
    assert_eq!(r["exit_code"], 0, "{r}");
}

#[tokio::test]
async fn a_memory_kill_resets_a_notebook_and_says_so() {
    let s = Server::start_with(&[("MEMORY_LIMIT_MB", "64")]);
    let id = create(&s, "javascript", "notebook").await;
    exec(&s, &id, json!({"code": "var kept = 'here'"})).await;
    let r = exec(
        &s,
        &id,
        json!({"code": "const a = []; while (true) a.push(new Array(1e6).fill(1));", "timeout": 30000}),
    )
    .await;
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["state_reset"], true);
    let r = exec(&s, &id, json!({"code": "typeof kept"})).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["result"], "undefined");
    assert_eq!(exec(&s, &id, json!({"code": "1 + 1"})).await["result"], 2);
}

#[tokio::test]
async fn idle_sessions_expire_and_at_the_cap_the_longest_idle_ends() {
    let s = Server::start_with(&[("SESSION_TTL", "1"), ("MAX_SESSIONS", "2")]);
    let a = create(&s, "typescript", "script").await;
    let dir = a_dir_of(&s, &a, &a).await;
    assert!(std::path::Path::new(&dir).exists());
    // The same client again: it holds its share of MAX_SESSIONS (one of
    // two), so its longest-idle session ends to make room, files and all.
    let b = create(&s, "javascript", "notebook").await;
    let evicted = s.get(&format!("/api/v1/sessions/{a}")).await.json();
    assert!(
        evicted["status"] == "stopping" || evicted["status"] == "stopped",
        "{evicted}"
    );
    let gone = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&dir).exists() {
        assert!(Instant::now() < gone, "the session's files stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The other expires after a second of idleness.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get(&format!("/api/v1/sessions/{b}")).await.json()["status"] != "stopped" {
        assert!(Instant::now() < deadline, "the session never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r: Reply = s
        .post("/api/v1/sessions", &json!({"environment": "node"}))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn deleting_a_session_mid_run_stops_it_and_removes_its_files() {
    let s = Server::start();
    for mode in ["script", "notebook"] {
        let id = create(&s, "javascript", mode).await;
        // A notebook cell has no module URL to learn the directory from.
        let dir = if mode == "script" {
            a_dir_of(&s, &id, &id).await
        } else {
            String::new()
        };
        let started = Instant::now();
        let (r, del) = tokio::join!(
            exec(
                &s,
                &id,
                json!({"code": "while (true) {}", "timeout": 60000})
            ),
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                s.request("DELETE", &format!("/api/v1/sessions/{id}"), &[], "")
                    .await
            }
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{mode}: the run was not stopped"
        );
        assert_eq!(del.status, 200);
        assert_eq!(del.json()["status"], "stopping", "{mode}");
        assert_eq!(r["status"], "error", "{mode}: {r}");
        // Clients poll until `stopped`: the ended session still answers
        // GET for a while, then runs nothing.
        let stopped = async {
            loop {
                let g = s.get(&format!("/api/v1/sessions/{id}")).await;
                assert_eq!(g.status, 200, "{mode}");
                if g.json()["status"] == "stopped" {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), stopped)
            .await
            .expect("never stopped");
        let again = s
            .post(
                &format!("/api/v1/sessions/{id}/execute"),
                &json!({"code": "1"}),
            )
            .await;
        assert_eq!(again.status, 404, "{mode}");
        if !dir.is_empty() {
            let gone = Instant::now() + Duration::from_secs(5);
            while std::path::Path::new(&dir).exists() {
                assert!(Instant::now() < gone, "{mode}: files stayed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn runs_in_a_session_go_in_arrival_order() {
    let s = Server::start();
    let id = create(&s, "javascript", "script").await;
    let mut runs = Vec::new();
    for i in 0..5 {
        let s = &s;
        let id = id.clone();
        runs.push(async move {
            tokio::time::sleep(Duration::from_millis(i * 40)).await;
            exec(
                s,
                &id,
                json!({"code": format!("await new Promise((r) => setTimeout(r, 100)); Deno.writeTextFileSync('order.txt', '{i}', {{ append: true }});")}),
            )
            .await
        });
    }
    for r in futures_join_all(runs).await {
        assert_eq!(r["status"], "completed", "{r}");
    }
    let r = exec(
        &s,
        &id,
        json!({"code": "console.log(Deno.readTextFileSync('order.txt'))"}),
    )
    .await;
    assert_eq!(r["stdout"], "01234\n");
}

/// Runs the futures together and returns their outputs in order.
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let mut pending: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    for r in results {
        out.extend(r);
    }
    out
}

#[tokio::test]
async fn twenty_sessions_run_at_once_while_one_is_stuck() {
    let s = Server::start();
    let mut ids = Vec::new();
    for i in 0..20 {
        let mode = if i % 2 == 0 { "notebook" } else { "script" };
        ids.push((create(&s, "typescript", mode).await, mode));
    }
    let stuck = ids[0].0.clone();
    let stuck_run = exec(
        &s,
        &stuck,
        json!({"code": "while (true) {}", "timeout": 8000}),
    );
    let others = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let mut runs = Vec::new();
        for (id, mode) in ids.iter().skip(1) {
            let code = if *mode == "notebook" {
                "21 * 2"
            } else {
                "console.log(21 * 2)"
            };
            runs.push(exec(&s, id, json!({"code": code})));
        }
        let replies = futures_join_all(runs).await;
        (started.elapsed(), replies)
    };
    let (stuck_reply, (took, replies)) = tokio::join!(stuck_run, others);
    assert_eq!(stuck_reply["status"], "timeout");
    for r in &replies {
        assert_eq!(r["status"], "completed", "{r}");
    }
    // Liveness only: the others did not wait for the stuck one's deadline.
    assert!(took < Duration::from_secs(6), "the others waited {took:?}");
}
