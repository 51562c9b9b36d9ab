//! Everything that touches V8: the extension and its ops, module loading, the
//! sandbox that runs one call, and result conversion. Nothing outside this
//! module holds a V8 handle.

pub mod alloc;
pub mod convert;
pub mod ext;
pub mod loader;
pub mod sandbox;

pub use convert::ConvertLimits;
pub use sandbox::{Sandbox, SandboxHost};
