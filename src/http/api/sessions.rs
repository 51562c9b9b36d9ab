//! The session API under `/api/v1` (FastAPI-shaped: errors carry
//! `detail`): environments, health, create, get, list, execute, interrupt,
//! delete.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use hyper::Method;

use super::jobs::types::StatusOk;
use crate::app::App;
use crate::clock::iso8601;
use crate::engine::notebook::{CellRequest, CellStatus};
use crate::engine::{ExecError, Execution, ProgramEnd, split_streams};
use crate::http::error::{Dialect, ErrorKind, HttpError, Reply};
use crate::http::reply::json;
use crate::http::request::{HttpRequest, json_object, required_str, str_field, timeout_field};
use crate::http::route::{Doc, Route, fields_of};
use crate::sessions::{
    CreateError, Environment, Mode, Session, SessionView, Status, valid_filename,
};
use crate::workspace::MAX_CODE_BYTES;
use types::{
    SessionCreate, SessionCreated, SessionError, SessionExecute, SessionInfo, SessionInterrupted,
    SessionList, SessionRun, SessionStopped,
};

pub(super) fn routes() -> Vec<Route> {
    let doc = |summary| Doc::new(summary, "sessions");
    let session = Dialect::Session;
    vec![
        Route::new("/api/v1/environments", session).on(
            Method::GET,
            environments,
            doc("The environments sessions can run")
                .reply_other("200", "typescript, javascript, node"),
        ),
        Route::new("/api/v1/health", session).public(
            Method::GET,
            health,
            doc("The session API answers").reply::<StatusOk>("200", "Healthy"),
        ),
        Route::new("/api/v1/sessions", session)
            .on(
                Method::GET,
                list,
                doc("List sessions").reply::<SessionList>("200", "The sessions"),
            )
            .on(
                Method::POST,
                create,
                doc("Create a session (script or notebook)")
                    .body::<SessionCreate>()
                    .reply::<SessionCreated>("200", "Ready")
                    .reply::<SessionError>("400", "Unknown environment or mode")
                    .reply::<SessionError>("429", "MAX_SESSIONS are alive"),
            ),
        Route::new("/api/v1/sessions/{id}", session)
            .on(
                Method::GET,
                get,
                doc("A session")
                    .reply::<SessionInfo>("200", "The session")
                    .reply::<SessionError>("404", "No such session"),
            )
            .on(
                Method::DELETE,
                delete,
                doc("End a session")
                    .reply::<SessionStopped>("200", "Stopping or stopped")
                    .reply::<SessionError>("404", "No such session"),
            ),
        Route::new("/api/v1/sessions/{id}/execute", session).on(
            Method::POST,
            execute,
            doc("Run code in a session (a file, or the next notebook cell)")
                .body::<SessionExecute>()
                .reply::<SessionRun>("200", "The run")
                .reply::<SessionError>("4XX", "Bad input, no such session"),
        ),
        Route::new("/api/v1/sessions/{id}/interrupt", session).on(
            Method::POST,
            interrupt,
            doc("Stop the running execute (a notebook keeps its state)")
                .reply::<SessionInterrupted>("200", "Whether something was stopped")
                .reply::<SessionError>("404", "No such session"),
        ),
    ]
}

/// Seconds a client is asked to wait when every session slot is taken.
const RETRY_AFTER_SECS: u32 = 5;

fn view_json(v: &SessionView) -> SessionInfo {
    SessionInfo {
        session_id: v.id.clone(),
        status: v.status.as_str().to_string(),
        environment: v.environment.as_str().to_string(),
        mode: v.mode.as_str().to_string(),
        container_id: None,
        created_at: iso8601(v.created_at_ms),
        last_execution: v.last_execution_ms.map(iso8601),
        expires_at: iso8601(v.expires_at_ms),
    }
}

fn not_found(id: &str) -> HttpError {
    HttpError::new(ErrorKind::NotFound, "Session not found").with("session_id", id)
}

fn session(app: &App, req: &HttpRequest) -> Result<Arc<Session>, HttpError> {
    let id = req.param("id");
    app.sessions.get(id).ok_or_else(|| not_found(id))
}

fn names() -> Vec<&'static str> {
    Environment::ALL.iter().map(|e| e.as_str()).collect()
}

/// `GET /api/v1/environments`.
async fn environments(_app: Arc<App>, _req: HttpRequest) -> Reply {
    Ok(json(200, &names()))
}

/// `GET /api/v1/health`.
async fn health(_app: Arc<App>, _req: HttpRequest) -> Reply {
    Ok(json(200, &json!({"status": "ok"})))
}

/// `POST /api/v1/sessions {environment, mode?}`.
async fn create(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let body = req.body(&app.config).await?;
    let body = json_object(
        body,
        app.config.limits.max_json_depth,
        fields_of::<SessionCreate>(),
        r#"{"environment": "typescript", "mode": "script"}"#,
    )
    .await?;
    let environment = match str_field(&body, "environment")? {
        Some(e) => Environment::parse(e).ok_or_else(|| {
            HttpError::bad_field(
                "environment",
                format!(
                    "Unknown environment '{e}'; available: {}",
                    names().join(", ")
                ),
            )
            .with("available", names())
        })?,
        None => {
            return Err(HttpError::bad_field(
                "environment",
                format!(
                    "Missing required field 'environment'; one of {}",
                    names().join(", ")
                ),
            )
            .with("available", names()));
        }
    };
    let mode = match str_field(&body, "mode")? {
        None => Mode::Script,
        Some(m) => Mode::parse(m).ok_or_else(|| {
            HttpError::bad_field(
                "mode",
                format!("Unknown mode '{m}'; \"script\" (the default) or \"notebook\""),
            )
        })?,
    };
    let engine_app = app.clone();
    let owner = req.client();
    let created = tokio::task::spawn_blocking(move || {
        engine_app.sessions.create(owner, environment, mode, |dir| {
            engine_app.engine.start_notebook(dir)
        })
    })
    .await
    .map_err(HttpError::internal)?;
    let session = match created {
        Ok(s) => s,
        Err(CreateError::Full(max)) => {
            return Err(HttpError::new(
                ErrorKind::TooManySessions,
                format!(
                    "{max} sessions are alive, the most this server keeps, and all are \
                     executing; end one or retry later"
                ),
            )
            .with("max_sessions", max)
            .retry_in(RETRY_AFTER_SECS));
        }
        Err(CreateError::ClientFull(share)) => {
            return Err(HttpError::new(
                ErrorKind::TooManySessions,
                format!(
                    "This client has {share} sessions, its share of MAX_SESSIONS (half \
                     of it), and all are executing; end one or retry later"
                ),
            )
            .with("client_share", share)
            .retry_in(RETRY_AFTER_SECS));
        }
        Err(CreateError::Io(e)) => {
            return Err(HttpError::storage("a new session's directory", &e));
        }
    };
    let v = session.view();
    Ok(json(
        200,
        &SessionCreated {
            session_id: v.id,
            status: v.status.as_str().to_string(),
            environment: v.environment.as_str().to_string(),
            mode: v.mode.as_str().to_string(),
            message: "Session ready".into(),
        },
    ))
}

/// `GET /api/v1/sessions/{id}`.
async fn get(app: Arc<App>, req: HttpRequest) -> Reply {
    Ok(json(200, &view_json(&session(&app, &req)?.view())))
}

/// `GET /api/v1/sessions`: the caller's own sessions (another client's
/// ids are not shown).
async fn list(app: Arc<App>, req: HttpRequest) -> Reply {
    let me = req.client();
    let all: Vec<SessionInfo> = app
        .sessions
        .list()
        .iter()
        .filter(|s| s.owner == me)
        .map(|s| view_json(&s.view()))
        .collect();
    Ok(json(
        200,
        &SessionList {
            count: all.len(),
            sessions: all,
        },
    ))
}

/// `DELETE /api/v1/sessions/{id}`.
async fn delete(app: Arc<App>, req: HttpRequest) -> Reply {
    let id = req.param("id").to_string();
    let Some((_, running)) = app.sessions.remove(&id) else {
        return Err(not_found(&id));
    };
    let (status, message) = if running {
        (
            Status::Stopping,
            "The running execution is being stopped; the session then ends",
        )
    } else {
        (Status::Stopped, "Session ended")
    };
    Ok(json(
        200,
        &json!({"session_id": id, "status": status.as_str(), "message": message}),
    ))
}

/// `POST /api/v1/sessions/{id}/interrupt`.
async fn interrupt(app: Arc<App>, req: HttpRequest) -> Reply {
    let s = session(&app, &req)?;
    let interrupted = s.interrupt();
    Ok(json(
        200,
        &json!({
            "session_id": s.id,
            "interrupted": interrupted,
            "message": if interrupted { "The running execution was stopped" } else { "Nothing was running" },
        }),
    ))
}

/// What one execute asks.
struct ExecuteBody {
    code: String,
    filename: Option<String>,
    timeout: Duration,
}

fn execute_body(app: &App, body: &Map<String, Value>) -> Result<ExecuteBody, HttpError> {
    let code = required_str(body, "code")?.to_string();
    if code.len() > MAX_CODE_BYTES {
        return Err(HttpError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "Code is {} bytes; at most {MAX_CODE_BYTES} are allowed",
                code.len()
            ),
        )
        .with("field", "code"));
    }
    let filename = match str_field(body, "filename")? {
        Some(f) => {
            valid_filename(f).map_err(|m| HttpError::bad_field("filename", m))?;
            Some(f.to_string())
        }
        None => None,
    };
    let timeout = timeout_field(&app.config, body)?;
    Ok(ExecuteBody {
        code,
        filename,
        timeout,
    })
}

/// `POST /api/v1/sessions/{id}/execute {code, filename?, timeout?}`.
async fn execute(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let s = session(&app, &req)?;
    let body = req.body(&app.config).await?;
    let body = json_object(
        body,
        app.config.limits.max_json_depth,
        fields_of::<SessionExecute>(),
        r#"{"code": "console.log(1)"}"#,
    )
    .await?;
    let asked = execute_body(&app, &body)?;
    // Runs in one session go one at a time, in arrival order.
    let _turn = s.run_lock.lock().await;
    let ttl = app.sessions.ttl();
    if !s.begin_execution(ttl) {
        return Err(not_found(&s.id));
    }
    // Ends the execution however this handler ends: a client that goes
    // away drops it mid-run, and the session must not stay `executing`
    // (nor a notebook cell run on for nobody).
    let mut executing = Executing {
        session: &s,
        ttl,
        answered: false,
    };
    let started = Instant::now();
    let reply = match s.mode {
        Mode::Script => run_script(&app, &s, asked).await,
        Mode::Notebook => run_cell(&app, &s, asked).await,
    };
    executing.answered = true;
    drop(executing);
    let mut reply = reply?;
    reply["session_id"] = s.id.clone().into();
    reply["execution_time"] = started.elapsed().as_secs_f64().into();
    Ok(json(200, &reply))
}

/// An execution in progress: its end is recorded when this is dropped.
struct Executing<'a> {
    session: &'a Arc<Session>,
    ttl: Duration,
    /// False if the handler was dropped before its answer.
    answered: bool,
}

impl Drop for Executing<'_> {
    fn drop(&mut self) {
        if !self.answered
            && let Some(notebook) = &self.session.notebook
        {
            // The cell's client left: stop the cell (its state is kept).
            notebook.interrupt();
        }
        self.session.end_execution(self.ttl);
    }
}

/// Writes the file and runs it as a fresh program confined to the session.
async fn run_script(
    app: &Arc<App>,
    s: &Arc<Session>,
    asked: ExecuteBody,
) -> Result<Value, HttpError> {
    let name = asked
        .filename
        .unwrap_or_else(|| s.environment.default_file());
    let path = s.dir.join(&name);
    let code = asked.code;
    // The session's files stay within SESSION_DISK_BYTES across executions:
    // the new file counts, and the program may write what is left.
    let room = room_left(app, s, Some(&path)).await?;
    if code.len() as u64 > room {
        return Err(quota_full(app, code.len() as u64, room));
    }
    let write_budget = room - code.len() as u64;
    let written = tokio::task::spawn_blocking({
        let path = path.clone();
        move || write_atomically(&path, &code)
    })
    .await
    .map_err(HttpError::internal)?;
    written.map_err(|e| HttpError::storage(&format!("the session file {name}"), &e))?;
    let execution = Execution {
        cpu_limit: app.config.limits.default_cpu_limit,
        env: app.config.allow_env_values.clone(),
        scope: Some(s.dir.clone()),
        client: Some(s.owner.clone()),
        write_budget: Some(write_budget),
        ..Execution::program(path, None, asked.timeout)
    };
    let interrupted = s.interrupt.notified();
    let report = tokio::select! {
        r = app.execute("sessions", &execution) => r.map_err(|_| {
            HttpError::overloaded(app.config.queue_size)
        })?,
        () = interrupted => {
            return Ok(json!({"stdout": "", "stderr": "Interrupted\n", "exit_code": null, "status": "error", "output_truncated": false}));
        }
        () = s.ended() => {
            return Ok(json!({"stdout": "", "stderr": "The session ended\n", "exit_code": null, "status": "error", "output_truncated": false}));
        }
    };
    let (stdout, mut stderr) = split_streams(&report.logs);
    let (status, exit_code) = match ProgramEnd::of(report.outcome) {
        ProgramEnd::Exited(code) => ("completed", Some(code)),
        ProgramEnd::Failed { line, .. } => {
            stderr.push_str(&line);
            ("error", Some(1))
        }
        ProgramEnd::Stopped(ExecError::Timeout | ExecError::CpuLimit) => ("timeout", None),
        ProgramEnd::Stopped(other) => {
            // A kill or our failure: exit code 1, as a killed process
            // reads in this API.
            let e = HttpError::from_execution(&execution, other);
            stderr.push_str(&format!("error: {}\n", e.message));
            ("error", Some(1))
        }
    };
    Ok(json!({
        "stdout": stdout,
        "stderr": stderr,
        "exit_code": exit_code,
        "status": status,
        "output_truncated": report.logs_truncated,
    }))
}

/// Runs the next notebook cell.
async fn run_cell(
    app: &Arc<App>,
    s: &Arc<Session>,
    asked: ExecuteBody,
) -> Result<Value, HttpError> {
    let Some(notebook) = &s.notebook else {
        return Err(HttpError::internal("a notebook session has no notebook"));
    };
    let write_budget = room_left(app, s, None).await?;
    let cell = CellRequest {
        write_budget,
        code: asked.code,
        language: s.environment.language(),
        timeout: asked.timeout,
        env: app.config.allow_env_values.clone(),
    };
    let Some(report) = notebook.run(cell).await else {
        return Err(not_found(&s.id));
    };
    let outcome = match report.status {
        CellStatus::Completed => "ok",
        CellStatus::Error => "exception",
        CellStatus::Interrupted => "cancelled",
        CellStatus::Timeout => "timeout",
        CellStatus::MemoryLimit => "memory_limit",
    };
    app.metrics.execution(
        "sessions",
        "notebook",
        outcome,
        report.duration,
        Duration::ZERO,
    );
    let (status, exit_code) = match report.status {
        CellStatus::Completed => ("completed", Some(report.exit_code.unwrap_or(0))),
        CellStatus::Error | CellStatus::Interrupted | CellStatus::MemoryLimit => ("error", Some(1)),
        CellStatus::Timeout => ("timeout", None),
    };
    let result = match &report.result {
        Some(json) => serde_json::from_str::<Value>(json).unwrap_or(Value::Null),
        None => Value::Null,
    };
    Ok(json!({
        "stdout": report.stdout,
        "stderr": report.stderr,
        "exit_code": exit_code,
        "status": status,
        "result": result,
        "state_reset": report.state_reset,
        "interrupted": report.status == CellStatus::Interrupted,
        "output_truncated": report.output_truncated,
    }))
}

/// Bytes the session may still write under `SESSION_DISK_BYTES`; a file
/// about to be replaced (`replacing`) does not count.
async fn room_left(
    app: &App,
    s: &Session,
    replacing: Option<&std::path::Path>,
) -> Result<u64, HttpError> {
    let dir = s.dir.clone();
    let skip = replacing.map(std::path::Path::to_path_buf);
    let used = tokio::task::spawn_blocking(move || dir_bytes(&dir, skip.as_deref()))
        .await
        .map_err(HttpError::internal)?;
    Ok(app.config.session_disk_bytes.saturating_sub(used))
}

fn quota_full(app: &App, wanted: u64, room: u64) -> HttpError {
    HttpError::new(
        ErrorKind::InsufficientStorage,
        format!(
            "The session's files would pass SESSION_DISK_BYTES ({} bytes): {wanted} bytes \
             asked, {room} left; remove files or start a new session",
            app.config.session_disk_bytes
        ),
    )
    .with("limit", app.config.session_disk_bytes)
}

/// Bytes of the files under `dir` (sub-directories too), `skip` left out.
fn dir_bytes(dir: &std::path::Path, skip: Option<&std::path::Path>) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if skip != Some(entry.path().as_path()) {
                total += meta.len();
            }
        }
    }
    total
}

/// Writes `code` to `path` through a temporary file and a rename, so a
/// concurrent reader sees the old file or the new one.
fn write_atomically(path: &std::path::Path, code: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
        crate::workspace::ensure_room(parent)?;
    }
    // A short name of its own: one made from `path` could pass the 255
    // bytes a file name may have.
    static TEMPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = TEMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = path.with_file_name(format!(".isoexec-write-{n}.tmp"));
    let written = std::fs::write(&temp, code).and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// The request and reply bodies of these routes: the handlers read and write
/// them, and the OpenAPI document describes them.
pub(crate) mod types {
    #![allow(dead_code, reason = "some fields exist only to be described")]

    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;
    use utoipa::ToSchema;

    /// `POST /api/v1/sessions`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"environment": "typescript", "mode": "notebook"}))]
    pub(crate) struct SessionCreate {
        /// typescript, javascript or node.
        pub environment: String,
        /// script (default) or notebook.
        pub mode: Option<String>,
    }

    /// A new session.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct SessionCreated {
        pub session_id: String,
        pub status: String,
        pub environment: String,
        pub mode: String,
        pub message: String,
    }

    /// A session.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct SessionInfo {
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
    pub(crate) struct SessionList {
        pub sessions: Vec<SessionInfo>,
        pub count: usize,
    }

    /// `POST /api/v1/sessions/{id}/execute`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"code": "const n: number = 42;\nn", "timeout": 5000}))]
    pub(crate) struct SessionExecute {
        pub code: String,
        /// Script mode: the file to write (default main.ts / main.js).
        pub filename: Option<String>,
        /// ms, 1–`MAX_TIMEOUT`.
        pub timeout: Option<f64>,
    }

    /// An execution's outcome in a session.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct SessionRun {
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
    pub(crate) struct SessionStopped {
        pub session_id: String,
        /// stopping (a run is being stopped) or stopped.
        pub status: String,
        pub message: String,
    }

    /// `POST /api/v1/sessions/{id}/interrupt`.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct SessionInterrupted {
        pub session_id: String,
        pub interrupted: bool,
        pub message: String,
    }

    /// The session API's error shape (FastAPI's `detail`).
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    #[schema(example = json!({"detail": "Session not found", "error": "Session not found", "kind": "not_found", "details": {}}))]
    pub(crate) struct SessionError {
        pub detail: String,
        pub error: String,
        pub kind: String,
        pub details: BTreeMap<String, Value>,
    }
}
