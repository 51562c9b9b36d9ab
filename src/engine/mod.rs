//! The engine: everything that runs user code. It owns the isolate pool and
//! its threads, the watchdog, the worker processes of `"process"`
//! isolation, the compile helpers, and all that touches V8 (`js/`). Callers
//! (the HTTP layer, and any other front end) use only this module's plain
//! types: start an [`Engine`] from [`EngineOptions`], [`Engine::run`] an
//! [`Execution`] and get a [`Report`] or [`Overloaded`], [`Engine::lint`] a
//! file, read [`Engine::stats`], [`Engine::shutdown`].

mod compile;
mod isolate_thread;
mod js;
mod keyed;
mod lane;
mod lifeline;
mod lint;
mod mime;
mod notebook;
mod options;
mod permissions;
mod policy;
mod pool;
mod process;
mod queue;
mod resolve;
mod rlimit;
mod transpile_cache;
mod types;
mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compile::Compiler;
pub use compile::{CompileError, SyntaxError};
pub use lane::{
    H1Guard, H2Guard, LANE_KEPT_SHARE, LaneParts, Seat, h1_open as lane_h1_open,
    h2_open as lane_h2_open, uninstall as uninstall_lane,
};
pub use lint::{LintError, LintReport};
pub use notebook::{CellReport, CellRequest, CellStatus, Notebook};
pub use options::{EngineOptions, Limits};
use permissions::Permissions;
pub use policy::PROGRAM_MODES;
use policy::Placement;
use pool::{Pool, PoolOptions};
use process::ProcessPool;
use resolve::Resolver;
pub use types::{
    Entry, ExecError, Execution, Isolation, Language, LogEntry, LogLevel, Overloaded, PoolStats,
    ProgramEnd, Report, Task, split_streams,
};
use watchdog::CancelFlag;

/// The `isoexec worker` entry point: a worker process of `"process"`
/// isolation.
pub fn serve_worker() -> std::process::ExitCode {
    process::worker::serve()
}

/// The `isoexec compile-helper` entry point: a compile helper process.
pub fn serve_compile_helper() -> std::process::ExitCode {
    compile::helper::serve()
}

/// Initialises V8's platform. Call once, on the main thread, before any
/// other thread starts.
pub fn init_v8() {
    deno_core::JsRuntime::init_platform(None);
}

/// A running engine. Cheap to share behind an `Arc`; every method takes
/// `&self`.
pub struct Engine {
    /// Isolate threads for `"isolate"` and `"none"` executions.
    pool: Pool,
    /// Worker processes for `"process"` executions; `None` inside a worker
    /// process, which runs its one execution on its own pool.
    process: Option<Arc<ProcessPool>>,
    /// Compile helpers: every parse, transpile and lint goes through them.
    compiler: Arc<Compiler>,
    /// Calls run on their connection's thread (see [`lane`]).
    served_on_lanes: Arc<std::sync::atomic::AtomicU64>,
}

impl Engine {
    /// Starts the engine `options` describe: compile helpers, isolate
    /// threads, and pre-started worker processes. Call inside a tokio
    /// runtime; the workspace directory must exist.
    pub fn start(options: &EngineOptions) -> std::io::Result<Engine> {
        // Compiles come from isolate threads and from lint requests.
        let compiler = Arc::new(Compiler::helpers(options.compile_helpers)?);
        let pool = start_pool(options, compiler.clone(), false)?;
        let process = ProcessPool::new(options, pool.transpile_cache())?;
        process.replenish();
        Ok(Engine {
            pool,
            process: Some(process),
            compiler,
            served_on_lanes: Arc::default(),
        })
    }

    /// The engine of a worker process: one isolate thread, and a compile
    /// helper started only if something is left to compile.
    pub(crate) fn start_in_worker(options: &EngineOptions) -> std::io::Result<Engine> {
        let mut options = options.clone();
        options.pool_size = 1;
        options.queue_size = 1;
        let compiler = Arc::new(Compiler::helpers_on_demand(1)?);
        // One execution, then the process exits: no isolate is made after it.
        let pool = start_pool(&options, compiler.clone(), true)?;
        Ok(Engine {
            pool,
            process: None,
            compiler,
            served_on_lanes: Arc::default(),
        })
    }

    /// Runs `execution` where its isolation says and waits for its report.
    /// Fails at once when the queue is full. If the returned future is
    /// dropped (the caller went away), the execution is cancelled.
    pub async fn run(&self, execution: &Arc<Execution>) -> Result<Report, Overloaded> {
        let cancel = Arc::new(CancelFlag::default());
        let guard = CancelOnDrop {
            flag: cancel.clone(),
            pool: &self.pool,
            armed: true,
        };
        let placement = policy::placement(execution.isolation, &execution.task);
        let report = match (&self.process, placement) {
            // Boxed: its future is large, and every call's future would
            // carry (and move) its size otherwise.
            (Some(process), Placement::Process) => Box::pin(process.run(execution, cancel)).await?,
            // On the caller's own thread when that holds up nobody.
            (_, Placement::Thread(_)) if let Some(claim) = lane::claim(execution) => {
                lane::run(claim, execution.clone(), cancel).await
            }
            _ => {
                let rx = self.pool.submit(execution.clone(), cancel)?;
                rx.await.unwrap_or_else(|_| {
                    Report::failed(ExecError::Internal {
                        message: "an isolate thread dropped an execution without a report".into(),
                    })
                })
            }
        };
        guard.disarm();
        Ok(report)
    }

    /// Lints `source`, the text of the file at `path`, within `timeout`.
    /// Dropping the future stops the lint.
    pub async fn lint(
        &self,
        path: PathBuf,
        source: String,
        timeout: Duration,
    ) -> Result<LintReport, CompileError> {
        let deadline = Instant::now() + timeout;
        let gone = Arc::new(CancelFlag::default());
        let _cancel = CancelOnDrop {
            flag: gone.clone(),
            pool: &self.pool,
            armed: true,
        };
        let compiler = self.compiler.clone();
        tokio::task::spawn_blocking(move || {
            compiler.lint(path, &source, deadline, &|| gone.is_cancelled())
        })
        .await
        .unwrap_or_else(|e| Err(CompileError::Internal(format!("the lint task failed: {e}"))))
    }

    /// Starts a notebook confined to `dir` (which must exist): an isolate
    /// of its own, on a thread of its own, for the notebook's life.
    pub fn start_notebook(&self, dir: &Path) -> std::io::Result<notebook::Notebook> {
        notebook::Notebook::start(self.pool.notebook_parts(), dir)
    }

    /// Occupancy of the isolate threads.
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// A way to read the pool's occupancy from anywhere (metrics).
    pub fn probe(&self) -> impl Fn() -> PoolStats + Send + Sync + 'static {
        self.pool.probe()
    }

    /// Isolates made so far.
    pub fn isolates_created(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.pool.isolates_created()
    }

    /// What a connection thread needs to run calls itself (see [`lane`]).
    pub fn lane_parts(&self) -> lane::LaneParts {
        lane::LaneParts {
            shared: self.pool.shared(),
            served: self.served_on_lanes.clone(),
        }
    }

    /// Calls run on their connection's thread so far.
    pub fn served_on_lanes(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.served_on_lanes.clone()
    }

    /// Heap bytes of all isolates: (total, used, external).
    pub fn heap(&self) -> [u64; 3] {
        self.pool.heap()
    }

    /// Stops taking executions, lets the isolate threads finish what is
    /// queued (up to `grace`), and stops them. Blocks: call it off the
    /// async reactor.
    pub fn shutdown(&self, grace: Duration) {
        self.pool.shutdown(grace);
    }

    /// Puts JavaScript compiled elsewhere for a function-call script into
    /// the cache (a worker process gets its script this way).
    pub(crate) fn seed_compiled(&self, script: &str, code: Arc<str>) {
        self.pool.transpile_cache().seed(script, code);
    }
}

/// Cancels an execution if dropped while armed: the future that waited for
/// it went away.
struct CancelOnDrop<'a> {
    flag: Arc<CancelFlag>,
    pool: &'a Pool,
    armed: bool,
}

impl CancelOnDrop<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.flag.cancel();
            self.pool.poke_watchdog();
        }
    }
}

/// Starts the isolate pool with the resolver and permissions `options`
/// describe.
fn start_pool(
    options: &EngineOptions,
    compiler: Arc<Compiler>,
    one_shot: bool,
) -> std::io::Result<Pool> {
    let config = options;
    let ws = real_or_absolute(&config.workspace_dir);
    let tools = real_or_absolute(&config.tools_dir);
    let vendor = real_or_absolute(&config.vendor_dir);
    let import_map = config
        .import_map
        .clone()
        .unwrap_or_else(|| ws.join("import_map.json"));
    let resolver = Resolver::new(&ws, vec![ws.clone(), tools.clone(), vendor], import_map);
    let permissions = Permissions {
        read: match &config.allow_read {
            Some(list) => list.iter().map(|p| real_or_absolute(p)).collect(),
            None => vec![ws.clone(), tools],
        },
        write: config
            .allow_write
            .iter()
            .map(|p| real_or_absolute(p))
            .collect(),
        net: config.allow_net.clone(),
        base_dir: ws,
        env: config.allow_env.clone(),
    };
    let shared_roots = vec![
        real_or_absolute(&config.tools_dir),
        real_or_absolute(&config.vendor_dir),
    ];
    Pool::start(PoolOptions {
        python_packages: real_or_absolute(&config.vendor_dir).join("python"),
        python_snapshot: config
            .python_snapshot_dir
            .as_ref()
            .map(|dir| dir.join(js::snapshot_file_name())),
        shared_roots,
        script_threads: config.script_threads,
        one_shot,
        size: config.pool_size,
        queue_size: config.queue_size,
        limits: config.limits.clone(),
        resolver: Arc::new(resolver),
        permissions: Arc::new(permissions),
        compiler,
    })
}

/// `path` with symlinks resolved when it exists, else made absolute.
fn real_or_absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}
