//! Where log lines go: a buffer that one thread empties into stderr. A
//! request's log line then costs the thread that writes it a lock and a
//! copy instead of a system call, and a busy server writes many lines with
//! each one. The buffer is bounded (a writer waits while it is full, so no
//! line is dropped); the thread, woken by the first line after a quiet
//! spell, lets [`GATHER`] pass before it writes, so that under load one
//! wake-up and one write carry a millisecond's lines rather than each line
//! waking it; the guard drains the buffer before the process ends.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tracing_subscriber::fmt::MakeWriter;

/// Lines waiting past this many bytes make their writers wait.
const MAX_PENDING: usize = 4 << 20;

/// How long the thread lets lines gather once one has come.
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// Lines waiting past this many bytes are written without gathering more.
const FULL_BATCH: usize = 64 << 10;

struct Shared {
    state: Mutex<State>,
    /// Signalled when lines come, and at the end.
    lines: Condvar,
    /// Signalled when the thread has taken what was waiting.
    taken: Condvar,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    closed: bool,
    /// The thread waits for a line: the next writer wakes it (and only
    /// that one: waking takes a system call).
    idle: bool,
    /// Writers waiting for room.
    full: usize,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer the log subscriber writes its lines to.
#[derive(Clone)]
pub struct LogWriter(Arc<Shared>);

/// Drains what is waiting and stops the thread when dropped; later lines
/// go to stderr directly.
pub struct Drain {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the thread that writes the lines to stderr. If it cannot start,
/// the writer writes each line to stderr itself.
pub fn start() -> (LogWriter, Drain) {
    start_with(std::io::stderr())
}

/// As [`start`], the lines going to `sink`.
fn start_with(sink: impl Write + Send + 'static) -> (LogWriter, Drain) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        lines: Condvar::new(),
        taken: Condvar::new(),
    });
    let mine = shared.clone();
    let thread = std::thread::Builder::new()
        .name("isoexec-log".into())
        .spawn(move || write_out(&mine, sink))
        .ok();
    // No thread: as after the drain, lines go straight out.
    lock(&shared).closed = thread.is_none();
    (LogWriter(shared.clone()), Drain { shared, thread })
}

/// The thread: writes whatever is waiting, in one go, until the end.
fn write_out(shared: &Shared, mut sink: impl Write) {
    let mut batch = Vec::new();
    loop {
        let mut state = lock(shared);
        while state.pending.is_empty() && !state.closed {
            state.idle = true;
            state = shared.lines.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.idle = false;
        if !state.closed && state.pending.len() < FULL_BATCH {
            drop(state);
            std::thread::sleep(GATHER);
            state = lock(shared);
        }
        std::mem::swap(&mut batch, &mut state.pending);
        let closed = state.closed;
        let full = state.full > 0;
        drop(state);
        if full {
            shared.taken.notify_all();
        }
        if batch.is_empty() && closed {
            return;
        }
        // Nowhere to report a failed write to.
        let _ = sink.write_all(&batch);
        batch.clear();
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        lock(&self.shared).closed = true;
        self.shared.lines.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One line's writer (the subscriber writes a line in one call).
pub struct Line<'a>(&'a Shared);

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(&self.0)
    }
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut state = lock(self.0);
        while state.pending.len() > MAX_PENDING && !state.closed {
            state.full += 1;
            state = self.0.taken.wait(state).unwrap_or_else(|e| e.into_inner());
            state.full -= 1;
        }
        if state.closed {
            drop(state);
            return std::io::stderr().write(bytes);
        }
        state.pending.extend_from_slice(bytes);
        let wake = std::mem::replace(&mut state.idle, false);
        drop(state);
        if wake {
            self.0.lines.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test reads afterwards.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_come_out_whole_and_in_order_and_all_of_them_by_the_drain() {
        let sink = Sink::default();
        let (writer, drain) = start_with(sink.clone());
        assert!(drain.thread.is_some(), "no log thread");
        // Written from several threads at once, each line in one call, as
        // the subscriber writes them; the drain waits for all of them.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        let line = format!("thread {t} line {i}\n");
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(drain);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words.len(), 4, "a broken line: {line:?}");
            let t: usize = words[1].parse().unwrap();
            let i: usize = words[3].parse().unwrap();
            assert_eq!(i, next[t], "out of order: {line:?}");
            next[t] += 1;
        }
        assert_eq!(next, [1000; 4]);
        // After the drain, lines go straight out (to stderr).
        assert!(lock(&writer.0).closed);
    }

    /// A sink that takes nothing until its gate opens.
    #[derive(Clone, Default)]
    struct Gated {
        open: Arc<(Mutex<bool>, Condvar)>,
        out: Sink,
    }

    impl Write for Gated {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (open, opened) = &*self.open;
            let mut open = open.lock().unwrap();
            while !*open {
                open = opened.wait(open).unwrap();
            }
            drop(open);
            self.out.write(bytes)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_waits_while_the_buffer_is_full_and_goes_on_when_it_empties() {
        let sink = Gated::default();
        let (writer, drain) = start_with(sink.clone());
        let line = format!("{}\n", "x".repeat((1 << 20) - 1));
        let lines = 12;
        let (done, finished) = std::sync::mpsc::channel();
        let w = writer.clone();
        let l = line.clone();
        std::thread::spawn(move || {
            for _ in 0..lines {
                w.make_writer().write_all(l.as_bytes()).unwrap();
            }
            done.send(()).unwrap();
        });
        // The log thread holds one batch at the closed gate; the writer
        // fills the buffer past its bound and waits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let state = lock(&writer.0);
            if state.full == 1 {
                assert!(state.pending.len() <= MAX_PENDING + line.len());
                break;
            }
            drop(state);
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never waited"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(finished.try_recv().is_err());
        let (open, opened) = &*sink.open;
        *open.lock().unwrap() = true;
        opened.notify_all();
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the waiting writer was never let go on");
        drop(drain);
        assert_eq!(sink.out.0.lock().unwrap().len(), line.len() * lines);
    }
}
