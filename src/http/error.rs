//! The HTTP layer's one error type. Every failure a caller can see is an
//! [`HttpError`]: a stable [`ErrorKind`], a public message and structured
//! details. How it is written depends on the API that answers: the
//! function-call shape (`{"error", "kind", "details", "logs"}`) or
//! restexec's (`{"success": false, "error": {"type", "message",
//! "details"}}`); both come from [`ErrorKind::statuses`], the one table of
//! statuses. Internal causes are logged once, where the error is made, and
//! never sent.

use hyper::Response;
use hyper::header::{self, HeaderValue};
use serde_json::{Map, Value, json};

use super::reply::{Body, json_text};
use crate::engine::{ExecError, Execution};

/// The stable error kinds of the API (`kind` in every error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    BadRequest,
    SyntaxError,
    FnNotFound,
    Exception,
    Timeout,
    CpuLimit,
    MemoryLimit,
    OutputLimit,
    PermissionDenied,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    Overloaded,
    Unauthorized,
    /// The key is valid but may not do this (a tenant key without the
    /// scope).
    Forbidden,
    /// A tenant's concurrency or rate limit was reached.
    TooManyRequests,
    /// The job records could not be read or written.
    StorageUnavailable,
    /// `MAX_SESSIONS` sessions are alive.
    TooManySessions,
    /// The caller went away and its execution was stopped (the answer is
    /// written for the log and the metrics; nobody reads it).
    Cancelled,
    /// No room to write: the disk is full, or a store or quota bound
    /// (`JOB_STORE_BYTES`, a session's files) was reached.
    InsufficientStorage,
    Internal,
}

/// Seconds a client is asked to wait when the execution queue is full.
pub(crate) const OVERLOAD_RETRY_SECS: u32 = 1;

/// What a handler returns: a response, or the error the router writes in
/// the route's dialect.
pub(crate) type Reply = Result<Response<Body>, HttpError>;

/// Which API's reply shape an error is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `POST /`, `/run`: `{"error", "kind", "details", "logs"}`.
    FunctionCall,
    /// `/workspace`, `/execute`, `/lint`: restexec's shape.
    Restexec,
    /// `/api/v1/…`: FastAPI's `{"detail": …}`, plus `error`, `kind` and
    /// `details`.
    Session,
}

impl ErrorKind {
    /// The kind of a failed execution: the engine's own kind, by name.
    pub(crate) fn of_execution(e: &ExecError) -> ErrorKind {
        use ErrorKind::*;
        match e.kind() {
            "syntax_error" => SyntaxError,
            "fn_not_found" => FnNotFound,
            "exception" => Exception,
            "timeout" => Timeout,
            "cpu_limit" => CpuLimit,
            "memory_limit" => MemoryLimit,
            "output_limit" => OutputLimit,
            "permission_denied" => PermissionDenied,
            "cancelled" => Cancelled,
            _ => Internal,
        }
    }

    /// The `kind` string clients match on.
    pub(crate) fn as_str(self) -> &'static str {
        self.statuses().0
    }

    /// The one table: kind string, function-call status, restexec `type`,
    /// restexec status.
    pub(crate) fn statuses(self) -> (&'static str, u16, &'static str, u16) {
        use ErrorKind::*;
        match self {
            BadRequest => ("bad_request", 400, "ValidationError", 400),
            SyntaxError => ("syntax_error", 400, "ExecutionError", 500),
            FnNotFound => ("fn_not_found", 400, "ExecutionError", 500),
            Exception => ("exception", 500, "ExecutionError", 500),
            Timeout => ("timeout", 408, "TimeoutError", 408),
            CpuLimit => ("cpu_limit", 408, "TimeoutError", 408),
            MemoryLimit => ("memory_limit", 507, "ExecutionError", 500),
            OutputLimit => ("output_limit", 507, "ExecutionError", 500),
            PermissionDenied => ("permission_denied", 500, "ExecutionError", 500),
            PayloadTooLarge => ("payload_too_large", 413, "ValidationError", 413),
            NotFound => ("not_found", 404, "NotFoundError", 404),
            MethodNotAllowed => ("method_not_allowed", 405, "MethodNotAllowedError", 405),
            Overloaded => ("overloaded", 503, "InternalServerError", 503),
            Unauthorized => ("unauthorized", 401, "UnauthorizedError", 401),
            Forbidden => ("forbidden", 403, "ForbiddenError", 403),
            TooManyRequests => ("too_many_requests", 429, "TooManyRequestsError", 429),
            StorageUnavailable => ("storage_unavailable", 503, "InternalServerError", 503),
            TooManySessions => ("too_many_sessions", 429, "InternalServerError", 429),
            InsufficientStorage => ("insufficient_storage", 507, "InternalServerError", 507),
            Cancelled => ("cancelled", 499, "InternalServerError", 499),
            Internal => ("internal", 500, "InternalServerError", 500),
        }
    }

    /// The HTTP status of this kind in `dialect`.
    pub(crate) fn status(self, dialect: Dialect) -> u16 {
        let (_, call, _, rest) = self.statuses();
        match dialect {
            Dialect::FunctionCall | Dialect::Session => call,
            Dialect::Restexec => rest,
        }
    }
}

/// A failure as the caller sees it (boxed: it travels in every `Result`).
#[derive(Debug, Clone)]
pub(crate) struct HttpError(Box<HttpErrorBody>);

/// The parts of an [`HttpError`].
#[derive(Debug, Clone)]
pub(crate) struct HttpErrorBody {
    pub kind: ErrorKind,
    /// The human message (`error`, or restexec's `error.message`).
    pub message: String,
    /// Kind-specific structured facts (`details`).
    pub details: Map<String, Value>,
    /// Seconds for a `Retry-After` header (set for `overloaded`).
    pub retry_after: Option<u32>,
    /// Methods for an `Allow` header (set for `method_not_allowed`).
    pub allow: Option<String>,
    /// A restexec `type` more precise than the kind's (`FileNotFoundError`).
    pub restexec_type: Option<&'static str>,
    /// Milliseconds the request spent running code (restexec's
    /// `executionTime`).
    pub execution_ms: Option<u64>,
    /// The captured logs (their JSON text) and whether they were cut: a
    /// function-call error carries what the code logged before it failed.
    pub logs: Option<(String, bool)>,
}

impl std::ops::Deref for HttpError {
    type Target = HttpErrorBody;
    fn deref(&self) -> &HttpErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for HttpError {
    fn deref_mut(&mut self) -> &mut HttpErrorBody {
        &mut self.0
    }
}

impl HttpError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> HttpError {
        HttpError(Box::new(HttpErrorBody {
            kind,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
            allow: None,
            restexec_type: None,
            execution_ms: None,
            logs: None,
        }))
    }

    /// Adds one field to `details`.
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> HttpError {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// A 400 about `field` of the request.
    pub(crate) fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError::new(ErrorKind::BadRequest, message)
    }

    /// A 400 that names the field it is about.
    pub(crate) fn bad_field(field: &str, message: impl Into<String>) -> HttpError {
        HttpError::bad_request(message).with("field", field)
    }

    /// A bug on our side: the cause is logged here, once, and the caller
    /// gets a generic message.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> HttpError {
        tracing::error!(cause = %cause, "internal error");
        HttpError::new(ErrorKind::Internal, "Internal server error")
    }

    /// A write to disk that failed: 507 when there is no room (a full
    /// disk or quota), else 503 (the storage cannot be written now). The
    /// message says what was being written; nothing is hidden behind an
    /// opaque `internal`.
    pub(crate) fn storage(what: &str, e: &std::io::Error) -> HttpError {
        HttpError::stored("write", what, e)
    }

    /// As [`HttpError::storage`], for a read of stored data (saved code
    /// in a shared store): 503 with `Retry-After` when the store is down.
    pub(crate) fn storage_read(what: &str, e: &std::io::Error) -> HttpError {
        HttpError::stored("read", what, e)
    }

    fn stored(verb: &str, what: &str, e: &std::io::Error) -> HttpError {
        use std::io::ErrorKind as Io;
        let full = matches!(
            e.kind(),
            Io::StorageFull | Io::QuotaExceeded | Io::FileTooLarge
        );
        tracing::error!(cause = %e, what, verb, "storage failed");
        if full {
            HttpError::new(
                ErrorKind::InsufficientStorage,
                format!("No space left to write {what}: {e}"),
            )
        } else {
            HttpError::new(
                ErrorKind::StorageUnavailable,
                format!("Could not {verb} {what}: {e}"),
            )
            .retry_in(1)
        }
    }

    pub(crate) fn method_not_allowed(allow: &str) -> HttpError {
        let mut e = HttpError::new(
            ErrorKind::MethodNotAllowed,
            format!("Method not allowed; use {allow}"),
        )
        .with("allow", allow);
        e.allow = Some(allow.to_string());
        e
    }

    /// The execution queue is full: retry in [`OVERLOAD_RETRY_SECS`].
    pub(crate) fn overloaded(queue_size: usize) -> HttpError {
        HttpError::new(
            ErrorKind::Overloaded,
            "Server is overloaded: the execution queue is full",
        )
        .with("queueSize", queue_size)
        .retry_in(OVERLOAD_RETRY_SECS)
    }

    /// Asks the client to retry after `secs` seconds (`Retry-After`).
    pub(crate) fn retry_in(mut self, secs: u32) -> HttpError {
        self.retry_after = Some(secs);
        self
    }

    /// Sets restexec's `executionTime`.
    pub(crate) fn timed(mut self, ms: u64) -> HttpError {
        self.execution_ms = Some(ms);
        self
    }

    /// The HTTP status in `dialect`.
    pub(crate) fn status(&self, dialect: Dialect) -> u16 {
        self.kind.status(dialect)
    }

    /// The reply, written in `dialect`.
    pub(crate) fn response(&self, dialect: Dialect) -> Response<Body> {
        let body = match dialect {
            Dialect::FunctionCall => {
                let mut body = json!({
                    "error": self.message,
                    "kind": self.kind.as_str(),
                    "details": self.details,
                });
                let (logs, cut) = match &self.logs {
                    Some((text, cut)) => (
                        serde_json::from_str(text).unwrap_or(Value::Array(Vec::new())),
                        *cut,
                    ),
                    None => (Value::Array(Vec::new()), false),
                };
                body["logs"] = logs;
                if cut {
                    body["logsTruncated"] = true.into();
                }
                body
            }
            Dialect::Session => json!({
                "detail": self.message,
                "error": self.message,
                "kind": self.kind.as_str(),
                "details": self.details,
            }),
            Dialect::Restexec => {
                let mut details = self.details.clone();
                details
                    .entry("kind")
                    .or_insert_with(|| self.kind.as_str().into());
                let kind = self.restexec_type.unwrap_or(self.kind.statuses().2);
                let mut body = json!({
                    "success": false,
                    "error": {"type": kind, "message": self.message, "details": details},
                });
                if let Some(ms) = self.execution_ms {
                    body["executionTime"] = ms.into();
                }
                body
            }
        };
        let mut r = json_text(self.status(dialect), body.to_string());
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            r.headers_mut().insert(header::ALLOW, allow);
        }
        r
    }

    /// The caller's view of an execution that failed: the engine's kind,
    /// message and details ([`ExecError::describe`]); our own failures are
    /// logged and shown only as "Internal server error".
    pub(crate) fn from_execution(execution: &Execution, e: ExecError) -> HttpError {
        if let ExecError::Internal { message } = e {
            return HttpError::internal(message);
        }
        let described = e.describe(execution.timeout, execution.cpu_limit);
        let mut error = HttpError::new(ErrorKind::of_execution(&e), described.message);
        error.details = described.details;
        error
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.as_str())
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_execution_error_has_the_engine_s_kind_in_the_api() {
        let execution = Execution::program("/x.ts".into(), None, std::time::Duration::from_secs(1));
        let all = [
            ExecError::Syntax {
                message: "m".into(),
                line: 1,
                column: 1,
            },
            ExecError::FnNotFound {
                name: "f".into(),
                exports: vec![],
                declared: false,
            },
            ExecError::Exception {
                name: "Error".into(),
                message: "m".into(),
                stack: None,
            },
            ExecError::Exit { code: 2 },
            ExecError::Timeout,
            ExecError::CpuLimit,
            ExecError::MemoryLimit,
            ExecError::OutputLimit {
                message: "m".into(),
            },
            ExecError::PermissionDenied {
                message: "m".into(),
            },
            ExecError::Cancelled,
            ExecError::WorkerDied {
                signal: None,
                code: Some(1),
            },
            ExecError::Internal {
                message: "m".into(),
            },
        ];
        for e in all {
            let engine = e.kind();
            let api = HttpError::from_execution(&execution, e.clone());
            assert_eq!(api.kind.as_str(), engine, "{e:?}");
        }
    }

    #[test]
    fn a_full_disk_is_507_and_other_write_failures_503() {
        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space");
        let e = HttpError::storage("the code of x", &full);
        assert_eq!(e.kind, ErrorKind::InsufficientStorage);
        assert_eq!(e.kind.status(Dialect::Restexec), 507);
        assert!(e.message.contains("the code of x"), "{}", e.message);
        let other = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only");
        let e = HttpError::storage("a session file", &other);
        assert_eq!(e.kind, ErrorKind::StorageUnavailable);
        assert_eq!(e.kind.status(Dialect::Session), 503);
        assert_eq!(e.retry_after, Some(1));
    }

    #[test]
    fn every_kind_maps_to_its_status_in_both_dialects() {
        use ErrorKind::*;
        // kind, its string, function-call status, restexec type and status.
        let table = [
            (BadRequest, "bad_request", 400, "ValidationError", 400),
            (SyntaxError, "syntax_error", 400, "ExecutionError", 500),
            (FnNotFound, "fn_not_found", 400, "ExecutionError", 500),
            (Exception, "exception", 500, "ExecutionError", 500),
            (Timeout, "timeout", 408, "TimeoutError", 408),
            (CpuLimit, "cpu_limit", 408, "TimeoutError", 408),
            (MemoryLimit, "memory_limit", 507, "ExecutionError", 500),
            (OutputLimit, "output_limit", 507, "ExecutionError", 500),
            (
                PermissionDenied,
                "permission_denied",
                500,
                "ExecutionError",
                500,
            ),
            (
                PayloadTooLarge,
                "payload_too_large",
                413,
                "ValidationError",
                413,
            ),
            (NotFound, "not_found", 404, "NotFoundError", 404),
            (
                MethodNotAllowed,
                "method_not_allowed",
                405,
                "MethodNotAllowedError",
                405,
            ),
            (Overloaded, "overloaded", 503, "InternalServerError", 503),
            (Unauthorized, "unauthorized", 401, "UnauthorizedError", 401),
            (
                StorageUnavailable,
                "storage_unavailable",
                503,
                "InternalServerError",
                503,
            ),
            (
                TooManySessions,
                "too_many_sessions",
                429,
                "InternalServerError",
                429,
            ),
            (
                InsufficientStorage,
                "insufficient_storage",
                507,
                "InternalServerError",
                507,
            ),
            (Cancelled, "cancelled", 499, "InternalServerError", 499),
            (Internal, "internal", 500, "InternalServerError", 500),
        ];
        for (kind, name, call, rest_type, rest) in table {
            let e = HttpError::new(kind, "m").with("x", 1);
            let r = e.response(Dialect::FunctionCall);
            assert_eq!(r.status().as_u16(), call, "{name}");
            let body = body_json(r);
            assert_eq!(body["kind"], name);
            assert_eq!(body["error"], "m");
            assert_eq!(body["details"]["x"], 1);
            assert_eq!(body["logs"], json!([]));

            let r = e.clone().timed(7).response(Dialect::Restexec);
            assert_eq!(r.status().as_u16(), rest, "{name}");
            let body = body_json(r);
            assert_eq!(body["success"], false);
            assert_eq!(body["error"]["type"], rest_type, "{name}");
            assert_eq!(body["error"]["details"]["kind"], name);
            assert_eq!(body["executionTime"], 7);

            let r = e.response(Dialect::Session);
            assert_eq!(r.status().as_u16(), call, "{name}");
            let body = body_json(r);
            assert_eq!(body["detail"], "m");
            assert_eq!(body["kind"], name);
        }
    }

    #[test]
    fn headers_and_overrides_are_written_in_both_dialects() {
        for dialect in [Dialect::FunctionCall, Dialect::Restexec, Dialect::Session] {
            let r = HttpError::overloaded(8).response(dialect);
            assert_eq!(r.headers()["retry-after"], "1");
            let r = HttpError::method_not_allowed("GET, DELETE").response(dialect);
            assert_eq!(r.headers()["allow"], "GET, DELETE");
        }
        let mut e = HttpError::new(ErrorKind::NotFound, "gone");
        e.restexec_type = Some("FileNotFoundError");
        assert_eq!(
            body_json(e.response(Dialect::Restexec))["error"]["type"],
            "FileNotFoundError"
        );
        let mut e = HttpError::new(ErrorKind::Exception, "x");
        e.logs = Some((r#"[{"ts":1,"level":"log","message":"hi"}]"#.into(), true));
        let body = body_json(e.response(Dialect::FunctionCall));
        assert_eq!(body["logs"][0]["message"], "hi");
        assert_eq!(body["logsTruncated"], true);
    }

    fn body_json(r: Response<Body>) -> Value {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(r.into_body().collect()).unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }
}
