//! Module loading for user code: resolution by [`Resolver`], files read from
//! disk and transpiled through the shared cache. Refusals and syntax errors
//! are recorded so the call reports `permission_denied` / `syntax_error`
//! rather than a generic exception.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use deno_core::{
    ModuleLoadOptions, ModuleLoadReferrer, ModuleLoadResponse, ModuleLoader, ModuleSource,
    ModuleSourceCode, ModuleSpecifier, ModuleType, RequestedModuleType, ResolutionKind,
    SourceCodeCacheInfo,
};
use deno_error::JsErrorBox;

use crate::engine::compile::CompileError;
use crate::engine::resolve::{ResolveError, Resolver};
use crate::engine::transpile_cache::{Module, TranspileCache};
use crate::engine::types::ExecError;
use crate::engine::watchdog::{CancelFlag, KillReason, KillRecord};

/// Largest module file that is loaded.
pub(super) const MAX_MODULE_BYTES: u64 = 32 * 1024 * 1024;
/// Compile deadline when no call set one.
const FALLBACK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// What went wrong while loading the current call's modules, shared with
/// the sandbox.
#[derive(Default)]
pub(crate) struct LoadNotes {
    /// The first refused import.
    pub denied: Option<String>,
    /// The first module that did not parse.
    pub syntax: Option<ExecError>,
    /// When the current call must end; compiling an import counts.
    pub deadline: Option<Instant>,
    /// The current call's cancellation flag.
    pub cancel: Option<Arc<CancelFlag>>,
    /// Why compiling failed on our side, for the report.
    pub internal: Option<String>,
    /// A main module that is not on disk: its URL and text.
    pub main_source: Option<(ModuleSpecifier, Arc<str>)>,
    /// The resolver of a call confined to a directory (else the host's).
    pub resolver: Option<Arc<Resolver>>,
    /// Frozen mode: the URL fragment that makes every module of this call a
    /// new instance (a module map never forgets a URL it has seen).
    pub instance: Option<String>,
    /// A program with Node's globals: `node:` imports are its built-ins.
    pub node: bool,
    /// Frozen mode: the current call's instance of its script (its URL
    /// with the call's fragment), loaded from the script's compiled code and
    /// V8's code cache for it.
    pub frozen_root: Option<(ModuleSpecifier, Arc<Module>)>,
}

pub(crate) type Notes = Rc<RefCell<LoadNotes>>;

pub(crate) struct Loader {
    pub notes: Notes,
    pub resolver: Arc<Resolver>,
    pub cache: Arc<TranspileCache>,
    /// The sandbox's kill record: a compile that runs past the deadline
    /// is a timeout like any other.
    pub record: Arc<KillRecord>,
    /// Modules loaded over the runtime's life.
    pub loaded: Rc<std::cell::Cell<usize>>,
}

impl Loader {
    fn refuse(&self, message: String) -> JsErrorBox {
        self.notes
            .borrow_mut()
            .denied
            .get_or_insert_with(|| message.clone());
        JsErrorBox::new("PermissionDenied", message)
    }

    /// Loads `specifier` (read as `plain`, the same URL without a frozen
    /// call's fragment).
    fn load_file(
        &self,
        specifier: &ModuleSpecifier,
        plain: &ModuleSpecifier,
        requested: &RequestedModuleType,
    ) -> Result<ModuleSource, JsErrorBox> {
        let in_memory = self
            .notes
            .borrow()
            .main_source
            .as_ref()
            .filter(|(url, _)| url == specifier)
            .map(|(_, text)| text.clone());
        if let Some(text) = in_memory {
            return self.compile(specifier, plain, &text);
        }
        let path = plain.to_file_path().map_err(|()| {
            JsErrorBox::type_error(format!("Module not found: '{plain}' is not a file"))
        })?;
        let meta = std::fs::metadata(&path)
            .map_err(|e| JsErrorBox::type_error(format!("Module not found: '{plain}': {e}")))?;
        if meta.len() > MAX_MODULE_BYTES {
            return Err(JsErrorBox::type_error(format!(
                "Module '{plain}' is {} bytes; modules are limited to {MAX_MODULE_BYTES}",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            JsErrorBox::type_error(format!("Module '{plain}' could not be read: {e}"))
        })?;
        // A CommonJS file of an npm package, imported from an ES module:
        // an ES module over `require`, as Node wraps one.
        let in_package = path.components().any(|c| c.as_os_str() == "node_modules");
        if in_package && crate::engine::resolve::is_commonjs_file(&path) {
            return commonjs_module(specifier, &path, &text);
        }
        let is_json = path.extension().is_some_and(|e| e == "json");
        match (is_json, requested) {
            (true, RequestedModuleType::Json) => {
                return Ok(ModuleSource::new(
                    ModuleType::Json,
                    ModuleSourceCode::String(text.into()),
                    specifier,
                    None,
                ));
            }
            (true, _) => {
                return Err(JsErrorBox::type_error(format!(
                    "'{plain}' is a JSON module: import it with {{ type: \"json\" }}"
                )));
            }
            (false, RequestedModuleType::None) => {}
            (false, _) => {
                return Err(JsErrorBox::type_error(format!(
                    "'{plain}' is a JavaScript or TypeScript module, not the requested type"
                )));
            }
        }
        self.compile(specifier, plain, &text)
    }

    /// Transpiles a JavaScript or TypeScript module through the shared
    /// cache, under the current call's deadline.
    fn compile(
        &self,
        specifier: &ModuleSpecifier,
        plain: &ModuleSpecifier,
        text: &str,
    ) -> Result<ModuleSource, JsErrorBox> {
        let (deadline, cancel) = {
            let notes = self.notes.borrow();
            (notes.deadline, notes.cancel.clone())
        };
        // Without a call's deadline (never the case in a call) a compile
        // still ends: at the longest deadline any call may have.
        let deadline = deadline.unwrap_or_else(|| Instant::now() + FALLBACK_DEADLINE);
        let stop = || cancel.as_ref().is_some_and(|c| c.is_cancelled());
        match self.cache.get_file(plain, text, deadline, &stop) {
            Ok(module) => Ok(ModuleSource::new(
                ModuleType::JavaScript,
                ModuleSourceCode::String(module.code.to_string().into()),
                specifier,
                None,
            )),
            Err(CompileError::Timeout) => {
                self.record.mark(KillReason::Timeout);
                Err(JsErrorBox::generic("the deadline passed while compiling"))
            }
            Err(CompileError::Cancelled) => {
                self.record.mark(KillReason::Cancelled);
                Err(JsErrorBox::generic("the caller went away while compiling"))
            }
            Err(CompileError::Internal(message)) => {
                self.notes
                    .borrow_mut()
                    .internal
                    .get_or_insert_with(|| message.clone());
                Err(JsErrorBox::generic(message))
            }
            Err(CompileError::Syntax(e)) => {
                let message = format!("{} at {plain}:{}:{}", e.message, e.line, e.column);
                self.notes
                    .borrow_mut()
                    .syntax
                    .get_or_insert_with(|| ExecError::Syntax {
                        message: message.clone(),
                        line: e.line,
                        column: e.column,
                    });
                Err(JsErrorBox::new("SyntaxError", message))
            }
        }
    }
}

impl ModuleLoader for Loader {
    fn resolve(
        &self,
        specifier: &str,
        referrer: &str,
        kind: ResolutionKind,
    ) -> Result<ModuleSpecifier, JsErrorBox> {
        // The host's own root modules come as main modules or with referrer
        // "."; their URLs were made by the host.
        if kind == ResolutionKind::MainModule || referrer == "." {
            return ModuleSpecifier::parse(specifier).map_err(JsErrorBox::from_err);
        }
        // Node's built-in modules, `node:fs` or `fs`: the prelude's own.
        let bare = specifier.strip_prefix("node:").unwrap_or(specifier);
        if self.notes.borrow().node && node_exports(bare).is_some() {
            return ModuleSpecifier::parse(&format!("node:{bare}")).map_err(JsErrorBox::from_err);
        }
        let scoped = self.notes.borrow().resolver.clone();
        let resolver = scoped.as_ref().unwrap_or(&self.resolver);
        let instance = self.notes.borrow().instance.clone();
        match resolver.resolve(specifier, referrer) {
            Ok(mut url) => {
                if instance.is_some() {
                    url.set_fragment(instance.as_deref());
                }
                Ok(url)
            }
            Err(ResolveError::Refused(message)) => Err(self.refuse(message)),
            Err(ResolveError::NotFound(message)) => Err(JsErrorBox::type_error(message)),
        }
    }

    fn load(
        &self,
        specifier: &ModuleSpecifier,
        _referrer: Option<&ModuleLoadReferrer>,
        options: ModuleLoadOptions,
    ) -> ModuleLoadResponse {
        self.loaded.set(self.loaded.get() + 1);
        if specifier.scheme() == "node" {
            return ModuleLoadResponse::Sync(node_module(specifier));
        }
        let root = self
            .notes
            .borrow()
            .frozen_root
            .as_ref()
            .filter(|(url, _)| url == specifier)
            .map(|(_, module)| module.clone());
        if let Some(module) = root {
            let cache = module.code_cache.get().map(|bytes| SourceCodeCacheInfo {
                hash: u64::from_le_bytes(module.hash[..8].try_into().unwrap_or_default()),
                data: Some(std::borrow::Cow::Owned(bytes.to_vec())),
            });
            return ModuleLoadResponse::Sync(Ok(ModuleSource::new(
                ModuleType::JavaScript,
                ModuleSourceCode::String(module.code.clone().into()),
                specifier,
                cache,
            )));
        }
        let mut plain = specifier.clone();
        if self.notes.borrow().instance.is_some() {
            plain.set_fragment(None);
        }
        ModuleLoadResponse::Sync(self.load_file(specifier, &plain, &options.requested_module_type))
    }
}

/// The named exports of each Node built-in module a program may import
/// (`import { readFileSync } from "node:fs"`); the default export is the
/// module itself, as `require` gives it.
fn node_exports(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "fs" => &[
            "readFileSync",
            "writeFileSync",
            "appendFileSync",
            "existsSync",
            "readFile",
            "writeFile",
            "promises",
            "constants",
        ],
        "fs/promises" => &["readFile", "writeFile", "appendFile"],
        "path" | "path/posix" => &[
            "sep",
            "delimiter",
            "normalize",
            "join",
            "resolve",
            "isAbsolute",
            "basename",
            "dirname",
            "extname",
            "relative",
            "parse",
            "format",
            "posix",
        ],
        "readline" => &[
            "createInterface",
            "Interface",
            "clearLine",
            "cursorTo",
            "emitKeypressEvents",
        ],
        "readline/promises" => &["createInterface", "Interface"],
        "util" => &[
            "format",
            "inspect",
            "inherits",
            "promisify",
            "isDeepStrictEqual",
            "types",
            "TextEncoder",
            "TextDecoder",
            "deprecate",
        ],
        "events" => &["EventEmitter", "once"],
        "assert" | "assert/strict" => &[
            "ok",
            "equal",
            "notEqual",
            "strictEqual",
            "notStrictEqual",
            "deepEqual",
            "deepStrictEqual",
            "notDeepStrictEqual",
            "throws",
            "rejects",
            "doesNotThrow",
            "match",
            "fail",
            "AssertionError",
            "strict",
        ],
        "os" => &[
            "EOL",
            "platform",
            "type",
            "arch",
            "release",
            "hostname",
            "homedir",
            "tmpdir",
            "cpus",
            "availableParallelism",
            "totalmem",
            "freemem",
            "uptime",
            "loadavg",
            "endianness",
            "userInfo",
            "networkInterfaces",
        ],
        "buffer" => &["Buffer", "constants"],
        "string_decoder" => &["StringDecoder"],
        "timers" => &[
            "setTimeout",
            "clearTimeout",
            "setInterval",
            "clearInterval",
            "setImmediate",
            "clearImmediate",
        ],
        "timers/promises" => &["setTimeout", "setImmediate"],
        "crypto" => &[
            "randomUUID",
            "randomBytes",
            "randomInt",
            "getRandomValues",
            "webcrypto",
            "createHash",
        ],
        "process" => &[
            "argv",
            "env",
            "exit",
            "stdout",
            "stderr",
            "stdin",
            "nextTick",
            "hrtime",
            "platform",
            "version",
            "versions",
            "cwd",
            "memoryUsage",
        ],
        "child_process" | "net" | "http" | "https" | "http2" | "dgram" | "dns" | "tls"
        | "cluster" | "worker_threads" | "vm" | "v8" | "inspector" | "repl" | "tty" | "zlib"
        | "perf_hooks" | "module" => &[],
        _ => return None,
    })
}

/// The ES module of a Node built-in (`node:<name>`): the prelude's module,
/// its properties as named exports.
fn node_module(specifier: &ModuleSpecifier) -> Result<ModuleSource, JsErrorBox> {
    let name = specifier.path();
    let names = node_exports(name)
        .ok_or_else(|| JsErrorBox::type_error(format!("Unknown Node.js module '{specifier}'")))?;
    Ok(required_module(specifier, name, "Node.js modules", names))
}

/// An ES module over a CommonJS file: its `module.exports` as the default
/// export and, as Node finds them, the names it assigns to `exports` as
/// named exports.
fn commonjs_module(
    specifier: &ModuleSpecifier,
    path: &std::path::Path,
    text: &str,
) -> Result<ModuleSource, JsErrorBox> {
    let names = commonjs_export_names(text);
    Ok(required_module(
        specifier,
        &path.to_string_lossy(),
        "npm packages",
        &names,
    ))
}

/// An ES module whose default export is what the Node prelude's `require`
/// gives for `required`, and whose named exports are `names` of it; where
/// the prelude is absent (a function call), it throws saying `what` is for
/// programs.
fn required_module(
    specifier: &ModuleSpecifier,
    required: &str,
    what: &str,
    names: &[impl AsRef<str>],
) -> ModuleSource {
    let mut code = format!(
        "const require = globalThis[Symbol.for(\"isoexec.node.require\")];\n\
         if (typeof require !== \"function\") throw new Error(\"{what} are available to \
         programs (jobs, sessions, /execute), not to function calls\");\n\
         const m = require({required:?});\nexport default m;\n"
    );
    if !names.is_empty() {
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        code.push_str(&format!("export const {{ {} }} = m;\n", names.join(", ")));
    }
    ModuleSource::new(
        ModuleType::JavaScript,
        ModuleSourceCode::String(code.into()),
        specifier,
        None,
    )
}

/// Names a CommonJS file assigns as exports (`exports.x =`,
/// `module.exports.x =`, `Object.defineProperty(exports, "x"`), found by a
/// plain look at its text; `default` and non-identifiers left out.
fn commonjs_export_names(text: &str) -> Vec<String> {
    let ident = |s: &str| -> Option<String> {
        let name: String = s
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
            .collect();
        let ok = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name != "default"
            && name != "__esModule";
        ok.then_some(name)
    };
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: Option<String>| {
        if let Some(n) = n
            && !names.contains(&n)
        {
            names.push(n);
        }
    };
    for (i, _) in text.match_indices("exports.") {
        let before = &text[..i];
        let standalone = before
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
            || before.ends_with("module.")
                && !before[..before.len() - "module.".len()].ends_with('.');
        let rest = &text[i + "exports.".len()..];
        let name = ident(rest);
        let assigned = name.as_ref().is_some_and(|n| {
            let after = rest[n.len()..].trim_start();
            after.starts_with('=') && !after.starts_with("==")
        });
        if standalone && assigned {
            add(name);
        }
    }
    for (i, _) in text.match_indices("Object.defineProperty(exports,") {
        let rest = text[i + "Object.defineProperty(exports,".len()..].trim_start();
        if let Some(quoted) = rest.strip_prefix(['"', '\'']) {
            add(ident(quoted));
        }
    }
    names
}

#[cfg(test)]
mod commonjs_tests {
    use super::commonjs_export_names;

    #[test]
    fn commonjs_export_names_are_found_as_node_finds_them() {
        let text = "exports.a = 1;\nmodule.exports.b = function () {};\n\
                    Object.defineProperty(exports, \"c\", { get() {} });\n\
                    exports.default = 2; if (exports.a == 1) {}\nfoo.exports.d = 3;";
        assert_eq!(commonjs_export_names(text), ["a", "b", "c"]);
    }
}
