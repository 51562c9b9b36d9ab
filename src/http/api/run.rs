//! `POST /` and `POST /run`, the function-call API: checks the call, runs it
//! on the engine, and shapes the reply.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use hyper::Method;

use crate::app::App;
use crate::config::Config;
use crate::engine::{Execution, Isolation, Report};
use crate::http::error::{Dialect, HttpError, Reply};
use crate::http::reply::json_text;
use crate::http::request::{
    HttpRequest, OverMax, check_depth, check_fields, isolation_field, millis_field, not_an_object,
    parse_body,
};
use crate::http::route::{Doc, Route, fields_of};

pub(super) fn routes() -> Vec<Route> {
    use bodies::{CallError, RunReply, RunRequest};
    let call = || {
        Doc::new("Call an exported function of a module", "function calls")
            .body::<RunRequest>()
            .reply::<RunReply>("200", "The result and the logs")
            .reply::<CallError>("4XX", "Bad input, timeout, unknown function")
            .reply::<CallError>("5XX", "User code threw, limits, overload")
    };
    vec![
        Route::new("/", Dialect::FunctionCall).on(Method::POST, run, call()),
        Route::new("/run", Dialect::FunctionCall).on(Method::POST, run, call()),
    ]
}

/// The request body, each field kept raw so it can be checked with a clear
/// message (and the payload passed to V8's own JSON parser untouched).
#[derive(Default)]
struct RunBody<'a> {
    script: Option<&'a str>,
    code: Option<&'a str>,
    fn_name: Option<&'a str>,
    payload: Option<&'a str>,
    timeout: Option<&'a str>,
    cpu_timeout: Option<&'a str>,
    isolation: Option<&'a str>,
}

impl<'a> RunBody<'a> {
    /// The body's fields; an unknown field (see [`check_fields`]) or one
    /// sent twice is refused.
    fn from_fields<K: AsRef<str>>(fields: Vec<(K, &'a str)>) -> Result<RunBody<'a>, HttpError> {
        check_fields(fields.iter().map(|(k, _)| k.as_ref()), run_fields())?;
        let mut body = RunBody::default();
        for (key, value) in fields {
            let key = key.as_ref();
            let slot = match key {
                "script" => &mut body.script,
                "code" => &mut body.code,
                "fn" => &mut body.fn_name,
                "payload" => &mut body.payload,
                "timeout" => &mut body.timeout,
                "cpuTimeout" => &mut body.cpu_timeout,
                "isolation" => &mut body.isolation,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(HttpError::bad_field(
                    key,
                    format!("Malformed JSON body: field '{key}' is sent twice"),
                ));
            }
        }
        Ok(body)
    }
}

/// A JSON object's members in order, their values left raw.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TopLevel<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(TopLevel(members))
            }
        }
        d.deserialize_map(Members)
    }
}

/// A member's name, borrowed from the body unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Name)
    }
}

/// What a function-call body looks like, for messages.
const RUN_SHAPE: &str = r#"{"script": "export function f(p) { ... }", "fn": "f", "payload": ...}"#;

/// The fields a function-call body may have: those of [`bodies::RunRequest`].
fn run_fields() -> &'static [String] {
    static FIELDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FIELDS.get_or_init(fields_of::<bodies::RunRequest>)
}

/// `POST /` and `POST /run`.
async fn run(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let body = req.body(&app.config).await?;
    let parser = app.clone();
    let mut execution = parse_body(body, move |body| parse_call(&parser.config, body)).await?;
    execution.client = Some(req.client());
    let execution = Arc::new(execution);
    let report = app
        .runner
        .execute("run", &execution)
        .await
        .map_err(|_| HttpError::overloaded(app.config.queue_size))?;
    reply(&execution, report)
}

/// Checks the body and builds the execution.
fn parse_call(config: &Config, body: &[u8]) -> Result<Execution, HttpError> {
    // The common body, a plain object whose script is often the one this
    // thread took last, is split in one pass; any other is parsed in full.
    let split = LAST_SCRIPT.with_borrow(|last| {
        let known = last.as_ref().map(|(text, _)| &**text);
        crate::http::members::split(body, known, config.limits.max_json_depth)
    });
    let parsed = match split {
        Some(fields) => RunBody::from_fields(fields)?,
        None => RunBody::from_fields(parse_top_level(config, body)?)?,
    };
    call_of(config, parsed)
}

/// The body's members, by the JSON parser, with a message of ours for a
/// body that is not an object.
fn parse_top_level<'a>(
    config: &Config,
    body: &'a [u8],
) -> Result<Vec<(Cow<'a, str>, &'a str)>, HttpError> {
    let limits = &config.limits;
    check_depth(body, limits.max_json_depth)?;
    let text = std::str::from_utf8(body).map_err(|e| {
        HttpError::bad_field("body", format!("Request body is not valid UTF-8: {e}"))
    })?;
    // One pass over the top level: a body that is not an object, or an
    // unknown field, gets a message of ours (never a Rust type's name).
    let mut de = serde_json::Deserializer::from_str(text);
    // Depth was checked above against the configured limit.
    de.disable_recursion_limit();
    let fields: Result<TopLevel, serde_json::Error> =
        Deserialize::deserialize(&mut de).and_then(|f| de.end().map(|()| f));
    match fields {
        Ok(fields) => Ok(fields
            .0
            .into_iter()
            .map(|(key, raw)| (key, raw.get()))
            .collect()),
        Err(e) if e.is_syntax() || e.is_eof() => Err(HttpError::bad_field(
            "body",
            format!("Malformed JSON body: {e}"),
        )),
        Err(_) => {
            let mut de = serde_json::Deserializer::from_str(text);
            de.disable_recursion_limit();
            let value = Value::deserialize(&mut de).unwrap_or(Value::Null);
            Err(not_an_object(&value, RUN_SHAPE))
        }
    }
}

/// The execution a checked body asks for.
fn call_of(config: &Config, parsed: RunBody) -> Result<Execution, HttpError> {
    let limits = &config.limits;
    let script = match (parsed.script, parsed.code) {
        (Some(raw), None) | (None, Some(raw)) => match last_script(raw) {
            Some(script) => script,
            None => {
                let script = script_text(Some(raw), None)?;
                remember_script(raw, &script);
                script
            }
        },
        (script, code) => script_text(script, code)?,
    };
    let fn_name = string_field(parsed.fn_name, "fn")?
        .ok_or_else(|| HttpError::bad_field("fn", "Missing required field 'fn'"))?;
    if fn_name.is_empty() {
        return Err(HttpError::bad_field("fn", "Field 'fn' must not be empty"));
    }
    let payload: Arc<str> = parsed.payload.map_or_else(|| "null".into(), |p| p.into());

    let timeout = match parsed.timeout {
        None => limits.default_timeout,
        Some(raw) => positive_ms(raw, "timeout", config)?,
    };
    let cpu_limit = match parsed.cpu_timeout {
        None => limits.default_cpu_limit,
        Some(raw) => Some(positive_ms(raw, "cpuTimeout", config)?),
    };
    // A plain name, the common case, needs no JSON value made of it.
    let named = parsed
        .isolation
        .and_then(plain_str)
        .and_then(Isolation::parse);
    let isolation = match named {
        Some(isolation) => isolation,
        None => isolation_field(
            value(parsed.isolation).as_ref(),
            &Isolation::ALL,
            config.default_isolation,
        )?,
    };
    Ok(Execution {
        cpu_limit,
        isolation,
        env: config.allow_env_values.clone(),
        ..Execution::call(script, fn_name, payload, timeout)
    })
}

/// The script of a call: its `script` field or the `code` alias (the same
/// text if both are sent), and of markdown the first code block.
fn script_text(script: Option<&str>, code: Option<&str>) -> Result<Arc<str>, HttpError> {
    let script = string_field(script, "script")?;
    let code = string_field(code, "code")?;
    let script = match (script, code) {
        (Some(s), Some(c)) if s != c => {
            return Err(HttpError::bad_field(
                "script",
                "Both 'script' and 'code' were sent with different values; send one",
            ));
        }
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) => {
            return Err(HttpError::bad_field(
                "script",
                "Missing required field 'script' (or its alias 'code')",
            ));
        }
    };
    // LLM agents send markdown: the first ```ts / ```js block is the code.
    if memchr::memmem::find(script.as_bytes(), b"```").is_some() {
        if let Some(message) = crate::code::jsx_fence(&script) {
            return Err(HttpError::bad_field("script", message));
        }
        return Ok(crate::code::extract_code(&script).into());
    }
    Ok(script.into())
}

/// The largest script field [`LAST_SCRIPT`] keeps, as JSON text.
const LAST_SCRIPT_BYTES: usize = 64 * 1024;

thread_local! {
    /// The script this thread last took from a call's body, with the JSON
    /// text it came from. A client calls the same script again and again:
    /// comparing the text is cheaper than unescaping it, and the engine
    /// gets the same `Arc`, by which its transpile cache knows the script
    /// without hashing it (`TranspileCache::get_shared`). One per thread,
    /// of at most [`LAST_SCRIPT_BYTES`].
    static LAST_SCRIPT: std::cell::RefCell<Option<(Box<str>, Arc<str>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The script of `raw` if it is the text this thread last took one from.
fn last_script(raw: &str) -> Option<Arc<str>> {
    LAST_SCRIPT.with_borrow(|last| match last {
        Some((text, script)) if **text == *raw => Some(script.clone()),
        _ => None,
    })
}

/// Keeps `script`, taken from the JSON string token `raw`.
fn remember_script(raw: &str, script: &Arc<str>) {
    if raw.len() <= LAST_SCRIPT_BYTES && raw.starts_with('"') {
        LAST_SCRIPT.set(Some((raw.into(), script.clone())));
    }
}

/// A present millisecond field: a positive number (`null` included in what
/// is refused), capped at `MAX_TIMEOUT`.
fn positive_ms(raw: &str, name: &str, config: &Config) -> Result<std::time::Duration, HttpError> {
    let max = config.limits.max_timeout;
    let v = serde_json::from_str::<Value>(raw).unwrap_or(Value::Null);
    // `null` is not a number of milliseconds here: send the string "null"
    // through the check so it is refused with the same message.
    let v = if v.is_null() {
        Value::String("null".into())
    } else {
        v
    };
    millis_field(Some(&v), name, max, max, OverMax::Cap)
}

/// A small raw field as a value, for the shared field checks.
fn value(raw: Option<&str>) -> Option<Value> {
    raw.map(|r| serde_json::from_str(r).unwrap_or(Value::Null))
}

/// A JSON string without escapes (most scripts, every plain name) is its
/// text between the quotes, which the parser has checked already.
fn plain_str(raw: &str) -> Option<&str> {
    let text = raw.strip_prefix('"')?.strip_suffix('"')?;
    memchr::memchr(b'\\', text.as_bytes())
        .is_none()
        .then_some(text)
}

fn string_field(raw: Option<&str>, name: &str) -> Result<Option<String>, HttpError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw == "null" {
        return Ok(None);
    }
    if let Some(text) = plain_str(raw) {
        return Ok(Some(text.to_string()));
    }
    serde_json::from_str::<String>(raw)
        .map(Some)
        .map_err(|_| HttpError::bad_field(name, format!("Field '{name}' must be a string")))
}

/// The reply for a finished call: the result JSON is passed through as it
/// came from the engine.
pub(super) fn reply(execution: &Execution, report: Report) -> Reply {
    let logs = serde_json::to_string(&report.logs).unwrap_or_else(|_| "[]".into());
    match report.outcome {
        Ok(result) => {
            let mut body = String::with_capacity(result.len() + logs.len() + 32);
            body.push_str("{\"result\":");
            body.push_str(&result);
            body.push_str(",\"logs\":");
            body.push_str(&logs);
            if report.logs_truncated {
                body.push_str(",\"logsTruncated\":true");
            }
            body.push('}');
            Ok(json_text(200, body))
        }
        Err(e) => {
            let mut error = HttpError::from_execution(execution, e);
            error.logs = Some((logs, report.logs_truncated));
            Err(error)
        }
    }
}

/// The request and reply bodies of these routes: the handlers read and write
/// them, and the OpenAPI document describes them.
pub(crate) mod bodies {
    #![allow(dead_code, reason = "some fields exist only to be described")]

    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;
    use utoipa::ToSchema;

    /// `POST /` and `POST /run`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"script": "export function add(p: {a: number, b: number}) { return p.a + p.b; }", "fn": "add", "payload": {"a": 2, "b": 3}}))]
    pub(crate) struct RunRequest {
        /// An ES module in TypeScript or JavaScript (alias `code`).
        pub script: Option<String>,
        /// The same as `script`; sending both with different values is a 400.
        pub code: Option<String>,
        /// The exported function to call.
        #[serde(rename = "fn")]
        #[schema(rename = "fn")]
        pub fn_name: String,
        /// The function's first argument (absent means `null`).
        pub payload: Option<Value>,
        /// Wall-clock limit in ms (capped at `MAX_TIMEOUT`).
        pub timeout: Option<f64>,
        /// CPU-time limit in ms.
        #[serde(rename = "cpuTimeout")]
        #[schema(rename = "cpuTimeout")]
        pub cpu_timeout: Option<f64>,
        /// `isolate` (default), `none`, `frozen` or `process`.
        pub isolation: Option<String>,
    }

    /// One captured console call.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct LogLine {
        /// Milliseconds since the Unix epoch.
        pub ts: u64,
        /// `debug`, `log`, `info`, `warn` or `error`.
        pub level: String,
        pub message: String,
    }

    /// A function call's result.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({"result": 5, "logs": [{"ts": 1795360440648u64, "level": "log", "message": "adding"}]}))]
    pub(crate) struct RunReply {
        /// The return value (binary as `data:` URIs, BigInts as strings).
        pub result: Value,
        pub logs: Vec<LogLine>,
        /// Present (true) when logs were cut at their cap.
        #[serde(rename = "logsTruncated", skip_serializing_if = "Option::is_none")]
        #[schema(rename = "logsTruncated")]
        pub logs_truncated: Option<bool>,
    }

    /// The error shape of the function-call and code-job APIs.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    #[schema(example = json!({"error": "Execution timeout", "kind": "timeout", "details": {"timeoutMs": 100}, "logs": []}))]
    pub(crate) struct CallError {
        /// A human message.
        pub error: String,
        /// The stable kind: bad_request, syntax_error, fn_not_found, exception,
        /// timeout, cpu_limit, memory_limit, output_limit, permission_denied,
        /// payload_too_large, not_found, method_not_allowed, overloaded,
        /// unauthorized, forbidden, too_many_requests, storage_unavailable, too_many_sessions,
        /// insufficient_storage, cancelled, internal.
        pub kind: String,
        /// Kind-specific facts (`field` for a bad field, `line`/`column` for a
        /// syntax error, `name`/`message`/`stack` for an exception).
        pub details: BTreeMap<String, Value>,
        /// What the code logged before it failed.
        pub logs: Vec<LogLine>,
        #[serde(rename = "logsTruncated", skip_serializing_if = "Option::is_none")]
        #[schema(rename = "logsTruncated")]
        pub logs_truncated: Option<bool>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{LogEntry, LogLevel};

    fn body(r: hyper::Response<crate::http::reply::Body>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(r.into_body().collect())
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    fn script_of(body: &str) -> Result<Arc<str>, HttpError> {
        let config = crate::config::Config::from_source(&Default::default(), |_| None).unwrap();
        parse_call(&config, body.as_bytes()).map(|e| match e.task {
            crate::engine::Task::Call { script, .. } => script,
            other => panic!("not a call: {other:?}"),
        })
    }

    #[test]
    fn a_thread_takes_the_same_script_text_once() {
        let plain = r#"{"script": "export const f = () => 1", "fn": "f"}"#;
        let a = script_of(plain).unwrap();
        assert_eq!(&*a, "export const f = () => 1");
        assert!(Arc::ptr_eq(&a, &script_of(plain).unwrap()));
        // Escapes, the alias and markdown: the same text as without the
        // thread's last script, whichever came before.
        let fenced =
            r#"{"code": "Here:\n```ts\nexport const g = (x: number) => x\n```\n", "fn": "g"}"#;
        for _ in 0..2 {
            assert_eq!(
                &*script_of(fenced).unwrap(),
                "export const g = (x: number) => x"
            );
        }
        let b = script_of(fenced).unwrap();
        assert!(Arc::ptr_eq(&b, &script_of(fenced).unwrap()));
        assert!(!Arc::ptr_eq(&a, &script_of(plain).unwrap()));
        // Both fields: checked each time, never kept.
        let both = r#"{"script": "export const f = () => 1", "code": "export const f = () => 2", "fn": "f"}"#;
        for _ in 0..2 {
            assert!(script_of(both).is_err());
        }
        let same = r#"{"script": "export const f = () => 1", "code": "export const f = () => 1", "fn": "f"}"#;
        assert_eq!(&*script_of(same).unwrap(), "export const f = () => 1");
        // A failure is not kept: the same body fails again.
        let jsx = r#"{"script": "```jsx\nexport const f = () => <a/>\n```", "fn": "f"}"#;
        for _ in 0..2 {
            assert!(script_of(jsx).is_err());
        }
        for _ in 0..2 {
            assert!(script_of(r#"{"script": null, "fn": "f"}"#).is_err());
        }
    }

    #[test]
    fn the_hand_written_reply_is_the_documented_type() {
        let execution = parse_call(
            &crate::config::Config::from_source(&Default::default(), |_| None).unwrap(),
            br#"{"script": "export const f = () => 1", "fn": "f"}"#,
        )
        .unwrap();
        for truncated in [false, true] {
            let report = Report {
                outcome: Ok(r#"{"a":[1,"x"]}"#.into()),
                logs: vec![LogEntry {
                    partial: false,
                    ts: 1,
                    level: LogLevel::Warn,
                    message: "hi".into(),
                }],
                logs_truncated: truncated,
                queue_wait: std::time::Duration::ZERO,
                cpu: std::time::Duration::ZERO,
                memory: 0,
            };
            let bytes = body(reply(&execution, report).unwrap());
            // deny_unknown_fields: every field written is a documented one.
            let typed: super::bodies::RunReply = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(typed.result, serde_json::json!({"a": [1, "x"]}));
            assert_eq!(typed.logs[0].level, "warn");
            assert_eq!(typed.logs_truncated, truncated.then_some(true));
        }
    }

    fn parse(body: &str) -> Result<Execution, HttpError> {
        let config = crate::config::Config::from_source(&Default::default(), |_| None).unwrap();
        parse_call(&config, body.as_bytes())
    }

    #[test]
    fn a_call_body_is_read_in_one_pass_with_our_messages() {
        // Member names with escapes are names like any other.
        let e =
            parse(r#"{"scr\u0069pt": "export const f = () => 1", "fn": "f", "payload": [1, 2]}"#)
                .unwrap();
        match &e.task {
            crate::engine::Task::Call {
                fn_name, payload, ..
            } => {
                assert_eq!(fn_name, "f");
                assert_eq!(&**payload, "[1, 2]");
            }
            other => panic!("not a call: {other:?}"),
        }
        for body in [
            r#"{"script": "export const f = () => \"x\"", "fn": "f"}"#,
            r#"{"script": "export const f = () => 'x'", "fn": "f"}"#,
            r#"{"script": "export const f = () => \u0027x\u0027", "fn": "f"}"#,
        ] {
            let e = parse(body).unwrap();
            let crate::engine::Task::Call { script, .. } = &e.task else {
                panic!("not a call");
            };
            assert!(script.starts_with("export const f = () => "), "{script}");
            assert!(!script.contains('\\'), "{script}");
        }
        let number = parse(r#"{"script": 12, "fn": "f"}"#).unwrap_err();
        assert_eq!(number.message, "Field 'script' must be a string");
        let twice = parse(r#"{"script": "a", "fn": "f", "fn": "g"}"#).unwrap_err();
        assert!(
            twice.message.contains("'fn' is sent twice"),
            "{}",
            twice.message
        );
        let unknown = parse(r#"{"script": "a", "fun": "f"}"#).unwrap_err();
        assert!(
            unknown.message.starts_with("Unknown field 'fun'"),
            "{}",
            unknown.message
        );
        let array = parse(r#"[1]"#).unwrap_err();
        assert!(array.message.contains("object"), "{}", array.message);
        let broken = parse(r#"{"script": "a", "fn": }"#).unwrap_err();
        assert!(
            broken.message.starts_with("Malformed JSON body"),
            "{}",
            broken.message
        );
        let frozen = parse(r#"{"script": "a", "fn": "f", "isolation": "frozen"}"#).unwrap();
        assert_eq!(frozen.isolation, Isolation::Frozen);
        let escaped = parse(r#"{"script": "a", "fn": "f", "isolation": "fr\u006fzen"}"#).unwrap();
        assert_eq!(escaped.isolation, Isolation::Frozen);
        let wrong = parse(r#"{"script": "a", "fn": "f", "isolation": "vm"}"#).unwrap_err();
        assert!(
            wrong.message.starts_with("Field 'isolation' must be"),
            "{}",
            wrong.message
        );
        let no_fn = parse(r#"{"script": "a"}"#).unwrap_err();
        assert_eq!(no_fn.message, "Missing required field 'fn'");
    }
}
