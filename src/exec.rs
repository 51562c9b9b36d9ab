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
