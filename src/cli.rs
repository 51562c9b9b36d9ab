//! `isoexec run` and `isoexec lint`: the engine from the command line, no
//! server started.
//!
//! `run FILE --fn NAME [--payload JSON]` prints the call's result JSON and
//! exits 0 (an error is printed on stderr as the API's error body, exit 1);
//! without `--fn` the file runs as a program, its stdout and stderr pass
//! through, and its exit code is the process's (1 for an uncaught error,
//! 124 for a timeout, 137 for a memory kill). `lint FILE…` prints
//! diagnostics (`--json`: the `deno lint --json` shape) and exits 1 when
//! there are any.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::code::MAX_CODE_BYTES;
use crate::config::Config;
use crate::engine::{Engine, ExecError, Execution, Isolation, ProgramEnd};
use crate::engine::{LintError, LintReport};

/// What `isoexec run` was asked.
pub struct RunArgs {
    pub file: PathBuf,
    pub fn_name: Option<String>,
    pub payload: Option<String>,
    /// `None`: the `DEFAULT_ISOLATION` setting.
    pub isolation: Option<Isolation>,
    pub timeout: Option<Duration>,
    /// Run the file as a Node program whatever its extension (a script
    /// without one, say): CommonJS unless it has `import`/`export`.
    pub node: bool,
}

/// Exit codes of a program that did not end by itself.
const EXIT_TIMEOUT: u8 = 124;
const EXIT_KILLED: u8 = 137;

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// The configuration with the file's directory as the workspace, so that
/// its relative imports resolve. As with `deno run`, the program reads no
/// file unless `--allow-read` (or `ALLOW_READ`) names it: the directory a
/// script was started from may be a home directory.
fn config_for(mut config: Config, file: &Path) -> Config {
    if let Some(dir) = file.parent() {
        config.workspace_dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        };
    }
    if config.allow_read.is_none() {
        config.allow_read = Some(Vec::new());
    }
    config.process_prestart = 0;
    config
}

/// Reads a source file named on the command line: a regular file of at
/// most `limit` bytes. A FIFO would block past any deadline and a device
/// such as `/dev/zero` would never end, so neither is opened for reading.
fn read_source(path: &Path, limit: usize) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(|e| e.to_string())?
        .take(limit as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(text)
}

/// `isoexec run`.
pub fn run(config: Config, args: RunArgs) -> ExitCode {
    let file = match std::fs::canonicalize(&args.file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("isoexec: {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    // Read once, here, before anything starts: the engine runs this text.
    let source = match read_source(&file, MAX_CODE_BYTES) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("isoexec: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let config = config_for(config, &file);
    // Kept for the hint a silent module gets.
    let source_text = source.clone();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isoexec: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let mut options = config.engine_options();
        // The Python snapshot is kept in the user's cache, not in DATA_DIR
        // (which defaults to the current directory).
        options.python_snapshot_dir = cache_dir();
        let engine = match Engine::start(&options) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("isoexec: {e}");
                return ExitCode::FAILURE;
            }
        };
        let timeout = args.timeout.unwrap_or(config.limits.default_timeout);
        let task = match &args.fn_name {
            Some(name) => {
                let payload = args.payload.clone().unwrap_or_else(|| "null".into());
                if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&payload) {
                    eprintln!("isoexec: --payload is not JSON: {e}");
                    return ExitCode::from(2);
                }
                Execution::call(source.into(), name.clone(), payload.into(), timeout)
            }
            None => Execution::program(file.clone(), Some(source.into()), timeout),
        };
        // A program reads this process's stdin when it is not a terminal
        // (a pipe or a file), as a program run by a shell would.
        let stdin = match &args.fn_name {
            None => match read_stdin() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("isoexec: stdin: {e}");
                    return ExitCode::from(2);
                }
            },
            Some(_) => None,
        };
        let language = if args.node {
            crate::engine::Language::JavaScript
        } else {
            task.language
        };
        let execution = std::sync::Arc::new(Execution {
            language,
            cpu_limit: config.limits.default_cpu_limit,
            isolation: args.isolation.unwrap_or(config.default_isolation),
            env: config.allow_env_values.clone(),
            stdin,
            ..task
        });
        let report = match engine.run(&execution).await {
            Ok(r) => r,
            Err(_) => {
                eprintln!("isoexec: the engine is overloaded");
                return ExitCode::FAILURE;
            }
        };
        let code = match args.fn_name {
            Some(_) => print_call(&execution, report, &args.file),
            None => print_program(report, &source_text, &args.file),
        };
        let _ = std::io::stdout().flush();
        code
    })
}

/// `$XDG_CACHE_HOME/isoexec`, else `~/.cache/isoexec`; `None` without either.
fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("isoexec"))
}

/// Largest stdin a program run from the command line is given.
const MAX_STDIN_BYTES: u64 = 16 * 1024 * 1024;

/// This process's stdin, read to its end, unless it is a terminal.
fn read_stdin() -> Result<Option<std::sync::Arc<str>>, String> {
    use std::io::{IsTerminal, Read};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    stdin
        .lock()
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_STDIN_BYTES {
        return Err(format!("larger than {MAX_STDIN_BYTES} bytes"));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into()))
}

/// `text` with the name the engine gives a function-call script
/// (`file:///isoexec/<hash>.ts`) replaced by the user's file.
fn name_the_file(text: &str, file: &Path) -> String {
    const PREFIX: &str = "file:///isoexec/";
    let shown = file.display().to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at]);
        let after = &rest[at + PREFIX.len()..];
        let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex > 0 && after[hex..].starts_with(".ts") {
            out.push_str(&shown);
            rest = &after[hex + 3..];
        } else {
            out.push_str(PREFIX);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The functions a module exports, by a plain look at its text (for a
/// hint, not for running anything).
fn exported_functions(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in source.lines() {
        let l = line.trim_start();
        let Some(rest) = l.strip_prefix("export ") else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = rest.strip_prefix("async ").unwrap_or(rest).trim_start();
        let name_after = |r: &str| {
            r.trim_start()
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .next()
                .filter(|n| !n.is_empty())
                .map(String::from)
        };
        let name = if let Some(r) = rest.strip_prefix("function") {
            name_after(r.trim_start_matches('*'))
        } else if let Some(r) = rest.strip_prefix("const ") {
            // `export const f = (…) => …` or `= function`.
            let value = r.split_once('=').map(|(_, v)| v.trim_start()).unwrap_or("");
            let callable = value.starts_with('(')
                || value.starts_with("async")
                || value.starts_with("function")
                || value
                    .split_once("=>")
                    .is_some_and(|(p, _)| !p.contains(['"', '\'']));
            if callable { name_after(r) } else { None }
        } else {
            None
        };
        if let Some(n) = name
            && !names.contains(&n)
        {
            names.push(n);
        }
    }
    names
}

fn print_call(execution: &Execution, report: crate::engine::Report, file: &Path) -> ExitCode {
    for entry in &report.logs {
        eprintln!(
            "[{}] {}",
            level(entry.level),
            name_the_file(&entry.message, file)
        );
    }
    match report.outcome {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The API's error body, from the engine's description.
            let described = e.describe(execution.timeout, execution.cpu_limit);
            let body = serde_json::json!({
                "error": described.message,
                "kind": e.kind(),
                "details": described.details,
            });
            eprintln!("{}", name_the_file(&body.to_string(), file));
            ExitCode::FAILURE
        }
    }
}

fn level(l: crate::engine::LogLevel) -> &'static str {
    use crate::engine::LogLevel::*;
    match l {
        Debug => "debug",
        Log => "log",
        Info => "info",
        Warn => "warn",
        Error => "error",
    }
}

fn print_program(report: crate::engine::Report, source: &str, file: &Path) -> ExitCode {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    // A module that only exports functions runs, prints nothing and exits
    // 0: it was most likely meant to be called.
    let silent = report.logs.is_empty() && report.outcome.is_ok();
    if silent {
        let exported = exported_functions(source);
        if let Some(first) = exported.first() {
            let _ = writeln!(
                err,
                "isoexec: {} ran and printed nothing; it exports {}. To call one: isoexec run {} --fn {first} --payload '<json>'",
                file.display(),
                exported.join(", "),
                file.display()
            );
        }
    }
    for entry in &report.logs {
        let _ = if entry.level.is_stderr() {
            let _ = out.flush();
            write!(err, "{}", entry.text())
        } else {
            write!(out, "{}", entry.text())
        };
    }
    let _ = out.flush();
    match ProgramEnd::of(report.outcome) {
        ProgramEnd::Exited(code) => ExitCode::from(code.clamp(0, 255) as u8),
        ProgramEnd::Failed { line, .. } => {
            let _ = write!(err, "{line}");
            ExitCode::FAILURE
        }
        ProgramEnd::Stopped(ExecError::Timeout) => {
            let _ = writeln!(err, "error: timed out");
            ExitCode::from(EXIT_TIMEOUT)
        }
        ProgramEnd::Stopped(ExecError::MemoryLimit | ExecError::CpuLimit) => {
            let _ = writeln!(err, "error: killed (memory or CPU limit)");
            ExitCode::from(EXIT_KILLED)
        }
        ProgramEnd::Stopped(ExecError::OutputLimit { message }) => {
            let _ = writeln!(err, "error: output limit: {message}");
            ExitCode::FAILURE
        }
        ProgramEnd::Stopped(other) => {
            let _ = writeln!(err, "error: {} ({other:?})", other.kind());
            ExitCode::FAILURE
        }
    }
}

/// `isoexec lint`.
pub fn lint(config: Config, files: Vec<PathBuf>, json: bool) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isoexec: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let mut merged: Option<LintReport> = None;
        let mut config = config;
        config.process_prestart = 0;
        config.pool_size = 1;
        config.script_threads = 1;
        config.compile_helpers = 1;
        let mut options = config.engine_options();
        // The Python snapshot is kept in the user's cache, not in DATA_DIR
        // (which defaults to the current directory).
        options.python_snapshot_dir = cache_dir();
        let engine = match Engine::start(&options) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("isoexec: {e}");
                return ExitCode::FAILURE;
            }
        };
        for file in files {
            let path = std::fs::canonicalize(&file).unwrap_or(file.clone());
            let source = match read_source(&path, MAX_CODE_BYTES) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("isoexec: {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let report = match engine
                .lint(path.clone(), source, config.limits.max_timeout)
                .await
            {
                Ok(r) => r,
                Err(crate::engine::CompileError::Syntax(e)) => LintReport {
                    version: 1,
                    diagnostics: Vec::new(),
                    errors: vec![LintError {
                        file_path: path.display().to_string(),
                        message: e.message,
                    }],
                    checked_files_camel: vec![path.display().to_string()],
                    checked_files: vec![path.display().to_string()],
                    diagnostics_omitted: None,
                },
                Err(e) => {
                    eprintln!("isoexec: linting {}: {e:?}", file.display());
                    return ExitCode::FAILURE;
                }
            };
            merged = Some(match merged {
                None => report,
                Some(mut all) => {
                    all.diagnostics.extend(report.diagnostics);
                    all.diagnostics_omitted =
                        match (all.diagnostics_omitted, report.diagnostics_omitted) {
                            (None, None) => None,
                            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                        };
                    all.errors.extend(report.errors);
                    all.checked_files.extend(report.checked_files);
                    all.checked_files_camel.extend(report.checked_files_camel);
                    all
                }
            });
        }
        let Some(report) = merged else {
            eprintln!("isoexec: no file to lint");
            return ExitCode::from(2);
        };
        let findings = report.diagnostics.len() + report.errors.len();
        if json {
            let mut v = serde_json::to_value(&report).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                // `deno lint --json` names it checked_files only.
                o.remove("checkedFiles");
            }
            println!("{v}");
        } else {
            for d in &report.diagnostics {
                let at = d
                    .range
                    .as_ref()
                    .map(|r| format!("{}:{}", r.start.line, r.start.col + 1))
                    .unwrap_or_default();
                let file = d.filename.strip_prefix("file://").unwrap_or(&d.filename);
                println!("{file}:{at}: {} ({})", d.message, d.code);
                if let Some(hint) = &d.hint {
                    println!("    hint: {hint}");
                }
            }
            for e in &report.errors {
                println!("{}: error: {}", e.file_path, e.message);
            }
            println!(
                "Checked {} file(s): {} problem(s)",
                report.checked_files.len(),
                findings
            );
        }
        if findings > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}
