//! `POST /` and `/run`: results, logs, errors and the data-URI encoding.

use serde_json::{Value, json};

use crate::support::Server;

#[tokio::test]
async fn calls_an_exported_function_with_its_payload() {
    let s = Server::start();
    let script = r#"
        export function greet(p: { name: string }): { greeting: string } {
            console.log("greeting", p.name);
            console.error("careful");
            return { greeting: `Hello, ${p.name}!` };
        }
    "#;
    let r = s
        .call(script, "greet", json!({"payload": {"name": "Ada"}}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let body = r.json();
    assert_eq!(body["result"], json!({"greeting": "Hello, Ada!"}));
    let logs = body["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["level"], "log");
    assert_eq!(logs[0]["message"], "greeting Ada");
    assert_eq!(logs[1]["level"], "error");
    assert!(logs[0]["ts"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(body.get("logsTruncated").is_none());
}

#[tokio::test]
async fn post_root_and_code_alias_work_like_run() {
    let s = Server::start();
    let r = s
        .post(
            "/",
            &json!({"code": "export const f = (x) => x * 2", "fn": "f", "payload": 21}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], 42);
    // Same value under both names is fine; different values are refused.
    let same = s
        .post("/run", &json!({"code": "export const f = () => 1", "script": "export const f = () => 1", "fn": "f"}))
        .await;
    assert_eq!(same.status, 200);
    let differ = s
        .post("/run", &json!({"code": "export const f = () => 1", "script": "export const f = () => 2", "fn": "f"}))
        .await;
    assert_eq!(differ.status, 400);
    assert_eq!(differ.json()["kind"], "bad_request");
}

#[tokio::test]
async fn absent_payload_is_null() {
    let s = Server::start();
    let r = s
        .call("export const f = (p) => p === null", "f", json!({}))
        .await;
    assert_eq!(r.json()["result"], true);
}

#[tokio::test]
async fn payloads_arrive_as_json_parse_reads_them() {
    let s = Server::start();
    // One connection, warm isolates: every call after the first reuses
    // what the previous one looked up, whether the name changes or not.
    let mut conn = s.connect().await;
    let script = "export const f = (p) => [p, typeof p, Object.is(p, -0)];\n\
                  export const g = (p) => ['g', p];";
    let cases = [
        ("0", json!([0, "number", false])),
        ("-0", json!([0, "number", true])),
        ("7", json!([7, "number", false])),
        ("-123456789", json!([-123456789, "number", false])),
        ("999999999", json!([999999999, "number", false])),
        ("1234567890123", json!([1234567890123_i64, "number", false])),
        ("2.5", json!([2.5, "number", false])),
        ("1e3", json!([1000, "number", false])),
        ("-0.0", json!([0, "number", true])),
        ("true", json!([true, "boolean", false])),
        ("false", json!([false, "boolean", false])),
        ("null", json!([null, "object", false])),
        ("\"9\"", json!(["9", "string", false])),
        (
            "[1,{\"a\":null}]",
            json!([[1, {"a": null}], "object", false]),
        ),
    ];
    for (i, (payload, want)) in cases.iter().enumerate() {
        let (name, want) = if i % 3 == 2 {
            ("g", json!(["g", want[0]]))
        } else {
            ("f", want.clone())
        };
        let body = format!(
            r#"{{"script": {}, "fn": "{name}", "payload": {payload}, "isolation": "none"}}"#,
            json!(script)
        );
        let r = conn.post_text("/run", body).await;
        assert_eq!(r.status, 200, "{payload}: {}", r.text());
        assert_eq!(r.json()["result"], want, "{payload} to {name}");
    }
    // A name no export has, after names that were found.
    let body = format!(
        r#"{{"script": {}, "fn": "h", "isolation": "none"}}"#,
        json!(script)
    );
    let r = conn.post_text("/run", body).await;
    assert_eq!(r.json()["kind"], "fn_not_found", "{}", r.text());
}

#[tokio::test]
async fn binary_results_come_back_as_exact_data_uris() {
    let s = Server::start();
    let cases = [
        (
            "new Uint8Array([72,101,108,108,111])",
            json!("data:text/plain;base64,SGVsbG8="),
        ),
        (
            "new Uint8Array([0x89,0x50,0x4E,0x47,0x0D,0x0A,0x1A,0x0A])",
            json!("data:image/png;base64,iVBORw0KGgo="),
        ),
        (
            r#"new TextEncoder().encode(JSON.stringify({message: "Hello"}))"#,
            json!("data:application/json;base64,eyJtZXNzYWdlIjoiSGVsbG8ifQ=="),
        ),
        (
            r#"new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"><circle r="10"/></svg>')"#,
            json!(
                "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciPjxjaXJjbGUgcj0iMTAiLz48L3N2Zz4="
            ),
        ),
        (
            "({image: new Uint8Array([0x89,0x50,0x4E,0x47,0x0D,0x0A,0x1A,0x0A]), metadata: {thumbnail: new Uint8Array([0xFF,0xD8,0xFF])}})",
            json!({"image": "data:image/png;base64,iVBORw0KGgo=", "metadata": {"thumbnail": "data:image/jpeg;base64,/9j/"}}),
        ),
        (
            "new Uint8Array([72,101,108,108,111]).buffer",
            json!("data:text/plain;base64,SGVsbG8="),
        ),
        (
            "new DataView(new Uint8Array([0, 72, 105]).buffer, 1)",
            json!("data:text/plain;base64,SGk="),
        ),
    ];
    for (expr, expected) in cases {
        let script = format!("export function f() {{ return {expr}; }}");
        let r = s.call(&script, "f", json!({})).await;
        assert_eq!(r.status, 200, "{expr}: {:?}", r.json());
        assert_eq!(r.json()["result"], expected, "{expr}");
    }
}

#[tokio::test]
async fn results_follow_json_stringify_with_bigint_as_text() {
    let s = Server::start();
    let script = r#"
        export function f() {
            return {
                big: 12345678901234567890n,
                skipped: undefined,
                fn: () => 1,
                list: [undefined, () => 1, NaN, Infinity, -0],
                date: new Date(0),
                float: 0.1,
                large: 1e21,
                custom: { toJSON() { return "custom"; } },
                boxed: [new Number(3), new String("s"), new Boolean(false)],
                map: new Map([[1, 2]]),
            };
        }
    "#;
    let r = s.call(script, "f", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    // Functions and undefined are left out of objects, as JSON.stringify does.
    assert_eq!(
        r.json()["result"],
        json!({
            "big": "12345678901234567890",
            "list": [null, null, null, null, 0],
            "date": "1970-01-01T00:00:00.000Z",
            "float": 0.1,
            "large": 1e21,
            "custom": "custom",
            "boxed": [3, "s", false],
            "map": {}
        })
    );
    // A top-level undefined is null.
    let r = s.call("export function f() {}", "f", json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], Value::Null);
}

/// Member names come out as JSON.stringify writes them (lone surrogates made
/// well-formed), the same on every call of a warm isolate, which keeps
/// the names it has quoted: names that mean something to objects
/// (`__proto__`, `constructor`), index-like names, names needing escapes,
/// and more distinct names than it keeps.
#[tokio::test]
async fn member_names_are_written_alike_on_every_call() {
    let s = Server::start();
    let script = r#"
        export function f(n) {
            const odd = JSON.parse('{"__proto__": 1}');
            const named = { constructor: 2, toString: 3, "0": 4, 'a"b': 5, "\ud800x": 6, "tab\t": 7 };
            const many = {};
            for (let i = 0; i < n; i++) many["k" + i] = i;
            return [odd, named, { __proto__: null, valueOf: 8 }, many];
        }
    "#;
    let many: serde_json::Map<String, Value> =
        (0..700).map(|i| (format!("k{i}"), json!(i))).collect();
    let expected = json!([
        {"__proto__": 1},
        {"0": 4, "constructor": 2, "toString": 3, "a\"b": 5, "\u{fffd}x": 6, "tab\t": 7},
        {"valueOf": 8},
        many,
    ]);
    for round in 0..3 {
        let r = s.call(script, "f", json!({"payload": 700})).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json()["result"], expected, "call {round}");
        // The text itself, not only its meaning: the escapes as written.
        let written = concat!(r#""a\"b":5,""#, "\u{fffd}", r#"x":6,"tab\t":7"#);
        assert!(r.text().contains(written), "{}", r.text());
    }
}

/// A result's text comes back as written whatever V8 keeps it as: ASCII,
/// Latin-1 (one byte a character, some pairs of which happen to read as
/// UTF-8: "Ã©" is the bytes of "é"), two-byte text and surrogate pairs, as
/// one string or as the many-part string the glue builds.
#[tokio::test]
async fn result_text_comes_back_as_written_whatever_its_characters() {
    let s = Server::start();
    let script = r#"
        export function f(which) {
            const texts = {
                ascii: "plain",
                latin1: "caf\u00e9 \u00ff",
                reads_as_utf8: "\u00c3\u00a9",
                two_byte: "\u65e5\u672c \u00e9",
                pair: "\ud83d\ude00",
            };
            return which === "all" ? texts : texts[which];
        }
    "#;
    let texts = json!({
        "ascii": "plain",
        "latin1": "caf\u{e9} \u{ff}",
        "reads_as_utf8": "\u{c3}\u{a9}",
        "two_byte": "\u{65e5}\u{672c} \u{e9}",
        "pair": "\u{1f600}",
    });
    for which in [
        "all",
        "ascii",
        "latin1",
        "reads_as_utf8",
        "two_byte",
        "pair",
    ] {
        let expected = if which == "all" {
            texts.clone()
        } else {
            texts[which].clone()
        };
        let r = s.call(script, "f", json!({"payload": which})).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json()["result"], expected, "{which}");
    }
}

/// A result's getters, toJSON methods and proxy traps run once each, in
/// the order JSON.stringify runs them, with built-ins the call replaced
/// playing no part; what they throw carries the user's frames only.
#[tokio::test]
async fn a_results_own_code_runs_once_each_and_throws_with_its_own_stack() {
    let s = Server::start();
    let script = r#"
        export function f() {
            const seen: string[] = [];
            // Replaced built-ins change nothing in how the result is written.
            Object.keys = () => ["nope"];
            JSON.stringify = () => "nope";
            Array.isArray = () => false;
            const o = {
                get a() { seen.push("a"); return 1; },
                b: { toJSON(key: string) { seen.push("b:" + key); return [key]; } },
                c: [{ toJSON(key: unknown) { seen.push("c:" + typeof key); return 2; } }],
            };
            return { o, again: o, seen };
        }
        export function g() {
            return { get bad(): number { throw new RangeError("from a getter"); } };
        }
    "#;
    let r = s.call(script, "f", json!({"isolation": "none"})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let o = json!({"a": 1, "b": ["b"], "c": [2]});
    assert_eq!(
        r.json()["result"],
        json!({
            "o": o,
            "again": o,
            "seen": ["a", "b:b", "c:number", "a", "b:b", "c:number"],
        })
    );
    let r = s.call(script, "g", json!({"isolation": "none"})).await;
    let body = r.json();
    assert_eq!(body["error"], "RangeError: from a getter", "{body}");
    let stack = body["details"]["stack"].as_str().unwrap_or_default();
    assert!(stack.contains(".ts:"), "{body}");
    assert!(!stack.contains("ext:"), "{body}");
}

/// `performance.timeOrigin` is when the call started, on the wall clock:
/// within the time the request took, the same however often it is read,
/// and `timeOrigin + now()` is the time of day; each call has its own.
#[tokio::test]
async fn performance_time_origin_is_when_the_call_started() {
    let s = Server::start();
    let script = r#"
        export async function f() {
            // Read first after a wait: the origin is the call's start,
            // not the time it is first asked for.
            await new Promise((r) => setTimeout(r, 30));
            const origin = performance.timeOrigin;
            const skew = Math.abs(performance.timeOrigin + performance.now() - Date.now());
            return { origin, again: performance.timeOrigin, skew, json: performance.toJSON().timeOrigin };
        }
    "#;
    let mut origins = Vec::new();
    for isolation in ["none", "none", "frozen", "isolate"] {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let r = s.call(script, "f", json!({"isolation": isolation})).await;
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let body = r.json();
        let result = &body["result"];
        let origin = result["origin"].as_f64().unwrap_or(0.0);
        assert!(
            before - 1.0 <= origin && origin <= after - 29.0,
            "{isolation}: {before} {body} {after}"
        );
        assert_eq!(result["again"], result["origin"], "{isolation}: {body}");
        assert_eq!(result["json"], result["origin"], "{isolation}: {body}");
        assert!(
            result["skew"].as_f64().is_some_and(|d| d < 5.0),
            "{isolation}: {body}"
        );
        origins.push(origin);
    }
    // Calls one after another on a warm isolate have origins of their own.
    assert!(origins[1] > origins[0] + 29.0, "{origins:?}");
}

/// The stacks user code makes itself, while it runs, in a timer and while
/// its result is written, end with its own outermost frame, as if nothing
/// but itself ran: in `error.stack`, in a `prepareStackTrace` of its own
/// and in a thrown error, in every isolation mode (`prepareStackTrace`
/// where built-ins take one), before an `await` and after. A built-in that
/// calls back keeps its frames between the user's.
#[tokio::test]
async fn stacks_user_code_makes_show_only_its_own_frames() {
    let s = Server::start();
    let script = r#"
        export function plain() { return new Error("x").stack; }
        export async function later() { await 0; return new Error("y").stack; }
        export async function before() { return new Error("z").stack; }
        export function getter() { return { get v() { return new Error("g").stack; } }; }
        export function sites() {
            const saved = Error.prepareStackTrace;
            Error.prepareStackTrace = (_e: Error, sites: unknown[]) => sites.map(String);
            try { return (new Error("p") as any).stack; } finally { Error.prepareStackTrace = saved; }
        }
        export function thrower() { throw new Error("t"); }
        export async function timer() {
            return await new Promise((r) => setTimeout(function tick() { r(new Error("s").stack); }, 1));
        }
        export function listener() {
            // A built-in that calls back: its frames are between the user's.
            const target = new EventTarget();
            let stack = "";
            target.addEventListener("x", function heard() { stack = new Error("l").stack!; });
            target.dispatchEvent(new Event("x"));
            return stack;
        }
        export function captured() {
            // From the caller on, or from above the function named.
            const own: any = {};
            Error.captureStackTrace(own);
            const above: any = {};
            (function inner() { Error.captureStackTrace(above, inner); })();
            return own.stack + "\n--\n" + above.stack;
        }
    "#;
    for isolation in ["none", "frozen", "isolate"] {
        for (name, frame) in [
            ("plain", "at plain ("),
            ("later", "at later ("),
            ("before", "at before ("),
            ("getter", "get v ("),
            ("sites", "sites ("),
            ("thrower", "at thrower ("),
            ("timer", "at tick ("),
            ("listener", "at listener ("),
            ("captured", "at captured ("),
        ] {
            if isolation == "frozen" && name == "sites" {
                // Built-ins are frozen there: `Error` takes no new property.
                continue;
            }
            let r = s.call(script, name, json!({"isolation": isolation})).await;
            let body = r.json();
            let stack = match name {
                "getter" => body["result"]["v"].to_string(),
                "sites" => body["result"].to_string(),
                "thrower" => body["details"]["stack"].to_string(),
                _ => body["result"].to_string(),
            };
            assert!(stack.contains(frame), "{isolation} {name}: {body}");
            assert!(stack.contains(".ts:"), "{isolation} {name}: {body}");
            // Nothing of the host's under the user's outermost frame.
            let last = stack.trim_end_matches(['"', ']']).rsplit("\\n").next();
            assert!(
                last.is_some_and(|l| l.contains(".ts:") && !l.contains("ext:")),
                "{isolation} {name}: {body}"
            );
            if name == "captured" {
                // Each stack starts at the user's frame (its first line is
                // the object's name, "Error" for a plain object).
                for part in stack.trim_matches('"').split("\\n--\\n") {
                    let mut lines = part.split("\\n").skip(1);
                    let top = lines.next().unwrap_or_default();
                    assert!(top.contains("at captured ("), "{isolation}: {body}");
                }
            }
            if name == "listener" {
                assert!(stack.contains(".heard ("), "{isolation}: {body}");
                assert!(stack.contains("dispatchEvent (ext:"), "{isolation}: {body}");
            } else {
                assert!(!stack.contains("ext:"), "{isolation} {name}: {body}");
            }
        }
    }
}

/// A large result made of many small values is written without building
/// up in the isolate's heap: three million numbers under a 64 MiB limit.
#[tokio::test]
async fn a_large_result_of_small_values_fits_a_small_memory_limit() {
    let s = Server::start_with(&[("MEMORY_LIMIT_MB", "64")]);
    let script = "export function f() { return Array.from({ length: 3000000 }, () => 1); }";
    let r = s.call(script, "f", json!({"isolation": "none"})).await;
    assert_eq!(
        r.status,
        200,
        "{}",
        r.text().chars().take(300).collect::<String>()
    );
    let result = r.json();
    let list = result["result"].as_array().expect("a list");
    assert_eq!(list.len(), 3_000_000);
}

#[tokio::test]
async fn async_functions_are_awaited_with_timers() {
    let s = Server::start();
    let script = r#"
        export async function f(p: { ms: number }) {
            const start = Date.now();
            await new Promise((resolve) => setTimeout(resolve, p.ms));
            console.info("waited");
            return Date.now() - start >= p.ms - 1;
        }
    "#;
    let r = s.call(script, "f", json!({"payload": {"ms": 30}})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["result"], true);
    assert_eq!(r.json()["logs"][0]["level"], "info");
}

#[tokio::test]
async fn a_thrown_error_is_an_exception_with_typescript_positions() {
    let s = Server::start();
    let script = "interface Point { x: number }\n\
                  export function f(): number {\n\
                  \x20 const p: Point = { x: 1 };\n\
                  \x20 console.log('before');\n\
                  \x20 throw new TypeError('bad point ' + p.x);\n\
                  }\n";
    // "frozen" twice: its first call of a script and a later one make
    // their module instances in different ways.
    for isolation in ["isolate", "none", "frozen", "frozen", "process"] {
        let r = s.call(script, "f", json!({"isolation": isolation})).await;
        assert_eq!(r.status, 500, "{isolation}");
        let body = r.json();
        assert_eq!(body["kind"], "exception");
        assert_eq!(body["error"], "TypeError: bad point 1");
        assert_eq!(body["details"]["name"], "TypeError");
        assert_eq!(body["details"]["message"], "bad point 1");
        let stack = body["details"]["stack"].as_str().unwrap();
        // Line 5 of the TypeScript source, not of the emitted JavaScript.
        assert!(stack.contains(".ts:5:"), "{isolation}: {stack}");
        assert!(!stack.contains('#'), "{isolation}: {stack}");
        // Logs captured before the failure are kept.
        assert_eq!(body["logs"][0]["message"], "before");
    }
}

#[tokio::test]
async fn a_rejected_promise_and_throw_null_are_exceptions() {
    let s = Server::start();
    let r = s
        .call(
            "export async function f() { throw new RangeError('nope') }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["details"]["name"], "RangeError");
    let r = s
        .call("export function f() { throw null }", "f", json!({}))
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["kind"], "exception");
}

#[tokio::test]
async fn a_missing_function_is_fn_not_found() {
    let s = Server::start();
    let r = s
        .call("export const a = 1; export function b() {}", "a", json!({}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["kind"], "fn_not_found");
    let r = s.call("export function b() {}", "nope", json!({})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["kind"], "fn_not_found");
    assert_eq!(r.json()["details"]["fn"], "nope");
}

#[tokio::test]
async fn a_syntax_error_reports_line_and_column() {
    let s = Server::start();
    let r = s
        .call(
            "export const ok = 1;\nexport const f = () => { return 1 +; };\n",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 400);
    let body = r.json();
    assert_eq!(body["kind"], "syntax_error");
    assert_eq!(body["details"]["line"], 2, "{body}");
    assert!(body["details"]["column"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn a_promise_that_can_never_settle_is_pending_promise() {
    let s = Server::start();
    let r = s
        .call(
            "export function f() { return new Promise(() => {}); }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["kind"], "exception");
    assert_eq!(r.json()["details"]["name"], "PendingPromise");
}

#[tokio::test]
async fn web_globals_are_available() {
    let s = Server::start();
    let script = r#"
        export async function f() {
            const u = new URL("/a b?x=1#h", "https://example.com/base/");
            u.searchParams.append("y", "2 3");
            const ac = new AbortController();
            let aborted = false;
            ac.signal.addEventListener("abort", () => { aborted = true; });
            ac.abort();
            const bytes = new Uint8Array(8);
            crypto.getRandomValues(bytes);
            await new Promise((r) => queueMicrotask(r));
            return {
                href: u.href,
                host: u.host,
                b64: btoa("hello"),
                text: atob("aGVsbG8="),
                roundtrip: new TextDecoder().decode(new TextEncoder().encode("caf\u00e9")),
                uuid: /^[0-9a-f-]{36}$/.test(crypto.randomUUID()),
                clone: structuredClone({ a: [1, { b: 2 }] }),
                aborted,
                reason: ac.signal.reason.name,
                now: typeof performance.now(),
                timers: typeof setInterval + typeof clearTimeout,
            };
        }
    "#;
    let r = s.call(script, "f", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        r.json()["result"],
        json!({
            "href": "https://example.com/a%20b?x=1&y=2+3#h",
            "host": "example.com",
            "b64": "aGVsbG8=",
            "text": "hello",
            "roundtrip": "caf\u{e9}",
            "uuid": true,
            "clone": {"a": [1, {"b": 2}]},
            "aborted": true,
            "reason": "AbortError",
            "now": "number",
            "timers": "functionfunction",
        })
    );
}

#[tokio::test]
async fn capabilities_not_granted_are_permission_denied() {
    let s = Server::start();
    let r = s
        .call(
            "export async function f() { return await fetch('https://example.com/x'); }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["kind"], "permission_denied");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("https://example.com/x")
    );

    let r = s
        .call(
            "import x from 'https://example.com/mod.ts'; export const f = () => x;",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.json()["kind"], "permission_denied", "{:?}", r.json());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("https://example.com/mod.ts")
    );

    let r = s
        .call(
            "export async function f() { return await Deno.readTextFile('/etc/passwd'); }",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(r.json()["kind"], "permission_denied");
    assert!(!String::from_utf8_lossy(&r.body).contains("root:"));
}

/// The scripts in `examples/` answer as their comments say.
#[tokio::test]
async fn the_examples_run_as_documented() {
    let s = Server::start();
    let read = |name: &str| {
        std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let r = s
        .call(
            &read("hello.ts"),
            "hello",
            json!({"payload": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(
        r.json()["result"],
        json!({"greeting": "Hello, Ada!", "length": 3})
    );
    assert_eq!(r.json()["logs"][0]["message"], "greeting Ada");

    let r = s
        .call(
            &read("async.ts"),
            "slowSum",
            json!({"payload": {"values": [1, 2, 3], "delayMs": 50}}),
        )
        .await;
    assert_eq!(r.json()["result"], json!({"sum": 6, "waitedMs": 50}));

    let r = s
        .call(
            &read("image.ts"),
            "chart",
            json!({"payload": {"values": [3, 7, 4, 9]}}),
        )
        .await;
    let result = &r.json()["result"];
    assert_eq!(result["bytes"], 409, "{result}");
    // SVG bytes, sniffed as such: `<svg` in base64.
    assert!(
        result["image"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,PHN2Zy")
    );
}
