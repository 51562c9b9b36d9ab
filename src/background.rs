//! Where work a request starts in the background runs: tasks that outlive
//! the request (a job, a session's reaper, a worker's output, a usage
//! flush) go to the runtime the server started on, never to the thread of
//! the connection that started them. A connection thread may run a call
//! itself (see `engine::lane`), and nothing but that connection may then
//! wait for it.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

static HOME: OnceLock<Handle> = OnceLock::new();

/// Makes the current runtime the home of background tasks. Call once, on
/// the runtime the server starts on; later calls change nothing.
pub(crate) fn settle_here() {
    if let Ok(handle) = Handle::try_current() {
        let _ = HOME.get_or_init(|| handle);
    }
}

/// Spawns `task` on the home runtime (on the current one before a home is
/// set: a command that runs without a server).
pub(crate) fn spawn<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match HOME.get() {
        Some(home) => home.spawn(task),
        None => tokio::spawn(task),
    }
}
