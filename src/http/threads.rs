//! The threads connections are served on. Each runs a single-threaded
//! tokio runtime, and a connection stays on the thread it was given for
//! its whole life, with whatever its requests spawn.
//!
//! A call hops threads twice — to an isolate thread and back — and with a
//! work-stealing runtime each hop could land the connection on another
//! worker (and wake a second one to look for work): three or four context
//! switches and a cache-cold core per call. Here the reply wakes the one
//! thread that owns the connection, which is what it was doing before.
//!
//! With lanes (see `engine::lane`), a thread that serves one connection
//! runs that connection's `"none"` calls itself, and no hop is made at all.
//! While such a call runs, new connections go to the other threads; when
//! every thread runs one, to a reserve thread that never runs calls.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::engine::{LaneParts, Seat};

/// Stack of a connection thread: it may run V8, whose own stack limit
/// (about 1 MiB) must sit well inside it.
const THREAD_STACK: usize = 8 * 1024 * 1024;

/// How long a stopping thread waits for the blocking work its requests
/// started (file writes, SQLite) before it lets it go.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The connection threads; stopped and joined on drop.
pub(crate) struct ConnThreads {
    threads: Vec<ConnThread>,
    /// With lanes: the thread that takes connections while every other
    /// one runs a call.
    reserve: Option<ConnThread>,
}

struct ConnThread {
    handle: tokio::runtime::Handle,
    /// Connections open on this thread, and whether it runs a call.
    seat: Seat,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

/// Counts a connection on its thread until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnThreads {
    /// Starts `n` threads (at least one); with `lanes`, each runs calls of
    /// a connection it serves alone, and a reserve thread is started too.
    pub(crate) fn start(n: usize, lanes: Option<LaneParts>) -> std::io::Result<ConnThreads> {
        let n = n.max(1);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            threads.push(ConnThread::start(
                format!("isoexec-http-{i}"),
                lanes.clone(),
            )?);
        }
        let reserve = match lanes {
            Some(_) => Some(ConnThread::start("isoexec-http-r".into(), None)?),
            None => None,
        };
        Ok(ConnThreads { threads, reserve })
    }

    /// Runs a connection's future on the thread with the fewest open
    /// connections among those not running a call (the reserve thread
    /// when every one is).
    pub(crate) fn spawn(&self, conn: impl Future<Output = ()> + Send + 'static) {
        let mut order: Vec<&ConnThread> = self.threads.iter().collect();
        order.sort_by_key(|t| t.seat.open.load(Ordering::Relaxed));
        // One is always found: only a lane runs calls, and with lanes there
        // is the reserve, which never does.
        let Some(thread) = order
            .into_iter()
            .chain(self.reserve.iter())
            .find(|t| t.seat.try_enter())
        else {
            return;
        };
        let open = Open(thread.seat.open.clone());
        thread.handle.spawn(async move {
            let _open = open;
            conn.await;
        });
    }
}

impl ConnThread {
    fn start(name: String, lane: Option<LaneParts>) -> std::io::Result<ConnThread> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let seat = Seat::default();
        let mine = seat.clone();
        let join = std::thread::Builder::new()
            .name(name)
            .stack_size(THREAD_STACK)
            .spawn(move || {
                // The runtime's blocking pool (large bodies, file writes,
                // SQLite) gets threads of its own, named for what they do.
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("isoexec-blocking")
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                if let Some(lane) = &lane {
                    lane.install(mine);
                }
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                // Closed (dropped) counts as a stop too.
                let _ = rt.block_on(stopped);
                if lane.is_some() {
                    // Its isolates go inside the runtime, as they were made.
                    let _inside = rt.enter();
                    crate::engine::uninstall_lane();
                }
                rt.shutdown_timeout(STOP_GRACE);
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("a connection thread did not start"))??;
        Ok(ConnThread {
            handle,
            seat,
            stop: Some(stop),
            join: Some(join),
        })
    }
}

impl Drop for ConnThreads {
    fn drop(&mut self) {
        for t in self.threads.iter_mut().chain(self.reserve.iter_mut()) {
            if let Some(stop) = t.stop.take() {
                let _ = stop.send(());
            }
        }
        for t in self.threads.iter_mut().chain(self.reserve.iter_mut()) {
            if let Some(join) = t.join.take() {
                let _ = join.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spawns a connection-like future that reports its thread's name and
    /// stays open until `close` fires.
    fn open_one(threads: &ConnThreads) -> (std::sync::mpsc::Receiver<String>, oneshot::Sender<()>) {
        let (name_tx, name_rx) = std::sync::mpsc::channel();
        let (close, closed) = oneshot::channel::<()>();
        threads.spawn(async move {
            let name = std::thread::current().name().unwrap_or("").to_string();
            let _ = name_tx.send(name);
            let _ = closed.await;
        });
        (name_rx, close)
    }

    #[test]
    fn connections_go_to_the_thread_with_the_fewest_open() {
        let threads = ConnThreads::start(2, None).unwrap();
        let (a, close_a) = open_one(&threads);
        let (b, close_b) = open_one(&threads);
        let (a, b) = (a.recv().unwrap(), b.recv().unwrap());
        assert!(a.starts_with("isoexec-http-") && b.starts_with("isoexec-http-"));
        assert_ne!(
            a, b,
            "two open connections share a thread while another is empty"
        );
        // The first closes: the next connection goes where it was.
        close_a.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while threads.threads[0].seat.open.load(Ordering::Relaxed) != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the count never dropped"
            );
            std::thread::yield_now();
        }
        let (c, _close_c) = open_one(&threads);
        assert_eq!(c.recv().unwrap(), a);
        drop(close_b);
    }
}
