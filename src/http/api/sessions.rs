//! The session API under `/api/v1` (FastAPI-shaped: errors carry
//! `detail`): environments, health, create, get, list, execute, interrupt,
//! delete.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use hyper::Method;

use super::jobs::bodies::StatusOk;
use crate::app::App;
use crate::clock::iso8601;
use crate::code::MAX_CODE_BYTES;
use crate::http::error::{Dialect, ErrorKind, HttpError, Reply};
use crate::http::forward::forward;
use crate::http::reply::json;
use crate::http::request::{HttpRequest, json_object, required_str, str_field, timeout_field};
use crate::http::route::{Doc, Route, fields_of};
use crate::sessions::{
    CreateError, Environment, Mode, RunError, RunInput, Session, SessionView, Status,
    valid_filename,
};
use bodies::{
    EnvironmentList, SessionCreate, SessionCreated, SessionError, SessionExecute, SessionInfo,
    SessionInterrupted, SessionList, SessionRun, SessionStopped,
};

pub(super) fn routes() -> Vec<Route> {
    let doc = |summary| Doc::new(summary, "sessions");
    let session = Dialect::Session;
    vec![
        Route::new("/api/v1/environments", session).on(
            Method::GET,
            environments,
            doc("The environments sessions can run")
                .reply::<EnvironmentList>("200", "typescript, javascript, node"),
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

/// Where a session is: on this replica, or on another (its address).
enum Place {
    Here(Arc<Session>),
    There(String),
}

/// Finds the session a request names. With a shared catalog, a session
/// held by another live replica is `There`; one whose replica is gone is
/// adopted here (a fresh notebook, the stored script files).
async fn locate(app: &Arc<App>, req: &HttpRequest) -> Result<Place, HttpError> {
    let id = req.param("id").to_string();
    if let Some(s) = app.sessions.get(&id) {
        if app.sessions.catalog().is_some_and(|c| !c.holds_lease()) {
            // Out of touch with the store past the lease: another replica
            // may have taken the session over; act on it no more.
            return Err(HttpError::new(
                ErrorKind::StorageUnavailable,
                "This replica has lost touch with the shared store; retry shortly",
            )
            .retry_in(1));
        }
        let lapses = app.sessions.catalog().map_or(0, |c| c.lapses());
        if s.owned_as_of.load(std::sync::atomic::Ordering::Acquire) == lapses {
            return Ok(Place::Here(s));
        }
        // This replica's lease ran out since it last knew it owned the
        // session: another may have adopted it. Ask the catalog.
        let (check_app, check_id) = (app.clone(), id.clone());
        let lost = tokio::task::spawn_blocking(move || match check_app.sessions.catalog() {
            Some(catalog) => catalog.lost(vec![check_id]),
            None => Ok(Vec::new()),
        })
        .await
        .map_err(HttpError::internal)?
        .map_err(|e| HttpError::storage_read("the session catalog", &std::io::Error::other(e.0)))?;
        if lost.is_empty() {
            s.owned_as_of
                .store(lapses, std::sync::atomic::Ordering::Release);
            return Ok(Place::Here(s));
        }
        tracing::warn!(session = %id, "session taken over by another replica; ended here");
        app.sessions.remove(&id);
    }
    let Some(catalog) = app.sessions.catalog() else {
        return Err(not_found(&id));
    };
    if !req.forwarded()
        && let Some(entry) = catalog.remembered(&id)
    {
        return Ok(Place::There(entry.owner_addr));
    }
    // Twice at most: a lost adoption race is followed by one more look.
    for _ in 0..2 {
        let looked = {
            let (app, id) = (app.clone(), id.clone());
            tokio::task::spawn_blocking(move || match app.sessions.catalog() {
                Some(catalog) => catalog.lookup(&id),
                None => Ok(None),
            })
            .await
            .map_err(HttpError::internal)?
        };
        let entry = looked
            .map_err(|e| {
                HttpError::storage_read("the session catalog", &std::io::Error::other(e.0))
            })?
            .ok_or_else(|| not_found(&id))?;
        let mine = app
            .sessions
            .catalog()
            .is_some_and(|c| c.me() == entry.owner);
        if entry.owner_alive && !mine {
            if req.forwarded() {
                // Sent here by a replica that thought this one held it.
                return Err(not_found(&id));
            }
            return Ok(Place::There(entry.owner_addr));
        }
        // The owner is gone (or is this replica, restarted): adopt it.
        let adopted = {
            let app = app.clone();
            tokio::task::spawn_blocking(move || {
                app.sessions
                    .adopt(&entry, |dir| app.runner.engine.start_notebook(dir))
            })
            .await
            .map_err(HttpError::internal)?
        };
        match adopted {
            Ok(Some(s)) => return Ok(Place::Here(s)),
            Ok(None) => continue,
            Err(e) => return Err(create_error(e)),
        }
    }
    Err(not_found(&id))
}

/// The session a request names when this replica holds it; otherwise
/// returns from the handler with the reply of the replica that does.
macro_rules! here_or_forward {
    ($app:expr, $req:expr) => {
        match locate(&$app, &$req).await? {
            Place::Here(s) => s,
            Place::There(addr) => {
                let id = $req.param("id").to_string();
                let secret = $app
                    .sessions
                    .catalog()
                    .map(|c| c.secret().to_string())
                    .unwrap_or_default();
                let reply = forward($req, &$app.config, &addr, &secret).await;
                if reply.is_err()
                    && let Some(catalog) = $app.sessions.catalog()
                {
                    // Its replica did not answer: look it up anew next time.
                    catalog.forget(&id);
                }
                return reply;
            }
        }
    };
}

fn names() -> Vec<&'static str> {
    Environment::all().map(Environment::as_str).collect()
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
                    "Unknown environment '{e}'; available: {} ({})",
                    names().join(", "),
                    crate::engine::Language::why_not(e)
                ),
            )
            .with("available", names())
        })?,
        // DEFAULT_ENVIRONMENT, when the server has one.
        None => match app
            .config
            .default_environment
            .as_deref()
            .and_then(Environment::parse)
        {
            Some(e) => e,
            None => {
                return Err(HttpError::bad_field(
                    "environment",
                    format!(
                        "Missing required field 'environment'; one of {} (or start the \
                         server with DEFAULT_ENVIRONMENT)",
                        names().join(", ")
                    ),
                )
                .with("available", names()));
            }
        },
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
            engine_app.runner.engine.start_notebook(dir)
        })
    })
    .await
    .map_err(HttpError::internal)?;
    let session = created.map_err(create_error)?;
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

/// Why a session could not be made, as the API says it.
fn create_error(e: CreateError) -> HttpError {
    match e {
        CreateError::Full(max) => HttpError::new(
            ErrorKind::TooManySessions,
            format!(
                "{max} sessions are alive, the most this server keeps, and all are \
                 executing; end one or retry later"
            ),
        )
        .with("max_sessions", max)
        .retry_in(RETRY_AFTER_SECS),
        CreateError::ClientFull(share) => HttpError::new(
            ErrorKind::TooManySessions,
            format!(
                "This client has {share} sessions, its share of MAX_SESSIONS (half \
                 of it), and all are executing; end one or retry later"
            ),
        )
        .with("client_share", share)
        .retry_in(RETRY_AFTER_SECS),
        CreateError::Io(e) => HttpError::storage("a new session's directory", &e),
        CreateError::Store(e) => HttpError::storage(
            "the session to the shared catalog",
            &std::io::Error::other(e),
        ),
    }
}

/// `GET /api/v1/sessions/{id}`.
async fn get(app: Arc<App>, req: HttpRequest) -> Reply {
    // A session ended lately reads `stopping`, then `stopped`, for a while:
    // clients poll for that after a delete.
    if let Some(view) = app.sessions.recently_ended(req.param("id")) {
        return Ok(json(200, &view_json(&view)));
    }
    let s = here_or_forward!(app, req);
    Ok(json(200, &view_json(&s.view())))
}

/// `GET /api/v1/sessions`: the caller's own sessions (another client's
/// ids are not shown).
async fn list(app: Arc<App>, req: HttpRequest) -> Reply {
    let me = req.client();
    let mut all: Vec<SessionInfo> = app
        .sessions
        .list()
        .iter()
        .filter(|s| s.owner == me)
        .map(|s| view_json(&s.view()))
        .collect();
    if app.sessions.catalog().is_some() {
        // The caller's sessions other replicas hold, as the catalog knows
        // them (their replica has the live figures).
        let (catalog_app, client) = (app.clone(), me.to_string());
        let entries = tokio::task::spawn_blocking(move || match catalog_app.sessions.catalog() {
            Some(catalog) => catalog.of_client(&client),
            None => Ok(Vec::new()),
        })
        .await
        .map_err(HttpError::internal)?
        .map_err(|e| HttpError::storage_read("the session catalog", &std::io::Error::other(e.0)))?;
        let expires = iso8601(crate::clock::now_ms() + app.sessions.ttl().as_millis() as u64);
        for e in entries {
            if all.iter().any(|s| s.session_id == e.id) {
                continue;
            }
            all.push(SessionInfo {
                session_id: e.id,
                status: Status::Ready.as_str().to_string(),
                environment: e.environment,
                mode: e.mode,
                container_id: None,
                created_at: iso8601(e.created_at_ms),
                last_execution: None,
                expires_at: expires.clone(),
            });
        }
    }
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
    let _ = here_or_forward!(app, req);
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
    let s = here_or_forward!(app, req);
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

fn run_request(app: &App, body: &Map<String, Value>) -> Result<RunInput, HttpError> {
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
    Ok(RunInput {
        code,
        filename,
        timeout,
    })
}

/// `POST /api/v1/sessions/{id}/execute {code, filename?, timeout?}`.
async fn execute(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let s = here_or_forward!(app, req);
    let body = req.body(&app.config).await?;
    let body = json_object(
        body,
        app.config.limits.max_json_depth,
        fields_of::<SessionExecute>(),
        r#"{"code": "console.log(1)"}"#,
    )
    .await?;
    let request = run_request(&app, &body)?;
    let output = match app.sessions.execute(&s, &app.runner, request).await {
        Ok(output) => output,
        Err(RunError::Gone) => return Err(not_found(&s.id)),
        Err(RunError::Overloaded) => return Err(HttpError::overloaded(app.config.queue_size)),
        Err(RunError::QuotaFull {
            wanted,
            room,
            limit,
        }) => return Err(quota_full(wanted, room, limit)),
        Err(RunError::Storage { what, error }) => return Err(HttpError::storage(&what, &error)),
        Err(RunError::Internal(cause)) => return Err(HttpError::internal(cause)),
    };
    let mut reply = json!({
        "session_id": s.id,
        "stdout": output.stdout,
        "stderr": output.stderr,
        "exit_code": output.exit_code,
        "status": output.status.as_str(),
        "output_truncated": output.output_truncated,
        "execution_time": output.took.as_secs_f64(),
    });
    if let Some(cell) = output.cell {
        reply["result"] = cell
            .result
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .unwrap_or(Value::Null);
        reply["state_reset"] = cell.state_reset.into();
        reply["interrupted"] = cell.interrupted.into();
    }
    Ok(json(200, &reply))
}

fn quota_full(wanted: u64, room: u64, limit: u64) -> HttpError {
    HttpError::new(
        ErrorKind::InsufficientStorage,
        format!(
            "The session's files would pass SESSION_DISK_BYTES ({limit} bytes): {wanted} bytes \
             asked, {room} left; remove files or start a new session",
        ),
    )
    .with("limit", limit)
}

/// The request and reply bodies of these routes: the handlers read and write
/// them, and the OpenAPI document describes them.
pub(crate) mod bodies {
    #![allow(dead_code, reason = "some fields exist only to be described")]

    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;
    use utoipa::ToSchema;

    /// `GET /api/v1/environments`: the environment names.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    #[schema(example = json!(["typescript", "javascript", "node"]))]
    pub(crate) struct EnvironmentList(pub Vec<String>);

    /// `POST /api/v1/sessions`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"environment": "typescript", "mode": "notebook"}))]
    pub(crate) struct SessionCreate {
        /// typescript, javascript, node or python.
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
