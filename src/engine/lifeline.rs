//! A child process of the server (a compile helper, an `isoexec worker`)
//! ends when its parent does. A parent killed with SIGKILL cannot stop its
//! children, and a child left running would be reparented to init and go on
//! outside every limit (a compile helper can work for many seconds on a
//! hostile input), so each child watches its parent itself.

use std::time::Duration;

/// How often the fallback checks the parent where a pidfd is not to be had.
const FALLBACK_LOOK: Duration = Duration::from_millis(100);

/// Starts a thread that ends this process as soon as its parent exits.
/// Called first thing in a child's `main`.
pub(super) fn hold() {
    // SAFETY: getppid(2) cannot fail.
    let parent = unsafe { libc::getppid() };
    if parent <= 1 {
        // Already orphaned (or started by init itself): nothing to serve.
        std::process::exit(EXIT_ORPHANED);
    }
    // SAFETY: pidfd_open(2) on a pid, with no flags; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, parent, 0) } as i32;
    // The parent may have died between getppid and pidfd_open, and its pid
    // been reused: the fd then names another process. Check again now that
    // the fd pins the pid.
    // SAFETY: as above.
    if unsafe { libc::getppid() } != parent {
        std::process::exit(EXIT_ORPHANED);
    }
    let watch = move || {
        if fd >= 0 {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            loop {
                // SAFETY: one valid pollfd; a pidfd becomes readable when
                // the process it names exits.
                let n = unsafe { libc::poll(&mut pfd, 1, -1) };
                if n > 0 {
                    std::process::exit(EXIT_ORPHANED);
                }
                if n < 0
                    && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    break;
                }
            }
        }
        // SAFETY: getppid(2) cannot fail.
        while unsafe { libc::getppid() } == parent {
            std::thread::sleep(FALLBACK_LOOK);
        }
        std::process::exit(EXIT_ORPHANED);
    };
    if std::thread::Builder::new()
        .name("isoexec-lifeline".into())
        .stack_size(64 * 1024)
        .spawn(watch)
        .is_err()
    {
        std::process::exit(EXIT_ORPHANED);
    }
}

/// The exit code of a child whose parent went away.
const EXIT_ORPHANED: i32 = 125;
