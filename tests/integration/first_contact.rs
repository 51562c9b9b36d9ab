//! What a new user trips over: input dropped without a word, errors that do
//! not teach, the command line, and settings validated at start.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Server, TempDir};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isoexec"))
}

#[tokio::test]
async fn unknown_fields_are_named_with_the_field_meant() {
    let s = Server::start();
    let script = "export const f = (p) => p";
    for (body, field, meant) in [
        (
            json!({"script": script, "fn": "f", "params": 1}),
            "params",
            Some("payload"),
        ),
        (
            json!({"script": script, "fn": "f", "timeoutMs": 5}),
            "timeoutMs",
            Some("timeout"),
        ),
        (
            json!({"scirpt": script, "fn": "f"}),
            "scirpt",
            Some("script"),
        ),
        (
            json!({"script": script, "fn": "f", "color": "red"}),
            "color",
            None,
        ),
    ] {
        let r = s.post("/run", &body).await;
        assert_eq!(r.status, 400, "{body}");
        let j = r.json();
        assert_eq!(j["details"]["field"], field, "{body}");
        assert_eq!(j["details"]["did_you_mean"].as_str(), meant, "{body}");
        assert!(j["error"].as_str().unwrap().contains(field));
    }
    let r = s
        .put("/workspace", &json!({"codeid": "a", "code": "1"}))
        .await;
    assert_eq!(r.json()["error"]["details"]["field"], "codeid");
    assert_eq!(r.json()["error"]["details"]["did_you_mean"], "codeId");
    let r = s
        .post("/execute/code", &json!({"language": "js", "code": "1"}))
        .await;
    assert_eq!(r.json()["details"]["did_you_mean"], "lang");
    let r = s
        .post(
            "/api/v1/sessions",
            &json!({"environment": "node", "mdoe": "script"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["details"]["did_you_mean"], "mode");
    assert!(r.json()["detail"].as_str().unwrap().contains("mdoe"));
}

#[tokio::test]
async fn bad_bodies_say_what_object_was_expected_without_rust_names() {
    let s = Server::start();
    for (path, body) in [
        ("/run", "[1, 2]"),
        ("/run", "\"export const f = 1\""),
        ("/run", "42"),
        ("/run", "{\"script\": 42, \"fn\": \"f\"}"),
        ("/run", "{\"script\": \"x\""),
        ("/execute", "[]"),
        ("/workspace", "null"),
        ("/execute/code", "true"),
        ("/api/v1/sessions", "[{}]"),
    ] {
        let method = if path == "/workspace" { "PUT" } else { "POST" };
        let r = s
            .request(method, path, &[("content-type", "application/json")], body)
            .await;
        assert_eq!(r.status, 400, "{path} {body}");
        let text = String::from_utf8_lossy(&r.body).to_string();
        for rust in [
            "struct",
            "RunBody",
            "HashMap",
            "Map<",
            "RawValue",
            "invalid type",
        ] {
            assert!(!text.contains(rust), "{path} {body}: {text}");
        }
        let j = r.json();
        let details = if path == "/execute" || path == "/workspace" {
            &j["error"]["details"]
        } else {
            &j["details"]
        };
        assert!(
            details["field"].is_string(),
            "{path} {body}: no details.field in {j}"
        );
        if body.starts_with('[') || body == "42" || body == "true" || body == "null" {
            assert!(
                text.contains("must be a JSON object such as"),
                "{path} {body}: {text}"
            );
        }
    }
    // /execute with code: save it first, or run it as a code job.
    let r = s
        .post(
            "/execute",
            &json!({"codeId": "x", "code": "console.log(1)"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("PUT /workspace") && message.contains("/execute/code"),
        "{message}"
    );
    // restexec clients read executionTime on every /execute and /lint reply.
    for path in ["/execute", "/lint"] {
        let r = s.post(path, &json!({"codeId": "../bad"})).await;
        assert_eq!(r.status, 400);
        assert!(r.json()["executionTime"].is_u64(), "{path}: {}", r.json());
        let r = s.post(path, &json!({"codeId": "missing"})).await;
        assert_eq!(r.status, 404);
        assert!(r.json()["executionTime"].is_u64(), "{path}");
    }
}

#[tokio::test]
async fn errors_teach_what_to_do_instead() {
    let s = Server::start();
    let r = s
        .call(
            "function helper() { return 1; }\nexport function main() {}\nexport const other = () => 2;",
            "helper",
            json!({}),
        )
        .await;
    assert_eq!(r.json()["kind"], "fn_not_found");
    assert_eq!(r.json()["details"]["declared"], true);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("does not export")
    );
    let r = s
        .call(
            "export function main() {}\nexport const other = () => 2;",
            "mian",
            json!({}),
        )
        .await;
    assert_eq!(r.json()["details"]["exports"], json!(["main", "other"]));
    assert!(r.json()["error"].as_str().unwrap().contains("main, other"));

    for (code, hint) in [
        ("const fs = require('fs'); return 1;", "import"),
        ("return process.env.HOME;", "Deno.env.get"),
        ("return Buffer.from('x');", "Uint8Array"),
        ("module.exports = {}; return 1;", "export"),
    ] {
        let script = format!("export function f() {{ {code} }}");
        let r = s.call(&script, "f", json!({})).await;
        let message = r.json()["details"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            message.contains("not Node.js") && message.contains(hint),
            "{code}: {message}"
        );
    }
    let r = s
        .call(
            "import fs from 'node:fs';\nexport const f = () => typeof fs;",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.json()["kind"], "permission_denied");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("Node built-ins are not available")
    );

    // Markdown with a fenced block runs; a JSX fence is refused.
    let md =
        "Here is the function:\n\n```ts\nexport function f(p: number) { return p * 2; }\n```\n";
    let r = s.call(md, "f", json!({"payload": 21})).await;
    assert_eq!(r.json()["result"], 42);
    let jsx = "```tsx\nexport const f = () => <div/>;\n```";
    let r = s.call(jsx, "f", json!({})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("JSX is not supported")
    );
    let r = s
        .put("/workspace", &json!({"codeId": "j", "code": jsx}))
        .await;
    assert_eq!(r.status, 400);
    let r = s
        .post(
            "/execute/code",
            &json!({"lang": "ts", "code": "```ts\nconsole.log(6 * 7)\n```"}),
        )
        .await;
    assert_eq!(r.json()["output"], "42\n");
}

#[test]
fn the_command_line_runs_and_lints_files() {
    let dir = TempDir::new("cli");
    let lib = dir.0.join("lib.ts");
    std::fs::write(&lib, "export function add(p: { a: number; b: number }) { console.log('adding'); return p.a + p.b; }\nfunction hidden() {}\n").unwrap();
    let out = bin()
        .arg("run")
        .arg(&lib)
        .args(["--fn", "add", "--payload", r#"{"a": 2, "b": 3}"#])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    assert!(String::from_utf8_lossy(&out.stderr).contains("adding"));
    let out = bin()
        .arg("run")
        .arg(&lib)
        .args(["--fn", "hidden"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(out.stderr.trim_ascii()).unwrap();
    assert_eq!(err["kind"], "fn_not_found");
    // A module that only exports functions, run as a program: a hint.
    let out = bin().arg("run").arg(&lib).output().unwrap();
    assert!(out.status.success());
    let hint = String::from_utf8_lossy(&out.stderr);
    assert!(
        hint.contains("printed nothing") && hint.contains("--fn add"),
        "{hint}"
    );
    assert!(!hint.contains("hidden"), "not exported: {hint}");
    // A call's stack names the user's file, not the engine's name for it.
    let thrower = dir.0.join("thrower.ts");
    std::fs::write(
        &thrower,
        "export function f() {\n  throw new Error('inside');\n}\n",
    )
    .unwrap();
    let out = bin()
        .arg("run")
        .arg(&thrower)
        .args(["--fn", "f"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2:", thrower.display())), "{err}");
    assert!(!err.contains("file:///isoexec/"), "{err}");

    let prog = dir.0.join("prog.ts");
    std::fs::write(&prog, "import { add } from './lib.ts';\nconsole.log(add({ a: 1, b: 1 }));\nconsole.error('to stderr');\nDeno.exit(3);\n").unwrap();
    let out = bin().arg("run").arg(&prog).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2\n"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("to stderr"));
    let boom = dir.0.join("boom.js");
    std::fs::write(&boom, "throw new Error('boom');").unwrap();
    let out = bin().arg("run").arg(&boom).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    // A .js file without import/export is a CommonJS program: its error
    // reads as Node prints it.
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("Error: boom") && err.contains("Node.js v"),
        "{err}"
    );
    let spin = dir.0.join("spin.js");
    std::fs::write(&spin, "while (true) {}").unwrap();
    let out = bin()
        .arg("run")
        .arg(&spin)
        .args(["--timeout", "100"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));

    let clean = dir.0.join("clean.ts");
    std::fs::write(&clean, "export const a = 1;\n").unwrap();
    let out = bin().arg("lint").arg(&clean).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dirty = dir.0.join("dirty.ts");
    std::fs::write(&dirty, "const unused = 1;\n").unwrap();
    let out = bin().arg("lint").arg(&clean).arg(&dirty).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no-unused-vars"));
    let out = bin()
        .arg("lint")
        .arg("--json")
        .arg(&dirty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["diagnostics"][0]["code"], "no-unused-vars");
    assert_eq!(report["diagnostics"][0]["range"]["start"]["line"], 1);
    assert!(report["checked_files"].is_array());
}

#[test]
fn help_describes_every_setting_and_bad_settings_name_their_variable() {
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    for var in isoexec::config::VARIABLES {
        assert!(
            help.contains(&format!("[env: {var}]")),
            "{var} missing from --help"
        );
    }
    for sub in ["serve", "run", "lint"] {
        assert!(help.contains(sub));
    }
    let run_help = String::from_utf8_lossy(&bin().args(["run", "--help"]).output().unwrap().stdout)
        .to_string();
    for flag in ["--fn", "--payload", "--isolation", "--timeout"] {
        assert!(run_help.contains(flag), "{flag}");
    }
    // `run --help` lists what shapes a program, not the server's settings;
    // `lint --help` lists neither. Both still accept every setting.
    for flag in ["--memory-limit-mb", "--allow-net", "--import-map"] {
        assert!(run_help.contains(flag), "{flag} missing from run --help");
    }
    let lint_help =
        String::from_utf8_lossy(&bin().args(["lint", "--help"]).output().unwrap().stdout)
            .to_string();
    for flag in ["--port", "--database-url", "--api-key", "--max-sessions"] {
        assert!(!run_help.contains(flag), "{flag} in run --help");
        assert!(!lint_help.contains(flag), "{flag} in lint --help");
    }
    assert!(!lint_help.contains("--memory-limit-mb") && lint_help.contains("--json"));
    let dir = TempDir::new("runflags");
    let file = dir.0.join("two.js");
    std::fs::write(&file, "console.log(1 + 1)").unwrap();
    let out = bin()
        .args(["run", "--port", "1", "--memory-limit-mb", "64"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    assert!(out.status.success());
    for (var, value) in [
        ("LOG_LEVEL", "verbose"),
        ("ALLOW_NET", "https://api.example.com/v1"),
    ] {
        let out = bin().env(var, value).env("PORT", "0").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var) && err.contains(value), "{err}");
    }
}

#[test]
fn a_port_in_use_says_which_address_and_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = TempDir::new("port");
    let out = bin()
        .env("PORT", &port)
        .env("WORKSPACE_DIR", dir.0.join("ws"))
        .env("DATA_DIR", dir.0.join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains("already in use") && err.contains("PORT"),
        "{err}"
    );
}
