//! The isolate pool: a bounded queue in front of N dedicated OS threads
//! (see [`super::isolate_thread`]), each owning its isolates.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::compile::Compiler;
use super::isolate_thread;
use super::js::SandboxHost;
use super::permissions::Permissions;
use super::resolve::Resolver;
use super::transpile::TranspileCache;
use super::types::{Execution, Report};
pub use super::watchdog::CancelFlag;
use super::watchdog::Watchdog;
use crate::config::Limits;
use crate::sync::lock;

/// Stack size of an isolate thread: well above V8's own stack limit (about
/// 1 MiB), so runaway recursion is a catchable `RangeError`.
const THREAD_STACK: usize = 8 * 1024 * 1024;
/// A warm isolate is replaced after this many distinct modules…
pub(super) const WARM_MAX_MODULES: usize = 64;
/// A frozen isolate is replaced after this many module instances (each
/// call makes at least one, and a module map never shrinks), or past the
/// same heap share.
pub(super) const FROZEN_MAX_MODULES: usize = 500;
/// …or once its heap and ArrayBuffers hold more than this share of the
/// memory limit.
pub(super) const WARM_MAX_HEAP_FRACTION: usize = 2;
/// Cap on a program's stdout, and separately its stderr.
pub const PROGRAM_STREAM_BYTES: usize = 10 * 1024 * 1024;
/// Budget of the shared transpile cache.
const TRANSPILE_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What an isolate thread waiting for work is given.
pub(super) enum Next {
    Job(Box<Queued>),
    /// No job came within the time asked.
    Idle,
    /// The pool is shutting down.
    Closed,
}

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
    /// Module roots a scoped execution shares (tools, vendor).
    pub shared_roots: Vec<std::path::PathBuf>,
    /// Most isolate threads one script may hold at once.
    pub script_threads: usize,
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

/// An execution waiting for, or taken by, an isolate thread.
pub(super) struct Queued {
    pub job: Execution,
    /// Where the report goes; closed when the caller went away.
    pub reply: oneshot::Sender<Report>,
    pub cancel: Arc<CancelFlag>,
    /// When it was queued, for the queue-wait figure.
    pub queued_at: Instant,
    /// Which script it runs, for the per-script thread cap.
    key: u64,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Queued>,
    /// Executions taken by an isolate thread and not finished yet, by
    /// script: one script holds at most `script_threads`.
    running_by_key: std::collections::HashMap<u64, usize>,
    /// Threads waiting for a job, in the order they began to wait.
    idle: Vec<usize>,
    closed: bool,
}

impl Queue {
    /// Executions taken by an isolate thread and not finished yet.
    fn running(&self) -> usize {
        self.running_by_key.values().sum()
    }

    /// The thread that began to wait last, taken off the idle list: it
    /// is the one whose caches and isolates are warmest, and always waking
    /// the same one keeps the others asleep. Signal it with [`wake`] once
    /// the lock is released, so it does not wake only to wait for the lock.
    fn take_idle(&mut self) -> Option<usize> {
        self.idle.pop()
    }
}

/// Wakes the thread `take_idle` chose, if any. It stays in its wait until
/// signalled (or wakes spuriously and looks at the queue itself), so
/// signalling it after the lock is released loses nothing.
fn wake(wakers: &[Condvar], id: Option<usize>) {
    if let Some(cv) = id.and_then(|id| wakers.get(id)) {
        cv.notify_one();
    }
}

/// Whose share an execution counts against: its client's when known;
/// otherwise a cheap fingerprint of what it runs, its script (the first and
/// last 64 KiB and the length) or its program's path.
fn script_key(job: &Execution) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Some(client) = &job.client {
        client.hash(&mut h);
        return h.finish();
    }
    match &job.task {
        super::types::Task::Call { script, .. } => {
            let b = script.as_bytes();
            b.len().hash(&mut h);
            b[..b.len().min(65_536)].hash(&mut h);
            b[b.len().saturating_sub(65_536)..].hash(&mut h);
        }
        super::types::Task::Program { path, .. } => path.hash(&mut h),
    }
    h.finish()
}

impl Queued {
    pub fn key(&self) -> u64 {
        self.key
    }
}

/// What the pool's handle and its isolate threads share.
pub(super) struct Shared {
    /// Waiting executions and the count of running ones.
    queue: Mutex<Queue>,
    /// One per isolate thread, signalled when that thread should look at
    /// the queue (a job came, or the pool closes).
    wakers: Vec<Condvar>,
    /// Executions that may wait beyond those the threads are running.
    queue_size: usize,
    /// Number of isolate threads.
    size: usize,
    /// Most threads one script may hold at once: with more threads than
    /// cores, a script that hogs its threads (say, loops until its deadline)
    /// leaves the others to everyone else instead of queueing them.
    script_threads: usize,
    pub limits: Limits,
    /// Enforces deadlines, CPU budgets and cancellation from outside.
    pub watchdog: Watchdog,
    /// What every isolate is made with.
    pub host: SandboxHost,
    /// Per thread: heap total, used and external bytes of its isolates,
    /// as of its last job.
    pub heap: Vec<[AtomicU64; 3]>,
    /// Isolates made so far (fresh, warm and notebook ones).
    pub isolates_created: Arc<AtomicU64>,
    /// What live notebooks hold, against `NOTEBOOK_MEMORY_MB`.
    pub notebook_memory: Arc<super::notebook::NotebookMemory>,
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
            wakers: (0..options.size).map(|_| Condvar::new()).collect(),
            queue_size: options.queue_size,
            size: options.size,
            script_threads: options.script_threads.clamp(1, options.size.max(1)),
            limits: options.limits.clone(),
            watchdog: Watchdog::start()?,
            host: SandboxHost {
                heap_limit: options.limits.memory_limit_bytes,
                resolver: options.resolver,
                cache: Arc::new(TranspileCache::new(TRANSPILE_CACHE_BYTES, options.compiler)),
                permissions: options.permissions,
                shared_roots: options.shared_roots,
            },
            heap: (0..options.size).map(|_| Default::default()).collect(),
            isolates_created: Arc::default(),
            notebook_memory: Arc::new(super::notebook::NotebookMemory::new(
                options.limits.notebook_memory_bytes,
            )),
        });
        let mut threads = Vec::with_capacity(options.size);
        for id in 0..options.size {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("isoexec-isolate-{id}"))
                    .stack_size(THREAD_STACK)
                    .spawn(move || isolate_thread::main(&shared, id))?,
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
        job: Execution,
        cancel: Arc<CancelFlag>,
    ) -> Result<oneshot::Receiver<Report>, Overloaded> {
        let (reply, rx) = oneshot::channel();
        let mut queue = lock(&self.shared.queue);
        // Threads not running a job take one at once (even while they are
        // still preparing a fresh isolate); beyond those, QUEUE_SIZE wait.
        let free_threads = self.shared.size.saturating_sub(queue.running());
        if queue.closed || queue.jobs.len() >= self.shared.queue_size + free_threads {
            return Err(Overloaded);
        }
        let key = script_key(&job);
        queue.jobs.push_back(Queued {
            job,
            reply,
            cancel,
            queued_at: Instant::now(),
            key,
        });
        let idle = queue.take_idle();
        drop(queue);
        wake(&self.shared.wakers, idle);
        Ok(rx)
    }

    /// What a notebook thread is made with: the isolates' host, the
    /// watchdog and the limits.
    pub(crate) fn notebook_parts(&self) -> super::notebook::NotebookParts {
        super::notebook::NotebookParts {
            host: self.shared.host.clone(),
            watchdog: self.shared.watchdog.clone(),
            limits: self.shared.limits.clone(),
            isolates_created: self.shared.isolates_created.clone(),
            memory: self.shared.notebook_memory.clone(),
        }
    }

    /// A way to read the pool's occupancy from anywhere (metrics).
    pub fn probe(&self) -> impl Fn() -> PoolStats + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.stats()
    }

    /// Isolates made so far.
    pub fn isolates_created(&self) -> Arc<AtomicU64> {
        self.shared.isolates_created.clone()
    }

    /// The transpile cache the isolate threads share.
    pub fn transpile_cache(&self) -> Arc<TranspileCache> {
        self.shared.host.cache.clone()
    }

    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// Heap bytes of all isolates: (total, used, external), as of each
    /// thread's last job.
    pub fn heap(&self) -> [u64; 3] {
        let mut sum = [0u64; 3];
        for thread in &self.shared.heap {
            for (s, v) in sum.iter_mut().zip(thread) {
                *s += v.load(Ordering::Relaxed);
            }
        }
        sum
    }

    /// Wakes the watchdog so it notices a cancelled call now.
    pub fn poke_watchdog(&self) {
        self.shared.watchdog.poke();
    }

    /// Stops taking jobs, lets the isolate threads finish what is queued, and waits
    /// for them up to `grace`.
    pub fn shutdown(&self, grace: Duration) {
        lock(&self.shared.queue).closed = true;
        for cv in &self.shared.wakers {
            cv.notify_all();
        }
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

impl Shared {
    fn stats(&self) -> PoolStats {
        let queue = lock(&self.queue);
        let busy = queue.running().min(self.size);
        let queued = queue.jobs.len();
        drop(queue);
        PoolStats {
            size: self.size,
            busy,
            idle: self.size - busy,
            queued,
        }
    }

    /// Blocks until a job may run — the oldest queued execution whose script
    /// holds fewer than `script_threads` threads; `None` once the pool is
    /// closed and drained.
    pub(super) fn next_job(&self, id: usize) -> Option<Queued> {
        match self.next_job_within(id, None) {
            Next::Job(q) => Some(*q),
            Next::Idle | Next::Closed => None,
        }
    }

    /// As [`Shared::next_job`], but answers [`Next::Idle`] when no job came
    /// within `idle_after` (when given).
    pub(super) fn next_job_within(&self, id: usize, idle_after: Option<Duration>) -> Next {
        let mut queue = lock(&self.queue);
        let mut timed_out = false;
        loop {
            // Off the idle list, whether woken for a job or spuriously.
            queue.idle.retain(|&t| t != id);
            let cap = self.script_threads;
            let eligible = queue
                .jobs
                .iter()
                .position(|q| queue.running_by_key.get(&q.key).copied().unwrap_or(0) < cap);
            if let Some(i) = eligible
                && let Some(q) = queue.jobs.remove(i)
            {
                *queue.running_by_key.entry(q.key).or_default() += 1;
                return Next::Job(Box::new(q));
            }
            if queue.closed && queue.jobs.is_empty() {
                return Next::Closed;
            }
            if timed_out {
                return Next::Idle;
            }
            queue.idle.push(id);
            let Some(waker) = self.wakers.get(id) else {
                return Next::Closed;
            };
            queue = match idle_after {
                Some(limit) => {
                    let (q, waited) = waker
                        .wait_timeout(queue, limit)
                        .unwrap_or_else(|e| e.into_inner());
                    timed_out = waited.timed_out();
                    q
                }
                None => waker.wait(queue).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    pub(super) fn finish_job(&self, key: u64) {
        let mut queue = lock(&self.queue);
        let mut was_capped = false;
        if let Some(n) = queue.running_by_key.get_mut(&key) {
            was_capped = *n >= self.script_threads;
            *n -= 1;
            if *n == 0 {
                queue.running_by_key.remove(&key);
            }
        }
        // A job of this script held back by the cap may run now. Only then
        // is a waiting thread woken: waking every idle thread after every
        // job costs each of them a context switch per call.
        let idle = if was_capped && queue.jobs.iter().any(|q| q.key == key) {
            queue.take_idle()
        } else {
            None
        };
        drop(queue);
        wake(&self.wakers, idle);
    }
}
