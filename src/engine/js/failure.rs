//! How a failed call is told apart before the host's own records (kill
//! reason, refused capability, syntax notes) are consulted: V8's and
//! deno_core's errors turned into [`ExecError`]s.

use deno_core::error::{CoreError, CoreErrorKind, JsError};
use deno_core::v8;

use crate::engine::types::ExecError;

/// How a call failed, before the host's records are consulted.
pub(super) enum Failure {
    Load(CoreError),
    Core(CoreError),
    Js(JsError),
    Thrown {
        name: String,
        message: String,
        stack: Option<String>,
    },
    /// No exported function of that name; the module's exported functions.
    FnNotFound(Vec<String>),
    OutputLimit(String),
    Terminated,
    Internal(String),
}

/// What to use instead of a Node.js global that this runtime does not have.
fn node_hint(message: &str) -> Option<&'static str> {
    let name = message.strip_suffix(" is not defined")?;
    Some(match name {
        "require" => "use `import ... from \"...\"` (ES modules) instead of require()",
        "module" | "exports" => {
            "export with `export function ...` / `export const ...` instead of module.exports"
        }
        "process" => {
            "use Deno.env.get(...) for variables and Deno.exit(n) to exit, instead of process"
        }
        "Buffer" => "use Uint8Array, TextEncoder / TextDecoder and atob / btoa instead of Buffer",
        "__dirname" | "__filename" => "use import.meta.url instead",
        _ => return None,
    })
}

pub(super) fn exception_from_js(js: &JsError) -> ExecError {
    let name = js.name.clone().unwrap_or_else(|| "Error".into());
    let mut message = js.message.clone().unwrap_or_else(|| {
        js.exception_message
            .strip_prefix("Uncaught ")
            .unwrap_or(&js.exception_message)
            .to_string()
    });
    if name == "ReferenceError"
        && let Some(hint) = node_hint(&message)
    {
        message = format!(
            "{message}: this is an ES module runtime with web and Deno-style APIs, not Node.js; {hint}"
        );
    }
    ExecError::Exception {
        name,
        message,
        stack: js.stack.clone(),
    }
}

/// What the host's own scripts are named by: the glue that calls user code
/// (the call hook, the result's conversion, timers, the event loop) runs
/// from them, so their frames sit under the user's in the stacks user code
/// makes, and they are not the user's.
const HOST_SCRIPT: &str = "ext:";

/// V8's callback for an error's stack: deno_core's, given the call sites
/// without the host's outermost ones — the frames of the code that called
/// into the user's. The user sees the stack their code would have if
/// nothing but itself ran, in `error.stack`, in a `prepareStackTrace` of
/// their own and in the error a call answers. Host frames between user
/// frames (a built-in that calls back) stay, and so does a stack of host
/// frames alone.
pub(super) fn prepare_stack_trace<'s, 'i>(
    scope: &mut v8::PinScope<'s, 'i>,
    error: v8::Local<'s, v8::Value>,
    sites: v8::Local<'s, v8::Array>,
) -> v8::Local<'s, v8::Value> {
    let length = sites.length();
    let mut kept = length;
    if let Some(method) = v8::String::new(scope, "getScriptNameOrSourceURL") {
        while kept > 0 && in_host_script(scope, sites, kept - 1, method) {
            kept -= 1;
        }
    }
    let sites = if kept == length || kept == 0 {
        sites
    } else {
        let frames: Vec<_> = (0..kept)
            .filter_map(|i| sites.get_index(scope, i))
            .collect();
        v8::Array::new_with_elements(scope, &frames)
    };
    deno_core::error::prepare_stack_trace_callback(scope, error, sites)
}

/// Whether call site `i` is a frame of the host's scripts, by its
/// `method` that names its script. Nothing is assumed of a site that
/// cannot be read (say, while terminating): it is kept.
fn in_host_script(
    scope: &mut v8::PinScope,
    sites: v8::Local<v8::Array>,
    i: u32,
    method: v8::Local<v8::String>,
) -> bool {
    let Some(site) = sites
        .get_index(scope, i)
        .and_then(|site| v8::Local::<v8::Object>::try_from(site).ok())
    else {
        return false;
    };
    let Some(method) = site
        .get(scope, method.into())
        .and_then(|method| v8::Local::<v8::Function>::try_from(method).ok())
    else {
        return false;
    };
    method
        .call(scope, site.into(), &[])
        .and_then(|name| v8::Local::<v8::String>::try_from(name).ok())
        .is_some_and(|name| name.to_rust_string_lossy(scope).starts_with(HOST_SCRIPT))
}

pub(super) fn core_error(e: CoreError) -> ExecError {
    match *e.0 {
        CoreErrorKind::Js(js) => exception_from_js(&js),
        CoreErrorKind::PendingPromiseResolution => ExecError::Exception {
            name: "PendingPromise".into(),
            message: "The returned promise can never settle: nothing is left to run".into(),
            stack: None,
        },
        CoreErrorKind::ExecutionTerminated => ExecError::Internal {
            message: "execution was terminated without a recorded reason".into(),
        },
        other => ExecError::Exception {
            name: "Error".into(),
            message: other.to_string(),
            stack: None,
        },
    }
}

/// Errors while compiling and linking the module: V8's early syntax errors
/// and failed imports.
pub(super) fn load_error(e: CoreError) -> ExecError {
    match *e.0 {
        CoreErrorKind::Js(js) if js.name.as_deref() == Some("SyntaxError") => {
            let frame = js.frames.first();
            ExecError::Syntax {
                message: js.message.clone().unwrap_or_default(),
                line: frame.and_then(|f| f.line_number).unwrap_or(1).max(1) as usize,
                column: frame.and_then(|f| f.column_number).unwrap_or(1).max(1) as usize,
            }
        }
        // V8's parser bounds its own recursion: code nested past its
        // stack limit fails to compile with this RangeError.
        CoreErrorKind::Js(js)
            if js.name.as_deref() == Some("RangeError")
                && js
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("Maximum call stack size exceeded")) =>
        {
            let frame = js.frames.first();
            ExecError::Syntax {
                message: "The code is nested too deeply to compile; reduce the nesting".into(),
                line: frame.and_then(|f| f.line_number).unwrap_or(1).max(1) as usize,
                column: frame.and_then(|f| f.column_number).unwrap_or(1).max(1) as usize,
            }
        }
        other => core_error(CoreError(Box::new(other))),
    }
}
