//! What callers of the engine exchange with it: an [`Execution`] to run,
//! and a [`Report`] of how it ended. Plain Rust data; no V8 handle ever
//! crosses this boundary.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where an execution runs; spelled in requests as [`Isolation::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// `"isolate"`: a fresh isolate per call; nothing from earlier calls is
    /// visible.
    Isolate,
    /// `"none"`: a warm isolate that may keep module state between calls.
    None,
    /// `"frozen"`: a kept isolate whose built-ins are frozen; each call gets
    /// fresh module instances and a clean global object, so nothing from
    /// earlier calls is visible.
    Frozen,
    /// `"process"`: a separate OS process.
    Process,
}

impl Isolation {
    /// Every mode, as requests spell them.
    pub const ALL: [Isolation; 4] = [
        Isolation::Isolate,
        Isolation::None,
        Isolation::Frozen,
        Isolation::Process,
    ];

    pub fn parse(text: &str) -> Option<Isolation> {
        Isolation::ALL.into_iter().find(|i| i.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Isolate => "isolate",
            Isolation::None => "none",
            Isolation::Frozen => "frozen",
            Isolation::Process => "process",
        }
    }
}

/// What an execution runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Task {
    /// Calls `fn_name(payload)` exported by a function-call script.
    Call {
        script: Arc<str>,
        fn_name: String,
        /// The argument, as JSON text.
        payload: Arc<str>,
    },
    /// Runs a program as the main module, capturing stdout and stderr: the
    /// file at `path`, or `source` known by that path (a program that was
    /// never saved, such as a code job's; its relative imports resolve
    /// from `path`).
    Program {
        path: PathBuf,
        #[serde(default)]
        source: Option<Arc<str>>,
    },
}

impl Task {
    /// A Python program: a program whose file is a `.py`.
    pub(crate) fn is_python(&self) -> bool {
        match self {
            Task::Program { path, .. } => Language::of_path(path) == Some(Language::Python),
            Task::Call { .. } => false,
        }
    }
}

/// One execution to run: a function call or a program, with its limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    pub task: Task,
    /// Wall-clock budget, from the moment an isolate thread starts it
    /// (compiling included).
    pub timeout: Duration,
    /// CPU-time budget of the isolate thread, if any.
    pub cpu_limit: Option<Duration>,
    pub isolation: Isolation,
    /// What the code is written in.
    #[serde(default = "Language::default_for_calls")]
    pub language: Language,
    /// What `Deno.env.get` sees.
    pub env: HashMap<String, String>,
    /// What the program reads from `Deno.stdin` and `prompt()` (nothing:
    /// end of input at once).
    #[serde(default)]
    pub stdin: Option<Arc<str>>,
    /// A directory the code is confined to: relative imports resolve
    /// there, and files may be read and written only inside it.
    #[serde(default)]
    pub scope: Option<PathBuf>,
    /// A function-call script already compiled by the server, sent with
    /// an execution to a worker process so that it need not compile it again.
    #[serde(default)]
    pub precompiled: Option<Arc<str>>,
    /// Who asked (a bearer key's hash or an address): the pool's share
    /// (`SCRIPT_THREADS`) is counted per client; per script without one.
    #[serde(default)]
    pub client: Option<Arc<str>>,
    /// Bytes the code may write to files, when less than
    /// `MAX_WRITE_BYTES` (a session's files have a quota of their own).
    #[serde(default)]
    pub write_budget: Option<u64>,
    /// What a call's script is entered by: the export `fn` names (the
    /// default), its fetch handler, or nothing (its exports are listed).
    #[serde(default)]
    pub entry: Entry,
    /// Whose code this is, when isolates kept between calls must not be
    /// shared (a tenant's): a kept (`"none"`, `"frozen"`) isolate only ever
    /// runs the code of one owner. `None` shares them among all callers
    /// without an owner.
    #[serde(default)]
    pub owner: Option<Arc<str>>,
    /// Hosts `fetch` may reach, when narrower than the server's `ALLOW_NET`
    /// (a tenant's own list).
    #[serde(default)]
    pub net: Option<Arc<Vec<String>>>,
    /// Memory the call may hold (heap and buffers), when less than
    /// `MEMORY_LIMIT_MB`: buffers past it are refused as they are
    /// allocated, and a heap over it when the call ends fails the call
    /// with `memory_limit` (the isolate is retired).
    #[serde(default)]
    pub memory_limit: Option<usize>,
    /// Most isolate threads the client may hold at once, when fewer than
    /// `SCRIPT_THREADS` (a tenant's share of the pool).
    #[serde(default)]
    pub max_threads: Option<usize>,
}

/// How a function call's script is entered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entry {
    /// `fn_name(payload)`.
    #[default]
    Function,
    /// The module's fetch handler (`export default { fetch }`, or the
    /// handler it gave `Deno.serve`), called with a `Request` built from the
    /// payload (`{method, url, headers, body}`, the body in base64) and
    /// `env`; the result is `{status, statusText, headers, body}`.
    Fetch,
    /// Nothing is called: the module is evaluated and the result lists its
    /// exported functions and whether it has a fetch handler
    /// (`{"functions": [..], "fetch": bool}`).
    Exports,
}

impl Execution {
    /// A call of `fn_name(payload)` in `script`, in a fresh isolate, with
    /// nothing else set: callers fill in the rest with `..`.
    pub fn call(
        script: Arc<str>,
        fn_name: String,
        payload: Arc<str>,
        timeout: Duration,
    ) -> Execution {
        Execution::of(
            Task::Call {
                script,
                fn_name,
                payload,
            },
            Language::TypeScript,
            timeout,
        )
    }

    /// The program at `path` (or `source`, known by that path), its
    /// language by the path's extension, in a fresh isolate.
    pub fn program(path: PathBuf, source: Option<Arc<str>>, timeout: Duration) -> Execution {
        let language = Language::of_path(&path).unwrap_or(Language::TypeScript);
        Execution::of(Task::Program { path, source }, language, timeout)
    }

    fn of(task: Task, language: Language, timeout: Duration) -> Execution {
        Execution {
            task,
            timeout,
            cpu_limit: None,
            isolation: Isolation::Isolate,
            language,
            env: HashMap::new(),
            stdin: None,
            scope: None,
            precompiled: None,
            client: None,
            write_budget: None,
            entry: Entry::Function,
            owner: None,
            net: None,
            memory_limit: None,
            max_threads: None,
        }
    }
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
    /// A program's output only: the message's last line was written
    /// without its newline (`process.stdout.write("x")`, Python's
    /// `print(x, end="")`), so none follows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl LogEntry {
    /// The entry as its stream shows it: its lines, each with its newline
    /// (the last one too, unless it was written without one).
    pub fn text(&self) -> impl std::fmt::Display + '_ {
        struct Text<'a>(&'a LogEntry);
        impl std::fmt::Display for Text<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0.message)?;
                if self.0.partial {
                    Ok(())
                } else {
                    f.write_str("\n")
                }
            }
        }
        Text(self)
    }
}

/// A program's captured console lines joined into its stdout and stderr.
pub fn split_streams(logs: &[LogEntry]) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    for entry in logs {
        let s = if entry.level.is_stderr() {
            &mut err
        } else {
            &mut out
        };
        s.push_str(&entry.message);
        if !entry.partial {
            s.push('\n');
        }
    }
    (out, err)
}

/// A language the engine runs: the one home of its names, the aliases
/// callers use for it and its file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Language {
    JavaScript,
    TypeScript,
    /// CPython (Pyodide, compiled to WebAssembly): programs and notebook
    /// cells, not function calls.
    Python,
}

impl Language {
    /// Every language, the default (TypeScript) first: lists of names
    /// (environments, aliases) follow this order.
    pub const ALL: [Language; 3] = [Language::TypeScript, Language::JavaScript, Language::Python];

    /// The names callers may use for it (any case).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Language::JavaScript => &["js", "javascript", "node"],
            Language::TypeScript => &["ts", "typescript"],
            Language::Python => &["python", "py", "python3"],
        }
    }

    /// Every alias of every language, in order.
    pub fn all_aliases() -> Vec<&'static str> {
        Language::ALL
            .iter()
            .flat_map(|l| l.aliases().iter().copied())
            .collect()
    }

    /// Why a language name this server does not run is not offered, for
    /// the error that refuses it.
    pub fn why_not(name: &str) -> &'static str {
        let name = name.to_ascii_lowercase();
        if name.starts_with("python") || name.starts_with("py") {
            "Python here is CPython 3.14 compiled to WebAssembly with its standard library and \
             pure-Python packages; packages with native code (numpy, pandas: 'python-ml') \
             are not available"
        } else {
            "code runs inside the server's own V8 isolates: JavaScript, TypeScript, and Python \
             compiled to WebAssembly; languages that need a native compiler or toolchain \
             (go, rust, c, java, ...) are not offered"
        }
    }

    /// The language an alias names, in any case.
    pub fn from_alias(name: &str) -> Option<Language> {
        Language::ALL
            .into_iter()
            .find(|l| l.aliases().iter().any(|a| a.eq_ignore_ascii_case(name)))
    }

    /// The session environments that run it, as the sessions API names
    /// them (any case); the first is its own name.
    pub fn environments(self) -> &'static [&'static str] {
        match self {
            Language::JavaScript => &["javascript", "node"],
            Language::TypeScript => &["typescript"],
            Language::Python => &["python"],
        }
    }

    /// The language of a file, by its extension; `None` for one the engine
    /// does not run.
    pub fn of_path(path: &std::path::Path) -> Option<Language> {
        let ext = path.extension()?.to_str()?;
        Language::ALL
            .into_iter()
            .find(|l| l.extensions().iter().any(|e| e.eq_ignore_ascii_case(ext)))
    }

    /// Every extension its files may have, without the dot; the first is
    /// the one the engine gives files it names itself.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Language::JavaScript => &["js", "mjs", "cjs", "jsx"],
            Language::TypeScript => &["ts", "mts", "cts", "tsx"],
            Language::Python => &["py"],
        }
    }

    /// Function-call scripts are TypeScript (JavaScript is a subset).
    fn default_for_calls() -> Language {
        Language::TypeScript
    }

    /// The extension of its source files, without the dot.
    pub fn extension(self) -> &'static str {
        self.extensions()[0]
    }

    pub fn is_typescript(self) -> bool {
        self == Language::TypeScript
    }

    /// Whether it runs in V8 as JavaScript (transpiled or not), rather than
    /// in an interpreter of its own.
    pub fn is_js(self) -> bool {
        self != Language::Python
    }
}

/// How a program ended, as a terminal shows it. One mapping for every
/// front end that runs programs (restexec's `/execute`, code jobs, script
/// sessions, `isoexec run`), so they read alike.
#[derive(Debug)]
pub enum ProgramEnd {
    /// It ran to its end: exit code 0, or the `n` of `Deno.exit(n)`.
    Exited(i32),
    /// An error of the program's own (an uncaught exception, a syntax
    /// error, a refused capability, a missing export): exit code 1, and
    /// `line` (with its newline) ends stderr.
    Failed { error: ExecError, line: String },
    /// Stopped from outside: a limit, a cancel, or a failure on our side.
    /// No exit code.
    Stopped(ExecError),
}

/// What to do about a Node-only name an ES module (TypeScript, or a
/// JavaScript file with `import`/`export`) used, where the user reads it.
fn node_hint(error: &ExecError) -> Option<&'static str> {
    let ExecError::Exception { name, message, .. } = error else {
        return None;
    };
    if name != "ReferenceError" {
        return None;
    }
    Some(match message.split(' ').next()? {
        "require" | "module" | "exports" => {
            "this program is an ES module (TypeScript, or JavaScript with import/export), where \
             require, module and exports do not exist: write `import fs from \"node:fs\"` \
             (every Node built-in this server offers imports that way), or send plain \
             JavaScript without import/export as `node` or `js` to run it as CommonJS"
        }
        "__dirname" | "__filename" => {
            "__dirname and __filename exist in CommonJS programs only: in an ES module use \
             `import.meta.url`"
        }
        _ => return None,
    })
}

impl ProgramEnd {
    pub fn of(outcome: Result<String, ExecError>) -> ProgramEnd {
        let error = match outcome {
            Ok(_) => return ProgramEnd::Exited(0),
            Err(ExecError::Exit { code }) => return ProgramEnd::Exited(code),
            Err(e) => e,
        };
        let line = match &error {
            ExecError::Exception { .. } => {
                format!("Uncaught {}", error.uncaught().unwrap_or_default())
            }
            ExecError::Syntax {
                message,
                line,
                column,
            } => format!("SyntaxError: {message} at {line}:{column}"),
            ExecError::PermissionDenied { message } => {
                format!("Uncaught PermissionDenied: {message}")
            }
            ExecError::FnNotFound { name, .. } => format!("no function {name}"),
            _ => return ProgramEnd::Stopped(error),
        };
        let hint = node_hint(&error).map_or(String::new(), |h| format!("hint: {h}\n"));
        ProgramEnd::Failed {
            error,
            line: format!("error: {line}\n{hint}"),
        }
    }

    /// The process's exit code: `None` when it did not end by itself.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ProgramEnd::Exited(code) => Some(*code),
            ProgramEnd::Failed { .. } => Some(1),
            ProgramEnd::Stopped(_) => None,
        }
    }
}

/// An [`ExecError`] as a caller is told it.
#[derive(Debug, Clone)]
pub struct Described {
    pub message: String,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// How an execution ended, with what it logged.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// The result as JSON text (empty for a program), or why there is none.
    pub outcome: Result<String, ExecError>,
    /// Console output: a call's log entries, or a program's stdout and
    /// stderr lines (consecutive lines of one stream share an entry).
    pub logs: Vec<LogEntry>,
    /// Whether output was cut at its cap.
    pub logs_truncated: bool,
    /// How long the execution waited for an isolate thread (or a worker
    /// process slot).
    #[serde(default)]
    pub queue_wait: Duration,
    /// CPU time the isolate thread spent on the call, for calls with an
    /// owner (zero where it is not measured: calls without one, worker
    /// processes, systems without a thread CPU clock).
    #[serde(default)]
    pub cpu: Duration,
    /// Memory the isolate held when the call ended (heap and buffers), for
    /// calls with an owner and in kept isolates (zero otherwise).
    #[serde(default)]
    pub memory: u64,
}

impl Report {
    /// How it ended, as metrics and usage count it: `ok` (a result, or a
    /// program's exit 0) or the error's kind.
    pub fn outcome_kind(&self) -> &'static str {
        match &self.outcome {
            Ok(_) | Err(ExecError::Exit { code: 0 }) => "ok",
            Err(e) => e.kind(),
        }
    }

    /// A report of an execution that failed before it logged anything.
    pub fn failed(error: ExecError) -> Report {
        Report {
            outcome: Err(error),
            logs: Vec::new(),
            logs_truncated: false,
            queue_wait: Duration::ZERO,
            cpu: Duration::ZERO,
            memory: 0,
        }
    }
}

impl ExecError {
    /// For an uncaught exception, what a program prints after
    /// `error: Uncaught `: the stack, or `name: message` without one.
    pub fn uncaught(&self) -> Option<String> {
        match self {
            ExecError::Exception {
                name,
                message,
                stack,
            } => Some(
                stack
                    .clone()
                    .unwrap_or_else(|| format!("{name}: {message}")),
            ),
            _ => None,
        }
    }

    /// What a caller is told: a message, and the facts that go with it
    /// (`line`/`column` of a syntax error, the exports of a module without
    /// the function, an exception's name and stack, the limit passed). The
    /// HTTP APIs and the command line both show this.
    pub fn describe(&self, timeout: Duration, cpu_limit: Option<Duration>) -> Described {
        use serde_json::Value;
        let mut details = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            details.insert(k.to_string(), v);
        };
        let message = match self {
            ExecError::Syntax {
                message,
                line,
                column,
            } => {
                put("line", (*line).into());
                put("column", (*column).into());
                put("message", message.clone().into());
                format!("Syntax error: {message}")
            }
            ExecError::FnNotFound {
                name,
                exports,
                declared,
            } => {
                let mut text = if *declared {
                    format!(
                        "The module declares '{name}' but does not export it: write `export function {name}` (or add it to an export list)"
                    )
                } else {
                    format!("The module has no exported function named '{name}'")
                };
                if exports.is_empty() {
                    text.push_str("; it exports no functions");
                } else if !declared {
                    text.push_str(&format!("; it exports: {}", exports.join(", ")));
                }
                put("fn", name.clone().into());
                put("exports", exports.clone().into());
                put("declared", (*declared).into());
                text
            }
            ExecError::Exception {
                name,
                message,
                stack,
            } => {
                put("name", name.clone().into());
                put("message", message.clone().into());
                put("stack", stack.clone().map_or(Value::Null, Into::into));
                if message.is_empty() {
                    name.clone()
                } else {
                    format!("{name}: {message}")
                }
            }
            ExecError::Exit { code } => {
                put("name", "Exit".into());
                put("exitCode", (*code).into());
                format!("Deno.exit({code}) ended the call before it returned")
            }
            ExecError::Timeout => {
                put("timeoutMs", (timeout.as_millis() as u64).into());
                "Execution timeout".into()
            }
            ExecError::CpuLimit => {
                put(
                    "cpuTimeoutMs",
                    cpu_limit.map_or(0, |d| d.as_millis() as u64).into(),
                );
                "CPU time limit exceeded".into()
            }
            ExecError::MemoryLimit => "Memory limit exceeded".into(),
            ExecError::OutputLimit { message } => format!("Output limit exceeded: {message}"),
            ExecError::PermissionDenied { message } => message.clone(),
            ExecError::Cancelled => "The call was cancelled: its client went away".into(),
            ExecError::WorkerDied { signal, code } => {
                put("signal", signal.clone().map_or(Value::Null, Into::into));
                put("exitCode", code.map_or(Value::Null, Into::into));
                let how = match (signal, code) {
                    (Some(sig), _) => format!("was killed by {sig}"),
                    (None, Some(c)) => format!("exited with code {c} without a report"),
                    (None, None) => "ended without a report".to_string(),
                };
                format!("The worker process {how}")
            }
            ExecError::Internal { message } => message.clone(),
        };
        Described { message, details }
    }

    /// The stable kind of this error, as the APIs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecError::Syntax { .. } => "syntax_error",
            ExecError::FnNotFound { .. } => "fn_not_found",
            ExecError::Exception { .. } | ExecError::Exit { .. } => "exception",
            ExecError::Timeout => "timeout",
            ExecError::CpuLimit => "cpu_limit",
            ExecError::MemoryLimit => "memory_limit",
            ExecError::OutputLimit { .. } => "output_limit",
            ExecError::PermissionDenied { .. } => "permission_denied",
            ExecError::Cancelled => "cancelled",
            ExecError::WorkerDied { .. } | ExecError::Internal { .. } => "internal",
        }
    }
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
        /// The module's exported functions.
        #[serde(default)]
        exports: Vec<String>,
        /// Whether the module declares `name` without exporting it.
        #[serde(default)]
        declared: bool,
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
pub(super) const MAX_ERROR_TEXT: usize = 64 * 1024;

/// Cap on a program's stdout, and separately its stderr.
pub(super) const PROGRAM_STREAM_BYTES: usize = 10 * 1024 * 1024;

/// Occupancy of the isolate threads, as `/health` reports it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PoolStats {
    pub size: usize,
    pub busy: usize,
    pub idle: usize,
    pub queued: usize,
}

/// The queue is full: the caller should retry later.
#[derive(Debug)]
pub struct Overloaded;

/// `text` cut to `MAX_ERROR_TEXT` bytes on a character boundary, saying so.
pub(super) fn cap_error_text(mut text: String) -> String {
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
        self.map_text(cap_error_text)
    }

    /// The same error with `f` applied to every user-controlled text.
    pub fn map_text(self, f: impl Fn(String) -> String) -> ExecError {
        match self {
            ExecError::Syntax {
                message,
                line,
                column,
            } => ExecError::Syntax {
                message: f(message),
                line,
                column,
            },
            ExecError::FnNotFound {
                name,
                exports,
                declared,
            } => ExecError::FnNotFound {
                name: f(name),
                exports,
                declared,
            },
            ExecError::Exception {
                name,
                message,
                stack,
            } => ExecError::Exception {
                name: f(name),
                message: f(message),
                stack: stack.map(&f),
            },
            ExecError::OutputLimit { message } => ExecError::OutputLimit {
                message: f(message),
            },
            ExecError::PermissionDenied { message } => ExecError::PermissionDenied {
                message: f(message),
            },
            ExecError::Internal { message } => ExecError::Internal {
                message: f(message),
            },
            other => other,
        }
    }
}

/// Whether `source` declares `name` at some level (`function name`,
/// `const name`, `let name`, `var name`, `class name`): enough to tell a
/// caller the function exists but is not exported.
pub(super) fn declares(source: &str, name: &str) -> bool {
    ["function", "function*", "const", "let", "var", "class"]
        .iter()
        .any(|kw| {
            source.match_indices(kw).any(|(i, _)| {
                let before_ok = i == 0 || !is_ident(source[..i].chars().next_back());
                let rest = &source[i + kw.len()..];
                let trimmed = rest.trim_start();
                before_ok
                    && trimmed.len() < rest.len()
                    && trimmed.starts_with(name)
                    && !is_ident(trimmed[name.len()..].chars().next())
            })
        })
}

fn is_ident(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_own_their_aliases_and_extensions() {
        assert_eq!(Language::from_alias("Node"), Some(Language::JavaScript));
        assert_eq!(Language::from_alias("TS"), Some(Language::TypeScript));
        assert_eq!(Language::from_alias("Python3"), Some(Language::Python));
        assert_eq!(Language::from_alias("go"), None);
        assert_eq!(
            Language::all_aliases(),
            [
                "ts",
                "typescript",
                "js",
                "javascript",
                "node",
                "python",
                "py",
                "python3"
            ]
        );
        assert_eq!(Language::TypeScript.extension(), "ts");
        assert_eq!(
            Language::of_path(std::path::Path::new("/w/a.MJS")),
            Some(Language::JavaScript)
        );
        assert_eq!(
            Language::of_path(std::path::Path::new("/w/a.py")),
            Some(Language::Python)
        );
        assert_eq!(Language::of_path(std::path::Path::new("/w/a.rb")), None);
        assert!(Language::why_not("python-ml").contains("numpy"));
        assert!(Language::why_not("go").contains("native compiler"));
    }

    #[test]
    fn every_program_ending_reads_alike() {
        let failed = |e: ExecError| match ProgramEnd::of(Err(e)) {
            ProgramEnd::Failed { line, .. } => line,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            ProgramEnd::of(Ok(String::new())),
            ProgramEnd::Exited(0)
        ));
        assert!(matches!(
            ProgramEnd::of(Err(ExecError::Exit { code: 3 })),
            ProgramEnd::Exited(3)
        ));
        assert_eq!(
            failed(ExecError::Exception {
                name: "TypeError".into(),
                message: "bad".into(),
                stack: Some("TypeError: bad\n    at main.ts:1:7".into()),
            }),
            "error: Uncaught TypeError: bad\n    at main.ts:1:7\n"
        );
        assert_eq!(
            failed(ExecError::Exception {
                name: "Error".into(),
                message: "x".into(),
                stack: None,
            }),
            "error: Uncaught Error: x\n"
        );
        assert_eq!(
            failed(ExecError::Syntax {
                message: "Unexpected token".into(),
                line: 2,
                column: 5,
            }),
            "error: SyntaxError: Unexpected token at 2:5\n"
        );
        assert_eq!(
            failed(ExecError::PermissionDenied {
                message: "read access to /etc".into()
            }),
            "error: Uncaught PermissionDenied: read access to /etc\n"
        );
        for stopped in [
            ExecError::Timeout,
            ExecError::MemoryLimit,
            ExecError::CpuLimit,
            ExecError::Cancelled,
        ] {
            let end = ProgramEnd::of(Err(stopped));
            assert!(matches!(end, ProgramEnd::Stopped(_)), "{end:?}");
            assert_eq!(end.exit_code(), None);
        }
    }

    #[test]
    fn declarations_are_found_by_name() {
        let src = "function helper() {}\nconst other = 1;\nexport class K {}\nlet helper2;";
        assert!(declares(src, "helper"));
        assert!(declares(src, "other"));
        assert!(declares(src, "K"));
        assert!(!declares(src, "help"));
        assert!(!declares(src, "missing"));
    }

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
