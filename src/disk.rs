//! Free disk space: what every writer of user-driven data (saved code,
//! session files, job records) checks before it writes.

use std::io;
use std::path::Path;

/// Free disk space below which saves, session files and new job records are
/// refused (507), so that what was already accepted can still be completed.
pub(crate) const MIN_FREE_DISK: u64 = 64 * 1024 * 1024;

/// Free bytes for an unprivileged writer on the file system of `dir`.
pub(crate) fn free_disk(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs(3) with a valid NUL-terminated path and an owned,
    // zeroed struct to fill.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// An error when the file system of `dir` has less than `MIN_FREE_DISK`
/// free.
pub(crate) fn ensure_room(dir: &Path) -> io::Result<()> {
    match free_disk(dir) {
        Some(free) if free < MIN_FREE_DISK => Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("less than {} MiB of disk is free", MIN_FREE_DISK >> 20),
        )),
        _ => Ok(()),
    }
}
