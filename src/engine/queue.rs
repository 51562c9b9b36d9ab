//! The bounded queue in front of the isolate threads: executions wait here
//! until a thread takes them, at most `QUEUE_SIZE` beyond the free threads,
//! and one script (or client) holds at most `SCRIPT_THREADS` threads.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::keyed::KeyedMap;
use super::types::{Execution, Overloaded, PoolStats, Report, Task};
use super::watchdog::CancelFlag;
use crate::sync::lock;

/// An execution waiting for, or taken by, an isolate thread.
pub(super) struct Queued {
    pub execution: Arc<Execution>,
    /// Where the report goes; closed when the caller went away.
    pub reply: oneshot::Sender<Report>,
    pub cancel: Arc<CancelFlag>,
    /// When it was queued, for the queue-wait figure.
    pub queued_at: Instant,
    /// Whose share it counts against, for the per-script thread cap.
    key: u64,
    /// That share: `SCRIPT_THREADS`, or fewer when the execution asks.
    cap: usize,
}

impl Queued {
    /// Whether nobody waits for its report any more.
    pub(super) fn abandoned(&self) -> bool {
        self.reply.is_closed() || self.cancel.is_cancelled()
    }
}

/// What an isolate thread waiting for work is given.
pub(super) enum Next {
    Run(Box<Queued>),
    /// Nothing came within the time asked.
    Idle,
    /// The queue is closed and drained.
    Closed,
}

/// The queue and the threads' wake-ups.
pub(super) struct Queue {
    state: Mutex<QueueState>,
    /// One per isolate thread, signalled when that thread should look at
    /// the queue (an execution came, or the queue closes).
    wakers: Vec<Condvar>,
    /// Executions that may wait beyond those the threads are running.
    queue_size: usize,
    /// Number of isolate threads.
    threads: usize,
    /// Most threads one script may hold at once: with more threads than
    /// cores, a script that hogs its threads (say, loops until its deadline)
    /// leaves the others to everyone else instead of queueing them.
    script_threads: usize,
}

#[derive(Default)]
struct QueueState {
    waiting: VecDeque<Queued>,
    /// Executions taken by an isolate thread and not finished yet, by
    /// script: one script holds at most `script_threads`.
    running_by_key: KeyedMap<u64, usize>,
    /// Executions running on a connection thread's lane (see
    /// `engine::lane`), by script: they count against the same share.
    lanes_by_key: KeyedMap<u64, usize>,
    /// Threads waiting for work, in the order they began to wait.
    idle: Vec<usize>,
    closed: bool,
}

impl QueueState {
    /// Executions running and not finished yet: taken by an isolate thread
    /// or running on a connection thread's lane. At most one per isolate
    /// thread (`POOL_SIZE`) in all.
    fn running(&self) -> usize {
        self.running_by_key.values().sum::<usize>() + self.lanes_by_key.values().sum::<usize>()
    }

    /// Executions of share `key` running anywhere.
    fn held(&self, key: u64) -> usize {
        self.running_by_key.get(&key).copied().unwrap_or(0)
            + self.lanes_by_key.get(&key).copied().unwrap_or(0)
    }

    /// The thread that began to wait last, taken off the idle list: it
    /// is the one whose caches and isolates are warmest, and always waking
    /// the same one keeps the others asleep. Signal it with [`Queue::wake`]
    /// once the lock is released, so it does not wake only to wait for it.
    fn take_idle(&mut self) -> Option<usize> {
        self.idle.pop()
    }
}

impl Queue {
    pub(super) fn new(threads: usize, queue_size: usize, script_threads: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState::default()),
            wakers: (0..threads).map(|_| Condvar::new()).collect(),
            queue_size,
            threads,
            script_threads: script_threads.clamp(1, threads.max(1)),
        }
    }

    /// Queues `execution`. Fails at once when the queue is full or closed.
    pub(super) fn submit(
        &self,
        execution: Arc<Execution>,
        cancel: Arc<CancelFlag>,
    ) -> Result<oneshot::Receiver<Report>, Overloaded> {
        let (reply, rx) = oneshot::channel();
        let mut state = lock(&self.state);
        // Threads not running anything take an execution at once (even
        // while they are still preparing a fresh isolate); beyond those,
        // QUEUE_SIZE wait.
        let free_threads = self.threads.saturating_sub(state.running());
        if state.closed || state.waiting.len() >= self.queue_size + free_threads {
            return Err(Overloaded);
        }
        let key = share_key(&execution);
        let cap = self.share_cap(&execution);
        state.waiting.push_back(Queued {
            execution,
            reply,
            cancel,
            queued_at: Instant::now(),
            key,
            cap,
        });
        let idle = state.take_idle();
        drop(state);
        self.wake(idle);
        Ok(rx)
    }

    /// The most threads `execution`'s share may hold: `SCRIPT_THREADS`, or
    /// fewer when the execution asks.
    fn share_cap(&self, execution: &Execution) -> usize {
        execution
            .max_threads
            .map_or(self.script_threads, |n| n.clamp(1, self.script_threads))
    }

    /// Wakes the thread `take_idle` chose, if any. It stays in its wait
    /// until signalled (or wakes spuriously and looks at the queue itself),
    /// so signalling it after the lock is released loses nothing.
    fn wake(&self, id: Option<usize>) {
        if let Some(cv) = id.and_then(|id| self.wakers.get(id)) {
            cv.notify_one();
        }
    }

    /// Blocks until an execution may run on thread `id` — the oldest one
    /// whose script holds fewer than `script_threads` threads. Answers
    /// [`Next::Idle`] when none came within `idle_after` (when given), and
    /// [`Next::Closed`] once the queue is closed and drained.
    pub(super) fn next(&self, id: usize, idle_after: Option<Duration>) -> Next {
        let mut state = lock(&self.state);
        let mut timed_out = false;
        loop {
            // Off the idle list, whether woken for work or spuriously.
            state.idle.retain(|&t| t != id);
            // Calls on connection threads count against the pool's size.
            let room = state.running() < self.threads;
            let eligible = room
                .then(|| state.waiting.iter().position(|q| state.held(q.key) < q.cap))
                .flatten();
            if let Some(i) = eligible
                && let Some(q) = state.waiting.remove(i)
            {
                *state.running_by_key.entry(q.key).or_default() += 1;
                return Next::Run(Box::new(q));
            }
            if state.closed && state.waiting.is_empty() {
                return Next::Closed;
            }
            if timed_out {
                return Next::Idle;
            }
            state.idle.push(id);
            let Some(waker) = self.wakers.get(id) else {
                return Next::Closed;
            };
            state = match idle_after {
                Some(limit) => {
                    let (s, waited) = waker
                        .wait_timeout(state, limit)
                        .unwrap_or_else(|e| e.into_inner());
                    timed_out = waited.timed_out();
                    s
                }
                None => waker.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Marks `queued` finished: its script's share is free again.
    pub(super) fn finish(&self, queued: &Queued) {
        let key = queued.key;
        let mut state = lock(&self.state);
        let was_capped = state.running_by_key.contains_key(&key) && state.held(key) >= queued.cap;
        count_down(&mut state.running_by_key, key);
        // An execution of this script held back by the cap may run now.
        // Only then is a waiting thread woken: waking every idle thread after
        // every call costs each of them a context switch per call.
        let idle = if was_capped && state.waiting.iter().any(|q| q.key == key) {
            state.take_idle()
        } else {
            None
        };
        drop(state);
        self.wake(idle);
    }

    /// A place for `execution` to run on a connection thread's lane: none
    /// when the pool's size is taken, its script (or client) already holds
    /// its share, has executions waiting here (they go first), or the queue
    /// is closed.
    pub(super) fn claim_lane(&self, execution: &Execution) -> Option<LaneShare> {
        let key = share_key(execution);
        let cap = self.share_cap(execution);
        let mut state = lock(&self.state);
        let full = state.running() >= self.threads || state.held(key) >= cap;
        if state.closed || full || state.waiting.iter().any(|q| q.key == key) {
            return None;
        }
        *state.lanes_by_key.entry(key).or_default() += 1;
        Some(LaneShare { key })
    }

    /// Gives back a share [`Queue::claim_lane`] gave.
    pub(super) fn release_lane(&self, share: &LaneShare) {
        let mut state = lock(&self.state);
        count_down(&mut state.lanes_by_key, share.key);
        // A place in the pool is free: an execution waiting for one (or for
        // this share) may run now.
        let idle = if state.waiting.is_empty() {
            None
        } else {
            state.take_idle()
        };
        drop(state);
        self.wake(idle);
    }

    /// Takes no more executions and wakes every thread to drain the rest.
    pub(super) fn close(&self) {
        lock(&self.state).closed = true;
        for cv in &self.wakers {
            cv.notify_all();
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        let state = lock(&self.state);
        let busy = state.running().min(self.threads);
        let queued = state.waiting.len();
        drop(state);
        PoolStats {
            size: self.threads,
            busy,
            idle: self.threads - busy,
            queued,
        }
    }
}

/// A share of a script's (or client's) threads held by a call on a
/// connection thread's lane; give it back with [`Queue::release_lane`].
pub(super) struct LaneShare {
    key: u64,
}

/// Counts one execution of share `key` less in `counts`, forgetting the
/// share at none.
fn count_down(counts: &mut KeyedMap<u64, usize>, key: u64) {
    if let Some(n) = counts.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

/// Whose share an execution counts against: its client's when known;
/// otherwise a cheap fingerprint of what it runs, its script (the first and
/// last 64 KiB and the length) or its program's path.
fn share_key(execution: &Execution) -> u64 {
    use std::hash::{Hash, Hasher};
    thread_local! {
        /// The client this thread hashed last, and its key: a connection's
        /// requests name their client by the same `Arc`.
        static LAST_CLIENT: std::cell::RefCell<Option<(Arc<str>, u64)>> =
            const { std::cell::RefCell::new(None) };
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Some(client) = &execution.client {
        return LAST_CLIENT.with_borrow_mut(|last| match last {
            Some((known, key)) if Arc::ptr_eq(known, client) => *key,
            _ => {
                client.hash(&mut h);
                let key = h.finish();
                *last = Some((client.clone(), key));
                key
            }
        });
    }
    match &execution.task {
        Task::Call { script, .. } => {
            let b = script.as_bytes();
            b.len().hash(&mut h);
            b[..b.len().min(65_536)].hash(&mut h);
            b[b.len().saturating_sub(65_536)..].hash(&mut h);
        }
        Task::Program { path, .. } => path.hash(&mut h),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(script: &str) -> Execution {
        Execution::call(
            script.into(),
            "f".into(),
            "null".into(),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn calls_on_connection_threads_take_the_pools_places_and_shares() {
        // Two threads; one script may hold one of them.
        let queue = Queue::new(2, 4, 1);
        let a = queue.claim_lane(&call("a")).expect("a place");
        // Script a holds its share: its next call may not run on a lane...
        assert!(queue.claim_lane(&call("a")).is_none());
        // ...and another script takes the second place.
        let b = queue.claim_lane(&call("b")).expect("a place");
        assert_eq!(queue.stats().busy, 2);
        // The pool is full: a third script waits, on a lane or in the queue.
        assert!(queue.claim_lane(&call("c")).is_none());
        let waiting = queue
            .submit(Arc::new(call("c")), Arc::default())
            .expect("queued while the pool is full");
        let thread = std::thread::scope(|s| {
            let taken = s.spawn(|| queue.next(0, Some(Duration::from_millis(50))));
            assert!(
                matches!(taken.join().unwrap(), Next::Idle),
                "ran past the pool's size"
            );
            // A lane call ends: its place goes to the waiting one.
            queue.release_lane(&a);
            s.spawn(|| queue.next(0, Some(Duration::from_secs(5))))
                .join()
                .unwrap()
        });
        let Next::Run(q) = thread else {
            panic!("the waiting call did not get the freed place");
        };
        assert!(matches!(&q.execution.task, Task::Call { script, .. } if &**script == "c"));
        queue.finish(&q);
        queue.release_lane(&b);
        drop(waiting);
        assert_eq!(queue.stats().busy, 0);
    }
}
