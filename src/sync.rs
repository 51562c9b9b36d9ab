//! Locking that survives a panicked holder.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`. A poisoned lock only means another thread panicked while it
/// held the guard; every structure kept behind these locks stays usable
/// (each update is a single insert, remove or counter change), so the data
/// is taken as it is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
