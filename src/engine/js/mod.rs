//! The V8 side of the engine: the extension and its ops (`ext/`), module
//! loading, the sandbox that runs one call, the counting allocator, result
//! conversion, and how failures are told apart.

pub mod alloc;
pub mod convert;
pub mod ext;
mod failure;
pub mod loader;
pub mod notebook;
pub mod sandbox;

pub use convert::ConvertLimits;
pub use sandbox::{CallSetup, InitError, Sandbox, SandboxHost, Scope};
