//! Builds the startup snapshot: a V8 heap with deno_core's JS and the
//! `isoexec` extension already evaluated, so a fresh isolate deserializes it
//! instead of compiling and running that code again for every clean-state
//! call. The extension comes from the same source files as the server's.

#![allow(dead_code, reason = "only the extension is used from these modules")]

#[path = "src/exec.rs"]
mod exec;
#[path = "src/net.rs"]
mod net;
#[path = "src/js/ops.rs"]
mod ops;
#[path = "src/permissions.rs"]
mod permissions;
#[path = "src/watchdog.rs"]
mod watchdog;

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/js/ops.rs");
    println!("cargo:rerun-if-changed=src/exec.rs");
    println!("cargo:rerun-if-changed=src/watchdog.rs");
    println!("cargo:rerun-if-changed=src/permissions.rs");
    println!("cargo:rerun-if-changed=src/net.rs");
    let output = deno_core::snapshot::create_snapshot(
        deno_core::snapshot::CreateSnapshotOptions {
            cargo_manifest_dir: env!("CARGO_MANIFEST_DIR"),
            startup_snapshot: None,
            skip_op_registration: false,
            extensions: vec![ops::isoexec::init()],
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
