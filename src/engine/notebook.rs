//! Notebook sessions: one isolate kept for the session's life on a thread
//! of its own, so a session that hogs its isolate stalls nobody else. Each
//! cell is transpiled (TypeScript too), its static imports become dynamic
//! ones, and it is evaluated in V8's REPL mode (see `js::cells`). A
//! cell stopped by its timeout or an interrupt keeps the state (the
//! termination is cancelled); a memory kill loses it, and the next cell
//! starts on a fresh isolate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::compile::CompileError;
use super::js::cells::{CellOutcome, CellSession};
use super::js::ext::LogSink;
use super::js::{CallSetup, ConvertLimits, Sandbox, SandboxHost, Scope};
use super::options::Limits;
use super::types::{Language, PROGRAM_STREAM_BYTES};
use super::watchdog::{CancelFlag, KillReason, KillRecord, Watch, Watchdog};
use crate::sync::lock;

/// Stack of a notebook thread, as for isolate threads.
const THREAD_STACK: usize = 8 * 1024 * 1024;
/// How long past a cell's deadline its reply is still awaited (a
/// terminated evaluation answers as it unwinds).
const REPLY_GRACE: Duration = Duration::from_millis(100);

/// One cell to run.
pub struct CellRequest {
    pub code: String,
    pub language: super::types::Language,
    pub timeout: Duration,
    /// What `Deno.env.get` sees.
    pub env: std::collections::HashMap<String, String>,
    /// Bytes the cell may write to files (at most `MAX_WRITE_BYTES`).
    pub write_budget: u64,
}

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellStatus {
    Completed,
    /// It threw, or did not compile.
    Error,
    Timeout,
    Interrupted,
    /// A memory kill: the state is lost.
    MemoryLimit,
    /// Its value could not be sent back (past `MAX_RESULT_BYTES`, or not
    /// JSON-convertible); the state is kept.
    OutputLimit,
}

/// What a cell printed and gave back.
#[derive(Debug, Clone)]
pub struct CellReport {
    pub stdout: String,
    pub stderr: String,
    /// The last expression's value as JSON (`None` when the cell failed).
    pub result: Option<String>,
    pub status: CellStatus,
    /// Whether the session's state was lost (a memory kill, `Deno.exit`).
    pub state_reset: bool,
    /// The code given to `Deno.exit`, when the cell called it.
    pub exit_code: Option<i32>,
    pub duration: Duration,
    pub output_truncated: bool,
}

/// A cell for the notebook thread, and where its report goes.
struct CellOrder(CellRequest, oneshot::Sender<CellReport>);

/// A live notebook: its thread ends when this is dropped.
pub struct Notebook {
    commands: Mutex<Option<mpsc::Sender<CellOrder>>>,
    /// The running cell's interrupt flag, if one runs.
    current: Arc<Mutex<Option<Arc<CancelFlag>>>>,
    watchdog: Watchdog,
}

/// What a notebook thread is made with.
pub(crate) struct NotebookParts {
    pub host: SandboxHost,
    pub watchdog: Watchdog,
    pub limits: Limits,
    pub isolates_created: Arc<std::sync::atomic::AtomicU64>,
    pub memory: Arc<NotebookMemory>,
}

/// What every live notebook's isolate holds (heap and off-heap buffers,
/// measured after each cell), against a budget for all of them: a cell
/// that leaves the total past it loses its notebook's state.
pub(crate) struct NotebookMemory {
    budget: usize,
    held: Mutex<std::collections::HashMap<u64, usize>>,
    next: std::sync::atomic::AtomicU64,
}

impl NotebookMemory {
    pub(crate) fn new(budget: usize) -> NotebookMemory {
        NotebookMemory {
            budget,
            held: Mutex::new(std::collections::HashMap::new()),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn register(&self) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.held).insert(id, 0);
        id
    }

    fn forget(&self, id: u64) {
        lock(&self.held).remove(&id);
    }

    /// Records what notebook `id` holds now; false when all of them
    /// together are past the budget.
    fn hold(&self, id: u64, bytes: usize) -> bool {
        let mut held = lock(&self.held);
        held.insert(id, bytes);
        held.values().sum::<usize>() <= self.budget
    }
}

impl Notebook {
    /// Starts a notebook confined to `dir` (which must exist).
    pub(crate) fn start(parts: NotebookParts, dir: &Path) -> std::io::Result<Notebook> {
        let (tx, rx) = mpsc::channel();
        let current: Arc<Mutex<Option<Arc<CancelFlag>>>> = Arc::default();
        let scope = parts.host.scoped(dir);
        let watchdog = parts.watchdog.clone();
        let thread_current = current.clone();
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("isoexec-notebook".into())
            .stack_size(THREAD_STACK)
            .spawn(move || thread_main(parts, scope, dir, rx, thread_current))?;
        Ok(Notebook {
            commands: Mutex::new(Some(tx)),
            current,
            watchdog,
        })
    }

    /// Runs the next cell and waits for its report.
    pub async fn run(&self, cell: CellRequest) -> Option<CellReport> {
        let (reply, rx) = oneshot::channel();
        let sent = lock(&self.commands)
            .as_ref()
            .is_some_and(|tx| tx.send(CellOrder(cell, reply)).is_ok());
        if !sent {
            return None;
        }
        rx.await.ok()
    }

    /// Stops the running cell, if any; the state is kept.
    pub fn interrupt(&self) -> bool {
        let flag = lock(&self.current).clone();
        match flag {
            Some(flag) => {
                flag.cancel();
                self.watchdog.poke();
                true
            }
            None => false,
        }
    }

    /// Ends the notebook: a running cell is interrupted, the thread drops
    /// the isolate and exits.
    pub fn stop(&self) {
        self.interrupt();
        lock(&self.commands).take();
    }
}

impl Drop for Notebook {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The isolate and its inspector session, made on first use and again
/// after a memory kill.
struct NotebookIsolate {
    sandbox: Sandbox,
    /// The inspector session of a JavaScript notebook; a Python notebook
    /// runs its cells through its interpreter instead.
    session: Option<CellSession>,
}

/// A notebook's thread: its runtime, its isolate (made on first use) and
/// what every cell runs with.
struct NotebookThread {
    parts: NotebookParts,
    scope: Scope,
    dir: PathBuf,
    rt: tokio::runtime::Runtime,
    /// The isolate, once a cell made it; `None` again after a kill.
    live: Option<NotebookIsolate>,
    /// The global the cells' values are kept under.
    slot: String,
    /// Cells run so far: each is named `__cell_<n>`.
    cells: u64,
}

/// What a cell's evaluation left, before it is read as a status.
struct Evaluated {
    outcome: CellOutcome,
    logs: Vec<super::types::LogEntry>,
    truncated: bool,
    /// A kill of the isolate itself (memory, `Deno.exit`): the state ends.
    killed: Option<KillReason>,
    /// Why the cell alone was stopped (timeout, interrupt): the state stays.
    stopped: Option<KillReason>,
    exit_code: Option<i32>,
}

fn thread_main(
    parts: NotebookParts,
    scope: Scope,
    dir: PathBuf,
    commands: mpsc::Receiver<CellOrder>,
    current: Arc<Mutex<Option<Arc<CancelFlag>>>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "a notebook thread could not start its runtime");
            return;
        }
    };
    // deno_core needs a tokio context whenever V8 may post a delayed task.
    let _enter = rt.enter();
    let mut thread = NotebookThread {
        parts,
        scope,
        dir,
        rt,
        live: None,
        slot: format!("__isoexec_cell_{}", uuid::Uuid::new_v4().simple()),
        cells: 0,
    };
    let me = thread.parts.memory.register();
    while let Ok(CellOrder(cell, reply)) = commands.recv() {
        let flag = Arc::new(CancelFlag::default());
        *lock(&current) = Some(flag.clone());
        let mut report = thread.run_cell(cell, &flag);
        *lock(&current) = None;
        if !thread.hold_memory(me) {
            report.state_reset = true;
            report.stderr.push_str(
                "error: the server's notebooks hold more memory than NOTEBOOK_MEMORY_MB; \
                 this session's state was reset\n",
            );
        }
        let _ = reply.send(report);
    }
    thread.parts.memory.forget(me);
    // Dropping the sandbox needs its isolate entered: Sandbox's Drop does it.
    drop(thread.live.take());
}

impl NotebookThread {
    /// Records what this notebook's isolate holds; when all notebooks
    /// together hold too much, this one (whose cell just grew it) starts
    /// over, and the answer is false.
    fn hold_memory(&mut self, me: u64) -> bool {
        let holds = self
            .live
            .as_mut()
            .map_or(0, |l| l.sandbox.with_entered(|sb| sb.memory_used()));
        if self.parts.memory.hold(me, holds) {
            return true;
        }
        self.live = None;
        self.parts.memory.hold(me, 0);
        false
    }

    /// Compiles and evaluates the next cell.
    fn run_cell(&mut self, cell: CellRequest, flag: &Arc<CancelFlag>) -> CellReport {
        self.cells += 1;
        let started = Instant::now();
        let deadline = started + cell.timeout;
        let failed = |status, stderr: String| CellReport {
            stdout: String::new(),
            stderr,
            result: None,
            status,
            state_reset: false,
            exit_code: None,
            duration: started.elapsed(),
            output_truncated: false,
        };
        let python = cell.language == Language::Python;
        let script = if python {
            cell.code.clone()
        } else {
            match self.compile(&cell, deadline, flag) {
                Ok(script) => script,
                Err((status, stderr)) => return failed(status, stderr),
            }
        };
        if let Err(e) = self.ensure_isolate(python) {
            tracing::error!(error = %e, "a notebook isolate could not be made");
            return failed(CellStatus::Error, "error: internal error\n".into());
        }
        let Some(evaluated) = self.evaluate(&script, cell, deadline, flag) else {
            return failed(CellStatus::Error, "error: internal error\n".into());
        };
        let (stdout, mut stderr) = super::types::split_streams(&evaluated.logs);
        let (status, result, state_reset) = read_outcome(&evaluated, &mut stderr);
        if state_reset {
            self.live = None;
        }
        CellReport {
            stdout,
            stderr,
            result,
            status,
            state_reset,
            exit_code: evaluated.exit_code,
            duration: started.elapsed(),
            output_truncated: evaluated.truncated,
        }
    }

    /// The cell as a REPL script: TypeScript to JavaScript, then static
    /// imports to dynamic ones. Fails with the cell's status and stderr.
    fn compile(
        &self,
        cell: &CellRequest,
        deadline: Instant,
        flag: &Arc<CancelFlag>,
    ) -> Result<String, (CellStatus, String)> {
        let name = format!("__cell_{}.{}", self.cells, cell.language.extension());
        let Ok(specifier) = deno_core::ModuleSpecifier::from_file_path(self.dir.join(&name)) else {
            let message = "error: the session directory is not absolute\n";
            return Err((CellStatus::Error, message.into()));
        };
        let stop = || flag.is_cancelled();
        match self
            .parts
            .host
            .cache
            .get_file(&specifier, &cell.code, deadline, &stop)
        {
            Ok(module) => Ok(script_from_module(&module.code, &self.dir)),
            Err(CompileError::Syntax(e)) => Err((
                CellStatus::Error,
                format!(
                    "error: SyntaxError: {} at {name}:{}:{}\n",
                    e.message, e.line, e.column
                ),
            )),
            Err(CompileError::Timeout) => Err((CellStatus::Timeout, String::new())),
            Err(CompileError::Cancelled) => Err((CellStatus::Interrupted, "Interrupted\n".into())),
            Err(CompileError::Internal(m)) => {
                tracing::error!(cause = %m, "a notebook cell could not be compiled");
                Err((CellStatus::Error, "error: internal error\n".into()))
            }
        }
    }

    /// Makes the notebook's isolate if it has none (the first cell, or the
    /// first after a kill).
    fn ensure_isolate(&mut self, python: bool) -> Result<(), super::js::InitError> {
        if self.live.is_some() {
            return Ok(());
        }
        let mut sandbox = if python {
            let mut sandbox = Sandbox::new(&self.parts.host)?;
            let rt = &self.rt;
            sandbox
                .with_entered(|sb| {
                    rt.block_on(sb.boot_python(
                        &self.parts.host.python_packages,
                        self.parts.host.python_snapshot.as_deref(),
                    ))
                })
                .map_err(|e| {
                    super::js::InitError::Python(e.describe(Duration::ZERO, None).message)
                })?;
            sandbox
        } else {
            Sandbox::with_inspector(&self.parts.host)?
        };
        self.parts
            .isolates_created
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session =
            (!python).then(|| sandbox.with_entered(|sb| CellSession::open(sb, self.slot.clone())));
        if !python {
            // Node's globals and REPL `require`, as in a program.
            let (rt, dir) = (&self.rt, self.dir.to_string_lossy().into_owned());
            if let Err(e) = sandbox.with_entered(|sb| rt.block_on(sb.install_node_repl(&dir))) {
                tracing::warn!(error = ?e, "a notebook's Node globals could not be installed");
            }
        }
        self.live = Some(NotebookIsolate { sandbox, session });
        Ok(())
    }

    /// Evaluates `script` under the watchdog until it settles, its
    /// deadline passes or it is interrupted; `None` without an isolate.
    fn evaluate(
        &mut self,
        script: &str,
        cell: CellRequest,
        deadline: Instant,
        flag: &Arc<CancelFlag>,
    ) -> Option<Evaluated> {
        let parts = &self.parts;
        let (scope, rt) = (&self.scope, &self.rt);
        let NotebookIsolate { sandbox, session } = self.live.as_mut()?;
        let Some(session) = session else {
            return Some(python_cell(
                sandbox, parts, rt, script, cell, deadline, flag,
            ));
        };
        let limits = ConvertLimits {
            max_bytes: parts.limits.max_result_bytes,
            max_depth: parts.limits.max_json_depth,
        };
        let cell_record = Arc::new(KillRecord::default());
        Some(sandbox.with_entered(|sb| {
            let started = Instant::now();
            let setup = cell_setup(parts, cell, started, deadline, flag, Some(scope.clone()));
            sb.begin_call(setup);
            let ticket = parts.watchdog.arm(
                Watch {
                    isolate: sb.isolate_handle(),
                    record: cell_record.clone(),
                    deadline,
                    cpu: None,
                    cancel: Some(flag.clone()),
                    hangup: None,
                },
                started,
            );
            let outcome =
                rt.block_on(session.evaluate(sb, script, deadline + REPLY_GRACE, limits, flag));
            parts.watchdog.disarm(ticket);
            if flag.is_cancelled() {
                // Interrupted while it awaited: the watchdog may not have
                // looked yet.
                cell_record.mark(KillReason::Cancelled);
            }
            // The sandbox's own record holds kills that end the state.
            let killed = sb.kill_record().reason();
            let exit_code = sb.exit_code();
            if killed.is_none() {
                // Timeouts and interrupts keep the state: V8 can cancel a
                // termination, and the isolate runs the next cell.
                sb.isolate_handle().cancel_terminate_execution();
            }
            let (logs, truncated) = sb.take_logs();
            Evaluated {
                outcome,
                logs,
                truncated,
                killed,
                stopped: cell_record.reason(),
                exit_code,
            }
        }))
    }
}

/// What a cell runs with: its output as a program's streams, its
/// variables, start (`performance.now()`'s origin), deadline and interrupt
/// flag, and what it may write (at most `MAX_WRITE_BYTES`).
fn cell_setup(
    parts: &NotebookParts,
    cell: CellRequest,
    started: Instant,
    deadline: Instant,
    flag: &Arc<CancelFlag>,
    scope: Option<Scope>,
) -> CallSetup {
    CallSetup {
        logs: LogSink::streams(PROGRAM_STREAM_BYTES),
        started,
        env: cell.env,
        deadline,
        cancel: Some(flag.clone()),
        write_budget: cell.write_budget.min(parts.limits.max_write_bytes),
        stdin: None,
        scope,
        net: None,
        memory_limit: None,
    }
}

/// How long a Python cell past its deadline (or interrupted) may take to
/// unwind from its `KeyboardInterrupt` before its interpreter is
/// terminated, and the notebook's state with it.
const PYTHON_UNWIND: Duration = Duration::from_millis(300);

/// Runs a Python notebook cell. At its deadline, or when it is
/// interrupted, `KeyboardInterrupt` is raised in it, so the interpreter
/// unwinds and the state is kept; one that has not unwound
/// `PYTHON_UNWIND` later is terminated, and the state is lost.
fn python_cell(
    sandbox: &mut Sandbox,
    parts: &NotebookParts,
    rt: &tokio::runtime::Runtime,
    code: &str,
    cell: CellRequest,
    deadline: Instant,
    flag: &Arc<CancelFlag>,
) -> Evaluated {
    let cell_record = Arc::new(KillRecord::default());
    sandbox.with_entered(|sb| {
        sb.begin_call(cell_setup(
            parts,
            cell,
            Instant::now(),
            deadline,
            flag,
            None,
        ));
        let guard = PythonGuard::start(
            sb.python_interrupt(),
            sb.isolate_handle(),
            sb.kill_record(),
            cell_record.clone(),
            deadline,
            flag.clone(),
        );
        let outcome = rt.block_on(sb.python_cell(code));
        guard.finish();
        let killed = sb.kill_record().reason();
        let (logs, truncated) = sb.take_logs();
        let (outcome, exit_code) = match outcome {
            Ok((0, result)) => (
                CellOutcome::Value(result.unwrap_or_else(|| "null".into())),
                None,
            ),
            Ok((1, _)) => (CellOutcome::Raised, None),
            Ok((code, _)) => (CellOutcome::Value("null".into()), Some(code)),
            Err(_) => (CellOutcome::NoReply, None),
        };
        Evaluated {
            outcome,
            logs,
            truncated,
            killed,
            stopped: cell_record.reason(),
            exit_code,
        }
    })
}

/// The thread that stops a Python cell: it writes the interrupt word at
/// the deadline or on an interrupt, and terminates the interpreter if the
/// cell has not ended `PYTHON_UNWIND` later.
struct PythonGuard {
    done: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PythonGuard {
    fn start(
        word: Option<Arc<std::sync::atomic::AtomicI32>>,
        isolate: deno_core::v8::IsolateHandle,
        isolate_record: Arc<KillRecord>,
        cell_record: Arc<KillRecord>,
        deadline: Instant,
        flag: Arc<CancelFlag>,
    ) -> PythonGuard {
        let (done, ended) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("isoexec-notebook-guard".into())
            .spawn(move || {
                // Wait for the deadline, an interrupt or the cell's end.
                let reason = loop {
                    let now = Instant::now();
                    if flag.is_cancelled() {
                        break KillReason::Cancelled;
                    }
                    if now >= deadline {
                        break KillReason::Timeout;
                    }
                    let wait = (deadline - now).min(Duration::from_millis(10));
                    match ended.recv_timeout(wait) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                };
                cell_record.mark(reason);
                if let Some(word) = &word {
                    word.store(2, std::sync::atomic::Ordering::SeqCst);
                }
                if let Err(mpsc::RecvTimeoutError::Timeout) = ended.recv_timeout(PYTHON_UNWIND) {
                    isolate_record.mark(reason);
                    isolate.terminate_execution();
                }
            });
        PythonGuard {
            done,
            thread: thread.ok(),
        }
    }

    fn finish(mut self) {
        let _ = self.done.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cell's status, its value (as JSON text) and whether the notebook's
/// state ended, from what its evaluation left; what the user should read
/// about it is added to `stderr`.
fn read_outcome(e: &Evaluated, stderr: &mut String) -> (CellStatus, Option<String>, bool) {
    match (e.killed, e.stopped, &e.outcome) {
        (Some(KillReason::MemoryLimit), _, _) => {
            stderr.push_str("error: memory limit exceeded; the session's state was reset\n");
            (CellStatus::MemoryLimit, None, true)
        }
        // A Python cell that did not unwind in time: its interpreter was
        // terminated mid-way, and its state cannot be trusted.
        (Some(reason @ (KillReason::Timeout | KillReason::Cancelled)), _, _) => {
            stderr.push_str(
                "error: the Python code did not stop when interrupted; \
                 the session's state was reset\n",
            );
            let status = if reason == KillReason::Timeout {
                CellStatus::Timeout
            } else {
                CellStatus::Interrupted
            };
            (status, None, true)
        }
        // Deno.exit or another kill of the isolate itself.
        (Some(_), _, _) => (CellStatus::Completed, None, true),
        (None, Some(KillReason::Timeout), _) => (CellStatus::Timeout, None, false),
        (None, Some(KillReason::Cancelled), _) => {
            stderr.push_str("Interrupted\n");
            (CellStatus::Interrupted, None, false)
        }
        (None, _, CellOutcome::NoReply) => (CellStatus::Timeout, None, false),
        // A Python cell raised: its traceback is on stderr already.
        (None, _, CellOutcome::Raised) => (CellStatus::Error, None, false),
        (None, _, CellOutcome::Threw(text)) => {
            stderr.push_str(&format!("Uncaught {text}\n"));
            (CellStatus::Error, None, false)
        }
        (None, _, CellOutcome::Unconvertible(message)) => {
            stderr.push_str(&format!(
                "error: the result could not be converted: {message}\n"
            ));
            (CellStatus::OutputLimit, None, false)
        }
        (None, _, CellOutcome::Value(json)) => (CellStatus::Completed, Some(json.clone()), false),
    }
}

/// A transpiled module as a REPL script: static imports become `await
/// import()` (relative specifiers made absolute in `dir`, since a script
/// has no URL to resolve them against), `export` keywords are dropped, and
/// the source-map comment goes.
pub(super) fn script_from_module(js: &str, dir: &Path) -> String {
    let mut out = String::with_capacity(js.len());
    for line in js.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//# sourceMappingURL=") {
            continue;
        }
        if let Some(rewritten) = import_line(trimmed, dir) {
            out.push_str(&rewritten);
        } else if let Some(rest) = trimmed.strip_prefix("export default ") {
            out.push_str(rest);
        } else if let Some(rest) = trimmed.strip_prefix("export ") {
            if rest.starts_with('{') {
                // `export { a, b };` names bindings that already exist.
                continue;
            }
            out.push_str(rest);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `import … from "m";` (one line, as swc writes it) as a dynamic import.
fn import_line(line: &str, dir: &Path) -> Option<String> {
    let rest = line.strip_prefix("import ")?;
    if rest.starts_with('(') {
        return None;
    }
    let quoted = |s: &str| -> Option<String> {
        let s = s.trim().trim_end_matches(';').trim();
        let q = s.chars().next()?;
        (q == '"' || q == '\'').then(|| s.trim_matches(q).to_string())
    };
    let base = deno_core::ModuleSpecifier::from_directory_path(dir).ok();
    let target = |spec: String| -> String {
        let absolute = match &base {
            Some(base) if spec.starts_with("./") || spec.starts_with("../") => {
                base.join(&spec).map(|u| u.to_string()).unwrap_or(spec)
            }
            _ => spec,
        };
        serde_json::Value::String(absolute).to_string()
    };
    let Some((clause, from)) = rest.rsplit_once(" from ") else {
        // `import "m";`
        return quoted(rest).map(|m| format!("await import({});", target(m)));
    };
    let module = target(quoted(from)?);
    let clause = clause.trim();
    if let Some(ns) = clause.strip_prefix("* as ") {
        return Some(format!("const {} = await import({module});", ns.trim()));
    }
    let (default, named) = match clause.find('{') {
        Some(i) => (
            clause[..i].trim().trim_end_matches(',').trim(),
            Some(&clause[i..]),
        ),
        None => (clause, None),
    };
    let mut parts = Vec::new();
    if !default.is_empty() {
        parts.push(format!("default: {default}"));
    }
    if let Some(named) = named {
        let inner = named.trim().trim_start_matches('{').trim_end_matches('}');
        for item in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once(" as ") {
                Some((a, b)) => parts.push(format!("{}: {}", a.trim(), b.trim())),
                None => parts.push(item.to_string()),
            }
        }
    }
    Some(format!(
        "const {{ {} }} = await import({module});",
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_imports_become_dynamic() {
        let dir = Path::new("/s");
        let js = "import { a, b as c } from \"./lib.ts\";\nimport d from 'utils/x.ts';\n\
                  import * as ns from \"../n.ts\";\nimport \"./side.ts\";\nimport e, { f } from \"./g.ts\";\n\
                  export const x = a + c;\nexport function y() {}\nexport { x as z };\nx;\n\
                  //# sourceMappingURL=data:application/json;base64,AAA";
        let out = script_from_module(js, dir);
        assert_eq!(
            out,
            "const { a, b: c } = await import(\"file:///s/lib.ts\");\n\
             const { default: d } = await import(\"utils/x.ts\");\n\
             const ns = await import(\"file:///n.ts\");\n\
             await import(\"file:///s/side.ts\");\n\
             const { default: e, f } = await import(\"file:///s/g.ts\");\n\
             const x = a + c;\nfunction y() {}\nx;\n"
        );
    }
}
