//! The restexec-compatible API: workspace, execute, lint, health and auth,
//! over real HTTP.

use serde_json::{Value, json};

use crate::support::{Server, TempDir};

/// A server whose workspace is a copy of `examples/workspace` and whose
/// tools directory is `examples/tools`.
fn example_server(extra: &[(&str, &str)]) -> (Server, TempDir) {
    let root = env!("CARGO_MANIFEST_DIR");
    // The import map reaches the tools as `../tools/`: the copy lives in
    // `<tmp>/w` beside a `<tmp>/tools` link to the real tools directory.
    let ws = TempDir::new("examples");
    std::fs::create_dir_all(ws.0.join("w")).unwrap();
    for entry in std::fs::read_dir(format!("{root}/examples/workspace")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), ws.0.join("w").join(entry.file_name())).unwrap();
    }
    let tools = format!("{root}/examples/tools");
    std::os::unix::fs::symlink(&tools, ws.0.join("tools")).unwrap();
    let ws_path = ws.0.display().to_string();
    let ws_dir = format!("{ws_path}/w");
    let mut env = vec![
        ("WORKSPACE_DIR", ws_dir.as_str()),
        ("TOOLS_DIR", tools.as_str()),
    ];
    env.extend_from_slice(extra);
    (Server::start_with(&env), ws)
}

fn error_type(r: &crate::support::Reply) -> String {
    r.json()["error"]["type"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn the_example_scripts_return_their_json() {
    let (server, _ws) = example_server(&[]);
    let r = server.execute("hello-world", json!({})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["success"], true);
    assert_eq!(
        body["result"],
        json!({"message": "Hello, World!", "timestamp": "1970-01-01T00:00:00.000Z", "status": "success"})
    );
    assert!(body["executionTime"].is_u64());

    let r = server.execute("with-import", json!({})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["result"],
        json!({"calculation": 30, "product": 42, "text": "Hello World", "status": "success"})
    );

    let r = server
        .execute("async-example", json!({"timeout": 2000}))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["result"],
        json!({"values": [1, 2, 3], "total": 6, "status": "success"})
    );
}

#[tokio::test]
async fn the_workspace_saves_reads_lists_and_deletes() {
    let server = Server::start();
    let markdown =
        "Here is the code:\n```typescript\nconsole.log(JSON.stringify({ok: 1}));\n```\nEnjoy.";
    let r = server
        .put("/workspace", &json!({"codeId": "md-1", "code": markdown}))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let saved = r.json();
    assert_eq!(saved["success"], true);
    assert_eq!(saved["result"]["codeId"], "md-1");
    let code = "console.log(JSON.stringify({ok: 1}));";
    assert_eq!(saved["result"]["size"], code.len());
    let file_path = saved["result"]["filePath"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(file_path).unwrap(), code);
    assert!(file_path.starts_with(server.workspace.to_str().unwrap()));

    let r = server.get("/workspace/md-1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["code"], code);

    server.save("other", "console.log(1)").await;
    let r = server.get("/workspace").await;
    assert_eq!(r.status, 200);
    let files = r.json()["result"]["files"].clone();
    let ids: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["codeId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["md-1", "other"]);
    assert_eq!(files[0]["size"], code.len());
    assert!(files[0]["modifiedMs"].as_u64().unwrap() > 0);

    let r = server.execute("md-1", json!({})).await;
    assert_eq!(r.json()["result"], json!({"ok": 1}));

    let r = server.request("DELETE", "/workspace/md-1", &[], "").await;
    assert_eq!(r.status, 200);
    let r = server.get("/workspace/md-1").await;
    assert_eq!(r.status, 404);
    assert_eq!(error_type(&r), "FileNotFoundError");
    let r = server.execute("md-1", json!({})).await;
    assert_eq!(r.status, 404);
    assert_eq!(error_type(&r), "FileNotFoundError");

    // Empty code, missing fields and code over 10 MB are refused.
    for body in [
        json!({"codeId": "e", "code": ""}),
        json!({"codeId": "e", "code": "```ts\n   \n```"}),
        json!({"codeId": "e"}),
        json!({"code": "x"}),
        json!({"codeId": "e", "code": 5}),
    ] {
        let r = server.put("/workspace", &body).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(error_type(&r), "ValidationError");
    }
    let big = "x".repeat(10 * 1024 * 1024 + 1);
    let r = server
        .put("/workspace", &json!({"codeId": "big", "code": big}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(error_type(&r), "ValidationError");
    assert!(!server.workspace.join("big.ts").exists());
}

#[tokio::test]
async fn bad_code_ids_and_timeouts_are_validation_errors() {
    let server = Server::start();
    server.save("ok", "console.log(1)").await;
    let long = "a".repeat(256);
    for id in ["../x", "a/b", "a\\b", "", long.as_str()] {
        for r in [
            server
                .put("/workspace", &json!({"codeId": id, "code": "1"}))
                .await,
            server.execute(id, json!({})).await,
            server.post("/lint", &json!({"codeId": id})).await,
        ] {
            assert_eq!(
                r.status,
                400,
                "{id:?}: {}",
                String::from_utf8_lossy(&r.body)
            );
            assert_eq!(error_type(&r), "ValidationError");
            assert_eq!(r.json()["success"], false);
        }
    }
    assert!(!server.workspace.parent().unwrap().join("x.ts").exists());
    let r = server.get("/workspace/..%2Fx").await;
    assert_eq!(r.status, 400);

    for timeout in [json!(0), json!(-5), json!(300001), json!("abc")] {
        let r = server.execute("ok", json!({"timeout": timeout})).await;
        assert_eq!(r.status, 400, "{timeout}");
        assert_eq!(error_type(&r), "ValidationError");
        assert_eq!(r.json()["error"]["details"]["field"], "timeout");
    }
    for env in [
        json!({"lower": "x"}),
        json!({"PATH": "/bin"}),
        json!({"HOME": "/"}),
        json!({"DENO_DIR": "/"}),
        json!({"A": 1}),
        json!(["A"]),
    ] {
        let r = server.execute("ok", json!({"env": env})).await;
        assert_eq!(r.status, 400, "{env}");
        assert_eq!(error_type(&r), "ValidationError");
    }
    let r = server.execute("ok", json!({"timeout": 300000})).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn output_exit_codes_and_failures_follow_the_contract() {
    let server = Server::start();
    let cases: &[(&str, &str)] = &[
        (
            "exit3",
            "console.log('partial'); console.error('bad'); Deno.exit(3); console.log('never');",
        ),
        (
            "exit0",
            "console.log(JSON.stringify([1, 2])); Deno.exit(0);",
        ),
        ("text", "console.log('plain words');"),
        ("silent", "const x = 1;"),
        (
            "throws",
            "console.log('before'); throw new TypeError('broken thing');",
        ),
        (
            "rejects",
            "await Promise.reject(new Error('async broken'));",
        ),
        ("syntax", "const = ;"),
        ("loop", "while (true) {}"),
        (
            "env",
            "let other; try { Deno.env.get('OTHER'); other = 'read'; } catch (e) { other = e.name; }\nconsole.log(JSON.stringify({v: Deno.env.get('MY_VAR'), other}));",
        ),
        (
            "timers",
            "let n = 0; const id = setInterval(() => { n++; if (n === 3) { clearInterval(id); console.log(JSON.stringify({n})); } }, 1);",
        ),
        (
            "state",
            "globalThis.seen = (globalThis.seen ?? 0) + 1; console.log(JSON.stringify({seen: globalThis.seen}));",
        ),
        (
            "warn",
            "console.warn('careful'); console.info(JSON.stringify({info: true}));",
        ),
    ];
    for (id, code) in cases {
        server.save(id, code).await;
    }

    let r = server.execute("exit3", json!({})).await;
    assert_eq!(r.status, 500);
    let b = r.json();
    assert_eq!(b["error"]["type"], "ExecutionError");
    assert_eq!(b["error"]["details"]["exitCode"], 3);
    assert_eq!(b["error"]["details"]["stdout"], "partial\n");
    assert_eq!(b["error"]["details"]["stderr"], "bad\n");

    let r = server.execute("exit0", json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], json!([1, 2]));

    assert_eq!(
        server.execute("text", json!({})).await.json()["result"],
        "plain words"
    );
    assert_eq!(
        server.execute("silent", json!({})).await.json()["result"],
        Value::Null
    );

    let r = server.execute("throws", json!({})).await;
    assert_eq!(r.status, 500);
    let b = r.json();
    assert_eq!(b["error"]["type"], "ExecutionError");
    assert_eq!(b["error"]["details"]["kind"], "exception");
    assert_eq!(b["error"]["details"]["exitCode"], 1);
    assert_eq!(b["error"]["details"]["stdout"], "before\n");
    let stderr = b["error"]["details"]["stderr"].as_str().unwrap();
    assert!(stderr.contains("TypeError: broken thing"), "{stderr}");

    let r = server.execute("rejects", json!({})).await;
    assert_eq!(r.status, 500);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("async broken")
    );

    let r = server.execute("syntax", json!({})).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["details"]["kind"], "syntax_error");

    let started = std::time::Instant::now();
    let r = server.execute("loop", json!({"timeout": 300})).await;
    assert_eq!(r.status, 408);
    assert_eq!(error_type(&r), "TimeoutError");
    assert_eq!(r.json()["error"]["details"]["kind"], "timeout");
    // restexec's message and detail, to the letter.
    assert_eq!(
        r.json()["error"]["message"],
        "Execution timed out after 300ms"
    );
    assert_eq!(r.json()["error"]["details"]["timeout"], 300);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    let r = server
        .execute("env", json!({"env": {"MY_VAR": "hello"}}))
        .await;
    // As Deno: a variable that was not allowed is refused, not undefined.
    assert_eq!(
        r.json()["result"],
        json!({"v": "hello", "other": "PermissionDenied"})
    );

    assert_eq!(
        server.execute("timers", json!({})).await.json()["result"],
        json!({"n": 3})
    );

    // Every run starts clean.
    for _ in 0..3 {
        assert_eq!(
            server.execute("state", json!({})).await.json()["result"],
            json!({"seen": 1})
        );
    }
    let r = server.execute("warn", json!({})).await;
    assert_eq!(r.json()["result"], json!({"info": true}));
    server.assert_healthy().await;
}

#[tokio::test]
async fn files_outside_the_allow_lists_are_refused() {
    let server = Server::start();
    server
        .save(
            "passwd",
            "const t = await Deno.readTextFile('/etc/passwd'); console.log(JSON.stringify(t));",
        )
        .await;
    server
        .save(
            "climb",
            "try { Deno.readTextFileSync('../../../../../etc/passwd'); console.log('read'); } \
             catch (e) { console.log(JSON.stringify({name: e.name, isDenied: e instanceof Deno.errors.PermissionDenied})); }",
        )
        .await;
    server
        .save(
            "own",
            "const me = await Deno.readTextFile('./own.ts'); console.log(JSON.stringify(me.length));",
        )
        .await;
    server
        .save(
            "write",
            "await Deno.writeTextFile('./out.txt', 'x'); console.log('wrote');",
        )
        .await;
    std::os::unix::fs::symlink("/etc/passwd", server.workspace.join("link.txt")).unwrap();
    server
        .save("link", "console.log(Deno.readTextFileSync('link.txt'));")
        .await;

    for id in ["passwd", "link"] {
        let r = server.execute(id, json!({})).await;
        assert_eq!(r.status, 500, "{id}");
        let b = r.json();
        assert_eq!(b["error"]["type"], "ExecutionError");
        assert_eq!(b["error"]["details"]["kind"], "permission_denied", "{b}");
        assert!(
            !r.body.windows(5).any(|w| w == b"root:"),
            "{id} leaked the file"
        );
    }
    let r = server.execute("climb", json!({})).await;
    assert_eq!(
        r.json()["result"],
        json!({"name": "PermissionDenied", "isDenied": true})
    );

    let r = server.execute("own", json!({})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["result"].as_u64().unwrap() > 10);

    // Writing is off by default.
    let r = server.execute("write", json!({})).await;
    assert_eq!(r.json()["error"]["details"]["kind"], "permission_denied");
    assert!(!server.workspace.join("out.txt").exists());
}

#[tokio::test]
async fn writes_inside_allow_write_land() {
    let out = TempDir::new("out");
    let server = Server::start_with(&[("ALLOW_WRITE", out.0.to_str().unwrap())]);
    let code = format!(
        "await Deno.writeTextFile('{0}/a.txt', 'one'); await Deno.writeTextFile('{0}/a.txt', '+two', {{append: true}}); \
         console.log(JSON.stringify('ok'));",
        out.0.display()
    );
    server.save("w", &code).await;
    let r = server.execute("w", json!({})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        std::fs::read_to_string(out.0.join("a.txt")).unwrap(),
        "one+two"
    );
}

#[tokio::test]
async fn imports_resolve_through_the_map_and_refusals_name_the_specifier() {
    let (server, _ws) = example_server(&[]);
    server
        .save(
            "missing",
            "import { nope } from 'utils/nope.ts';\nconsole.log(nope);",
        )
        .await;
    server
        .save(
            "remote",
            "import x from 'https://deno.land/x/evil/mod.ts';\nconsole.log(x);",
        )
        .await;
    server
        .save("bare", "import x from 'left-pad';\nconsole.log(x);")
        .await;
    server
        .save("rel", "import { capitalize } from '../tools/utils/string.ts';\nconsole.log(JSON.stringify(capitalize('a b')));")
        .await;

    let r = server.execute("missing", json!({})).await;
    assert_eq!(r.status, 500);
    let text = r.json().to_string();
    assert!(text.contains("utils/nope.ts"), "{text}");

    let r = server.execute("remote", json!({})).await;
    assert_eq!(r.status, 500);
    let b = r.json();
    assert_eq!(b["error"]["details"]["kind"], "permission_denied");
    assert!(b.to_string().contains("https://deno.land/x/evil/mod.ts"));

    let r = server.execute("bare", json!({})).await;
    assert!(r.json().to_string().contains("left-pad"));

    let r = server.execute("rel", json!({})).await;
    assert_eq!(
        r.json()["result"],
        "A B",
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // Function calls share the resolver.
    let r = server
        .call(
            "import { add } from 'utils/math.ts';\nexport function f(p: number) { return add(p, 1); }",
            "f",
            json!({"payload": 41}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["result"], 42);

    // The import map is read again when it changes.
    let map = server.workspace.join("import_map.json");
    std::fs::write(&map, r#"{"imports": {"tools/": "../tools/"}}"#).unwrap();
    server
        .save(
            "remapped",
            "import { add } from 'tools/utils/math.ts';\nconsole.log(add(1, 1));",
        )
        .await;
    let r = server.execute("remapped", json!({})).await;
    assert_eq!(
        r.json()["result"],
        2,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[tokio::test]
async fn lint_reports_diagnostics_and_parse_errors() {
    let server = Server::start();
    server
        .save("unused", "const unused = 1;\nconsole.log('x');\n")
        .await;
    server.save("broken", "const = ;").await;
    let r = server.post("/lint", &json!({"codeId": "unused"})).await;
    assert_eq!(r.status, 200);
    let b = r.json();
    assert_eq!(b["success"], true);
    let result = &b["result"];
    assert_eq!(result["version"], 1);
    let d = result["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "no-unused-vars")
        .expect("no-unused-vars")
        .clone();
    assert_eq!(
        d["range"]["start"],
        json!({"line": 1, "col": 6, "bytePos": 6})
    );
    assert_eq!(
        d["range"]["end"],
        json!({"line": 1, "col": 12, "bytePos": 12})
    );
    let path = server.workspace.join("unused.ts").display().to_string();
    assert_eq!(d["filename"], format!("file://{path}"));
    assert_eq!(result["checkedFiles"], json!([path]));
    assert_eq!(result["checked_files"], json!([path]));
    assert!(b["executionTime"].is_u64());

    let r = server.post("/lint", &json!({"codeId": "broken"})).await;
    assert_eq!(r.status, 200);
    let result = r.json()["result"].clone();
    assert_eq!(result["errors"].as_array().unwrap().len(), 1);
    assert!(result["errors"][0]["message"].as_str().unwrap().len() > 3);

    let r = server.post("/lint", &json!({"codeId": "absent"})).await;
    assert_eq!(r.status, 404);
    assert_eq!(error_type(&r), "FileNotFoundError");
}

#[tokio::test]
async fn health_and_auth_speak_restexec() {
    let server = Server::start_with(&[("API_KEY", "k3y")]);
    let r = server.get("/health").await;
    assert_eq!(r.status, 200);
    let h = r.json();
    assert_eq!(h["status"], "ok");
    assert!(h["uptime"].is_f64());
    assert!(h["activeProcesses"].is_u64());
    for field in ["rss", "heapTotal", "heapUsed", "external"] {
        assert!(h["memoryUsage"][field].is_u64(), "{field}: {h}");
    }
    assert!(h["memoryUsage"]["rss"].as_u64().unwrap() > 0);
    assert!(h["version"].is_string());
    assert_eq!(h["pool"]["size"], 2);

    let r = server.get("/workspace").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["success"], false);
    let r = server
        .request("GET", "/workspace", &[("authorization", "Bearer k3y")], "")
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn concurrent_saves_of_one_code_id_never_mix() {
    let server = std::sync::Arc::new(Server::start());
    let a = "// A\n".repeat(50_000);
    let b = "// B\n".repeat(40_000);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let server = server.clone();
        let code = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            server
                .put("/workspace", &json!({"codeId": "race", "code": code}))
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let saved = std::fs::read_to_string(server.workspace.join("race.ts")).unwrap();
    assert!(saved == a || saved == b, "a torn or mixed file");
    let leftovers: Vec<_> = std::fs::read_dir(&server.workspace)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

/// A one-route HTTP server on loopback that echoes the request.
async fn echo_server() -> std::net::SocketAddr {
    use http_body_util::{BodyExt, Full};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let method = req.method().to_string();
                        let path = req.uri().to_string();
                        let header = req
                            .headers()
                            .get("x-test")
                            .map(|v| v.to_str().unwrap_or("").to_string());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let reply = json!({
                            "method": method,
                            "path": path,
                            "header": header,
                            "body": String::from_utf8_lossy(&body),
                        });
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(201)
                                .header("content-type", "application/json")
                                .body(Full::new(bytes::Bytes::from(reply.to_string())))
                                .unwrap(),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn fetch_reaches_only_allowed_hosts() {
    let echo = echo_server().await;
    let allowed = echo.to_string();
    let server = Server::start_with(&[("ALLOW_NET", allowed.as_str())]);
    let code = format!(
        "const r = await fetch('http://{echo}/p?q=1', {{method: 'POST', headers: {{'x-test': 'yes'}}, body: 'hello'}});\n\
         console.log(JSON.stringify({{status: r.status, ok: r.ok, type: r.headers.get('Content-Type'), echo: await r.json()}}));"
    );
    server.save("net", &code).await;
    let r = server.execute("net", json!({})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["result"],
        json!({"status": 201, "ok": true, "type": "application/json",
               "echo": {"method": "POST", "path": "/p?q=1", "header": "yes", "body": "hello"}})
    );

    // Another port of the same host is not on the list.
    let other = format!("http://127.0.0.1:{}/", echo.port() + 1);
    server
        .save(
            "denied",
            &format!("await fetch('{other}'); console.log('reached');"),
        )
        .await;
    let r = server.execute("denied", json!({})).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["details"]["kind"], "permission_denied");

    // With the default (empty) list, function calls cannot fetch either.
    let closed = Server::start();
    let r = closed
        .call(
            &format!(
                "export async function f() {{ return (await fetch('http://{echo}/')).status; }}"
            ),
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["kind"], "permission_denied");
}

/// A program's error reads the same through restexec, code jobs, script
/// sessions and the command line.
#[tokio::test]
async fn a_program_error_reads_alike_through_every_front_end() {
    let s = Server::start();
    let cases = [
        ("let x = ;\n", "error: SyntaxError: "),
        (
            "Deno.readTextFileSync('/etc/hostname');\n",
            "error: Uncaught PermissionDenied: ",
        ),
        (
            "throw new TypeError('bad');\n",
            "error: Uncaught TypeError: bad",
        ),
    ];
    for (i, (code, line)) in cases.into_iter().enumerate() {
        // restexec
        let id = format!("alike{i}");
        s.save(&id, code).await;
        let r = s.execute(&id, json!({})).await;
        let restexec = r.json()["error"]["details"]["stderr"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // code jobs
        let job = s
            .post("/execute/code", &json!({"lang": "ts", "code": code}))
            .await
            .json();
        let jobs = job["output"].as_str().unwrap_or_default().to_string();
        assert_eq!(job["exit_code"], 1, "{job}");
        // script sessions
        let session = s
            .post("/api/v1/sessions", &json!({"environment": "typescript"}))
            .await
            .json();
        let sid = session["session_id"].as_str().unwrap_or_default();
        let ran = s
            .post(
                &format!("/api/v1/sessions/{sid}/execute"),
                &json!({"code": code}),
            )
            .await
            .json();
        let sessions = ran["stderr"].as_str().unwrap_or_default().to_string();
        assert_eq!(ran["exit_code"], 1, "{ran}");
        // the command line
        let file = s.workspace.join(format!("{id}.ts"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_isoexec"))
            .arg("run")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let cli = String::from_utf8_lossy(&out.stderr).into_owned();
        for (front, text) in [
            ("restexec", &restexec),
            ("jobs", &jobs),
            ("sessions", &sessions),
            ("cli", &cli),
        ] {
            assert!(text.contains(line), "{front}: {text:?} lacks {line:?}");
        }
    }
}
