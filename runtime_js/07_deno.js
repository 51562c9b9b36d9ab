// The restricted Deno namespace: what user code may ask of the host. Every
// capability goes through an op that checks the call's permissions.
import { core } from "ext:core/mod.js";
import {
  op_isoexec_deny,
  op_isoexec_env_get,
  op_isoexec_env_object,
  op_isoexec_exit,
  op_isoexec_fetch,
  op_isoexec_read_file,
  op_isoexec_log,
  op_isoexec_read_text_file,
  op_isoexec_stdin_read,
  op_isoexec_write_file,
} from "ext:core/ops";
import { TextDecoder, TextEncoder } from "ext:isoexec/03_encoding.js";
import { URL, URLSearchParams } from "ext:isoexec/05_url.js";
import { Request, responseFrom, serve } from "ext:isoexec/06_http.js";
import { primordials } from "ext:core/mod.js";

// Uses only builtins captured at snapshot time (see 02_timers.js).
const {
  ArrayBufferIsView,
  ArrayBufferPrototype,
  ArrayBufferPrototypeSlice,
  ArrayIsArray,
  ArrayPrototypeFilter,
  ArrayPrototypeJoin,
  ArrayPrototypeMap,
  ArrayPrototypePush,
  ArrayPrototypeSymbolIterator,
  Boolean,
  DataViewPrototype,
  DataViewPrototypeGetBuffer,
  DataViewPrototypeGetByteLength,
  DataViewPrototypeGetByteOffset,
  Error,
  JSONParse,
  Number,
  NumberIsInteger,
  ObjectEntries,
  ObjectFreeze,
  ObjectPrototypeIsPrototypeOf,
  PromisePrototypeThen,
  PromiseReject,
  PromiseResolve,
  ReflectApply,
  SafeArrayIterator,
  String,
  StringPrototypeToLowerCase,
  SymbolIterator,
  TypeError,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  Uint8Array,
  Uint8ArrayPrototype,
  decodeURIComponent,
  SymbolAsyncIterator,
  TypedArrayPrototypeSlice,
  TypedArrayPrototypeSubarray,
  TypedArrayPrototypeGetLength,
  TypedArrayPrototypeIndexOf,
  TypedArrayPrototypeSet,
  MathMin,
  StringPrototypeEndsWith,
  StringPrototypeSlice,
} = primordials;

// The console level prompt() writes its question at (LOG, as in 01_console.js).
const LOG_LEVEL = 1;
const STDIN_CHUNK = 64 * 1024;

export class PermissionDenied extends Error {
  constructor(message) {
    super(message);
    this.name = "PermissionDenied";
  }
}

export class NotFound extends Error {
  constructor(message) {
    super(message);
    this.name = "NotFound";
  }
}

/** A write past the execution's quota (`MAX_WRITE_BYTES`). */
export class QuotaExceededError extends Error {
  constructor(message) {
    super(message);
    this.name = "QuotaExceededError";
  }
}

// Ops that fail with these class names throw instances of these classes.
core.registerErrorClass("PermissionDenied", PermissionDenied);
core.registerErrorClass("NotFound", NotFound);
core.registerErrorClass("QuotaExceededError", QuotaExceededError);

function pathArg(path) {
  if (ObjectPrototypeIsPrototypeOf(URL.prototype, path)) {
    if (path.protocol !== "file:") {
      throw new TypeError("Must be a file URL: " + path.href);
    }
    return decodeURIComponent(path.pathname);
  }
  return String(path);
}

function bytesArg(data) {
  if (ObjectPrototypeIsPrototypeOf(Uint8ArrayPrototype, data)) return data;
  if (ArrayBufferIsView(data)) {
    if (ObjectPrototypeIsPrototypeOf(DataViewPrototype, data)) {
      return new Uint8Array(
        DataViewPrototypeGetBuffer(data),
        DataViewPrototypeGetByteOffset(data),
        DataViewPrototypeGetByteLength(data),
      );
    }
    return new Uint8Array(
      TypedArrayPrototypeGetBuffer(data),
      TypedArrayPrototypeGetByteOffset(data),
      TypedArrayPrototypeGetByteLength(data),
    );
  }
  if (ObjectPrototypeIsPrototypeOf(ArrayBufferPrototype, data)) return new Uint8Array(data);
  throw new TypeError("Data must be a Uint8Array");
}

function readFileSync(path) {
  // Copy into a buffer of the isolate's own, counted allocator; the op's
  // buffer (outside that budget) becomes garbage at once.
  return new Uint8Array(op_isoexec_read_file(pathArg(path)));
}

function readTextFileSync(path) {
  return op_isoexec_read_text_file(pathArg(path));
}

function writeFileSync(path, data, options = {}) {
  op_isoexec_write_file(pathArg(path), bytesArg(data), Boolean(options?.append));
}

function writeTextFileSync(path, text, options = {}) {
  op_isoexec_write_file(
    pathArg(path),
    new TextEncoder().encode(String(text)),
    Boolean(options?.append),
  );
}

/** Runs a synchronous file operation as a promise, as Deno's async API. */
function later(f) {
  return (...args) => {
    try {
      return PromiseResolve(ReflectApply(f, undefined, args));
    } catch (e) {
      return PromiseReject(e);
    }
  };
}

/** Records the refusal on the host side, then throws. */
export function deny(what) {
  throw new PermissionDenied(op_isoexec_deny(String(what)));
}

const env = ObjectFreeze({
  get(key) {
    const value = op_isoexec_env_get(String(key));
    return value == null ? undefined : value;
  },
  has(key) {
    return op_isoexec_env_get(String(key)) != null;
  },
  toObject() {
    return op_isoexec_env_object();
  },
  set(key) {
    deny("env write access to '" + String(key) + "'");
  },
  delete(key) {
    deny("env write access to '" + String(key) + "'");
  },
});

function exit(code = 0) {
  const n = Number(code);
  op_isoexec_exit(NumberIsInteger(n) ? n : 1);
  // Termination is already requested: this line only runs if V8 has not yet
  // noticed it, and then it unwinds the caller.
  throw new Error("exit");
}

// Bytes taken from the host but not yet given to the program: readLine()
// reads ahead, and what follows the line stays here for the next read.
let pending = null;

/** Drops what an earlier call read ahead from its stdin. */
export function resetStdin() {
  pending = null;
}

/** Moves the next host chunk into `pending`; false at the end of input. */
function fill() {
  const chunk = new Uint8Array(STDIN_CHUNK);
  const n = op_isoexec_stdin_read(chunk);
  if (n < 0) return false;
  pending = TypedArrayPrototypeSubarray(chunk, 0, n);
  return true;
}

/** Takes the first `n` pending bytes. */
function takePending(n) {
  const taken = TypedArrayPrototypeSubarray(pending, 0, n);
  pending = n < TypedArrayPrototypeGetLength(pending) ? TypedArrayPrototypeSubarray(pending, n) : null;
  return taken;
}

/** `Deno.stdin.readSync(p)`: bytes copied into `p`, or null at the end. */
function stdinReadSync(p) {
  if (!ObjectPrototypeIsPrototypeOf(Uint8ArrayPrototype, p)) {
    throw new TypeError("Deno.stdin.read: the buffer must be a Uint8Array");
  }
  if (pending === null) {
    const n = op_isoexec_stdin_read(p);
    return n < 0 ? null : n;
  }
  const n = MathMin(TypedArrayPrototypeGetLength(p), TypedArrayPrototypeGetLength(pending));
  TypedArrayPrototypeSet(p, takePending(n), 0);
  return n;
}

/** The next chunk of stdin as its own Uint8Array, or null at the end. */
function stdinChunk() {
  if (pending === null && !fill()) return null;
  return TypedArrayPrototypeSlice(takePending(TypedArrayPrototypeGetLength(pending)));
}

/** `Deno.stdin.readable`: async-iterable, with a reader like a stream's. */
function stdinReadable() {
  const next = () => {
    const value = stdinChunk();
    return PromiseResolve(value === null ? { value: undefined, done: true } : { value, done: false });
  };
  return {
    [SymbolAsyncIterator]() {
      return { next, return: () => PromiseResolve({ value: undefined, done: true }) };
    },
    getReader() {
      return {
        read: next,
        releaseLock() {},
        cancel: () => PromiseResolve(undefined),
        closed: PromiseResolve(undefined),
      };
    },
  };
}

const stdin = ObjectFreeze({
  rid: 0,
  readSync: stdinReadSync,
  read: later(stdinReadSync),
  get readable() {
    return stdinReadable();
  },
  isTerminal: () => false,
  close() {},
});

/** A line of stdin without its line ending, or null at the end of input. */
function readLine() {
  const parts = [];
  let total = 0;
  let ended = true;
  while (pending !== null || fill()) {
    const at = TypedArrayPrototypeIndexOf(pending, 10);
    if (at >= 0) {
      ArrayPrototypePush(parts, takePending(at));
      total += at;
      takePending(1);
      ended = false;
      break;
    }
    const n = TypedArrayPrototypeGetLength(pending);
    ArrayPrototypePush(parts, takePending(n));
    total += n;
  }
  if (ended && total === 0) return null;
  const line = new Uint8Array(total);
  let offset = 0;
  for (let i = 0; i < parts.length; i++) {
    TypedArrayPrototypeSet(line, parts[i], offset);
    offset += TypedArrayPrototypeGetLength(parts[i]);
  }
  const text = new TextDecoder().decode(line);
  return StringPrototypeEndsWith(text, "\r") ? StringPrototypeSlice(text, 0, -1) : text;
}

/** `prompt(message, default)`: as Deno, the answer line or the default. */
export function prompt(message = "Prompt", defaultValue = undefined) {
  const fallback = defaultValue === undefined ? null : String(defaultValue);
  op_isoexec_log(LOG_LEVEL, String(message) + (fallback === null ? " " : " [" + fallback + "] "));
  const line = readLine();
  if (line === null) return fallback;
  return line === "" && fallback !== null ? fallback : line;
}

/** `confirm(message)`: true for an answer of y or Y. */
export function confirm(message = "Confirm") {
  op_isoexec_log(LOG_LEVEL, String(message) + " [y/N] ");
  const line = readLine();
  return line === "y" || line === "Y";
}

/** `alert(message)`: prints it and waits for a line of input. */
export function alert(message = "Alert") {
  op_isoexec_log(LOG_LEVEL, String(message) + " [Enter] ");
  readLine();
}

export function createDeno() {
  return ObjectFreeze({
    args: ObjectFreeze([]),
    stdin,
    env,
    exit,
    pid: 0,
    version: ObjectFreeze({ isoexec: "1" }),
    errors: ObjectFreeze({ PermissionDenied, NotFound }),
    readTextFile: later(readTextFileSync),
    readFile: later(readFileSync),
    readTextFileSync,
    readFileSync,
    writeTextFile: later(writeTextFileSync),
    writeFile: later(writeFileSync),
    writeTextFileSync,
    writeFileSync,
    serve,
    run: () => deny("run access (subprocesses)"),
    Command: function Command() {
      deny("run access (subprocesses)");
    },
  });
}

function headerPairs(headers) {
  if (headers == null) return [];
  if (typeof headers.forEach === "function" && !ArrayIsArray(headers)) {
    const pairs = [];
    headers.forEach((v, k) => ArrayPrototypePush(pairs, [String(k), String(v)]));
    return pairs;
  }
  if (ArrayIsArray(headers)) {
    return ArrayPrototypeMap(headers, (p) => [String(p[0]), String(p[1])]);
  }
  return ArrayPrototypeMap(ObjectEntries(headers), (p) => [String(p[0]), String(p[1])]);
}

function bodyBytes(body) {
  if (body == null) return new Uint8Array(0);
  if (typeof body === "string") return new TextEncoder().encode(body);
  if (ObjectPrototypeIsPrototypeOf(URLSearchParams.prototype, body)) return new TextEncoder().encode(body.toString());
  return bytesArg(body);
}

/**
 * `fetch` to hosts on ALLOW_NET, over plain HTTP/1.1; anything else is
 * refused with a PermissionDenied (host not allowed) or a TypeError.
 */
export async function fetch(input, init = {}) {
  const url = typeof input === "object" && input !== null && "url" in input
    ? String(input.url)
    : String(input);
  const options = init ?? {};
  const method = String(options.method ?? input?.method ?? "GET");
  const headers = headerPairs(options.headers ?? input?.headers);
  const body = options.body === undefined && ObjectPrototypeIsPrototypeOf(Request.prototype, input)
    ? await input.bytes()
    : bodyBytes(options.body);
  const [meta, bytes] = await op_isoexec_fetch({ url, method, headers }, body);
  // As for files: the body is kept in counted memory.
  return responseFrom(meta, new Uint8Array(bytes));
}
