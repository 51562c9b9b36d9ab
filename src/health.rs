//! `GET /health`: liveness, uptime, version, memory and pool occupancy, in
//! restexec's shape plus the pool.

use hyper::Response;
use serde::Serialize;

use crate::pool::PoolStats;
use crate::server::{App, Body, json_response};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    uptime: f64,
    version: &'static str,
    active_processes: usize,
    memory_usage: MemoryUsage,
    pool: PoolStats,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemoryUsage {
    rss: u64,
    heap_total: u64,
    heap_used: u64,
    external: u64,
}

pub fn health(app: &App) -> Response<Body> {
    let pool = app.pool.stats();
    let body = Health {
        status: "ok",
        uptime: app.started.elapsed().as_secs_f64(),
        version: env!("CARGO_PKG_VERSION"),
        active_processes: pool.busy,
        memory_usage: {
            let [heap_total, heap_used, external] = app.pool.heap();
            MemoryUsage {
                rss: rss_bytes(),
                heap_total,
                heap_used,
                external,
            }
        },
        pool,
    };
    json_response(
        200,
        serde_json::to_string(&body).unwrap_or_else(|_| "{\"status\":\"ok\"}".into()),
    )
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
