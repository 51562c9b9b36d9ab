//! Describing and observing the server: the OpenAPI document against the
//! real route table, the docs pages, `/metrics` after calls of each
//! outcome, and the request log lines.

use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::spawn::{ISOEXEC_LISTENING, spawn_listening_with};
use crate::support::{Server, TempDir};

/// Whether CI asked for the external validators to be present.
fn validators_required() -> bool {
    std::env::var_os("ISOEXEC_REQUIRE_VALIDATORS").is_some()
}

#[tokio::test]
async fn the_document_describes_exactly_the_routes_served() {
    let s = Server::start();
    let r = s.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "isoexec");

    // The path set is the router's, but for the files pages load.
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let served: BTreeSet<String> = isoexec::Router::new()
        .describe()
        .into_iter()
        .filter(|r| r.methods.iter().any(|m| m.described))
        .map(|r| r.pattern.to_string())
        .collect();
    assert_eq!(documented, served);
    for assets in ["/docs/{asset}", "/redoc/{asset}", "/playground/{asset}"] {
        assert!(doc["paths"][assets].is_null(), "{assets} is described");
    }

    // Every method the router serves is there, and every $ref resolves.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut ids = BTreeSet::new();
    for route in isoexec::Router::new().describe() {
        let item = &doc["paths"][route.pattern];
        for info in route.methods.iter().filter(|m| m.described) {
            let (m, auth) = (&info.method, &info.auth);
            let op = &item[m.to_ascii_lowercase()];
            assert!(op.is_object(), "{m} {} missing", route.pattern);
            assert!(
                ids.insert(op["operationId"].as_str().unwrap().to_string()),
                "duplicate operationId"
            );
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            // Path parameters are declared.
            for segment in route.pattern.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(['{', '}']);
                assert!(
                    op["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{} lacks {name}",
                    route.pattern
                );
            }
            assert_eq!(op["security"].is_array(), *auth, "{m} {}", route.pattern);
        }
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a schema ref");
        assert!(schemas.contains_key(name), "{r} does not resolve");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Every JSON reply has a schema (the environments' too), and a reply
    // with no JSON body shows none (no timeout example under a 405).
    let envs = &doc["paths"]["/api/v1/environments"]["get"]["responses"]["200"];
    assert!(
        envs["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .is_some_and(|r| r.ends_with("EnvironmentList")),
        "{envs}"
    );
    assert!(doc["paths"]["/"]["get"]["responses"]["405"]["content"].is_null());
    // The types the handlers use carry product.md's examples.
    assert_eq!(schemas["RunRequest"]["example"]["fn"], "add");
    assert!(schemas["JobView"]["properties"]["exit_code"].is_object());

    // And an OpenAPI validator accepts it, where one is installed.
    let dir = TempDir::new("openapi");
    let file = dir.0.join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('valid')",
        ])
        .arg(&file)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                !validators_required() && err.contains("No module named"),
                "the validator refused the document: {err}"
            );
        }
        Err(e) => assert!(!validators_required(), "python3: {e}"),
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.extend(v.as_str().map(String::from));
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_docs_pages_load_nothing_from_outside() {
    let s = Server::start_with(&[("API_KEY", "k")]);
    for (page, assets) in [
        (
            "/docs",
            vec![
                "/docs/swagger-ui.css",
                "/docs/swagger-ui-bundle.js",
                "/docs/init.js",
            ],
        ),
        ("/redoc", vec!["/redoc/redoc.standalone.js"]),
    ] {
        // Open even with an API key set: the document is public.
        let r = s.get(page).await;
        assert_eq!(r.status, 200, "{page}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let html = String::from_utf8_lossy(&r.body).to_string();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{page}: {html}"
        );
        for asset in assets {
            assert!(
                html.contains(asset) || asset.ends_with("init.js"),
                "{page} does not use {asset}"
            );
            let r = s.get(asset).await;
            assert_eq!(r.status, 200, "{asset}");
            let ct = r.header("content-type").unwrap();
            assert!(ct.ends_with("charset=utf-8"), "{asset}: {ct}");
            assert!(r.body.len() > 20, "{asset}");
        }
    }
    let init = String::from_utf8_lossy(&s.get("/docs/init.js").await.body).to_string();
    assert!(init.contains("\"/openapi.json\"") && init.contains("validatorUrl: null"));
    assert_eq!(s.get("/openapi.json").await.status, 200);
    assert_eq!(s.get("/docs/nope.js").await.status, 404);
    // Every page load asks for an icon: there is one.
    let icon = s.get("/favicon.ico").await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    assert!(String::from_utf8_lossy(&icon.body).starts_with("<svg"));
}

/// `name{labels} value` lines of an exposition, by series.
fn series(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_exactly_what_was_sent() {
    let s = Server::start_with(&[("MEMORY_LIMIT_MB", "64")]);
    let before = series(&String::from_utf8_lossy(&s.get("/metrics").await.body));
    let ok = "export const f = () => 1";
    for _ in 0..3 {
        s.call(ok, "f", json!({})).await;
    }
    for _ in 0..2 {
        s.call(
            "export const f = () => { throw new Error('x') }",
            "f",
            json!({}),
        )
        .await;
    }
    s.call(
        "export const f = () => { while (true) {} }",
        "f",
        json!({"timeout": 50}),
    )
    .await;
    s.call("export const f = ( =>", "f", json!({})).await;
    s.call(ok, "f", json!({"isolation": "none"})).await;
    s.get("/missing/path/123").await;
    s.post(
        "/execute/code",
        &json!({"lang": "js", "code": "console.log(1)"}),
    )
    .await;

    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8_lossy(&r.body).to_string();
    let after = series(&text);
    let since = |now: &HashMap<String, f64>, key: &str| {
        now.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
    };
    let moved = |key: &str| since(&after, key);
    let exec = |api: &str, iso: &str, outcome: &str| {
        moved(&format!(
            "isoexec_executions_total{{api=\"{api}\",isolation=\"{iso}\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(exec("run", "isolate", "ok"), 3.0);
    assert_eq!(exec("run", "isolate", "exception"), 2.0);
    assert_eq!(exec("run", "isolate", "timeout"), 1.0);
    assert_eq!(exec("run", "isolate", "syntax_error"), 1.0);
    assert_eq!(exec("run", "none", "ok"), 1.0);
    assert_eq!(exec("jobs", "isolate", "ok"), 1.0);
    let http = |route: &str, method: &str, status: u16| {
        moved(&format!(
            "isoexec_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(http("/run", "POST", 200), 4.0);
    assert_eq!(http("/run", "POST", 500), 2.0);
    assert_eq!(http("/run", "POST", 408), 1.0);
    assert_eq!(http("/run", "POST", 400), 1.0);
    // Unknown paths share one label; raw paths never appear.
    assert_eq!(http("(none)", "GET", 404), 1.0);
    assert!(!text.contains("/missing/path/123"));
    assert_eq!(moved("isoexec_jobs_total{status=\"done\"}"), 1.0);
    assert_eq!(
        moved("isoexec_execution_duration_seconds_count{isolation=\"isolate\"}"),
        8.0
    );
    // Each isolate-mode call uses an isolate made ahead of time and has a
    // new one made after its answer: the eighth may still be in the making.
    let key = "isoexec_isolates_created_total";
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut created = moved(key);
    while created < 8.0 && std::time::Instant::now() < limit {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let now = series(&String::from_utf8_lossy(&s.get("/metrics").await.body));
        created = since(&now, key);
    }
    assert!(
        created >= 8.0,
        "{created} isolates made for 8 isolate-mode calls"
    );
    for gauge in [
        "isoexec_pool_threads",
        "isoexec_pool_busy",
        "isoexec_queue_depth",
        "isoexec_sessions_active",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "isoexec_queue_wait_seconds_count",
    ] {
        assert!(after.contains_key(gauge), "{gauge} missing:\n{text}");
    }
    assert_eq!(after["isoexec_pool_threads"], 2.0);
    let om = s
        .request(
            "GET",
            "/metrics",
            &[("accept", "application/openmetrics-text")],
            "",
        )
        .await;
    assert!(
        om.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(
        String::from_utf8_lossy(&om.body)
            .trim_end()
            .ends_with("# EOF")
    );

    // Clean under promtool, where it is installed.
    let dir = TempDir::new("metrics");
    let file = dir.0.join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
    {
        Ok(o) => assert!(
            o.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => assert!(!validators_required(), "promtool: {e}"),
    }
}

/// Starts the binary with `env`, its stderr going to a file; returns the
/// child, its address and the file.
fn start_logged(
    env: &[(&str, &str)],
    dir: &TempDir,
) -> (
    std::process::Child,
    std::net::SocketAddr,
    std::path::PathBuf,
) {
    let log = dir.0.join("stderr.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_isoexec"));
    cmd.env("PORT", "0")
        .env("POOL_SIZE", "2")
        .env("WORKSPACE_DIR", dir.0.join("ws"))
        .env("DATA_DIR", dir.0.join("data"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let file = std::fs::File::create(&log).unwrap();
    let (child, addr) = spawn_listening_with(cmd, ISOEXEC_LISTENING, Stdio::from(file));
    (child, addr, log)
}

async fn post(addr: std::net::SocketAddr, path: &str, body: Value) -> u16 {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", addr.to_string())
        .header("x-request-id", "req-under-test")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

fn stop(child: &mut std::process::Child) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn every_request_is_one_log_line_with_its_facts() {
    let dir = TempDir::new("logs-json");
    let (mut child, addr, log) = start_logged(&[("LOG_FORMAT", "json")], &dir);
    assert_eq!(
        post(
            addr,
            "/run",
            json!({"script": "export const f = () => 1", "fn": "f"})
        )
        .await,
        200
    );
    assert_eq!(
        post(
            addr,
            "/run",
            json!({"script": "export const f = () => { throw new Error('mine') }", "fn": "f"})
        )
        .await,
        500
    );
    stop(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let done: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "done")
        .collect();
    assert_eq!(done.len(), 2, "{text}");
    for line in &done {
        assert_eq!(line["span"]["id"], "req-under-test");
        assert_eq!(line["span"]["method"], "POST");
        assert_eq!(line["span"]["route"], "/run");
        assert!(line["fields"]["ms"].as_f64().is_some());
    }
    assert_eq!(done[0]["fields"]["status"], 200);
    assert_eq!(done[0]["fields"]["kind"], "-");
    assert_eq!(done[1]["fields"]["status"], 500);
    // A tenant's exception is not our bug: its kind says so.
    assert_eq!(done[1]["fields"]["kind"], "exception");
    assert!(!text.contains("internal error"), "{text}");
    // The last line says the server stopped.
    assert_eq!(
        lines.last().unwrap()["fields"]["message"],
        "stopped",
        "{text}"
    );

    // Plain text to a file: no colour codes.
    let dir = TempDir::new("logs-text");
    let (mut child, addr, log) = start_logged(&[], &dir);
    post(
        addr,
        "/run",
        json!({"script": "export const f = () => 1", "fn": "f"}),
    )
    .await;
    stop(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("route=\"/run\""), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text:?}");
}
