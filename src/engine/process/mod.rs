//! `"isolation": "process"`: each execution runs in a separate OS process of
//! this binary (`isoexec worker`), with V8's own limits inside and OS limits
//! outside, and speaks the same contract as the in-process pool.
//!
//! A worker runs exactly one execution. Workers are started ahead of time
//! (`PROCESS_PRESTART` of them wait, V8 initialised and an isolate made,
//! for an execution on stdin) or, with `PROCESS_PRESTART=0`, spawned per call.
//!
//! Protocol: the server passes its [`Config`] as JSON in
//! `ISOEXEC_WORKER_CONFIG`; the worker prints `ready` on stdout, reads one
//! [`Execution`] as JSON from stdin (until EOF), runs it, and prints one
//! [`Report`] as JSON on one line of stdout, which the server takes without
//! waiting for the worker to exit.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub(super) mod worker;

use super::options::{EngineOptions, Limits};
use super::transpile_cache::TranspileCache;
use super::types::{ExecError, Execution, Overloaded, PROGRAM_STREAM_BYTES, Report, Task};
use super::watchdog::CancelFlag;

/// Environment variable carrying the worker's engine options.
pub(super) const OPTIONS_ENV: &str = "ISOEXEC_WORKER_OPTIONS";
/// Extra wall time a worker gets past the execution's deadline before it is
/// killed: its own watchdog normally reports the timeout first.
const KILL_GRACE: Duration = Duration::from_millis(500);
/// How long a worker may take to start before the call fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a worker's stderr kept to explain its death.
const STDERR_KEEP: usize = 16 * 1024;

/// A started worker waiting for its execution.
struct Idle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Forwards the worker's stderr to the log; ends with its last lines,
    /// which explain a death.
    stderr: Option<tokio::task::JoinHandle<String>>,
}

/// Runs executions in worker processes.
pub(super) struct ProcessPool {
    exe: PathBuf,
    options_json: String,
    /// Largest report read from a worker: what its caps allow, JSON-escaped.
    max_report_bytes: usize,
    prestart: usize,
    capacity: usize,
    in_flight: AtomicUsize,
    slots: tokio::sync::Semaphore,
    idle: Mutex<Vec<Idle>>,
    starting: AtomicUsize,
    /// The server's transpile cache: function-call scripts are compiled
    /// here, by the server's compile helpers, and sent to the worker as
    /// JavaScript.
    cache: Arc<TranspileCache>,
}

impl ProcessPool {
    pub(super) fn new(
        options: &EngineOptions,
        cache: Arc<TranspileCache>,
    ) -> std::io::Result<Arc<ProcessPool>> {
        let exe = std::env::current_exe()?;
        let options_json = serde_json::to_string(options).map_err(std::io::Error::other)?;
        let pool = Arc::new(ProcessPool {
            exe,
            options_json,
            max_report_bytes: max_report_bytes(&options.limits),
            prestart: options.process_prestart,
            capacity: options.pool_size + options.queue_size,
            in_flight: AtomicUsize::new(0),
            slots: tokio::sync::Semaphore::new(options.pool_size),
            idle: Mutex::new(Vec::new()),
            starting: AtomicUsize::new(0),
            cache,
        });
        Ok(pool)
    }

    /// Starts workers until `PROCESS_PRESTART` are waiting.
    pub(super) fn replenish(self: &Arc<Self>) {
        loop {
            let have = self.lock_idle().len() + self.starting.load(Ordering::Relaxed);
            if have >= self.prestart {
                return;
            }
            self.starting.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            crate::background::spawn(async move {
                match me.spawn().await {
                    Ok(worker) => me.lock_idle().push(worker),
                    Err(e) => tracing::warn!(error = %e, "could not pre-start a worker process"),
                }
                me.starting.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        crate::sync::lock(&self.idle)
    }

    /// Starts one worker and waits for its `ready` line.
    async fn spawn(&self) -> std::io::Result<Idle> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("worker")
            .env(OPTIONS_ENV, &self.options_json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The worker sets its own OS limits (`worker::limit_self`) before it
        // starts V8: with nothing to run between fork and exec, the child is
        // started with posix_spawn, which does not copy this process's page
        // tables as a fork does.
        let mut child = cmd.spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let stderr = child
            .stderr
            .take()
            .map(|e| crate::background::spawn(forward_stderr(e)));
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        match tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut line)).await {
            Ok(Ok(_)) if line.trim() == "ready" => Ok(Idle {
                child,
                stdin,
                stdout,
                stderr,
            }),
            Ok(Ok(_)) => Err(std::io::Error::other(format!(
                "worker said {line:?} instead of ready"
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("worker did not start in time")),
        }
    }

    /// A live waiting worker, or a new one.
    async fn take(self: &Arc<Self>) -> std::io::Result<Idle> {
        loop {
            let next = self.lock_idle().pop();
            match next {
                Some(mut w) => {
                    // Its replacement is started once this call has its
                    // report (see `run_in_worker`), not beside it.
                    if matches!(w.child.try_wait(), Ok(None)) {
                        return Ok(w);
                    }
                }
                None => {
                    self.replenish();
                    return self.spawn().await;
                }
            }
        }
    }

    /// Runs `execution` in a worker process. Fails at once when as many calls as
    /// `POOL_SIZE + QUEUE_SIZE` are already running or waiting.
    pub(super) async fn run(
        self: &Arc<Self>,
        execution: &Execution,
        cancel: Arc<CancelFlag>,
    ) -> Result<Report, Overloaded> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Overloaded);
        }
        let report = async {
            let Ok(_slot) = self.slots.acquire().await else {
                return Report::failed(ExecError::Internal {
                    message: "the process pool is closed".into(),
                });
            };
            if cancel.is_cancelled() {
                return Report::failed(ExecError::Cancelled);
            }
            match self.precompile(execution, &cancel).await {
                Ok(execution) => self.run_in_worker(&execution).await,
                Err(error) => Report::failed(error),
            }
        }
        .await;
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        Ok(report)
    }

    /// The execution with its function-call script compiled, under its deadline;
    /// the time that took is taken off the worker's.
    async fn precompile(
        &self,
        execution: &Execution,
        cancel: &Arc<CancelFlag>,
    ) -> Result<Execution, ExecError> {
        let Task::Call { script, .. } = &execution.task else {
            return Ok(execution.clone());
        };
        let started = std::time::Instant::now();
        let deadline = started + execution.timeout;
        let (cache, source, stop) = (self.cache.clone(), script.clone(), cancel.clone());
        let compiled = tokio::task::spawn_blocking(move || {
            cache.get(&source, deadline, &|| stop.is_cancelled())
        })
        .await
        .map_err(|e| ExecError::Internal {
            message: format!("compiling for a worker: {e}"),
        })?;
        match compiled {
            Ok(module) => {
                let mut execution = execution.clone();
                execution.precompiled = Some(module.code.clone());
                execution.timeout = execution
                    .timeout
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(1));
                Ok(execution)
            }
            Err(e) => Err(ExecError::from(e)),
        }
    }

    /// Runs `execution` in a waiting worker, then starts that worker's
    /// replacement: a worker's start (about 15 ms of CPU) does not compete
    /// with the call it was taken for.
    async fn run_in_worker(self: &Arc<Self>, execution: &Execution) -> Report {
        let report = self.run_in_worker_once(execution).await;
        self.replenish();
        report
    }

    async fn run_in_worker_once(self: &Arc<Self>, execution: &Execution) -> Report {
        let input = match serde_json::to_vec(execution) {
            Ok(v) => v,
            Err(e) => {
                return Report::failed(ExecError::Internal {
                    message: e.to_string(),
                });
            }
        };
        // A worker that died while waiting cannot take the execution: writing to
        // it fails, it has not run, and another worker is tried.
        let mut attempts = 0;
        let mut worker = loop {
            attempts += 1;
            let mut worker = match self.take().await {
                Ok(w) => w,
                Err(e) => {
                    return Report::failed(ExecError::Internal {
                        message: format!("could not start a worker process: {e}"),
                    });
                }
            };
            let written = async {
                worker.stdin.write_all(&input).await?;
                worker.stdin.shutdown().await
            }
            .await;
            match written {
                Ok(()) => break worker,
                Err(e) if attempts < 3 => {
                    tracing::debug!(error = %e, "a waiting worker was gone; trying another");
                    let _ = worker.child.start_kill();
                    let _ = worker.child.wait().await;
                }
                Err(e) => {
                    return Report::failed(ExecError::Internal {
                        message: format!("could not hand the execution to a worker process: {e}"),
                    });
                }
            }
        };
        drop(worker.stdin);

        let mut output = Vec::new();
        let read = tokio::time::timeout(
            execution.timeout + KILL_GRACE,
            (&mut worker.stdout)
                .take(self.max_report_bytes as u64 + 1)
                .read_until(b'\n', &mut output),
        )
        .await;
        let killed = read.is_err();
        // A whole report line: the answer is here, and the worker, which
        // only has to exit now, is reaped off the caller's path (tearing
        // down a process with V8's address space takes milliseconds).
        if !killed
            && output.last() == Some(&b'\n')
            && let Ok(report) = serde_json::from_slice::<Report>(&output)
        {
            let mut child = worker.child;
            let stderr = worker.stderr.take();
            crate::background::spawn(async move {
                let _ = child.wait().await;
                if let Some(task) = stderr {
                    let _ = task.await;
                }
            });
            return report;
        }
        if !killed && output.last() != Some(&b'\n') && output.len() <= self.max_report_bytes {
            // No newline: the worker ended (or wrote past its report); read
            // what is left before looking at how it ended.
            let _ = tokio::time::timeout(
                KILL_GRACE,
                (&mut worker.stdout)
                    .take((self.max_report_bytes + 1 - output.len()) as u64)
                    .read_to_end(&mut output),
            )
            .await;
        }
        if output.len() > self.max_report_bytes {
            // The worker's own caps bound its report; one past this bound
            // is not read further.
            let _ = worker.child.start_kill();
            let _ = worker.child.wait().await;
            return Report::failed(ExecError::OutputLimit {
                message: format!("the worker's report passed {} bytes", self.max_report_bytes),
            });
        }
        if killed {
            let _ = worker.child.start_kill();
        }
        let status = worker.child.wait().await;
        if !killed && let Ok(report) = serde_json::from_slice::<Report>(&output) {
            return report;
        }
        // The worker is gone, so its stderr ends soon.
        let said = match worker.stderr.take() {
            Some(task) => tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default(),
            None => String::new(),
        };
        Report::failed(match status {
            _ if killed => ExecError::Timeout,
            Ok(_) if said.contains("overflowed its stack") => {
                // Compiling (or converting) ran out of native stack.
                let (line, column) = match &execution.task {
                    Task::Call { script, .. } => crate::engine::compile::deepest_point(script),
                    Task::Program { .. } => (1, 1),
                };
                ExecError::Syntax {
                    message: format!(
                        "The code is nested too deeply to compile (deepest near line {line}, \
                         column {column}); reduce the nesting"
                    ),
                    line,
                    column,
                }
            }
            Ok(status) => died(status),
            Err(e) => ExecError::Internal {
                message: format!("waiting for the worker process: {e}"),
            },
        })
    }
}

/// The most a worker's report can hold: its result, logs or program
/// streams and error texts, each character escaped as JSON at worst (six
/// bytes), plus the structure around them.
fn max_report_bytes(limits: &Limits) -> usize {
    let payload = limits.max_result_bytes
        + limits.max_log_bytes
        + 2 * PROGRAM_STREAM_BYTES
        + 4 * super::types::MAX_ERROR_TEXT;
    payload.saturating_mul(6) + 16 * 1024 * 1024
}

/// The kind a worker's death without a report maps to.
fn died(status: ExitStatus) -> ExecError {
    match status.signal() {
        // The kernel's OOM killer, or RLIMIT_DATA making V8 give up.
        Some(libc::SIGKILL) => ExecError::MemoryLimit,
        Some(libc::SIGXCPU) => ExecError::CpuLimit,
        Some(sig) => ExecError::WorkerDied {
            signal: Some(signal_name(sig)),
            code: None,
        },
        None => ExecError::WorkerDied {
            signal: None,
            code: status.code(),
        },
    }
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// Logs a worker's stderr lines (up to `STDERR_KEEP` bytes) and returns
/// the last of them once it closes.
async fn forward_stderr(stderr: tokio::process::ChildStderr) -> String {
    let mut lines = BufReader::new(stderr).lines();
    let mut logged = 0;
    let mut tail = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if logged < STDERR_KEEP {
            logged += line.len();
            tracing::warn!(target: "isoexec::worker", "{line}");
        }
        if tail.len() + line.len() > STDERR_KEEP {
            tail.clear();
        }
        if line.len() <= STDERR_KEEP {
            tail.push_str(&line);
            tail.push('\n');
        }
    }
    tail
}
