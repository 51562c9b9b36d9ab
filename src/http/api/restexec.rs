//! The restexec-compatible API: `PUT/GET/DELETE /workspace`, `POST
//! /execute` and `POST /lint`, with restexec's reply shapes:
//! `{"success": true, "result", ...}` or, through the restexec dialect of
//! [`HttpError`], `{"success": false, "error": {"type", "message",
//! "details"}, ...}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hyper::Response;
use serde_json::{Map, Value, json};

use hyper::Method;

use crate::app::App;
use crate::code::{MAX_CODE_BYTES, extract_code};
use crate::engine::{CompileError, LintError, LintReport};
use crate::engine::{ExecError, Execution, PROGRAM_MODES, ProgramEnd, Report, split_streams};
use crate::http::error::{Dialect, ErrorKind, HttpError, Reply};
use crate::http::reply::{Body, json_text};
use crate::http::request::{
    HttpRequest, isolation_field, json_object, required_str, timeout_field,
};
use crate::http::route::{Doc, Route, fields_of};
use crate::workspace::{CodeStore, validate_code_id};
use bodies::{ExecuteRequest, LintRequest, RestexecError, RestexecOk, SaveRequest};
use utoipa::ToSchema;

pub(super) fn routes() -> Vec<Route> {
    let doc = |summary| Doc::new(summary, "restexec");
    let save_doc = || {
        doc("Save code under a codeId")
            .body::<SaveRequest>()
            .reply::<RestexecOk>("200", "Saved")
            .reply::<RestexecError>("4XX", "Validation error")
    };
    vec![
        Route::new("/workspace", Dialect::Restexec)
            .on(Method::PUT, save, save_doc())
            .alias(Method::POST, save, save_doc())
            .on(
                Method::GET,
                list,
                doc("List saved code").reply::<RestexecOk>("200", "The files"),
            ),
        Route::new("/workspace/{codeId}", Dialect::Restexec)
            .on(
                Method::GET,
                read,
                doc("Read saved code")
                    .reply::<RestexecOk>("200", "The code")
                    .reply::<RestexecError>("404", "No such codeId"),
            )
            .on(
                Method::DELETE,
                delete,
                doc("Delete saved code")
                    .reply::<RestexecOk>("200", "Deleted")
                    .reply::<RestexecError>("404", "No such codeId"),
            ),
        Route::new("/execute", Dialect::Restexec).on(
            Method::POST,
            execute,
            doc("Run saved code as a program")
                .body::<ExecuteRequest>()
                .reply::<RestexecOk>("200", "Exit code 0: stdout parsed as JSON")
                .reply::<RestexecError>("4XX", "Validation, not found, timeout")
                .reply::<RestexecError>("5XX", "The program failed, or overload"),
        ),
        Route::new("/lint", Dialect::Restexec).on(
            Method::POST,
            lint,
            doc("Lint saved code (deno lint --json shape)")
                .body::<LintRequest>()
                .reply::<RestexecOk>("200", "The report")
                .reply::<RestexecError>("4XX", "Validation, not found, timeout"),
        ),
    ]
}

fn ok(result: Value, execution_ms: Option<u64>) -> Response<Body> {
    let mut body = json!({"success": true, "result": result});
    if let Some(ms) = execution_ms {
        body["executionTime"] = ms.into();
    }
    json_text(200, body.to_string())
}

/// The request's body as a JSON object with the fields of `T` only (and
/// `extra`); `shape` shows the caller what object is expected.
async fn object_body<T: ToSchema>(
    app: &App,
    req: &mut HttpRequest,
    extra: &[&str],
    shape: &'static str,
) -> Result<Map<String, Value>, HttpError> {
    let body = req.body(&app.config).await?;
    let mut allowed = fields_of::<T>();
    allowed.extend(extra.iter().map(|s| s.to_string()));
    json_object(body, app.config.limits.max_json_depth, allowed, shape).await
}

const SAVE_SHAPE: &str = r#"{"codeId": "hello", "code": "console.log(1)"}"#;
const EXECUTE_SHAPE: &str = r#"{"codeId": "hello", "timeout": 5000}"#;
const LINT_SHAPE: &str = r#"{"codeId": "hello"}"#;

fn code_id_field(body: &Map<String, Value>) -> Result<String, HttpError> {
    let id = required_str(body, "codeId")?;
    checked_code_id(id)?;
    Ok(id.to_string())
}

/// `env`: string values under keys of `[A-Z0-9_]+`, not `PATH`, `HOME` or
/// `DENO_*`.
fn env_field(body: &Map<String, Value>) -> Result<HashMap<String, String>, HttpError> {
    let map = match body.get("env") {
        None | Some(Value::Null) => return Ok(HashMap::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(
                HttpError::bad_request("Field 'env' must be an object").with("field", "env")
            );
        }
    };
    let mut env = HashMap::with_capacity(map.len());
    for (key, value) in map {
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(
                HttpError::bad_request(format!("env key '{key}' must match ^[A-Z0-9_]+$"))
                    .with("field", "env"),
            );
        }
        if key == "PATH" || key == "HOME" || key.starts_with("DENO_") {
            return Err(HttpError::bad_request(format!(
                "env key '{key}' is reserved (PATH, HOME and DENO_* cannot be set)"
            ))
            .with("field", "env"));
        }
        let Value::String(value) = value else {
            return Err(
                HttpError::bad_request(format!("env value of '{key}' must be a string"))
                    .with("field", "env"),
            );
        };
        env.insert(key.clone(), value.clone());
    }
    Ok(env)
}

/// `PUT /workspace {codeId, code}` (also `POST`).
async fn save(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let body = object_body::<SaveRequest>(&app, &mut req, &[], SAVE_SHAPE).await?;
    let code_id = code_id_field(&body)?;
    let text = required_str(&body, "code")?;
    if let Some(message) = crate::code::jsx_fence(text) {
        return Err(HttpError::bad_field("code", message));
    }
    let code = extract_code(text);
    if code.trim().is_empty() {
        return Err(HttpError::bad_request("Field 'code' must not be empty").with("field", "code"));
    }
    if code.len() > MAX_CODE_BYTES {
        return Err(HttpError::bad_request(format!(
            "Code is {} bytes; at most {MAX_CODE_BYTES} are allowed",
            code.len()
        ))
        .with("field", "code")
        .with("size", code.len())
        .with("limit", MAX_CODE_BYTES));
    }
    let code = code.to_string();
    let id = code_id.clone();
    let saved = on_workspace(&app, move |ws| ws.put(&id, &code))
        .await?
        .map_err(|e| HttpError::storage(&format!("the code of {code_id}"), &e))?;
    Ok(ok(
        json!({"codeId": code_id, "filePath": saved.path.display().to_string(), "size": saved.size}),
        None,
    ))
}

/// Runs a blocking workspace operation off the reactor.
async fn on_workspace<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&dyn CodeStore) -> std::io::Result<T> + Send + 'static,
) -> Result<std::io::Result<T>, HttpError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(app.workspace.as_ref()))
        .await
        .map_err(HttpError::internal)
}

/// A `codeId` from a body or a path, checked.
fn checked_code_id(code_id: &str) -> Result<(), HttpError> {
    validate_code_id(code_id).map_err(|m| HttpError::bad_field("codeId", m))
}

fn not_found(code_id: &str) -> HttpError {
    let mut e = HttpError::new(
        ErrorKind::NotFound,
        format!("Code file not found: {code_id}.ts"),
    )
    .with("codeId", code_id);
    e.restexec_type = Some("FileNotFoundError");
    e
}

/// `GET /workspace/{codeId}`.
async fn read(app: Arc<App>, req: HttpRequest) -> Reply {
    let code_id = req.param("codeId");
    checked_code_id(code_id)?;
    let id = code_id.to_string();
    match on_workspace(&app, move |ws| ws.get(&id)).await? {
        Ok(code) => Ok(ok(
            json!({"codeId": code_id, "code": code, "size": code.len()}),
            None,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found(code_id)),
        Err(e) => Err(HttpError::storage_read(
            &format!("the code of {code_id}"),
            &e,
        )),
    }
}

/// `DELETE /workspace/{codeId}`.
async fn delete(app: Arc<App>, req: HttpRequest) -> Reply {
    let code_id = req.param("codeId");
    checked_code_id(code_id)?;
    let id = code_id.to_string();
    match on_workspace(&app, move |ws| ws.delete(&id)).await? {
        Ok(()) => Ok(ok(json!({"codeId": code_id, "deleted": true}), None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found(code_id)),
        Err(e) => Err(HttpError::storage(
            &format!("the deletion of {code_id}"),
            &e,
        )),
    }
}

/// `GET /workspace`.
async fn list(app: Arc<App>, _req: HttpRequest) -> Reply {
    let files = on_workspace(&app, |ws| ws.list())
        .await?
        .map_err(|e| HttpError::storage_read("the list of saved code", &e))?;
    Ok(ok(json!({"files": files, "count": files.len()}), None))
}

/// `POST /execute {codeId, timeout, env, isolation}`.
async fn execute(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let body = object_body::<ExecuteRequest>(&app, &mut req, &["code"], EXECUTE_SHAPE).await?;
    if body.contains_key("code") {
        return Err(HttpError::bad_field(
            "code",
            "POST /execute runs saved code by codeId: save it first with PUT /workspace \
             {\"codeId\", \"code\"}, or run a snippet at once with POST /execute/code \
             {\"lang\", \"code\"}",
        ));
    }
    let code_id = code_id_field(&body)?;
    let timeout = timeout_field(&app.config, &body)?;
    let request_env = env_field(&body)?;
    // Programs always start clean: no warm isolates here.
    let isolation = isolation_field(
        body.get("isolation"),
        &PROGRAM_MODES,
        app.config.default_isolation,
    )?;
    let id = code_id.clone();
    let path = match on_workspace(&app, move |ws| ws.local_path(&id)).await? {
        Ok(Some(path)) => path,
        Ok(None) => return Err(not_found(&code_id)),
        Err(e) => {
            return Err(HttpError::storage_read(
                &format!("the code of {code_id}"),
                &e,
            ));
        }
    };
    let mut env = app.config.allow_env_values.clone();
    env.extend(request_env);
    let job = Arc::new(Execution {
        cpu_limit: app.config.limits.default_cpu_limit,
        isolation,
        env,
        client: Some(req.client()),
        ..Execution::program(path, None, timeout)
    });
    let started = Instant::now();
    let report = app
        .runner
        .execute("restexec", &job)
        .await
        .map_err(|_| HttpError::overloaded(app.config.queue_size))?;
    let ms = started.elapsed().as_millis() as u64;
    program_reply(&job, report, ms)
}

/// The reply for a finished program, in restexec's shape.
fn program_reply(job: &Execution, report: Report, ms: u64) -> Reply {
    let (stdout, stderr) = split_streams(&report.logs);
    let end = ProgramEnd::of(report.outcome);
    if !matches!(end, ProgramEnd::Exited(0)) {
        return program_failed(job, end, stdout, stderr, report.logs_truncated, ms);
    }
    let trimmed = stdout.trim();
    let result = if trimmed.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(trimmed.to_string()))
    };
    Ok(ok(result, Some(ms)))
}

/// The error reply for a program that did not end with exit code 0:
/// restexec's error shape, with the exit code and both streams.
fn program_failed(
    job: &Execution,
    end: ProgramEnd,
    stdout: String,
    mut stderr: String,
    truncated: bool,
    ms: u64,
) -> Reply {
    let (error, exit_code) = match end {
        ProgramEnd::Exited(code) => (
            HttpError::new(
                ErrorKind::Exception,
                format!("Process exited with code {code}"),
            ),
            Some(code),
        ),
        ProgramEnd::Failed { error, line } => {
            stderr.push_str(&line);
            let mut e = HttpError::from_execution(job, error);
            // Only the kind and message are restexec's: the function-call
            // details (line, stack, …) stay out of its shape.
            e.details = Map::new();
            (e, Some(1))
        }
        // restexec's words and detail, as its clients read them.
        ProgramEnd::Stopped(ExecError::Timeout) => (
            HttpError::new(
                ErrorKind::Timeout,
                format!("Execution timed out after {}ms", job.timeout.as_millis()),
            )
            .with("timeout", job.timeout.as_millis() as u64),
            None,
        ),
        ProgramEnd::Stopped(ExecError::CpuLimit) => (
            HttpError::new(ErrorKind::CpuLimit, "CPU time limit exceeded"),
            None,
        ),
        ProgramEnd::Stopped(ExecError::Internal { message }) => {
            (HttpError::internal(message), None)
        }
        ProgramEnd::Stopped(ExecError::Cancelled) => (
            HttpError::new(
                ErrorKind::Cancelled,
                "The run was cancelled: its client went away",
            ),
            None,
        ),
        // A kill (memory, output, a dead worker) reads as exit code 1.
        ProgramEnd::Stopped(other) => {
            let mut e = HttpError::from_execution(job, other);
            e.details = Map::new();
            stderr.push_str(&format!("error: {}\n", e.message));
            (e, Some(1))
        }
    };
    let mut e = error
        .with("exitCode", exit_code.map_or(Value::Null, Value::from))
        .with("stdout", stdout)
        .with("stderr", stderr)
        .timed(ms);
    if truncated {
        e = e.with("outputTruncated", true);
    }
    Err(e)
}

/// `POST /lint {codeId, timeout}`.
async fn lint(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let body = object_body::<LintRequest>(&app, &mut req, &[], LINT_SHAPE).await?;
    let code_id = code_id_field(&body)?;
    let timeout = timeout_field(&app.config, &body)?;
    let started = Instant::now();
    let id = code_id.clone();
    let found = on_workspace(&app, move |ws| {
        let Some(path) = ws.local_path(&id)? else {
            return Ok(None);
        };
        std::fs::read_to_string(&path).map(|source| Some((path, source)))
    })
    .await?;
    let (path, source) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return Err(not_found(&code_id)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(&code_id)),
        Err(e) => {
            return Err(HttpError::storage_read(
                &format!("the code of {code_id}"),
                &e,
            ));
        }
    };
    let report = match app.runner.engine.lint(path.clone(), source, timeout).await {
        Ok(r) => r,
        Err(CompileError::Syntax(e)) => {
            // Like any file that does not parse: a report with the error.
            let shown = path.display().to_string();
            LintReport {
                version: 1,
                diagnostics: Vec::new(),
                errors: vec![LintError {
                    file_path: shown.clone(),
                    message: e.message,
                }],
                checked_files_camel: vec![shown.clone()],
                checked_files: vec![shown],
                diagnostics_omitted: None,
            }
        }
        Err(CompileError::Timeout) => {
            return Err(HttpError::new(
                ErrorKind::Timeout,
                format!("Lint timed out after {} ms", timeout.as_millis()),
            ));
        }
        Err(CompileError::Cancelled) => return Err(HttpError::internal("the client went away")),
        Err(CompileError::Internal(message)) => return Err(HttpError::internal(message)),
    };
    let result = serde_json::to_value(&report).map_err(HttpError::internal)?;
    Ok(ok(result, Some(started.elapsed().as_millis() as u64)))
}

/// The request and reply bodies of these routes: the handlers read and write
/// them, and the OpenAPI document describes them.
pub(crate) mod bodies {
    #![allow(dead_code, reason = "some fields exist only to be described")]

    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;
    use utoipa::ToSchema;

    /// `PUT /workspace`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"codeId": "hello-world", "code": "console.log(JSON.stringify({ message: 'Hello' }));"}))]
    pub(crate) struct SaveRequest {
        /// 1–252 letters, digits, `-` or `_`.
        #[serde(rename = "codeId")]
        #[schema(rename = "codeId")]
        pub code_id: String,
        /// The code, or markdown whose first fenced block is the code.
        pub code: String,
    }

    /// `POST /execute`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"codeId": "hello-world", "timeout": 5000, "env": {"GREETING": "hi"}}))]
    pub(crate) struct ExecuteRequest {
        #[serde(rename = "codeId")]
        #[schema(rename = "codeId")]
        pub code_id: String,
        /// ms, 1–`MAX_TIMEOUT` (refused outside it).
        pub timeout: Option<f64>,
        /// Variables `Deno.env.get` sees; keys `^[A-Z0-9_]+$`, not PATH, HOME, DENO_*.
        pub env: Option<BTreeMap<String, String>>,
        /// `isolate` (default) or `process`.
        pub isolation: Option<String>,
    }

    /// `POST /lint`.
    #[derive(Debug, Deserialize, ToSchema)]
    pub(crate) struct LintRequest {
        #[serde(rename = "codeId")]
        #[schema(rename = "codeId")]
        pub code_id: String,
        pub timeout: Option<f64>,
    }

    /// A restexec success.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    #[schema(example = json!({"success": true, "result": {"message": "Hello"}, "executionTime": 3}))]
    pub(crate) struct RestexecOk {
        pub success: bool,
        /// `/execute`: the program's stdout parsed as JSON; `/lint`: the
        /// `deno lint --json` report; `/workspace`: the saved file.
        pub result: Value,
        /// ms (`/execute` and `/lint`).
        #[serde(rename = "executionTime", skip_serializing_if = "Option::is_none")]
        #[schema(rename = "executionTime")]
        pub execution_time: Option<u64>,
    }

    /// A restexec failure's `error`.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct RestexecErrorBody {
        /// ValidationError, FileNotFoundError, TimeoutError, ExecutionError,
        /// InternalServerError, …
        #[serde(rename = "type")]
        #[schema(rename = "type")]
        pub kind: String,
        pub message: String,
        /// `kind` (the fine-grained kind), and for executions `exitCode`,
        /// `stdout`, `stderr`.
        pub details: BTreeMap<String, Value>,
    }

    /// A restexec failure.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    #[schema(example = json!({"success": false, "error": {"type": "FileNotFoundError", "message": "Code file not found: x.ts", "details": {"codeId": "x", "kind": "not_found"}}}))]
    pub(crate) struct RestexecError {
        pub success: bool,
        pub error: RestexecErrorBody,
        #[serde(rename = "executionTime", skip_serializing_if = "Option::is_none")]
        #[schema(rename = "executionTime")]
        pub execution_time: Option<u64>,
    }
}
