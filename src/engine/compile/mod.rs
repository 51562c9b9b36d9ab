//! Parsing, transpiling and linting, run where a crash or a runaway input
//! cannot hurt the server.
//!
//! `deno_ast` (swc) and `deno_lint` recurse once per level of nesting, and
//! their stack use per level is large (about 20 KiB per `(` in a debug
//! build), so a few hundred kilobytes of `[[[[…` overflow any stack a thread
//! could have: Rust then aborts the whole process. Their time is also not
//! bounded by anything but the input. So the server never parses user code
//! in its own process: a [`Compiler`] hands each request to a helper process
//! of this binary (`isoexec compile-helper`), which works on a thread with a
//! large stack under a memory limit. A helper that overflows its stack or
//! runs out of memory dies alone, and the caller gets a syntax error that
//! says so; one still working at the caller's deadline, or after the caller
//! went away, is killed, so the work stops with it.
//!
//! Protocol: frames of a little-endian `u32` length and that many bytes of
//! JSON; the helper reads a [`Request`] from stdin and writes a [`Answer`] to
//! stdout, for as many requests as it is sent.
//!
//! An `isoexec worker` receives its function-call script already compiled
//! by the server and starts a helper of its own only for what it must still
//! compile (a program and its imports). [`Compiler::in_process`] compiles on
//! the calling thread, for unit tests.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod factory;
pub(super) mod helper;
mod transpile;
pub use transpile::SyntaxError;
pub(crate) use transpile::transpile_source;

use super::lint::LintReport;
use super::rlimit::set_rlimit;

/// Sources larger than this are compiled by a helper that ends afterwards.
const RECYCLE_AFTER_BYTES: usize = 1024 * 1024;
/// Private memory a helper may map (its stack included); past it the
/// allocator fails and the helper dies, reported as input too large.
const HELPER_DATA_LIMIT: u64 = 4 * 1024 * 1024 * 1024;
/// How often a waiting caller checks whether its caller went away.
const POLL_SLICE: Duration = Duration::from_millis(20);
/// Largest frame either side accepts.
const MAX_FRAME: usize = 256 * 1024 * 1024;
/// Bytes of a dead helper's stderr read to tell why it died.
const STDERR_KEEP: usize = 16 * 1024;

/// What a helper is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Request {
    /// Parse and transpile a module to JavaScript with an inline source map.
    Transpile { specifier: String, source: String },
    /// Lint a file with deno_lint's recommended rules.
    Lint { path: PathBuf, source: String },
    /// Make the factory script of a transpiled module (see `factory`).
    Factory { code: String },
}

/// A helper's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Answer {
    Transpiled(Result<String, SyntaxError>),
    Linted(LintReport),
    Factory(Option<String>),
    /// The request could not be handled (a panic inside the parser).
    Failed(String),
}

/// Why compiling (parsing, transpiling, linting) gave nothing back: the
/// one failure type of compiling, whether a helper, the transpile cache or
/// the in-process compiler answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// The deadline passed; the work was stopped.
    Timeout,
    /// The caller went away; the work was stopped.
    Cancelled,
    /// The source does not compile (a syntax error, or nesting too deep or
    /// input too large for the compiler), at this position.
    Syntax(SyntaxError),
    /// Our side failed (no helper could start, or one died unexplained).
    Internal(String),
}

impl From<CompileError> for crate::engine::types::ExecError {
    fn from(e: CompileError) -> Self {
        use crate::engine::types::ExecError;
        match e {
            CompileError::Syntax(e) => ExecError::Syntax {
                message: e.message,
                line: e.line,
                column: e.column,
            },
            CompileError::Timeout => ExecError::Timeout,
            CompileError::Cancelled => ExecError::Cancelled,
            CompileError::Internal(message) => ExecError::Internal { message },
        }
    }
}

/// Runs compile requests in helper processes, or in-process for a
/// disposable process.
pub(crate) struct Compiler {
    mode: Backend,
}

enum Backend {
    Helpers(Helpers),
    #[cfg(test)]
    InProcess(std::sync::OnceLock<super::lint::Lint>),
}

struct Helpers {
    exe: PathBuf,
    /// Helpers waiting for a request, and how many exist in all.
    state: Mutex<HelperState>,
    freed: Condvar,
    /// Most helpers alive at once; callers beyond that wait for one.
    max_live: usize,
    /// Most idle helpers kept; more are ended after their request.
    keep_idle: usize,
}

#[derive(Default)]
struct HelperState {
    idle: Vec<Helper>,
    live: usize,
}

struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Compiler {
    /// A compiler that uses helper processes of the running binary: up to
    /// `2 × concurrency` at once, `concurrency` of them started now.
    pub(crate) fn helpers(concurrency: usize) -> std::io::Result<Compiler> {
        Compiler::start(concurrency, true)
    }

    /// Like [`Compiler::helpers`], but no helper starts until one is needed:
    /// for a process that may never compile anything.
    pub(crate) fn helpers_on_demand(concurrency: usize) -> std::io::Result<Compiler> {
        Compiler::start(concurrency, false)
    }

    fn start(concurrency: usize, prestart: bool) -> std::io::Result<Compiler> {
        let concurrency = concurrency.max(1);
        let helpers = Helpers {
            exe: std::env::current_exe()?,
            state: Mutex::new(HelperState::default()),
            freed: Condvar::new(),
            max_live: concurrency * 2,
            keep_idle: concurrency,
        };
        for _ in 0..if prestart { concurrency } else { 0 } {
            let helper = helpers.spawn()?;
            let mut state = helpers.lock();
            state.live += 1;
            state.idle.push(helper);
        }
        Ok(Compiler {
            mode: Backend::Helpers(helpers),
        })
    }

    /// A compiler that works on the calling thread, for unit tests.
    #[cfg(test)]
    pub(crate) fn in_process() -> Compiler {
        Compiler {
            mode: Backend::InProcess(std::sync::OnceLock::new()),
        }
    }

    /// Transpiles `source`, known as `specifier`, to JavaScript.
    pub(crate) fn transpile(
        &self,
        specifier: &str,
        source: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Result<String, SyntaxError>, CompileError> {
        let request = Request::Transpile {
            specifier: specifier.to_string(),
            source: source.to_string(),
        };
        match self.run(&request, source, deadline, stop)? {
            Answer::Transpiled(r) => Ok(r),
            Answer::Failed(message) => Err(failed(message)),
            _ => Err(out_of_turn()),
        }
    }

    /// The script whose value is a function making a new instance of the
    /// transpiled module `code` at each call, if the module can be one
    /// (see `factory`).
    pub(crate) fn factory(
        &self,
        code: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<String>, CompileError> {
        let request = Request::Factory {
            code: code.to_string(),
        };
        match self.run(&request, code, deadline, stop)? {
            Answer::Factory(r) => Ok(r),
            Answer::Failed(message) => Err(failed(message)),
            _ => Err(out_of_turn()),
        }
    }

    /// Lints `source`, the text of the file at `path`.
    pub(crate) fn lint(
        &self,
        path: PathBuf,
        source: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<LintReport, CompileError> {
        let request = Request::Lint {
            path,
            source: source.to_string(),
        };
        match self.run(&request, source, deadline, stop)? {
            Answer::Linted(r) => Ok(r),
            Answer::Failed(message) => Err(failed(message)),
            _ => Err(out_of_turn()),
        }
    }

    fn run(
        &self,
        request: &Request,
        source: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Answer, CompileError> {
        match &self.mode {
            #[cfg(test)]
            Backend::InProcess(lint) => {
                if stop() {
                    return Err(CompileError::Cancelled);
                }
                let reply = helper::handle(request, lint);
                if Instant::now() > deadline {
                    return Err(CompileError::Timeout);
                }
                Ok(reply)
            }
            Backend::Helpers(helpers) => helpers.run(request, source, deadline, stop),
        }
    }
}

impl Helpers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HelperState> {
        crate::sync::lock(&self.state)
    }

    fn spawn(&self) -> std::io::Result<Helper> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("compile-helper")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure only calls async-signal-safe functions
        // (setrlimit, prctl) between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                set_rlimit(libc::RLIMIT_DATA, HELPER_DATA_LIMIT, HELPER_DATA_LIMIT);
                set_rlimit(libc::RLIMIT_CORE, 0, 0);
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("a compile helper has no pipes"));
        };
        set_nonblocking(stderr.as_raw_fd());
        Ok(Helper {
            child,
            stdin,
            stdout,
            stderr,
        })
    }

    /// An idle helper, a new one, or (when `max_live` exist) the first one
    /// freed before the deadline.
    fn take(&self, deadline: Instant, stop: &dyn Fn() -> bool) -> Result<Helper, CompileError> {
        let mut state = self.lock();
        loop {
            if let Some(h) = state.idle.pop() {
                return Ok(h);
            }
            if state.live < self.max_live {
                state.live += 1;
                drop(state);
                return self.spawn().map_err(|e| {
                    self.release(None);
                    CompileError::Internal(format!("could not start a compile helper: {e}"))
                });
            }
            if stop() {
                return Err(CompileError::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CompileError::Timeout);
            }
            let wait = (deadline - now).min(POLL_SLICE);
            state = self
                .freed
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Gives a helper back (or, with `None`, accounts for one that ended).
    fn release(&self, helper: Option<Helper>) {
        let mut state = self.lock();
        match helper {
            Some(h) if state.idle.len() < self.keep_idle => state.idle.push(h),
            other => {
                state.live = state.live.saturating_sub(1);
                drop(state);
                drop(other);
            }
        }
        self.freed.notify_one();
    }

    fn run(
        &self,
        request: &Request,
        source: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Answer, CompileError> {
        let frame = serde_json::to_vec(request).map_err(|e| {
            CompileError::Internal(format!("could not encode a compile request: {e}"))
        })?;
        // A helper that died while idle fails the write before it read
        // anything: try another one.
        let mut attempts = 0;
        let mut helper = loop {
            attempts += 1;
            let mut helper = self.take(deadline, stop)?;
            match write_frame(&mut helper.stdin, &frame) {
                Ok(()) => break helper,
                Err(e) if attempts < 3 => {
                    tracing::debug!(error = %e, "an idle compile helper was gone");
                    self.release(None);
                    drop(helper);
                }
                Err(e) => {
                    self.release(None);
                    return Err(CompileError::Internal(format!(
                        "could not hand code to a compile helper: {e}"
                    )));
                }
            }
        };
        match wait_readable(&helper.stdout, deadline, stop) {
            Wait::Ready => {}
            Wait::Timeout => {
                self.release(None);
                drop(helper);
                return Err(CompileError::Timeout);
            }
            Wait::Stopped => {
                self.release(None);
                drop(helper);
                return Err(CompileError::Cancelled);
            }
        }
        match read_frame(&mut helper.stdout) {
            Ok(Some(bytes)) => {
                drain(&mut helper.stderr);
                let reply = serde_json::from_slice::<Answer>(&bytes);
                if source.len() > RECYCLE_AFTER_BYTES {
                    // A helper keeps the memory of its largest compile for
                    // its life: after a large one it ends, and the next
                    // request starts a fresh helper.
                    self.release(None);
                    drop(helper);
                } else {
                    self.release(Some(helper));
                }
                reply.map_err(|e| CompileError::Internal(format!("a compile helper's reply: {e}")))
            }
            Ok(None) | Err(_) => {
                // The helper died on this request.
                let status = helper.child.wait().ok();
                let mut said = Vec::new();
                let _ = (&mut helper.stderr)
                    .take(STDERR_KEEP as u64)
                    .read_to_end(&mut said);
                self.release(None);
                drop(helper);
                Err(died(status, &String::from_utf8_lossy(&said), source))
            }
        }
    }
}

/// The message for input the compiler ran out of memory on.
const TOO_LARGE: &str =
    "The code is too large or too complex to compile (the compiler ran out of memory)";

/// A helper's answer to another kind of request than the one asked.
fn out_of_turn() -> CompileError {
    CompileError::Internal("the helper answered out of turn".into())
}

/// What a failed request means: running out of memory (the compiler grows
/// its stack on the heap for deep input) is the input's doing; any other
/// panic is ours.
fn failed(message: String) -> CompileError {
    if message.contains("Cannot allocate memory") || message.contains("memory allocation") {
        return CompileError::Syntax(SyntaxError {
            message: TOO_LARGE.into(),
            line: 1,
            column: 1,
        });
    }
    CompileError::Internal(message)
}

/// What a helper's death without a reply means.
fn died(status: Option<std::process::ExitStatus>, stderr: &str, source: &str) -> CompileError {
    let (line, column) = deepest_point(source);
    if stderr.contains("overflowed its stack") {
        return CompileError::Syntax(SyntaxError {
            message: format!(
                "The code is nested too deeply to compile (deepest near line {line}, \
                 column {column}); reduce the nesting"
            ),
            line,
            column,
        });
    }
    if stderr.contains("memory allocation")
        || status.and_then(|s| s.signal()) == Some(libc::SIGKILL)
    {
        return CompileError::Syntax(SyntaxError {
            message: TOO_LARGE.into(),
            line: 1,
            column: 1,
        });
    }
    let how = match status {
        Some(s) => match s.signal() {
            Some(sig) => format!("signal {sig}"),
            None => format!("exit code {}", s.code().unwrap_or(-1)),
        },
        None => "an unknown cause".into(),
    };
    CompileError::Internal(format!(
        "a compile helper ended by {how}: {}",
        stderr.trim()
    ))
}

/// The 1-based line and column where brackets are nested deepest: where to
/// point a user whose code is too deep. A rough scan (strings and comments
/// are counted too); it only places the message.
pub(super) fn deepest_point(source: &str) -> (usize, usize) {
    let (mut depth, mut best) = (0usize, 0usize);
    let (mut line, mut column) = (1usize, 0usize);
    let mut at = (1, 1);
    for c in source.chars() {
        column += 1;
        match c {
            '\n' => {
                line += 1;
                column = 0;
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > best {
                    best = depth;
                    at = (line, column);
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    at
}

enum Wait {
    Ready,
    Timeout,
    Stopped,
}

/// Waits until `stdout` has something to read (a reply or end of file).
fn wait_readable(stdout: &ChildStdout, deadline: Instant, stop: &dyn Fn() -> bool) -> Wait {
    let fd = stdout.as_raw_fd();
    loop {
        if stop() {
            return Wait::Stopped;
        }
        let now = Instant::now();
        if now >= deadline {
            return Wait::Timeout;
        }
        let slice = (deadline - now).min(POLL_SLICE);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = slice.as_millis().max(1) as libc::c_int;
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return Wait::Ready;
        }
        if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // Let the read report it.
            return Wait::Ready;
        }
    }
}

pub(super) fn write_frame(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("a compile request over 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)?;
    w.flush()
}

/// One frame, or `None` at a clean end of input.
pub(super) fn read_frame(r: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("a frame of {len} bytes")));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

/// Reads and drops whatever a live helper wrote to stderr, so its pipe
/// never fills.
fn drain(stderr: &mut ChildStderr) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

fn set_nonblocking(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"{\"a\":1}").unwrap();
        write_frame(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(read_frame(&mut r).unwrap().unwrap(), b"");
        assert!(read_frame(&mut r).unwrap().is_none());
    }

    #[test]
    fn the_deepest_point_is_found() {
        assert_eq!(deepest_point("a\n b([c])\n"), (2, 4));
        assert_eq!(deepest_point(""), (1, 1));
    }

    #[test]
    fn in_process_compiles_and_reports_syntax_errors() {
        let c = Compiler::in_process();
        let far = Instant::now() + Duration::from_secs(60);
        let ok = c
            .transpile("file:///a.ts", "export const x: number = 1;", far, &|| {
                false
            })
            .unwrap()
            .unwrap();
        assert!(ok.contains("export const x = 1"), "{ok}");
        let bad = c
            .transpile("file:///a.ts", "export const = ;", far, &|| false)
            .unwrap()
            .unwrap_err();
        assert_eq!(bad.line, 1);
    }

    #[test]
    fn a_stack_overflow_is_a_rejection_with_a_position() {
        let f = died(
            None,
            "thread 'x' has overflowed its stack\n",
            "let a =\n  [[[1]]];",
        );
        match f {
            CompileError::Syntax(e) => {
                assert_eq!((e.line, e.column), (2, 5));
                assert!(e.message.contains("nested too deeply"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
    }
}
