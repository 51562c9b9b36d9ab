//! Many tenants on one server: what one call leaves behind never reaches a
//! later call of another script, and what a call holds is bounded.

use serde_json::{Value, json};

use crate::support::{Server, child_pids, children_with_arg, has_arg};

/// Leaves an `Atomics.waitAsync` pending when it returns. Its callback
/// replaces `JSON` and logs, then waits again: if the runtime were kept,
/// it would run inside whatever later call lets the event loop turn.
const WAIT_PLANTER: &str = r#"
    export function plant(kind: string) {
        const cell = new Int32Array(new SharedArrayBuffer(16));
        let reads = 0;
        const timeouts: Record<string, unknown> = {
            // Answers 2 when first converted and NaN (= forever) after.
            flips: { valueOf() { return reads++ === 0 ? 2 : NaN; } },
            finite: 5,
            string: "3",
        };
        const fire = () => {
            (globalThis as any).JSON = { stringify: () => "planted" };
            console.log("planted by another call");
            (Atomics as any).waitAsync(cell, 0, 0, 2).value.then(fire);
        };
        (Atomics as any).waitAsync(cell, 0, 0, timeouts[kind]).value.then(fire);
        return kind;
    }
"#;

/// Lets the event loop turn for a while, then reports what it sees.
const ASYNC_VICTIM: &str = r#"
    export async function victim(i: number) {
        for (let k = 0; k < 3; k++) await new Promise((r) => setTimeout(r, 5));
        return JSON.stringify({ i });
    }
"#;

#[tokio::test]
async fn a_pending_wait_never_runs_in_a_later_call() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    for isolation in ["frozen", "none"] {
        for kind in ["flips", "finite", "string"] {
            let r = s
                .call(
                    WAIT_PLANTER,
                    "plant",
                    json!({"payload": kind, "isolation": isolation}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.json()["result"], kind);
            for i in 0..5 {
                let r = s
                    .call(
                        ASYNC_VICTIM,
                        "victim",
                        json!({"payload": i, "isolation": isolation}),
                    )
                    .await;
                let body = r.json();
                assert_eq!(
                    body["result"],
                    format!("{{\"i\":{i}}}"),
                    "{isolation}/{kind}: a later call ran the planted code: {body}"
                );
                assert_eq!(body["logs"], json!([]), "{isolation}/{kind}: {body}");
            }
        }
    }
    s.assert_healthy().await;
}

/// Walks everything reachable from the global object (every property's
/// value, getter and setter, every prototype) and from the intrinsics no
/// global names, and lists what is not frozen.
const WALKER: &str = r#"
    export function walk() {
        const seen = new Set<unknown>([globalThis]);
        const stack: [object, string][] = [];
        const push = (v: unknown, path: string) => {
            if (((typeof v === "object" && v !== null) || typeof v === "function") && !seen.has(v)) {
                seen.add(v);
                stack.push([v as object, path]);
            }
        };
        const g = globalThis as any;
        for (const k of Reflect.ownKeys(g)) {
            const d = Object.getOwnPropertyDescriptor(g, k)!;
            push(d.value, String(k));
            push(d.get, String(k) + "<get>");
            push(d.set, String(k) + "<set>");
        }
        push(Object.getPrototypeOf(g), "<global>.__proto__");
        const seeds: unknown[] = [
            function* () {}, async function () {}, async function* () {}, async () => {},
            [][Symbol.iterator](), new Map()[Symbol.iterator](), new Set()[Symbol.iterator](),
            ""[Symbol.iterator](), /a/[Symbol.matchAll](""),
            // A generator's own prototype is made with it; the shared one is next.
            Object.getPrototypeOf((function* () {})()),
            Object.getPrototypeOf((async function* () {})()), g.Iterator.from({ next() {} }),
            [].values().map((x: unknown) => x), new Intl.Segmenter().segment("a"),
            new Intl.Segmenter().segment("a")[Symbol.iterator](),
        ];
        seeds.forEach((s, i) => push(Object.getPrototypeOf(s), `<seed ${i}>.__proto__`));
        const unfrozen: string[] = [];
        let accessors = 0;
        while (stack.length > 0) {
            const [o, path] = stack.pop()!;
            if (!Object.isFrozen(o)) unfrozen.push(path);
            push(Object.getPrototypeOf(o), path + ".__proto__");
            for (const k of Reflect.ownKeys(o)) {
                const d = Object.getOwnPropertyDescriptor(o, k);
                if (d === undefined) continue;
                if (d.get !== undefined) accessors++;
                push(d.value, path + "." + String(k));
                push(d.get, path + "." + String(k) + "<get>");
                push(d.set, path + "." + String(k) + "<set>");
            }
        }
        return { unfrozen: unfrozen.slice(0, 20), count: unfrozen.length, walked: seen.size, accessors };
    }
"#;

#[tokio::test]
async fn frozen_lockdown_leaves_nothing_reachable_unfrozen() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    let r = s.call(WALKER, "walk", json!({"isolation": "frozen"})).await;
    let body = r.json();
    assert_eq!(r.status, 200, "{body}");
    let result = &body["result"];
    assert_eq!(result["count"], 0, "objects left unfrozen: {result}");
    // The walk reached the built-ins and the tamed accessors themselves.
    assert!(result["walked"].as_u64().unwrap_or(0) > 1000, "{result}");
    assert!(result["accessors"].as_u64().unwrap_or(0) > 100, "{result}");

    // What a call hangs on an accessor of Object.prototype is refused,
    // so a later call of another script cannot read it.
    let hangs = r#"
        export function f() {
            const get = Object.getOwnPropertyDescriptor(Object.prototype, "toString")!.get as any;
            try { get.stash = "secret"; return "stored"; } catch (e) { return (e as Error).name; }
        }
    "#;
    let r = s.call(hangs, "f", json!({"isolation": "frozen"})).await;
    assert_eq!(r.json()["result"], "TypeError", "{}", r.json());
    let reads = r#"
        export function f() {
            const get = Object.getOwnPropertyDescriptor(Object.prototype, "toString")!.get as any;
            return get.stash ?? null;
        }
    "#;
    let r = s.call(reads, "f", json!({"isolation": "frozen"})).await;
    assert_eq!(r.json()["result"], Value::Null);
}

/// Keeps `mib` MiB of ArrayBuffer memory in module state.
const HOLDER: &str = r#"
    let calls = 0;
    let kept: Uint8Array | undefined;
    export function hold(mib: number) {
        calls++;
        kept = new Uint8Array(mib * 1024 * 1024);
        kept[kept.length - 1] = 1;
        return calls;
    }
"#;

#[tokio::test]
async fn a_runtime_holding_buffers_past_half_the_limit_is_not_kept() {
    let s = Server::start_with(&[("POOL_SIZE", "1"), ("MEMORY_LIMIT_MB", "64")]);
    // Warm mode: 40 MiB of buffers (under the limit, over half of it) is
    // not carried into the script's next call.
    let r = s
        .call(HOLDER, "hold", json!({"payload": 40, "isolation": "none"}))
        .await;
    assert_eq!(r.json()["result"], 1, "{}", r.json());
    let r = s
        .call(HOLDER, "hold", json!({"payload": 1, "isolation": "none"}))
        .await;
    assert_eq!(
        r.json()["result"],
        1,
        "the warm runtime was kept: {}",
        r.json()
    );

    // Frozen mode: module instances stay in a kept runtime's module map, so
    // their buffers would count against the next tenant's budget.
    let r = s
        .call(
            HOLDER,
            "hold",
            json!({"payload": 40, "isolation": "frozen"}),
        )
        .await;
    assert_eq!(r.json()["result"], 1, "{}", r.json());
    let other = format!("// another tenant\n{HOLDER}");
    let r = s
        .call(
            &other,
            "hold",
            json!({"payload": 40, "isolation": "frozen"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["result"], 1, "{}", r.json());
    s.assert_healthy().await;
}

#[tokio::test]
async fn request_ids_methods_and_pages_cannot_be_used_against_the_server() {
    let s = Server::start();
    // Made-up methods share one metric label, however many a client sends.
    for i in 0..30 {
        let r = s
            .request(&format!("M{i}X"), "/run", &[], bytes::Bytes::new())
            .await;
        assert_eq!(r.status, 405);
    }
    let text = String::from_utf8_lossy(&s.get("/metrics").await.body).into_owned();
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("isoexec_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert!(methods.contains("other"), "{methods:?}");
    assert!(methods.iter().all(|m| !m.starts_with('M')), "{methods:?}");

    // An id that could forge log fields is replaced; a plain one is kept.
    let forged = "x\" status=200 kind=\"none";
    let r = s
        .request(
            "GET",
            "/health",
            &[("x-request-id", forged)],
            bytes::Bytes::new(),
        )
        .await;
    let id = r.header("x-request-id").unwrap_or_default();
    assert_ne!(id, forged);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    let r = s
        .request(
            "GET",
            "/health",
            &[("x-request-id", "trace-7:a/b")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-7:a/b"));

    // No page may be framed by another site.
    for page in ["/playground", "/docs", "/redoc", "/"] {
        let r = s
            .request("GET", page, &[("accept", "text/html")], bytes::Bytes::new())
            .await;
        assert_eq!(r.status, 200, "{page}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{page}");
        assert!(
            r.header("content-security-policy")
                .is_some_and(|v| v.contains("frame-ancestors 'none'")),
            "{page}"
        );
    }
}

#[tokio::test]
async fn session_file_names_at_the_limits_answer_clearly() {
    let s = Server::start();
    let r = s
        .post(
            "/api/v1/sessions",
            &json!({"environment": "typescript", "mode": "script"}),
        )
        .await;
    let id = r.json()["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let execute = |filename: String| {
        let s = &s;
        let id = id.clone();
        async move {
            s.post(
                &format!("/api/v1/sessions/{id}/execute"),
                &json!({"code": "console.log('ran')", "filename": filename}),
            )
            .await
        }
    };
    // Up to 255 bytes in all is a valid name and runs.
    for len in [244, 250, 255] {
        let name = format!("{}.ts", "a".repeat(len - 3));
        let r = execute(name).await;
        assert_eq!(r.status, 200, "{len}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["stdout"], "ran\n", "{len}");
    }
    for bad in [
        format!("{}.ts", "a".repeat(253)),
        "a\u{0}b.ts".into(),
        "a\nb.ts".into(),
    ] {
        let r = execute(bad.clone()).await;
        assert_eq!(
            r.status,
            400,
            "{bad:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            String::from_utf8_lossy(&r.body).contains("filename"),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // Nothing but the files that ran is left in the session's directory.
    let r = s.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(r.status, 200);
    s.assert_healthy().await;
}

#[test]
fn the_command_line_reads_no_files_unless_allowed_and_only_regular_sources() {
    use std::process::Command;
    let dir = crate::support::TempDir::new("cli-read");
    std::fs::write(dir.0.join("secret.txt"), "key").unwrap();
    let prog = dir.0.join("reads.ts");
    std::fs::write(
        &prog,
        "console.log(Deno.readTextFileSync(new URL('./secret.txt', import.meta.url)));",
    )
    .unwrap();
    let bin = || Command::new(env!("CARGO_BIN_EXE_isoexec"));
    let out = bin().arg("run").arg(&prog).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PermissionDenied"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("key"));
    let out = bin()
        .arg("run")
        .arg(format!("--allow-read={}", dir.0.display()))
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "key",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A FIFO and a device are refused at once, whatever the timeout.
    let fifo = dir.0.join("pipe.ts");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let started = std::time::Instant::now();
    for file in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        let out = bin()
            .arg("run")
            .arg(file)
            .args(["--timeout", "200"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", file.display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a regular file"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// Whether `pid` names a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

/// Whether `pid` exists in any state, a zombie included.
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_compile_helper_ends_with_its_parent() {
    use std::process::{Command, Stdio};
    // A parent that starts a helper (whose stdin stays open) and is then
    // killed with SIGKILL, so it cannot stop the helper itself.
    let mut parent = Command::new("sh")
        .arg("-c")
        .arg(r#"sleep 600 | "$0" compile-helper & wait"#)
        .arg(env!("CARGO_BIN_EXE_isoexec"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let helper = loop {
        if let Some(&h) = children_with_arg(parent.id(), b"compile-helper").first() {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "no helper started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let sleeper = child_pids(parent.id()).into_iter().find(|&c| c != helper);
    let _ = parent.kill();
    let _ = parent.wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(helper) {
        assert!(
            std::time::Instant::now() < deadline,
            "the helper outlived its parent"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if let Some(s) = sleeper {
        // SAFETY: kill(2) of the test's own leftover `sleep`.
        unsafe { libc::kill(s as i32, libc::SIGKILL) };
    }
}

#[tokio::test]
async fn as_pid_1_the_server_reaps_orphans_and_no_helper_outlives_its_worker() {
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "this test needs `unshare --pid` (util-linux, root)"
    );
    let s = Server::start_under(
        &["unshare", "--pid", "--fork", "--kill-child"],
        &[("POOL_SIZE", "1")],
    );
    let r = s.call("export const f = () => 7", "f", json!({})).await;
    assert_eq!(r.json()["result"], 7);
    // unshare → isoexec as PID 1 (the init) → the server.
    let init = child_pids(s.pid())[0];
    let server = child_pids(init)[0];
    assert!(has_arg(server, b"isoexec") || exists(server));

    // A program whose compile takes seconds, run in a worker process: the
    // worker's own helper compiles it.
    let line =
        "let v: Array<{ a: number; b: string }> = [{ a: 1, b: \"x\" }, { a: 2, b: \"y\" }];\n";
    s.save("slow", &line.repeat(9_000_000 / line.len())).await;
    let runner = {
        let s = &s;
        async move {
            s.execute("slow", json!({"isolation": "process", "timeout": 60000}))
                .await
        }
    };
    let killer = async {
        // Find the worker's helper, then kill the worker under it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            for worker in children_with_arg(server, b"worker") {
                if let Some(&helper) = children_with_arg(worker, b"compile-helper").first() {
                    // SAFETY: kill(2) of a process this test's server started.
                    unsafe { libc::kill(worker as i32, libc::SIGKILL) };
                    return helper;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no worker helper seen"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let (_, helper) = tokio::join!(runner, killer);
    // The orphaned helper stops at once and PID 1 reaps it: it is gone,
    // not a zombie.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while exists(helper) {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphaned helper is still there (alive: {})",
            alive(helper)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = s.call("export const f = () => 8", "f", json!({})).await;
    assert_eq!(r.json()["result"], 8);
}

/// Sends one request on a connection of its own, without reading the
/// answer; dropping the stream hangs up.
async fn post_unread(
    addr: std::net::SocketAddr,
    path: &str,
    body: &Value,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// The records listed for `task_id`, newest first.
async fn jobs_of(s: &Server, task_id: &str) -> Vec<Value> {
    let r = s
        .get(&format!("/execute/jobs?task_id={task_id}&limit=1000"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["jobs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn job_records_reach_a_final_state_when_their_client_goes_away() {
    let s = Server::start_with(&[("POOL_SIZE", "2")]);
    let program = "await new Promise((r) => setTimeout(r, 200)); console.log('ran');";
    for i in 0..6 {
        let wait = if i % 2 == 0 { "" } else { "?wait=false" };
        let stream = post_unread(
            s.addr,
            &format!("/execute/code{wait}"),
            &json!({"lang": "ts", "code": program, "task_id": "gone"}),
        )
        .await;
        // Hang up once the job is recorded (the waited ones are running).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while jobs_of(&s, "gone").await.len() <= i {
            assert!(
                std::time::Instant::now() < deadline,
                "job {i} never recorded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(stream);
    }
    // Every submit whose body arrived has a record, and every record ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let jobs = jobs_of(&s, "gone").await;
        let done = jobs.iter().filter(|j| j["status"] == "done").count();
        if jobs.len() == 6 && done == 6 {
            assert!(jobs.iter().all(|j| j["output"] == "ran\n"), "{jobs:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "records left unfinished: {jobs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.assert_healthy().await;
}

#[tokio::test]
async fn job_records_and_the_background_queue_are_bounded() {
    let s = Server::start_with(&[
        ("POOL_SIZE", "1"),
        ("QUEUE_SIZE", "2"),
        ("JOB_OUTPUT_BYTES", "4096"),
    ]);
    // Output past JOB_OUTPUT_BYTES is cut, and the record says so.
    let r = s
        .post(
            "/execute/code",
            &json!({"lang": "js", "code": "console.log('x'.repeat(100000)); console.log('end')"}),
        )
        .await;
    let job = r.json();
    assert_eq!(r.status, 200, "{job}");
    assert_eq!(job["output"].as_str().map(str::len), Some(4096));
    assert_eq!(job["output_truncated"], true);

    // At most QUEUE_SIZE background jobs wait or run; past that, 503 and
    // nothing is recorded.
    let slow = "await new Promise((r) => setTimeout(r, 1500));";
    for key in ["one", "two"] {
        let r = post_as(
            &s,
            key,
            "/execute/code?wait=false",
            &json!({"lang": "js", "code": slow, "task_id": "q"}),
        )
        .await;
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = post_as(
        &s,
        "three",
        "/execute/code?wait=false",
        &json!({"lang": "js", "code": slow, "task_id": "q"}),
    )
    .await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["kind"], "overloaded");
    assert!(r.header("retry-after").is_some());
    assert_eq!(jobs_of(&s, "q").await.len(), 2);
    for job in jobs_of(&s, "q").await {
        let id = job["id"].as_str().unwrap_or_default().to_string();
        assert_eq!(crate::jobs::finished(&s, &id).await["status"], "done");
    }
    // Room again once they ended.
    let r = s
        .post(
            "/execute/code?wait=false",
            &json!({"lang": "js", "code": "1", "task_id": "q"}),
        )
        .await;
    assert_eq!(r.status, 202);
}

#[tokio::test]
async fn listings_carry_summaries_and_the_store_stays_under_its_bound() {
    let s = Server::start_with(&[
        ("JOB_OUTPUT_BYTES", "2M"),
        ("JOB_STORE_BYTES", "16M"),
        ("MAX_LOG_BYTES", "4M"),
    ]);
    // Each record keeps about 1.5 MB of output: 24 of them would take
    // about 36 MB, so the oldest go.
    let code = "for (let i = 0; i < 30; i++) console.log(String(i).padEnd(50000, '.'));";
    let mut ids = Vec::new();
    for _ in 0..24 {
        let r = s
            .post(
                "/execute/code",
                &json!({"lang": "js", "code": code, "task_id": "big"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        ids.push(r.json()["id"].as_str().unwrap_or_default().to_string());
    }
    let listed = jobs_of(&s, "big").await;
    assert!(
        listed.len() < 24,
        "nothing was pruned: {} records",
        listed.len()
    );
    assert!(listed.len() >= 5, "too much was pruned: {}", listed.len());
    // The newest is kept whole; the listing has a summary of it.
    let newest = s.get(&format!("/execute/jobs/{}", ids[23])).await.json();
    assert!(newest["output"].as_str().map_or(0, str::len) > 1_000_000);
    assert_eq!(listed[0]["id"], newest["id"]);
    assert!(listed[0]["output"].as_str().map_or(0, str::len) <= 4096);
    assert_eq!(listed[0]["output_truncated"], true);
    assert!(listed[0].get("code").is_none_or(Value::is_null));
    // The oldest is gone.
    assert_eq!(
        s.get(&format!("/execute/jobs/{}", ids[0])).await.status,
        404
    );
}

#[tokio::test]
async fn a_job_store_removed_under_the_server_is_reported_not_used() {
    let data = crate::support::TempDir::new("jobs-unlinked");
    let data_dir = data.0.display().to_string();
    let s = Server::start_with(&[("DATA_DIR", data_dir.as_str())]);
    let ok = s
        .post(
            "/execute/code",
            &json!({"lang": "js", "code": "console.log(1)"}),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(s.get("/execute/health").await.status, 200);
    // A job running while its store is removed: the reply says it ran.
    let slow = json!({"lang": "js", "code": "await new Promise((r) => setTimeout(r, 400)); console.log('ran')"});
    let (r, ()) = tokio::join!(s.post("/execute/code", &slow), async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        std::fs::remove_file(data.0.join("jobs.db")).unwrap();
    });
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["kind"], "storage_unavailable");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("The job ran"),
        "{body}"
    );
    // New jobs are refused, not acknowledged into the removed file.
    let r = s
        .post(
            "/execute/code",
            &json!({"lang": "js", "code": "console.log(2)"}),
        )
        .await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing was run"),
        "{}",
        r.json()
    );
    assert_eq!(s.get("/execute/health").await.status, 503);
}

#[tokio::test]
async fn background_jobs_get_the_drain_period_at_sigterm() {
    let data = crate::support::TempDir::new("jobs-drain");
    let data_dir = data.0.display().to_string();
    let env = [("DATA_DIR", data_dir.as_str()), ("POOL_SIZE", "1")];
    let mut s = Server::start_with(&env);
    let r = s
        .post(
            "/execute/code?wait=false",
            &json!({"lang": "js", "timeout": 20000, "code": "await new Promise((r) => setTimeout(r, 6500)); console.log('finished')"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().unwrap_or_default().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.get(&format!("/execute/jobs/{id}")).await.json()["status"] != "running" {
        assert!(std::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.terminate();
    let status = s.wait_exit(std::time::Duration::from_secs(40));
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    let s = Server::start_with(&env);
    let job = s.get(&format!("/execute/jobs/{id}")).await.json();
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["output"], "finished\n");
}

async fn status(s: &Server, id: &str) -> Value {
    s.get(&format!("/api/v1/sessions/{id}")).await.json()["status"].clone()
}

async fn new_session(s: &Server, mode: &str) -> String {
    let r = s
        .post(
            "/api/v1/sessions",
            &json!({"environment": "typescript", "mode": mode}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn notebook_results_errors_and_lint_reports_are_capped() {
    let s = Server::start_with(&[("MAX_RESULT_BYTES", "1M"), ("MEMORY_LIMIT_MB", "256")]);
    let id = new_session(&s, "notebook").await;
    let cell = |code: &str| {
        let (s, id, code) = (&s, id.clone(), code.to_string());
        async move {
            let r = s
                .post(
                    &format!("/api/v1/sessions/{id}/execute"),
                    &json!({"code": code, "timeout": 20000}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            (r.body.len(), r.json())
        }
    };
    // A primitive result past MAX_RESULT_BYTES is refused, not sent.
    let (len, r) = cell("'x'.repeat(8 * 1024 * 1024)").await;
    assert!(len < 100_000, "a reply of {len} bytes");
    assert_eq!(r["status"], "error");
    assert!(
        r["stderr"]
            .as_str()
            .unwrap_or_default()
            .contains("MAX_RESULT_BYTES"),
        "{r}"
    );
    // An exception's text is cut like any other error text.
    let (len, r) = cell("throw new Error('y'.repeat(8 * 1024 * 1024))").await;
    assert!(len < 200_000, "a reply of {len} bytes");
    assert_eq!(r["exit_code"], 1, "{r}");
    // The notebook goes on.
    assert_eq!(cell("1 + 1").await.1["result"], 2);

    // A lint report lists a bounded number of diagnostics.
    s.save("noisy", &"debugger;\n".repeat(20_000)).await;
    let r = s
        .post("/lint", &json!({"codeId": "noisy", "timeout": 60000}))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.body.len() < 2_000_000,
        "a lint reply of {} bytes",
        r.body.len()
    );
    let report = &r.json()["result"];
    assert_eq!(report["diagnostics"].as_array().map(Vec::len), Some(1000));
    assert_eq!(report["diagnostics_omitted"], 19_000);
}

#[tokio::test]
async fn a_session_whose_client_goes_away_is_ready_again_and_interrupts_answer_at_once() {
    let s = Server::start();
    // Script mode: the client leaves mid-run; the session is ready again.
    let id = new_session(&s, "script").await;
    let stream = post_unread(
        s.addr,
        &format!("/api/v1/sessions/{id}/execute"),
        &json!({"code": "await new Promise((r) => setTimeout(r, 30000));", "timeout": 60000}),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status(&s, &id).await != "executing" {
        assert!(std::time::Instant::now() < deadline, "never executing");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(stream);
    while status(&s, &id).await != "ready" {
        assert!(
            std::time::Instant::now() < deadline,
            "the session stayed {}",
            status(&s, &id).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // Notebook: a cell whose client left is stopped (it would log later).
    let nb = new_session(&s, "notebook").await;
    let stream = post_unread(
        s.addr,
        &format!("/api/v1/sessions/{nb}/execute"),
        &json!({"code": "let n = 0; for (;;) { n++; }", "timeout": 60000}),
    )
    .await;
    while status(&s, &nb).await != "executing" {
        assert!(std::time::Instant::now() < deadline, "never executing");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(stream);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status(&s, &nb).await != "ready" {
        assert!(std::time::Instant::now() < deadline, "the cell ran on");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The next cell runs at once: the loop was stopped.
    let r = s
        .post(
            &format!("/api/v1/sessions/{nb}/execute"),
            &json!({"code": "1 + 1", "timeout": 5000}),
        )
        .await;
    assert_eq!(r.json()["result"], 2, "{}", r.json());

    // An interrupt of a cell that awaits answers at once, not at its deadline.
    let started = std::time::Instant::now();
    let path = format!("/api/v1/sessions/{nb}/execute");
    let body =
        json!({"code": "await new Promise((r) => setTimeout(r, 30000)); 'late'", "timeout": 30000});
    let (r, _) = tokio::join!(s.post(&path, &body), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        s.post(&format!("/api/v1/sessions/{nb}/interrupt"), &json!({}))
            .await
    });
    let r = r.json();
    assert_eq!(r["interrupted"], true, "{r}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    s.assert_healthy().await;
}

/// `POST` as the client named by a bearer key.
async fn post_as(s: &Server, key: &str, path: &str, body: &Value) -> crate::support::Reply {
    let auth = format!("Bearer {key}");
    s.request(
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", auth.as_str()),
        ],
        serde_json::to_vec(body).unwrap_or_default(),
    )
    .await
}

#[tokio::test]
async fn pool_threads_are_shared_per_client_not_per_script() {
    let s = Server::start_with(&[("POOL_SIZE", "2"), ("SCRIPT_THREADS", "1")]);
    let started = std::time::Instant::now();
    // One client sends loops that differ only by a comment.
    let looping = |i: u32| {
        let s = &s;
        async move {
            let script = format!("// {i}\nexport function f() {{ for (;;) {{}} }}");
            post_as(
                s,
                "greedy",
                "/run",
                &json!({"script": script, "fn": "f", "timeout": 3000}),
            )
            .await
        }
    };
    let normal = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let r = post_as(
            &s,
            "polite",
            "/run",
            &json!({"script": "export const f = () => 1", "fn": "f"}),
        )
        .await;
        (r, started.elapsed())
    };
    let (l0, l1, l2, l3, (r, answered_at)) =
        tokio::join!(looping(0), looping(1), looping(2), looping(3), normal);
    assert_eq!(r.json()["result"], 1);
    // The other client's call did not wait for the loops' deadline.
    assert!(
        answered_at < std::time::Duration::from_millis(2500),
        "the polite call waited {answered_at:?}"
    );
    for l in [l0, l1, l2, l3] {
        assert_eq!(l.json()["kind"], "timeout", "{}", l.json());
    }
}

#[tokio::test]
async fn sessions_and_background_jobs_are_shared_per_client() {
    let s = Server::start_with(&[
        ("MAX_SESSIONS", "4"),
        ("QUEUE_SIZE", "8"),
        ("POOL_SIZE", "1"),
    ]);
    let create = |key: &'static str| {
        let s = &s;
        async move {
            post_as(
                s,
                key,
                "/api/v1/sessions",
                &json!({"environment": "typescript"}),
            )
            .await
        }
    };
    // A client at its share (two of four) ends its own longest-idle session.
    let mut mine = Vec::new();
    for _ in 0..3 {
        let r = create("a").await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        mine.push(
            r.json()["session_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    // The oldest ended to make room: it reads `stopped`, and runs nothing.
    assert_eq!(
        s.get(&format!("/api/v1/sessions/{}", mine[0])).await.json()["status"],
        "stopped"
    );
    assert_eq!(
        s.get(&format!("/api/v1/sessions/{}", mine[1])).await.status,
        200
    );
    // At MAX_SESSIONS, the longest-idle session of any client ends.
    for key in ["b", "c", "d"] {
        let r = create(key).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(
        s.get(&format!("/api/v1/sessions/{}", mine[1])).await.json()["status"],
        "stopped"
    );
    assert_eq!(
        s.get(&format!("/api/v1/sessions/{}", mine[2])).await.json()["status"],
        "ready"
    );
    // A client whose sessions are all executing gets 429, not an eviction.
    let x1 = create("c").await.json()["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let busy = async |id: String| {
        let path = format!("/api/v1/sessions/{id}/execute");
        let body =
            json!({"code": "await new Promise((r) => setTimeout(r, 1500));", "timeout": 10000});
        post_as(&s, "c", &path, &body).await
    };
    let c_sessions: Vec<String> = {
        // A client lists its own sessions only.
        let listed = s
            .request(
                "GET",
                "/api/v1/sessions",
                &[("authorization", "Bearer c")],
                bytes::Bytes::new(),
            )
            .await
            .json();
        let all = listed["sessions"].as_array().cloned().unwrap_or_default();
        all.iter()
            .filter_map(|v| v["session_id"].as_str().map(str::to_string))
            .collect()
    };
    assert!(c_sessions.contains(&x1), "{c_sessions:?}");
    let watch = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut all = true;
            for id in &c_sessions {
                all &= status(&s, id).await == "executing";
            }
            if all {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never all executing");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        create("c").await
    };
    let ids: Vec<String> = c_sessions.iter().filter(|i| **i != x1).cloned().collect();
    let other = ids.first().cloned().unwrap_or_default();
    let (_, _, refused) = tokio::join!(busy(x1.clone()), busy(other), watch);
    assert_eq!(
        refused.status,
        429,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );

    // Background jobs: a client holds at most half of QUEUE_SIZE.
    let slow = json!({"lang": "js", "code": "await new Promise((r) => setTimeout(r, 800));"});
    for _ in 0..4 {
        let r = post_as(&s, "a", "/execute/code?wait=false", &slow).await;
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = post_as(&s, "a", "/execute/code?wait=false", &slow).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["details"]["client_share"], 4, "{}", r.json());
    // Another client still has its share.
    let r = post_as(&s, "b", "/execute/code?wait=false", &slow).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
}

fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

#[tokio::test]
async fn intl_objects_count_against_the_memory_limit() {
    let s = Server::start_with(&[("POOL_SIZE", "1"), ("MEMORY_LIMIT_MB", "64")]);
    let pid = s.pid();
    // Intl works as before: with and without `new`, subclassed, statics.
    let works = r#"
        class Mine extends Intl.NumberFormat {}
        export function f() {
            return {
                date: new Intl.DateTimeFormat("en-US", { timeZone: "UTC" }).format(0),
                legacy: Intl.NumberFormat("en-US").format(1234.5),
                sub: new Mine("en-US").format(2) + String(new Mine() instanceof Intl.NumberFormat),
                statics: Intl.Collator.supportedLocalesOf(["en"]).length,
                ctor: new Intl.Segmenter().constructor === Intl.Segmenter,
            };
        }
    "#;
    for isolation in ["isolate", "none", "frozen"] {
        let r = s.call(works, "f", json!({"isolation": isolation})).await;
        assert_eq!(
            r.json()["result"],
            json!({"date": "1/1/1970", "legacy": "1,234.5", "sub": "2true", "statics": 1, "ctor": true}),
            "{isolation}: {}",
            r.json()
        );
    }
    // Holding tens of thousands ends in memory_limit, in every mode, and
    // the server's memory stays far from what they would take.
    let hoards = r#"
        const kept: unknown[] = [];
        export function f() {
            for (let i = 0; i < 80000; i++) kept.push(new Intl.DateTimeFormat("en", { hour: "numeric" }));
            return kept.length;
        }
    "#;
    for isolation in ["isolate", "none", "frozen"] {
        let r = s
            .call(
                hoards,
                "f",
                json!({"isolation": isolation, "timeout": 60000}),
            )
            .await;
        assert_eq!(
            r.json()["kind"],
            "memory_limit",
            "{isolation}: {}",
            r.json()
        );
        assert!(rss_mib(pid) < 1024, "{isolation}: RSS {} MiB", rss_mib(pid));
    }
    // Making and dropping a few hundred is fine.
    let churns = r#"
        export function f() {
            let s = "";
            for (let i = 0; i < 300; i++) s = new Intl.NumberFormat("en").format(i);
            return s;
        }
    "#;
    let r = s.call(churns, "f", json!({})).await;
    assert_eq!(r.json()["result"], "299", "{}", r.json());
    assert_eq!(s.pid(), pid);
    s.assert_healthy().await;
}

#[tokio::test]
async fn a_session_writes_within_its_disk_quota_across_executions() {
    let s = Server::start_with(&[("SESSION_DISK_BYTES", "1M")]);
    let id = new_session(&s, "script").await;
    let run = |code: String| {
        let (s, id) = (&s, id.clone());
        async move {
            s.post(
                &format!("/api/v1/sessions/{id}/execute"),
                &json!({"code": code}),
            )
            .await
        }
    };
    let write = |name: &str| {
        format!(
            "Deno.writeTextFileSync('{name}', 'x'.repeat(700 * 1024)); console.log('wrote {name}');"
        )
    };
    let r = run(write("a.txt")).await;
    assert_eq!(r.json()["stdout"], "wrote a.txt\n", "{}", r.json());
    // A second 700 KiB file would pass the session's 1 MiB.
    let r = run(write("b.txt")).await;
    let body = r.json();
    // The refused write fails the program: exit code 1.
    assert_eq!(body["exit_code"], 1, "{body}");
    assert!(
        body["stderr"]
            .as_str()
            .unwrap_or_default()
            .contains("QuotaExceeded"),
        "{body}"
    );
    // Code that does not fit is refused before it is written.
    let r = run(format!("// {}\n", "y".repeat(600 * 1024))).await;
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["kind"], "insufficient_storage");
    // What fits still runs and writes.
    let r = run("Deno.writeTextFileSync('a.txt', 'small'); console.log('ok');".into()).await;
    assert_eq!(r.json()["stdout"], "ok\n", "{}", r.json());
}

#[tokio::test]
async fn notebooks_together_stay_within_their_memory_budget() {
    let s = Server::start_with(&[("NOTEBOOK_MEMORY_MB", "64"), ("MEMORY_LIMIT_MB", "64")]);
    let cell = |id: &str, code: &str| {
        let (s, path, code) = (
            &s,
            format!("/api/v1/sessions/{id}/execute"),
            code.to_string(),
        );
        async move {
            let r = post_as(s, "nb", &path, &json!({"code": code, "timeout": 20000})).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.json()
        }
    };
    let create = || async {
        post_as(
            &s,
            "nb",
            "/api/v1/sessions",
            &json!({"environment": "typescript", "mode": "notebook"}),
        )
        .await
        .json()["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let a = create().await;
    let b = create().await;
    let r = cell(
        &a,
        "var held = new Uint8Array(40 * 1024 * 1024); held.length",
    )
    .await;
    assert_eq!(r["result"], 41_943_040, "{r}");
    assert_eq!(r["state_reset"], false);
    // The second notebook's 40 MiB takes both past 64 MiB: it starts over.
    let r = cell(
        &b,
        "var held = new Uint8Array(40 * 1024 * 1024); held.length",
    )
    .await;
    assert_eq!(r["state_reset"], true, "{r}");
    assert!(
        r["stderr"]
            .as_str()
            .unwrap_or_default()
            .contains("NOTEBOOK_MEMORY_MB"),
        "{r}"
    );
    assert_eq!(cell(&b, "typeof held").await["result"], "undefined");
    // The first keeps its state.
    assert_eq!(cell(&a, "held.length").await["result"], 41_943_040);
}

#[tokio::test]
async fn an_idle_compile_helper_does_not_keep_a_large_compile_s_memory() {
    let s = Server::start_with(&[("MAX_BODY_BYTES", "16M")]);
    let line =
        "var v: Array<{ a: number; b: string }> = [{ a: 1, b: \"x\" }, { a: 2, b: \"y\" }];\n";
    let big = format!(
        "{}export const f = () => 1;\n",
        line.repeat(3_000_000 / line.len())
    );
    let r = s.call(&big, "f", json!({"timeout": 60000})).await;
    assert_eq!(r.json()["result"], 1, "{}", r.json());
    let helpers = children_with_arg(s.pid(), b"compile-helper");
    for h in &helpers {
        assert!(
            rss_mib(*h) < 150,
            "an idle helper holds {} MiB",
            rss_mib(*h)
        );
    }
    // Small compiles still run on kept helpers.
    let r = s.call("export const f = () => 2", "f", json!({})).await;
    assert_eq!(r.json()["result"], 2);
}

#[tokio::test]
async fn an_idle_isolate_gives_back_what_the_last_calls_left_as_garbage() {
    let s = Server::start_with(&[("POOL_SIZE", "1"), ("MEMORY_LIMIT_MB", "256")]);
    let heap_used = || async {
        s.get("/health").await.json()["memoryUsage"]["heapUsed"]
            .as_u64()
            .unwrap_or(u64::MAX)
    };
    let garbage = r#"
        export function f() {
            const a = [];
            for (let i = 0; i < 1500000; i++) a.push({ i, s: "x" + i });
            return a.length;
        }
    "#;
    for isolation in ["none", "frozen"] {
        let r = s
            .call(
                garbage,
                "f",
                json!({"isolation": isolation, "timeout": 60000}),
            )
            .await;
        assert_eq!(r.json()["result"], 1_500_000, "{}", r.json());
    }
    // The kept isolates hold that garbage until the thread, idle for a
    // second, collects it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let used = heap_used().await;
        if used < 40 * 1024 * 1024 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the idle isolates still hold {} MiB",
            used >> 20
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A tmpfs of `mib` MiB mounted on a new directory, unmounted when dropped.
struct SmallDisk(crate::support::TempDir);

impl SmallDisk {
    fn mount(mib: u32) -> SmallDisk {
        let dir = crate::support::TempDir::new("small-disk");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "this test mounts a tmpfs (root, as in CI)");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0.0)
            .status();
    }
}

#[tokio::test]
async fn a_nearly_full_disk_is_refused_with_507_before_anything_is_written() {
    let disk = SmallDisk::mount(32);
    let ws = disk.0.0.join("ws");
    let data = disk.0.0.join("data");
    std::fs::create_dir_all(&ws).unwrap();
    let (ws_s, data_s) = (ws.display().to_string(), data.display().to_string());
    let s = Server::start_with(&[
        ("WORKSPACE_DIR", ws_s.as_str()),
        ("DATA_DIR", data_s.as_str()),
    ]);
    // Less than 64 MiB free: saves, job records and session files are
    // refused, each saying what could not be written.
    let r = s
        .put(
            "/workspace",
            &json!({"codeId": "a", "code": "console.log(1)"}),
        )
        .await;
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("the code of a"));
    assert!(!ws.join("a.ts").exists());
    let r = s
        .post(
            "/execute/code",
            &json!({"lang": "js", "code": "console.log(1)"}),
        )
        .await;
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["kind"], "insufficient_storage");
    let id = new_session(&s, "script").await;
    let r = s
        .post(
            &format!("/api/v1/sessions/{id}/execute"),
            &json!({"code": "1"}),
        )
        .await;
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    // The server goes on: what needs no disk still runs.
    let r = s.call("export const f = () => 3", "f", json!({})).await;
    assert_eq!(r.json()["result"], 3);
    s.assert_healthy().await;
    drop(s);
}
