//! The fault-injection suite: each scenario of hostile or broken code must end
//! with the same server PID, a clear error with a stable kind, a concurrent
//! normal call unaffected, the next normal call served, saved code intact and
//! the pool back at full size.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Reply, Server, TempDir};

pub(crate) const NORMAL: &str = "export function f(p) { return { echo: p }; }";
const PROBE_CODE: &str = "console.log(JSON.stringify({ probe: true }));";

/// A server for the suite, with a saved file whose survival is checked.
pub(crate) async fn suite_server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("MEMORY_LIMIT_MB", "64"), ("POOL_SIZE", "2")];
    env.extend_from_slice(extra);
    let s = Server::start_with(&env);
    s.save("probe", PROBE_CODE).await;
    s
}

/// What a scenario should end with.
pub(crate) enum Expect {
    /// This status and kind (`/run`'s `kind`).
    Kind(u16, &'static str),
    /// One of these (status, kind) pairs.
    Either(&'static [(u16, &'static str)]),
    /// A 200 whose result satisfies the check.
    Ok(fn(&Value) -> bool),
}

/// Runs one `/run` scenario next to a normal call and checks everything the
/// suite promises. Without an `isolation` in `extra` it runs twice: in
/// `"isolate"` (the default) and in `"frozen"`, whose isolate outlives the
/// call unless the call broke it.
pub(crate) async fn scenario(s: &Server, name: &str, script: &str, extra: Value, expect: Expect) {
    let modes: &[&str] = if extra.get("isolation").is_some() {
        &[""]
    } else {
        &["isolate", "frozen"]
    };
    for mode in modes {
        let pid = s.pid();
        let mut body = json!({"script": script, "fn": "f", "timeout": 400});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
            if !mode.is_empty() {
                b.insert("isolation".into(), json!(mode));
            }
        }
        let label = format!("{name} ({})", body["isolation"].as_str().unwrap_or(""));
        let (hostile, normal) = tokio::join!(s.post("/run", &body), async {
            // Let the hostile call start first.
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.call(
                NORMAL,
                "f",
                json!({"payload": name, "isolation": "isolate"}),
            )
            .await
        });
        check(&label, &hostile, &expect);
        assert_eq!(normal.status, 200, "{label}: the concurrent call was hurt");
        assert_eq!(normal.json()["result"], json!({"echo": name}), "{label}");
        after(s, &label, pid).await;
        if *mode == "frozen" {
            // The frozen isolate that served (or replaced) the scenario
            // serves a normal call.
            let next = s
                .call(NORMAL, "f", json!({"payload": 2, "isolation": "frozen"}))
                .await;
            assert_eq!(
                next.json()["result"],
                json!({"echo": 2}),
                "{label}: next frozen call"
            );
        }
    }
}

fn check(name: &str, r: &Reply, expect: &Expect) {
    let body = r.json();
    match expect {
        Expect::Kind(status, kind) => {
            assert_eq!(r.status, *status, "{name}: {body}");
            assert_eq!(body["kind"], *kind, "{name}: {body}");
            assert!(!body["error"].as_str().unwrap_or("").is_empty(), "{name}");
        }
        Expect::Either(options) => {
            let got = (r.status, body["kind"].as_str().unwrap_or(""));
            assert!(options.contains(&got), "{name}: {body}");
        }
        Expect::Ok(ok) => {
            assert_eq!(r.status, 200, "{name}: {body}");
            assert!(ok(&body["result"]), "{name}: {body}");
        }
    }
}

/// Same PID, next call served, saved code intact, pool full.
pub(crate) async fn after(s: &Server, name: &str, pid: u32) {
    assert_eq!(s.pid(), pid, "{name}: the server restarted");
    let next = s.call(NORMAL, "f", json!({"payload": 1})).await;
    assert_eq!(
        next.json()["result"],
        json!({"echo": 1}),
        "{name}: next call"
    );
    let saved = s.get("/workspace/probe").await;
    assert_eq!(
        saved.json()["result"]["code"],
        PROBE_CODE,
        "{name}: saved code"
    );
    s.assert_healthy().await;
}

#[tokio::test]
async fn cpu_and_time() {
    let s = suite_server(&[]).await;
    let timeout = || Expect::Kind(408, "timeout");
    let cases: Vec<(&str, &str, Expect)> = vec![
        (
            "loop in the function",
            "export function f() { while (true) {} }",
            timeout(),
        ),
        (
            "loop at module top level",
            "while (true) {}\nexport const f = () => 1;",
            timeout(),
        ),
        (
            "loop in finally",
            "export function f() { try { throw new Error('x'); } finally { while (true) {} } }",
            timeout(),
        ),
        (
            "promise that never settles",
            "export function f() { return new Promise(() => {}); }",
            Expect::Kind(500, "exception"),
        ),
        (
            "microtask storm",
            "export function f() { const spin = () => Promise.resolve().then(spin); spin(); return new Promise(() => {}); }",
            // Each step resolves a promise with the next one, so the chain
            // of pending promises grows: the deadline or the memory limit,
            // whichever comes first, stops it.
            Expect::Either(&[(408, "timeout"), (507, "memory_limit")]),
        ),
        (
            "setInterval flood",
            "export function f() { for (let i = 0; i < 2000; i++) setInterval(() => { JSON.stringify({ i }); }, 0); return new Promise(() => {}); }",
            timeout(),
        ),
        (
            "catastrophic regex",
            "export function f() { return /^(a+)+$/.test('a'.repeat(40) + 'b'); }",
            timeout(),
        ),
        (
            "getter that loops during conversion",
            "export function f() { return { get x() { while (true) {} } }; }",
            timeout(),
        ),
        (
            "toJSON that loops during conversion",
            "export function f() { return { toJSON() { while (true) {} } }; }",
            timeout(),
        ),
        (
            "top-level await that never settles",
            "await new Promise(() => {});\nexport const f = () => 1;",
            Expect::Kind(500, "exception"),
        ),
    ];
    for (name, script, expect) in cases {
        scenario(&s, name, script, json!({}), expect).await;
    }
    // The same loops in a warm isolate.
    scenario(
        &s,
        "loop in a warm isolate",
        "export function f() { while (true) {} }",
        json!({"isolation": "none"}),
        timeout(),
    )
    .await;
    // A CPU budget is its own limit.
    scenario(
        &s,
        "cpu budget",
        "export function f() { while (true) {} }",
        json!({"timeout": 5000, "cpuTimeout": 200}),
        Expect::Kind(408, "cpu_limit"),
    )
    .await;
}

#[tokio::test]
async fn memory() {
    let s = suite_server(&[]).await;
    let mem = || Expect::Kind(507, "memory_limit");
    let cases: Vec<(&str, &str, Expect)> = vec![
        (
            // Depending on when V8 collects, the heap limit or V8's own
            // string length limit (a RangeError) is hit first.
            "flat string doubling",
            "export function f() { let s = 'x'; while (true) s = s.repeat(2); }",
            Expect::Either(&[(507, "memory_limit"), (500, "exception")]),
        ),
        (
            "growing arrays",
            "export function f() { const a = []; while (true) a.push(new Array(100000).fill(a.length)); }",
            mem(),
        ),
        (
            "new Array(1e8)",
            "export function f() { return new Array(1e8).fill(1.5).length; }",
            mem(),
        ),
        (
            "one huge ArrayBuffer",
            "export function f() { return new ArrayBuffer(1024 * 1024 * 1024).byteLength; }",
            mem(),
        ),
        (
            "many retained 1 MB buffers",
            "export function f() { const keep = []; while (true) keep.push(new Uint8Array(1 << 20)); }",
            mem(),
        ),
        (
            "object graph",
            "export function f() { const m = new Map(); for (let i = 0; ; i++) m.set(i, { i, s: 'v' + i }); }",
            mem(),
        ),
    ];
    for (name, script, expect) in cases {
        scenario(&s, name, script, json!({"timeout": 30000}), expect).await;
    }
    // Rope doubling hits V8's string length limit first: a RangeError.
    scenario(
        &s,
        "rope string doubling",
        "export function f() { let s = 'x'; while (true) s += s; }",
        json!({}),
        Expect::Kind(500, "exception"),
    )
    .await;
    // WebAssembly memory could not be capped: it is not offered.
    scenario(
        &s,
        "WebAssembly.Memory growth",
        "export function f() { const m = new WebAssembly.Memory({ initial: 1 }); while (true) m.grow(16); }",
        json!({}),
        Expect::Kind(500, "exception"),
    )
    .await;

    // Several bombs at once, with normal calls beside them.
    let pid = s.pid();
    let bombs = [
        "export function f() { const a = []; while (true) a.push(new Array(100000).fill(1)); }",
        "export function f() { const keep = []; while (true) keep.push(new Uint8Array(1 << 20)); }",
        "export function f() { const m = new Map(); for (let i = 0; ; i++) m.set(i, { i }); }",
        "export function f() { while (true) {} }",
    ];
    let mut tasks = Vec::new();
    let s = std::sync::Arc::new(s);
    for (i, bomb) in bombs.iter().enumerate() {
        let s = s.clone();
        let bomb = bomb.to_string();
        tasks.push(tokio::spawn(async move {
            let r = s.call(&bomb, "f", json!({"timeout": 3000})).await;
            (
                i,
                r.status,
                r.json()["kind"].as_str().unwrap_or("").to_string(),
            )
        }));
    }
    for i in 0..6 {
        let r = s.call(NORMAL, "f", json!({"payload": i})).await;
        assert_eq!(r.json()["result"], json!({"echo": i}));
    }
    for t in tasks {
        let (i, status, kind) = t.await.unwrap();
        let want = if i == 3 { "timeout" } else { "memory_limit" };
        assert_eq!(kind, want, "bomb {i} ({status})");
    }
    after(&s, "several at once", pid).await;
}

#[tokio::test]
async fn stack_and_output() {
    let s = suite_server(&[]).await;
    let cases: Vec<(&str, &str, Expect)> = vec![
        (
            "unbounded recursion",
            "export function f() { const r = () => r(); return r(); }",
            Expect::Kind(500, "exception"),
        ),
        (
            "deeply nested result",
            "export function f() { const o = {}; let c = o; for (let i = 0; i < 100000; i++) { c.a = {}; c = c.a; } return o; }",
            Expect::Kind(507, "output_limit"),
        ),
        (
            "huge result",
            "export function f() { return 'x'.repeat(20 * 1024 * 1024); }",
            Expect::Kind(507, "output_limit"),
        ),
        (
            "cyclic result",
            "export function f() { const o = {}; o.self = o; return o; }",
            Expect::Kind(500, "exception"),
        ),
        (
            "getter that throws",
            "export function f() { return { get x() { throw new Error('no'); } }; }",
            Expect::Kind(500, "exception"),
        ),
        (
            "BigInt, Symbol and undefined",
            "export function f() { return { big: 2n ** 70n, sym: Symbol('s'), u: undefined, list: [undefined] }; }",
            Expect::Ok(|v| *v == json!({"big": "1180591620717411303424", "list": [null]})),
        ),
        (
            "undefined result",
            "export function f() {}",
            Expect::Ok(|v| v.is_null()),
        ),
    ];
    for (name, script, expect) in cases {
        scenario(&s, name, script, json!({}), expect).await;
    }
    // A million console.log calls: kept up to the cap, flagged, not an error.
    let pid = s.pid();
    let r = s
        .call(
            "export function f() { for (let i = 0; i < 1000000; i++) console.log('line', i); return 'done'; }",
            "f",
            json!({"timeout": 30000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let b = r.json();
    assert_eq!(b["result"], "done");
    assert_eq!(b["logsTruncated"], true);
    assert_eq!(b["logs"].as_array().unwrap().len(), 1000);
    after(&s, "a million logs", pid).await;
}

#[tokio::test]
async fn hostile_code() {
    let s = suite_server(&[]).await;
    let cases: Vec<(&str, &str, Expect)> = vec![
        (
            "constructor escape",
            "export function f() { const g = (function () { return this; }).constructor('return this')(); \
             return [typeof g.Deno?.core, typeof g.__bootstrap, typeof g.WebAssembly]; }",
            Expect::Ok(|v| *v == json!(["undefined", "undefined", "undefined"])),
        ),
        (
            "throw null",
            "export function f() { throw null; }",
            Expect::Kind(500, "exception"),
        ),
        (
            "throw a string",
            "export function f() { throw 'plain'; }",
            Expect::Kind(500, "exception"),
        ),
        (
            "rejected promise",
            "export async function f() { throw new TypeError('async'); }",
            Expect::Kind(500, "exception"),
        ),
        (
            "Deno.exit mid-way",
            "export function f() { Deno.exit(4); return 1; }",
            Expect::Kind(500, "exception"),
        ),
        (
            "forbidden import",
            "import x from '/etc/passwd';\nexport const f = () => x;",
            Expect::Kind(500, "permission_denied"),
        ),
        (
            "network import",
            "import x from 'https://example.com/x.js';\nexport const f = () => x;",
            Expect::Kind(500, "permission_denied"),
        ),
        (
            "file outside the allow-list",
            "export function f() { return Deno.readTextFileSync('/etc/passwd'); }",
            Expect::Kind(500, "permission_denied"),
        ),
        (
            "network outside the allow-list",
            "export async function f() { return (await fetch('http://127.0.0.1:9/')).status; }",
            Expect::Kind(500, "permission_denied"),
        ),
    ];
    for (name, script, expect) in cases {
        scenario(&s, name, script, json!({}), expect).await;
    }

    // An unhandled rejection beside a normal return: the call still ends
    // cleanly one way or the other.
    let pid = s.pid();
    let r = s
        .call(
            "export function f() { Promise.reject(new Error('ignored')); return 1; }",
            "f",
            json!({}),
        )
        .await;
    assert!(
        r.status == 200 || r.json()["kind"] == "exception",
        "{:?}",
        r.json()
    );
    after(&s, "unhandled rejection", pid).await;

    // Prototype pollution does not reach the next call in "isolate" mode.
    let r = s
        .call(
            "export function f() { Object.prototype.polluted = 'yes'; Array.prototype.push = () => 0; return 1; }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.json()["result"], 1);
    for _ in 0..4 {
        let r = s
            .call(
                "export function f() { const a = []; a.push(1); return [({}).polluted ?? null, a.length]; }",
                "f",
                json!({}),
            )
            .await;
        assert_eq!(r.json()["result"], json!([null, 1]));
    }
    after(&s, "prototype pollution", pid).await;
}

#[tokio::test]
async fn http_abuse() {
    let s = suite_server(&[("MAX_BODY_BYTES", "64K")]).await;
    let pid = s.pid();
    // Slowloris: many connections that never finish their request head do
    // not keep others from being served.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        c.write_all(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Le")
            .await
            .unwrap();
        idle.push(c);
    }
    let r = s.call(NORMAL, "f", json!({"payload": "served"})).await;
    assert_eq!(r.json()["result"], json!({"echo": "served"}));

    // Oversized, malformed, deeply nested and non-UTF-8 bodies.
    let big = vec![b'x'; 100 * 1024];
    let r = s.request("POST", "/run", &[], big).await;
    assert_eq!(r.status, 413);
    let r = s.request("POST", "/run", &[], "{\"script\": ").await;
    assert_eq!(
        (r.status, r.json()["kind"].clone()),
        (400, json!("bad_request"))
    );
    let nested = format!("{{\"payload\": {}1{}}}", "[".repeat(5000), "]".repeat(5000));
    let r = s.request("POST", "/run", &[], nested).await;
    assert_eq!(
        (r.status, r.json()["kind"].clone()),
        (400, json!("bad_request"))
    );
    let r = s
        .request(
            "POST",
            "/run",
            &[],
            vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'],
        )
        .await;
    assert_eq!(
        (r.status, r.json()["kind"].clone()),
        (400, json!("bad_request"))
    );
    let r = s
        .request("PUT", "/workspace", &[], vec![b'{', 0xc3, 0x28, b'}'])
        .await;
    assert_eq!(r.status, 400);
    drop(idle);
    after(&s, "http abuse", pid).await;
}

#[tokio::test]
async fn saved_code_survives_a_crash_mid_save() {
    let ws = TempDir::new("crash");
    let ws_dir = ws.0.display().to_string();
    let a = "// version A\n".repeat(200_000);
    let b = "// version B\n".repeat(150_000);
    {
        let s = std::sync::Arc::new(Server::start_with(&[("WORKSPACE_DIR", ws_dir.as_str())]));
        s.save("keep", "console.log(JSON.stringify('kept'));").await;
        s.save("busy", &a).await;
        // Saves in flight when the server is killed with SIGKILL.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = s.clone();
            let code = if i % 2 == 0 { b.clone() } else { a.clone() };
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(s.addr).await;
                if let Ok(stream) = stream {
                    let body = serde_json::to_vec(&json!({"codeId": "busy", "code": code})).unwrap();
                    let head = format!(
                        "PUT /workspace HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    use tokio::io::AsyncWriteExt;
                    let mut stream = stream;
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let mut buf = [0u8; 64];
                    use tokio::io::AsyncReadExt;
                    let _ = stream.read(&mut buf).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        // SAFETY: plain kill(2) of our own child process.
        unsafe { libc::kill(s.pid() as i32, libc::SIGKILL) };
        for t in tasks {
            let _ = t.await;
        }
    }
    let saved = std::fs::read_to_string(ws.0.join("busy.ts")).unwrap();
    assert!(saved == a || saved == b, "a torn file survived the crash");

    // A restarted server cleans up and runs everything that was saved.
    let s = Server::start_with(&[("WORKSPACE_DIR", ws_dir.as_str())]);
    let leftovers = std::fs::read_dir(&ws.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(leftovers, 0);
    let r = s.execute("keep", json!({})).await;
    assert_eq!(r.json()["result"], "kept");
    // 2.4 MB of source: a generous deadline, since this checks the file,
    // not the speed of compiling it on a loaded test machine.
    let r = s.execute("busy", json!({"timeout": 60000})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["result"], Value::Null);
}

/// Reads until the server closes the connection; false if it is still open
/// after `limit`.
pub(crate) async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_silent_and_idle_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start_with(&[("HEADER_READ_TIMEOUT_MS", "300")]);
    let limit = Duration::from_secs(5);
    let partials: [&[u8]; 4] = [
        b"",
        b"PRI * HTTP/2",
        b"GET /health HTTP/1.1\r\nHost: x\r\n",
        b"G",
    ];
    for partial in partials {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        c.write_all(partial).await.unwrap();
        assert!(
            closed_within(&mut c, limit).await,
            "{:?} kept the connection open",
            String::from_utf8_lossy(partial)
        );
    }
    // A served keep-alive connection that then sits idle is closed too.
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut c, limit).await,
        "idle keep-alive stayed open"
    );
    // A call that runs longer than the idle limit keeps its connection and
    // is answered; the connection, idle after the answer, is then closed.
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let body = json!({
        "script": "export async function f() { await new Promise((r) => setTimeout(r, 900)); return 7 }",
        "fn": "f",
        "isolation": "none",
    })
    .to_string();
    let head = format!(
        "POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains(r#""result":7"#) {
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(limit, c.read(&mut buf))
            .await
            .expect("the long call was answered")
            .unwrap();
        assert!(
            n > 0,
            "closed during a long call: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        closed_within(&mut c, limit).await,
        "idle after a long call stayed open"
    );
    // A head trickled a byte at a time, after a first request on the same
    // connection: the bytes do not keep it open past the limit.
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
    {
        if started.elapsed() > limit {
            break;
        }
        if c.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        closed || closed_within(&mut c, Duration::from_millis(100)).await,
        "a trickled head kept the connection open for {:?}",
        started.elapsed()
    );
    let r = s.call(NORMAL, "f", json!({"payload": 2})).await;
    assert_eq!(r.json()["result"], json!({"echo": 2}));
}

#[tokio::test]
async fn buffers_from_ops_count_against_the_limit() {
    let s = suite_server(&[("ALLOW_READ", "/")]).await;
    // An 8 MiB file read again and again, every copy kept.
    let big = s.workspace.join("big.bin");
    std::fs::write(&big, vec![7u8; 8 << 20]).unwrap();
    let script = format!(
        "export function f() {{ const keep = []; while (true) keep.push(Deno.readFileSync('{}')); }}",
        big.display()
    );
    scenario(
        &s,
        "retained file buffers",
        &script,
        json!({"timeout": 30000}),
        Expect::Kind(507, "memory_limit"),
    )
    .await;
}
