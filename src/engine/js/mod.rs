//! The V8 side of the engine: the extension and its ops (`ext/`), module
//! loading, the sandbox that runs one call, the counting allocator, result
//! conversion, and how failures are told apart.

pub(super) mod alloc;
pub(super) mod cells;
pub(super) mod convert;
pub(super) mod ext;
mod failure;
pub(super) mod loader;
pub(super) mod sandbox;

pub(super) use convert::ConvertLimits;
pub(super) use sandbox::{
    CallSetup, InitError, Sandbox, SandboxHost, Scope, read_tree, snapshot_file_name,
};
