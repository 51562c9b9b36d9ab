//! The code-job API: `POST /execute/code`, `GET /execute/jobs/{id}`,
//! `GET /execute/jobs`, `DELETE /execute/jobs/{id}`, `GET /execute/health`.
//! Errors are written in the function-call dialect.

use std::sync::Arc;

use serde_json::{Map, Value};

use hyper::Method;

use super::run::bodies::CallError;
use crate::app::App;
use crate::clock::iso8601;
use crate::code::MAX_CODE_BYTES;
use crate::engine::Language;
use crate::http::error::{Dialect, ErrorKind, HttpError, Reply};
use crate::http::reply::json;
use crate::http::request::{HttpRequest, json_object, str_field, timeout_field};
use crate::http::route::{Doc, Route, fields_of};
use crate::jobs::store::{JobRecord, JobStatus, ListFilter, StoreError};
use crate::jobs::{JobError, JobRequest};
use bodies::{Deleted, JobList, JobQueued, JobSubmit, JobView, StatusOk};

pub(super) fn routes() -> Vec<Route> {
    let doc = |summary| Doc::new(summary, "code jobs");
    vec![
        Route::new("/execute/code", Dialect::FunctionCall).on(
            Method::POST,
            submit,
            doc("Run a snippet and keep a record of the run")
                .body::<JobSubmit>()
                .query(&[(
                    "wait",
                    "false: answer 202 at once and run in the background",
                )])
                .reply::<JobView>("200", "The completed record")
                .reply::<JobQueued>("202", "Queued (`?wait=false`)")
                .reply::<CallError>("4XX", "Bad input")
                .reply::<CallError>("503", "The records cannot be written"),
        ),
        Route::new("/execute/health", Dialect::FunctionCall).public(
            Method::GET,
            health,
            doc("The job API and its records answer")
                .reply::<StatusOk>("200", "Healthy")
                .reply::<CallError>("503", "Records unreachable"),
        ),
        Route::new("/execute/jobs", Dialect::FunctionCall).on(
            Method::GET,
            list,
            doc("List job records, newest first")
                .query(&[
                    ("task_id", "Only this task's jobs"),
                    ("status", "queued, running, done, timeout, killed or error"),
                    ("limit", "1 to 1000 (default 50)"),
                    ("before", "The next_before of the previous page"),
                ])
                .reply::<JobList>("200", "A page of records")
                .reply::<CallError>("400", "Bad filter"),
        ),
        Route::new("/execute/jobs/{id}", Dialect::FunctionCall)
            .on(
                Method::GET,
                get,
                doc("A job's record, with its code")
                    .reply::<JobView>("200", "The record")
                    .reply::<CallError>("404", "No such job"),
            )
            .on(
                Method::DELETE,
                delete,
                doc("Delete a job's record")
                    .reply::<Deleted>("200", "Deleted")
                    .reply::<CallError>("404", "No such job"),
            ),
    ]
}

/// Records a listing returns unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
/// Longest `task_id`.
const MAX_TASK_ID: usize = 255;
/// Seconds a client is asked to wait when the store or queue is unavailable.
const RETRY_AFTER_SECS: u32 = 1;

fn store_unavailable(e: StoreError) -> HttpError {
    tracing::error!(cause = %e, "job store unavailable");
    HttpError::new(
        ErrorKind::StorageUnavailable,
        "The job records cannot be read or written right now; nothing was run",
    )
    .retry_in(RETRY_AFTER_SECS)
}

/// A record as the API writes it; `with_code` adds the code, the stdin
/// and the timeout.
fn record_json(j: &JobRecord, with_code: bool) -> JobView {
    JobView {
        id: j.id.clone(),
        task_id: j.task_id.clone(),
        lang: j.lang.clone(),
        output: j.output.clone(),
        output_truncated: j.output_truncated,
        exit_code: j.exit_code,
        status: j.status.as_str().to_string(),
        error: j.error.clone(),
        duration_ms: j.duration_ms,
        created_at: iso8601(j.created_at_ms),
        finished_at: j.finished_at_ms.map(iso8601),
        code: with_code.then(|| j.code.clone()),
        stdin: if with_code { j.stdin.clone() } else { None },
        timeout: with_code.then_some(j.timeout_ms),
    }
}

/// The request body, checked.
fn job_request(app: &App, body: &Map<String, Value>) -> Result<JobRequest, HttpError> {
    let Some(lang) = str_field(body, "lang")? else {
        return Err(HttpError::bad_field(
            "lang",
            format!(
                "Missing required field 'lang'; one of {}",
                Language::all_aliases().join(", ")
            ),
        ));
    };
    let lang = lang.to_ascii_lowercase();
    if Language::from_alias(&lang).is_none() {
        return Err(HttpError::bad_field(
            "lang",
            format!(
                "Unknown lang '{lang}'; this server runs {}: {}",
                Language::all_aliases().join(", "),
                Language::why_not(&lang)
            ),
        )
        .with("available", Language::all_aliases()));
    }
    let code = match str_field(body, "code")? {
        Some(c) if !c.trim().is_empty() => c.to_string(),
        Some(_) => {
            return Err(HttpError::bad_field(
                "code",
                "Field 'code' must not be empty",
            ));
        }
        None => {
            return Err(HttpError::bad_field(
                "code",
                "Missing required field 'code': the program to run",
            ));
        }
    };
    if let Some(message) = crate::code::jsx_fence(&code) {
        return Err(HttpError::bad_field("code", message));
    }
    let code = if code.contains("```") {
        crate::code::extract_code(&code).to_string()
    } else {
        code
    };
    if code.len() > MAX_CODE_BYTES {
        return Err(HttpError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "Code is {} bytes; at most {MAX_CODE_BYTES} are allowed",
                code.len()
            ),
        )
        .with("field", "code")
        .with("limit", MAX_CODE_BYTES));
    }
    let task_id = match str_field(body, "task_id")? {
        Some(t) if t.len() > MAX_TASK_ID => {
            return Err(HttpError::bad_field(
                "task_id",
                format!("Field 'task_id' is longer than {MAX_TASK_ID} bytes"),
            ));
        }
        t => t.map(str::to_string),
    };
    let stdin = str_field(body, "stdin")?.map(str::to_string);
    let timeout = timeout_field(&app.config, body)?;
    Ok(JobRequest {
        lang,
        code,
        task_id,
        timeout,
        stdin,
        client: None,
    })
}

/// `POST /execute/code[?wait=false]`.
async fn submit(app: Arc<App>, mut req: HttpRequest) -> Reply {
    let wait = match req.query("wait").as_deref() {
        None | Some("true") | Some("1") | Some("") => true,
        Some("false") | Some("0") => false,
        Some(other) => {
            return Err(HttpError::bad_field(
                "wait",
                format!("Query parameter 'wait' must be true or false, not '{other}'"),
            ));
        }
    };
    let body = req.body(&app.config).await?;
    let body = json_object(
        body,
        app.config.limits.max_json_depth,
        fields_of::<JobSubmit>(),
        r#"{"lang": "ts", "code": "console.log(1)"}"#,
    )
    .await?;
    let mut request = job_request(&app, &body)?;
    request.client = Some(req.client());
    // The job is recorded and run by a task of its own: a client that goes
    // away mid-way drops this handler, not the job, so every record it
    // made reaches a final state (and a queued one runs).
    let jobs = app.jobs.clone();
    if !wait {
        let (recorded, told) = tokio::sync::oneshot::channel();
        let client = request.client.clone();
        crate::background::spawn(async move {
            match jobs.enqueue(request).await {
                Ok(record) => {
                    let _ = recorded.send(Ok(record.clone()));
                    // A shared queue's job is claimed by whichever
                    // replica has room, this one included.
                    if !jobs.shared() {
                        jobs.run_queued(record, client).await;
                    }
                }
                Err(e) => {
                    let _ = recorded.send(Err(e));
                }
            }
        });
        let record = told
            .await
            .map_err(|_| HttpError::internal("a job task ended without an answer"))?
            .map_err(|e| job_error(&app, e))?;
        let reply = JobQueued {
            id: record.id.clone(),
            status: JobStatus::Queued.as_str().to_string(),
        };
        return Ok(json(202, &reply));
    }
    let ran = crate::background::spawn(async move { jobs.run_now(request).await })
        .await
        .map_err(|e| HttpError::internal(format!("a job task failed: {e}")))?;
    match ran {
        Ok(record) => Ok(json(200, &record_json(&record, false))),
        Err(e) => Err(job_error(&app, e)),
    }
}

/// What a client is told when a job could not be recorded, run or
/// completed: each answer says whether the program ran.
fn job_error(app: &App, e: JobError) -> HttpError {
    match e {
        JobError::Store(e) => store_unavailable(e),
        JobError::Overloaded(record) => {
            HttpError::overloaded(app.config.queue_size).with("id", record.id)
        }
        JobError::QueueFull(max) => HttpError::new(
            ErrorKind::Overloaded,
            format!(
                "{max} background jobs are waiting or running (QUEUE_SIZE); nothing was \
                 recorded or run, retry later"
            ),
        )
        .with("queue_size", max)
        .retry_in(RETRY_AFTER_SECS),
        JobError::ClientShareFull(share) => HttpError::new(
            ErrorKind::Overloaded,
            format!(
                "This client has {share} background jobs waiting or running, its share \
                 of the queue (half of QUEUE_SIZE); nothing was recorded or run, \
                 retry later"
            ),
        )
        .with("client_share", share)
        .retry_in(RETRY_AFTER_SECS),
        JobError::Full(why) => HttpError::new(
            ErrorKind::InsufficientStorage,
            format!("No room for another job record ({why}); nothing was recorded or run"),
        ),
        JobError::Unrecorded { record, error } => {
            tracing::error!(id = %record.id, cause = %error, "a job ran but its record was not completed");
            let mut err = HttpError::new(
                ErrorKind::StorageUnavailable,
                format!(
                    "The job ran ({}), but its record could not be completed: {error}; \
                     it is retried in the background",
                    record.status.as_str()
                ),
            )
            .with("id", record.id.clone())
            .with("status", record.status.as_str())
            .with("output", record.output.clone());
            if let Some(code) = record.exit_code {
                err = err.with("exit_code", code);
            }
            err.retry_in(RETRY_AFTER_SECS)
        }
    }
}

/// `GET /execute/jobs/{id}`.
async fn get(app: Arc<App>, req: HttpRequest) -> Reply {
    let id = req.param("id").to_string();
    match app.jobs.get(id.clone()).await.map_err(store_unavailable)? {
        Some(record) => Ok(json(200, &record_json(&record, true))),
        None => Err(HttpError::new(ErrorKind::NotFound, format!("No job {id}")).with("id", id)),
    }
}

/// `DELETE /execute/jobs/{id}`.
async fn delete(app: Arc<App>, req: HttpRequest) -> Reply {
    let id = req.param("id").to_string();
    if app
        .jobs
        .delete(id.clone())
        .await
        .map_err(store_unavailable)?
    {
        Ok(json(200, &Deleted { id, deleted: true }))
    } else {
        Err(HttpError::new(ErrorKind::NotFound, format!("No job {id}")).with("id", id))
    }
}

/// `GET /execute/jobs?task_id=&status=&limit=&before=`: newest first.
async fn list(app: Arc<App>, req: HttpRequest) -> Reply {
    let status = match req.query("status") {
        None => None,
        Some(s) => Some(JobStatus::parse(&s).ok_or_else(|| {
            let names: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
            HttpError::bad_field(
                "status",
                format!("Unknown status '{s}'; one of {}", names.join(", ")),
            )
        })?),
    };
    let limit = match req.query("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(HttpError::bad_field(
                    "limit",
                    format!("Query parameter 'limit' must be 1 to {MAX_LIMIT}, not '{l}'"),
                ));
            }
        },
    };
    let filter = ListFilter {
        task_id: req.query("task_id"),
        status,
        limit,
        before: req.query("before").filter(|b| !b.is_empty()),
    };
    let records = app.jobs.list(filter).await.map_err(store_unavailable)?;
    // A full page may have more behind it: its last id is the next cursor.
    let next = (records.len() == limit)
        .then(|| records.last().map(|r| r.id.clone()))
        .flatten();
    let jobs: Vec<JobView> = records.iter().map(|r| record_json(r, false)).collect();
    Ok(json(
        200,
        &JobList {
            count: jobs.len(),
            jobs,
            next_before: next,
        },
    ))
}

/// `GET /execute/health`: the job API answers and its store is reachable.
async fn health(app: Arc<App>, _req: HttpRequest) -> Reply {
    app.jobs.ping().await.map_err(store_unavailable)?;
    Ok(json(
        200,
        &StatusOk {
            status: "ok".into(),
        },
    ))
}

/// The request and reply bodies of these routes: the handlers read and write
/// them, and the OpenAPI document describes them.
pub(crate) mod bodies {
    #![allow(dead_code, reason = "some fields exist only to be described")]

    use serde::{Deserialize, Serialize};
    use utoipa::ToSchema;

    /// `POST /execute/code`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[schema(example = json!({"lang": "ts", "code": "console.log(6 * 7)", "task_id": "q1"}))]
    pub(crate) struct JobSubmit {
        /// ts, typescript, js, javascript, node, python, py or python3 (any case).
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
    pub(crate) struct JobView {
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
    pub(crate) struct JobQueued {
        pub id: String,
        pub status: String,
    }

    /// `GET /execute/jobs`.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct JobList {
        pub jobs: Vec<JobView>,
        pub count: usize,
        /// Pass as `before` for the next page (null on the last).
        pub next_before: Option<String>,
    }

    /// A deletion.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct Deleted {
        pub id: String,
        pub deleted: bool,
    }

    /// `{"status": "ok"}`.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct StatusOk {
        pub status: String,
    }
}
