//! The application state every request handler shares.

use std::time::Instant;

use crate::config::Config;
use crate::engine::Engine;
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
    /// When the server started: `/health` reports the uptime.
    pub started: Instant,
}

impl App {
    /// Opens the workspace (removing temp files a crash left) and starts
    /// the engine. Call inside a tokio runtime.
    pub fn start(config: Config) -> std::io::Result<App> {
        let workspace = Workspace::open(&config.workspace_dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("WORKSPACE_DIR {}: {e}", config.workspace_dir.display()),
            )
        })?;
        workspace.remove_stale_temps();
        let engine = Engine::start(&config)?;
        Ok(App {
            config,
            engine,
            workspace,
            started: Instant::now(),
        })
    }
}
