//! The helper's side: `isoexec compile-helper` answers requests from stdin
//! on a thread with a large stack, until stdin closes.

use std::sync::OnceLock;

use super::{Answer, Request, read_frame, write_frame};
use crate::engine::lint::Lint;

/// Stack of the helper's working thread. Virtual memory only: pages are
/// used as deep input needs them, and input deeper than this ends the
/// helper (which the server reports as a syntax error).
const HELPER_STACK: usize = 512 * 1024 * 1024;

/// Does what `request` asks, on the calling thread.
pub(super) fn handle(request: &Request, lint: &OnceLock<Lint>) -> Answer {
    let work = std::panic::AssertUnwindSafe(|| match request {
        Request::Transpile { specifier, source } => {
            Answer::Transpiled(super::transpile_source(specifier, source))
        }
        Request::Lint { path, source } => {
            Answer::Linted(lint.get_or_init(Lint::new).lint(path, source))
        }
        Request::Factory { code } => Answer::Factory(super::factory::factory_source(code)),
    });
    match std::panic::catch_unwind(work) {
        Ok(reply) => reply,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the compiler panicked".into());
            Answer::Failed(format!("the compiler failed: {message}"))
        }
    }
}

/// The `isoexec compile-helper` entry point: requests from stdin, replies
/// on stdout, until stdin closes.
pub(crate) fn serve() -> std::process::ExitCode {
    crate::engine::lifeline::hold();
    // Panics become replies; their default message would only fill stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let worker = std::thread::Builder::new()
        .name("isoexec-compile".into())
        .stack_size(HELPER_STACK)
        .spawn(|| -> std::io::Result<()> {
            let lint = OnceLock::new();
            let mut stdin = std::io::stdin().lock();
            let mut stdout = std::io::stdout().lock();
            while let Some(bytes) = read_frame(&mut stdin)? {
                let reply = match serde_json::from_slice::<Request>(&bytes) {
                    Ok(request) => handle(&request, &lint),
                    Err(e) => Answer::Failed(format!("an unreadable compile request: {e}")),
                };
                let out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
                write_frame(&mut stdout, &out)?;
            }
            Ok(())
        });
    match worker.map(|t| t.join()) {
        Ok(Ok(Ok(()))) => std::process::ExitCode::SUCCESS,
        _ => std::process::ExitCode::FAILURE,
    }
}
