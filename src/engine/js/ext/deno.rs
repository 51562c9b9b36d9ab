//! The restricted `Deno` namespace's host side: refusals, environment
//! variables and `Deno.exit`.

use std::collections::HashMap;

use deno_core::{OpState, op2};
use deno_error::JsErrorBox;

use super::{CallState, SelfKill, permissions, record_denial};
use crate::engine::watchdog::KillReason;

#[op2]
#[string]
pub(super) fn op_isoexec_deny(state: &mut OpState, #[string] what: &str) -> String {
    let message = format!("Requires {what}; this capability is not granted");
    record_denial(state, &message);
    message
}

/// `Deno.env.get`: the call's value; `undefined` for an `ALLOW_ENV`
/// variable that is unset; a `PermissionDenied` for any other, as Deno
/// refuses a variable it was not allowed.
#[op2]
#[string]
pub(super) fn op_isoexec_env_get(
    state: &mut OpState,
    #[string] key: &str,
) -> Result<Option<String>, JsErrorBox> {
    if let Some(value) = CallState::of(state).and_then(|c| c.env.get(key).cloned()) {
        return Ok(Some(value));
    }
    if permissions(state).env.iter().any(|k| k == key) {
        return Ok(None);
    }
    let message = format!(
        "Requires env access to \"{key}\"; allow it with ALLOW_ENV (or pass it in the request's env)"
    );
    record_denial(state, &message);
    Err(JsErrorBox::new("PermissionDenied", message))
}

#[op2]
#[serde]
pub(super) fn op_isoexec_env_object(state: &mut OpState) -> HashMap<String, String> {
    CallState::of(state)
        .map(|c| c.env.clone())
        .unwrap_or_default()
}

#[op2(fast)]
pub(super) fn op_isoexec_exit(state: &mut OpState, code: i32) {
    if let Some(call) = CallState::of_mut(state) {
        call.exit_code.get_or_insert(code);
    }
    if let Some(me) = state.try_borrow::<SelfKill>() {
        me.record.mark(KillReason::Exit);
        me.isolate.terminate_execution();
    }
}

/// Copies the next bytes of the call's stdin into `buf`: how many, or -1 at
/// the end of input.
#[op2(fast)]
pub(super) fn op_isoexec_stdin_read(state: &mut OpState, #[buffer] buf: &mut [u8]) -> i32 {
    let Some(call) = CallState::of_mut(state) else {
        return -1;
    };
    let Some(input) = call.stdin.clone() else {
        return -1;
    };
    let rest = &input.as_bytes()[call.stdin_read.min(input.len())..];
    if rest.is_empty() {
        return -1;
    }
    let n = rest.len().min(buf.len()).min(i32::MAX as usize);
    buf[..n].copy_from_slice(&rest[..n]);
    call.stdin_read += n;
    n as i32
}
