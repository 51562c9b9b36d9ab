//! One isolate thread: a current-thread tokio runtime and the isolates it
//! owns. It keeps one fresh isolate ready ahead of time for clean-state
//! calls and one warm isolate for `"none"` calls; any isolate that was
//! killed, or failed mid-call, is dropped and replaced.

// Isolates are kept boxed, in lists too: every call takes one out and puts
// it back, and a box moves as a pointer where a `Sandbox` would copy its
// half a kilobyte each time.
#![allow(clippy::vec_box)]

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deno_core::ModuleSpecifier;
use tokio::sync::oneshot;

use super::js::ext::LogSink;
use super::js::{CallSetup, ConvertLimits, Sandbox, SandboxHost};
use super::options::Limits;
use super::policy::{Placement, Slot, placement};
use super::queue::{Next, Queue, Queued};
use super::transpile_cache::Module;
use super::types::{Entry, ExecError, Execution, PROGRAM_STREAM_BYTES, Report, Task};
use super::watchdog::{CancelFlag, KillReason, KillRecord, ThreadCpuClock, Watch, Watchdog};

/// What the pool's handle and its isolate threads share.
pub(super) struct Shared {
    pub queue: Queue,
    pub limits: Limits,
    /// Enforces deadlines, CPU budgets and cancellation from outside.
    pub watchdog: Watchdog,
    /// What every isolate is made with.
    pub host: SandboxHost,
    /// Per thread: heap total, used and external bytes of its isolates,
    /// as of its last call.
    pub heap: Vec<[AtomicU64; 3]>,
    /// The same for each connection thread's lane (see `engine::lane`).
    pub lane_heap: std::sync::Mutex<Vec<Arc<[AtomicU64; 3]>>>,
    /// Isolates made so far (fresh, warm and notebook ones).
    pub isolates_created: Arc<AtomicU64>,
    /// Run one execution, then stop (a worker process's pool).
    pub one_shot: bool,
}

/// The isolates one thread owns.
struct IsolateThread<'a> {
    shared: &'a Shared,
    rt: tokio::runtime::Runtime,
    cpu_clock: Option<ThreadCpuClock>,
    /// A fresh isolate, made before it is needed.
    spare: Option<Box<Sandbox>>,
    /// The isolates `"none"` and `"frozen"` calls share.
    kept: KeptSlots,
    /// Whether this thread has served a `"frozen"` call: from then on it
    /// keeps a frozen isolate ready.
    frozen_wanted: bool,
    /// A fresh Python interpreter, made before it is needed.
    python: Option<Box<Sandbox>>,
    /// Whether this thread has run a Python program: from then on it keeps
    /// an interpreter ready.
    python_wanted: bool,
    /// Kept isolates given up for a call of another owner, dropped once
    /// that call has its answer.
    retired: Vec<Box<Sandbox>>,
}

/// The thread's body: take executions until the pool closes.
pub(super) fn main(shared: &Shared, id: usize) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "isolate thread could not start its runtime");
            return;
        }
    };
    // deno_core needs a tokio context whenever V8 may post a delayed task.
    let _enter = rt.enter();
    let mut thread = IsolateThread {
        shared,
        rt,
        cpu_clock: ThreadCpuClock::current(),
        spare: None,
        kept: KeptSlots::default(),
        frozen_wanted: false,
        python: None,
        python_wanted: false,
        retired: Vec::new(),
    };
    loop {
        if thread.spare.is_none() {
            thread.spare = thread.new_sandbox(Slot::Fresh);
        }
        if thread.frozen_wanted
            && thread.kept.frozen.is_empty()
            && let Some(sandbox) = thread.new_sandbox(Slot::Frozen)
        {
            thread.kept.frozen.keep(sandbox, 0, usize::MAX);
        }
        if thread.python_wanted && thread.python.is_none() {
            thread.python = thread.new_sandbox(Slot::Python);
        }
        // Once per call, with the isolates this thread keeps while it waits.
        thread.record_heap(id);
        let queued = match shared.queue.next(id, Some(IDLE_COLLECT_AFTER)) {
            Next::Run(q) => *q,
            Next::Closed => break,
            Next::Idle => {
                // Idle a while: what the last calls left as garbage in the
                // kept isolates is collected now (an idle isolate never
                // collects by itself), then the thread waits for as long as
                // it takes.
                thread.collect_garbage();
                thread.record_heap(id);
                match shared.queue.next(id, None) {
                    Next::Run(q) => *q,
                    Next::Idle | Next::Closed => break,
                }
            }
        };
        if queued.abandoned() {
            shared.queue.finish(&queued);
            continue;
        }
        let (report, used) = thread.run(&queued);
        shared.queue.finish(&queued);
        let _ = queued.reply.send(report);
        // The answer has gone: a frozen call's reset is done now, before
        // the thread takes the next call.
        thread.kept.frozen.finish_resets(&mut thread.retired);
        if shared.one_shot {
            // The process ends now: nothing is dropped or made after this.
            std::mem::forget(used);
            break;
        }
        // Dropping an isolate takes time: do it after the caller has its answer.
        drop(used);
        thread.retired.clear();
    }
}

/// The isolates of the kept slots: those `"none"` calls share and those
/// `"frozen"` calls share, each one per owner (see `Execution::owner`).
#[derive(Default)]
pub(super) struct KeptSlots {
    warm: Kept,
    frozen: Kept,
}

impl KeptSlots {
    /// The kept isolates of `slot`; `None` for a slot that keeps none.
    pub(super) fn of(&mut self, slot: Slot) -> Option<&mut Kept> {
        match slot {
            Slot::Warm => Some(&mut self.warm),
            Slot::Frozen => Some(&mut self.frozen),
            Slot::Fresh | Slot::Python => None,
        }
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Sandbox> {
        self.warm.iter_mut().chain(self.frozen.iter_mut())
    }
}

/// The heap figures (total, used, external) of `sandboxes`, summed.
pub(super) fn heap_figures<'a>(sandboxes: impl Iterator<Item = &'a mut Sandbox>) -> [u64; 3] {
    let mut sum = [0u64; 3];
    for sandbox in sandboxes {
        let figures = sandbox.with_entered(|sb| sb.heap_figures());
        for (s, v) in sum.iter_mut().zip(figures) {
            *s += v;
        }
    }
    sum
}

/// A full garbage collection in each of `sandboxes`.
pub(super) fn collect_garbage<'a>(sandboxes: impl Iterator<Item = &'a mut Sandbox>) {
    for sandbox in sandboxes {
        sandbox.with_entered(|sb| sb.collect_garbage());
    }
}

/// A new isolate for `slot`: with its built-ins frozen for `"frozen"`
/// (a Python interpreter is loaded into it afterwards).
pub(super) fn new_isolate(
    host: &SandboxHost,
    slot: Slot,
) -> Result<Box<Sandbox>, super::js::InitError> {
    let sandbox = if slot.policy().frozen {
        Sandbox::frozen(host)?
    } else {
        Sandbox::new(host)?
    };
    Ok(Box::new(sandbox))
}

/// Owners whose kept isolates one thread holds at once, per kept slot.
const KEPT_OWNERS: usize = 4;
/// The kept isolates of one slot hold at most 1/n of the memory limit
/// together (as one kept isolate may: see `policy::KEPT_MAX_HEAP_SHARE`).
pub(super) const KEPT_SHARE: usize = 2;

/// The kept isolates of one slot: at most one per owner, at most
/// [`KEPT_OWNERS`], least recently used first, with the memory each held
/// after its last call.
#[derive(Default)]
pub(super) struct Kept(Vec<(Box<Sandbox>, usize)>);

impl Kept {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Sandbox> {
        self.0.iter_mut().map(|(s, _)| &mut **s)
    }

    /// The isolate `owner`'s calls use, or one no call has used yet. When
    /// there is neither and the set is full, the least recently used one
    /// is retired to make room.
    pub(super) fn take(
        &mut self,
        owner: &Option<Arc<str>>,
        retired: &mut Vec<Box<Sandbox>>,
    ) -> Option<Box<Sandbox>> {
        let mine = self
            .0
            .iter()
            .rposition(|(s, _)| s.owner.as_ref() == Some(owner))
            .or_else(|| self.0.iter().rposition(|(s, _)| s.owner.is_none()));
        if let Some(i) = mine {
            let mut sandbox = self.0.remove(i).0;
            // A frozen isolate whose reset is still to be done gets it now,
            // and is retired if it could not be put back.
            if !reset_done(&mut sandbox) {
                retired.push(sandbox);
                return None;
            }
            return Some(sandbox);
        }
        if self.0.len() >= KEPT_OWNERS {
            retired.push(self.0.remove(0).0);
        }
        None
    }

    /// Keeps `sandbox` as the most recently used, then retires the least
    /// recently used others while all of them hold more than `bound`.
    /// Returns the retired.
    pub(super) fn keep(
        &mut self,
        sandbox: Box<Sandbox>,
        memory: usize,
        bound: usize,
    ) -> Vec<Box<Sandbox>> {
        self.0.push((sandbox, memory));
        let mut retired = Vec::new();
        while self.0.len() > 1
            && (self.0.len() > KEPT_OWNERS || self.0.iter().map(|(_, m)| m).sum::<usize>() > bound)
        {
            retired.push(self.0.remove(0).0);
        }
        retired
    }

    /// Finishes the resets still to be done (see [`Sandbox::finish_reset`]),
    /// moving to `retired` the isolates that could not be put back.
    pub(super) fn finish_resets(&mut self, retired: &mut Vec<Box<Sandbox>>) {
        let mut i = 0;
        while i < self.0.len() {
            if reset_done(&mut self.0[i].0) {
                i += 1;
            } else {
                retired.push(self.0.remove(i).0);
            }
        }
    }

    /// Puts back an isolate taken for a call that did not run: it keeps
    /// its place as the most recently used.
    pub(super) fn put_back(&mut self, sandbox: Box<Sandbox>) {
        self.0.push((sandbox, 0));
    }
}

/// Finishes `sandbox`'s reset if it is still to be done (see
/// [`Sandbox::finish_reset`]); false when it could not be put back.
fn reset_done(sandbox: &mut Sandbox) -> bool {
    if !sandbox.reset_pending() {
        return true;
    }
    sandbox.with_entered(Sandbox::finish_reset);
    sandbox.reusable()
}

/// How long an isolate thread waits for work before it collects the
/// garbage of the isolates it keeps.
pub(super) const IDLE_COLLECT_AFTER: Duration = Duration::from_secs(1);

impl IsolateThread<'_> {
    /// A full garbage collection in each isolate this thread keeps.
    fn collect_garbage(&mut self) {
        collect_garbage(self.all_kept());
    }

    /// The isolates this thread keeps between calls.
    fn all_kept(&mut self) -> impl Iterator<Item = &mut Sandbox> {
        [self.spare.as_deref_mut(), self.python.as_deref_mut()]
            .into_iter()
            .flatten()
            .chain(self.kept.iter_mut())
    }

    /// Publishes the heap figures of this thread's live isolates.
    fn record_heap(&mut self, id: usize) {
        let sum = heap_figures(self.all_kept());
        if let Some(slot) = self.shared.heap.get(id) {
            for (a, v) in slot.iter().zip(sum) {
                a.store(v, Ordering::Relaxed);
            }
        }
    }

    fn new_sandbox(&self, slot: Slot) -> Option<Box<Sandbox>> {
        match self.create(slot) {
            Ok(sb) => Some(sb),
            Err(e) => {
                tracing::error!(error = %e, "could not create an isolate");
                None
            }
        }
    }

    fn create(&self, slot: Slot) -> Result<Box<Sandbox>, super::js::InitError> {
        let mut sandbox = new_isolate(&self.shared.host, slot)?;
        if slot.policy().python {
            let host = &self.shared.host;
            let rt = &self.rt;
            let boot = |sb: &mut Sandbox| {
                sb.with_entered(|sb| {
                    rt.block_on(
                        sb.boot_python(&host.python_packages, host.python_snapshot.as_deref()),
                    )
                })
            };
            if let Err(e) = boot(&mut sandbox) {
                // A kept snapshot that did not restore is forgotten: one more
                // try, on a fresh isolate, starts CPython anew.
                tracing::warn!(error = ?e, "a Python interpreter did not load; trying once more");
                sandbox = Box::new(Sandbox::new(host)?);
                boot(&mut sandbox).map_err(|e| {
                    super::js::InitError::Python(e.describe(Duration::ZERO, None).message)
                })?;
            }
        }
        self.shared.isolates_created.fetch_add(1, Ordering::Relaxed);
        Ok(sandbox)
    }

    /// Runs one execution; returns the report and any isolate to drop
    /// afterwards.
    fn run(&mut self, queued: &Queued) -> (Report, Option<Box<Sandbox>>) {
        let execution = &queued.execution;
        let Placement::Thread(slot) = placement(execution.isolation, &execution.task) else {
            let message = "process isolation does not run on isolate threads";
            return (Report::failed(internal(message)), None);
        };
        if slot == Slot::Frozen {
            self.frozen_wanted = true;
        }
        if slot == Slot::Python {
            self.python_wanted = true;
        }
        // The isolate first: making one is the host's work (a Python
        // interpreter's first start takes seconds), not the caller's.
        let mut sandbox = match self.take(slot, &execution.owner) {
            Ok(sandbox) => sandbox,
            Err(e) => return (Report::failed(e), None),
        };
        // The deadline covers everything from here on, compiling included.
        let started = Instant::now();
        let deadline = started + execution.timeout;
        let stop = || queued.cancel.is_cancelled() || queued.reply.is_closed();
        let code = match prepare(self.shared, execution, &stop, deadline) {
            Ok(code) => code,
            Err(e) => {
                // Unused: kept for the next execution of its slot.
                self.put_back(slot, sandbox);
                return (Report::failed(e), None);
            }
        };
        let (shared, rt, clock) = (self.shared, &self.rt, self.cpu_clock);
        let gone = closed(&queued.reply);
        let input = CallInput {
            execution,
            cancel: &queued.cancel,
            code: &code,
            started,
            deadline,
            slot,
            hangup: None,
        };
        let (mut report, memory_used, _) = sandbox
            .with_entered(|sandbox| rt.block_on(call_in(shared, clock, sandbox, input, gone)));
        report.queue_wait = started.saturating_duration_since(queued.queued_at);
        let keep = slot.policy().keeps(
            sandbox.reusable(),
            sandbox.module_count(),
            memory_used,
            self.shared.limits.memory_limit_bytes,
        );
        // Kept isolates of several owners share the bound one kept isolate
        // has: the least recently used go first.
        let bound = self.shared.limits.memory_limit_bytes / KEPT_SHARE;
        let Some(kept) = self.kept.of(slot).filter(|_| keep) else {
            return (report, Some(sandbox));
        };
        let retired = kept.keep(sandbox, memory_used, bound);
        self.retired.extend(retired);
        (report, None)
    }

    /// Keeps an isolate that ran nothing for the next execution of `slot`.
    fn put_back(&mut self, slot: Slot, sandbox: Box<Sandbox>) {
        if let Some(kept) = self.kept.of(slot) {
            kept.put_back(sandbox);
            return;
        }
        let place = match slot {
            Slot::Python => &mut self.python,
            _ => &mut self.spare,
        };
        *place = Some(sandbox);
    }

    /// The isolate of `slot`: the one kept for it, or a new one. A kept
    /// isolate that ran another owner's code is retired instead, so no
    /// state ever passes between owners (tenants).
    fn take(&mut self, slot: Slot, owner: &Option<Arc<str>>) -> Result<Box<Sandbox>, ExecError> {
        let kept = match (self.kept.of(slot), slot) {
            (Some(kept), _) => kept.take(owner, &mut self.retired),
            (None, Slot::Python) => self.python.take(),
            (None, _) => self.spare.take(),
        };
        let mut sandbox = match kept {
            Some(sandbox) => sandbox,
            None => self
                .create(slot)
                .map_err(|e| internal(&format!("could not create an isolate: {e}")))?,
        };
        if slot.policy().kept {
            sandbox.owner = Some(owner.clone());
        }
        Ok(sandbox)
    }
}

/// The execution's code, ready for an isolate: a call's script compiled
/// (through the cache), or a program's URL. `stop` says the caller went
/// away.
pub(super) fn prepare(
    shared: &Shared,
    execution: &Execution,
    stop: &dyn Fn() -> bool,
    deadline: Instant,
) -> Result<Code, ExecError> {
    match &execution.task {
        Task::Call { script, .. } => {
            let cache = &shared.host.cache;
            let module = cache.get_shared(script, deadline, stop)?;
            // A frozen call of an exported function makes its instance
            // through the module's factory, once there is one.
            let frozen =
                placement(execution.isolation, &execution.task) == Placement::Thread(Slot::Frozen);
            if frozen && execution.entry == Entry::Function {
                cache.factory(&module, deadline, stop)?;
            }
            Ok(Code::Call(module))
        }
        Task::Program { path, source } if execution.task.is_python() => {
            python_program(path, source.clone(), execution.scope.as_deref())
        }
        Task::Program { path, source } => match ModuleSpecifier::from_file_path(path) {
            Ok(url) => Ok(Code::Program(url, source.clone())),
            Err(()) => Err(internal(&format!(
                "{} is not an absolute path",
                path.display()
            ))),
        },
    }
}

/// One call's inputs besides its isolate.
pub(super) struct CallInput<'a> {
    pub execution: &'a Execution,
    pub cancel: &'a Arc<CancelFlag>,
    pub code: &'a Code,
    /// When the call began: its deadline runs from then, and so do its
    /// `performance.now()` and the watchdog's first look (one clock read).
    pub started: Instant,
    pub deadline: Instant,
    pub slot: Slot,
    /// The caller's socket, watched for a hang-up (see [`Watch::hangup`]).
    pub hangup: Option<Arc<OwnedFd>>,
}

/// Runs a call in `sandbox`, whose isolate the caller has entered, under
/// the watchdog until it settles, its deadline passes or `gone` resolves
/// (its caller went away). Returns the report (its queue wait not yet
/// filled in), the memory the isolate holds afterwards (0 for a fresh
/// one, which is not kept anyway) and when the call ended.
pub(super) async fn call_in(
    shared: &Shared,
    cpu_clock: Option<ThreadCpuClock>,
    sandbox: &mut Sandbox,
    input: CallInput<'_>,
    gone: impl Future<Output = ()>,
) -> (Report, usize, Instant) {
    let CallInput {
        execution,
        cancel,
        code,
        started,
        deadline,
        slot,
        hangup,
    } = input;
    let limits = &shared.limits;
    let convert = ConvertLimits {
        max_bytes: limits.max_result_bytes,
        max_depth: limits.max_json_depth,
    };
    let sink = match code {
        Code::Call(_) => LogSink::new(limits.max_log_entries, limits.max_log_bytes),
        Code::Program(..) | Code::Python { .. } => LogSink::streams(PROGRAM_STREAM_BYTES),
    };
    let scope = execution
        .scope
        .as_deref()
        .map(|dir| shared.host.scoped(dir));
    let watchdog = &shared.watchdog;
    let warm = slot == Slot::Warm;
    sandbox.begin_call(CallSetup {
        logs: sink,
        started,
        env: execution.env.clone(),
        deadline,
        cancel: Some(cancel.clone()),
        write_budget: execution
            .write_budget
            .map_or(limits.max_write_bytes, |b| b.min(limits.max_write_bytes)),
        stdin: execution.stdin.clone(),
        scope,
        net: execution.net.clone(),
        memory_limit: execution.memory_limit,
    });
    let record = sandbox.kill_record();
    // A tenant's calls are counted in its usage: their CPU time is read
    // (two system calls), others' is not.
    let cpu_before = cpu_clock
        .filter(|_| execution.owner.is_some())
        .map(|c| c.now());
    let ticket = watchdog.arm(
        Watch {
            isolate: sandbox.isolate_handle(),
            record: record.clone(),
            deadline,
            cpu: execution
                .cpu_limit
                .zip(cpu_clock)
                .map(|(budget, clock)| (clock, clock.now(), budget)),
            cancel: Some(cancel.clone()),
            hangup,
        },
        started,
    );
    // Disarmed however the call ends, a dropped future included.
    let armed = Armed {
        watchdog,
        ticket: Some(ticket),
    };
    let outcome = {
        let run = async {
            match (code, &execution.task) {
                (
                    Code::Call(module),
                    Task::Call {
                        fn_name, payload, ..
                    },
                ) => {
                    sandbox
                        .call(module, fn_name, payload, convert, warm, execution.entry)
                        .await
                }
                (Code::Program(url, source), _) => sandbox
                    .run_program(
                        url,
                        source.clone(),
                        execution.language == super::types::Language::JavaScript,
                    )
                    .await
                    .map(|()| String::new()),
                (
                    Code::Python {
                        code,
                        filename,
                        files,
                        root,
                    },
                    _,
                ) => sandbox
                    .run_python(code, filename, files.clone(), root.as_deref())
                    .await
                    .map(|()| String::new()),
                _ => Err(internal("the task and its code disagree")),
            }
        };
        tokio::select! {
            r = run => r,
            _ = tokio::time::sleep_until(deadline.into()) => {
                Err(stopped(&record, KillReason::Timeout))
            }
            () = gone => Err(stopped(&record, KillReason::Cancelled)),
        }
    };
    drop(armed);
    let ended = Instant::now();
    let cpu = cpu_clock
        .zip(cpu_before)
        .map_or(Duration::ZERO, |(c, before)| c.now().saturating_sub(before));
    let (logs, logs_truncated) = sandbox.take_logs();
    let memory = if execution.owner.is_some() || execution.memory_limit.is_some() {
        // Counted in a tenant's usage, or held to a limit of its own.
        sandbox.memory_used()
    } else if slot.policy().kept {
        // Only for the keep decision: a bound within an eighth of it.
        let bound = limits.memory_limit_bytes / slot.policy().max_heap_share.max(1);
        sandbox.memory_at_most(ended - started, bound / 8)
    } else {
        0
    };
    let mut outcome = outcome.map_err(|e| name_missing_export(e, execution));
    // A call held to less memory than the isolate's limit: its buffers
    // were refused past it as they came; its heap is measured now, and a
    // call over it fails and leaves nothing.
    if let Some(limit) = execution.memory_limit
        && memory > limit
        && !matches!(outcome, Err(ExecError::MemoryLimit))
    {
        outcome = Err(ExecError::MemoryLimit);
        sandbox.retire();
    }
    let report = Report {
        outcome,
        logs,
        logs_truncated,
        queue_wait: Duration::ZERO,
        cpu,
        memory: memory as u64,
    };
    (report, memory, ended)
}

/// Keeps a call's watch armed until dropped.
struct Armed<'a> {
    watchdog: &'a Watchdog,
    ticket: Option<super::watchdog::Ticket>,
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.watchdog.disarm(ticket);
        }
    }
}

/// A missing export named as the caller asked for it, with whether the
/// script declares it without exporting it.
fn name_missing_export(error: ExecError, execution: &Execution) -> ExecError {
    match (error, &execution.task) {
        (
            ExecError::FnNotFound { exports, .. },
            Task::Call {
                fn_name, script, ..
            },
        ) => ExecError::FnNotFound {
            name: fn_name.clone(),
            declared: super::types::declares(script, fn_name),
            exports,
        },
        (other, _) => other,
    }
}

fn internal(message: &str) -> ExecError {
    ExecError::Internal {
        message: message.into(),
    }
}

/// An execution's code, ready for the sandbox.
pub(super) enum Code {
    Call(Arc<Module>),
    /// The main module's URL, and its text when it is not on disk.
    Program(ModuleSpecifier, Option<Arc<str>>),
    /// A Python program: its text, its file name, and the files of the
    /// directory it is confined to (path, bytes), copied into the
    /// interpreter's file system.
    Python {
        code: Arc<str>,
        filename: String,
        files: Vec<(String, Vec<u8>)>,
        /// The directory whose changed files are saved back (a scope's).
        root: Option<String>,
    },
}

/// Largest Python program read from disk.
const PYTHON_SOURCE_BYTES: u64 = 10 * 1024 * 1024;
/// What of a confined program's directory is copied into its interpreter:
/// at most this many files, this many bytes in all.
const PYTHON_MIRROR_FILES: usize = 1000;
const PYTHON_MIRROR_BYTES: u64 = 64 * 1024 * 1024;

/// A Python program's code: its source, or its file read from disk; with a
/// scope, the scope directory's files (the program's own included).
fn python_program(
    path: &std::path::Path,
    source: Option<Arc<str>>,
    scope: Option<&std::path::Path>,
) -> Result<Code, ExecError> {
    use std::io::Read;
    let code: Arc<str> = match source {
        Some(code) => code,
        None => {
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(PYTHON_SOURCE_BYTES).read_to_string(&mut text))
                .map_err(|e| internal(&format!("cannot read {}: {e}", path.display())))?;
            text.into()
        }
    };
    let mut files = match scope {
        Some(dir) => {
            super::js::read_tree(dir, Some(path), PYTHON_MIRROR_FILES, PYTHON_MIRROR_BYTES)
        }
        None => Vec::new(),
    };
    files.push((
        path.to_string_lossy().into_owned(),
        code.as_bytes().to_vec(),
    ));
    Ok(Code::Python {
        code,
        filename: path.to_string_lossy().into_owned(),
        files,
        root: scope.map(|d| d.to_string_lossy().into_owned()),
    })
}

/// Resolves when the caller has dropped its end of the reply channel.
async fn closed(reply: &oneshot::Sender<Report>) {
    // `Sender::closed` needs `&mut`; poll the flag instead, at a pace that
    // costs nothing next to a call.
    while !reply.is_closed() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records `reason` (unless another was recorded first) and reports the
/// reason that stands.
fn stopped(record: &KillRecord, reason: KillReason) -> ExecError {
    record.mark(reason);
    record.reason().unwrap_or(reason).error(0)
}
