//! One isolate: a `JsRuntime` with the `isoexec` extension, a heap limit and
//! a near-heap-limit callback wired to its kill record, and the sequence that
//! runs a function call in it.

#[path = "python.rs"]
mod python;

#[cfg(test)]
mod node_tests {
    use super::is_commonjs;

    #[test]
    fn commonjs_is_told_from_es_modules_as_node_does() {
        assert!(is_commonjs("const fs = require('fs');\nconsole.log(1)"));
        assert!(is_commonjs(
            "// import x from 'y'\nconst m = await import('./m.js');"
        ));
        assert!(is_commonjs("/*\nimport a from 'b'\n*/\nmodule.exports = 1"));
        assert!(!is_commonjs("import fs from 'node:fs';\nconsole.log(1)"));
        assert!(!is_commonjs("const a = 1;\nexport { a };"));
        assert!(!is_commonjs("export default function f() {}"));
        assert!(!is_commonjs("console.log(import.meta.url)"));
    }
}
pub(crate) use python::{read_tree, snapshot_file_name};

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use deno_core::error::{CoreError, CoreErrorKind, JsError};
use deno_core::{JsRuntime, ModuleId, ModuleSpecifier, PollEventLoopOptions, RuntimeOptions, v8};

use super::alloc::{self, Budget};
use super::convert::{self, Called, ConvertError, ConvertLimits};
use super::ext::{
    self, CALL_KEY, CallState, GlobalWrites, JSON_KEY, LOCKDOWN_KEY, LogSink, REQUIRE_KEY,
    RESET_KEY, RequireHook, ResultText, SEAL_KEY, SERVE_KEY, SETTLE_KEY, SelfKill, WRITE_KEY,
    isoexec,
};
use super::failure::{Failure, core_error, exception_from_js, load_error};
use super::loader::{LoadNotes, Loader, Notes};
use crate::engine::keyed::KeyedMap;
use crate::engine::permissions::Permissions;
use crate::engine::resolve::Resolver;
use crate::engine::transpile_cache::Module;
use crate::engine::transpile_cache::TranspileCache;
use crate::engine::types::{Entry, ExecError, LogEntry};
use crate::engine::watchdog::{CancelFlag, KillReason, KillRecord};

/// Extra heap granted the first time the limit is hit. V8 aborts the process
/// if the callback does not raise the limit enough for the allocation in
/// progress, and a builtin such as `Array.prototype.fill` can ask for up to
/// about 1 GiB (V8's largest single object) without ever checking for
/// termination; this margin covers that allocation, so the builtin returns
/// and the pending termination stops the script.
const HEAP_GRACE_FIRST: usize = 1280 * 1024 * 1024;
/// Extra heap granted on each later call while termination is pending.
const HEAP_GRACE_MORE: usize = 64 * 1024 * 1024;

/// Bytes a nanosecond V8's heap grows at most, whatever the code: every
/// object V8 allocates is written as it is made, and no core writes
/// memory at 32 GB/s. (Measured: filling arrays, building strings and
/// objects, parsing JSON grow it by 0.04 to 1 byte a nanosecond.)
const HEAP_GROWTH_PER_NS: usize = 32;

/// The most V8's heap can grow in `ran` (see [`HEAP_GROWTH_PER_NS`]).
fn heap_growth(ran: std::time::Duration) -> usize {
    usize::try_from(ran.as_nanos())
        .unwrap_or(usize::MAX)
        .saturating_mul(HEAP_GROWTH_PER_NS)
}

/// V8 heap with deno_core's JS and the `isoexec` extension already
/// evaluated, made by `build.rs`.
static SNAPSHOT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/isoexec.snap"));

/// What every runtime is made with.
#[derive(Clone)]
pub(crate) struct SandboxHost {
    /// V8 heap limit in bytes.
    pub heap_limit: usize,
    pub resolver: Arc<Resolver>,
    pub cache: Arc<TranspileCache>,
    pub permissions: Arc<Permissions>,
    /// Module roots besides a scope's own directory (tools, vendor).
    pub shared_roots: Vec<std::path::PathBuf>,
    /// Pure-Python packages every Python interpreter can import
    /// (`<VENDOR_DIR>/python`).
    pub python_packages: std::path::PathBuf,
    /// The file the Python snapshot is kept in between runs, if any.
    pub python_snapshot: Option<std::path::PathBuf>,
}

/// What one call may reach when it is confined to a directory.
#[derive(Clone)]
pub(crate) struct Scope {
    pub resolver: Arc<Resolver>,
    pub permissions: Arc<Permissions>,
}

impl SandboxHost {
    /// The scope of code confined to `dir`: it resolves relative imports
    /// there (and reads the tools and vendor roots), and may read and write
    /// files only inside it.
    pub(crate) fn scoped(&self, dir: &std::path::Path) -> Scope {
        let mut roots = vec![dir.to_path_buf()];
        roots.extend(self.shared_roots.iter().cloned());
        Scope {
            resolver: Arc::new(Resolver::new(dir, roots, dir.join("import_map.json"))),
            permissions: Arc::new(Permissions {
                read: vec![dir.to_path_buf()],
                write: vec![dir.to_path_buf()],
                net: self.permissions.net.clone(),
                base_dir: dir.to_path_buf(),
                env: self.permissions.env.clone(),
            }),
        }
    }
}

/// What a call needs besides its code.
pub(crate) struct CallSetup {
    pub logs: LogSink,
    /// When the call began (`performance.now()` counts from it).
    pub started: Instant,
    pub env: HashMap<String, String>,
    /// When the call must end; compiling imports obeys it too.
    pub deadline: Instant,
    pub cancel: Option<Arc<CancelFlag>>,
    pub write_budget: u64,
    pub stdin: Option<Arc<str>>,
    /// A directory the call is confined to, if any.
    pub scope: Option<Scope>,
    /// Hosts `fetch` may reach instead of the server's, if given.
    pub net: Option<Arc<Vec<String>>>,
    /// Buffer memory the call may hold, when less than the isolate's.
    pub memory_limit: Option<usize>,
}

/// Why a runtime could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    #[error("{0}")]
    Runtime(#[from] CoreError),
    #[error("the runtime's globals could not be installed")]
    Seal,
    #[error("the runtime's built-ins could not be frozen")]
    Lockdown,
    #[error("the Python interpreter could not be loaded: {0}")]
    Python(String),
}

/// Removes deno_core's namespace from a fresh runtime and installs the
/// user-facing globals, via the glue's one-shot `seal` hook.
fn seal(runtime: &mut JsRuntime) -> bool {
    call_hook(runtime, SEAL_KEY, true)
}

/// Calls the glue function stored under the private symbol `key` on the
/// global object, removing it first when `take` is set. False when it is
/// missing or threw.
fn call_hook(runtime: &mut JsRuntime, key: &str, take: bool) -> bool {
    hook_result(runtime, key, take).is_some()
}

/// Whether the hook under `key` ran and returned `true`; `None` when it is
/// missing or threw.
fn hook_result(runtime: &mut JsRuntime, key: &str, take: bool) -> Option<bool> {
    deno_core::scope!(scope, runtime);
    v8::tc_scope!(let tc, scope);
    let hook = private_function(tc, key)?;
    if take {
        let global = tc.get_current_context().global(tc);
        let name = v8::String::new(tc, key)?;
        let key = v8::Private::for_api(tc, Some(name));
        global.delete_private(tc, key)?;
    }
    let recv = v8::undefined(tc).into();
    hook.call(tc, recv, &[]).map(|v| v.is_true())
}

/// A call's payload (JSON text) as a V8 value: `null`, booleans and small
/// integers, the usual payloads, made directly; anything else by V8's JSON
/// parser. `None` when V8 could not make it.
fn payload_value<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    json: &str,
) -> Option<v8::Local<'s, v8::Value>> {
    match json {
        "null" => return Some(v8::null(scope).into()),
        "true" => return Some(v8::Boolean::new(scope, true).into()),
        "false" => return Some(v8::Boolean::new(scope, false).into()),
        _ => {}
    }
    let digits = json.strip_prefix('-').unwrap_or(json);
    // What JSON writes as an integer: no leading zero, and not -0 (a double).
    let integer = (1..=9).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (json == "0" || !digits.starts_with('0'));
    if integer && let Ok(n) = json.parse::<i32>() {
        return Some(v8::Integer::new(scope, n).into());
    }
    v8::String::new(scope, json).and_then(|s| v8::json::parse(scope, s))
}

/// A call's settled value as JSON text, by the glue's result hook when it
/// has one (which also settles a warm runtime, `settle`), and whether the
/// runtime was quiet then (see [`convert::to_json_by_hook`]).
fn converted<'s>(
    tc: &mut TryCatchScope<'_, '_, 's, '_>,
    hook: Option<v8::Local<'s, v8::Function>>,
    value: v8::Local<'s, v8::Value>,
    limits: ConvertLimits,
    settle: bool,
    pieces: &ResultText,
) -> Result<(String, Option<bool>), Box<Failure>> {
    match hook {
        Some(hook) => convert::to_json_by_hook(tc, hook, value, limits, settle, pieces),
        None => convert::to_json(tc, value, limits).map(|json| (json, None)),
    }
    .map_err(|e| Box::new(conversion_failure(tc, e)))
}

/// Why a result could not be converted, as the call's failure.
fn conversion_failure(tc: &mut TryCatchScope<'_, '_, '_, '_>, error: ConvertError) -> Failure {
    match error {
        ConvertError::OutputLimit(message) => Failure::OutputLimit(message),
        ConvertError::Thrown {
            synthetic: Some((name, message)),
        } => Failure::Thrown {
            name,
            message,
            stack: None,
        },
        ConvertError::Thrown { synthetic: None } => {
            if tc.has_terminated() || !tc.can_continue() {
                return Failure::Terminated;
            }
            match tc.exception() {
                Some(exception) => Failure::Js(*JsError::from_v8_exception(tc, exception)),
                None => Failure::Terminated,
            }
        }
    }
}

/// What a call into user code threw, or that it was ended, as deno_core
/// words it.
fn thrown(tc: &mut TryCatchScope<'_, '_, '_, '_>) -> Failure {
    let exception = match tc.exception() {
        Some(exception) if !tc.is_execution_terminating() => exception,
        _ => v8::undefined(tc).into(),
    };
    let error = deno_core::error::exception_to_err(tc, exception, false, true);
    Failure::Core(error.into())
}

/// The names of the module's exported functions, for a call of a name it
/// does not export as one.
fn exported_functions(
    tc: &mut TryCatchScope<'_, '_, '_, '_>,
    ns: v8::Local<v8::Object>,
) -> Vec<String> {
    let mut exports = Vec::new();
    if let Some(keys) = ns.get_own_property_names(tc, Default::default()) {
        for i in 0..keys.length() {
            let Some(key) = keys.get_index(tc, i) else {
                continue;
            };
            let is_fn = ns.get(tc, key).is_some_and(|v| v.is_function());
            if is_fn {
                exports.push(key.to_rust_string_lossy(tc));
            }
        }
    }
    exports
}

/// A scope of `$sandbox`'s runtime in its main context: deno_core's
/// `scope!` but from the context handle the sandbox keeps, where
/// `JsRuntime::main_context` would make and drop a new handle each time.
/// The sandbox's own methods make their scopes with it.
macro_rules! main_scope {
    ($scope:ident, $sandbox:expr) => {
        let isolate = &mut *$sandbox.runtime.v8_isolate();
        v8::scope!($scope, isolate);
        let context = v8::Local::new($scope, &$sandbox.context);
        let $scope = &mut v8::ContextScope::new($scope, context);
    };
}
// By path too: `python`, a child module, is declared above it.
use main_scope;

/// The glue function hanging on the global object under the private
/// symbol `key`, if the glue set one.
pub(super) fn private_function<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    key: &str,
) -> Option<v8::Local<'s, v8::Function>> {
    let global = scope.get_current_context().global(scope);
    let name = v8::String::new(scope, key)?;
    let key = v8::Private::for_api(scope, Some(name));
    let value = global.get_private(scope, key)?;
    v8::Local::<v8::Function>::try_from(value).ok()
}

/// A runtime and what the host keeps beside it.
pub(crate) struct Sandbox {
    runtime: JsRuntime,
    record: Arc<KillRecord>,
    isolate: v8::IsolateHandle,
    notes: Notes,
    /// Modules already evaluated in this runtime (warm mode), by source
    /// hash, with their namespace objects (which never change).
    modules: KeyedMap<[u8; 32], Rc<v8::Global<v8::Object>>>,
    /// Set when the runtime must not run another call.
    poisoned: bool,
    /// What a call that is not confined to a scope may reach.
    permissions: Arc<Permissions>,
    /// Frozen mode: built-ins frozen, a fresh module instance per call and
    /// the global object put back after each.
    frozen: bool,
    /// Modules loaded over the runtime's life (a module map only grows).
    loaded: Rc<std::cell::Cell<usize>>,
    /// ArrayBuffer backing stores: memory outside the heap.
    buffers: Arc<Budget>,
    /// A Python runtime's interrupt word: 2 written here raises
    /// `KeyboardInterrupt` in the running Python code.
    interrupt: Option<Arc<std::sync::atomic::AtomicI32>>,
    /// What a call that is not confined to a scope may import (and require).
    resolver: Arc<Resolver>,
    /// The shared transpile cache, which also keeps V8's code caches.
    cache: Arc<TranspileCache>,
    /// The glue's per-call hooks (settle, reset), found once.
    hooks: Vec<(&'static str, Rc<v8::Global<v8::Function>>)>,
    /// The name of the function the last call asked for, as the
    /// internalized string V8 looks an export up by: a client calls the
    /// same one again and again.
    export_key: Option<(Box<str>, v8::Global<v8::String>)>,
    /// The runtime's main context, kept: `JsRuntime::main_context` makes a
    /// new handle to it (and drops it) on every use (see `main_scope!`).
    context: v8::Global<v8::Context>,
    /// The pieces of a call's result text the glue hands over (shared with
    /// `op_isoexec_result_chunk`).
    pieces: ResultText,
    /// Frozen mode: the last call's reset is still to be done (see
    /// [`Sandbox::finish_reset`]).
    reset_pending: bool,
    /// Frozen mode: by source hash, whether a module's instances are made
    /// through V8 directly (see [`Sandbox::direct_instance`]).
    direct: KeyedMap<[u8; 32], bool>,
    /// Frozen mode: by source hash, the function that makes a module's
    /// instances, compiled once here (see [`Sandbox::direct_instance`]);
    /// `None` if it did not compile.
    factories: KeyedMap<[u8; 32], Option<v8::Global<v8::Function>>>,
    /// The used heap when last read, and what the calls since could have
    /// added to it at most (see [`Sandbox::memory_at_most`]).
    heap_read: Option<usize>,
    heap_slack: usize,
    /// The resolver of the `require` hook in the OpState, once there is one.
    require_of: Option<Arc<Resolver>>,
    /// Whose code a kept isolate has run (see `Execution::owner`): set by
    /// its first call, and only calls of that owner are given it after.
    pub(crate) owner: Option<Option<Arc<str>>>,
}

impl Sandbox {
    /// Creates a runtime as `host` says. Must run inside a tokio runtime
    /// context.
    pub(crate) fn new(host: &SandboxHost) -> Result<Sandbox, InitError> {
        Sandbox::create(host, false)
    }

    /// A runtime with V8's inspector, for a notebook (its cells are
    /// evaluated through an inspector session in REPL mode).
    pub(crate) fn with_inspector(host: &SandboxHost) -> Result<Sandbox, InitError> {
        Sandbox::create(host, true)
    }

    /// A runtime for `"frozen"` calls: its built-ins are frozen once, here,
    /// and every call gets fresh module instances and a clean global.
    pub(crate) fn frozen(host: &SandboxHost) -> Result<Sandbox, InitError> {
        let mut sandbox = Sandbox::create(host, false)?;
        // From here on its global object's changes are noted, for the
        // reset after each call (lockdown's own among them).
        sandbox
            .runtime
            .v8_isolate()
            .set_slot(GlobalWrites::default());
        let locked = sandbox.with_entered(|sb| sb.check(LOCKDOWN_KEY));
        if !locked {
            sandbox.poisoned = true;
            return Err(InitError::Lockdown);
        }
        sandbox.frozen = true;
        Ok(sandbox)
    }

    fn create(host: &SandboxHost, inspector: bool) -> Result<Sandbox, InitError> {
        let record = Arc::new(KillRecord::default());
        let notes = Notes::default();
        let loaded = Rc::new(std::cell::Cell::new(0));
        // Backing stores of ArrayBuffers live outside the heap: they get a
        // budget of their own, as large as the heap's.
        let budget = Budget::new(host.heap_limit, record.clone());
        let params = v8::Isolate::create_params()
            .heap_limits(0, host.heap_limit)
            .array_buffer_allocator(alloc::allocator(&budget));
        let mut runtime = JsRuntime::try_new(RuntimeOptions {
            extensions: vec![isoexec::init()],
            startup_snapshot: Some(SNAPSHOT),
            module_loader: Some(Rc::new(Loader {
                notes: notes.clone(),
                resolver: host.resolver.clone(),
                cache: host.cache.clone(),
                record: record.clone(),
                loaded: loaded.clone(),
            })),
            create_params: Some(params),
            inspector,
            ..Default::default()
        })
        .map_err(InitError::Runtime)?;
        runtime
            .v8_isolate()
            .set_prepare_stack_trace_callback(super::failure::prepare_stack_trace);
        let sealed = seal(&mut runtime);
        let isolate = runtime.v8_isolate().thread_safe_handle();
        budget.attach(isolate.clone());
        let (cb_isolate, cb_record) = (isolate.clone(), record.clone());
        let mut granted = false;
        runtime.add_near_heap_limit_callback(move |current, _initial| {
            cb_record.mark(KillReason::MemoryLimit);
            cb_isolate.terminate_execution();
            let grace = if granted {
                HEAP_GRACE_MORE
            } else {
                HEAP_GRACE_FIRST
            };
            granted = true;
            current + grace
        });
        {
            let state = runtime.op_state();
            let mut state = state.borrow_mut();
            state.put(SelfKill {
                isolate: isolate.clone(),
                record: record.clone(),
            });
            state.put(host.permissions.clone());
            state.put(budget.clone());
        }
        let pieces = ResultText::default();
        runtime.op_state().borrow_mut().put(pieces.clone());
        let context = runtime.main_context();
        // V8 keeps a per-thread stack of entered isolates and creating one
        // enters it. An isolate thread keeps several runtimes, so each one is entered
        // only while in use (see `with_entered`) and before it is dropped.
        // SAFETY: the isolate was entered by its creation just above, on this
        // thread, and nothing else was entered since.
        unsafe { runtime.v8_isolate().exit() };
        if !sealed {
            // Dropping enters the isolate again, as `Drop` requires.
            drop(Sandbox {
                runtime,
                record,
                isolate,
                notes,
                modules: KeyedMap::default(),
                poisoned: true,
                permissions: host.permissions.clone(),
                frozen: false,
                loaded,
                buffers: budget,
                interrupt: None,
                resolver: host.resolver.clone(),
                cache: host.cache.clone(),
                hooks: Vec::new(),
                export_key: None,
                context,
                pieces,
                direct: KeyedMap::default(),
                factories: KeyedMap::default(),
                reset_pending: false,
                heap_read: None,
                heap_slack: 0,
                require_of: None,
                owner: None,
            });
            return Err(InitError::Seal);
        }
        Ok(Sandbox {
            runtime,
            record,
            isolate,
            notes,
            modules: KeyedMap::default(),
            poisoned: false,
            permissions: host.permissions.clone(),
            frozen: false,
            loaded,
            buffers: budget,
            interrupt: None,
            resolver: host.resolver.clone(),
            cache: host.cache.clone(),
            hooks: Vec::new(),
            export_key: None,
            context,
            pieces,
            direct: KeyedMap::default(),
            factories: KeyedMap::default(),
            reset_pending: false,
            heap_read: None,
            heap_slack: 0,
            require_of: None,
            owner: None,
        })
    }

    /// Runs `f` with this sandbox's isolate entered on the current thread.
    /// Every use of the runtime goes through here.
    pub(crate) fn with_entered<R>(&mut self, f: impl FnOnce(&mut Sandbox) -> R) -> R {
        // SAFETY: enter/exit are paired around `f` on this thread; the
        // runtime never leaves the thread (JsRuntime is !Send).
        unsafe { self.runtime.v8_isolate().enter() };
        let r = f(self);
        // SAFETY: this isolate is the one entered just above; `f` cannot
        // leave another entered (every use goes through this method).
        unsafe { self.runtime.v8_isolate().exit() };
        r
    }

    /// This sandbox with its isolate entered on the current thread until
    /// the guard is dropped: for a call that spans awaits (see
    /// `engine::lane`), where a closure cannot hold the isolate entered.
    /// Nothing else may enter an isolate on this thread meanwhile.
    pub(crate) fn entered(&mut self) -> Entered<'_> {
        // SAFETY: paired with the exit in `Entered::drop`, on this thread
        // (the guard borrows the sandbox, which never leaves it).
        unsafe { self.runtime.v8_isolate().enter() };
        Entered(self)
    }

    /// The runtime itself, for the notebook's inspector session.
    pub(super) fn runtime_mut(&mut self) -> &mut JsRuntime {
        &mut self.runtime
    }

    pub(crate) fn isolate_handle(&self) -> v8::IsolateHandle {
        self.isolate.clone()
    }

    pub(crate) fn kill_record(&self) -> Arc<KillRecord> {
        self.record.clone()
    }

    /// The code the running call gave `Deno.exit`, if it called it.
    pub(crate) fn exit_code(&self) -> Option<i32> {
        CallState::of(&self.runtime.op_state().borrow()).and_then(|c| c.exit_code)
    }

    /// False once the runtime was killed or left in a state no later call
    /// may see.
    pub(crate) fn reusable(&self) -> bool {
        !self.poisoned && self.record.reason().is_none()
    }

    /// Number of distinct modules loaded so far: scripts kept warm, or in
    /// frozen mode every module its module map holds.
    pub(crate) fn module_count(&self) -> usize {
        if self.frozen {
            self.loaded.get()
        } else {
            self.modules.len()
        }
    }

    /// Marks the runtime as not to be kept for another call.
    pub(crate) fn retire(&mut self) {
        self.poisoned = true;
    }

    /// Bytes the runtime holds for what JS made: the used heap and the
    /// ArrayBuffer backing stores outside it. What decides whether a
    /// runtime is kept for another call.
    pub(crate) fn memory_used(&mut self) -> usize {
        let heap = self
            .runtime
            .v8_isolate()
            .get_heap_statistics()
            .used_heap_size();
        self.heap_read = Some(heap);
        self.heap_slack = 0;
        heap.saturating_add(self.buffers.used())
    }

    /// At least the bytes the runtime holds after a call that ran for
    /// `ran` (see [`Sandbox::memory_used`]), without reading the heap's
    /// figures — a walk over its spaces, a tenth of a short call's CPU —
    /// while the calls since the last reading cannot have grown the heap
    /// by more than `slack`: no code grows V8's heap faster than
    /// [`HEAP_GROWTH_PER_NS`] bytes a nanosecond. The backing stores are
    /// counted exactly, as they come.
    pub(crate) fn memory_at_most(&mut self, ran: std::time::Duration, slack: usize) -> usize {
        let grown = self.heap_slack.saturating_add(heap_growth(ran));
        match self.heap_read {
            Some(read) if grown <= slack => {
                self.heap_slack = grown;
                read.saturating_add(grown)
                    .saturating_add(self.buffers.used())
            }
            _ => self.memory_used(),
        }
    }

    /// Collects all the garbage V8 can, and gives freed heap pages back.
    pub(crate) fn collect_garbage(&mut self) {
        self.runtime.v8_isolate().low_memory_notification();
    }

    /// Heap figures in bytes: (total, used, external).
    pub(crate) fn heap_figures(&mut self) -> [u64; 3] {
        let stats = self.runtime.v8_isolate().get_heap_statistics();
        [
            stats.total_heap_size() as u64,
            stats.used_heap_size() as u64,
            stats.external_memory() as u64,
        ]
    }

    /// Prepares the per-call state (logs, env, deadline, scope) before a
    /// call.
    pub(crate) fn begin_call(&mut self, setup: CallSetup) {
        let (resolver, permissions) = match setup.scope {
            Some(scope) => (Some(scope.resolver), scope.permissions),
            None => (None, self.permissions.clone()),
        };
        let permissions = match setup.net {
            Some(net) => Arc::new(Permissions {
                net: net.to_vec(),
                ..(*permissions).clone()
            }),
            None => permissions,
        };
        self.buffers.limit_call(setup.memory_limit);
        // A program's `require` finds files as its imports do: a new hook
        // when the resolver differs from the one the installed hook uses.
        let modules = resolver.clone().unwrap_or_else(|| self.resolver.clone());
        let require = match &self.require_of {
            Some(installed) if Arc::ptr_eq(installed, &modules) => None,
            _ => {
                self.require_of = Some(modules.clone());
                Some(RequireHook(Arc::new(
                    move |specifier: &str, referrer: &str| {
                        modules.require_file(specifier, referrer)
                    },
                )))
            }
        };
        *self.notes.borrow_mut() = LoadNotes {
            deadline: Some(setup.deadline),
            cancel: setup.cancel,
            resolver,
            ..LoadNotes::default()
        };
        let state = self.runtime.op_state();
        let mut state = state.borrow_mut();
        ext::replace(&mut state, permissions);
        if let Some(require) = require {
            ext::replace(&mut state, require);
        }
        let call = CallState::new(
            setup.logs,
            setup.env,
            setup.write_budget,
            setup.stdin,
            setup.started,
        );
        CallState::begin(&mut state, call);
    }

    /// Takes the logs of the call that just ended.
    pub(crate) fn take_logs(&mut self) -> (Vec<LogEntry>, bool) {
        let state = self.runtime.op_state();
        let mut state = state.borrow_mut();
        match CallState::end(&mut state) {
            Some(call) => (call.logs.entries, call.logs.truncated),
            None => (Vec::new(), false),
        }
    }

    /// Runs `fn_name(payload)` from `module` and returns the result as JSON.
    /// With `warm`, the module is loaded once and reused by later calls.
    pub(crate) async fn call(
        &mut self,
        module: &Arc<Module>,
        fn_name: &str,
        payload_json: &str,
        limits: ConvertLimits,
        warm: bool,
        entry: Entry,
    ) -> Result<String, ExecError> {
        // Whoever keeps a frozen runtime finishes its reset before lending
        // it out again; this only makes sure.
        self.finish_reset();
        if self.poisoned {
            return Err(ExecError::Internal {
                message: "a frozen isolate could not be put back before a call".into(),
            });
        }
        // Whether the result hook found the runtime quiet after a warm call
        // it settled (see `call_inner`).
        let mut quiet = None;
        let mut result = self
            .call_inner(module, fn_name, payload_json, limits, warm, entry)
            .await
            .map(|(json, settled)| {
                quiet = settled;
                json
            });
        if result.is_ok() && self.record.reason().is_some() {
            // Killed after the last JS ran (say, a builtin that allocated
            // past the memory limit and returned): the kill stands.
            result = Err(Failure::Terminated);
        }
        let user_error = match &result {
            Err(Failure::Core(e)) => matches!(*e.0, CoreErrorKind::Js(_)),
            Err(
                Failure::Js(_)
                | Failure::Thrown { .. }
                | Failure::FnNotFound(_)
                | Failure::OutputLimit(_),
            ) => true,
            _ => false,
        };
        if self.frozen && (result.is_ok() || user_error) && self.record.reason().is_none() {
            // A frozen isolate outlives an exception: the reset undoes what
            // the call changed, as after a normal end. A kill or a failure
            // on the host's side retires it.
            self.settle_frozen();
        } else if result.is_err() {
            // An isolate that failed mid-call may hold half-changed state.
            self.poisoned = true;
        } else if warm {
            match quiet {
                Some(true) => {}
                Some(false) => self.poisoned = true,
                None => self.settle_warm(),
            }
        }
        let instance = self.notes.borrow_mut().instance.take();
        let frozen = self.frozen;
        result.map_err(|e| {
            let error = self.explain(e);
            // The fragment is the host's device: keep it out of errors.
            let error = match instance {
                Some(fragment) => error.map_text(|t| t.replace(&format!("#{fragment}"), "")),
                None => error,
            };
            if frozen { frozen_hint(error) } else { error }.capped()
        })
    }

    /// Runs the file at `url` (or `source`, known by that URL) as the main
    /// module until nothing is left to do (or `Deno.exit`). Node's program
    /// globals (`process`, `Buffer`) come first; a JavaScript file with no
    /// `import` or `export` runs as a CommonJS module (`require`, `module`,
    /// `__filename`), as Node decides. The runtime is not reused afterwards.
    pub(crate) async fn run_program(
        &mut self,
        url: &ModuleSpecifier,
        source: Option<Arc<str>>,
        javascript: bool,
    ) -> Result<(), ExecError> {
        // A JavaScript file is read here, for the CommonJS check, and the
        // loader is given that text rather than reading the file again.
        let text = match source {
            Some(text) => Some(text),
            None if javascript => read_program(url).map(Into::into),
            None => None,
        };
        if let Some(text) = &text {
            self.notes.borrow_mut().main_source = Some((url.clone(), text.clone()));
        }
        // .cjs is CommonJS and .mjs an ES module whatever they hold, as in
        // Node; other JavaScript files say by what they hold.
        let path = url.path();
        let commonjs = match &text {
            _ if path.ends_with(".mjs") => false,
            Some(_) if path.ends_with(".cjs") => true,
            Some(text) if javascript => is_commonjs(text),
            _ => false,
        };
        let result = self
            .program_inner(url, commonjs.then_some(text).flatten())
            .await;
        self.end_program(result)
    }

    /// How a program's run reads to its caller; the runtime is retired. A
    /// kill recorded after the last JS ran (a builtin that allocated past
    /// the limit and returned) stands.
    fn end_program(&mut self, mut result: Result<(), Failure>) -> Result<(), ExecError> {
        if result.is_ok() && self.record.reason().is_some() {
            result = Err(Failure::Terminated);
        }
        self.poisoned = true;
        result.map_err(|e| self.explain(e).capped())
    }

    async fn program_inner(
        &mut self,
        url: &ModuleSpecifier,
        commonjs: Option<Arc<str>>,
    ) -> Result<(), Failure> {
        let node = self.install_node().await?;
        self.notes.borrow_mut().node = true;
        // On the first line, so the program's line numbers hold. A file
        // that only an ES module may hold (top-level `await`) is one, as
        // Node decides when CommonJS does not parse.
        let source = commonjs.clone();
        let function = match commonjs {
            Some(text) => {
                let wrapped = format!(
                    "(function (exports, require, module, __filename, __dirname) {{ {text}\n}})"
                );
                match self.runtime.execute_script(url.to_string(), wrapped) {
                    Ok(f) => Some(f),
                    Err(e) if e.exception_message.contains("await is only valid") => None,
                    Err(e) => return Err(Failure::Js(*e)),
                }
            }
            None => None,
        };
        match function.zip(source) {
            Some((function, text)) => {
                let filename = url
                    .to_file_path()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|()| url.to_string());
                let args = vec![
                    function,
                    self.text_value(&filename)
                        .ok_or_else(|| Failure::Internal("a file name".into()))?,
                    self.text_value(&text)
                        .ok_or_else(|| Failure::Internal("the program's text".into()))?,
                ];
                self.call_node(&node, "main", args).await?;
            }
            None => {
                let id = self
                    .runtime
                    .load_main_es_module(url)
                    .await
                    .map_err(Failure::Load)?;
                self.evaluate(id).await?;
            }
        }
        self.runtime
            .run_event_loop(PollEventLoopOptions::default())
            .await
            .map_err(Failure::Core)?;
        self.call_node(&node, "finish", Vec::new()).await
    }

    /// Evaluates Node's program globals (`process`, `Buffer`, `require`'s
    /// modules) into this runtime; returns the prelude's hooks.
    async fn install_node(&mut self) -> Result<v8::Global<v8::Value>, Failure> {
        let prelude = self
            .runtime
            .execute_script("ext:isoexec/node.js", NODE_PRELUDE.to_string())
            .map_err(|e| Failure::Js(*e))?;
        // The prelude is a function of the host's `require` lookup.
        let (prelude, lookup) = {
            main_scope!(scope, self);
            let prelude = v8::Local::new(scope, prelude);
            let prelude = v8::Local::<v8::Function>::try_from(prelude)
                .map_err(|_| Failure::Internal("the Node prelude is not a function".into()))?;
            let mut hooks = Vec::new();
            for name in [REQUIRE_KEY, WRITE_KEY] {
                let hook = private_function(scope, name)
                    .ok_or_else(|| Failure::Internal(format!("no hook {name}")))?;
                hooks.push(v8::Global::new(scope, v8::Local::<v8::Value>::from(hook)));
            }
            (v8::Global::new(scope, prelude), hooks)
        };
        self.call_settled(&prelude, &lookup).await
    }

    /// Node's globals for a notebook: `process`, `Buffer`, and, as in
    /// Node's REPL, `require` (relative to `dir`), `module` and `exports`.
    pub(crate) async fn install_node_repl(&mut self, dir: &str) -> Result<(), ExecError> {
        let result = async {
            let node = self.install_node().await?;
            self.notes.borrow_mut().node = true;
            let dir = self
                .text_value(dir)
                .ok_or_else(|| Failure::Internal("the session directory".into()))?;
            self.call_node(&node, "repl", vec![dir]).await
        }
        .await;
        result.map_err(|e| self.explain(e))
    }

    /// `text` as a JS string; `None` past V8's string length.
    fn text_value(&mut self, text: &str) -> Option<v8::Global<v8::Value>> {
        main_scope!(scope, self);
        let value = v8::String::new(scope, text)?;
        Some(v8::Global::new(scope, v8::Local::<v8::Value>::from(value)))
    }

    /// Calls the hook `name` of the Node prelude's hooks with `args`.
    async fn call_node(
        &mut self,
        node: &v8::Global<v8::Value>,
        name: &str,
        args: Vec<v8::Global<v8::Value>>,
    ) -> Result<(), Failure> {
        let function = {
            main_scope!(scope, self);
            let hooks = v8::Local::new(scope, node);
            let hooks = v8::Local::<v8::Object>::try_from(hooks)
                .map_err(|_| Failure::Internal("the Node prelude gave no hooks".into()))?;
            let key = v8::String::new(scope, name)
                .ok_or_else(|| Failure::Internal("a hook name".into()))?;
            let function = hooks
                .get(scope, key.into())
                .and_then(|f| v8::Local::<v8::Function>::try_from(f).ok())
                .ok_or(Failure::Terminated)?;
            v8::Global::new(scope, function)
        };
        self.call_settled(&function, &args).await?;
        Ok(())
    }

    /// Calls `function` with `args`, driving the event loop until what it
    /// returns (a promise, or a value) settles; the settled value.
    pub(super) async fn call_settled(
        &mut self,
        function: &v8::Global<v8::Function>,
        args: &[v8::Global<v8::Value>],
    ) -> Result<v8::Global<v8::Value>, Failure> {
        let call = self.runtime.call_with_args(function, args);
        self.runtime
            .with_event_loop_promise(Box::pin(call), PollEventLoopOptions::default())
            .await
            .map_err(Failure::Core)
    }

    /// Evaluates a loaded module, driving the event loop until its
    /// evaluation (top-level await included) settles.
    async fn evaluate(&mut self, id: ModuleId) -> Result<(), Failure> {
        let eval = self.runtime.mod_evaluate(id);
        self.runtime
            .with_event_loop_promise(Box::pin(eval), PollEventLoopOptions::default())
            .await
            .map_err(Failure::Core)
    }

    /// The call's result as JSON text, and, after a warm call whose result
    /// hook also settled the runtime, whether it was quiet then (`None`
    /// when the hook did not settle it).
    async fn call_inner(
        &mut self,
        module: &Arc<Module>,
        fn_name: &str,
        payload_json: &str,
        limits: ConvertLimits,
        warm: bool,
        entry: Entry,
    ) -> Result<(String, Option<bool>), Failure> {
        let kept = self.modules.get(&module.hash).cloned();
        let namespace = match kept {
            // The module's first load and a frozen instance are boxed: their
            // futures are large, and a warm call, which awaits neither,
            // would carry their size (see `lane::run`).
            _ if self.frozen
                && let Some(namespace) =
                    Box::pin(self.direct_instance(module, entry == Entry::Function)).await? =>
            {
                Rc::new(namespace)
            }
            _ if self.frozen => {
                // A new instance of the module and of everything it imports:
                // the same URLs with a fragment no earlier call used.
                let fragment = uuid::Uuid::new_v4().simple().to_string();
                let mut url = module.specifier.clone();
                url.set_fragment(Some(&fragment));
                self.notes.borrow_mut().instance = Some(fragment);
                // The loader gives the instance its code and the code cache.
                self.notes.borrow_mut().frozen_root = Some((url.clone(), module.clone()));
                let loaded = Box::pin(self.runtime.load_side_es_module(&url)).await;
                self.notes.borrow_mut().frozen_root = None;
                let id = loaded.map_err(Failure::Load)?;
                Box::pin(self.evaluate(id)).await?;
                Rc::new(
                    self.runtime
                        .get_module_namespace(id)
                        .map_err(Failure::Core)?,
                )
            }
            Some(namespace) if warm => namespace,
            _ => {
                let id = if warm {
                    Box::pin(
                        self.runtime
                            .load_side_es_module_from_code(&module.specifier, module.code.clone()),
                    )
                    .await
                } else {
                    Box::pin(
                        self.runtime
                            .load_main_es_module_from_code(&module.specifier, module.code.clone()),
                    )
                    .await
                }
                .map_err(Failure::Load)?;
                Box::pin(self.evaluate(id)).await?;
                let namespace = Rc::new(
                    self.runtime
                        .get_module_namespace(id)
                        .map_err(Failure::Core)?,
                );
                if warm {
                    self.modules.insert(module.hash, namespace.clone());
                }
                namespace
            }
        };

        // The call and, when it returns a value rather than a promise (the
        // common case), the conversion of that value, in one scope: the
        // event loop has nothing to drive for it.
        let (call_hook, hook) = if entry == Entry::Function {
            (self.hook(CALL_KEY), None)
        } else {
            (None, self.hook(JSON_KEY))
        };
        // A warm call's runtime is settled by the same hook.
        let settle = warm && !self.frozen;
        let pieces = self.pieces.clone();
        let export_key = &mut self.export_key;
        let promise = {
            main_scope!(scope, self);
            v8::tc_scope!(let tc, scope);
            let ns = v8::Local::new(tc, &*namespace);
            if entry == Entry::Function {
                // The export's look-up, the call and the conversion of a
                // value it returns: one entry into JS, by the glue's hook.
                let Some(call_hook) = call_hook.as_deref().map(|hook| v8::Local::new(tc, hook))
                else {
                    return Err(Failure::Internal("the glue gave no call hook".into()));
                };
                let key = match &*export_key {
                    Some((name, key)) if **name == *fn_name => Some(v8::Local::new(tc, key)),
                    _ => {
                        let key = v8::String::new_from_utf8(
                            tc,
                            fn_name.as_bytes(),
                            v8::NewStringType::Internalized,
                        );
                        *export_key = key.map(|key| (fn_name.into(), v8::Global::new(tc, key)));
                        key
                    }
                };
                let Some(argument) = payload_value(tc, payload_json) else {
                    return Err(if tc.has_terminated() {
                        Failure::Terminated
                    } else {
                        Failure::Internal("the payload could not be passed to V8".into())
                    });
                };
                let called = match key {
                    Some(key) => convert::call_by_hook(
                        tc,
                        call_hook,
                        (ns, key),
                        argument,
                        limits,
                        settle,
                        &pieces,
                    ),
                    None => Ok(Called::NotAFunction),
                };
                match called {
                    Ok(Called::Json(text, quiet)) => return Ok((text, quiet)),
                    Ok(Called::Promise(promise)) => v8::Global::new(tc, promise),
                    Ok(Called::NotAFunction) => {
                        if tc.has_terminated() {
                            return Err(Failure::Terminated);
                        }
                        return Err(Failure::FnNotFound(exported_functions(tc, ns)));
                    }
                    // The function or the result's own code threw, or the
                    // call was ended.
                    Err(ConvertError::Thrown { synthetic: None }) => return Err(thrown(tc)),
                    Err(e) => return Err(conversion_failure(tc, e)),
                }
            } else {
                // The glue's serve hook enters the module: its fetch
                // handler, or a description of its exports.
                let Some(serve) = private_function(tc, SERVE_KEY) else {
                    return Err(if tc.has_terminated() {
                        Failure::Terminated
                    } else {
                        Failure::Internal("the glue gave no serve hook".into())
                    });
                };
                let request: v8::Local<v8::Value> = if entry == Entry::Fetch {
                    let parsed =
                        v8::String::new(tc, payload_json).and_then(|s| v8::json::parse(tc, s));
                    match parsed {
                        Some(v) => v,
                        None if tc.has_terminated() => return Err(Failure::Terminated),
                        None => {
                            return Err(Failure::Internal(
                                "the request could not be passed to V8".into(),
                            ));
                        }
                    }
                } else {
                    v8::null(tc).into()
                };
                let this = v8::undefined(tc).into();
                match serve.call(tc, this, &[ns.into(), request]) {
                    Some(value) if !value.is_promise() => {
                        let hook = hook.as_deref().map(|hook| v8::Local::new(tc, hook));
                        return converted(tc, hook, value, limits, settle, &pieces).map_err(|e| *e);
                    }
                    Some(promise) => v8::Global::new(tc, promise),
                    None => return Err(thrown(tc)),
                }
            }
        };

        // A promise: settled by the event loop, then converted.
        let settled = self.runtime.resolve(promise);
        let value = self
            .runtime
            .with_event_loop_promise(Box::pin(settled), PollEventLoopOptions::default())
            .await
            .map_err(Failure::Core)?;
        let hook = hook.or_else(|| self.hook(JSON_KEY));
        main_scope!(scope, self);
        v8::tc_scope!(let tc, scope);
        let local = v8::Local::new(tc, &value);
        let hook = hook.as_deref().map(|hook| v8::Local::new(tc, hook));
        converted(tc, hook, local, limits, settle, &pieces).map_err(|e| *e)
    }

    /// A new instance of `module` for a frozen call, made through V8 itself
    /// when the module is self-contained: no `import` anywhere in its text
    /// (no other module, no `import.meta`, no dynamic import written as
    /// such) and no top-level await. Then deno_core's module loading is
    /// skipped and nothing is added to its module map (the instance is
    /// garbage once the call is over). The first call of a module in this
    /// runtime loads it once through deno_core, never evaluated, so that
    /// stack traces find its source map. `None` when the module needs
    /// deno_core's loading (then the caller makes the instance that way).
    ///
    /// With `by_factory` (a call of an exported function) and a factory
    /// script for the module (see `compile::factory`), the instance is what
    /// one call of that function returns: its closures share their type
    /// feedback and optimized code with every earlier instance's, so the
    /// call runs warm code on new bindings. Otherwise it is a module
    /// instance, compiled (V8's compilation cache knows the module by name
    /// and text, so no instance parses it or compiles its functions again),
    /// linked and evaluated, whose functions start without feedback.
    async fn direct_instance(
        &mut self,
        module: &Arc<Module>,
        by_factory: bool,
    ) -> Result<Option<v8::Global<v8::Object>>, Failure> {
        if !module
            .code_cache_tried
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.make_code_cache(module);
        }
        let direct = match self.direct.get(&module.hash) {
            Some(direct) => *direct,
            None => {
                let direct = !module.code.contains("import")
                    && self
                        .runtime
                        .load_side_es_module_from_code(&module.specifier, module.code.clone())
                        .await
                        .is_ok();
                // Counted with the instances: the module map keeps it.
                self.loaded.set(self.loaded.get() + 1);
                self.direct.insert(module.hash, direct);
                direct
            }
        };
        if !direct {
            return Ok(None);
        }
        // Its text imports nothing, but its code may still import at run
        // time (through `eval`): what it imports during this call gets
        // URLs of its own, as the loader gives an instance's imports.
        let fragment = uuid::Uuid::new_v4().simple().to_string();
        self.notes.borrow_mut().instance = Some(fragment);
        let factory_script = match module.factory.get() {
            Some(Some(script)) if by_factory => Some(script),
            _ => None,
        };
        let made = {
            main_scope!(scope, self);
            v8::tc_scope!(let tc, scope);
            let factory = factory_script.and_then(|script| {
                self.factories
                    .entry(module.hash)
                    .or_insert_with(|| compile_factory(tc, module, script))
                    .clone()
            });
            match factory {
                Some(factory) => factory_instance(tc, &factory).map(Some),
                None => new_instance(tc, module),
            }
        };
        match made {
            Ok(Some(namespace)) => Ok(Some(namespace)),
            Ok(None) => {
                self.direct.insert(module.hash, false);
                Ok(None)
            }
            Err(failure) => Err(*failure),
        }
    }

    /// Makes V8's code cache for `module` with every function compiled, so
    /// that a frozen call's new instance neither parses the module nor
    /// compiles its functions on their first call; kept in the transpile
    /// cache for every isolate. The module compiled here is never
    /// instantiated: no user code runs. Nothing is kept if it does not
    /// compile (the call's own load reports why).
    fn make_code_cache(&mut self, module: &Module) {
        let cache = {
            main_scope!(scope, self);
            v8::tc_scope!(let tc, scope);
            let compiled = (|| {
                let (text, origin) = module_source(tc, module)?;
                let mut source = v8::script_compiler::Source::new(text, Some(&origin));
                let compiled = v8::script_compiler::compile_module2(
                    tc,
                    &mut source,
                    v8::script_compiler::CompileOptions::EagerCompile,
                    v8::script_compiler::NoCacheReason::NoReason,
                )?;
                compiled
                    .get_unbound_module_script(tc)
                    .create_code_cache()
                    .map(|c| c.to_vec())
            })();
            tc.reset();
            compiled
        };
        if let Some(bytes) = cache {
            self.cache.keep_code_cache(module, &bytes);
        }
    }

    /// Ends a frozen-mode call: anything the call left running must finish
    /// now, before the global object is put back, or the runtime is retired.
    fn settle_frozen(&mut self) {
        {
            main_scope!(scope, self);
            scope.perform_microtask_checkpoint();
        }
        // Timers go first, and nothing V8 runs outside the event loop may
        // be pending; then the event loop must be idle: an op still in
        // flight (a fetch, a read) would resolve into a later call.
        let idle = self.check(SETTLE_KEY) && {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            matches!(
                self.runtime
                    .poll_event_loop(&mut cx, PollEventLoopOptions::default()),
                std::task::Poll::Ready(Ok(()))
            )
        };
        if idle {
            // The answer does not wait for it (see `finish_reset`).
            self.reset_pending = true;
        } else {
            self.poisoned = true;
        }
    }

    /// Whether the global object is still to be put back after the last
    /// frozen call.
    pub(crate) fn reset_pending(&self) -> bool {
        self.reset_pending
    }

    /// Puts the global object back as lockdown left it after a frozen call,
    /// and the host's per-call JS state, when that is still to be done; the
    /// runtime is retired when it cannot be. Done once the call's answer
    /// has gone (no code of the call runs in it: it deletes, compares and
    /// defines properties of an ordinary object), and in any case before
    /// the runtime serves another call. The isolate must be entered.
    pub(crate) fn finish_reset(&mut self) {
        if !std::mem::take(&mut self.reset_pending) {
            return;
        }
        let started = Instant::now();
        let written = GlobalWrites::take(self.runtime.v8_isolate());
        if !self.check_with(RESET_KEY, written) {
            self.poisoned = true;
        }
        // The reset's own changes are not a call's.
        GlobalWrites::take(self.runtime.v8_isolate());
        // What it allocated counts in the heap's bound as a call's would.
        self.heap_slack = self
            .heap_slack
            .saturating_add(heap_growth(started.elapsed()));
    }

    /// The glue's hook under `key`, looked up once per runtime.
    fn hook(&mut self, key: &'static str) -> Option<Rc<v8::Global<v8::Function>>> {
        // A handful of keys, all constants: a look along a list.
        if let Some((_, hook)) = self.hooks.iter().find(|(k, _)| *k == key) {
            return Some(hook.clone());
        }
        let found = {
            main_scope!(scope, self);
            private_function(scope, key).map(|f| Rc::new(v8::Global::new(scope, f)))
        };
        let found = found?;
        self.hooks.push((key, found.clone()));
        Some(found)
    }

    /// Whether the glue's hook under `key` ran and returned `true`.
    fn check(&mut self, key: &'static str) -> bool {
        self.check_with(key, false)
    }

    /// Whether the glue's hook under `key`, given `flag`, ran and returned
    /// `true`.
    fn check_with(&mut self, key: &'static str, flag: bool) -> bool {
        let Some(hook) = self.hook(key) else {
            return false;
        };
        main_scope!(scope, self);
        v8::tc_scope!(let tc, scope);
        let hook = v8::Local::new(tc, &*hook);
        let recv = v8::undefined(tc).into();
        let flag = v8::Boolean::new(tc, flag).into();
        hook.call(tc, recv, &[flag]).is_some_and(|v| v.is_true())
    }

    /// Cancels timers a warm call left behind, so they cannot fire during a
    /// later call, and retires the runtime if work V8 runs on its own is
    /// still pending (or the hook failed): it could run in a later call.
    fn settle_warm(&mut self) {
        if !self.check(SETTLE_KEY) {
            self.poisoned = true;
        }
    }

    /// Turns a failure into what the caller sees, trusting the host's own
    /// records (kill reason, refused capability) over V8's messages.
    fn explain(&mut self, failure: Failure) -> ExecError {
        if let Some(reason) = self.record.reason() {
            return reason.error(self.exit_code().unwrap_or(0));
        }
        let syntax = self.notes.borrow_mut().syntax.take();
        if let Some(message) = self.notes.borrow_mut().internal.take() {
            return ExecError::Internal { message };
        }
        let denied = self.notes.borrow_mut().denied.take().or_else(|| {
            CallState::of_mut(&mut self.runtime.op_state().borrow_mut())
                .and_then(|c| c.denied.take())
        });
        match failure {
            Failure::FnNotFound(exports) => ExecError::FnNotFound {
                name: String::new(),
                exports,
                declared: false,
            },
            Failure::OutputLimit(message) => ExecError::OutputLimit { message },
            Failure::Internal(message) => ExecError::Internal { message },
            Failure::Terminated => ExecError::Internal {
                message: "execution was terminated without a recorded reason".into(),
            },
            Failure::Load(_) if syntax.is_some() => syntax.unwrap_or(ExecError::Internal {
                message: String::new(),
            }),
            _ if denied.is_some() => ExecError::PermissionDenied {
                message: denied.unwrap_or_default(),
            },
            Failure::Thrown {
                name,
                message,
                stack,
            } => ExecError::Exception {
                name,
                message,
                stack,
            },
            Failure::Js(js) => exception_from_js(&js),
            Failure::Load(e) => load_error(e),
            Failure::Core(e) => core_error(e),
        }
    }
}

/// Node's program globals and `require` (see the file).
const NODE_PRELUDE: &str = include_str!("node_prelude.js");

/// A program's text read from its file URL; `None` when it cannot be read
/// whole (missing, not UTF-8, past the module size limit), and the module
/// loader then reads it and says why.
fn read_program(url: &ModuleSpecifier) -> Option<String> {
    use std::io::Read;
    let path = url.to_file_path().ok()?;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(super::loader::MAX_MODULE_BYTES + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() as u64 <= super::loader::MAX_MODULE_BYTES).then_some(text)
}

/// Whether a JavaScript program is CommonJS, as Node 22 decides for a file
/// that does not say: no `import` or `export` statement and no
/// `import.meta` (a dynamic `import()` is allowed in both).
pub(crate) fn is_commonjs(text: &str) -> bool {
    let mut in_block_comment = false;
    for line in text.lines() {
        let mut l = line.trim_start();
        if in_block_comment {
            match l.find("*/") {
                Some(end) => {
                    in_block_comment = false;
                    l = l[end + 2..].trim_start();
                }
                None => continue,
            }
        }
        if l.starts_with("/*") && !l.contains("*/") {
            in_block_comment = true;
            continue;
        }
        let esm_import = l.strip_prefix("import").is_some_and(|rest| {
            rest.starts_with([' ', '{', '*', '"', '\'', '\t'])
                && !rest.trim_start().starts_with('(')
        });
        let esm_export = l
            .strip_prefix("export")
            .is_some_and(|rest| rest.starts_with([' ', '{', '*', '\t']));
        if esm_import || esm_export || line.contains("import.meta") {
            return false;
        }
    }
    true
}

/// V8's words for a write a frozen object refused.
const FROZEN_WRITE: [&str; 4] = [
    "object is not extensible",
    "Cannot assign to read only property",
    "Cannot redefine property",
    "Cannot delete property",
];

/// `text` (`module`'s code, or a script made of it) and an origin under
/// `module`'s name: the one deno_core gives a module of that name when
/// `is_module` (V8 knows compiled code by both), its lines counted from
/// `line_offset`; `None` past V8's string length or while terminating.
fn named_source<'s>(
    scope: &v8::PinScope<'s, '_>,
    module: &Module,
    text: &str,
    line_offset: i32,
    is_module: bool,
) -> Option<(v8::Local<'s, v8::String>, v8::ScriptOrigin<'s>)> {
    let name = v8::String::new(scope, module.specifier.as_str())?;
    let text = v8::String::new(scope, text)?;
    let origin = v8::ScriptOrigin::new(
        scope,
        name.into(),
        line_offset,
        0,
        false,
        0,
        None,
        false,
        false,
        is_module,
        None,
    );
    Some((text, origin))
}

/// `module`'s text and the origin deno_core gives a module of its name.
fn module_source<'s>(
    scope: &v8::PinScope<'s, '_>,
    module: &Module,
) -> Option<(v8::Local<'s, v8::String>, v8::ScriptOrigin<'s>)> {
    named_source(scope, module, &module.code, 0, true)
}

type TryCatchScope<'a, 'b, 'c, 'd> = v8::PinnedRef<'a, v8::TryCatch<'b, 'c, v8::HandleScope<'d>>>;

/// Why making a frozen instance stopped: a termination, or what its top
/// level threw.
fn stopped(tc: &mut TryCatchScope<'_, '_, '_, '_>) -> Box<Failure> {
    if tc.has_terminated() {
        return Box::new(Failure::Terminated);
    }
    Box::new(match tc.exception() {
        Some(exception) => Failure::Js(*JsError::from_v8_exception(tc, exception)),
        None => Failure::Internal("a frozen instance could not be made".into()),
    })
}

/// Compiles `module`'s factory `script` (see `compile::factory`) under
/// the module's name, its lines counted from the module's first (the
/// script's first line is its own); the function it evaluates to. No user
/// code runs. `None` if V8 refuses it.
fn compile_factory(
    tc: &mut TryCatchScope<'_, '_, '_, '_>,
    module: &Module,
    script: &str,
) -> Option<v8::Global<v8::Function>> {
    let made = (|| {
        let (text, origin) = named_source(tc, module, script, -1, false)?;
        let value = v8::Script::compile(tc, text, Some(&origin))?.run(tc)?;
        let function = v8::Local::<v8::Function>::try_from(value).ok()?;
        Some(v8::Global::new(tc, function))
    })();
    if made.is_none() && !tc.has_terminated() {
        tc.reset();
    }
    made
}

/// A new instance of a module through its factory: the object of getters
/// for its exports that one call of the factory returns, after what the
/// module's top level queued has run. An `Err` is the call's failure: its
/// top level threw, or it was stopped.
fn factory_instance(
    tc: &mut TryCatchScope<'_, '_, '_, '_>,
    factory: &v8::Global<v8::Function>,
) -> Result<v8::Global<v8::Object>, Box<Failure>> {
    let factory = v8::Local::new(tc, factory);
    let receiver = v8::undefined(tc).into();
    let Some(exports) = factory.call(tc, receiver, &[]) else {
        return Err(stopped(tc));
    };
    // What the module's top level queued runs before the call, as when
    // deno_core evaluates a module.
    tc.perform_microtask_checkpoint();
    if tc.has_terminated() {
        return Err(Box::new(Failure::Terminated));
    }
    let exports = v8::Local::<v8::Object>::try_from(exports).map_err(|_| {
        Box::new(Failure::Internal(
            "a module's factory returned no object".into(),
        ))
    })?;
    Ok(v8::Global::new(tc, exports))
}

/// Compiles, links and evaluates a new instance of the self-contained
/// `module` (see [`Sandbox::direct_instance`]); its namespace. `Ok(None)`
/// when it is not one after all (it does not compile, it imports, or it
/// awaits at its top level): no code of it ran. An `Err` is the call's
/// failure: its top level threw, or it was stopped.
fn new_instance(
    tc: &mut TryCatchScope<'_, '_, '_, '_>,
    module: &Module,
) -> Result<Option<v8::Global<v8::Object>>, Box<Failure>> {
    // V8's compilation cache then finds the code compiled when the module
    // was first loaded.
    let Some((text, origin)) = module_source(tc, module) else {
        return Err(stopped(tc));
    };
    let compiled = match module.code_cache.get() {
        Some(cache) => {
            let mut source = v8::script_compiler::Source::new_with_cached_data(
                text,
                Some(&origin),
                v8::CachedData::new(cache),
            );
            v8::script_compiler::compile_module2(
                tc,
                &mut source,
                v8::script_compiler::CompileOptions::ConsumeCodeCache,
                v8::script_compiler::NoCacheReason::NoReason,
            )
        }
        None => {
            let mut source = v8::script_compiler::Source::new(text, Some(&origin));
            v8::script_compiler::compile_module(tc, &mut source)
        }
    };
    let Some(compiled) = compiled else {
        if tc.has_terminated() {
            return Err(Box::new(Failure::Terminated));
        }
        // V8 refused the text (an early error the transpiler let through):
        // the loading way reports it as it reports any such error.
        tc.reset();
        return Ok(None);
    };
    if compiled.get_module_requests().length() != 0 {
        return Ok(None);
    }
    // No module is requested: the resolver is never asked.
    fn no_imports<'s>(
        _: v8::Local<'s, v8::Context>,
        _: v8::Local<'s, v8::String>,
        _: v8::Local<'s, v8::FixedArray>,
        _: v8::Local<'s, v8::Module>,
    ) -> Option<v8::Local<'s, v8::Module>> {
        None
    }
    if compiled.instantiate_module(tc, no_imports) != Some(true) {
        return Err(stopped(tc));
    }
    if compiled.is_graph_async() {
        return Ok(None);
    }
    let Some(evaluated) = compiled.evaluate(tc) else {
        return Err(stopped(tc));
    };
    // What the module's top level queued runs before the call, as when
    // deno_core evaluates a module.
    tc.perform_microtask_checkpoint();
    if tc.has_terminated() {
        return Err(Box::new(Failure::Terminated));
    }
    if let Ok(promise) = v8::Local::<v8::Promise>::try_from(evaluated) {
        // Handled here: not an unhandled rejection for the event loop.
        promise.mark_as_handled();
        match promise.state() {
            v8::PromiseState::Fulfilled => {}
            v8::PromiseState::Rejected => {
                let exception = promise.result(tc);
                return Err(Box::new(Failure::Js(*JsError::from_v8_exception(
                    tc, exception,
                ))));
            }
            v8::PromiseState::Pending => {
                return Err(Box::new(Failure::Internal(
                    "a module without top-level await did not finish evaluating".into(),
                )));
            }
        }
    }
    let namespace = compiled.get_module_namespace();
    let namespace = v8::Local::<v8::Object>::try_from(namespace).map_err(|_| {
        Box::new(Failure::Internal(
            "a module namespace is not an object".into(),
        ))
    })?;
    Ok(Some(v8::Global::new(tc, namespace)))
}

/// A `TypeError` from writing to a frozen object, with the reason a
/// `"frozen"` call most likely met it.
fn frozen_hint(error: ExecError) -> ExecError {
    match error {
        ExecError::Exception {
            name,
            message,
            stack,
        } if name == "TypeError" && FROZEN_WRITE.iter().any(|w| message.contains(w)) => {
            ExecError::Exception {
                message: format!(
                    "{message} (in \"frozen\" isolation the built-ins and host globals are \
                     frozen; use \"isolate\" to patch them)"
                ),
                name,
                stack,
            }
        }
        other => other,
    }
}

/// A sandbox whose isolate is entered (see [`Sandbox::entered`]).
pub(crate) struct Entered<'a>(&'a mut Sandbox);

impl std::ops::Deref for Entered<'_> {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        self.0
    }
}

impl std::ops::DerefMut for Entered<'_> {
    fn deref_mut(&mut self) -> &mut Sandbox {
        self.0
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        // SAFETY: the isolate `Sandbox::entered` entered, on this thread.
        unsafe { self.0.runtime.v8_isolate().exit() };
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Dropping the runtime exits its isolate, which must be the current
        // one: enter it first. The field drops run after this.
        // SAFETY: balanced by the exit in the isolate's own drop.
        unsafe { self.runtime.v8_isolate().enter() };
    }
}
