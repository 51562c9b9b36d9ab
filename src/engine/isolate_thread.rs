//! One isolate thread: a current-thread tokio runtime and the isolates it
//! owns. It keeps one fresh isolate ready ahead of time for clean-state
//! calls and one warm isolate for `"none"` calls; any isolate that was
//! killed, or failed mid-call, is dropped and replaced.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use deno_core::ModuleSpecifier;
use tokio::sync::oneshot;

use super::js::ext::LogSink;
use super::js::{CallSetup, ConvertLimits, Sandbox};
use super::pool::{
    FROZEN_MAX_MODULES, Next, PROGRAM_STREAM_BYTES, Queued, Shared, WARM_MAX_HEAP_FRACTION,
    WARM_MAX_MODULES,
};
use super::transpile::Module;
use super::types::{ExecError, Isolation, Report, Task};
use super::watchdog::{KillReason, ThreadCpuClock, Watch};

/// The isolates one thread owns.
struct IsolateThread<'a> {
    shared: &'a Shared,
    rt: tokio::runtime::Runtime,
    cpu_clock: Option<ThreadCpuClock>,
    /// A fresh isolate, made before it is needed.
    spare: Option<Sandbox>,
    /// The isolate `"none"` calls share.
    warm: Option<Sandbox>,
    /// The isolate `"frozen"` calls share, once one came to this thread.
    frozen: Option<Sandbox>,
    /// Whether this thread has served a `"frozen"` call: from then on it
    /// keeps a frozen isolate ready.
    frozen_wanted: bool,
}

/// Which of a thread's isolates a job runs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A fresh isolate, dropped afterwards.
    Spare,
    /// The warm isolate of `"none"` calls.
    Warm,
    /// The frozen isolate of `"frozen"` calls.
    Frozen,
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
        warm: None,
        frozen: None,
        frozen_wanted: false,
    };
    loop {
        if thread.spare.is_none() {
            thread.spare = thread.new_sandbox(Slot::Spare);
        }
        if thread.frozen_wanted && thread.frozen.is_none() {
            thread.frozen = thread.new_sandbox(Slot::Frozen);
        }
        // Once per job, with the isolates this thread keeps while it waits.
        thread.record_heap(id);
        let queued = match shared.next_job_within(id, Some(IDLE_COLLECT_AFTER)) {
            Next::Job(q) => *q,
            Next::Closed => break,
            Next::Idle => {
                // Idle a while: what the last calls left as garbage in the
                // kept isolates is collected now (an idle isolate never
                // collects by itself), then the thread waits for as long as
                // it takes.
                thread.collect_garbage();
                thread.record_heap(id);
                match shared.next_job(id) {
                    Some(q) => q,
                    None => break,
                }
            }
        };
        if queued.reply.is_closed() || queued.cancel.is_cancelled() {
            shared.finish_job(queued.key());
            continue;
        }
        let (report, used) = thread.run(&queued);
        shared.finish_job(queued.key());
        let _ = queued.reply.send(report);
        // Dropping an isolate takes time: do it after the caller has its answer.
        drop(used);
    }
}

/// How long an isolate thread waits for work before it collects the
/// garbage of the isolates it keeps.
const IDLE_COLLECT_AFTER: Duration = Duration::from_secs(1);

impl IsolateThread<'_> {
    /// A full garbage collection in each isolate this thread keeps.
    fn collect_garbage(&mut self) {
        for sandbox in self.kept() {
            sandbox.with_entered(|sb| sb.collect_garbage());
        }
    }

    /// The isolates this thread keeps between jobs.
    fn kept(&mut self) -> impl Iterator<Item = &mut Sandbox> {
        [
            self.warm.as_mut(),
            self.spare.as_mut(),
            self.frozen.as_mut(),
        ]
        .into_iter()
        .flatten()
    }

    /// Publishes the heap figures of this thread's live isolates.
    fn record_heap(&mut self, id: usize) {
        let mut sum = [0u64; 3];
        for sandbox in self.kept() {
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

    fn new_sandbox(&self, slot: Slot) -> Option<Sandbox> {
        match self.create(slot) {
            Ok(sb) => Some(sb),
            Err(e) => {
                tracing::error!(error = %e, "could not create an isolate");
                None
            }
        }
    }

    fn create(&self, slot: Slot) -> Result<Sandbox, super::js::InitError> {
        let sandbox = match slot {
            Slot::Frozen => Sandbox::frozen(&self.shared.host),
            Slot::Spare | Slot::Warm => Sandbox::new(&self.shared.host),
        }?;
        self.shared.isolates_created.fetch_add(1, Ordering::Relaxed);
        Ok(sandbox)
    }

    /// Runs one job; returns the report and any isolate to drop afterwards.
    fn run(&mut self, queued: &Queued) -> (Report, Option<Sandbox>) {
        let job = &queued.job;
        let slot = match job.isolation {
            Isolation::Isolate => Slot::Spare,
            Isolation::None => Slot::Warm,
            Isolation::Frozen => Slot::Frozen,
            Isolation::Process => {
                return (
                    Report::failed(ExecError::Internal {
                        message: "process isolation does not run on isolate threads".into(),
                    }),
                    None,
                );
            }
        };
        // Programs always start clean.
        let slot = if matches!(job.task, Task::Call { .. }) {
            slot
        } else {
            Slot::Spare
        };
        let warm = slot == Slot::Warm;
        if slot == Slot::Frozen {
            self.frozen_wanted = true;
        }
        // The deadline covers everything from here on, compiling included.
        let started = Instant::now();
        let deadline = started + job.timeout;
        let stop = || queued.cancel.is_cancelled() || queued.reply.is_closed();
        let work = match &job.task {
            Task::Call { script, .. } => {
                match self.shared.host.cache.get(script, deadline, &stop) {
                    Ok(m) => Work::Call(m),
                    Err(e) => return (Report::failed(ExecError::from(e)), None),
                }
            }
            Task::Program { path, source } => match ModuleSpecifier::from_file_path(path) {
                Ok(url) => Work::Program(url, source.clone()),
                Err(()) => {
                    return (
                        Report::failed(ExecError::Internal {
                            message: format!("{} is not an absolute path", path.display()),
                        }),
                        None,
                    );
                }
            },
        };
        let kept = match slot {
            Slot::Spare => self.spare.take(),
            Slot::Warm => self.warm.take(),
            Slot::Frozen => self.frozen.take(),
        };
        let mut sandbox = match kept {
            Some(sb) => sb,
            None => match self.create(slot) {
                Ok(sb) => sb,
                Err(e) => {
                    return (
                        Report::failed(ExecError::Internal {
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
            Work::Program(..) => LogSink::streams(PROGRAM_STREAM_BYTES),
        };
        let scope = job.scope.as_deref().map(|dir| self.shared.host.scoped(dir));
        let (shared, rt, cpu_clock) = (self.shared, &self.rt, self.cpu_clock);
        let (report, memory_used) = sandbox.with_entered(|sandbox| {
            sandbox.begin_call(CallSetup {
                logs: sink,
                env: job.env.clone(),
                deadline,
                cancel: Some(queued.cancel.clone()),
                write_budget: job
                    .write_budget
                    .map_or(limits.max_write_bytes, |b| b.min(limits.max_write_bytes)),
                stdin: job.stdin.clone(),
                scope: scope.clone(),
            });
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
                        (Work::Program(url, source), _) => sandbox
                            .run_program(url, source.clone())
                            .await
                            .map(|()| String::new()),
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
            });
            let (logs, logs_truncated) = sandbox.take_logs();
            let report = Report {
                outcome,
                logs,
                logs_truncated,
                queue_wait: queued.queued_at.elapsed().saturating_sub(started.elapsed()),
            };
            (
                report,
                if slot == Slot::Spare {
                    0
                } else {
                    sandbox.memory_used()
                },
            )
        });

        let max_modules = match slot {
            Slot::Spare => 0,
            Slot::Warm => WARM_MAX_MODULES,
            Slot::Frozen => FROZEN_MAX_MODULES,
        };
        let keep = sandbox.reusable()
            && sandbox.module_count() < max_modules
            && memory_used < limits.memory_limit_bytes / WARM_MAX_HEAP_FRACTION;
        match slot {
            Slot::Warm if keep => self.warm = Some(sandbox),
            Slot::Frozen if keep => self.frozen = Some(sandbox),
            _ => return (report, Some(sandbox)),
        }
        (report, None)
    }
}

/// A job's code, ready for the sandbox.
enum Work {
    Call(Arc<Module>),
    /// The main module's URL, and its text when it is not on disk.
    Program(ModuleSpecifier, Option<std::sync::Arc<str>>),
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
fn stopped(record: &super::watchdog::KillRecord, reason: KillReason) -> ExecError {
    record.mark(reason);
    record.reason().unwrap_or(reason).error(0)
}
