// console: every call becomes one captured log entry (level, Rust-side
// timestamp, text). Nothing is written to the server's own stdout.
// Uses only builtins captured at snapshot time (see 02_timers.js).
import { op_isoexec_log, op_isoexec_now } from "ext:core/ops";
import { primordials } from "ext:core/mod.js";
import { format, inspect } from "ext:isoexec/00_inspect.js";

const {
  ArrayPrototypeJoin,
  ArrayPrototypeSlice,
  ErrorCaptureStackTrace,
  MapPrototypeClear,
  MapPrototypeDelete,
  MapPrototypeGet,
  MapPrototypeGetSize,
  MapPrototypeSet,
  NumberPrototypeToFixed,
  SafeMap,
  String,
  StringPrototypeReplaceAll,
  StringPrototypeSlice,
  StringPrototypeSplit,
} = primordials;

// Level numbers shared with src/js/ops.rs (LogLevel).
const DEBUG = 0;
const LOG = 1;
const INFO = 2;
const WARN = 3;
const ERROR = 4;

let groupIndent = "";
const counts = new SafeMap();
const timers = new SafeMap();

/** Forgets counters, timers and group indentation: a later call starts
 * from a new console's state (frozen mode keeps the console object). */
export function resetConsole() {
  groupIndent = "";
  // Clearing a map allocates its table anew: most calls leave none.
  if (MapPrototypeGetSize(counts) !== 0) MapPrototypeClear(counts);
  if (MapPrototypeGetSize(timers) !== 0) MapPrototypeClear(timers);
}

function emit(level, text) {
  op_isoexec_log(
    level,
    groupIndent ? groupIndent + StringPrototypeReplaceAll(text, "\n", "\n" + groupIndent) : text,
  );
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
      const err = { __proto__: null, stack: "" };
      ErrorCaptureStackTrace(err, console.trace);
      const lines = StringPrototypeSplit(String(err.stack || ""), "\n");
      const stack = ArrayPrototypeJoin(ArrayPrototypeSlice(lines, 1), "\n");
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
      const key = String(label);
      const n = (MapPrototypeGet(counts, key) || 0) + 1;
      MapPrototypeSet(counts, key, n);
      emit(INFO, key + ": " + n);
    },
    countReset: function (label = "default") {
      MapPrototypeDelete(counts, String(label));
    },
    group: function (...args) {
      if (args.length) emit(LOG, format(args));
      groupIndent += "  ";
    },
    groupEnd: function () {
      groupIndent = StringPrototypeSlice(groupIndent, 2);
    },
    time: function (label = "default") {
      MapPrototypeSet(timers, String(label), op_isoexec_now());
    },
    timeLog: function (label = "default", ...args) {
      const key = String(label);
      const start = MapPrototypeGet(timers, key);
      if (start === undefined) return;
      const ms = op_isoexec_now() - start;
      emit(
        INFO,
        key + ": " + NumberPrototypeToFixed(ms, 3) + "ms" + (args.length ? " " + format(args) : ""),
      );
    },
    timeEnd: function (label = "default") {
      const key = String(label);
      const start = MapPrototypeGet(timers, key);
      if (start === undefined) return;
      MapPrototypeDelete(timers, key);
      emit(INFO, key + ": " + NumberPrototypeToFixed(op_isoexec_now() - start, 3) + "ms");
    },
  };
  console.groupCollapsed = console.group;
  return console;
}
