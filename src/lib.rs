pub mod app;
pub mod config;
pub mod engine;
pub mod http;
pub mod sync;
pub mod workspace;

pub use config::Config;
pub use http::serve::run;

/// Initialises V8's platform. Call once, on the main thread, before any
/// other thread starts.
pub fn init_v8() {
    engine::init_v8();
}
