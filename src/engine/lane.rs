//! Calls run on the thread that read their request.
//!
//! A `"none"` or `"frozen"` call handed to an isolate thread crosses threads twice — the
//! isolate thread is woken for it, and the connection's thread for its
//! answer — and on a small machine those two wake-ups cost more than the
//! call. A connection thread (see `http::threads`) may therefore keep warm
//! isolates of its own, a *lane*, and run a call itself when doing so can
//! hold up nothing else: the call's connection is the only one the thread
//! serves, it speaks HTTP/1 (one request at a time), no other task lives on
//! the thread, and no other call runs there. The accept loop gives no new
//! connection to a thread while such a call runs (`Seat::busy`); the two
//! sides order their flags so that one of them always sees the other.
//!
//! Everything else about the call is as on an isolate thread: the same
//! kept isolates per owner, the watchdog's deadline, CPU and cancellation,
//! the same report. A caller that goes away drops the call's future, which
//! ends the call at its next wait and drops its isolate; one that hangs up
//! while the call runs without waiting (a loop), when the thread cannot
//! read its socket, is seen by the watchdog, which looks at that socket.

// Isolates are kept boxed, in lists too: every call takes one out and puts
// it back, and a box moves as a pointer where a `Sandbox` would copy its
// half a kilobyte each time.
#![allow(clippy::vec_box)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::isolate_thread::{
    CallInput, IDLE_COLLECT_AFTER, KEPT_SHARE, KeptSlots, Shared, call_in, collect_garbage,
    heap_figures, new_isolate, prepare,
};
use super::js::Sandbox;
use super::policy::{Placement, Slot, placement};
use super::queue::LaneShare;
use super::types::{ExecError, Execution, Report};
use super::watchdog::{CancelFlag, ThreadCpuClock};

/// A connection thread's flags, shared with the accept loop.
#[derive(Clone, Default)]
pub struct Seat {
    /// A call runs on the thread: no new connection goes there.
    pub busy: Arc<AtomicBool>,
    /// Connections given to the thread (counted before they start).
    pub open: Arc<AtomicUsize>,
}

impl Seat {
    /// Counts a connection the accept loop means to give this thread;
    /// false (and not counted) while a call runs there. Pairs with
    /// [`Seat::hold_alone`]: each writes its flag before reading the other's.
    pub fn try_enter(&self) -> bool {
        self.open.fetch_add(1, Ordering::SeqCst);
        if self.busy.load(Ordering::SeqCst) {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Marks the thread busy if no call runs there and it serves one
    /// connection only; false (and nothing marked) otherwise. Pairs with
    /// [`Seat::try_enter`]: each writes its flag before reading the other's.
    fn hold_alone(&self) -> bool {
        if self.busy.swap(true, Ordering::SeqCst) {
            return false;
        }
        if self.open.load(Ordering::SeqCst) == 1 {
            return true;
        }
        self.release();
        false
    }

    /// The thread may take new connections again.
    fn release(&self) {
        self.busy.store(false, Ordering::SeqCst);
    }
}

/// What a connection thread needs to run calls itself.
#[derive(Clone)]
pub struct LaneParts {
    pub(super) shared: Arc<Shared>,
    pub(super) served: Arc<AtomicU64>,
}

/// A connection thread's own isolates.
struct Lane {
    shared: Arc<Shared>,
    seat: Seat,
    cpu_clock: Option<ThreadCpuClock>,
    kept: KeptSlots,
    /// Kept isolates given up, dropped before the next call.
    retired: Vec<Box<Sandbox>>,
    /// Calls run here so far (a `/metrics` counter).
    served: Arc<AtomicU64>,
    /// Heap figures of the isolates kept here (total, used, external), and
    /// when they were last read.
    heap: Arc<[AtomicU64; 3]>,
    heap_read: Option<Instant>,
    /// When the last call here ended, and whether a task waits to collect
    /// the garbage of the kept isolates once the thread has been idle.
    last_call: Instant,
    collector: bool,
}

/// A lane's kept isolates of one slot hold at most 1/n of the memory limit
/// together: half of what an isolate thread's may (`KEPT_SHARE`), as a
/// server has more connection threads, and their calls take the pool's
/// places anyway.
pub const LANE_KEPT_SHARE: usize = 2 * KEPT_SHARE;

/// How often a lane reads its isolates' heap figures at most: reading
/// enters each one.
const HEAP_READ_EVERY: Duration = Duration::from_millis(100);

thread_local! {
    static LANE: RefCell<Option<Lane>> = const { RefCell::new(None) };
    /// The call running on this thread, polled through [`LaneCall`].
    static RUNNING: RefCell<Option<Pin<Box<dyn Future<Output = Report>>>>> =
        const { RefCell::new(None) };
    /// HTTP/2 connections open on this thread: their streams share it.
    static H2_OPEN: Cell<usize> = const { Cell::new(0) };
    /// The sockets of the HTTP/1 connections open on this thread.
    static H1_SOCKETS: RefCell<Vec<H1Socket>> = const { RefCell::new(Vec::new()) };
}

/// An HTTP/1 connection's socket, and the copy of it the watchdog watches
/// during that connection's calls here (made at its first such call).
struct H1Socket {
    fd: RawFd,
    copy: Option<Arc<OwnedFd>>,
}

impl LaneParts {
    /// Makes the current thread a lane, with `seat` shared with the
    /// accept loop. Call on the connection thread, before it serves.
    pub fn install(&self, seat: Seat) {
        let lane = Lane {
            shared: self.shared.clone(),
            seat,
            cpu_clock: ThreadCpuClock::current(),
            kept: KeptSlots::default(),
            retired: Vec::new(),
            served: self.served.clone(),
            heap: Arc::default(),
            heap_read: None,
            last_call: Instant::now(),
            collector: false,
        };
        crate::sync::lock(&self.shared.lane_heap).push(lane.heap.clone());
        LANE.with(|l| *l.borrow_mut() = Some(lane));
    }
}

/// Drops the current thread's lane and its isolates. Call on the thread,
/// inside its runtime, before it ends.
pub fn uninstall() {
    let _running = RUNNING.with(|r| r.borrow_mut().take());
    let lane = LANE.with(|l| l.borrow_mut().take());
    if let Some(lane) = &lane {
        crate::sync::lock(&lane.shared.lane_heap).retain(|h| !Arc::ptr_eq(h, &lane.heap));
    }
    drop(lane);
}

/// Counts an HTTP/2 connection on this thread until the guard is dropped:
/// while one is open, no call runs on the thread.
pub fn h2_open() -> H2Guard {
    H2_OPEN.with(|n| n.set(n.get() + 1));
    H2Guard(())
}

/// See [`h2_open`].
pub struct H2Guard(());

impl Drop for H2Guard {
    fn drop(&mut self) {
        H2_OPEN.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Registers the socket `fd` of an HTTP/1 connection served on this
/// thread until the guard is dropped, which must happen after the
/// connection has ended but before the thread runs anything else: the
/// socket is open while it is registered.
pub fn h1_open(fd: RawFd) -> H1Guard {
    H1_SOCKETS.with(|s| s.borrow_mut().push(H1Socket { fd, copy: None }));
    H1Guard(fd)
}

/// See [`h1_open`].
pub struct H1Guard(RawFd);

impl Drop for H1Guard {
    fn drop(&mut self) {
        H1_SOCKETS.with(|s| s.borrow_mut().retain(|socket| socket.fd != self.0));
    }
}

/// A copy of the socket of the one HTTP/1 connection on this thread, for
/// the watchdog; `None` if there is not exactly one or no copy can be made.
fn caller_socket() -> Option<Arc<OwnedFd>> {
    H1_SOCKETS.with(|s| {
        let mut sockets = s.borrow_mut();
        let [socket] = sockets.as_mut_slice() else {
            return None;
        };
        if socket.copy.is_none() {
            // SAFETY: a registered socket is open (see `h1_open`), and the
            // copy has its own descriptor.
            let fd = unsafe { BorrowedFd::borrow_raw(socket.fd) };
            socket.copy = fd.try_clone_to_owned().ok().map(Arc::new);
        }
        socket.copy.clone()
    })
}

/// A place for `execution` on this thread, if it may run here now: the
/// thread is then marked busy until the [`LaneCall`] made by [`run`] ends.
pub(super) fn claim(execution: &Execution) -> Option<Claim> {
    let Placement::Thread(slot @ (Slot::Warm | Slot::Frozen)) =
        placement(execution.isolation, &execution.task)
    else {
        return None;
    };
    if H2_OPEN.with(Cell::get) > 0 {
        return None;
    }
    LANE.with(|l| {
        let lane = l.borrow();
        let lane = lane.as_ref()?;
        // Only the caller's connection on this thread (work its requests
        // start in the background runs elsewhere: see `background`), and
        // the script's (or client's, or tenant's) share of threads not used
        // up.
        if !lane.seat.hold_alone() {
            return None;
        }
        match lane.shared.queue.claim_lane(execution) {
            Some(share) => Some(Claim {
                slot,
                socket: caller_socket(),
                share: Held {
                    shared: lane.shared.clone(),
                    share,
                },
            }),
            None => {
                lane.seat.release();
                None
            }
        }
    })
}

/// A claimed place on this thread's lane, for [`run`].
pub(super) struct Claim {
    /// The kept slot the call's isolate comes from.
    slot: Slot,
    /// The caller's socket, for the watchdog.
    socket: Option<Arc<OwnedFd>>,
    share: Held,
}

/// A share of the script's threads, given back when dropped.
struct Held {
    shared: Arc<Shared>,
    share: LaneShare,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.shared.queue.release_lane(&self.share);
    }
}

/// Runs a claimed `execution` on this thread. The future must be polled
/// on this thread (a connection's task never leaves it); dropping it ends
/// the call.
pub(super) fn run(claim: Claim, execution: Arc<Execution>, cancel: Arc<CancelFlag>) -> LaneCall {
    // Boxed where it is made: the future is a few KiB, and each move of it
    // by value (into a closure, then into a box) would copy all of it.
    let call: Pin<Box<dyn Future<Output = Report>>> = Box::pin(call(claim, execution, cancel));
    RUNNING.with(move |r| *r.borrow_mut() = Some(call));
    LaneCall { done: false }
}

/// A call running on this thread (see [`run`]).
pub(super) struct LaneCall {
    done: bool,
}

impl Future for LaneCall {
    type Output = Report;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Report> {
        // Taken out while polled: the call uses the lane's other state.
        let Some(mut call) = RUNNING.with(|r| r.borrow_mut().take()) else {
            self.done = true;
            release();
            return Poll::Ready(Report::failed(internal("the call left its thread")));
        };
        match call.as_mut().poll(cx) {
            Poll::Ready(report) => {
                self.done = true;
                release();
                Poll::Ready(report)
            }
            Poll::Pending => {
                RUNNING.with(|r| *r.borrow_mut() = Some(call));
                Poll::Pending
            }
        }
    }
}

impl Drop for LaneCall {
    fn drop(&mut self) {
        if !self.done {
            // The caller went away: the call ends here, its isolate with it.
            let call = RUNNING.with(|r| r.borrow_mut().take());
            drop(call);
            release();
        }
    }
}

/// The thread may take new connections again.
fn release() {
    LANE.with(|l| {
        if let Some(lane) = l.borrow().as_ref() {
            lane.seat.release();
        }
    });
}

/// The call itself: as an isolate thread runs a `"none"` or `"frozen"`
/// call.
async fn call(claim: Claim, execution: Arc<Execution>, cancel: Arc<CancelFlag>) -> Report {
    // The share is given back however the call ends.
    let _share = claim.share;
    let slot = claim.slot;
    let owner = execution.owner.clone();
    let taken = LANE.with(|l| {
        let mut lane = l.borrow_mut();
        let lane = lane.as_mut()?;
        lane.retired.clear();
        lane.served.fetch_add(1, Ordering::Relaxed);
        let kept = lane.kept.of(slot)?.take(&owner, &mut lane.retired);
        Some((lane.shared.clone(), lane.cpu_clock, kept))
    });
    let Some((shared, cpu_clock, kept)) = taken else {
        return Report::failed(internal("no isolates on this thread"));
    };
    let mut sandbox = match kept {
        Some(sandbox) => sandbox,
        None => match made_isolate(&shared, slot) {
            Ok(sandbox) => sandbox,
            Err(e) => {
                return Report::failed(internal(&format!("could not create an isolate: {e}")));
            }
        },
    };
    sandbox.owner = Some(owner);
    let started = Instant::now();
    let deadline = started + execution.timeout;
    let stop = || cancel.is_cancelled();
    let code = match prepare(&shared, &execution, &stop, deadline) {
        Ok(code) => code,
        Err(e) => {
            keep(slot, sandbox, 0, Instant::now());
            return Report::failed(e);
        }
    };
    let (report, memory, ended) = {
        let mut entered = sandbox.entered();
        let input = CallInput {
            execution: &execution,
            cancel: &cancel,
            code: &code,
            started,
            deadline,
            slot,
            hangup: claim.socket,
        };
        call_in(
            &shared,
            cpu_clock,
            &mut entered,
            input,
            std::future::pending(),
        )
        .await
    };
    let limit = shared.limits.memory_limit_bytes;
    let kept = slot
        .policy()
        .keeps(sandbox.reusable(), sandbox.module_count(), memory, limit);
    if kept {
        let reset = sandbox.reset_pending();
        keep(slot, sandbox, memory, ended);
        if reset {
            finish_reset_after_answer();
        }
    } else {
        // Dropped, and replaced, once the answer has gone.
        LANE.with(|l| {
            if let Some(lane) = l.borrow_mut().as_mut() {
                lane.retired.push(sandbox);
            }
        });
        replace_after_answer(slot);
    }
    collect_when_idle(ended);
    report
}

/// Once the answer of a call whose isolate was given up (killed, or over
/// its bound) has gone: drops that isolate and makes the slot a new one,
/// so that the connection's next call does not wait for either — but only
/// while this connection is still the only one on the thread, marked busy
/// meanwhile like a call, so that no other connection waits for it either.
fn replace_after_answer(slot: Slot) {
    tokio::spawn(async move {
        LANE.with(|l| {
            let mut lane = l.borrow_mut();
            let Some(lane) = lane.as_mut() else {
                return;
            };
            // As a call claims the thread (see `claim`).
            if !lane.seat.hold_alone() {
                return;
            }
            lane.retired.clear();
            let unowned = lane
                .kept
                .of(slot)
                .is_some_and(|kept| kept.iter_mut().any(|s| s.owner.is_none()));
            if !unowned && let Ok(sandbox) = made_isolate(&lane.shared, slot) {
                lane.keep(slot, sandbox, 0, Instant::now());
            }
            lane.seat.release();
        });
    });
}

/// Puts a frozen isolate's global object back once the call's answer has
/// gone: a task of this thread's runtime, which runs after the
/// connection's task has written the answer and is waiting for the next
/// request. A request that comes first finds the reset still to be done
/// and has it done before its call (`Kept::take`).
fn finish_reset_after_answer() {
    tokio::spawn(async {
        LANE.with(|l| {
            if let Some(lane) = l.borrow_mut().as_mut()
                && let Some(kept) = lane.kept.of(Slot::Frozen)
            {
                kept.finish_resets(&mut lane.retired);
            }
        });
    });
}

/// Collects the garbage the calls left in the kept isolates once the
/// thread has had no call for [`IDLE_COLLECT_AFTER`] (an idle isolate never
/// collects by itself), as an isolate thread does. One task waits for that
/// at a time; it touches nothing while a call runs.
fn collect_when_idle(now: Instant) {
    let start = LANE.with(|l| {
        let mut lane = l.borrow_mut();
        let lane = lane.as_mut()?;
        lane.last_call = now;
        if lane.collector {
            return None;
        }
        lane.collector = true;
        Some(())
    });
    if start.is_none() {
        return;
    }
    // Polled on this thread only (its runtime is single-threaded): the task
    // reaches the lane through the thread's own state.
    tokio::spawn(async move {
        let mut due = now + IDLE_COLLECT_AFTER;
        loop {
            tokio::time::sleep_until(due.into()).await;
            let next = LANE.with(|l| {
                let mut lane = l.borrow_mut();
                let lane = lane.as_mut()?;
                if lane.seat.busy.load(Ordering::SeqCst) {
                    // A call runs (waiting on something): look again later.
                    return Some(Instant::now() + IDLE_COLLECT_AFTER);
                }
                if lane.last_call.elapsed() < IDLE_COLLECT_AFTER {
                    return Some(lane.last_call + IDLE_COLLECT_AFTER);
                }
                lane.retired.clear();
                collect_garbage(lane.kept.iter_mut());
                lane.heap_read = None;
                lane.record_heap(Instant::now());
                lane.collector = false;
                None
            });
            match next {
                Some(at) => due = at,
                None => return,
            }
        }
    });
}

/// Keeps `sandbox` among the lane's isolates of `slot`, and publishes the
/// heap figures of those it keeps.
fn keep(slot: Slot, sandbox: Box<Sandbox>, memory: usize, now: Instant) {
    LANE.with(|l| {
        if let Some(lane) = l.borrow_mut().as_mut() {
            lane.keep(slot, sandbox, memory, now);
        }
    });
}

/// A new isolate for `slot`, counted in the pool's figures.
fn made_isolate(shared: &Shared, slot: Slot) -> Result<Box<Sandbox>, super::js::InitError> {
    let sandbox = new_isolate(&shared.host, slot)?;
    shared.isolates_created.fetch_add(1, Ordering::Relaxed);
    Ok(sandbox)
}

impl Lane {
    /// See [`keep`].
    fn keep(&mut self, slot: Slot, sandbox: Box<Sandbox>, memory: usize, now: Instant) {
        let bound = self.shared.limits.memory_limit_bytes / LANE_KEPT_SHARE;
        match self.kept.of(slot) {
            Some(kept) => {
                let retired = kept.keep(sandbox, memory, bound);
                self.retired.extend(retired);
            }
            None => self.retired.push(sandbox),
        }
        self.record_heap(now);
    }

    /// Publishes the heap figures of the isolates kept here, unless they
    /// were read less than [`HEAP_READ_EVERY`] before `now`.
    fn record_heap(&mut self, now: Instant) {
        if self
            .heap_read
            .is_some_and(|t| now.saturating_duration_since(t) < HEAP_READ_EVERY)
        {
            return;
        }
        self.heap_read = Some(now);
        let sum = heap_figures(self.kept.iter_mut());
        for (a, v) in self.heap.iter().zip(sum) {
            a.store(v, Ordering::Relaxed);
        }
    }
}

fn internal(message: &str) -> ExecError {
    ExecError::Internal {
        message: message.into(),
    }
}
