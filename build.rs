//! Builds the startup snapshot: a V8 heap with deno_core's JS and the
//! `isoexec` extension already evaluated, so a fresh isolate deserializes it
//! instead of compiling and running that code again for every clean-state
//! call.
//!
//! It mirrors the server's extension exactly (deno_core refuses a snapshot
//! whose extensions differ from the runtime's): the files below are the
//! crate's own `src/engine/js/ext/` (the `extension!` and its ops), with
//! the modules they name (`types`, `permissions`, `watchdog`, `mime`, `js::alloc`), pulled
//! in with `#[path]` under the module paths they have in the crate. Adding
//! an op that uses another crate module means adding that module here too.

#![allow(
    dead_code,
    unused_imports,
    reason = "only the extension is used from these modules"
)]

// The extension's sources, under the same module paths as in the crate
// (`crate::engine::…`), so they compile unchanged here and in the server.
#[path = "src/engine/js/alloc.rs"]
mod alloc_source;
#[path = "src/engine/js/ext/mod.rs"]
mod ext_source;
#[path = "src/engine/mime.rs"]
mod mime_source;
#[path = "src/engine/permissions.rs"]
mod permissions_source;
#[path = "src/engine/types.rs"]
mod types_source;
#[path = "src/engine/watchdog.rs"]
mod watchdog_source;

mod engine {
    pub(crate) use super::mime_source as mime;
    pub(crate) use super::permissions_source as permissions;
    pub(crate) use super::types_source as types;
    pub(crate) use super::watchdog_source as watchdog;
    pub mod js {
        pub(crate) use super::super::alloc_source as alloc;
        pub(crate) use super::super::ext_source as ext;
    }
}

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/engine/js/ext");
    println!("cargo:rerun-if-changed=src/engine/types.rs");
    println!("cargo:rerun-if-changed=src/engine/watchdog.rs");
    println!("cargo:rerun-if-changed=src/engine/permissions.rs");
    println!("cargo:rerun-if-changed=src/engine/mime.rs");
    let output = deno_core::snapshot::create_snapshot(
        deno_core::snapshot::CreateSnapshotOptions {
            cargo_manifest_dir: env!("CARGO_MANIFEST_DIR"),
            startup_snapshot: None,
            skip_op_registration: false,
            extensions: vec![engine::js::ext::isoexec::init()],
            extension_transpiler: None,
            with_runtime_cb: None,
        },
        None,
    )
    .expect("creating the startup snapshot");
    for path in &output.files_loaded_during_snapshot {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed=runtime_js");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    std::fs::write(out_dir.join("isoexec.snap"), &output.output).expect("writing the snapshot");
}
