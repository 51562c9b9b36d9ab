//! `console`: the log sink of one call (or a program's stdout and stderr)
//! and the op the glue writes to it with.

use deno_core::{OpState, op2};

use super::CallState;
use crate::engine::types::{LogEntry, LogLevel};

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
pub(crate) struct LogSink {
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
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> LogSink {
        LogSink {
            max_entries,
            max_bytes,
            ..LogSink::default()
        }
    }

    /// A sink for a program's stdout and stderr, each capped at `max_bytes`
    /// (a line's bytes plus its newline). Output past a cap is dropped.
    pub(crate) fn streams(max_bytes: usize) -> LogSink {
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
            partial: false,
        });
    }

    /// Program output: consecutive lines to the same stream share one
    /// entry, so memory follows the bytes written, not the number of
    /// calls; a new entry (a switch of stream) costs `ENTRY_COST` bytes of
    /// its stream's cap.
    fn push_stream(&mut self, level: LogLevel, message: &str) {
        self.push_piece(level, message, true);
    }

    /// Program output written as raw text (`process.stdout.write`, Python's
    /// streams): each newline ends a line; what follows the last one stays
    /// open, and the next write or console line continues it.
    pub(crate) fn write(&mut self, level: LogLevel, text: &str) {
        if !self.streams {
            // A call's logs are lines.
            self.push(level, text.strip_suffix('\n').unwrap_or(text));
            return;
        }
        let mut rest = text;
        while let Some(end) = rest.find('\n') {
            self.push_piece(level, &rest[..end], true);
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            self.push_piece(level, rest, false);
        }
    }

    /// Adds `text` to its stream: a line when `ends_line`, else the start
    /// (or more) of one still open.
    fn push_piece(&mut self, level: LogLevel, text: &str, ends_line: bool) {
        let to_stderr = level.is_stderr();
        let last = self
            .entries
            .last()
            .filter(|last| last.level.is_stderr() == to_stderr);
        let merge = last.is_some();
        let continues = last.is_some_and(|l| l.partial);
        let used = if to_stderr {
            &mut self.stderr_bytes
        } else {
            &mut self.bytes
        };
        let overhead = if continues {
            0
        } else if merge {
            1
        } else {
            ENTRY_COST
        };
        if *used + overhead > self.max_bytes {
            self.truncated = true;
            return;
        }
        let kept = cut_at(text, self.max_bytes - *used - overhead);
        if kept.len() < text.len() {
            self.truncated = true;
        }
        *used += overhead + kept.len();
        match self.entries.last_mut() {
            Some(last) if merge => {
                if !continues {
                    last.message.push('\n');
                }
                last.message.push_str(kept);
                last.partial = !ends_line;
            }
            _ => self.entries.push(LogEntry {
                ts: now_ms(),
                level,
                message: kept.to_owned(),
                partial: !ends_line,
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
pub(super) fn cut_at(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Raw program output (no newline added): see [`LogSink::write`].
#[op2(fast)]
pub(super) fn op_isoexec_write(state: &mut OpState, level: u32, #[string] text: &str) {
    if let Some(call) = CallState::of_mut(state) {
        call.logs.write(level_from_number(level), text);
    }
}

#[op2(fast)]
pub(super) fn op_isoexec_log(state: &mut OpState, level: u32, #[string] message: &str) {
    if let Some(call) = CallState::of_mut(state) {
        call.logs.push(level_from_number(level), message);
    }
}

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
    fn raw_writes_continue_their_line_and_add_no_newline() {
        let mut sink = LogSink::streams(1000);
        sink.write(LogLevel::Log, "n? ");
        sink.push(LogLevel::Log, "55");
        sink.write(LogLevel::Log, "a\nb");
        sink.push(LogLevel::Error, "err");
        sink.write(LogLevel::Log, "c");
        let (out, err) = crate::engine::types::split_streams(&sink.entries);
        assert_eq!(out, "n? 55\na\nbc");
        assert_eq!(err, "err\n");
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
}
