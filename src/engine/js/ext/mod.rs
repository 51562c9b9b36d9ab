//! The host side of the JS glue in `runtime_js/`: the `isoexec` extension,
//! its ops (one file per area, as deno splits its own), and the per-call
//! state they read and write.

mod console;
mod deno;
mod fetch;
pub(crate) mod fetch_client;
mod fs;
mod global_writes;
mod memory;
mod python;
mod web;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use deno_core::{OpDecl, OpState, op2, v8};

use crate::engine::permissions::Permissions;
use crate::engine::watchdog::KillRecord;
pub(crate) use console::LogSink;
use console::{op_isoexec_log, op_isoexec_write};
use deno::{
    op_isoexec_deny, op_isoexec_env_get, op_isoexec_env_object, op_isoexec_exit,
    op_isoexec_stdin_read,
};
use fetch::op_isoexec_fetch;
use fs::{op_isoexec_read_file, op_isoexec_read_text_file, op_isoexec_write_file};
pub(crate) use global_writes::GlobalWrites;
use memory::{op_isoexec_charge, op_isoexec_release};
pub(crate) use python::{
    PY_BOOT_KEY, PY_CELL_KEY, PY_RUN_KEY, PythonFiles, REQUIRE_KEY, RequireHook, WRITE_KEY,
    set_snapshot, snapshot,
};
use python::{
    op_isoexec_python_file, op_isoexec_python_has_snapshot, op_isoexec_python_keep_module,
    op_isoexec_python_keep_snapshot, op_isoexec_python_module, op_isoexec_require,
    op_isoexec_set_python_hooks,
};
use web::{
    op_isoexec_now, op_isoexec_random_fill, op_isoexec_time_origin, op_isoexec_url_parse,
    op_isoexec_url_set, op_isoexec_utf8_decode,
};

/// Records the first capability refused to the current call, so a failure
/// it causes is reported as `permission_denied`.
fn record_denial(state: &mut OpState, message: &str) {
    if let Some(call) = CallState::of_mut(state) {
        call.denied.get_or_insert_with(|| message.to_owned());
    }
}

/// The permissions of the isolate's current call (none before one).
fn permissions(state: &OpState) -> Arc<Permissions> {
    state
        .try_borrow::<Arc<Permissions>>()
        .cloned()
        .unwrap_or_default()
}

/// What one call may use and what it did, kept in the `OpState`.
pub(crate) struct CallState {
    pub logs: LogSink,
    /// Variables `Deno.env.get` can see.
    pub env: HashMap<String, String>,
    /// The first capability refused to this call, if any.
    pub denied: Option<String>,
    /// The code passed to `Deno.exit`, if it was called.
    pub exit_code: Option<i32>,
    /// Bytes this call may still write to files (`MAX_WRITE_BYTES`).
    pub write_budget: u64,
    /// What `Deno.stdin` and `prompt()` read, and how much of it was read.
    pub stdin: Option<Arc<str>>,
    pub stdin_read: usize,
    /// Origin of `performance.now()`.
    pub started: Instant,
    /// The same instant as milliseconds since the Unix epoch, worked out
    /// when first asked for (`performance.timeOrigin`): most calls never
    /// ask, and reading the wall clock for each would cost them all.
    started_epoch_ms: Option<f64>,
}

/// Where the running call's [`CallState`] is kept in the `OpState`: the
/// slot stays there between calls, empty, so that a call's state is put in
/// and taken out without boxing it or touching the state's map.
struct CallSlot(Option<CallState>);

/// Puts `value` in the `OpState`, in the place of the one there if any:
/// `put` would box it anew and insert it into the state's map.
#[inline]
pub(crate) fn replace<T: 'static>(state: &mut OpState, value: T) {
    match state.try_borrow_mut::<T>() {
        Some(held) => *held = value,
        None => state.put(value),
    }
}

impl CallState {
    /// The running call's state; `None` between calls.
    #[inline]
    pub(crate) fn of(state: &OpState) -> Option<&CallState> {
        state.try_borrow::<CallSlot>()?.0.as_ref()
    }

    /// See [`CallState::of`].
    #[inline]
    pub(crate) fn of_mut(state: &mut OpState) -> Option<&mut CallState> {
        state.try_borrow_mut::<CallSlot>()?.0.as_mut()
    }

    /// Makes `call` the running call's state.
    #[inline]
    pub(crate) fn begin(state: &mut OpState, call: CallState) {
        replace(state, CallSlot(Some(call)));
    }

    /// Takes the running call's state out: none runs afterwards.
    #[inline]
    pub(crate) fn end(state: &mut OpState) -> Option<CallState> {
        state.try_borrow_mut::<CallSlot>()?.0.take()
    }

    pub(crate) fn new(
        logs: LogSink,
        env: HashMap<String, String>,
        write_budget: u64,
        stdin: Option<Arc<str>>,
        started: Instant,
    ) -> CallState {
        CallState {
            stdin,
            stdin_read: 0,
            logs,
            env,
            denied: None,
            exit_code: None,
            write_budget,
            started,
            started_epoch_ms: None,
        }
    }

    /// `started` as milliseconds since the Unix epoch: the wall clock now,
    /// less the time since.
    pub(crate) fn time_origin(&mut self) -> f64 {
        let started = self.started;
        *self.started_epoch_ms.get_or_insert_with(|| {
            let now = std::time::SystemTime::now();
            now.checked_sub(started.elapsed())
                .unwrap_or(now)
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        })
    }
}

/// The isolate's own handle and kill record, for ops that stop execution.
pub(crate) struct SelfKill {
    pub isolate: v8::IsolateHandle,
    pub record: Arc<KillRecord>,
}

/// Name of the V8 private symbol under which the glue's `settle` function
/// hangs on the global object: it cancels every timer a call left and
/// answers whether the runtime is quiet (no work V8 runs on its own, such
/// as an `Atomics.waitAsync`, is still pending). Private symbols are
/// invisible to JS, and, unlike `OpState`, they survive the startup
/// snapshot.
pub(crate) const SETTLE_KEY: &str = "isoexec.settle";

/// Name of the private symbol holding the glue's `seal` function, which
/// removes deno_core's namespace and installs the user-facing globals. It
/// runs once per runtime after creation: deno_core itself reads
/// `globalThis.Deno.core` while it restores a runtime from the snapshot.
pub(crate) const SEAL_KEY: &str = "isoexec.seal";

/// Name of the private symbol holding the glue's `lockdown` function, which
/// freezes what the global object leads to (frozen mode, once per runtime).
pub(crate) const LOCKDOWN_KEY: &str = "isoexec.lockdown";

/// Name of the private symbol holding the glue's `resetRealm` function,
/// which puts the global object back between frozen-mode calls.
pub(crate) const RESET_KEY: &str = "isoexec.resetRealm";

/// Name of the private symbol holding the glue's `serve` function, which
/// enters a module by its fetch handler (or lists what it exports).
pub(crate) const SERVE_KEY: &str = "isoexec.serve";

/// Name of the private symbol holding the glue's `resultJson` function,
/// which writes a call's result as JSON text (see `convert::to_json_by_hook`).
pub(crate) const JSON_KEY: &str = "isoexec.resultJson";

/// Name of the private symbol holding the glue's `callHook` function, which
/// calls a module's exported function and writes what it returns as JSON
/// text, in one entry into JS (see `convert::call_by_hook`).
pub(crate) const CALL_KEY: &str = "isoexec.call";

#[op2(fast)]
fn op_isoexec_set_hooks(
    scope: &mut v8::PinScope,
    settle: v8::Local<v8::Function>,
    seal: v8::Local<v8::Function>,
    lockdown: v8::Local<v8::Function>,
    reset: v8::Local<v8::Function>,
    serve: v8::Local<v8::Function>,
    json: v8::Local<v8::Function>,
    call: v8::Local<v8::Function>,
) {
    let global = scope.get_current_context().global(scope);
    let hooks = [
        (SETTLE_KEY, settle),
        (SEAL_KEY, seal),
        (LOCKDOWN_KEY, lockdown),
        (RESET_KEY, reset),
        (SERVE_KEY, serve),
        (JSON_KEY, json),
        (CALL_KEY, call),
    ];
    for (name, f) in hooks {
        if let Some(name) = v8::String::new(scope, name) {
            let key = v8::Private::for_api(scope, Some(name));
            global.set_private(scope, key, f.into());
        }
    }
}

/// The text of a call's result handed over so far by the glue's
/// `resultJson` (see `convert::to_json_by_hook`). The sandbox keeps a
/// handle to it beside the one in the op state.
#[derive(Clone, Default)]
pub(crate) struct ResultText(Rc<RefCell<Vec<u8>>>);

impl ResultText {
    /// The pieces handed over so far, leaving none.
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

/// A piece of a call's result text.
#[op2(fast)]
fn op_isoexec_result_chunk(state: &mut OpState, #[string] text: &str) {
    if let Some(out) = state.try_borrow::<ResultText>() {
        out.0.borrow_mut().extend_from_slice(text.as_bytes());
    }
}

/// A binary value of a call's result as a data URI, or `null` when it would
/// not fit in `room` more bytes of result text.
#[op2]
#[string]
fn op_isoexec_data_uri(#[anybuffer] bytes: &[u8], room: f64) -> Option<String> {
    use crate::engine::mime;
    (mime::data_uri_room(bytes.len()) as f64 <= room).then(|| mime::data_uri(bytes))
}

/// What the glue's `resultJson` must know of an object before it reads
/// anything of it, in one call: `1` a buffer or a view of one, `2` a shared
/// buffer, `3` to `6` a boxed number, string, boolean or BigInt, `7` a proxy,
/// `8` an array (not a proxy of one), `9` a promise, `0` anything else. Asking V8 is no
/// property read, so nothing of user code runs.
#[op2(fast, no_side_effects)]
fn op_isoexec_value_kind(value: &v8::Value) -> u32 {
    if value.is_array_buffer_view() || value.is_array_buffer() {
        1
    } else if value.is_shared_array_buffer() {
        2
    } else if value.is_number_object() {
        3
    } else if value.is_string_object() {
        4
    } else if value.is_boolean_object() {
        5
    } else if value.is_big_int_object() {
        6
    } else if value.is_proxy() {
        7
    } else if value.is_array() {
        8
    } else if value.is_promise() {
        9
    } else {
        0
    }
}

/// Built-in deno_core ops that user code must never run even if it found a
/// way to them: `op_panic` aborts the process, `op_print` writes to the
/// server's own stdout.
fn restrict_builtin_ops(op: OpDecl) -> OpDecl {
    match op.name {
        "op_panic" | "op_print" => op.disable(),
        _ => op,
    }
}

deno_core::extension!(
    isoexec,
    ops = [
        op_isoexec_log,
        op_isoexec_write,
        op_isoexec_utf8_decode,
        op_isoexec_url_parse,
        op_isoexec_url_set,
        op_isoexec_now,
        op_isoexec_time_origin,
        op_isoexec_random_fill,
        op_isoexec_deny,
        op_isoexec_env_get,
        op_isoexec_env_object,
        op_isoexec_exit,
        op_isoexec_stdin_read,
        op_isoexec_read_file,
        op_isoexec_read_text_file,
        op_isoexec_write_file,
        op_isoexec_fetch,
        op_isoexec_set_hooks,
        op_isoexec_data_uri,
        op_isoexec_result_chunk,
        op_isoexec_value_kind,
        op_isoexec_charge,
        op_isoexec_release,
        op_isoexec_python_file,
        op_isoexec_python_has_snapshot,
        op_isoexec_python_keep_snapshot,
        op_isoexec_python_module,
        op_isoexec_python_keep_module,
        op_isoexec_set_python_hooks,
        op_isoexec_require,
    ],
    middleware = restrict_builtin_ops,
    customizer = |ext: &mut deno_core::Extension| {
        ext.global_template_middleware = Some(global_writes::global_template);
        ext.external_references = global_writes::external_references().into();
        ext.esm_files = std::borrow::Cow::Borrowed(&RUNTIME_JS);
        ext.esm_entry_point = Some("ext:isoexec/99_main.js");
    },
);

macro_rules! runtime_js {
    ($($file:literal),* $(,)?) => {
        [$(deno_core::ExtensionFileSource::new(
            concat!("ext:isoexec/", $file),
            deno_core::ascii_str_include!(concat!("../../../../runtime_js/", $file)),
        )),*]
    };
}

/// The JS glue, embedded in the binary.
static RUNTIME_JS: [deno_core::ExtensionFileSource; 14] = runtime_js!(
    "00_inspect.js",
    "01_console.js",
    "02_timers.js",
    "03_encoding.js",
    "04_events.js",
    "05_url.js",
    "06_web.js",
    "06_http.js",
    "07_deno.js",
    "08_buffers.js",
    "09_lockdown.js",
    "10_python.js",
    "11_result.js",
    "99_main.js",
);
