//! Resource limits of the engine's child processes (compile helpers and
//! worker processes), set by the child itself before it runs anything.

/// Sets a resource limit (soft and hard) of the calling process; errors
/// are ignored, as the limits inside still hold. Async-signal-safe, so it
/// may run between fork and exec.
pub(crate) fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) {
    let l = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads a valid struct.
    unsafe { libc::setrlimit(resource, &l) };
}
