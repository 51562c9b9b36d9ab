//! isoexec: an HTTP server that runs user TypeScript and JavaScript in a pool
//! of V8 isolates, with timeouts, memory limits and captured logs.
//!
//! Map of the crate:
//! - [`cli`]: `isoexec run` and `isoexec lint` on the engine, no server.
//! - [`config`]: environment variables and flags, read and validated once
//!   (the only reader of the environment).
//! - [`app`]: the state every request shares: config, engine, workspace.
//! - [`engine`]: everything that runs user code. [`engine::Engine`] is its
//!   one entry point (start, run an [`engine::Execution`], lint, stats,
//!   shutdown); inside are the isolate pool and threads, the watchdog, the
//!   worker processes of `"process"` isolation, the compile helpers,
//!   resolution and permissions, and `engine::js`, the V8 side.
//! - [`http`]: the accept loop, the route table, request parsing, reply
//!   writers, the one error type, and one handler file per API.
//! - [`workspace`]: saved code (codeId rules, fences, durable writes).
//! - [`jobs`]: code jobs and their durable records (SQLite behind a
//!   narrow store interface).
//! - [`sessions`]: sessions of the live-coding API (script and notebook).
//! - [`metrics`]: the Prometheus series.
//! - [`clock`]: epoch milliseconds and ISO 8601 times.
//! - [`init`]: what the server does as PID 1 (forward signals, reap).
//! - [`sync`]: locking that survives a panicked holder.
//!
//! Two boundaries hold:
//! - Only `engine` touches V8 or `deno_core` (`.ci/run` checks it); the
//!   HTTP layer sees plain Rust types ([`engine::Report`], [`engine::ExecError`]).
//! - Handlers never import the router: `http::router` imports them, so
//!   nothing runs in a circle.

pub mod app;
pub mod cli;
pub mod clock;
pub mod code;
pub mod config;
pub mod disk;
pub mod engine;
pub mod http;
pub mod init;
pub mod jobs;
pub mod metrics;
pub mod runner;
pub mod sessions;
pub mod sync;
pub mod workspace;

pub use config::Config;
pub use http::serve::run;
