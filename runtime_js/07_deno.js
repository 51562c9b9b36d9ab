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
import { URLSearchParams } from "ext:isoexec/05_url.js";

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

// Ops that fail with these class names throw instances of these classes.
core.registerErrorClass("PermissionDenied", PermissionDenied);
core.registerErrorClass("NotFound", NotFound);

function pathArg(path) {
  if (path instanceof URL) {
    if (path.protocol !== "file:") {
      throw new TypeError("Must be a file URL: " + path.href);
    }
    return decodeURIComponent(path.pathname);
  }
  return String(path);
}

function bytesArg(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
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
      return Promise.resolve(f(...args));
    } catch (e) {
      return Promise.reject(e);
    }
  };
}

/** Records the refusal on the host side, then throws. */
export function deny(what) {
  throw new PermissionDenied(op_isoexec_deny(String(what)));
}

const env = Object.freeze({
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
  op_isoexec_exit(Number.isInteger(n) ? n : 1);
  // Termination is already requested: this line only runs if V8 has not yet
  // noticed it, and then it unwinds the caller.
  throw new Error("exit");
}

export function createDeno() {
  return Object.freeze({
    args: Object.freeze([]),
    env,
    exit,
    pid: 0,
    version: Object.freeze({ isoexec: "1" }),
    errors: Object.freeze({ PermissionDenied, NotFound }),
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
    this.#pairs = pairs.map(([k, v]) => [String(k).toLowerCase(), String(v)]);
  }
  get(name) {
    const key = String(name).toLowerCase();
    const values = this.#pairs.filter(([k]) => k === key).map(([, v]) => v);
    return values.length === 0 ? null : values.join(", ");
  }
  has(name) {
    return this.get(name) !== null;
  }
  forEach(callback, thisArg) {
    for (const [k, v] of this.#pairs) callback.call(thisArg, v, k, this);
  }
  entries() {
    return this.#pairs.map(([k, v]) => [k, v])[Symbol.iterator]();
  }
  keys() {
    return this.#pairs.map(([k]) => k)[Symbol.iterator]();
  }
  values() {
    return this.#pairs.map(([, v]) => v)[Symbol.iterator]();
  }
  [Symbol.iterator]() {
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
      return Promise.reject(new TypeError("Body has already been consumed"));
    }
    this.#used = true;
    return Promise.resolve(this.#body);
  }
  bytes() {
    return this.#take();
  }
  arrayBuffer() {
    return this.#take().then((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  text() {
    return this.#take().then((b) => new TextDecoder().decode(b));
  }
  json() {
    return this.text().then((t) => JSON.parse(t));
  }
}

function headerPairs(headers) {
  if (headers == null) return [];
  if (typeof headers.forEach === "function" && !Array.isArray(headers)) {
    const pairs = [];
    headers.forEach((v, k) => pairs.push([String(k), String(v)]));
    return pairs;
  }
  if (Array.isArray(headers)) return headers.map(([k, v]) => [String(k), String(v)]);
  return Object.entries(headers).map(([k, v]) => [String(k), String(v)]);
}

function bodyBytes(body) {
  if (body == null) return new Uint8Array(0);
  if (typeof body === "string") return new TextEncoder().encode(body);
  if (body instanceof URLSearchParams) return new TextEncoder().encode(body.toString());
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
