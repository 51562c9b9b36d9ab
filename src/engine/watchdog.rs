//! The watchdog: one thread that enforces wall-clock deadlines and CPU-time
//! budgets from outside the isolate threads, by calling `terminate_execution`.
//!
//! Each armed execution has its own [`KillRecord`]; the watchdog writes the
//! reason there *before* terminating, so the isolate thread never has to guess why V8
//! stopped. A kill is re-sent until the execution is disarmed, and disarming
//! under the same lock guarantees that no late kill reaches a later execution.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use deno_core::v8;

use crate::engine::types::ExecError;

/// Why the host stopped an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KillReason {
    Timeout,
    CpuLimit,
    MemoryLimit,
    /// User code called `Deno.exit`.
    Exit,
    /// The caller went away.
    Cancelled,
}

impl KillReason {
    fn code(self) -> u8 {
        match self {
            KillReason::Timeout => 1,
            KillReason::CpuLimit => 2,
            KillReason::MemoryLimit => 3,
            KillReason::Exit => 4,
            KillReason::Cancelled => 5,
        }
    }

    fn from_code(code: u8) -> Option<KillReason> {
        Some(match code {
            1 => KillReason::Timeout,
            2 => KillReason::CpuLimit,
            3 => KillReason::MemoryLimit,
            4 => KillReason::Exit,
            5 => KillReason::Cancelled,
            _ => return None,
        })
    }
}

impl KillReason {
    /// What an execution stopped for this reason reports; `exit_code` is
    /// the code `Deno.exit` was given, if that was the reason.
    pub(crate) fn error(self, exit_code: i32) -> ExecError {
        match self {
            KillReason::Timeout => ExecError::Timeout,
            KillReason::CpuLimit => ExecError::CpuLimit,
            KillReason::MemoryLimit => ExecError::MemoryLimit,
            KillReason::Cancelled => ExecError::Cancelled,
            KillReason::Exit => ExecError::Exit { code: exit_code },
        }
    }
}

/// The host's own record of a forced stop: the first reason written wins.
#[derive(Debug, Default)]
pub(crate) struct KillRecord(AtomicU8);

impl KillRecord {
    /// Records `reason` unless another reason was recorded first; returns
    /// whether this call recorded it.
    pub(crate) fn mark(&self, reason: KillReason) -> bool {
        self.0
            .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn reason(&self) -> Option<KillReason> {
        KillReason::from_code(self.0.load(Ordering::Acquire))
    }
}

/// Set by the HTTP side when the caller goes away; read by the isolate thread and
/// the watchdog.
#[derive(Debug, Default)]
pub(crate) struct CancelFlag(AtomicBool);

impl CancelFlag {
    pub(crate) fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// How often a kill is re-sent, and how often CPU budgets are sampled.
const RESEND_EVERY: Duration = Duration::from_millis(10);
const CPU_SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// How often the caller's socket is looked at, where it is watched. A
/// call shorter than this is never looked at.
const HANGUP_LOOK_EVERY: Duration = Duration::from_millis(50);

/// The CPU clock of one thread, readable from any thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThreadCpuClock(libc::clockid_t);

impl ThreadCpuClock {
    /// The clock of the calling thread.
    pub(crate) fn current() -> Option<ThreadCpuClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self() is always a valid thread of this process and
        // `id` is a valid out-pointer.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (rc == 0).then_some(ThreadCpuClock(id))
    }

    /// CPU time the thread has used so far.
    pub(crate) fn now(self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; an invalid clock id only makes
        // the call fail, which reads as zero.
        let rc = unsafe { libc::clock_gettime(self.0, &mut ts) };
        if rc != 0 {
            return Duration::ZERO;
        }
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// What the watchdog watches for one execution.
pub(crate) struct Watch {
    pub isolate: v8::IsolateHandle,
    pub record: Arc<KillRecord>,
    pub deadline: Instant,
    /// The isolate thread's CPU clock, the reading at the start, and the budget.
    pub cpu: Option<(ThreadCpuClock, Duration, Duration)>,
    /// Set when the caller has gone away.
    pub cancel: Option<Arc<CancelFlag>>,
    /// The caller's socket, for a call that runs on the thread serving it:
    /// that thread cannot see its caller hang up while the call runs
    /// without waiting, so the watchdog looks. A hang-up cancels the call.
    pub hangup: Option<Arc<OwnedFd>>,
}

impl Watch {
    /// When a live (not yet killed) execution next needs a look, seen at
    /// `now`: its next CPU sample or look at its caller's socket, or its
    /// deadline.
    fn next_look(&self, now: Instant) -> Instant {
        let mut at = self.deadline;
        if self.cpu.is_some() {
            at = at.min(now + CPU_SAMPLE_EVERY);
        }
        if self.hangup.is_some() {
            at = at.min(now + HANGUP_LOOK_EVERY);
        }
        at
    }
}

/// Whether the other end of `socket` has closed it (or shut down its
/// sending side, which an HTTP/1 server takes as the same), or it failed.
fn hung_up(socket: &OwnedFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd for an open descriptor; no wait.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

struct Armed {
    watch: Watch,
    /// When the kill was last sent, once it has been.
    fired_at: Option<Instant>,
}

#[derive(Default)]
struct WatchState {
    /// By ticket, in the order armed: a handful at a time (one per running
    /// execution), so a look along a list beats hashing the ticket.
    armed: Vec<(u64, Armed)>,
    next_ticket: u64,
    shutdown: bool,
    /// When the watchdog thread looks next; `None` while it waits for a
    /// notification. An execution that needs no look before then is armed
    /// without waking it.
    looks_at: Option<Instant>,
}

/// Shared handle to the watchdog thread.
#[derive(Clone)]
pub(crate) struct Watchdog {
    shared: Arc<(Mutex<WatchState>, Condvar)>,
}

/// Proof that an execution is armed; give it back with [`Watchdog::disarm`].
#[must_use]
pub(crate) struct Ticket(u64);

impl Watchdog {
    /// Starts the watchdog thread.
    pub(crate) fn start() -> std::io::Result<Watchdog> {
        let shared = Arc::new((Mutex::new(WatchState::default()), Condvar::new()));
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("isoexec-watchdog".into())
            .spawn(move || run(&thread_shared))?;
        Ok(Watchdog { shared })
    }

    /// Starts watching an execution, from `now` (when it began, which the
    /// caller has read already).
    pub(crate) fn arm(&self, watch: Watch, now: Instant) -> Ticket {
        let (lock, cvar) = &*self.shared;
        let mut state = lock_state(lock);
        state.next_ticket += 1;
        let ticket = state.next_ticket;
        let first_look = watch.next_look(now);
        state.armed.push((
            ticket,
            Armed {
                watch,
                fired_at: None,
            },
        ));
        // Waking the thread for every call would cost a context switch per
        // call; it only needs to know when it must look sooner than planned.
        if state.looks_at.is_none_or(|t| first_look < t) {
            state.looks_at = Some(first_look);
            cvar.notify_one();
        }
        Ticket(ticket)
    }

    /// Stops watching an execution. After this returns, the watchdog never
    /// touches that execution's isolate again.
    pub(crate) fn disarm(&self, ticket: Ticket) {
        let (lock, _) = &*self.shared;
        let mut state = lock_state(lock);
        if let Some(i) = state.armed.iter().position(|(t, _)| *t == ticket.0) {
            state.armed.swap_remove(i);
        }
    }

    /// Makes the watchdog look at every armed execution now (a caller
    /// may have gone away).
    pub(crate) fn poke(&self) {
        let (lock, cvar) = &*self.shared;
        lock_state(lock).looks_at = Some(Instant::now());
        cvar.notify_one();
    }

    /// Stops the watchdog thread.
    pub(crate) fn shutdown(&self) {
        let (lock, cvar) = &*self.shared;
        lock_state(lock).shutdown = true;
        cvar.notify_one();
    }
}

fn lock_state(lock: &Mutex<WatchState>) -> std::sync::MutexGuard<'_, WatchState> {
    // Not `crate::sync::lock`: this file is also compiled into build.rs.
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(shared: &(Mutex<WatchState>, Condvar)) {
    let (lock, cvar) = shared;
    let mut state = lock_state(lock);
    loop {
        if state.shutdown {
            return;
        }
        let now = Instant::now();
        let mut next_wake: Option<Instant> = None;
        let mut wake_at = |t: Instant| {
            next_wake = Some(next_wake.map_or(t, |w| w.min(t)));
        };
        for (_, armed) in state.armed.iter_mut() {
            let w = &armed.watch;
            let reason = if let Some(fired) = armed.fired_at {
                // Already killed: keep re-sending until disarmed, since V8
                // only notices termination while JS runs.
                if now >= fired + RESEND_EVERY {
                    w.isolate.terminate_execution();
                    armed.fired_at = Some(now);
                }
                wake_at(armed.fired_at.unwrap_or(now) + RESEND_EVERY);
                continue;
            } else if w.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                Some(KillReason::Cancelled)
            } else if w.hangup.as_deref().is_some_and(hung_up) {
                if let Some(cancel) = &w.cancel {
                    cancel.cancel();
                }
                Some(KillReason::Cancelled)
            } else if now >= w.deadline {
                Some(KillReason::Timeout)
            } else if let Some((clock, start, budget)) = w.cpu {
                (clock.now().saturating_sub(start) >= budget).then_some(KillReason::CpuLimit)
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    w.record.mark(reason);
                    w.isolate.terminate_execution();
                    armed.fired_at = Some(now);
                    wake_at(now + RESEND_EVERY);
                }
                None => wake_at(w.next_look(now)),
            }
        }
        state.looks_at = next_wake;
        state = match next_wake {
            None => cvar.wait(state).unwrap_or_else(|e| e.into_inner()),
            Some(t) => {
                let wait = t.saturating_duration_since(Instant::now());
                cvar.wait_timeout(state, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins() {
        let r = KillRecord::default();
        assert_eq!(r.reason(), None);
        assert!(r.mark(KillReason::MemoryLimit));
        assert!(!r.mark(KillReason::Timeout));
        assert_eq!(r.reason(), Some(KillReason::MemoryLimit));
    }

    #[test]
    fn a_socket_is_hung_up_once_its_peer_closes_or_shuts_down_sending() {
        use std::io::Write;
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for shut_down_only in [false, true] {
            let mut client = TcpStream::connect(addr).unwrap();
            let (server, _) = listener.accept().unwrap();
            let watched = OwnedFd::from(server);
            // Unread data (a pipelined request) is not a hang-up.
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            assert!(!hung_up(&watched));
            if shut_down_only {
                client.shutdown(Shutdown::Write).unwrap();
            } else {
                drop(client);
            }
            let until = Instant::now() + Duration::from_secs(5);
            while !hung_up(&watched) {
                assert!(Instant::now() < until, "the hang-up was not seen");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn thread_cpu_clock_advances_with_work() {
        let clock = ThreadCpuClock::current().unwrap();
        let start = clock.now();
        let mut x = 0u64;
        let until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(clock.now() > start);
    }
}
