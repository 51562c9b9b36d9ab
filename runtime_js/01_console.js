// console: every call becomes one captured log entry (level, Rust-side
// timestamp, text). Nothing is written to the server's own stdout.
import { op_isoexec_log } from "ext:core/ops";
import { format, inspect } from "ext:isoexec/00_inspect.js";

// Level numbers shared with src/js/ops.rs (LogLevel).
const DEBUG = 0;
const LOG = 1;
const INFO = 2;
const WARN = 3;
const ERROR = 4;

let groupIndent = "";
const counts = new Map();
const timers = new Map();

function emit(level, text) {
  op_isoexec_log(level, groupIndent ? groupIndent + text.split("\n").join("\n" + groupIndent) : text);
}

function method(level) {
  return function (...args) {
    emit(level, format(args));
  };
}

export function createConsole() {
  const console = {
    log: method(LOG),
    info: method(INFO),
    warn: method(WARN),
    error: method(ERROR),
    debug: method(DEBUG),
    trace: function (...args) {
      const err = {};
      Error.captureStackTrace(err, console.trace);
      const stack = String(err.stack || "").split("\n").slice(1).join("\n");
      emit(DEBUG, "Trace" + (args.length ? ": " + format(args) : "") + (stack ? "\n" + stack : ""));
    },
    dir: function (value) {
      emit(LOG, inspect(value));
    },
    dirxml: method(LOG),
    table: function (data) {
      emit(LOG, inspect(data));
    },
    assert: function (condition, ...args) {
      if (condition) return;
      emit(ERROR, "Assertion failed" + (args.length ? ": " + format(args) : ""));
    },
    count: function (label = "default") {
      const n = (counts.get(String(label)) || 0) + 1;
      counts.set(String(label), n);
      emit(INFO, String(label) + ": " + n);
    },
    countReset: function (label = "default") {
      counts.delete(String(label));
    },
    group: function (...args) {
      if (args.length) emit(LOG, format(args));
      groupIndent += "  ";
    },
    groupEnd: function () {
      groupIndent = groupIndent.slice(2);
    },
    time: function (label = "default") {
      timers.set(String(label), performance.now());
    },
    timeLog: function (label = "default", ...args) {
      const start = timers.get(String(label));
      if (start === undefined) return;
      const ms = performance.now() - start;
      emit(INFO, String(label) + ": " + ms.toFixed(3) + "ms" + (args.length ? " " + format(args) : ""));
    },
    timeEnd: function (label = "default") {
      const start = timers.get(String(label));
      if (start === undefined) return;
      timers.delete(String(label));
      emit(INFO, String(label) + ": " + (performance.now() - start).toFixed(3) + "ms");
    },
  };
  console.groupCollapsed = console.group;
  return console;
}
