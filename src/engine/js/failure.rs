//! How a failed call is told apart before the host's own records (kill
//! reason, refused capability, syntax notes) are consulted: V8's and
//! deno_core's errors turned into [`ExecError`]s.

use deno_core::error::{CoreError, CoreErrorKind, JsError};

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
        stack: js.stack.as_deref().map(without_host_frames),
    }
}

/// Where the host's conversion of a result to JSON runs: it calls the
/// result's getters and toJSON methods, so its frames sit under theirs in
/// the stacks of what they throw, and they are not the user's.
const RESULT_GLUE: &str = "ext:isoexec/11_result.js:";

/// `stack` without the frames of the result's conversion.
fn without_host_frames(stack: &str) -> String {
    if !stack.contains(RESULT_GLUE) {
        return stack.to_string();
    }
    stack
        .lines()
        .filter(|line| !(line.trim_start().starts_with("at ") && line.contains(RESULT_GLUE)))
        .collect::<Vec<_>>()
        .join("\n")
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
