//! The application state every request handler shares.

use std::time::Instant;

use std::sync::Arc;

use crate::config::Config;
use crate::engine::Engine;
use crate::jobs::Jobs;
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
        let engine = Engine::start(&config)?;
        Ok(App {
            config,
            engine,
            workspace,
            jobs: Arc::new(jobs),
            sessions: Arc::new(sessions),
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
        for record in queued {
            let app = self.clone();
            tokio::spawn(async move { app.jobs.run_queued(&app.engine, record).await });
        }
        self.jobs.prune_in_background();
        self.sessions.reap_in_background();
        Ok(())
    }
}
