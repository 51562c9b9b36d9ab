//! `GET /health`: liveness, uptime, version, memory and pool occupancy, in
//! restexec's shape plus the pool. `GET /ready`: readiness — whether the
//! job records (and, with `DATABASE_URL`, the shared store) answer; a
//! replica whose store is down stays alive but takes no traffic.

use std::sync::Arc;

use hyper::Method;

use crate::app::App;
use crate::http::error::{Dialect, Reply};
use crate::http::reply::json;
use crate::http::request::HttpRequest;
use crate::http::route::{Doc, Route};
use bodies::{HealthReply, MemoryUsage, PoolFigures, Readiness};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new("/health", Dialect::FunctionCall)
            .public(
                Method::GET,
                health,
                Doc::new("Liveness, uptime, memory and pool occupancy", "server")
                    .reply::<HealthReply>("200", "The server answers"),
            )
            .head(health),
        Route::new("/ready", Dialect::FunctionCall)
            .public(
                Method::GET,
                ready,
                Doc::new("Readiness: the server and its store answer", "server")
                    .reply::<Readiness>("200", "Ready")
                    .reply::<Readiness>("503", "The store does not answer"),
            )
            .head(ready),
    ]
}

/// `GET /ready` (and `HEAD`).
async fn ready(app: Arc<App>, _req: HttpRequest) -> Reply {
    let (status, store, error) = match app.jobs.ping().await {
        Ok(()) => (200, "ok", None),
        Err(e) => (503, "unavailable", Some(e.to_string())),
    };
    let body = Readiness {
        status: if status == 200 { "ready" } else { "not ready" }.into(),
        store: store.into(),
        shared: app.jobs.shared(),
        error,
    };
    Ok(json(status, &body))
}

/// `GET /health` (and `HEAD`).
async fn health(app: Arc<App>, _req: HttpRequest) -> Reply {
    let pool = app.runner.engine.stats();
    let [heap_total, heap_used, external] = app.runner.engine.heap();
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
pub(crate) fn rss_bytes() -> u64 {
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

/// The request and reply bodies of these routes: the handlers read and write
/// them, and the OpenAPI document describes them.
pub(crate) mod bodies {
    #![allow(dead_code, reason = "some fields exist only to be described")]

    use serde::{Deserialize, Serialize};
    use utoipa::ToSchema;

    /// `GET /health`.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct HealthReply {
        pub status: String,
        /// Seconds.
        pub uptime: f64,
        pub version: String,
        #[serde(rename = "activeProcesses")]
        #[schema(rename = "activeProcesses")]
        pub active_processes: usize,
        #[serde(rename = "memoryUsage")]
        #[schema(rename = "memoryUsage")]
        pub memory_usage: MemoryUsage,
        pub pool: PoolFigures,
    }

    /// `GET /ready`.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct Readiness {
        /// `ready` or `not ready`.
        pub status: String,
        /// `ok` or `unavailable`.
        pub store: String,
        /// Whether the store is the one several replicas share.
        pub shared: bool,
        /// Why the store does not answer.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub error: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct MemoryUsage {
        pub rss: u64,
        #[serde(rename = "heapTotal")]
        #[schema(rename = "heapTotal")]
        pub heap_total: u64,
        #[serde(rename = "heapUsed")]
        #[schema(rename = "heapUsed")]
        pub heap_used: u64,
        pub external: u64,
    }

    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub(crate) struct PoolFigures {
        pub size: usize,
        pub busy: usize,
        pub idle: usize,
        pub queued: usize,
    }
}
