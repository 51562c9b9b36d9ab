//! What the HTTP layer and the isolate pool exchange: a job, and a report of
//! how it ended. Plain Rust data; no V8 handle ever crosses this boundary.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Isolation {
    /// A fresh isolate per call: nothing from earlier calls is visible.
    Isolate,
    /// A warm isolate that may keep module state between calls ("none").
    Warm,
    /// A separate OS process.
    Process,
}

impl Isolation {
    pub fn parse(text: &str) -> Option<Isolation> {
        match text {
            "isolate" => Some(Isolation::Isolate),
            "none" => Some(Isolation::Warm),
            "process" => Some(Isolation::Process),
            _ => None,
        }
    }
}

/// What a job runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Task {
    /// Calls `fn_name(payload)` exported by a function-call script.
    Call {
        script: Arc<str>,
        fn_name: String,
        /// The argument, as JSON text.
        payload: String,
    },
    /// Runs a saved file as the main module, capturing stdout and stderr.
    Program { path: PathBuf },
}

/// One execution to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallJob {
    pub task: Task,
    pub timeout: Duration,
    pub cpu_limit: Option<Duration>,
    pub isolation: Isolation,
    pub env: HashMap<String, String>,
    /// A function-call script already compiled by the server, sent with a
    /// job for a worker process so that it need not compile it again.
    #[serde(default)]
    pub precompiled: Option<Arc<str>>,
}

/// Console level of a captured log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Log,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// Whether a program's output at this level goes to stderr.
    pub fn is_stderr(self) -> bool {
        matches!(self, LogLevel::Warn | LogLevel::Error)
    }
}

/// One captured console call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    /// Milliseconds since the Unix epoch, taken on the host.
    pub ts: u64,
    pub level: LogLevel,
    pub message: String,
}

/// How a call ended, with what it logged.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// The result as JSON text, or why there is none.
    pub outcome: Result<String, ExecError>,
    pub logs: Vec<LogEntry>,
    pub logs_truncated: bool,
}

/// Why a call produced no result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExecError {
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    FnNotFound {
        name: String,
    },
    /// User code threw (or a promise could never settle: `PendingPromise`).
    Exception {
        name: String,
        message: String,
        stack: Option<String>,
    },
    /// `Deno.exit(code)` ended the call.
    Exit {
        code: i32,
    },
    Timeout,
    CpuLimit,
    MemoryLimit,
    OutputLimit {
        message: String,
    },
    PermissionDenied {
        message: String,
    },
    /// The caller went away before the call ended.
    Cancelled,
    /// A worker process ended without a report: killed by `signal`, or
    /// exited with `code`.
    WorkerDied {
        signal: Option<String>,
        code: Option<i32>,
    },
    Internal {
        message: String,
    },
}

/// Longest error text (a message, a stack, a name) a report carries; user
/// code decides these strings, so they are cut like any other output.
pub const MAX_ERROR_TEXT: usize = 64 * 1024;

/// `text` cut to `MAX_ERROR_TEXT` bytes on a character boundary, saying so.
fn capped(mut text: String) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text;
    }
    let total = text.len();
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("... [cut: {total} bytes in all]"));
    text
}

impl ExecError {
    /// The same error with every user-controlled text capped.
    pub fn capped(self) -> ExecError {
        match self {
            ExecError::Syntax {
                message,
                line,
                column,
            } => ExecError::Syntax {
                message: capped(message),
                line,
                column,
            },
            ExecError::FnNotFound { name } => ExecError::FnNotFound { name: capped(name) },
            ExecError::Exception {
                name,
                message,
                stack,
            } => ExecError::Exception {
                name: capped(name),
                message: capped(message),
                stack: stack.map(capped),
            },
            ExecError::OutputLimit { message } => ExecError::OutputLimit {
                message: capped(message),
            },
            ExecError::PermissionDenied { message } => ExecError::PermissionDenied {
                message: capped(message),
            },
            ExecError::Internal { message } => ExecError::Internal {
                message: capped(message),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_texts_are_cut_and_say_so() {
        let e = ExecError::Exception {
            name: "Error".into(),
            message: "é".repeat(MAX_ERROR_TEXT),
            stack: Some("x".repeat(10)),
        }
        .capped();
        let ExecError::Exception { message, stack, .. } = e else {
            panic!()
        };
        assert!(message.len() < MAX_ERROR_TEXT + 64, "{}", message.len());
        assert!(message.ends_with(&format!("[cut: {} bytes in all]", 2 * MAX_ERROR_TEXT)));
        assert_eq!(stack.as_deref(), Some("xxxxxxxxxx"));
    }
}
