//! `POST /` and `POST /run`: validates a function call, queues it on the
//! pool, and shapes the reply.

use std::sync::Arc;
use std::time::Duration;

use hyper::Response;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{ApiError, ErrorKind};
use crate::exec::{CallJob, ExecError, Isolation, Report, Task};
use crate::pool::CancelFlag;
use crate::server::{App, Body, error_response, json_response};

/// The request body, each field kept raw so it can be checked with a clear
/// message (and the payload passed to V8's own JSON parser untouched).
#[derive(Deserialize)]
struct RunBody<'a> {
    #[serde(borrow)]
    script: Option<&'a RawValue>,
    #[serde(borrow)]
    code: Option<&'a RawValue>,
    #[serde(borrow, rename = "fn")]
    fn_name: Option<&'a RawValue>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    timeout: Option<&'a RawValue>,
    #[serde(borrow, rename = "cpuTimeout")]
    cpu_timeout: Option<&'a RawValue>,
    #[serde(borrow)]
    isolation: Option<&'a RawValue>,
}

/// Seconds a client is asked to wait when the queue is full.
const RETRY_AFTER_SECS: u32 = 1;

pub async fn run(app: &App, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let job = parse_call(app, body)?;
    let report = execute_job(app, &job).await?;
    Ok(reply(&job, report))
}

/// Runs `job` where its isolation says and waits for its report. If this
/// future is dropped (the client went away), the execution is cancelled.
pub async fn execute_job(app: &App, job: &CallJob) -> Result<Report, ApiError> {
    let cancel = Arc::new(CancelFlag::default());
    let guard = CancelOnDrop::new(cancel.clone(), app);
    let overloaded = |_| {
        let mut e = ApiError::new(
            ErrorKind::Overloaded,
            "Server is overloaded: the execution queue is full",
        )
        .with("queueSize", app.config.queue_size);
        e.retry_after = Some(RETRY_AFTER_SECS);
        e
    };
    let report = if job.isolation == Isolation::Process {
        app.process.run(job, cancel).await.map_err(overloaded)?
    } else {
        let rx = app.pool.submit(job.clone(), cancel).map_err(overloaded)?;
        rx.await
            .map_err(|_| ApiError::internal("the isolate thread dropped a job without a report"))?
    };
    guard.disarm();
    Ok(report)
}

/// Cancels an execution if dropped while armed: the request future went
/// away (the client disconnected) before the execution ended.
struct CancelOnDrop<'a> {
    flag: Arc<CancelFlag>,
    app: &'a App,
    armed: bool,
}

impl<'a> CancelOnDrop<'a> {
    fn new(flag: Arc<CancelFlag>, app: &'a App) -> CancelOnDrop<'a> {
        CancelOnDrop {
            flag,
            app,
            armed: true,
        }
    }

    /// The execution ended: nothing to cancel any more.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.flag.cancel();
            self.app.pool.poke_watchdog();
        }
    }
}

/// Checks the body and builds the job.
fn parse_call(app: &App, body: &[u8]) -> Result<CallJob, ApiError> {
    let limits = &app.config.limits;
    if json_depth_exceeds(body, limits.max_json_depth + 1) {
        return Err(ApiError::bad_request(format!(
            "Request JSON is nested deeper than {} levels",
            limits.max_json_depth
        ))
        .with("maxDepth", limits.max_json_depth));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("Request body is not valid UTF-8: {e}")))?;
    let mut de = serde_json::Deserializer::from_str(text);
    // Depth was checked above against the configured limit.
    de.disable_recursion_limit();
    let parsed = RunBody::deserialize(&mut de)
        .and_then(|b| de.end().map(|()| b))
        .map_err(|e| ApiError::bad_request(format!("Malformed JSON body: {e}")))?;

    let script = string_field(parsed.script, "script")?;
    let code = string_field(parsed.code, "code")?;
    let script = match (script, code) {
        (Some(s), Some(c)) if s != c => {
            return Err(ApiError::bad_request(
                "Both 'script' and 'code' were sent with different values; send one",
            ));
        }
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) => {
            return Err(ApiError::bad_request(
                "Missing required field 'script' (or its alias 'code')",
            ));
        }
    };
    let fn_name = string_field(parsed.fn_name, "fn")?
        .ok_or_else(|| ApiError::bad_request("Missing required field 'fn'"))?;
    if fn_name.is_empty() {
        return Err(ApiError::bad_request("Field 'fn' must not be empty"));
    }
    let payload = parsed
        .payload
        .map_or_else(|| "null".to_string(), |p| p.get().to_string());

    let timeout = match duration_field(parsed.timeout, "timeout")? {
        None => limits.default_timeout,
        Some(t) => t.min(limits.max_timeout),
    };
    let cpu_limit = match duration_field(parsed.cpu_timeout, "cpuTimeout")? {
        None => limits.default_cpu_limit,
        Some(t) => Some(t.min(limits.max_timeout)),
    };
    let isolation = match string_field(parsed.isolation, "isolation")? {
        None => Isolation::Isolate,
        Some(s) => Isolation::parse(&s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Field 'isolation' must be \"isolate\", \"none\" or \"process\", not {s:?}"
            ))
        })?,
    };
    Ok(CallJob {
        task: Task::Call {
            script: script.into(),
            fn_name,
            payload,
        },
        timeout,
        cpu_limit,
        isolation,
        env: app.config.allow_env_values.clone(),
        precompiled: None,
    })
}

fn string_field(raw: Option<&RawValue>, name: &str) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.get() == "null" {
        return Ok(None);
    }
    serde_json::from_str::<String>(raw.get())
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("Field '{name}' must be a string")))
}

/// A positive number of milliseconds.
fn duration_field(raw: Option<&RawValue>, name: &str) -> Result<Option<Duration>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let ms = serde_json::from_str::<f64>(raw.get()).ok();
    match ms {
        Some(ms) if ms.is_finite() && ms > 0.0 => {
            Ok(Some(Duration::from_secs_f64((ms / 1000.0).min(1e9))))
        }
        _ => Err(ApiError::bad_request(format!(
            "Field '{name}' must be a positive number of milliseconds, not {}",
            raw.get()
        ))
        .with("field", name)),
    }
}

/// Whether `json` nests objects/arrays deeper than `max`, without parsing it
/// (and so without recursion).
pub fn json_depth_exceeds(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The HTTP reply for a finished call.
fn reply(job: &CallJob, report: Report) -> Response<Body> {
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
            json_response(200, body)
        }
        Err(e) => error_response(&api_error(job, e), Some((&logs, report.logs_truncated))),
    }
}

/// The caller's view of an execution failure.
pub fn api_error(job: &CallJob, e: ExecError) -> ApiError {
    match e {
        ExecError::Syntax {
            message,
            line,
            column,
        } => ApiError::new(ErrorKind::SyntaxError, format!("Syntax error: {message}"))
            .with("line", line)
            .with("column", column)
            .with("message", message),
        ExecError::FnNotFound { name } => ApiError::new(
            ErrorKind::FnNotFound,
            format!("The module has no exported function named '{name}'"),
        )
        .with("fn", name),
        ExecError::Exception {
            name,
            message,
            stack,
        } => {
            let text = if message.is_empty() {
                name.clone()
            } else {
                format!("{name}: {message}")
            };
            ApiError::new(ErrorKind::Exception, text)
                .with("name", name)
                .with("message", message)
                .with("stack", stack.map_or(serde_json::Value::Null, Into::into))
        }
        ExecError::Exit { code } => ApiError::new(
            ErrorKind::Exception,
            format!("Deno.exit({code}) ended the call before it returned"),
        )
        .with("name", "Exit")
        .with("exitCode", code),
        ExecError::Timeout => ApiError::new(ErrorKind::Timeout, "Execution timeout")
            .with("timeoutMs", job.timeout.as_millis() as u64),
        ExecError::CpuLimit => ApiError::new(ErrorKind::CpuLimit, "CPU time limit exceeded").with(
            "cpuTimeoutMs",
            job.cpu_limit.map_or(0, |d| d.as_millis() as u64),
        ),
        ExecError::MemoryLimit => ApiError::new(ErrorKind::MemoryLimit, "Memory limit exceeded"),
        ExecError::OutputLimit { message } => ApiError::new(
            ErrorKind::OutputLimit,
            format!("Output limit exceeded: {message}"),
        ),
        ExecError::PermissionDenied { message } => {
            ApiError::new(ErrorKind::PermissionDenied, message)
        }
        ExecError::Cancelled => ApiError::new(ErrorKind::Internal, "The call was cancelled"),
        ExecError::WorkerDied { signal, code } => {
            let how = match (&signal, code) {
                (Some(sig), _) => format!("was killed by {sig}"),
                (None, Some(c)) => format!("exited with code {c} without a report"),
                (None, None) => "ended without a report".to_string(),
            };
            ApiError::new(ErrorKind::Internal, format!("The worker process {how}"))
                .with("signal", signal.map_or(serde_json::Value::Null, Into::into))
                .with("exitCode", code.map_or(serde_json::Value::Null, Into::into))
        }
        ExecError::Internal { message } => ApiError::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_scan_counts_only_structure() {
        assert!(!json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 2));
        // Brackets inside strings do not count, escaped quotes do not end them.
        assert!(!json_depth_exceeds(br#"{"a":"[[[[\"[[[["}"#, 1));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(json_depth_exceeds(deep.as_bytes(), 128));
    }
}
