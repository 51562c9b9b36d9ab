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
  op_isoexec_read_text_file,
  op_isoexec_write_file,
} from "ext:core/ops";
import { TextDecoder, TextEncoder } from "ext:isoexec/03_encoding.js";
import { URL, URLSearchParams } from "ext:isoexec/05_url.js";
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
} = primordials;

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
    return value === null ? undefined : value;
  },
  has(key) {
    return op_isoexec_env_get(String(key)) !== null;
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

export function createDeno() {
  return ObjectFreeze({
    args: ObjectFreeze([]),
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
    run: () => deny("run access (subprocesses)"),
    Command: function Command() {
      deny("run access (subprocesses)");
    },
  });
}

/** Response headers: case-insensitive lookup over the received pairs. */
class FetchHeaders {
  #pairs;
  constructor(pairs) {
    this.#pairs = ArrayPrototypeMap(
      pairs,
      (p) => [StringPrototypeToLowerCase(String(p[0])), String(p[1])],
    );
  }
  get(name) {
    const key = StringPrototypeToLowerCase(String(name));
    const values = ArrayPrototypeMap(
      ArrayPrototypeFilter(this.#pairs, (p) => p[0] === key),
      (p) => p[1],
    );
    return values.length === 0 ? null : ArrayPrototypeJoin(values, ", ");
  }
  has(name) {
    return this.get(name) !== null;
  }
  forEach(callback, thisArg) {
    for (const p of new SafeArrayIterator(this.#pairs)) {
      ReflectApply(callback, thisArg, [p[1], p[0], this]);
    }
  }
  entries() {
    return ArrayPrototypeSymbolIterator(ArrayPrototypeMap(this.#pairs, (p) => [p[0], p[1]]));
  }
  keys() {
    return ArrayPrototypeSymbolIterator(ArrayPrototypeMap(this.#pairs, (p) => p[0]));
  }
  values() {
    return ArrayPrototypeSymbolIterator(ArrayPrototypeMap(this.#pairs, (p) => p[1]));
  }
  [SymbolIterator]() {
    return this.entries();
  }
}

/** What `fetch` resolves to: status, headers and the body, read once. */
class FetchResponse {
  #body;
  #used = false;
  constructor(meta, body) {
    this.status = meta.status;
    this.statusText = meta.statusText;
    this.ok = meta.status >= 200 && meta.status < 300;
    this.url = meta.url;
    this.redirected = false;
    this.headers = new FetchHeaders(meta.headers);
    this.#body = body;
  }
  get bodyUsed() {
    return this.#used;
  }
  #take() {
    if (this.#used) {
      return PromiseReject(new TypeError("Body has already been consumed"));
    }
    this.#used = true;
    return PromiseResolve(this.#body);
  }
  bytes() {
    return this.#take();
  }
  arrayBuffer() {
    return PromisePrototypeThen(this.#take(), (b) => {
      const offset = TypedArrayPrototypeGetByteOffset(b);
      return ArrayBufferPrototypeSlice(
        TypedArrayPrototypeGetBuffer(b),
        offset,
        offset + TypedArrayPrototypeGetByteLength(b),
      );
    });
  }
  text() {
    return PromisePrototypeThen(this.#take(), (b) => new TextDecoder().decode(b));
  }
  json() {
    return PromisePrototypeThen(this.text(), (t) => JSONParse(t));
  }
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
  const method = String(init?.method ?? input?.method ?? "GET");
  const headers = headerPairs(init?.headers ?? input?.headers);
  const body = bodyBytes(init?.body);
  const [meta, bytes] = await op_isoexec_fetch({ url, method, headers }, body);
  // As for files: the body is kept in counted memory.
  return new FetchResponse(meta, new Uint8Array(bytes));
}
