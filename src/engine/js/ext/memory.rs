//! Memory that V8 keeps outside its heap on behalf of built-ins (the ICU
//! state of `Intl` objects), charged against the isolate's off-heap budget:
//! the budget ArrayBuffers are counted in, as large as the memory limit.

use std::sync::Arc;

use deno_core::{OpState, op2};

use crate::engine::js::alloc::Budget;

/// Charges `bytes` to the isolate's budget; false (and the call stopped
/// with `memory_limit`) when they do not fit.
#[op2(fast)]
pub(super) fn op_isoexec_charge(state: &mut OpState, bytes: u32) -> bool {
    match state.try_borrow::<Arc<Budget>>() {
        Some(budget) => budget.charge(bytes as usize),
        None => true,
    }
}

/// Gives back what [`op_isoexec_charge`] took, once the object is gone.
#[op2(fast)]
pub(super) fn op_isoexec_release(state: &mut OpState, bytes: u32) {
    if let Some(budget) = state.try_borrow::<Arc<Budget>>() {
        budget.release(bytes as usize);
    }
}
