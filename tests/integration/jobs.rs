//! The code-job API over real HTTP, with its records in a real SQLite file.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Reply, Server, TempDir};

async fn submit(s: &Server, body: Value) -> Reply {
    s.post("/execute/code", &body).await
}

/// Polls a job until its status is final.
pub(crate) async fn finished(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.get(&format!("/execute/jobs/{id}")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let job = r.json();
        if !["queued", "running"].contains(&job["status"].as_str().unwrap_or("")) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn programs_run_in_every_language_with_their_output_and_exit_code() {
    let s = Server::start();
    for lang in [
        "js",
        "javascript",
        "node",
        "ts",
        "typescript",
        "TS",
        "JavaScript",
    ] {
        let r = submit(
            &s,
            json!({"lang": lang, "code": "const n = 6 * 7;\nconsole.log(n);"}),
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "{lang}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["output"], "42\n", "{lang}");
        assert_eq!(j["status"], "done");
        assert_eq!(j["exit_code"], 0);
        assert_eq!(j["lang"], lang.to_ascii_lowercase());
        for field in ["id", "created_at", "finished_at"] {
            assert!(j[field].is_string(), "{field}: {j}");
        }
        assert!(j["duration_ms"].is_u64());
    }
    // TypeScript types are stripped; stdout and stderr interleave in order.
    let j = submit(
        &s,
        json!({"lang": "ts", "code": "const a: number = 1;\nconsole.log('out', a);\nconsole.error('err');\nconsole.warn('warn');\nconsole.log('last');", "task_id": "t-order"}),
    )
    .await
    .json();
    assert_eq!(j["output"], "out 1\nerr\nwarn\nlast\n");
    assert_eq!(j["task_id"], "t-order");
    // The record has the same fields and the code.
    let r = s
        .get(&format!("/execute/jobs/{}", j["id"].as_str().unwrap()))
        .await;
    let record = r.json();
    assert_eq!(record["output"], j["output"]);
    assert!(
        record["code"]
            .as_str()
            .unwrap()
            .contains("console.error('err')")
    );
}

#[tokio::test]
async fn every_way_a_program_ends_has_its_status() {
    let s = Server::start_with(&[("MEMORY_LIMIT_MB", "64")]);
    let cases = [
        ("Deno.exit(3)", "done", json!(3)),
        (
            "console.log('a'); throw new Error('boom');",
            "done",
            json!(1),
        ),
        ("const = ;", "done", json!(1)),
        ("while (true) {}", "timeout", Value::Null),
        (
            "const a = []; while (true) a.push(new Array(1e6).fill(1));",
            "killed",
            Value::Null,
        ),
        (
            "await new Promise((r) => setTimeout(r, 10)); console.log('late');",
            "done",
            json!(0),
        ),
    ];
    for (code, status, exit) in cases {
        let r = submit(&s, json!({"lang": "js", "code": code, "timeout": 1000})).await;
        assert_eq!(
            r.status,
            200,
            "{code}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["status"], status, "{code}: {j}");
        assert_eq!(j["exit_code"], exit, "{code}: {j}");
    }
    let j = submit(
        &s,
        json!({"lang": "js", "code": "throw new TypeError('bad');"}),
    )
    .await
    .json();
    let output = j["output"].as_str().unwrap();
    // Printed as Node prints it: the program is CommonJS.
    assert!(
        output.starts_with("/workspace/job.js:1\nthrow new TypeError('bad');\n^\n\nTypeError: bad"),
        "{output}"
    );
    let j = submit(
        &s,
        json!({"lang": "js", "code": "const a = []; while (true) a.push(new Array(1e6).fill(1));"}),
    )
    .await
    .json();
    assert_eq!(j["error"], "memory_limit");
    // Output past the /execute caps is cut, and the record says so.
    let j = submit(
        &s,
        json!({"lang": "js", "code": "const s = 'x'.repeat(1 << 20); for (let i = 0; i < 12; i++) console.log(s);", "timeout": 30000}),
    )
    .await
    .json();
    assert_eq!(j["output_truncated"], true, "{}", j["status"]);
    assert!(j["output"].as_str().unwrap().len() <= 10 << 20);
}

#[tokio::test]
async fn stdin_is_read_as_a_deno_program_reads_it() {
    let s = Server::start();
    let cases = [
        (
            "const name = prompt('Name?');\nconst age = prompt('Age?');\nconsole.log(`${name} is ${age}`);",
            "ada\n36\n",
            "Name? \nAge? \nada is 36\n",
        ),
        (
            "const chunks = [];\nfor await (const c of Deno.stdin.readable) chunks.push(new TextDecoder().decode(c));\nconsole.log(chunks.join('').trim().split('\\n').map(Number).reduce((a, b) => a + b, 0));",
            "1\n2\n3\n",
            "6\n",
        ),
        (
            "const first = prompt('');\nconst buf = new Uint8Array(64);\nconst n = await Deno.stdin.read(buf);\nconsole.log(first, JSON.stringify(new TextDecoder().decode(buf.subarray(0, n))), await Deno.stdin.read(buf));",
            "one\nrest",
            " \none \"rest\" null\n",
        ),
        ("console.log(prompt('x?'));", "", "x? \nnull\n"),
    ];
    for (code, stdin, output) in cases {
        let j = submit(&s, json!({"lang": "ts", "code": code, "stdin": stdin}))
            .await
            .json();
        assert_eq!(j["status"], "done", "{code}: {j}");
        assert_eq!(j["output"], output, "{code}");
    }
}

#[tokio::test]
async fn bad_submissions_say_what_to_fix() {
    let s = Server::start();
    let cases = [
        (json!({"code": "1"}), 400, "lang"),
        (json!({"lang": "go", "code": "package main"}), 400, "lang"),
        (json!({"lang": "js"}), 400, "code"),
        (json!({"lang": "js", "code": "   "}), 400, "code"),
        (json!({"lang": "js", "code": 5}), 400, "code"),
        (
            json!({"lang": "js", "code": "1", "timeout": 0}),
            400,
            "timeout",
        ),
        (
            json!({"lang": "js", "code": "1", "timeout": 300001}),
            400,
            "timeout",
        ),
        (json!({"lang": "js", "code": "1", "stdin": 7}), 400, "stdin"),
    ];
    for (body, status, field) in cases {
        let r = submit(&s, body.clone()).await;
        assert_eq!(r.status, status, "{body}");
        let j = r.json();
        assert_eq!(j["kind"], "bad_request", "{body}");
        assert_eq!(j["details"]["field"], field, "{body}");
        assert!(!j["error"].as_str().unwrap().is_empty());
    }
    let r = submit(&s, json!({"lang": "rust", "code": "fn main() {}"})).await;
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("ts, typescript, js, javascript, node, python, py, python3")
    );
    assert_eq!(
        r.json()["details"]["available"].as_array().map(Vec::len),
        Some(8)
    );
    let r = s.post_text("/execute/code", "{oops").await;
    assert_eq!(
        (r.status, r.json()["kind"].clone()),
        (400, json!("bad_request"))
    );
    let big = "x".repeat(10 * 1024 * 1024 + 1);
    let r = submit(&s, json!({"lang": "js", "code": big})).await;
    assert_eq!(r.status, 413);
    let r = s.get("/execute/jobs/no-such-job").await;
    assert_eq!(
        (r.status, r.json()["kind"].clone()),
        (404, json!("not_found"))
    );
    assert_eq!(
        s.get("/execute/health").await.json(),
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn background_jobs_are_polled_listed_filtered_and_deleted() {
    let s = Server::start();
    let r = s
        .post(
            "/execute/code?wait=false",
            &json!({"lang": "js", "code": "await new Promise((r) => setTimeout(r, 300)); console.log('bg');", "task_id": "grader-1"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let queued = r.json();
    assert_eq!(queued["status"], "queued");
    let id = queued["id"].as_str().unwrap().to_string();
    // A client polling during the run sees it running.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = s.get(&format!("/execute/jobs/{id}")).await.json()["status"].clone();
        if status == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "never seen running: {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = finished(&s, &id).await;
    assert_eq!(done["output"], "bg\n");
    assert_eq!(done["status"], "done");

    for i in 0..5 {
        let task = if i % 2 == 0 { "grader-1" } else { "grader-2" };
        let r = submit(
            &s,
            json!({"lang": "js", "code": format!("console.log({i})"), "task_id": task}),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    submit(
        &s,
        json!({"lang": "js", "code": "while(true){}", "timeout": 50, "task_id": "grader-2"}),
    )
    .await;
    let list = s.get("/execute/jobs?task_id=grader-1").await.json();
    let outputs: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["output"].as_str().unwrap())
        .collect();
    // Newest first: the three from the loop, then the background one.
    assert_eq!(outputs, ["4\n", "2\n", "0\n", "bg\n"]);
    // Pages of two, by cursor.
    let page1 = s.get("/execute/jobs?task_id=grader-1&limit=2").await.json();
    assert_eq!(page1["count"], 2);
    let cursor = page1["next_before"].as_str().unwrap().to_string();
    let page2 = s
        .get(&format!(
            "/execute/jobs?task_id=grader-1&limit=2&before={cursor}"
        ))
        .await
        .json();
    let second: Vec<&str> = page2["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["output"].as_str().unwrap())
        .collect();
    assert_eq!(second, ["0\n", "bg\n"]);
    let timeouts = s.get("/execute/jobs?status=timeout").await.json();
    assert_eq!(timeouts["count"], 1);
    assert_eq!(timeouts["jobs"][0]["task_id"], "grader-2");
    assert_eq!(s.get("/execute/jobs?status=nope").await.status, 400);
    assert_eq!(s.get("/execute/jobs?limit=0").await.status, 400);

    let r = s
        .request("DELETE", &format!("/execute/jobs/{id}"), &[], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get(&format!("/execute/jobs/{id}")).await.status, 404);
    let r = s
        .request("DELETE", &format!("/execute/jobs/{id}"), &[], "")
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_killed_server_keeps_every_answered_record_and_runs_what_was_queued() {
    let data = TempDir::new("jobs-kill");
    let dir = data.0.display().to_string();
    let env = [("DATA_DIR", dir.as_str())];
    let mut first = Server::start_with(&env);
    let server = std::sync::Arc::new(first.addr);
    // A stream of submissions, some waiting, some in the background, some
    // slow, while the server is killed.
    let mut handles = Vec::new();
    for i in 0..40u64 {
        let addr = server.clone();
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 5)).await;
            let slow = i % 7 == 0;
            let code = if slow {
                format!("await new Promise((r) => setTimeout(r, 2000)); console.log({i});")
            } else {
                format!("console.log({i});")
            };
            let path = if i % 3 == 0 {
                "/execute/code?wait=false"
            } else {
                "/execute/code"
            };
            let body = json!({"lang": "js", "code": code, "task_id": "stream"});
            post_raw(*addr, path, body).await.map(|r| (i, r))
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    first.kill();
    let mut answered = Vec::new();
    for h in handles {
        if let Ok(Some(reply)) = h.await {
            answered.push(reply);
        }
    }
    assert!(!answered.is_empty(), "no job was answered before the kill");

    let second = Server::start_with(&env);
    for (i, (status, body)) in &answered {
        let id = body["id"].as_str().expect("an answered job has an id");
        let r = second.get(&format!("/execute/jobs/{id}")).await;
        assert_eq!(r.status, 200, "job {i} lost: {body}");
        let record = r.json();
        if *status == 200 {
            // Completed before the kill: the record is whole.
            assert_eq!(record["status"], "done", "{record}");
            assert_eq!(record["output"], body["output"], "job {i}");
            assert_eq!(record["exit_code"], 0);
        }
    }
    // Nothing stays running: interrupted runs are errors, queued ones run.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = second
            .get("/execute/jobs?task_id=stream&limit=1000")
            .await
            .json();
        let jobs = all["jobs"].as_array().unwrap().clone();
        let open = jobs
            .iter()
            .filter(|j| ["queued", "running"].contains(&j["status"].as_str().unwrap()))
            .count();
        if open == 0 {
            for j in &jobs {
                let status = j["status"].as_str().unwrap();
                assert!(["done", "error"].contains(&status), "{j}");
                if status == "error" {
                    assert_eq!(j["error"], "interrupted by a restart", "{j}");
                }
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs still open after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request on its own connection; `None` if the server went away.
async fn post_raw(addr: std::net::SocketAddr, path: &str, body: Value) -> Option<(u16, Value)> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, serde_json::from_slice(&bytes).ok()?))
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_opened_stops_the_server_with_its_path() {
    let blocker = TempDir::new("jobs-blocked");
    let file = blocker.0.join("not-a-directory");
    std::fs::write(&file, "x").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isoexec"))
        .env("PORT", "0")
        .env("WORKSPACE_DIR", blocker.0.join("ws"))
        .env("DATA_DIR", &file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The listening line comes only once the store is open.
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATA_DIR"), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
}
