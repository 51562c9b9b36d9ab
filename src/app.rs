//! The application state every request handler shares.

use std::time::Instant;

use std::sync::Arc;

use crate::config::Config;
use crate::engine::{Engine, Execution, Overloaded, Report};
use crate::jobs::Jobs;
use crate::metrics::{Live, Metrics};
use crate::sessions::Sessions;
use crate::workspace::Workspace;

/// What the server is made of, built once at start.
pub struct App {
    /// Every setting, validated once; handlers read limits and defaults here.
    pub config: Config,
    /// Runs every execution and lint (isolates, worker processes, compile
    /// helpers); the only part that touches V8.
    pub engine: Engine,
    /// Saved code of the restexec API (`WORKSPACE_DIR`).
    pub workspace: Workspace,
    /// Code jobs and their durable records (`DATA_DIR`).
    pub jobs: Arc<Jobs>,
    /// Live sessions of the session API, their files and notebooks.
    pub sessions: Arc<Sessions>,
    /// When the server started: `/health` reports the uptime.
    pub started: Instant,
    /// Every series `/metrics` exports.
    pub metrics: Metrics,
}

impl App {
    /// Opens the workspace (removing temp files a crash left) and the job
    /// records, and starts the engine. Call inside a tokio runtime. Each
    /// error names what could not be opened.
    pub fn start(config: Config) -> std::io::Result<App> {
        let workspace = Workspace::open(&config.workspace_dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("WORKSPACE_DIR {}: {e}", config.workspace_dir.display()),
            )
        })?;
        workspace.remove_stale_temps();
        let jobs =
            Jobs::open(&config).map_err(|e| std::io::Error::other(format!("DATA_DIR: {e}")))?;
        let sessions = Sessions::open(&config.data_dir, config.session_ttl, config.max_sessions)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("DATA_DIR {}/sessions: {e}", config.data_dir.display()),
                )
            })?;
        let worst = config.worst_memory_bytes();
        if let Some(available) = crate::config::memory_available()
            && worst > available
        {
            tracing::warn!(
                worst_mib = worst >> 20,
                available_mib = available >> 20,
                "with these settings the server may need more memory than it has: lower \
                 POOL_SIZE, MEMORY_LIMIT_MB or NOTEBOOK_MEMORY_MB"
            );
        }
        let engine = Engine::start(&config.engine_options())?;
        let sessions = Arc::new(sessions);
        let probe = engine.probe();
        let counted = sessions.clone();
        let metrics = Metrics::new(Live {
            pool: Box::new(move || {
                let s = probe();
                (s.size as u64, s.busy as u64, s.queued as u64)
            }),
            isolates_created: engine.isolates_created(),
            sessions: Box::new(move || counted.count() as u64),
        });
        Ok(App {
            metrics,
            config,
            engine,
            workspace,
            jobs: Arc::new(jobs),
            sessions,
            started: Instant::now(),
        })
    }

    /// Work that outlives requests: queued jobs found at start run, and old
    /// job records are pruned. Call once, inside a tokio runtime.
    pub fn start_background(self: &Arc<Self>) -> std::io::Result<()> {
        let queued = self
            .jobs
            .recover()
            .map_err(|e| std::io::Error::other(format!("DATA_DIR: {e}")))?;
        if !queued.is_empty() {
            tracing::info!(count = queued.len(), "running jobs queued before a restart");
        }
        self.jobs.adopt(queued.len());
        for record in queued {
            let app = self.clone();
            tokio::spawn(async move { app.jobs.run_queued(&app, record, None).await });
        }
        self.jobs.prune_in_background();
        self.sessions.reap_in_background();
        trim_in_background();
        Ok(())
    }
}

impl App {
    /// Runs an execution on the engine and records it in the metrics
    /// (`api` names the API it came through).
    pub async fn execute(
        &self,
        api: &'static str,
        execution: &Execution,
    ) -> Result<Report, Overloaded> {
        let started = Instant::now();
        let isolation = execution.isolation.as_str();
        let result = self.engine.run(execution).await;
        let (outcome, queued) = match &result {
            Ok(report) => (
                match &report.outcome {
                    Ok(_) | Err(crate::engine::ExecError::Exit { code: 0 }) => "ok",
                    Err(e) => e.kind(),
                },
                report.queue_wait,
            ),
            Err(_) => ("overloaded", std::time::Duration::ZERO),
        };
        let ran = started.elapsed().saturating_sub(queued);
        self.metrics.execution(api, isolation, outcome, ran, queued);
        result
    }
}

/// How often memory freed by the allocator is handed back to the system.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands freed heap memory back to the system every few seconds. glibc's
/// allocator keeps what threads freed in their arenas (a burst of large
/// bodies, results and compiles leaves hundreds of MiB there), so without
/// this an idle server stays at the size of its busiest moment.
fn trim_in_background() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        loop {
            tokio::time::sleep(TRIM_EVERY).await;
            // SAFETY: malloc_trim(3) only returns free memory to the system.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    });
}
