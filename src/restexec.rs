//! The restexec-compatible API: `PUT/GET/DELETE /workspace`, `POST
//! /execute` and `POST /lint`, with restexec's reply shapes:
//! `{"success": true, "result", ...}` or `{"success": false, "error": {"type",
//! "message", "details"}, ...}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Response;
use hyper::header::{self, HeaderValue};
use serde_json::{Map, Value, json};

use crate::api::json_depth_exceeds;
use crate::compile::Failure;
use crate::error::{ApiError, ErrorKind};
use crate::exec::{CallJob, ExecError, Isolation, LogEntry, Report, Task};
use crate::lint::{LintError, LintReport};
use crate::server::{App, Body, json_response};
use crate::watchdog::CancelFlag;
use crate::workspace::{MAX_CODE_BYTES, Workspace, extract_code, validate_code_id};

/// A restexec error: its `type`, status, message and details (boxed: it
/// travels in `Result`s).
#[derive(Debug)]
pub struct RestError(Box<RestErrorBody>);

#[derive(Debug)]
pub struct RestErrorBody {
    pub kind: &'static str,
    pub status: u16,
    pub message: String,
    pub details: Map<String, Value>,
    pub retry_after: Option<u32>,
}

impl std::ops::Deref for RestError {
    type Target = RestErrorBody;
    fn deref(&self) -> &RestErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for RestError {
    fn deref_mut(&mut self) -> &mut RestErrorBody {
        &mut self.0
    }
}

impl RestError {
    fn new(kind: &'static str, status: u16, message: impl Into<String>) -> RestError {
        RestError(Box::new(RestErrorBody {
            kind,
            status,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
        }))
    }

    fn validation(message: impl Into<String>) -> RestError {
        RestError::new("ValidationError", 400, message)
    }

    fn with(mut self, key: &str, value: impl Into<Value>) -> RestError {
        self.details.insert(key.into(), value.into());
        self
    }

    fn internal(cause: impl std::fmt::Display) -> RestError {
        tracing::error!(cause = %cause, "internal error");
        RestError::new("InternalServerError", 500, "Internal server error")
    }

    /// The reply, with `executionTime` when the request ran code.
    pub fn response(self, execution_ms: Option<u64>) -> Response<Body> {
        let e = *self.0;
        let mut body = json!({
            "success": false,
            "error": {"type": e.kind, "message": e.message, "details": e.details},
        });
        if let Some(ms) = execution_ms {
            body["executionTime"] = ms.into();
        }
        let mut r = json_response(e.status, body.to_string());
        if let Some(secs) = e.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = body["error"]["details"]["allow"].as_str()
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            r.headers_mut().insert(header::ALLOW, v);
        }
        r
    }
}

/// The restexec view of a failure from the shared HTTP layer (auth, body
/// size, routing).
impl From<ApiError> for RestError {
    fn from(e: ApiError) -> RestError {
        let kind = match e.kind {
            ErrorKind::BadRequest | ErrorKind::PayloadTooLarge => "ValidationError",
            ErrorKind::NotFound => "NotFoundError",
            ErrorKind::MethodNotAllowed => "MethodNotAllowedError",
            ErrorKind::Unauthorized => "UnauthorizedError",
            ErrorKind::Timeout => "TimeoutError",
            ErrorKind::Unavailable => "UnavailableError",
            _ => "InternalServerError",
        };
        let status = e.status();
        let mut details = e.details;
        details.insert("kind".into(), e.kind.as_str().into());
        RestError(Box::new(RestErrorBody {
            kind,
            status,
            message: e.message,
            details,
            retry_after: e.retry_after,
        }))
    }
}

fn ok(result: Value, execution_ms: Option<u64>) -> Response<Body> {
    let mut body = json!({"success": true, "result": result});
    if let Some(ms) = execution_ms {
        body["executionTime"] = ms.into();
    }
    json_response(200, body.to_string())
}

/// Parses a JSON object body.
fn object_body(app: &App, body: &[u8]) -> Result<Map<String, Value>, RestError> {
    if json_depth_exceeds(body, app.config.limits.max_json_depth + 1) {
        return Err(RestError::validation(format!(
            "Request JSON is nested deeper than {} levels",
            app.config.limits.max_json_depth
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(RestError::validation("Request body must be a JSON object")),
        Err(e) => Err(RestError::validation(format!("Malformed JSON body: {e}"))),
    }
}

fn code_id_field(body: &Map<String, Value>) -> Result<String, RestError> {
    match body.get("codeId") {
        Some(Value::String(id)) => {
            checked_code_id(id)?;
            Ok(id.clone())
        }
        None | Some(Value::Null) => {
            Err(RestError::validation("Missing required field 'codeId'").with("field", "codeId"))
        }
        Some(_) => {
            Err(RestError::validation("Field 'codeId' must be a string").with("field", "codeId"))
        }
    }
}

/// `timeout` in 1..=MAX_TIMEOUT ms; absent means the default.
fn timeout_field(app: &App, body: &Map<String, Value>) -> Result<Duration, RestError> {
    let limits = &app.config.limits;
    let max = limits.max_timeout.as_millis() as u64;
    match body.get("timeout") {
        None | Some(Value::Null) => Ok(limits.default_timeout),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(ms) if ms >= 1.0 && ms <= max as f64 => Ok(Duration::from_secs_f64(ms / 1000.0)),
            _ => Err(RestError::validation(format!(
                "Field 'timeout' must be between 1 and {max} milliseconds, not {n}"
            ))
            .with("field", "timeout")
            .with("max", max)),
        },
        Some(other) => Err(RestError::validation(format!(
            "Field 'timeout' must be a number of milliseconds, not {other}"
        ))
        .with("field", "timeout")),
    }
}

/// `env`: string values under keys of `[A-Z0-9_]+`, not `PATH`, `HOME` or
/// `DENO_*`.
fn env_field(body: &Map<String, Value>) -> Result<HashMap<String, String>, RestError> {
    let map = match body.get("env") {
        None | Some(Value::Null) => return Ok(HashMap::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(RestError::validation("Field 'env' must be an object").with("field", "env"));
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
                RestError::validation(format!("env key '{key}' must match ^[A-Z0-9_]+$"))
                    .with("field", "env"),
            );
        }
        if key == "PATH" || key == "HOME" || key.starts_with("DENO_") {
            return Err(RestError::validation(format!(
                "env key '{key}' is reserved (PATH, HOME and DENO_* cannot be set)"
            ))
            .with("field", "env"));
        }
        let Value::String(value) = value else {
            return Err(
                RestError::validation(format!("env value of '{key}' must be a string"))
                    .with("field", "env"),
            );
        };
        env.insert(key.clone(), value.clone());
    }
    Ok(env)
}

/// `PUT /workspace {codeId, code}`.
pub async fn save(app: &Arc<App>, body: &[u8]) -> Result<Response<Body>, RestError> {
    let body = object_body(app, body)?;
    let code_id = code_id_field(&body)?;
    let text = match body.get("code") {
        Some(Value::String(c)) => c,
        None | Some(Value::Null) => {
            return Err(
                RestError::validation("Missing required field 'code'").with("field", "code")
            );
        }
        Some(_) => {
            return Err(
                RestError::validation("Field 'code' must be a string").with("field", "code")
            );
        }
    };
    let code = extract_code(text);
    if code.trim().is_empty() {
        return Err(RestError::validation("Field 'code' must not be empty").with("field", "code"));
    }
    if code.len() > MAX_CODE_BYTES {
        return Err(RestError::validation(format!(
            "Code is {} bytes; at most {MAX_CODE_BYTES} are allowed",
            code.len()
        ))
        .with("field", "code")
        .with("size", code.len())
        .with("limit", MAX_CODE_BYTES));
    }
    let code = code.to_string();
    let id = code_id.clone();
    let saved = on_workspace(app, move |ws| ws.save(&id, &code))
        .await?
        .map_err(|e| RestError::internal(format!("saving {code_id}: {e}")))?;
    Ok(ok(
        json!({"codeId": code_id, "filePath": saved.path.display().to_string(), "size": saved.size}),
        None,
    ))
}

/// Runs a blocking workspace operation off the reactor.
async fn on_workspace<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&Workspace) -> std::io::Result<T> + Send + 'static,
) -> Result<std::io::Result<T>, RestError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app.workspace))
        .await
        .map_err(RestError::internal)
}

/// A `codeId` from a body or a path, checked.
fn checked_code_id(code_id: &str) -> Result<(), RestError> {
    validate_code_id(code_id).map_err(|m| RestError::validation(m).with("field", "codeId"))
}

fn not_found(code_id: &str) -> RestError {
    RestError::new(
        "FileNotFoundError",
        404,
        format!("Code file not found: {code_id}.ts"),
    )
    .with("codeId", code_id)
}

/// `GET /workspace/{codeId}`.
pub async fn read(app: &Arc<App>, code_id: &str) -> Result<Response<Body>, RestError> {
    checked_code_id(code_id)?;
    let id = code_id.to_string();
    match on_workspace(app, move |ws| ws.read(&id)).await? {
        Ok(code) => Ok(ok(
            json!({"codeId": code_id, "code": code, "size": code.len()}),
            None,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found(code_id)),
        Err(e) => Err(RestError::internal(format!("reading {code_id}: {e}"))),
    }
}

/// `DELETE /workspace/{codeId}`.
pub async fn delete(app: &Arc<App>, code_id: &str) -> Result<Response<Body>, RestError> {
    checked_code_id(code_id)?;
    let id = code_id.to_string();
    match on_workspace(app, move |ws| ws.delete(&id)).await? {
        Ok(()) => Ok(ok(json!({"codeId": code_id, "deleted": true}), None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found(code_id)),
        Err(e) => Err(RestError::internal(format!("deleting {code_id}: {e}"))),
    }
}

/// `GET /workspace`.
pub async fn list(app: &Arc<App>) -> Result<Response<Body>, RestError> {
    let files = on_workspace(app, |ws| ws.list())
        .await?
        .map_err(|e| RestError::internal(format!("listing the workspace: {e}")))?;
    Ok(ok(json!({"files": files, "count": files.len()}), None))
}

/// `POST /execute {codeId, timeout, env, isolation}`.
pub async fn execute(app: &Arc<App>, body: &[u8]) -> Result<Response<Body>, RestError> {
    let body = object_body(app, body)?;
    let code_id = code_id_field(&body)?;
    let timeout = timeout_field(app, &body)?;
    let request_env = env_field(&body)?;
    let isolation = match body.get("isolation") {
        None | Some(Value::Null) => Isolation::Isolate,
        Some(Value::String(s)) if s == "isolate" => Isolation::Isolate,
        Some(Value::String(s)) if s == "process" => Isolation::Process,
        Some(other) => {
            return Err(RestError::validation(format!(
                "Field 'isolation' must be \"isolate\" or \"process\", not {other}"
            ))
            .with("field", "isolation"));
        }
    };
    let path = app.workspace.path_of(&code_id);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(not_found(&code_id));
    }
    let mut env = app.config.allow_env_values.clone();
    env.extend(request_env);
    let job = CallJob {
        task: Task::Program { path },
        timeout,
        cpu_limit: app.config.limits.default_cpu_limit,
        isolation,
        env,
        precompiled: None,
    };
    let started = Instant::now();
    let report = crate::api::execute_job(app, &job).await?;
    let ms = started.elapsed().as_millis() as u64;
    Ok(program_reply(&job, report, ms))
}

/// Joins a program's captured console lines into its stdout and stderr.
fn streams(logs: &[LogEntry]) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    for entry in logs {
        let s = if entry.level.is_stderr() {
            &mut err
        } else {
            &mut out
        };
        s.push_str(&entry.message);
        s.push('\n');
    }
    (out, err)
}

/// The reply for a finished program, in restexec's shape.
fn program_reply(job: &CallJob, report: Report, ms: u64) -> Response<Body> {
    let (stdout, mut stderr) = streams(&report.logs);
    let failure = match report.outcome {
        Ok(_) | Err(ExecError::Exit { code: 0 }) => None,
        Err(e) => Some(e),
    };
    let Some(failure) = failure else {
        let trimmed = stdout.trim();
        let result = if trimmed.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(trimmed.to_string()))
        };
        return ok(result, Some(ms));
    };
    let (kind, status, message, exit_code, fine_kind) = match &failure {
        ExecError::Exit { code } => (
            "ExecutionError",
            500,
            format!("Process exited with code {code}"),
            Some(*code),
            ErrorKind::Exception,
        ),
        ExecError::Timeout => (
            "TimeoutError",
            408,
            format!("Execution timed out after {} ms", job.timeout.as_millis()),
            None,
            ErrorKind::Timeout,
        ),
        ExecError::CpuLimit => (
            "TimeoutError",
            408,
            "CPU time limit exceeded".into(),
            None,
            ErrorKind::CpuLimit,
        ),
        ExecError::Internal { message } => {
            tracing::error!(cause = %message, "internal error");
            (
                "InternalServerError",
                500,
                "Internal server error".into(),
                None,
                ErrorKind::Internal,
            )
        }
        ExecError::Cancelled => (
            "InternalServerError",
            500,
            "The run was cancelled".into(),
            None,
            ErrorKind::Internal,
        ),
        other => {
            let api = crate::api::api_error(job, other.clone());
            let text = match other {
                ExecError::Exception {
                    stack,
                    message,
                    name,
                } => {
                    let stack = stack
                        .clone()
                        .unwrap_or_else(|| format!("{name}: {message}"));
                    format!("error: Uncaught {stack}\n")
                }
                _ => format!("error: {}\n", api.message),
            };
            stderr.push_str(&text);
            ("ExecutionError", 500, api.message, Some(1), api.kind)
        }
    };
    let mut e = RestError::new(kind, status, message)
        .with("kind", fine_kind.as_str())
        .with("exitCode", exit_code.map_or(Value::Null, Value::from))
        .with("stdout", stdout)
        .with("stderr", stderr);
    if report.logs_truncated {
        e = e.with("outputTruncated", true);
    }
    e.response(Some(ms))
}

/// Sets its flag when dropped: a request future dropped mid-way (the
/// client went away) stops the work it started.
struct CancelOnDrop(Arc<CancelFlag>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// `POST /lint {codeId, timeout}`.
pub async fn lint(app: &Arc<App>, body: &[u8]) -> Result<Response<Body>, RestError> {
    let body = object_body(app, body)?;
    let code_id = code_id_field(&body)?;
    let timeout = timeout_field(app, &body)?;
    let started = Instant::now();
    let deadline = started + timeout;
    let app2 = app.clone();
    let id = code_id.clone();
    // Set when this request is dropped (the client went away): the lint
    // stops with it.
    let gone = Arc::new(CancelFlag::default());
    let _cancel_on_drop = CancelOnDrop(gone.clone());
    let work = tokio::task::spawn_blocking(move || {
        let path = app2.workspace.path_of(&id);
        let source = std::fs::read_to_string(&path)?;
        let stop = || gone.is_cancelled();
        let linted = app2.compiler.lint(path.clone(), &source, deadline, &stop);
        Ok::<_, std::io::Error>((path, linted))
    });
    let report = match work.await.map_err(RestError::internal)? {
        Ok((_, Ok(r))) => r,
        Ok((path, Err(Failure::Rejected(e)))) => {
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
            }
        }
        Ok((_, Err(Failure::Timeout))) => {
            return Err(RestError::new(
                "TimeoutError",
                408,
                format!("Lint timed out after {} ms", timeout.as_millis()),
            )
            .with("kind", ErrorKind::Timeout.as_str()));
        }
        Ok((_, Err(Failure::Cancelled))) => {
            return Err(RestError::internal("the client went away"));
        }
        Ok((_, Err(Failure::Internal(message)))) => return Err(RestError::internal(message)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(&code_id)),
        Err(e) => return Err(RestError::internal(format!("reading {code_id}: {e}"))),
    };
    let result = serde_json::to_value(&report).map_err(RestError::internal)?;
    Ok(ok(result, Some(started.elapsed().as_millis() as u64)))
}
