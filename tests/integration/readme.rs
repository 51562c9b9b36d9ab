//! The documented requests, run as written against the real binary: each
//! `curl` of the shell blocks of README.md and docs/api.md is sent by bash
//! (with the test server's address for `localhost:3000`; they use `curl`
//! and `jq`) and its reply compared with the documented one that follows it
//! as a comment (`…` stands for what is left out, times are the reply's
//! own), so the examples cannot drift from what the server does.

use std::path::Path;
use std::process::Command;

use crate::support::Server;

/// One documented request: the shell command and the reply shown after it.
struct Example {
    command: String,
    expected: Option<String>,
}

/// The `curl` commands of the ```sh blocks of `markdown`, each with the
/// `# {…}` comment that follows it, if any.
fn examples(markdown: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut lines = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            if in_block {
                out.extend(parse_block(&lines));
                lines.clear();
            }
            in_block = !in_block && line.trim() == "```sh";
            continue;
        }
        if in_block {
            lines.push(line.to_string());
        }
    }
    out
}

fn parse_block(lines: &[String]) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        // A request: `curl …`, or a `jq … | curl …` pipeline that builds
        // its body from a file.
        if line.starts_with("curl ") || line.starts_with("jq ") {
            // A command goes on while a quote is open or a line ends in `\`.
            let mut command = line.to_string();
            while (command.matches('\'').count() % 2 == 1 || command.ends_with('\\'))
                && i + 1 < lines.len()
            {
                i += 1;
                command.push('\n');
                command.push_str(&lines[i]);
            }
            out.push(Example {
                command,
                expected: None,
            });
        } else if let Some(reply) = line.strip_prefix("# ")
            && (reply.starts_with('{') || reply.starts_with('['))
            && let Some(last) = out.last_mut()
            && last.expected.is_none()
        {
            let mut expected = reply.to_string();
            // A reply shown over several lines continues with `#  `.
            while i + 1 < lines.len() && lines[i + 1].trim_start().starts_with("#  ") {
                i += 1;
                expected.push_str(lines[i].trim_start().trim_start_matches('#').trim());
            }
            last.expected = Some(expected);
        }
        i += 1;
    }
    out
}

/// Whether `actual` reads as `expected`, as the README shows replies: the
/// fields it shows are there with those values; `…` stands for fields left
/// out (`{…, "a": 1, …}`) or for a value shown only in part (`"5f0c…"`, an
/// id); the figures of timings are not compared.
fn matches(expected: &str, actual: &str) -> bool {
    // The shown reply as JSON: left-out fields dropped, elided strings
    // marked.
    // Only the JSON value: prose may follow it (`→ pass it as …`).
    let mut depth = 0i32;
    let mut quoted = false;
    let mut end = expected.len();
    for (i, c) in expected.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' | '[' if !quoted => depth += 1,
            '}' | ']' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    end = i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let shown = expected[..end]
        // A list shown as `[…]`: any list.
        .replace("[…]", "\"…\"")
        .replace("{…,", "{")
        .replace(",…}", "}")
        .replace(", …}", "}")
        .replace("{…}", "{}");
    // Inside strings, `…` becomes a marker (U+0001) that `fits` reads.
    let mut json = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in shown.chars() {
        match c {
            '…' if in_string => json.push_str("\\u0001"),
            '\\' if in_string && !escaped => {
                escaped = true;
                json.push(c);
                continue;
            }
            '"' if !escaped => {
                in_string = !in_string;
                json.push(c);
            }
            _ => json.push(c),
        }
        escaped = false;
    }
    let Ok(expected) = serde_json::from_str::<serde_json::Value>(&json) else {
        panic!("the README shows a reply that is not JSON: {expected}");
    };
    let Ok(actual) = serde_json::from_str::<serde_json::Value>(actual) else {
        return false;
    };
    fits(&expected, &actual, "")
}

/// Whether `actual` has every part `expected` shows.
fn fits(expected: &serde_json::Value, actual: &serde_json::Value, key: &str) -> bool {
    use serde_json::Value;
    // Durations and moments: the reply's own.
    const TIMES: [&str; 10] = [
        "executionTime",
        "execution_time",
        "duration_ms",
        "ts",
        "created_at",
        "finished_at",
        "expires_at",
        "last_execution",
        "modifiedMs",
        "uptime",
    ];
    match (expected, actual) {
        // `"…"` alone: any value.
        (Value::String(e), _) if e == "\u{1}" => true,
        // An id shown in part (`"5f0c…"`): any id.
        (Value::String(e), Value::String(_))
            if e.contains('\u{1}') && (key == "id" || key == "session_id") =>
        {
            true
        }
        // Text shown in part (`"…bad input…"`): the parts shown, in order.
        (Value::String(e), Value::String(a)) if e.contains('\u{1}') => {
            let parts: Vec<&str> = e.split('\u{1}').collect();
            let mut rest = a.as_str();
            for (n, part) in parts.iter().enumerate() {
                let found = if n == 0 {
                    rest.starts_with(part).then_some(0)
                } else if n == parts.len() - 1 {
                    (part.is_empty() || rest.ends_with(part)).then_some(rest.len() - part.len())
                } else {
                    rest.find(part)
                };
                let Some(at) = found else { return false };
                rest = &rest[at + part.len()..];
            }
            true
        }
        (e, a) if TIMES.contains(&key) && (e.is_number() || e.is_string()) => {
            std::mem::discriminant(e) == std::mem::discriminant(a) || a.is_null()
        }
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| fits(v, av, k))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| fits(x, y, key))
        }
        (e, a) => e == a,
    }
}

#[test]
fn what_is_matched_is_what_the_readme_means() {
    assert!(matches(r#"{"a":1,…}"#, r#"{"a":1,"b":2}"#));
    assert!(matches(
        r#"{"id":"5f0c…","x":1,…}"#,
        r#"{"id":"0aba9a","t":null,"x":1,"y":2}"#
    ));
    assert!(matches(
        r#"{…,"status":"completed","result":3,…}"#,
        r#"{"a":0,"status":"completed","result":3}"#
    ));
    assert!(matches(r#"{"executionTime":3}"#, r#"{"executionTime":17}"#));
    assert!(!matches(r#"{"a":1}"#, r#"{"a":2}"#));
    assert!(!matches(
        r#"{…,"status":"completed",…}"#,
        r#"{"status":"error"}"#
    ));
    assert!(!matches(
        r#"{"result":5,"logs":[]}"#,
        r#"{"result":5,"logs":[1]}"#
    ));
}

/// Runs `examples` one after another against `s`, checking each documented
/// reply; a session id answered replaces `<id>` and `0c6f…` in later ones.
async fn run_all(s: &Server, all: &[Example]) {
    let base = format!("http://{}", s.addr);
    let mut session = String::new();
    for example in all {
        let command = example
            .command
            .replace("localhost:3000", &base)
            .replace("<id>", &session)
            .replace("0c6f…", &session);
        let out = tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .args(["-c", &command])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
        })
        .await
        .unwrap()
        .expect("bash");
        let reply = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&reply)
            && let Some(id) = v["session_id"].as_str()
        {
            session = id.to_string();
        }
        if let Some(expected) = &example.expected {
            assert!(
                matches(expected, &reply),
                "{}\nanswered {reply}\ndocumented {expected}",
                example.command
            );
        }
    }
}

/// Whether curl and jq are here; where they are not, the docs tests say so
/// and pass, unless `ISOEXEC_REQUIRE_VALIDATORS` is set (as in `.ci/run`).
fn tools_here() -> bool {
    let here = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    if here("curl") && here("jq") {
        return true;
    }
    assert!(
        std::env::var_os("ISOEXEC_REQUIRE_VALIDATORS").is_none(),
        "curl and jq are needed, and ISOEXEC_REQUIRE_VALIDATORS is set"
    );
    eprintln!("skipped: the documented requests need curl and jq");
    false
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn the_readme_s_requests_answer_as_documented() {
    if !tools_here() {
        return;
    }
    let all = examples(&read("README.md"));
    assert!(all.iter().filter(|e| e.expected.is_some()).count() >= 4);
    run_all(&Server::start(), &all).await;
}

/// docs/api.md's requests, against a server set up as its walk-through
/// says (the examples' workspace and tools copied side by side).
#[tokio::test]
async fn the_api_guide_s_requests_answer_as_documented() {
    if !tools_here() {
        return;
    }
    let all = examples(&read("docs/api.md"));
    assert!(all.iter().filter(|e| e.expected.is_some()).count() >= 8);
    let demo = crate::support::TempDir::new("demo");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["workspace", "tools"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(root.join("examples").join(dir))
            .arg(&demo.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let ws = demo.0.join("workspace").display().to_string();
    let tools = demo.0.join("tools").display().to_string();
    let s = Server::start_with(&[
        ("WORKSPACE_DIR", ws.as_str()),
        ("TOOLS_DIR", tools.as_str()),
    ]);
    run_all(&s, &all).await;
}

/// Each migration guide's requests, against a fresh server each.
#[tokio::test]
async fn the_migration_guides_requests_answer_as_documented() {
    if !tools_here() {
        return;
    }
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut guides: Vec<_> = std::fs::read_dir(&docs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("migrating-from-") && n.ends_with(".md"))
        .collect();
    guides.sort();
    assert!(guides.len() >= 4, "{guides:?}");
    for guide in guides {
        let all = examples(&read(&format!("docs/{guide}")));
        assert!(
            all.iter().filter(|e| e.expected.is_some()).count() >= 3,
            "{guide} shows too few replies"
        );
        run_all(&Server::start(), &all).await;
    }
}
