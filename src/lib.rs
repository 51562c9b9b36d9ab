//! isoexec: an HTTP server that runs user TypeScript and JavaScript in a pool
//! of V8 isolates, with timeouts, memory limits and captured logs.
//!
//! Map of the crate:
//! - [`config`]: environment variables and flags, validated once.
//! - [`server`]: accept loop, graceful shutdown, routing, auth, body limits,
//!   and the mapping of [`error::ApiError`] to HTTP.
//! - [`api`]: `POST /` and `/run`, the function-call API.
//! - [`health`]: `GET /health`.
//! - [`pool`]: the bounded queue and the isolate threads.
//! - [`watchdog`]: deadlines and CPU budgets enforced from outside.
//! - [`js`]: everything that touches V8 (extension, ops, sandbox, result
//!   conversion). Nothing else holds a V8 handle.
//! - [`transpile`]: TypeScript to JavaScript, cached by content.
//! - [`mime`]: MIME sniffing and data URIs.
//! - [`exec`]: the plain-data job and report types between HTTP and pool.

pub mod api;
pub mod compile;
pub mod config;
pub mod conn;
pub mod error;
pub mod exec;
pub mod health;
pub mod js;
pub mod lint;
pub mod mime;
pub mod net;
pub mod permissions;
pub mod pool;
pub mod process;
pub mod resolve;
pub mod restexec;
pub mod server;
pub mod transpile;
pub mod watchdog;
pub mod workspace;

pub use config::Config;
pub use server::run;

/// Initialises V8's platform. Call once, on the main thread, before any
/// other thread starts.
pub fn init_v8() {
    deno_core::JsRuntime::init_platform(None);
}
