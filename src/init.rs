//! PID 1 duty. In a container without an init (`docker run` of our image,
//! a Kubernetes pod), the server is PID 1: every process orphaned inside
//! the container is handed to it, and a PID 1 that does not wait for them
//! keeps them as zombies for its life. So when `isoexec` finds itself PID 1
//! it starts itself again as the real server and stays behind as a small
//! init: it forwards the signals a container runtime sends, reaps every
//! child that ends, and exits with the server's status.

use std::process::{Command, ExitCode};

/// Set in the server started by the init, so that it does not do it again.
const CHILD_ENV: &str = "ISOEXEC_UNDER_INIT";

/// Signals passed on to the server.
const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Becomes the init if this process is PID 1 (and not already the init's
/// server): returns the exit code to leave with. `None`: carry on as usual.
pub fn as_pid1() -> Option<ExitCode> {
    // SAFETY: getpid(2) cannot fail.
    if unsafe { libc::getpid() } != 1 || std::env::var_os(CHILD_ENV).is_some() {
        return None;
    }
    Some(run())
}

fn run() -> ExitCode {
    // Block the signals before the server exists, so none is lost; the
    // server gets an empty mask (std resets it in the child).
    // SAFETY: plain signal-set calls on a local set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("isoexec: as PID 1, cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("isoexec: as PID 1, cannot start the server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server_pid = server.id() as libc::pid_t;
    // The server's status is read by waitpid below, not through `Child`.
    std::mem::forget(server);
    loop {
        let mut signal = 0;
        // SAFETY: `set` is a valid signal set; `signal` receives one.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            continue;
        }
        if signal != libc::SIGCHLD {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(server_pid, signal) };
            continue;
        }
        // Reap everything that has ended: the server, or an orphan.
        loop {
            let mut status = 0;
            // SAFETY: waitpid(2) for any child, without blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == server_pid {
                return ExitCode::from(exit_code(status));
            }
        }
    }
}

/// A shell's view of a wait status: the exit code, or 128 + the signal.
fn exit_code(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status)) as u8
    } else {
        1
    }
}
