//! isoexec: an HTTP server that runs user TypeScript and JavaScript in a pool
//! of V8 isolates, with timeouts, memory limits and captured logs.
//!
//! Map of the crate (each concern in one place):
//! - [`config`]: environment variables and flags, read and validated once.
//!   The server reads the environment nowhere else; a worker process reads
//!   its engine options from the one variable its parent sets.
//! - [`engine`]: everything that runs user code. [`engine::Engine`] is its
//!   one entry point (start from [`engine::EngineOptions`], run an
//!   [`engine::Execution`], lint, notebooks, stats, shutdown); inside are
//!   the queue and isolate threads, the isolation policy, the watchdog, the
//!   worker processes of `"process"` isolation, the compile helpers,
//!   resolution and permissions, and `engine::js`, the V8 side. Its modules
//!   are private: callers see only what `engine` re-exports.
//! - `runner`: the engine and the metrics, shared by everything that runs
//!   code (the APIs, jobs, sessions).
//! - `app` ([`App`]): what the server is made of: config, runner, saved
//!   code, jobs, sessions.
//! - `http`: accepting and serving connections, the [`Router`], request
//!   parsing, reply writers, the one error type; each API in
//!   `http/api/<name>.rs` with its routes, handlers, descriptions and body
//!   types.
//! - `workspace`: saved code behind the `CodeStore` trait (a directory
//!   store today); `code`: the size cap and markdown-fence rules every API
//!   applies to code; `disk`: free-space checks.
//! - `jobs`: code jobs and their durable records (SQLite behind the
//!   `JobStore` trait).
//! - `sessions`: sessions of the live-coding API and their runs (script
//!   and notebook).
//! - [`log_writer`]: where log lines go (a buffer one thread empties into
//!   stderr).
//! - `metrics`: the Prometheus series. `clock`: epoch milliseconds and ISO
//!   8601 times. `sync`: locking that survives a panicked holder.
//! - [`cli`]: `isoexec run` and `isoexec lint` on the engine, no server.
//! - [`init`]: what the server does as PID 1 (forward signals, reap).
//!
//! Boundaries the build checks:
//! - Only `engine` touches V8 or `deno_core` (`.ci/run` checks it); the
//!   layers above see plain Rust types ([`engine::Report`],
//!   [`engine::ExecError`]).
//! - No module names a module that names it back (a test reads the
//!   crate's paths); handlers never import the router.
//! - Nothing is `pub` that the crate's users cannot reach
//!   (`unreachable_pub`).

#![warn(unreachable_pub)]

mod app;
mod background;
pub mod cli;
mod clock;
mod code;
pub mod config;
mod db;
mod disk;
pub mod engine;
mod http;
pub mod init;
mod jobs;
pub mod log_writer;
mod metrics;
mod runner;
mod sessions;
mod sync;
mod tenants;
mod workspace;

pub use app::App;
pub use config::Config;
pub use http::router::{MethodInfo, RouteInfo, Router};
pub use http::serve::{run, serve};
