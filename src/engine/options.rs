//! What the engine is started with: [`EngineOptions`], a plain value the
//! server's configuration builds (`Config::engine_options`). The engine
//! reads no server setting of its own; a worker process gets these options,
//! serialized, from its parent.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an engine is started: where code lives, what it may touch, how many
/// threads and helpers, and the limits of each execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineOptions {
    /// Saved code: the base of relative paths and imports.
    pub workspace_dir: PathBuf,
    /// Shared modules every program may import.
    pub tools_dir: PathBuf,
    pub vendor_dir: PathBuf,
    /// `None` means `<workspace_dir>/import_map.json` when that file exists.
    pub import_map: Option<PathBuf>,
    /// Paths code may read (`None`: the workspace and tools).
    pub allow_read: Option<Vec<PathBuf>>,
    pub allow_write: Vec<PathBuf>,
    pub allow_net: Vec<String>,
    /// Variable names `Deno.env.get` may read.
    pub allow_env: Vec<String>,
    /// Isolate threads.
    pub pool_size: usize,
    /// Most isolate threads one script or client holds at once.
    pub script_threads: usize,
    /// Executions that may wait beyond the free threads.
    pub queue_size: usize,
    /// Compile helper processes kept running.
    pub compile_helpers: usize,
    /// Worker processes of `"process"` isolation kept started.
    pub process_prestart: usize,
    pub limits: Limits,
    /// Where the Python interpreter's memory snapshot is kept between runs
    /// of the server (`None`: made anew by each process).
    #[serde(default)]
    pub python_snapshot_dir: Option<PathBuf>,
}

/// The per-execution limits.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    pub default_cpu_limit: Option<Duration>,
    pub memory_limit_bytes: usize,
    pub max_result_bytes: usize,
    pub max_log_entries: usize,
    pub max_log_bytes: usize,
    pub max_json_depth: usize,
    /// Bytes one execution may write to files (`MAX_WRITE_BYTES`).
    pub max_write_bytes: u64,
    /// Bytes all live notebooks may hold together (`NOTEBOOK_MEMORY_MB`).
    #[serde(default = "default_notebook_memory")]
    pub notebook_memory_bytes: usize,
}

fn default_notebook_memory() -> usize {
    1024 * MIB
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_timeout: Duration::from_millis(5000),
            max_timeout: Duration::from_millis(300_000),
            default_cpu_limit: None,
            memory_limit_bytes: 128 * MIB,
            max_result_bytes: 10 * MIB,
            max_log_entries: 1000,
            max_log_bytes: MIB,
            max_json_depth: 128,
            max_write_bytes: 64 * MIB as u64,
            notebook_memory_bytes: default_notebook_memory(),
        }
    }
}

const MIB: usize = 1024 * 1024;
