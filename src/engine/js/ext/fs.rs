//! File reads and writes, checked against the call's permissions and its
//! write quota.

use deno_core::{OpState, op2};
use deno_error::JsErrorBox;

use super::{CallState, permissions, record_denial};
use crate::engine::permissions::FsError;

/// Largest file `Deno.readFile` / `readTextFile` return.
const MAX_READ_BYTES: usize = 64 * 1024 * 1024;

/// Turns a refused or failed file operation into the JS error the glue
/// registered for its class, recording a refusal for the call's report.
fn fs_error(state: &mut OpState, e: FsError) -> JsErrorBox {
    match e {
        FsError::Denied(message) => {
            record_denial(state, &message);
            JsErrorBox::new("PermissionDenied", message)
        }
        FsError::NotFound(message) => JsErrorBox::new("NotFound", message),
        FsError::Other(message) => JsErrorBox::generic(message),
    }
}

#[op2]
#[buffer]
pub(super) fn op_isoexec_read_file(
    state: &mut OpState,
    #[string] path: &str,
) -> Result<Vec<u8>, JsErrorBox> {
    permissions(state)
        .read_file(path, MAX_READ_BYTES)
        .map_err(|e| fs_error(state, e))
}

#[op2]
#[string]
pub(super) fn op_isoexec_read_text_file(
    state: &mut OpState,
    #[string] path: &str,
) -> Result<String, JsErrorBox> {
    let bytes = permissions(state)
        .read_file(path, MAX_READ_BYTES)
        .map_err(|e| fs_error(state, e))?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[op2(fast)]
pub(super) fn op_isoexec_write_file(
    state: &mut OpState,
    #[string] path: &str,
    #[buffer] data: &[u8],
    append: bool,
) -> Result<(), JsErrorBox> {
    // Writes are counted before they happen; a refused one writes nothing.
    if let Some(call) = CallState::of_mut(state) {
        let wanted = data.len() as u64;
        if wanted > call.write_budget {
            return Err(JsErrorBox::new(
                "QuotaExceededError",
                format!(
                    "Writing {wanted} bytes would pass this execution's write quota \
                     ({} bytes left; MAX_WRITE_BYTES)",
                    call.write_budget
                ),
            ));
        }
        call.write_budget -= wanted;
    }
    permissions(state)
        .write_file(path, data, append)
        .map_err(|e| fs_error(state, e))
}
