//! `GET /health`: liveness, uptime, version, memory and pool occupancy, in
//! restexec's shape plus the pool.

use std::sync::Arc;

use super::api_types::{HealthReply, MemoryUsage, PoolFigures};
use super::reply::{Reply, json};
use super::request::HttpRequest;
use crate::app::App;

/// `GET /health` (and `HEAD`).
pub async fn health(app: Arc<App>, _req: HttpRequest) -> Reply {
    let pool = app.engine.stats();
    let [heap_total, heap_used, external] = app.engine.heap();
    let body = HealthReply {
        status: "ok".into(),
        uptime: app.started.elapsed().as_secs_f64(),
        version: env!("CARGO_PKG_VERSION").into(),
        active_processes: pool.busy,
        memory_usage: MemoryUsage {
            rss: rss_bytes(),
            heap_total,
            heap_used,
            external,
        },
        pool: PoolFigures {
            size: pool.size,
            busy: pool.busy,
            idle: pool.idle,
            queued: pool.queued,
        },
    };
    Ok(json(200, &body))
}

/// Resident set size of this process, from `/proc/self/statm`.
pub fn rss_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
