//! The host side of the JS glue in `runtime_js/`: the `isoexec` extension, its
//! ops, and the per-call state they read and write.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::types::{LogEntry, LogLevel};
pub mod fetch_client;

use crate::engine::js::ext::fetch_client::{FetchError, FetchRequest, FetchResponse};
use crate::engine::permissions::{FsError, Permissions};
use crate::engine::watchdog::{KillReason, KillRecord};
use deno_core::{OpDecl, OpState, ToJsBuffer, op2, v8};
use deno_error::JsErrorBox;

/// Maps the level numbers of `runtime_js/01_console.js`.
fn level_from_number(n: u32) -> LogLevel {
    match n {
        0 => LogLevel::Debug,
        2 => LogLevel::Info,
        3 => LogLevel::Warn,
        4 => LogLevel::Error,
        _ => LogLevel::Log,
    }
}

/// Captured logs of one call, kept up to their caps.
#[derive(Debug, Default)]
pub struct LogSink {
    pub entries: Vec<LogEntry>,
    pub bytes: usize,
    pub truncated: bool,
    pub max_entries: usize,
    pub max_bytes: usize,
    /// Program mode: `max_bytes` caps stdout (log/info/debug) and stderr
    /// (warn/error) each, and the entry count is not capped.
    pub streams: bool,
    stderr_bytes: usize,
}

impl LogSink {
    pub fn new(max_entries: usize, max_bytes: usize) -> LogSink {
        LogSink {
            max_entries,
            max_bytes,
            ..LogSink::default()
        }
    }

    /// A sink for a program's stdout and stderr, each capped at `max_bytes`
    /// (a line's bytes plus its newline). Output past a cap is dropped.
    pub fn streams(max_bytes: usize) -> LogSink {
        LogSink {
            max_entries: usize::MAX,
            max_bytes,
            streams: true,
            ..LogSink::default()
        }
    }

    fn push(&mut self, level: LogLevel, message: &str) {
        if self.streams {
            self.push_stream(level, message);
            return;
        }
        if self.truncated {
            return;
        }
        if self.entries.len() >= self.max_entries {
            self.truncated = true;
            return;
        }
        // A line longer than what is left is kept up to the cap, and the
        // cut is flagged.
        let room = self.max_bytes - self.bytes;
        let kept = cut_at(message, room);
        if kept.len() < message.len() {
            self.truncated = true;
            if kept.is_empty() {
                return;
            }
        }
        self.bytes += kept.len();
        self.entries.push(LogEntry {
            ts: now_ms(),
            level,
            message: kept.to_owned(),
        });
    }

    /// Program output: consecutive lines to the same stream share one
    /// entry, so memory follows the bytes written, not the number of
    /// calls; a new entry (a switch of stream) costs `ENTRY_COST` bytes of
    /// its stream's cap.
    fn push_stream(&mut self, level: LogLevel, message: &str) {
        let to_stderr = level.is_stderr();
        let merge = self
            .entries
            .last()
            .is_some_and(|last| last.level.is_stderr() == to_stderr);
        let used = if to_stderr {
            &mut self.stderr_bytes
        } else {
            &mut self.bytes
        };
        let overhead = if merge { 1 } else { ENTRY_COST };
        if *used + overhead > self.max_bytes {
            self.truncated = true;
            return;
        }
        let kept = cut_at(message, self.max_bytes - *used - overhead);
        if kept.len() < message.len() {
            self.truncated = true;
        }
        *used += overhead + kept.len();
        match self.entries.last_mut() {
            Some(last) if merge => {
                last.message.push('\n');
                last.message.push_str(kept);
            }
            _ => self.entries.push(LogEntry {
                ts: now_ms(),
                level,
                message: kept.to_owned(),
            }),
        }
    }
}

/// What a program's output entry costs against its stream's cap.
const ENTRY_COST: usize = 64;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub fn cut_at(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What one call may use and what it did, kept in the `OpState`.
pub struct CallState {
    pub logs: LogSink,
    /// Variables `Deno.env.get` can see.
    pub env: HashMap<String, String>,
    /// The first capability refused to this call, if any.
    pub denied: Option<String>,
    /// The code passed to `Deno.exit`, if it was called.
    pub exit_code: Option<i32>,
    /// Bytes this call may still write to files (`MAX_WRITE_BYTES`).
    pub write_budget: u64,
    /// Origin of `performance.now()`.
    pub started: Instant,
    /// The same instant as milliseconds since the Unix epoch.
    pub started_epoch_ms: f64,
}

impl CallState {
    pub fn new(logs: LogSink, env: HashMap<String, String>, write_budget: u64) -> CallState {
        CallState {
            logs,
            env,
            denied: None,
            exit_code: None,
            write_budget,
            started: Instant::now(),
            started_epoch_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        }
    }
}

/// The isolate's own handle and kill record, for ops that stop execution.
pub struct SelfKill {
    pub isolate: v8::IsolateHandle,
    pub record: Arc<KillRecord>,
}

/// Name of the V8 private symbol under which the glue's cancel-all-timers
/// function hangs on the global object. Private symbols are invisible to
/// JS, and, unlike `OpState`, they survive the startup snapshot.
pub const CANCEL_TIMERS_KEY: &str = "isoexec.cancelTimers";

/// Name of the private symbol holding the glue's `seal` function, which
/// removes deno_core's namespace and installs the user-facing globals. It
/// runs once per runtime after creation: deno_core itself reads
/// `globalThis.Deno.core` while it restores a runtime from the snapshot.
pub const SEAL_KEY: &str = "isoexec.seal";

#[op2(fast)]
fn op_isoexec_log(state: &mut OpState, level: u32, #[string] message: &str) {
    if let Some(call) = state.try_borrow_mut::<CallState>() {
        call.logs.push(level_from_number(level), message);
    }
}

#[op2]
#[string]
fn op_isoexec_utf8_decode(#[buffer] bytes: &[u8], fatal: bool, strip_bom: bool) -> Option<String> {
    let bytes = if strip_bom {
        bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
    } else {
        bytes
    };
    if fatal {
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    } else {
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// The parts of a URL in the order `runtime_js/05_url.js` reads them.
fn url_parts(url: &deno_core::url::Url) -> Vec<String> {
    use deno_core::url::quirks;
    vec![
        quirks::href(url).to_string(),
        quirks::origin(url),
        quirks::protocol(url).to_string(),
        quirks::username(url).to_string(),
        quirks::password(url).to_string(),
        quirks::host(url).to_string(),
        quirks::hostname(url).to_string(),
        quirks::port(url).to_string(),
        quirks::pathname(url).to_string(),
        quirks::search(url).to_string(),
        quirks::hash(url).to_string(),
    ]
}

#[op2]
#[serde]
fn op_isoexec_url_parse(
    #[string] href: &str,
    #[string] base: Option<String>,
) -> Option<Vec<String>> {
    let url = match base {
        None => deno_core::url::Url::parse(href).ok()?,
        Some(base) => deno_core::url::Url::parse(&base).ok()?.join(href).ok()?,
    };
    Some(url_parts(&url))
}

#[op2]
#[serde]
fn op_isoexec_url_set(
    #[string] href: &str,
    which: u32,
    #[string] value: &str,
) -> Option<Vec<String>> {
    use deno_core::url::quirks;
    let mut url = deno_core::url::Url::parse(href).ok()?;
    let ok = match which {
        0 => quirks::set_href(&mut url, value).is_ok(),
        1 => quirks::set_protocol(&mut url, value).is_ok(),
        2 => quirks::set_username(&mut url, value).is_ok(),
        3 => quirks::set_password(&mut url, value).is_ok(),
        4 => quirks::set_host(&mut url, value).is_ok(),
        5 => quirks::set_hostname(&mut url, value).is_ok(),
        6 => quirks::set_port(&mut url, value).is_ok(),
        7 => {
            quirks::set_pathname(&mut url, value);
            true
        }
        8 => {
            quirks::set_search(&mut url, value);
            true
        }
        9 => {
            quirks::set_hash(&mut url, value);
            true
        }
        _ => false,
    };
    ok.then(|| url_parts(&url))
}

#[op2(fast)]
fn op_isoexec_now(state: &mut OpState) -> f64 {
    state
        .try_borrow::<CallState>()
        .map_or(0.0, |c| c.started.elapsed().as_secs_f64() * 1000.0)
}

#[op2(fast)]
fn op_isoexec_random_fill(#[buffer] buf: &mut [u8]) {
    fill_random(buf);
}

/// Fills `buf` from the kernel's CSPRNG.
fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // getrandom(2) cannot fail on Linux ≥ 3.17 once the pool is
            // seeded; fall back to a time-seeded generator rather than panic.
            let mut x = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
            for b in rest.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            return;
        }
    }
}

#[op2]
#[string]
fn op_isoexec_deny(state: &mut OpState, #[string] what: &str) -> String {
    let message = format!("Requires {what}; this capability is not granted");
    record_denial(state, &message);
    message
}

/// Records the first capability refused to the current call, so a failure
/// it causes is reported as `permission_denied`.
fn record_denial(state: &mut OpState, message: &str) {
    if let Some(call) = state.try_borrow_mut::<CallState>() {
        call.denied.get_or_insert_with(|| message.to_owned());
    }
}

#[op2]
#[string]
fn op_isoexec_env_get(state: &mut OpState, #[string] key: &str) -> Option<String> {
    state.try_borrow::<CallState>()?.env.get(key).cloned()
}

#[op2]
#[serde]
fn op_isoexec_env_object(state: &mut OpState) -> HashMap<String, String> {
    state
        .try_borrow::<CallState>()
        .map(|c| c.env.clone())
        .unwrap_or_default()
}

/// Largest file `Deno.readFile` / `readTextFile` return.
const MAX_READ_BYTES: usize = 64 * 1024 * 1024;

/// Turns a refused or failed file operation into the JS error the glue
/// registered for its class, recording a refusal for the call's report.
fn fs_error(state: &mut OpState, e: FsError) -> JsErrorBox {
    match e {
        FsError::Denied(message) => {
            record_denial(state, &message);
            JsErrorBox::new("PermissionDenied", message)
        }
        FsError::NotFound(message) => JsErrorBox::new("NotFound", message),
        FsError::Other(message) => JsErrorBox::generic(message),
    }
}

fn permissions(state: &OpState) -> Arc<Permissions> {
    state
        .try_borrow::<Arc<Permissions>>()
        .cloned()
        .unwrap_or_default()
}

#[op2]
#[buffer]
fn op_isoexec_read_file(state: &mut OpState, #[string] path: &str) -> Result<Vec<u8>, JsErrorBox> {
    permissions(state)
        .read_file(path, MAX_READ_BYTES)
        .map_err(|e| fs_error(state, e))
}

#[op2]
#[string]
fn op_isoexec_read_text_file(
    state: &mut OpState,
    #[string] path: &str,
) -> Result<String, JsErrorBox> {
    let bytes = permissions(state)
        .read_file(path, MAX_READ_BYTES)
        .map_err(|e| fs_error(state, e))?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[op2(fast)]
fn op_isoexec_write_file(
    state: &mut OpState,
    #[string] path: &str,
    #[buffer] data: &[u8],
    append: bool,
) -> Result<(), JsErrorBox> {
    // Writes are counted before they happen; a refused one writes nothing.
    if let Some(call) = state.try_borrow_mut::<CallState>() {
        let wanted = data.len() as u64;
        if wanted > call.write_budget {
            return Err(JsErrorBox::new(
                "QuotaExceededError",
                format!(
                    "Writing {wanted} bytes would pass this execution's write quota \
                     ({} bytes left; MAX_WRITE_BYTES)",
                    call.write_budget
                ),
            ));
        }
        call.write_budget -= wanted;
    }
    permissions(state)
        .write_file(path, data, append)
        .map_err(|e| fs_error(state, e))
}

#[op2]
#[serde]
async fn op_isoexec_fetch(
    state: Rc<RefCell<OpState>>,
    #[serde] request: FetchRequest,
    #[buffer(copy)] body: Vec<u8>,
) -> Result<(FetchResponse, ToJsBuffer), JsErrorBox> {
    let perms = permissions(&state.borrow());
    match crate::engine::js::ext::fetch_client::send(&perms, request, body).await {
        Ok((response, bytes)) => Ok((response, bytes.into())),
        Err(FetchError::Denied(message)) => {
            record_denial(&mut state.borrow_mut(), &message);
            Err(JsErrorBox::new("PermissionDenied", message))
        }
        Err(FetchError::Type(message)) => Err(JsErrorBox::type_error(message)),
        Err(FetchError::Network(message)) => Err(JsErrorBox::type_error(message)),
    }
}

#[op2(fast)]
fn op_isoexec_exit(state: &mut OpState, code: i32) {
    if let Some(call) = state.try_borrow_mut::<CallState>() {
        call.exit_code.get_or_insert(code);
    }
    if let Some(me) = state.try_borrow::<SelfKill>() {
        me.record.mark(KillReason::Exit);
        me.isolate.terminate_execution();
    }
}

#[op2(fast)]
fn op_isoexec_set_hooks(
    scope: &mut v8::PinScope,
    cancel_timers: v8::Local<v8::Function>,
    seal: v8::Local<v8::Function>,
) {
    let global = scope.get_current_context().global(scope);
    for (name, f) in [(CANCEL_TIMERS_KEY, cancel_timers), (SEAL_KEY, seal)] {
        if let Some(name) = v8::String::new(scope, name) {
            let key = v8::Private::for_api(scope, Some(name));
            global.set_private(scope, key, f.into());
        }
    }
}

#[op2(fast)]
fn op_isoexec_time_origin(state: &mut OpState) -> f64 {
    state
        .try_borrow::<CallState>()
        .map_or(0.0, |c| c.started_epoch_ms)
}

/// Built-in deno_core ops that user code must never run even if it found a
/// way to them: `op_panic` aborts the process, `op_print` writes to the
/// server's own stdout.
fn restrict_builtin_ops(op: OpDecl) -> OpDecl {
    match op.name {
        "op_panic" | "op_print" => op.disable(),
        _ => op,
    }
}

deno_core::extension!(
    isoexec,
    ops = [
        op_isoexec_log,
        op_isoexec_utf8_decode,
        op_isoexec_url_parse,
        op_isoexec_url_set,
        op_isoexec_now,
        op_isoexec_time_origin,
        op_isoexec_random_fill,
        op_isoexec_deny,
        op_isoexec_env_get,
        op_isoexec_env_object,
        op_isoexec_exit,
        op_isoexec_read_file,
        op_isoexec_read_text_file,
        op_isoexec_write_file,
        op_isoexec_fetch,
        op_isoexec_set_hooks,
    ],
    middleware = restrict_builtin_ops,
    customizer = |ext: &mut deno_core::Extension| {
        ext.esm_files = std::borrow::Cow::Borrowed(&RUNTIME_JS);
        ext.esm_entry_point = Some("ext:isoexec/99_main.js");
    },
);

macro_rules! runtime_js {
    ($($file:literal),* $(,)?) => {
        [$(deno_core::ExtensionFileSource::new(
            concat!("ext:isoexec/", $file),
            deno_core::ascii_str_include!(concat!("../../../../runtime_js/", $file)),
        )),*]
    };
}

/// The JS glue, embedded in the binary.
static RUNTIME_JS: [deno_core::ExtensionFileSource; 10] = runtime_js!(
    "00_inspect.js",
    "01_console.js",
    "02_timers.js",
    "03_encoding.js",
    "04_events.js",
    "05_url.js",
    "06_web.js",
    "07_deno.js",
    "08_buffers.js",
    "99_main.js",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_stop_at_their_caps_and_say_so() {
        let mut sink = LogSink::new(2, 1000);
        sink.push(LogLevel::Log, "a");
        sink.push(LogLevel::Warn, "b");
        sink.push(LogLevel::Log, "c");
        assert_eq!(sink.entries.len(), 2);
        assert!(sink.truncated);

        // The line that crosses the byte cap is kept up to it, and flagged.
        let mut sink = LogSink::new(100, 5);
        sink.push(LogLevel::Log, "abc");
        sink.push(LogLevel::Log, "déf");
        sink.push(LogLevel::Log, "g");
        assert_eq!(sink.entries.len(), 2);
        assert_eq!(sink.entries[1].message, "d");
        assert!(sink.truncated);
    }

    #[test]
    fn program_lines_share_entries_and_stop_at_the_cap() {
        let mut sink = LogSink::streams(1000);
        for _ in 0..10_000 {
            sink.push(LogLevel::Log, "");
        }
        sink.push(LogLevel::Error, "oops");
        sink.push(LogLevel::Log, "after");
        // Memory follows bytes: one entry per switch of stream; stdout is
        // full, so its last line is dropped, while stderr has room.
        assert_eq!(sink.entries.len(), 2);
        assert!(sink.truncated);
        assert!(sink.entries[0].message.len() < 1000);
        assert_eq!(sink.entries[1].message, "oops");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        assert_eq!(cut_at("héllo", 2), "h");
        assert_eq!(cut_at("héllo", 3), "hé");
        assert_eq!(cut_at("abc", 10), "abc");
    }

    #[test]
    fn random_fill_fills() {
        let mut a = [0u8; 64];
        fill_random(&mut a);
        assert!(a.iter().any(|&b| b != 0));
    }
}
