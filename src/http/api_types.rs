//! The request and reply bodies of every API, as types: the handlers
//! serialize their replies through them (or, where a reply is written by
//! hand for speed, a test checks it against them), take the field names of
//! their requests from them, and `GET /openapi.json` describes them.

#![allow(dead_code, reason = "some fields exist only to be described")]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

// ---- function calls -------------------------------------------------------

/// `POST /` and `POST /run`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"script": "export function add(p: {a: number, b: number}) { return p.a + p.b; }", "fn": "add", "payload": {"a": 2, "b": 3}}))]
pub struct RunRequest {
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
pub struct LogLine {
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
pub struct RunReply {
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
pub struct CallError {
    /// A human message.
    pub error: String,
    /// The stable kind: bad_request, syntax_error, fn_not_found, exception,
    /// timeout, cpu_limit, memory_limit, output_limit, permission_denied,
    /// payload_too_large, not_found, method_not_allowed, overloaded,
    /// unauthorized, unavailable, storage_unavailable, too_many_sessions,
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

// ---- restexec -------------------------------------------------------------

/// `PUT /workspace`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"codeId": "hello-world", "code": "console.log(JSON.stringify({ message: 'Hello' }));"}))]
pub struct SaveRequest {
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
pub struct ExecuteRequest {
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
pub struct LintRequest {
    #[serde(rename = "codeId")]
    #[schema(rename = "codeId")]
    pub code_id: String,
    pub timeout: Option<f64>,
}

/// A restexec success.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"success": true, "result": {"message": "Hello"}, "executionTime": 3}))]
pub struct RestexecOk {
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
pub struct RestexecErrorBody {
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
pub struct RestexecError {
    pub success: bool,
    pub error: RestexecErrorBody,
    #[serde(rename = "executionTime", skip_serializing_if = "Option::is_none")]
    #[schema(rename = "executionTime")]
    pub execution_time: Option<u64>,
}

// ---- code jobs ------------------------------------------------------------

/// `POST /execute/code`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"lang": "ts", "code": "console.log(6 * 7)", "task_id": "q1"}))]
pub struct JobSubmit {
    /// js, javascript, node, ts or typescript (any case).
    pub lang: String,
    /// The program (at most 10 MB).
    pub code: String,
    pub task_id: Option<String>,
    /// ms, 1–`MAX_TIMEOUT`.
    pub timeout: Option<f64>,
    /// What the program reads from `Deno.stdin` and `prompt()`.
    pub stdin: Option<String>,
}

/// A job's record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "5f0c8a52-0a5e-4a71-9a49-0c1b5b0f3c2e", "task_id": "q1", "lang": "ts", "output": "42\n", "output_truncated": false, "exit_code": 0, "status": "done", "error": null, "duration_ms": 6, "created_at": "2026-12-01T18:18:29.670Z", "finished_at": "2026-12-01T18:18:29.678Z"}))]
pub struct JobView {
    pub id: String,
    pub task_id: Option<String>,
    pub lang: String,
    /// stdout and stderr interleaved in the order written.
    pub output: String,
    pub output_truncated: bool,
    /// null when the program did not end by itself.
    pub exit_code: Option<i32>,
    /// queued, running, done, timeout, killed or error.
    pub status: String,
    /// For killed and error: what stopped it.
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// The code (`GET /execute/jobs/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// `202` for `?wait=false`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobQueued {
    pub id: String,
    pub status: String,
}

/// `GET /execute/jobs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    pub count: usize,
    /// Pass as `before` for the next page (null on the last).
    pub next_before: Option<String>,
}

/// A deletion.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusOk {
    pub status: String,
}

// ---- sessions -------------------------------------------------------------

/// `POST /api/v1/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"environment": "typescript", "mode": "notebook"}))]
pub struct SessionCreate {
    /// typescript, javascript or node.
    pub environment: String,
    /// script (default) or notebook.
    pub mode: Option<String>,
}

/// A new session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionCreated {
    pub session_id: String,
    pub status: String,
    pub environment: String,
    pub mode: String,
    pub message: String,
}

/// A session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    pub session_id: String,
    /// pending, creating, ready, executing, stopping, stopped or error.
    pub status: String,
    pub environment: String,
    pub mode: String,
    /// Always null: no container.
    pub container_id: Option<String>,
    pub created_at: String,
    pub last_execution: Option<String>,
    pub expires_at: String,
}

/// `GET /api/v1/sessions`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
    pub count: usize,
}

/// `POST /api/v1/sessions/{id}/execute`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"code": "const n: number = 42;\nn", "timeout": 5000}))]
pub struct SessionExecute {
    pub code: String,
    /// Script mode: the file to write (default main.ts / main.js).
    pub filename: Option<String>,
    /// ms, 1–`MAX_TIMEOUT`.
    pub timeout: Option<f64>,
}

/// An execution's outcome in a session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionRun {
    pub session_id: String,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    /// Seconds.
    pub execution_time: f64,
    /// completed, timeout or error.
    pub status: String,
    pub output_truncated: bool,
    /// Notebook mode: the last expression's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Notebook mode: whether the state was lost (a memory kill).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reset: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<bool>,
}

/// `DELETE /api/v1/sessions/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionStopped {
    pub session_id: String,
    /// stopping (a run is being stopped) or stopped.
    pub status: String,
    pub message: String,
}

/// `POST /api/v1/sessions/{id}/interrupt`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionInterrupted {
    pub session_id: String,
    pub interrupted: bool,
    pub message: String,
}

/// The session API's error shape (FastAPI's `detail`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"detail": "Session not found", "error": "Session not found", "kind": "not_found", "details": {}}))]
pub struct SessionError {
    pub detail: String,
    pub error: String,
    pub kind: String,
    pub details: BTreeMap<String, Value>,
}

/// `GET /health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthReply {
    pub status: String,
    /// Seconds.
    pub uptime: f64,
    pub version: String,
    #[serde(rename = "activeProcesses")]
    #[schema(rename = "activeProcesses")]
    pub active_processes: usize,
    #[serde(rename = "memoryUsage")]
    #[schema(rename = "memoryUsage")]
    pub memory_usage: MemoryUsage,
    pub pool: PoolFigures,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemoryUsage {
    pub rss: u64,
    #[serde(rename = "heapTotal")]
    #[schema(rename = "heapTotal")]
    pub heap_total: u64,
    #[serde(rename = "heapUsed")]
    #[schema(rename = "heapUsed")]
    pub heap_used: u64,
    pub external: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolFigures {
    pub size: usize,
    pub busy: usize,
    pub idle: usize,
    pub queued: usize,
}

/// Field names of a request type, from its schema: the handlers refuse any
/// other.
pub fn fields_of<T: ToSchema>() -> Vec<String> {
    let schema = T::schema();
    match schema {
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(o)) => {
            o.properties.keys().cloned().collect()
        }
        _ => Vec::new(),
    }
}
