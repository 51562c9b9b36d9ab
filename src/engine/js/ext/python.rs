//! Python: the hooks of `runtime_js/10_python.js`, and the files of the
//! Pyodide runtime it reads while it loads (handed over by the host, which
//! embeds them).

use deno_core::{OpState, op2, v8};
use deno_error::JsErrorBox;

/// Private symbol of the glue's `boot(makeAsm, makeLoader, lock, driver)`:
/// loads Pyodide into a runtime made for Python; resolves to true.
pub(crate) const PY_BOOT_KEY: &str = "isoexec.python.boot";
/// Private symbol of the glue's `run(code, filename, files)`: runs a
/// program and ends the execution with its exit code when not 0.
pub(crate) const PY_RUN_KEY: &str = "isoexec.python.run";
/// Private symbol of the glue's `cell(code)`: runs a notebook cell and
/// returns `[status, resultJson]`.
pub(crate) const PY_CELL_KEY: &str = "isoexec.python.cell";

/// The Pyodide files a Python runtime reads while it loads, by name.
#[derive(Clone, Copy)]
pub(crate) struct PythonFiles {
    pub wasm: &'static [u8],
    pub stdlib: &'static [u8],
}

/// The interpreter's memory right after its first start (Pyodide's memory
/// snapshot), made in this process or read from disk: later interpreters
/// restore it instead of starting CPython again.
static SNAPSHOT: std::sync::Mutex<Option<std::sync::Arc<Vec<u8>>>> = std::sync::Mutex::new(None);

fn snapshot_slot() -> std::sync::MutexGuard<'static, Option<std::sync::Arc<Vec<u8>>>> {
    SNAPSHOT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The snapshot interpreters restore, if there is one.
pub(crate) fn snapshot() -> Option<std::sync::Arc<Vec<u8>>> {
    snapshot_slot().clone()
}

/// Sets (or, with `None`, forgets) the snapshot interpreters restore.
pub(crate) fn set_snapshot(bytes: Option<Vec<u8>>) {
    *snapshot_slot() = bytes.map(std::sync::Arc::new);
}

/// Whether an interpreter has left a snapshot to restore.
#[op2(fast)]
pub(super) fn op_isoexec_python_has_snapshot() -> bool {
    snapshot_slot().is_some()
}

/// Keeps the snapshot the first interpreter made (the first one wins).
#[op2(fast)]
pub(super) fn op_isoexec_python_keep_snapshot(state: &mut OpState, #[buffer] bytes: &[u8]) {
    if state.try_borrow::<PythonFiles>().is_some() {
        let mut slot = snapshot_slot();
        if slot.is_none() {
            *slot = Some(std::sync::Arc::new(bytes.to_vec()));
        }
    }
}

/// The interpreter's WebAssembly module, compiled once per process: every
/// later interpreter makes its module object from the same compiled code
/// (V8 shares it between isolates) instead of compiling 9.6 MB again.
static MODULE: std::sync::OnceLock<v8::CompiledWasmModule> = std::sync::OnceLock::new();

/// The compiled interpreter module as a `WebAssembly.Module` of this
/// isolate, or `undefined` before the first interpreter compiled it.
#[op2]
pub(super) fn op_isoexec_python_module<'s>(
    scope: &mut v8::PinScope<'s, '_>,
) -> v8::Local<'s, v8::Value> {
    MODULE
        .get()
        .and_then(|compiled| v8::WasmModuleObject::from_compiled_module(scope, compiled))
        .map_or_else(|| v8::undefined(scope).into(), Into::into)
}

/// Keeps the compiled code of the interpreter module `module` (the first
/// one wins).
#[op2(fast)]
pub(super) fn op_isoexec_python_keep_module(module: v8::Local<v8::Value>) {
    if let Ok(module) = v8::Local::<v8::WasmModuleObject>::try_from(module) {
        let _ = MODULE.set(module.get_compiled_module());
    }
}

/// One of the runtime's files (`pyodide.asm.wasm`, `python_stdlib.zip`,
/// `snapshot`). Only a runtime the host made for Python has them.
#[op2]
#[buffer]
pub(super) fn op_isoexec_python_file(
    state: &mut OpState,
    #[string] name: &str,
) -> Result<Vec<u8>, JsErrorBox> {
    let files = state
        .try_borrow::<PythonFiles>()
        .ok_or_else(|| JsErrorBox::generic("this runtime was not made for Python"))?;
    match name {
        "pyodide.asm.wasm" => Ok(files.wasm.to_vec()),
        "python_stdlib.zip" => Ok(files.stdlib.to_vec()),
        "snapshot" => snapshot()
            .map(|s| s.as_ref().clone())
            .ok_or_else(|| JsErrorBox::generic("no Python snapshot yet")),
        other => Err(JsErrorBox::generic(format!("no Pyodide file {other}"))),
    }
}

/// Private symbol of `op_isoexec_require`, which the host hands to the
/// Node prelude of a program (user code never sees it).
pub(crate) const REQUIRE_KEY: &str = "isoexec.node.requireFile";

/// Private symbol of `op_isoexec_write` (raw program output), for the
/// Node prelude's `process.stdout.write`.
pub(crate) const WRITE_KEY: &str = "isoexec.node.write";

/// How a program's `require` finds a file: (specifier, the requiring
/// file) to (the file's path, its text), or why not. Set per call by the
/// host, over the call's module roots.
pub(crate) type RequireFn = dyn Fn(&str, &str) -> Result<(String, String), String> + Send + Sync;

/// The current call's `require` lookup.
pub(crate) struct RequireHook(pub std::sync::Arc<RequireFn>);

/// `require(specifier)` from the file `referrer`: `[path, text]`.
#[op2]
#[serde]
pub(super) fn op_isoexec_require(
    state: &mut OpState,
    #[string] specifier: &str,
    #[string] referrer: &str,
) -> Result<(String, String), JsErrorBox> {
    let hook = state
        .try_borrow::<RequireHook>()
        .map(|h| h.0.clone())
        .ok_or_else(|| JsErrorBox::generic("require is not available here"))?;
    hook(specifier, referrer).map_err(JsErrorBox::generic)
}

#[op2(fast)]
pub(super) fn op_isoexec_set_python_hooks(
    scope: &mut v8::PinScope,
    boot: v8::Local<v8::Function>,
    run: v8::Local<v8::Function>,
    cell: v8::Local<v8::Function>,
    require: v8::Local<v8::Function>,
    write: v8::Local<v8::Function>,
) {
    let global = scope.get_current_context().global(scope);
    let hooks = [
        (PY_BOOT_KEY, boot),
        (PY_RUN_KEY, run),
        (PY_CELL_KEY, cell),
        (REQUIRE_KEY, require),
        (WRITE_KEY, write),
    ];
    for (name, f) in hooks {
        if let Some(name) = v8::String::new(scope, name) {
            let key = v8::Private::for_api(scope, Some(name));
            global.set_private(scope, key, f.into());
        }
    }
}
