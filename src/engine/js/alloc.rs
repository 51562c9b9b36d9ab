//! The ArrayBuffer allocator of each isolate: `ArrayBuffer` and typed-array
//! backing stores live outside the V8 heap, so the heap limit does not cap
//! them. This allocator counts their bytes; an allocation past the budget
//! fails, records a memory-limit kill and stops the script.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use deno_core::v8;

use crate::engine::watchdog::{KillReason, KillRecord};

/// Attempts V8 makes for one backing store: the first, two after old-space
/// collections, one after collecting all available garbage.
const V8_ATTEMPTS: usize = 4;

/// Allocations this small are never refused.
const ALWAYS_GRANTED: usize = 64;

/// Live backing-store bytes of one isolate and its budget.
pub(crate) struct Budget {
    used: AtomicUsize,
    /// The isolate's limit.
    limit: usize,
    /// The current call's limit: `limit`, or less for a call that asked
    /// for less (a tenant's).
    call_limit: AtomicUsize,
    /// Refusals in a row. V8 answers a refused backing store with garbage
    /// collections and retries (four attempts in all), so dead buffers get
    /// a chance to be freed before the refusal counts as a kill.
    refusals: AtomicUsize,
    record: Arc<KillRecord>,
    /// Set once the isolate exists; allocations before that are V8's own.
    isolate: OnceLock<v8::IsolateHandle>,
}

impl Budget {
    pub(crate) fn new(limit: usize, record: Arc<KillRecord>) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
            call_limit: AtomicUsize::new(limit),
            refusals: AtomicUsize::new(0),
            record,
            isolate: OnceLock::new(),
        })
    }

    pub(crate) fn attach(&self, isolate: v8::IsolateHandle) {
        let _ = self.isolate.set(isolate);
    }

    /// Sets the limit of the call about to run: `limit` bytes when less
    /// than the isolate's, else the isolate's own.
    pub(crate) fn limit_call(&self, limit: Option<usize>) {
        let limit = limit.map_or(self.limit, |l| l.min(self.limit));
        self.call_limit.store(limit, Ordering::Release);
    }

    /// Bytes of live backing stores.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Charges `len` bytes that V8 holds outside the heap for a built-in
    /// (no backing store of ours): true if they fit; otherwise records a
    /// memory-limit kill, stops the script and returns false.
    pub(crate) fn charge(&self, len: usize) -> bool {
        if self.try_add(len) {
            return true;
        }
        self.kill();
        false
    }

    /// Adds `len` to the bytes in use if the total stays within the limit.
    fn try_add(&self, len: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                let limit = self.call_limit.load(Ordering::Acquire);
                used.checked_add(len).filter(|n| *n <= limit)
            })
            .is_ok()
    }

    /// Records a memory-limit kill and stops the script.
    fn kill(&self) {
        self.record.mark(KillReason::MemoryLimit);
        if let Some(isolate) = self.isolate.get() {
            // Only sets an interrupt flag; safe from inside V8.
            isolate.terminate_execution();
        }
    }

    /// Gives back bytes taken by [`Budget::charge`].
    pub(crate) fn release(&self, len: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(len))
            });
    }

    /// Reserves `len` bytes, or refuses; the last refusal V8 retries after
    /// collecting garbage (or one no collection could satisfy) records a
    /// memory-limit kill and stops the script.
    fn reserve(&self, len: usize) -> bool {
        if len <= ALWAYS_GRANTED {
            // V8 does not survive a refused tiny allocation; count it and
            // let the next large one be refused instead.
            self.used.fetch_add(len, Ordering::AcqRel);
            return true;
        }
        if self.try_add(len) {
            self.refusals.store(0, Ordering::Release);
            return true;
        }
        let refusals = self.refusals.fetch_add(1, Ordering::AcqRel) + 1;
        if len > self.call_limit.load(Ordering::Acquire) || refusals >= V8_ATTEMPTS {
            self.refusals.store(0, Ordering::Release);
            self.kill();
        }
        false
    }
}

unsafe extern "C" fn allocate(budget: &Budget, len: usize) -> *mut c_void {
    if !budget.reserve(len) {
        return std::ptr::null_mut();
    }
    // SAFETY: calloc with a non-zero size; null is handled below.
    let p = unsafe { libc::calloc(len.max(1), 1) };
    if p.is_null() {
        budget.used.fetch_sub(len, Ordering::AcqRel);
    }
    p
}

unsafe extern "C" fn allocate_uninitialized(budget: &Budget, len: usize) -> *mut c_void {
    if !budget.reserve(len) {
        return std::ptr::null_mut();
    }
    // SAFETY: malloc with a non-zero size; null is handled below.
    let p = unsafe { libc::malloc(len.max(1)) };
    if p.is_null() {
        budget.used.fetch_sub(len, Ordering::AcqRel);
    }
    p
}

unsafe extern "C" fn free(budget: &Budget, data: *mut c_void, len: usize) {
    budget.used.fetch_sub(len, Ordering::AcqRel);
    // SAFETY: `data` came from calloc/malloc above (V8 frees only what this
    // allocator returned).
    unsafe { libc::free(data) };
}

unsafe extern "C" fn drop_handle(budget: *const Budget) {
    // SAFETY: the pointer is the `Arc::into_raw` given to V8 in `allocator`,
    // released exactly once here.
    drop(unsafe { Arc::from_raw(budget) });
}

static VTABLE: v8::RustAllocatorVtable<Budget> = v8::RustAllocatorVtable {
    allocate,
    allocate_uninitialized,
    free,
    drop: drop_handle,
};

/// An allocator that counts against `budget`.
pub(crate) fn allocator(budget: &Arc<Budget>) -> v8::UniqueRef<v8::Allocator> {
    // SAFETY: the handle is a live `Arc<Budget>` whose reference V8 owns
    // until it calls `drop_handle`; the vtable matches the handle's type.
    unsafe { v8::new_rust_allocator(Arc::into_raw(budget.clone()), &VTABLE) }
}
