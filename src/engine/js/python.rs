//! Python in a sandbox: Pyodide (CPython compiled to WebAssembly, vendored
//! from npm under `assets/pyodide/`, see `scripts/vendor-pyodide.sh`)
//! loaded into a runtime of its own, and programs and notebook cells run
//! in it through the glue of `runtime_js/10_python.js`.
//!
//! Pyodide's two scripts are ES modules written for browsers, Node and JS
//! shells. They are evaluated here as functions whose parameters stand in
//! for the globals a JS shell has (`read`, `readbuffer`, `load`), for
//! `WebAssembly`, which no user-facing global offers, and for a
//! `TextDecoder` that also speaks UTF-16LE and Latin-1: Pyodide takes the
//! shell's paths, reads its files through the host, and every page of wasm
//! memory it grows is charged to the execution's memory budget first.

use std::sync::atomic::AtomicI32;
use std::sync::{Arc, OnceLock};

use deno_core::v8;

use super::super::ext::{self, PY_BOOT_KEY, PY_CELL_KEY, PY_RUN_KEY, PythonFiles};
use super::super::failure::Failure;
use super::{Sandbox, main_scope};
use crate::engine::types::ExecError;

const WASM: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/pyodide/pyodide.asm.wasm"
));
const STDLIB: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/pyodide/python_stdlib.zip"
));
const ASM_JS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/pyodide/pyodide.asm.mjs"
));
const LOADER_JS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/pyodide/pyodide.mjs"
));
const LOCK: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/pyodide/pyodide-lock.json"
));
const DRIVER: &str = include_str!("driver.py");

/// The parameters Pyodide's scripts are wrapped in.
const PARAMS: &str = "WebAssembly, read, readbuffer, load, TextDecoder";

/// Pyodide's scripts as function expressions, made once per process.
struct Scripts {
    asm: String,
    loader: String,
}

/// Rewrites Pyodide's two modules into function expressions, or says what
/// in them no longer looks as expected (a Pyodide update).
fn scripts() -> Result<&'static Scripts, String> {
    static SCRIPTS: OnceLock<Result<Scripts, String>> = OnceLock::new();
    SCRIPTS
        .get_or_init(|| {
            Ok(Scripts {
                asm: wrap_asm(ASM_JS)?,
                loader: wrap_loader(LOADER_JS)?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `pyodide.asm.mjs`: its default export becomes the return value,
/// `import.meta.url` a constant, and the random source the web's
/// `crypto.getRandomValues` (the JS-shell path would run `os.system`).
fn wrap_asm(source: &str) -> Result<String, String> {
    const EXPORT: &str = "export default _createPyodideModule;";
    const RANDOM: &str = "var initRandomFill=()=>{";
    if !source.contains(EXPORT) || !source.contains(RANDOM) {
        return Err("pyodide.asm.mjs is not the vendored version".into());
    }
    let body = source
        .replace(EXPORT, "return _createPyodideModule;")
        .replace("import.meta.url", "\"file:///pyodide/pyodide.asm.mjs\"")
        .replace(
            RANDOM,
            "var initRandomFill=()=>{return view=>crypto.getRandomValues(view);",
        );
    Ok(format!("(function ({PARAMS}) {{\n{body}\n}})"))
}

/// `pyodide.mjs`: its `export{a as loadPyodide,…}` becomes a returned object.
fn wrap_loader(source: &str) -> Result<String, String> {
    let start = source
        .rfind("export{")
        .ok_or("pyodide.mjs has no export list")?;
    let end = start
        + source[start..]
            .find('}')
            .ok_or("pyodide.mjs has an unclosed export list")?;
    let fields: Vec<String> = source[start + "export{".len()..end]
        .split(',')
        .map(|pair| match pair.split_once(" as ") {
            Some((local, name)) => format!("{}: {}", name.trim(), local.trim()),
            None => pair.trim().to_string(),
        })
        .collect();
    let rest = source[end + 1..].trim_start_matches(';');
    Ok(format!(
        "(function ({PARAMS}) {{\n{}\nreturn {{{}}};\n{rest}\n}})",
        &source[..start],
        fields.join(", ")
    ))
}

/// Fails with `Failure::Internal` carrying `what`.
fn internal(what: impl Into<String>) -> Failure {
    Failure::Internal(what.into())
}

impl Sandbox {
    /// Loads Pyodide into this runtime (made by [`Sandbox::new`]); the
    /// runtime then serves Python only. Drives the event loop until it is
    /// loaded.
    ///
    /// With a `snapshot_file`, the first interpreter of a process restores
    /// the snapshot kept there (and forgets it, so the next try starts
    /// CPython, if it does not restore), or writes the one it made.
    pub(crate) async fn boot_python(
        &mut self,
        packages: &std::path::Path,
        snapshot_file: Option<&std::path::Path>,
    ) -> Result<(), ExecError> {
        let had = ext::snapshot().is_some();
        let from_disk = !had
            && snapshot_file
                .and_then(read_snapshot)
                .map(|bytes| ext::set_snapshot(Some(bytes)))
                .is_some();
        let result = self.boot_inner(packages).await;
        match (&result, snapshot_file) {
            (Err(_), Some(file)) if from_disk => {
                tracing::warn!(file = %file.display(), "a kept Python snapshot did not restore; starting CPython anew");
                ext::set_snapshot(None);
                let _ = std::fs::remove_file(file);
            }
            (Ok(()), Some(file)) if !had && !from_disk => {
                if let Some(Err(e)) = ext::snapshot().map(|bytes| write_snapshot(file, &bytes)) {
                    tracing::warn!(file = %file.display(), error = %e, "the Python snapshot could not be kept");
                }
            }
            _ => {}
        }
        if result.is_err() {
            self.poisoned = true;
        }
        result.map_err(|e| self.explain(e))
    }

    async fn boot_inner(&mut self, packages: &std::path::Path) -> Result<(), Failure> {
        // An operator's pure-Python packages, at /vendor/python inside.
        let vendored = read_tree(packages, None, VENDOR_FILES, VENDOR_BYTES)
            .into_iter()
            .filter_map(|(path, bytes)| {
                let rel = std::path::Path::new(&path).strip_prefix(packages).ok()?;
                Some((format!("{VENDOR_MOUNT}/{}", rel.to_string_lossy()), bytes))
            })
            .collect::<Vec<_>>();
        let scripts = scripts().map_err(internal)?;
        self.interrupt = Some(Arc::new(AtomicI32::new(0)));
        self.runtime.op_state().borrow_mut().put(PythonFiles {
            wasm: WASM,
            stdlib: STDLIB,
        });
        let asm = self
            .runtime
            .execute_script("ext:isoexec/pyodide.asm.js", scripts.asm.clone())
            .map_err(|e| Failure::Js(*e))?;
        let loader = self
            .runtime
            .execute_script("ext:isoexec/pyodide.js", scripts.loader.clone())
            .map_err(|e| Failure::Js(*e))?;
        let (boot, args) = {
            main_scope!(scope, self);
            let boot = hook(scope, PY_BOOT_KEY).ok_or_else(|| internal("no Python hooks"))?;
            let lock = v8::String::new(scope, LOCK).ok_or_else(|| internal("lock file"))?;
            let driver = v8::String::new(scope, DRIVER).ok_or_else(|| internal("driver"))?;
            let word = interrupt_word(scope, &self.interrupt)
                .ok_or_else(|| internal("the interrupt word"))?;
            let vendored =
                file_list(scope, vendored).ok_or_else(|| internal("the vendored files"))?;
            let args = [
                asm,
                loader,
                v8::Global::new(scope, v8::Local::<v8::Value>::from(lock)),
                v8::Global::new(scope, v8::Local::<v8::Value>::from(driver)),
                v8::Global::new(scope, v8::Local::<v8::Value>::from(word)),
                v8::Global::new(scope, v8::Local::<v8::Value>::from(vendored)),
            ];
            (boot, args)
        };
        self.call_settled(&boot, &args).await?;
        // What loading copied (the snapshot, the wasm and stdlib bytes) is
        // garbage now: collected here, before the interpreter waits.
        self.runtime.v8_isolate().low_memory_notification();
        Ok(())
    }

    /// Runs `code` as the Python program `filename`, after copying `files`
    /// (absolute path, bytes) into the interpreter's file system; what it
    /// writes under `root` is saved to the host afterwards, within the
    /// call's write permissions and quota. A
    /// program that exits with a code other than 0 ends as `Deno.exit`
    /// does. The runtime is not reused afterwards.
    pub(crate) async fn run_python(
        &mut self,
        code: &str,
        filename: &str,
        files: Vec<(String, Vec<u8>)>,
        root: Option<&str>,
    ) -> Result<(), ExecError> {
        let result = self.run_python_inner(code, filename, files, root).await;
        self.end_program(result)
    }

    async fn run_python_inner(
        &mut self,
        code: &str,
        filename: &str,
        files: Vec<(String, Vec<u8>)>,
        root: Option<&str>,
    ) -> Result<(), Failure> {
        let (run, args) = {
            main_scope!(scope, self);
            let run = hook(scope, PY_RUN_KEY).ok_or_else(|| internal("no Python hooks"))?;
            let code = v8::String::new(scope, code).ok_or_else(|| internal("the program"))?;
            let name = v8::String::new(scope, filename).ok_or_else(|| internal("file name"))?;
            let list = file_list(scope, files).ok_or_else(|| internal("the program's files"))?;
            let root: v8::Local<v8::Value> = match root {
                Some(root) => v8::String::new(scope, root)
                    .ok_or_else(|| internal("directory name"))?
                    .into(),
                None => v8::undefined(scope).into(),
            };
            let args = [
                v8::Global::new(scope, v8::Local::<v8::Value>::from(code)),
                v8::Global::new(scope, v8::Local::<v8::Value>::from(name)),
                v8::Global::new(scope, v8::Local::<v8::Value>::from(list)),
                v8::Global::new(scope, root),
            ];
            (run, args)
        };
        self.call_settled(&run, &args).await?;
        Ok(())
    }

    /// The interrupt word of a Python runtime: writing 2 raises
    /// `KeyboardInterrupt` in the running Python code.
    pub(crate) fn python_interrupt(&self) -> Option<Arc<AtomicI32>> {
        self.interrupt.clone()
    }

    /// Runs a notebook cell in this Python runtime: its status (0 ran, 1
    /// raised with the traceback on stderr, else a `sys.exit` code) and the
    /// JSON text of its last expression's value, if it had one.
    pub(crate) async fn python_cell(
        &mut self,
        code: &str,
    ) -> Result<(i32, Option<String>), ExecError> {
        let result = self.python_cell_inner(code).await;
        let result = match result {
            Ok(v) if self.record.reason().is_none() => Ok(v),
            Ok(_) => Err(Failure::Terminated),
            Err(e) => Err(e),
        };
        result.map_err(|e| self.explain(e).capped())
    }

    async fn python_cell_inner(&mut self, code: &str) -> Result<(i32, Option<String>), Failure> {
        let (cell, args) = {
            main_scope!(scope, self);
            let cell = hook(scope, PY_CELL_KEY).ok_or_else(|| internal("no Python hooks"))?;
            let code = v8::String::new(scope, code).ok_or_else(|| internal("the cell"))?;
            (
                cell,
                [v8::Global::new(scope, v8::Local::<v8::Value>::from(code))],
            )
        };
        let value = self.call_settled(&cell, &args).await?;
        main_scope!(scope, self);
        let value = v8::Local::new(scope, value);
        let parts = v8::Local::<v8::Array>::try_from(value)
            .map_err(|_| internal("a cell answered no pair"))?;
        let status = parts
            .get_index(scope, 0)
            .and_then(|v| v.int32_value(scope))
            .unwrap_or(1);
        let result = parts
            .get_index(scope, 1)
            .filter(|v| v.is_string())
            .map(|v| v.to_rust_string_lossy(scope));
        Ok((status, result))
    }
}

/// What starts a kept snapshot file; a SHA-256 of the rest follows.
const SNAPSHOT_MAGIC: &[u8; 8] = b"ISOPYSN1";

/// The snapshot file's name: this build and the vendored Pyodide's wasm,
/// so a file is only ever read by the build that wrote it.
pub(crate) fn snapshot_file_name() -> String {
    let wasm = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/pyodide/MANIFEST"
    ))
    .lines()
    .find(|l| l.starts_with("pyodide.asm.wasm "))
    .and_then(|l| l.split(' ').nth(3))
    .map_or("unknown", |h| &h[..h.len().min(16)]);
    format!("snapshot-{}-{wasm}.bin", env!("CARGO_PKG_VERSION"))
}

/// A kept snapshot, when the file is whole (its checksum holds).
fn read_snapshot(file: &std::path::Path) -> Option<Vec<u8>> {
    use sha2::Digest;
    let data = std::fs::read(file).ok()?;
    let (head, body) = data.split_at_checked(SNAPSHOT_MAGIC.len() + 32)?;
    let (magic, sum) = head.split_at(SNAPSHOT_MAGIC.len());
    (magic == SNAPSHOT_MAGIC && sha2::Sha256::digest(body).as_slice() == sum).then(|| body.to_vec())
}

/// Writes a snapshot whole or not at all (a temporary file, renamed).
fn write_snapshot(file: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use sha2::Digest;
    use std::io::Write;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = file.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&temp)?;
    f.write_all(SNAPSHOT_MAGIC)?;
    f.write_all(&sha2::Sha256::digest(bytes))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&temp, file)
}

/// Where an operator's Python packages appear inside the interpreter.
const VENDOR_MOUNT: &str = "/vendor/python";
/// At most this many vendored files, this many bytes in all, are loaded.
const VENDOR_FILES: usize = 10_000;
const VENDOR_BYTES: u64 = 64 * 1024 * 1024;

/// `[[path, Uint8Array], …]` of `files`, for the glue.
fn file_list<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    files: Vec<(String, Vec<u8>)>,
) -> Option<v8::Local<'s, v8::Array>> {
    let list = v8::Array::new(scope, files.len() as i32);
    for (i, (path, bytes)) in files.into_iter().enumerate() {
        let path = v8::String::new(scope, &path)?;
        let len = bytes.len();
        let store = v8::ArrayBuffer::new_backing_store_from_vec(bytes).make_shared();
        let buffer = v8::ArrayBuffer::with_backing_store(scope, &store);
        let view = v8::Uint8Array::new(scope, buffer, 0, len)?;
        let pair = v8::Array::new_with_elements(scope, &[path.into(), view.into()]);
        list.set_index(scope, i as u32, pair.into());
    }
    Some(list)
}

/// The regular files under `dir` (sub-directories too) with their bytes,
/// `skip` left out: at most `max_files` files and `max_bytes` bytes; what
/// does not fit is left out. Symbolic links are not followed.
pub(crate) fn read_tree(
    dir: &std::path::Path,
    skip: Option<&std::path::Path>,
    max_files: usize,
    max_bytes: u64,
) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut budget = max_bytes;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && files.len() < max_files && Some(path.as_path()) != skip {
                let len = entry.metadata().map_or(u64::MAX, |m| m.len());
                if len > budget {
                    continue;
                }
                if let Ok(bytes) = std::fs::read(&path) {
                    budget -= (bytes.len() as u64).min(budget);
                    files.push((path.to_string_lossy().into_owned(), bytes));
                }
            }
        }
    }
    files
}

/// An `Int32Array` over the interrupt word the host writes from another
/// thread; the buffer's memory is the `Arc`'s, released when both the
/// host and V8 are done with it.
fn interrupt_word<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    word: &Option<Arc<AtomicI32>>,
) -> Option<v8::Local<'s, v8::Int32Array>> {
    let word = word.clone()?;
    unsafe extern "C" fn release(
        _data: *mut std::ffi::c_void,
        _len: usize,
        owner: *mut std::ffi::c_void,
    ) {
        // SAFETY: `owner` is the pointer `Arc::into_raw` gave below, and V8
        // calls this once, when the buffer is gone.
        drop(unsafe { Arc::from_raw(owner as *const AtomicI32) });
    }
    let owner = Arc::into_raw(word);
    // SAFETY: the four bytes at `owner` live as long as the Arc this
    // buffer holds (released by `release`); an AtomicI32 may be read and
    // written as plain memory from V8's side.
    let store = unsafe {
        v8::ArrayBuffer::new_backing_store_from_ptr(
            owner as *mut std::ffi::c_void,
            std::mem::size_of::<AtomicI32>(),
            release,
            owner as *mut std::ffi::c_void,
        )
    }
    .make_shared();
    let buffer = v8::ArrayBuffer::with_backing_store(scope, &store);
    v8::Int32Array::new(scope, buffer, 0, 1)
}

/// The glue function under the private symbol `key`, if the glue set it.
fn hook(scope: &mut v8::PinScope, key: &str) -> Option<v8::Global<v8::Function>> {
    let function = super::private_function(scope, key)?;
    Some(v8::Global::new(scope, function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_scripts_wrap() {
        let s = scripts().expect("the vendored Pyodide scripts wrap");
        assert!(s.asm.starts_with("(function (WebAssembly"));
        assert!(s.loader.contains("loadPyodide: "));
        assert!(!s.asm.contains("import.meta"));
    }
}
