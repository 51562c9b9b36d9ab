//! The application state every request handler shares.

use std::time::Instant;

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::engine::Engine;
use crate::jobs::Jobs;
use crate::metrics::{Live, Metrics};
use crate::runner::Runner;
use crate::sessions::{Catalog, Sessions};
use crate::tenants::Tenants;
use crate::workspace::{CodeStore, DirStore, PgCodeStore};

/// What the server is made of, built once at start.
pub struct App {
    /// Every setting, validated once; handlers read limits and defaults here.
    pub config: Config,
    /// The engine and the metrics: what runs code, for every API.
    pub runner: Arc<Runner>,
    /// Saved code of the restexec API (`WORKSPACE_DIR`), behind its store.
    pub workspace: Arc<dyn CodeStore>,
    /// Code jobs and their durable records (`DATA_DIR`).
    pub jobs: Arc<Jobs>,
    /// Live sessions of the session API, their files and notebooks.
    pub sessions: Arc<Sessions>,
    /// Tenants and their deployed functions (`DATA_DIR`, or PostgreSQL).
    pub(crate) tenants: Arc<Tenants>,
    /// When the server started: `/health` reports the uptime.
    pub started: Instant,
}

impl App {
    /// Opens the workspace (removing temp files a crash left) and the job
    /// records, and starts the engine. Call inside a tokio runtime. Each
    /// error names what could not be opened.
    pub fn start(config: Config) -> std::io::Result<App> {
        let in_workspace = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("WORKSPACE_DIR {}: {e}", config.workspace_dir.display()),
            )
        };
        let dir_store = DirStore::open(&config.workspace_dir).map_err(in_workspace)?;
        dir_store.remove_stale_temps();
        let db = match &config.database_url {
            None => None,
            Some(url) => Some(
                off_reactor(|| Db::open(url, &config.replica_id, config.lease))
                    .map_err(|e| std::io::Error::other(format!("DATABASE_URL: {e}")))?,
            ),
        };
        let workspace: Arc<dyn CodeStore> = match &db {
            Some(db) => {
                Arc::new(PgCodeStore::new(db.clone(), &config.workspace_dir).map_err(in_workspace)?)
            }
            None => Arc::new(dir_store),
        };
        let catalog = db.as_ref().map(|db| {
            let addr = config.advertise_url.clone().unwrap_or_default();
            Catalog::new(db.clone(), addr)
        });
        let sessions = Sessions::open(&config, catalog).map_err(|e| {
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
        let metrics = Metrics::new(
            Live {
                pool: Box::new(move || {
                    let s = probe();
                    (s.size as u64, s.busy as u64, s.queued as u64)
                }),
                isolates_created: engine.isolates_created(),
                served_on_lanes: engine.served_on_lanes(),
                sessions: Box::new(move || counted.count() as u64),
            },
            config.tenant_metrics,
        );
        let runner = Arc::new(Runner { engine, metrics });
        let tenants = Tenants::open(&config, db.clone())
            .map_err(|e| std::io::Error::other(format!("DATA_DIR: {e}")))?;
        let jobs = Jobs::open(&config, runner.clone(), db)
            .map_err(|e| std::io::Error::other(format!("DATA_DIR: {e}")))?;
        Ok(App {
            runner,
            config,
            workspace,
            jobs: Arc::new(jobs),
            sessions,
            tenants: Arc::new(tenants),
            started: Instant::now(),
        })
    }

    /// Work that outlives requests: queued jobs found at start run, and old
    /// job records are pruned. Call once, inside a tokio runtime.
    pub fn start_background(self: &Arc<Self>) -> std::io::Result<()> {
        let queued = off_reactor(|| self.jobs.recover())
            .map_err(|e| std::io::Error::other(format!("job records: {e}")))?;
        if !queued.is_empty() {
            tracing::info!(count = queued.len(), "running jobs queued before a restart");
        }
        self.jobs.adopt(queued.len());
        for record in queued {
            let jobs = self.jobs.clone();
            crate::background::spawn(async move { jobs.run_queued(record, None).await });
        }
        self.jobs.claim_in_background();
        self.jobs.prune_in_background();
        self.sessions.reap_in_background();
        self.tenants.flush_in_background();
        trim_in_background();
        Ok(())
    }
}

/// Runs `f` on a thread of its own and waits for it: blocking store calls
/// made while starting, from inside the async runtime.
fn off_reactor<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// How often memory freed by the allocator is handed back to the system.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands freed heap memory back to the system every few seconds. glibc's
/// allocator keeps what threads freed in their arenas (a burst of large
/// bodies, results and compiles leaves hundreds of MiB there), so without
/// this an idle server stays at the size of its busiest moment.
fn trim_in_background() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    crate::background::spawn(async {
        loop {
            tokio::time::sleep(TRIM_EVERY).await;
            // SAFETY: malloc_trim(3) only returns free memory to the system.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    });
}
