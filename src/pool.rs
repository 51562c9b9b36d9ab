//! The isolate pool: a bounded queue in front of N dedicated OS threads, each
//! owning its isolates. A worker keeps one fresh isolate ready ahead of time
//! for clean-state calls and one warm isolate for `"none"` calls; any isolate
//! that was killed, or failed mid-call, is dropped and replaced.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::config::Limits;
use deno_core::ModuleSpecifier;

use crate::compile::Compiler;
use crate::exec::{CallJob, ExecError, Isolation, Report, Task};
use crate::js::ops::LogSink;
use crate::js::{ConvertLimits, Sandbox, SandboxHost};
use crate::permissions::Permissions;
use crate::resolve::Resolver;
use crate::transpile::{Module, TranspileCache, TranspileError};
pub use crate::watchdog::CancelFlag;
use crate::watchdog::{KillReason, ThreadCpuClock, Watch, Watchdog};

/// Stack size of an isolate thread: well above V8's own stack limit (about
/// 1 MiB), so runaway recursion is a catchable `RangeError`.
const WORKER_STACK: usize = 8 * 1024 * 1024;
/// A warm isolate is replaced after this many distinct modules…
const WARM_MAX_MODULES: usize = 64;
/// …or once its heap holds more than this share of the memory limit.
const WARM_MAX_HEAP_FRACTION: usize = 2;
/// Cap on a program's stdout, and separately its stderr.
pub const PROGRAM_STREAM_BYTES: usize = 10 * 1024 * 1024;
/// Budget of the shared transpile cache.
const TRANSPILE_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Settings of the pool.
#[derive(Clone)]
pub struct PoolOptions {
    pub size: usize,
    pub queue_size: usize,
    pub limits: Limits,
    pub resolver: Arc<Resolver>,
    pub permissions: Arc<Permissions>,
    /// Where scripts are parsed and transpiled.
    pub compiler: Arc<Compiler>,
}

/// Pool occupancy, as `/health` reports it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PoolStats {
    pub size: usize,
    pub busy: usize,
    pub idle: usize,
    pub queued: usize,
}

/// The queue is full: the caller should retry later.
#[derive(Debug)]
pub struct Overloaded;

struct Queued {
    job: CallJob,
    reply: oneshot::Sender<Report>,
    cancel: Arc<CancelFlag>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Queued>,
    /// Jobs taken by a worker and not finished yet.
    running: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    queue_size: usize,
    size: usize,
    limits: Limits,
    watchdog: Watchdog,
    host: SandboxHost,
    /// Per worker: heap total, used and external bytes of its isolates,
    /// as of its last job.
    heap: Vec<[AtomicU64; 3]>,
}

/// Handle to the pool; cheap to share behind an `Arc`.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// Starts the watchdog and `options.size` isolate threads.
    pub fn start(options: PoolOptions) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            queue_size: options.queue_size,
            size: options.size,
            limits: options.limits.clone(),
            watchdog: Watchdog::start()?,
            host: SandboxHost {
                heap_limit: options.limits.memory_limit_bytes,
                resolver: options.resolver,
                cache: Arc::new(TranspileCache::new(TRANSPILE_CACHE_BYTES, options.compiler)),
                permissions: options.permissions,
            },
            heap: (0..options.size).map(|_| Default::default()).collect(),
        });
        let mut threads = Vec::with_capacity(options.size);
        for id in 0..options.size {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("isoexec-isolate-{id}"))
                    .stack_size(WORKER_STACK)
                    .spawn(move || worker_main(&shared, id))?,
            );
        }
        Ok(Pool {
            shared,
            threads: Mutex::new(threads),
        })
    }

    /// Queues a call. Fails at once when the queue is full.
    pub fn submit(
        &self,
        job: CallJob,
        cancel: Arc<CancelFlag>,
    ) -> Result<oneshot::Receiver<Report>, Overloaded> {
        let (reply, rx) = oneshot::channel();
        let mut queue = lock(&self.shared.queue);
        // Workers not running a job take one at once (even while they are
        // still preparing a fresh isolate); beyond those, QUEUE_SIZE wait.
        let free_workers = self.shared.size.saturating_sub(queue.running);
        if queue.closed || queue.jobs.len() >= self.shared.queue_size + free_workers {
            return Err(Overloaded);
        }
        queue.jobs.push_back(Queued { job, reply, cancel });
        drop(queue);
        self.shared.ready.notify_one();
        Ok(rx)
    }

    /// The transpile cache the isolate threads share.
    pub fn transpile_cache(&self) -> Arc<TranspileCache> {
        self.shared.host.cache.clone()
    }

    pub fn stats(&self) -> PoolStats {
        let queue = lock(&self.shared.queue);
        let busy = queue.running.min(self.shared.size);
        let queued = queue.jobs.len();
        drop(queue);
        PoolStats {
            size: self.shared.size,
            busy,
            idle: self.shared.size - busy,
            queued,
        }
    }

    /// Heap bytes of all isolates: (total, used, external), as of each
    /// worker's last job.
    pub fn heap(&self) -> [u64; 3] {
        let mut sum = [0u64; 3];
        for worker in &self.shared.heap {
            for (s, v) in sum.iter_mut().zip(worker) {
                *s += v.load(Ordering::Relaxed);
            }
        }
        sum
    }

    /// Wakes the watchdog so it notices a cancelled call now.
    pub fn poke_watchdog(&self) {
        self.shared.watchdog.poke();
    }

    /// Stops taking jobs, lets the workers finish what is queued, and waits
    /// for them up to `grace`.
    pub fn shutdown(&self, grace: Duration) {
        lock(&self.shared.queue).closed = true;
        self.shared.ready.notify_all();
        let deadline = Instant::now() + grace;
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        self.shared.watchdog.shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Blocks until a job is available; `None` once the pool is closed and
    /// drained.
    fn next_job(&self) -> Option<Queued> {
        let mut queue = lock(&self.queue);
        loop {
            if let Some(q) = queue.jobs.pop_front() {
                queue.running += 1;
                return Some(q);
            }
            if queue.closed {
                return None;
            }
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn finish_job(&self) {
        let mut queue = lock(&self.queue);
        queue.running = queue.running.saturating_sub(1);
    }
}

/// The isolates one worker thread owns.
struct Worker<'a> {
    shared: &'a Shared,
    rt: tokio::runtime::Runtime,
    cpu_clock: Option<ThreadCpuClock>,
    /// A fresh isolate, made before it is needed.
    spare: Option<Sandbox>,
    /// The isolate `"none"` calls share.
    warm: Option<Sandbox>,
}

fn worker_main(shared: &Shared, id: usize) {
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
    let mut worker = Worker {
        shared,
        rt,
        cpu_clock: ThreadCpuClock::current(),
        spare: None,
        warm: None,
    };
    loop {
        if worker.spare.is_none() {
            worker.spare = worker.new_sandbox();
        }
        // Once per job, with the isolates this worker keeps while it waits.
        worker.record_heap(id);
        let Some(queued) = shared.next_job() else {
            break;
        };
        if queued.reply.is_closed() || queued.cancel.is_cancelled() {
            shared.finish_job();
            continue;
        }
        let (report, used) = worker.run(&queued);
        shared.finish_job();
        let _ = queued.reply.send(report);
        // Dropping an isolate takes time: do it after the caller has its answer.
        drop(used);
    }
}

impl Worker<'_> {
    /// Publishes the heap figures of this worker's live isolates.
    fn record_heap(&mut self, id: usize) {
        let mut sum = [0u64; 3];
        for sandbox in [self.warm.as_mut(), self.spare.as_mut()]
            .into_iter()
            .flatten()
        {
            let figures = sandbox.with_entered(|sb| sb.heap_figures());
            for (s, v) in sum.iter_mut().zip(figures) {
                *s += v;
            }
        }
        if let Some(slot) = self.shared.heap.get(id) {
            for (a, v) in slot.iter().zip(sum) {
                a.store(v, Ordering::Relaxed);
            }
        }
    }

    fn new_sandbox(&self) -> Option<Sandbox> {
        match Sandbox::new(&self.shared.host) {
            Ok(sb) => Some(sb),
            Err(e) => {
                tracing::error!(error = %e, "could not create an isolate");
                None
            }
        }
    }

    /// Runs one job; returns the report and any isolate to drop afterwards.
    fn run(&mut self, queued: &Queued) -> (Report, Option<Sandbox>) {
        let job = &queued.job;
        let warm = match job.isolation {
            Isolation::Isolate => false,
            Isolation::Warm => true,
            Isolation::Process => {
                return (
                    failed(ExecError::Internal {
                        message: "process isolation does not run on isolate threads".into(),
                    }),
                    None,
                );
            }
        };
        // Programs always start clean.
        let warm = warm && matches!(job.task, Task::Call { .. });
        // The deadline covers everything from here on, compiling included.
        let deadline = Instant::now() + job.timeout;
        let stop = || queued.cancel.is_cancelled() || queued.reply.is_closed();
        let work = match &job.task {
            Task::Call { script, .. } => {
                match self.shared.host.cache.get(script, deadline, &stop) {
                    Ok(m) => Work::Call(m),
                    Err(e) => {
                        let error = match e {
                            TranspileError::Syntax(e) => ExecError::Syntax {
                                message: e.message,
                                line: e.line,
                                column: e.column,
                            },
                            TranspileError::Timeout => ExecError::Timeout,
                            TranspileError::Cancelled => ExecError::Cancelled,
                            TranspileError::Internal(message) => ExecError::Internal { message },
                        };
                        return (failed(error), None);
                    }
                }
            }
            Task::Program { path } => match ModuleSpecifier::from_file_path(path) {
                Ok(url) => Work::Program(url),
                Err(()) => {
                    return (
                        failed(ExecError::Internal {
                            message: format!("{} is not an absolute path", path.display()),
                        }),
                        None,
                    );
                }
            },
        };
        let slot = if warm {
            &mut self.warm
        } else {
            &mut self.spare
        };
        let mut sandbox = match slot.take() {
            Some(sb) => sb,
            None => match Sandbox::new(&self.shared.host) {
                Ok(sb) => sb,
                Err(e) => {
                    return (
                        failed(ExecError::Internal {
                            message: format!("could not create an isolate: {e}"),
                        }),
                        None,
                    );
                }
            },
        };

        let limits = &self.shared.limits;
        let convert = ConvertLimits {
            max_bytes: limits.max_result_bytes,
            max_depth: limits.max_json_depth,
        };
        let sink = match &work {
            Work::Call(_) => LogSink::new(limits.max_log_entries, limits.max_log_bytes),
            Work::Program(_) => LogSink::streams(PROGRAM_STREAM_BYTES),
        };
        let (shared, rt, cpu_clock) = (self.shared, &self.rt, self.cpu_clock);
        let (report, heap_used) = sandbox.with_entered(|sandbox| {
            sandbox.begin_call(
                sink,
                job.env.clone(),
                deadline,
                Some(queued.cancel.clone()),
                limits.max_write_bytes,
            );
            let record = sandbox.kill_record();
            let ticket = shared.watchdog.arm(Watch {
                isolate: sandbox.isolate_handle(),
                record: record.clone(),
                deadline,
                cpu: job
                    .cpu_limit
                    .zip(cpu_clock)
                    .map(|(budget, clock)| (clock, clock.now(), budget)),
                cancel: Some(queued.cancel.clone()),
            });
            let outcome = rt.block_on(async {
                let run = async {
                    match (&work, &job.task) {
                        (
                            Work::Call(module),
                            Task::Call {
                                fn_name, payload, ..
                            },
                        ) => sandbox.call(module, fn_name, payload, convert, warm).await,
                        (Work::Program(url), _) => {
                            sandbox.run_program(url).await.map(|()| String::new())
                        }
                        _ => Err(ExecError::Internal {
                            message: "job and work disagree".into(),
                        }),
                    }
                };
                tokio::select! {
                    r = run => r,
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        Err(stopped(&record, KillReason::Timeout))
                    }
                    _ = closed(&queued.reply) => Err(stopped(&record, KillReason::Cancelled)),
                }
            });
            shared.watchdog.disarm(ticket);

            let outcome = outcome.map_err(|e| match (e, &job.task) {
                (ExecError::FnNotFound { .. }, Task::Call { fn_name, .. }) => {
                    ExecError::FnNotFound {
                        name: fn_name.clone(),
                    }
                }
                (other, _) => other,
            });
            let (logs, logs_truncated) = sandbox.take_logs();
            let report = Report {
                outcome,
                logs,
                logs_truncated,
            };
            (
                report,
                if warm {
                    sandbox.heap_figures()[1] as usize
                } else {
                    0
                },
            )
        });

        let keep = warm
            && sandbox.reusable()
            && sandbox.module_count() < WARM_MAX_MODULES
            && heap_used < limits.memory_limit_bytes / WARM_MAX_HEAP_FRACTION;
        if keep {
            self.warm = Some(sandbox);
            (report, None)
        } else {
            (report, Some(sandbox))
        }
    }
}

/// A job's code, ready for the sandbox.
enum Work {
    Call(Arc<Module>),
    Program(ModuleSpecifier),
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
fn stopped(record: &crate::watchdog::KillRecord, reason: KillReason) -> ExecError {
    record.mark(reason);
    match record.reason().unwrap_or(reason) {
        KillReason::Timeout => ExecError::Timeout,
        KillReason::CpuLimit => ExecError::CpuLimit,
        KillReason::MemoryLimit => ExecError::MemoryLimit,
        KillReason::Cancelled => ExecError::Cancelled,
        KillReason::Exit => ExecError::Exit { code: 0 },
    }
}

fn failed(error: ExecError) -> Report {
    Report {
        outcome: Err(error),
        logs: Vec::new(),
        logs_truncated: false,
    }
}
