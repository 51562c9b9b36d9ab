//! One execute in a session: in script mode the code is written to a file
//! of the session's directory and run as a fresh program confined there;
//! in notebook mode it is the next cell of the session's isolate. Runs in
//! one session go one at a time, in arrival order, and a run whose caller
//! goes away ends with it (the session does not stay `executing`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Mode, Session, Sessions};
use crate::code::with_virtual_paths;
use crate::engine::{CellRequest, CellStatus};
use crate::engine::{ExecError, Execution, ProgramEnd, split_streams};
use crate::runner::Runner;

/// What one execute asks.
#[derive(Debug)]
pub(crate) struct RunInput {
    pub code: String,
    /// The file a script-mode run writes (the environment's `main.*` when
    /// absent).
    pub filename: Option<String>,
    pub timeout: Duration,
}

/// How a run ended, as the session API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunStatus {
    Completed,
    Error,
    Timeout,
}

impl RunStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Error => "error",
            RunStatus::Timeout => "timeout",
        }
    }
}

/// What one run produced.
#[derive(Debug)]
pub(crate) struct RunOutput {
    pub stdout: String,
    pub stderr: String,
    /// `None` when the run was stopped before an exit (a timeout, an
    /// interrupt of a script, the session's end).
    pub exit_code: Option<i32>,
    pub status: RunStatus,
    pub output_truncated: bool,
    /// What a notebook cell adds.
    pub cell: Option<CellOutput>,
    pub took: Duration,
}

/// A notebook cell's extras.
#[derive(Debug)]
pub(crate) struct CellOutput {
    /// The cell's value as JSON text, when it had one.
    pub result: Option<String>,
    /// Whether the notebook's state was lost (its isolate was replaced).
    pub state_reset: bool,
    pub interrupted: bool,
}

/// Why a run did not happen.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The session ended (or was never there).
    Gone,
    /// The execution queue is full.
    Overloaded,
    /// The session's files would pass `SESSION_DISK_BYTES`.
    QuotaFull {
        wanted: u64,
        room: u64,
        limit: u64,
    },
    /// A file of the session could not be written.
    Storage {
        what: String,
        error: std::io::Error,
    },
    Internal(String),
}

impl Sessions {
    /// Runs `request` in `session`, after the runs queued before it.
    pub(crate) async fn execute(
        &self,
        session: &Arc<Session>,
        runner: &Runner,
        request: RunInput,
    ) -> Result<RunOutput, RunError> {
        let _turn = session.run_lock.lock().await;
        if !session.begin_execution(self.ttl) {
            return Err(RunError::Gone);
        }
        // Ends the execution however this future ends: a caller that goes
        // away drops it mid-run, and the session must not stay `executing`
        // (nor a notebook cell run on for nobody).
        let mut executing = Executing {
            session,
            ttl: self.ttl,
            finished: false,
        };
        let started = Instant::now();
        let output = match session.mode {
            Mode::Script => self.run_script(session, runner, request).await,
            Mode::Notebook => self.run_cell(session, runner, request).await,
        };
        executing.finished = true;
        drop(executing);
        output.map(|mut o| {
            o.took = started.elapsed();
            o
        })
    }

    /// Writes the file and runs it as a fresh program confined to the
    /// session.
    async fn run_script(
        &self,
        s: &Arc<Session>,
        runner: &Runner,
        request: RunInput,
    ) -> Result<RunOutput, RunError> {
        let name = request
            .filename
            .unwrap_or_else(|| s.environment.default_file());
        let path = s.dir.join(&name);
        let code = request.code;
        // The session's files stay within SESSION_DISK_BYTES across runs:
        // the new file counts, and the program may write what is left.
        let room = self.room_left(s, Some(&path)).await?;
        let wanted = code.len() as u64;
        if wanted > room {
            return Err(RunError::QuotaFull {
                wanted,
                room,
                limit: self.settings.disk_bytes,
            });
        }
        let code_copy = if self.catalog.is_some() {
            code.clone()
        } else {
            String::new()
        };
        let written = tokio::task::spawn_blocking({
            let path = path.clone();
            move || write_atomically(&path, &code)
        })
        .await
        .map_err(|e| RunError::Internal(e.to_string()))?;
        written.map_err(|error| RunError::Storage {
            what: format!("the session file {name}"),
            error,
        })?;
        if let Some(catalog) = self.catalog.clone() {
            // Stored too, so a replica that adopts the session has it.
            let (id, file, code) = (s.id.clone(), name.clone(), code_copy);
            tokio::task::spawn_blocking(move || catalog.store_file(&id, &file, &code))
                .await
                .map_err(|e| RunError::Internal(e.to_string()))?
                .map_err(|e| RunError::Storage {
                    what: format!("the session file {name} to the shared catalog"),
                    error: std::io::Error::other(e.0),
                })?;
        }
        let execution = std::sync::Arc::new(Execution {
            cpu_limit: self.settings.cpu_limit,
            env: self.settings.env.clone(),
            language: s.environment.language(),
            scope: Some(s.dir.clone()),
            client: Some(s.owner.clone()),
            write_budget: Some(room - wanted),
            ..Execution::program(path, None, request.timeout)
        });
        let stopped = |why: &str| RunOutput {
            stdout: String::new(),
            stderr: format!("{why}\n"),
            exit_code: None,
            status: RunStatus::Error,
            output_truncated: false,
            cell: None,
            took: Duration::ZERO,
        };
        let report = tokio::select! {
            r = runner.execute("sessions", &execution) => r.map_err(|_| RunError::Overloaded)?,
            () = s.interrupt.notified() => return Ok(stopped("Interrupted")),
            () = s.ended() => return Ok(stopped("The session ended")),
        };
        let (stdout, mut stderr) = split_streams(&report.logs);
        let (status, exit_code) = match ProgramEnd::of(report.outcome) {
            ProgramEnd::Exited(code) => (RunStatus::Completed, Some(code)),
            // The program ran and failed (an uncaught exception, a refused
            // capability): it completed, with exit code 1, as a process
            // would; `error` is for runs stopped from outside.
            ProgramEnd::Failed { line, .. } => {
                stderr.push_str(&line);
                (RunStatus::Completed, Some(1))
            }
            ProgramEnd::Stopped(ExecError::Timeout | ExecError::CpuLimit) => {
                (RunStatus::Timeout, None)
            }
            ProgramEnd::Stopped(other) => {
                // A kill or our failure: exit code 1, as a killed process
                // reads in this API.
                let described = other.describe(execution.timeout, execution.cpu_limit);
                stderr.push_str(&format!("error: {}\n", described.message));
                (RunStatus::Error, Some(1))
            }
        };
        Ok(RunOutput {
            stdout: with_virtual_paths(&stdout, &s.dir, "/session", &[]),
            stderr: with_virtual_paths(&stderr, &s.dir, "/session", &[]),
            exit_code,
            status,
            output_truncated: report.logs_truncated,
            cell: None,
            took: Duration::ZERO,
        })
    }

    /// Runs the next notebook cell.
    async fn run_cell(
        &self,
        s: &Arc<Session>,
        runner: &Runner,
        request: RunInput,
    ) -> Result<RunOutput, RunError> {
        let Some(notebook) = &s.notebook else {
            return Err(RunError::Internal(
                "a notebook session has no notebook".into(),
            ));
        };
        let cell = CellRequest {
            write_budget: self.room_left(s, None).await?,
            code: request.code,
            language: s.environment.language(),
            timeout: request.timeout,
            env: self.settings.env.clone(),
        };
        let Some(report) = notebook.run(cell).await else {
            return Err(RunError::Gone);
        };
        let outcome = match report.status {
            CellStatus::Completed => "ok",
            CellStatus::Error => "exception",
            CellStatus::Interrupted => "cancelled",
            CellStatus::Timeout => "timeout",
            CellStatus::MemoryLimit => "memory_limit",
            CellStatus::OutputLimit => "output_limit",
        };
        runner.metrics.execution(
            "sessions",
            "notebook",
            outcome,
            report.duration,
            Duration::ZERO,
        );
        let (status, exit_code) = match report.status {
            CellStatus::Completed => (RunStatus::Completed, Some(report.exit_code.unwrap_or(0))),
            // A cell that threw completed with exit code 1, as a script does.
            CellStatus::Error => (RunStatus::Completed, Some(1)),
            CellStatus::Interrupted | CellStatus::MemoryLimit | CellStatus::OutputLimit => {
                (RunStatus::Error, Some(1))
            }
            CellStatus::Timeout => (RunStatus::Timeout, None),
        };
        Ok(RunOutput {
            stdout: with_virtual_paths(&report.stdout, &s.dir, "/session", &[]),
            stderr: with_virtual_paths(&report.stderr, &s.dir, "/session", &[]),
            exit_code,
            status,
            output_truncated: report.output_truncated,
            cell: Some(CellOutput {
                result: report.result,
                // Adopted from a lost replica: the state that was there is gone.
                state_reset: report.state_reset
                    || s.state_lost
                        .swap(false, std::sync::atomic::Ordering::Relaxed),
                interrupted: report.status == CellStatus::Interrupted,
            }),
            took: Duration::ZERO,
        })
    }

    /// Bytes the session may still write under `SESSION_DISK_BYTES`; a
    /// file about to be replaced (`replacing`) does not count.
    async fn room_left(&self, s: &Session, replacing: Option<&Path>) -> Result<u64, RunError> {
        let dir = s.dir.clone();
        let skip = replacing.map(Path::to_path_buf);
        let used = tokio::task::spawn_blocking(move || dir_bytes(&dir, skip.as_deref()))
            .await
            .map_err(|e| RunError::Internal(e.to_string()))?;
        Ok(self.settings.disk_bytes.saturating_sub(used))
    }
}

/// A run in progress: its end is recorded when this is dropped.
struct Executing<'a> {
    session: &'a Arc<Session>,
    ttl: Duration,
    /// False if the run was dropped before it finished.
    finished: bool,
}

impl Drop for Executing<'_> {
    fn drop(&mut self) {
        if !self.finished
            && let Some(notebook) = &self.session.notebook
        {
            // The cell's caller left: stop the cell (its state is kept).
            notebook.interrupt();
        }
        self.session.end_execution(self.ttl);
    }
}

/// Bytes of the files under `dir` (sub-directories too), `skip` left out.
fn dir_bytes(dir: &Path, skip: Option<&Path>) -> u64 {
    let mut total = 0u64;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
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
fn write_atomically(path: &Path, code: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
        crate::disk::ensure_room(parent)?;
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
