//! The isolate pool: the [`Queue`] in front of N dedicated OS threads (see
//! [`super::isolate_thread`]), each owning its isolates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::compile::Compiler;
use super::isolate_thread::{self, Shared};
use super::js::SandboxHost;
use super::notebook::{NotebookMemory, NotebookParts};
use super::options::Limits;
use super::permissions::Permissions;
use super::queue::Queue;
use super::resolve::Resolver;
use super::transpile_cache::TranspileCache;
use super::types::{Execution, Overloaded, PoolStats, Report};
use super::watchdog::{CancelFlag, Watchdog};
use crate::sync::lock;

/// Stack size of an isolate thread: well above V8's own stack limit (about
/// 1 MiB), so runaway recursion is a catchable `RangeError`.
const THREAD_STACK: usize = 8 * 1024 * 1024;
/// Budget of the shared transpile cache.
const TRANSPILE_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Settings of the pool.
#[derive(Clone)]
pub(crate) struct PoolOptions {
    pub size: usize,
    pub queue_size: usize,
    pub limits: Limits,
    pub resolver: Arc<Resolver>,
    pub permissions: Arc<Permissions>,
    /// Where scripts are parsed and transpiled.
    pub compiler: Arc<Compiler>,
    /// Module roots a scoped execution shares (tools, vendor).
    pub shared_roots: Vec<std::path::PathBuf>,
    /// Pure-Python packages (`<VENDOR_DIR>/python`).
    pub python_packages: std::path::PathBuf,
    /// Where the Python snapshot is kept on disk, if anywhere.
    pub python_snapshot: Option<std::path::PathBuf>,
    /// Most isolate threads one script may hold at once.
    pub script_threads: usize,
    /// A worker process's pool: its thread runs one execution and makes no
    /// isolate after it.
    pub one_shot: bool,
}

/// Handle to the pool; cheap to share behind an `Arc`.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// What live notebooks hold, against `NOTEBOOK_MEMORY_MB`.
    notebook_memory: Arc<NotebookMemory>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// Starts the watchdog and `options.size` isolate threads.
    pub(super) fn start(options: PoolOptions) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            queue: Queue::new(options.size, options.queue_size, options.script_threads),
            limits: options.limits.clone(),
            watchdog: Watchdog::start()?,
            host: SandboxHost {
                heap_limit: options.limits.memory_limit_bytes,
                resolver: options.resolver,
                cache: Arc::new(TranspileCache::new(TRANSPILE_CACHE_BYTES, options.compiler)),
                permissions: options.permissions,
                shared_roots: options.shared_roots,
                python_packages: options.python_packages,
                python_snapshot: options.python_snapshot,
            },
            heap: (0..options.size).map(|_| Default::default()).collect(),
            lane_heap: Mutex::default(),
            isolates_created: Arc::default(),
            one_shot: options.one_shot,
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
            notebook_memory: Arc::new(NotebookMemory::new(options.limits.notebook_memory_bytes)),
            threads: Mutex::new(threads),
        })
    }

    /// Queues an execution. Fails at once when the queue is full.
    pub(super) fn submit(
        &self,
        execution: Arc<Execution>,
        cancel: Arc<CancelFlag>,
    ) -> Result<oneshot::Receiver<Report>, Overloaded> {
        self.shared.queue.submit(execution, cancel)
    }

    /// What a notebook thread is made with: the isolates' host, the
    /// watchdog and the limits.
    pub(super) fn notebook_parts(&self) -> NotebookParts {
        NotebookParts {
            host: self.shared.host.clone(),
            watchdog: self.shared.watchdog.clone(),
            limits: self.shared.limits.clone(),
            isolates_created: self.shared.isolates_created.clone(),
            memory: self.notebook_memory.clone(),
        }
    }

    /// What the isolate threads share, for a connection thread's lane.
    pub(super) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// A way to read the pool's occupancy from anywhere (metrics).
    pub(super) fn probe(&self) -> impl Fn() -> PoolStats + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.queue.stats()
    }

    /// Isolates made so far.
    pub(super) fn isolates_created(&self) -> Arc<AtomicU64> {
        self.shared.isolates_created.clone()
    }

    /// The transpile cache the isolate threads share.
    pub(super) fn transpile_cache(&self) -> Arc<TranspileCache> {
        self.shared.host.cache.clone()
    }

    pub(super) fn stats(&self) -> PoolStats {
        self.shared.queue.stats()
    }

    /// Heap bytes of all isolates: (total, used, external), as of each
    /// thread's last call (a lane's: as of its last call, at most 10 times
    /// a second).
    pub(super) fn heap(&self) -> [u64; 3] {
        let mut sum = [0u64; 3];
        let lanes = lock(&self.shared.lane_heap).clone();
        for thread in self.shared.heap.iter().chain(lanes.iter().map(|l| &**l)) {
            for (s, v) in sum.iter_mut().zip(thread) {
                *s += v.load(Ordering::Relaxed);
            }
        }
        sum
    }

    /// Wakes the watchdog so it notices a cancelled call now.
    pub(super) fn poke_watchdog(&self) {
        self.shared.watchdog.poke();
    }

    /// Stops taking executions, lets the isolate threads finish what is
    /// queued, and waits for them up to `grace`.
    pub(super) fn shutdown(&self, grace: Duration) {
        self.shared.queue.close();
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
