//! Classes of input that once got past the server's defences, each run the
//! way the fault-injection suite runs its scenarios: same PID, a clear kind,
//! a concurrent normal call unaffected, the next call served, saved code
//! intact, the pool full.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::hostile::{Expect, NORMAL, after, closed_within, scenario, suite_server};
use crate::support::Server;

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

#[tokio::test]
async fn deeply_nested_source_is_a_syntax_error_in_every_mode() {
    let s = suite_server(&[]).await;
    let syntax = || Expect::Kind(400, "syntax_error");
    let cases = [
        (
            "brackets",
            format!("export const f=()=>{};", nested("[", "", "]", 5000)),
        ),
        (
            "parens",
            format!("export const f=()=>{};", nested("(", "1", ")", 200_000)),
        ),
        (
            "unary chain",
            format!("export const f=()=>{}1;", "!".repeat(1_000_000)),
        ),
        (
            "arrow chain",
            format!("export const f={}1;", "x=>".repeat(300_000)),
        ),
        (
            "if nesting",
            format!(
                "export function f(a){{{} return 1;}}",
                "if(a)".repeat(500_000)
            ),
        ),
        (
            "templates",
            format!("export const f=()=>{};", nested("`${", "1", "}`", 100_000)),
        ),
        (
            "types",
            format!(
                "export const f=(a:{})=>1;",
                nested("Array<", "number", ">", 400_000)
            ),
        ),
    ];
    for (name, script) in &cases {
        for isolation in ["isolate", "none", "process"] {
            let label = format!("{name} ({isolation})");
            scenario(
                &s,
                &label,
                script,
                json!({"isolation": isolation, "timeout": 60000}),
                syntax(),
            )
            .await;
        }
    }
    // The message says what is wrong and where.
    let r = s.call(&cases[1].1, "f", json!({"timeout": 60000})).await;
    let message = r.json()["error"].as_str().unwrap_or("").to_string();
    assert!(message.contains("nested too deeply"), "{message}");
    assert!(r.json()["details"]["line"].as_u64().is_some());
}

#[tokio::test]
async fn a_deeply_nested_saved_file_is_linted_and_run_safely() {
    let s = suite_server(&[]).await;
    let pid = s.pid();
    let code = format!("export const f = {};", nested("[", "", "]", 1_000_000));
    s.save("deep", &code).await;
    for _ in 0..2 {
        let r = s
            .post("/lint", &json!({"codeId": "deep", "timeout": 60000}))
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let errors = r.json()["result"]["errors"].clone();
        assert!(
            errors[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nested too deeply")),
            "{errors}"
        );
        let r = s.execute("deep", json!({"timeout": 60000})).await;
        assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["error"]["details"]["kind"], "syntax_error");
    }
    // Nesting a real program may have still works.
    s.save(
        "fine",
        "const a = [[[[[[[[1]]]]]]]];\nconsole.log(JSON.stringify(a.flat(9)));",
    )
    .await;
    let r = s.execute("fine", json!({})).await;
    assert_eq!(r.json()["result"], json!([1]));
    after(&s, "deep saved file", pid).await;
}

#[tokio::test]
async fn resizable_and_growable_buffers_are_refused_in_every_mode() {
    let s = suite_server(&[]).await;
    let cases = [
        "export function f() { const b = new ArrayBuffer(0, { maxByteLength: 512 * 1024 * 1024 }); b.resize(512 * 1024 * 1024); return b.byteLength; }",
        "export function f() { const b = new SharedArrayBuffer(0, { maxByteLength: 512 * 1024 * 1024 }); b.grow(512 * 1024 * 1024); return b.byteLength; }",
        // Through a subclass, and through the prototype's constructor.
        "export function f() { class B extends ArrayBuffer {} return new B(0, { maxByteLength: 1 << 29 }).byteLength; }",
        "export function f() { const C = new Uint8Array(1).buffer.constructor; return new C(0, { maxByteLength: 1 << 29 }).byteLength; }",
    ];
    for (i, script) in cases.iter().enumerate() {
        for isolation in ["isolate", "none", "process"] {
            let name = format!("growable buffer {i} ({isolation})");
            scenario(
                &s,
                &name,
                script,
                json!({"isolation": isolation}),
                Expect::Kind(500, "exception"),
            )
            .await;
        }
    }
    let r = s.call(cases[0], "f", json!({})).await;
    assert_eq!(r.json()["details"]["name"], "RangeError");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("maxByteLength"),
        "{}",
        r.json()
    );
    // Fixed-size buffers, subclasses and the usual identities still work.
    let ok = "export function f() { class B extends ArrayBuffer {} const b = new B(8); \
              const u = new Uint8Array(4); \
              return [b.byteLength, b instanceof ArrayBuffer, u.buffer.constructor === ArrayBuffer, \
              ArrayBuffer.prototype.constructor === ArrayBuffer, new SharedArrayBuffer(16).byteLength, \
              new ArrayBuffer(4).slice(1).byteLength, ArrayBuffer.isView(u)]; }";
    for isolation in ["isolate", "none"] {
        let r = s.call(ok, "f", json!({"isolation": isolation})).await;
        assert_eq!(
            r.json()["result"],
            json!([8, true, true, true, 16, 3, true]),
            "{}",
            r.json()
        );
    }
}

#[tokio::test]
async fn compiling_and_linting_count_against_the_deadline() {
    let s = suite_server(&[("MAX_BODY_BYTES", "16M")]).await;
    let pid = s.pid();
    // About 15 MB of TypeScript.
    let line =
        "let v: Array<{ a: number; b: string }> = [{ a: 1, b: \"x\" }, { a: 2, b: \"y\" }];\n";
    let big = format!(
        "{}export const f = () => 1;\n",
        line.repeat(15_000_000 / line.len())
    );
    for isolation in ["isolate", "none"] {
        let started = Instant::now();
        let (hostile, normal) = tokio::join!(
            s.call(&big, "f", json!({"timeout": 1, "isolation": isolation})),
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                s.call(NORMAL, "f", json!({"payload": "beside"})).await
            }
        );
        assert_eq!(
            hostile.status,
            408,
            "{}",
            String::from_utf8_lossy(&hostile.body)
        );
        assert_eq!(hostile.json()["kind"], "timeout");
        // Liveness only: the compile was stopped, not waited for.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(normal.json()["result"], json!({"echo": "beside"}));
    }
    // A saved file (under the 10 MB cap) whose lint outlives its timeout.
    let saved = format!(
        "{}export const f = () => 1;\n",
        line.repeat(9_500_000 / line.len())
    );
    s.save("huge", &saved).await;
    let started = Instant::now();
    let r = s
        .post("/lint", &json!({"codeId": "huge", "timeout": 50}))
        .await;
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["type"], "TimeoutError");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The work stopped: no compile helper is left busy.
    assert!(
        busy_helpers(pid).await.is_empty(),
        "a compile helper kept working"
    );
    // An import that takes too long to compile is a timeout too.
    s.save("slowdep", &saved).await;
    s.save("importer", "import './slowdep.ts';\nconsole.log('1');")
        .await;
    let r = s.execute("importer", json!({"timeout": 30})).await;
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    after(&s, "slow compile", pid).await;
}

/// Compile helpers of `pid` that are using the CPU now.
async fn busy_helpers(pid: u32) -> Vec<i32> {
    let ticks = |p: i32| -> u64 {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1.to_string();
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    let helpers: Vec<i32> = crate::support::children_with_arg(pid, b"compile-helper")
        .into_iter()
        .map(|p| p as i32)
        .collect();
    let before: Vec<u64> = helpers.iter().map(|&h| ticks(h)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    helpers
        .iter()
        .zip(before)
        .filter(|&(&h, b)| ticks(h) > b + 10)
        .map(|(&h, _)| h)
        .collect()
}

#[tokio::test]
async fn stalled_bodies_and_silent_http2_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start_with(&[
        ("HEADER_READ_TIMEOUT_MS", "300"),
        ("BODY_READ_TIMEOUT_MS", "500"),
    ]);
    let pid = s.pid();
    let limit = Duration::from_secs(5);
    // A body that stops half-way, with and without a length.
    for head in [
        "POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"script\":",
        "POST /run HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"scr\r\n",
        "PUT /workspace HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    ] {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        c.write_all(head.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let read = tokio::time::timeout(limit, c.read_to_end(&mut reply)).await;
        assert!(
            read.is_ok(),
            "{head:?}: the stalled body kept the connection"
        );
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(text.contains("did not arrive"), "{text}");
    }
    // HTTP/2: a preface and settings, then silence; and one that keeps
    // sending pings but never a request.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(preface).await.unwrap();
    assert!(
        closed_within(&mut c, limit).await,
        "a silent HTTP/2 connection stayed open"
    );
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(preface).await.unwrap();
    let mut pings = 0;
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        // A PING frame every 100 ms; the connection must still end.
        let ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08";
        if c.write_all(ping).await.is_err() {
            break;
        }
        pings += 1;
        match tokio::time::timeout(Duration::from_millis(100), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pinging kept HTTP/2 open"
        );
    }
    assert!(pings > 0);
    assert_eq!(s.pid(), pid);
    let r = s.call(NORMAL, "f", json!({"payload": 3})).await;
    assert_eq!(r.json()["result"], json!({"echo": 3}));
}

#[tokio::test]
async fn error_texts_and_program_output_are_capped() {
    let s = suite_server(&[]).await;
    let pid = s.pid();
    for isolation in ["isolate", "process"] {
        let r = s
            .call(
                "export function f() { const e = new Error('x'.repeat(5e7)); e.name = 'N'.repeat(1e6); throw e; }",
                "f",
                json!({"isolation": isolation, "timeout": 30000}),
            )
            .await;
        assert_eq!(r.status, 500, "{isolation}");
        assert!(
            r.body.len() < 1 << 20,
            "{isolation}: a reply of {} bytes",
            r.body.len()
        );
        let message = r.json()["details"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            message.contains("[cut:"),
            "{isolation}: {}",
            &message[message.len().saturating_sub(80)..]
        );
    }
    // Millions of empty lines: memory follows the bytes printed.
    s.save(
        "lines",
        "for (let i = 0; i < 2e6; i++) console.log('');\nconsole.log('42');",
    )
    .await;
    let rss_before = rss_kib(pid);
    for isolation in ["isolate", "process"] {
        let r = s
            .execute("lines", json!({"isolation": isolation, "timeout": 120000}))
            .await;
        assert_eq!(
            r.status,
            200,
            "{isolation}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["result"], 42, "{isolation}");
    }
    let grown = rss_kib(pid).saturating_sub(rss_before);
    assert!(grown < 200 * 1024, "the server grew by {grown} KiB");
    after(&s, "caps", pid).await;
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn printed_strings_are_printed_whole() {
    let s = suite_server(&[("MAX_LOG_BYTES", "64K")]).await;
    let pid = s.pid();
    // A program whose JSON result is longer than any inspection cut.
    s.save(
        "bigjson",
        "const rows = Array.from({ length: 2000 }, (_, i) => ({ i, name: 'row' + i }));\n\
         console.log(JSON.stringify(rows));",
    )
    .await;
    let r = s.execute("bigjson", json!({})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["result"].as_array().map(Vec::len), Some(2000));
    // /run: a 20,000-character line is kept whole, and one past the log cap
    // is cut and flagged.
    let r = s
        .call(
            "export function f() { console.log('y'.repeat(20000)); return 1; }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(
        r.json()["logs"][0]["message"].as_str().map(str::len),
        Some(20000)
    );
    assert!(
        r.json().get("logsTruncated").is_none(),
        "{}",
        r.json()["logsTruncated"]
    );
    let r = s
        .call(
            "export function f() { console.log('z'.repeat(100000)); return 1; }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.json()["logsTruncated"], true);
    let kept = r.json()["logs"][0]["message"].as_str().map_or(0, str::len);
    assert!(kept > 0 && kept <= 64 * 1024, "{kept}");
    after(&s, "printed strings", pid).await;
}

#[tokio::test]
async fn host_glue_does_not_use_what_user_code_patched() {
    let s = suite_server(&[("POOL_SIZE", "1")]).await;
    let pid = s.pid();
    // Script A breaks every builtin the glue might look up at run time,
    // then leaves an interval behind in the warm isolate.
    let a = "export function f() {\n\
        setInterval(() => console.log('A leaked into a later call'), 1);\n\
        const m = new Map([[1, 2]]);\n\
        const boom = () => { throw new Error('patched'); };\n\
        Map.prototype.values = boom; Map.prototype.forEach = boom; Map.prototype.get = boom;\n\
        Map.prototype.set = boom; Map.prototype.delete = boom; Map.prototype[Symbol.iterator] = boom;\n\
        Array.prototype.join = boom; Array.prototype.push = boom; Array.prototype.map = boom;\n\
        Array.prototype[Symbol.iterator] = boom; String.prototype.split = boom; String.prototype.slice = boom;\n\
        Function.prototype.call = boom; Function.prototype.apply = boom; RegExp.prototype.exec = boom;\n\
        JSON.stringify = boom; Object.entries = boom; Object.defineProperty(Uint8Array, Symbol.hasInstance, { value: boom });\n\
        globalThis.String = boom; globalThis.Math = undefined; globalThis.performance = undefined;\n\
        console.log('%s and %d', 'text', 7); console.log({ a: [1, 2] }, m);\n\
        return new Promise((r) => setTimeout(() => r('a done'), 5));\n\
      }";
    let r = s.call(a, "f", json!({"isolation": "none"})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["result"], "a done");
    assert_eq!(r.json()["logs"][0]["message"], "text and 7");
    assert_eq!(
        r.json()["logs"][1]["message"],
        "{ a: [ 1, 2 ] } Map(1) { 1 => 2 }"
    );
    // Script B, in the same warm isolate, sees none of A's interval.
    let b = "export function f() { console.log('b'); return new Promise((r) => setTimeout(() => r(btoa('ok')), 30)); }";
    let r = s.call(b, "f", json!({"isolation": "none"})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["result"], "b2s=");
    let logs: Vec<String> = r.json()["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(logs, vec!["b".to_string()]);
    after(&s, "patched builtins", pid).await;
}

#[tokio::test]
async fn long_code_ids_waits_writes_and_office_documents() {
    let ws = crate::support::TempDir::new("holes-ws");
    let out = crate::support::TempDir::new("holes-out");
    let out_dir = out.0.display().to_string();
    let s = suite_server(&[
        ("WORKSPACE_DIR", &ws.0.display().to_string()),
        ("ALLOW_WRITE", &out_dir),
        ("MAX_WRITE_BYTES", "1000"),
    ])
    .await;
    let pid = s.pid();
    // The longest codeId that fits a file name is saved and run; one more
    // is a validation error that says why.
    let id = "a".repeat(252);
    s.save(&id, "console.log(JSON.stringify('long'));").await;
    assert_eq!(s.execute(&id, json!({})).await.json()["result"], "long");
    let r = s
        .put(
            "/workspace",
            &json!({"codeId": "b".repeat(253), "code": "1"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("at most 252"));
    // Atomics.waitAsync with a timeout resolves "timed-out".
    let r = s
        .call(
            "export async function f() { const a = new Int32Array(new SharedArrayBuffer(4)); \
             const w = Atomics.waitAsync(a, 0, 0, 50); return [w.async, await w.value]; }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(
        r.json()["result"],
        json!([true, "timed-out"]),
        "{}",
        r.json()
    );
    // Writes stop at MAX_WRITE_BYTES per execution.
    let script = format!(
        "export function f() {{ const p = '{out_dir}/w.txt'; Deno.writeTextFileSync(p, 'x'.repeat(600)); \
         try {{ Deno.writeTextFileSync(p, 'y'.repeat(600)); return 'wrote twice'; }} \
         catch (e) {{ return [e.name, Deno.readTextFileSync(p).length]; }} }}"
    );
    let s2 = Server::start_with(&[
        ("ALLOW_WRITE", &out_dir),
        ("ALLOW_READ", &out_dir),
        ("MAX_WRITE_BYTES", "1000"),
    ]);
    let r = s2.call(&script, "f", json!({})).await;
    assert_eq!(
        r.json()["result"],
        json!(["QuotaExceededError", 600]),
        "{}",
        r.json()
    );
    // A new execution has its own quota.
    let r = s2.call(&script, "f", json!({})).await;
    assert_eq!(r.json()["result"][1], 600);
    // An Office document laid out as Word writes it is sniffed as one.
    let docx = "export function f() {\n\
        const parts = [['[Content_Types].xml', 7000], ['_rels/.rels', 600], ['docProps/app.xml', 800], ['word/document.xml', 900]];\n\
        const chunks = []; const enc = new TextEncoder();\n\
        for (const [name, size] of parts) { const n = enc.encode(name); const h = new Uint8Array(30);\n\
          h.set([0x50, 0x4b, 3, 4, 20]); const dv = new DataView(h.buffer);\n\
          dv.setUint32(18, size, true); dv.setUint32(22, size, true); dv.setUint16(26, n.length, true);\n\
          chunks.push(h, n, new Uint8Array(size).fill(120)); }\n\
        const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0)); let at = 0;\n\
        for (const c of chunks) { out.set(c, at); at += c.length; }\n\
        return out; }";
    let r = s.call(docx, "f", json!({})).await;
    let uri = r.json()["result"].as_str().unwrap_or("").to_string();
    assert!(
        uri.starts_with(
            "data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,"
        ),
        "{}",
        &uri[..uri.len().min(80)]
    );
    after(&s, "small holes", pid).await;
}
