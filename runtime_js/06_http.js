// Headers, Request and Response as the Fetch standard defines them (bodies
// held whole in memory: there are no streams), the `serve` hook the host
// enters a module's fetch handler by, and what `Deno.serve` registers.
import { primordials } from "ext:core/mod.js";
import { TextDecoder, TextEncoder, atob } from "ext:isoexec/03_encoding.js";
import { AbortController } from "ext:isoexec/04_events.js";
import { URL, URLSearchParams } from "ext:isoexec/05_url.js";

const {
  ArrayBufferIsView,
  ArrayBufferPrototype,
  ArrayBufferPrototypeSlice,
  ArrayIsArray,
  ArrayPrototypeJoin,
  ArrayPrototypeMap,
  ArrayPrototypePush,
  ArrayPrototypeSort,
  ArrayPrototypeSplice,
  ArrayPrototypeSymbolIterator,
  DataViewPrototype,
  JSONParse,
  JSONStringify,
  ObjectEntries,
  ObjectKeys,
  ObjectPrototypeIsPrototypeOf,
  PromisePrototypeCatch,
  PromiseResolve,
  PromiseReject,
  RangeError,
  ReflectApply,
  RegExpPrototypeTest,
  SafeArrayIterator,
  SafeWeakMap,
  String,
  StringPrototypeCharCodeAt,
  StringPrototypeToLowerCase,
  StringPrototypeToUpperCase,
  StringPrototypeTrim,
  SymbolIterator,
  TypeError,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeSlice,
  Uint8Array,
  WeakMapPrototypeGet,
  WeakMapPrototypeSet,
} = primordials;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\0\r\n]/;

function headerName(name) {
  const text = String(name);
  if (!RegExpPrototypeTest(TOKEN, text)) {
    throw new TypeError(`Invalid header name: "${text}"`);
  }
  return StringPrototypeToLowerCase(text);
}

function headerValue(value) {
  // Leading and trailing whitespace is not part of a value.
  const text = StringPrototypeTrim(String(value));
  if (RegExpPrototypeTest(BAD_VALUE, text)) {
    throw new TypeError(`Invalid header value: "${text}"`);
  }
  return text;
}

/** `Headers`: case-insensitive, in the order the standard iterates them. */
export class Headers {
  // [lower-cased name, value] pairs as appended.
  #pairs = [];
  #immutable = false;

  constructor(init = undefined) {
    if (init === undefined || init === null) return;
    if (ObjectPrototypeIsPrototypeOf(Headers.prototype, init)) {
      for (const pair of new SafeArrayIterator(init.#pairs)) {
        ArrayPrototypePush(this.#pairs, [pair[0], pair[1]]);
      }
      return;
    }
    if (typeof init !== "object" && typeof init !== "function") {
      throw new TypeError("Headers must be built from an object, an array of pairs or Headers");
    }
    if (typeof init[SymbolIterator] === "function") {
      for (const pair of init) {
        const list = [...pair];
        if (list.length !== 2) {
          throw new TypeError("Each header must be a [name, value] pair");
        }
        this.append(list[0], list[1]);
      }
      return;
    }
    for (const entry of new SafeArrayIterator(ObjectEntries(init))) {
      this.append(entry[0], entry[1]);
    }
  }

  #check() {
    if (this.#immutable) throw new TypeError("Headers are immutable");
  }

  append(name, value) {
    this.#check();
    ArrayPrototypePush(this.#pairs, [headerName(name), headerValue(value)]);
  }

  delete(name) {
    this.#check();
    const key = headerName(name);
    for (let i = this.#pairs.length - 1; i >= 0; i--) {
      if (this.#pairs[i][0] === key) ArrayPrototypeSplice(this.#pairs, i, 1);
    }
  }

  get(name) {
    const key = headerName(name);
    const values = [];
    for (const pair of new SafeArrayIterator(this.#pairs)) {
      if (pair[0] === key) ArrayPrototypePush(values, pair[1]);
    }
    if (values.length === 0) return null;
    return ArrayPrototypeJoin(values, ", ");
  }

  getSetCookie() {
    const values = [];
    for (const pair of new SafeArrayIterator(this.#pairs)) {
      if (pair[0] === "set-cookie") ArrayPrototypePush(values, pair[1]);
    }
    return values;
  }

  has(name) {
    const key = headerName(name);
    for (const pair of new SafeArrayIterator(this.#pairs)) {
      if (pair[0] === key) return true;
    }
    return false;
  }

  set(name, value) {
    this.#check();
    const key = headerName(name);
    const text = headerValue(value);
    let at = -1;
    for (let i = this.#pairs.length - 1; i >= 0; i--) {
      if (this.#pairs[i][0] === key) {
        if (at !== -1) ArrayPrototypeSplice(this.#pairs, at, 1);
        at = i;
      }
    }
    if (at === -1) ArrayPrototypePush(this.#pairs, [key, text]);
    else this.#pairs[at][1] = text;
  }

  // Sorted by name, values of one name combined (set-cookie kept apart).
  #sorted() {
    const names = [];
    for (const pair of new SafeArrayIterator(this.#pairs)) {
      let seen = false;
      for (const n of new SafeArrayIterator(names)) if (n === pair[0]) seen = true;
      if (!seen) ArrayPrototypePush(names, pair[0]);
    }
    ArrayPrototypeSort(names);
    const out = [];
    for (const name of new SafeArrayIterator(names)) {
      if (name === "set-cookie") {
        for (const v of new SafeArrayIterator(this.getSetCookie())) ArrayPrototypePush(out, [name, v]);
      } else {
        ArrayPrototypePush(out, [name, this.get(name)]);
      }
    }
    return out;
  }

  forEach(callback, thisArg = undefined) {
    for (const pair of new SafeArrayIterator(this.#sorted())) {
      ReflectApply(callback, thisArg, [pair[1], pair[0], this]);
    }
  }

  entries() {
    return ArrayPrototypeSymbolIterator(this.#sorted());
  }

  keys() {
    return ArrayPrototypeSymbolIterator(ArrayPrototypeMap(this.#sorted(), (p) => p[0]));
  }

  values() {
    return ArrayPrototypeSymbolIterator(ArrayPrototypeMap(this.#sorted(), (p) => p[1]));
  }

  [SymbolIterator]() {
    return this.entries();
  }

  /** The pairs as sent: for the host (and `fetch`). */
  static pairs(headers) {
    return ArrayPrototypeMap(headers.#pairs, (p) => [p[0], p[1]]);
  }

  static freeze(headers) {
    headers.#immutable = true;
    return headers;
  }
}

/** Bytes of a body init, with the content type it implies. */
function extractBody(body) {
  if (body === undefined || body === null) return [null, null];
  if (typeof body === "string") return [new TextEncoder().encode(body), "text/plain;charset=UTF-8"];
  if (ObjectPrototypeIsPrototypeOf(URLSearchParams.prototype, body)) {
    return [
      new TextEncoder().encode(body.toString()),
      "application/x-www-form-urlencoded;charset=UTF-8",
    ];
  }
  if (ObjectPrototypeIsPrototypeOf(ArrayBufferPrototype, body)) {
    return [new Uint8Array(ArrayBufferPrototypeSlice(body, 0)), null];
  }
  if (ArrayBufferIsView(body)) {
    if (ObjectPrototypeIsPrototypeOf(DataViewPrototype, body)) {
      return [new Uint8Array(ArrayBufferPrototypeSlice(body.buffer, body.byteOffset, body.byteOffset + body.byteLength)), null];
    }
    const start = TypedArrayPrototypeGetByteOffset(body);
    return [
      new Uint8Array(ArrayBufferPrototypeSlice(
        TypedArrayPrototypeGetBuffer(body),
        start,
        start + TypedArrayPrototypeGetByteLength(body),
      )),
      null,
    ];
  }
  if (ObjectPrototypeIsPrototypeOf(Body.prototype, body)) {
    throw new TypeError("A body cannot be another Request or Response");
  }
  // Anything else is sent as its text, as the standard does for objects.
  return [new TextEncoder().encode(String(body)), "text/plain;charset=UTF-8"];
}

// The host's and the glue's access to a body, invisible to user code.
let bodyOf;
let setBody;
let setStatus;

/** What Request and Response share: a body read once. */
class Body {
  #bytes = null;
  #used = false;

  static {
    bodyOf = (o) => o.#bytes;
    setBody = (o, bytes) => {
      o.#bytes = bytes;
    };
  }

  get bodyUsed() {
    return this.#used;
  }

  // Bodies are whole, not streams: `body` is null for no body and an
  // object that says what it is otherwise.
  get body() {
    return this.#bytes === null ? null : { locked: this.#used, size: this.#bytes.length };
  }

  #take() {
    if (this.#used) return PromiseReject(new TypeError("Body has already been consumed"));
    this.#used = true;
    return PromiseResolve(this.#bytes === null ? new Uint8Array(0) : this.#bytes);
  }

  bytes() {
    return this.#take();
  }

  async arrayBuffer() {
    const b = await this.#take();
    return ArrayBufferPrototypeSlice(TypedArrayPrototypeGetBuffer(b), 0);
  }

  async text() {
    return new TextDecoder().decode(await this.#take());
  }

  async json() {
    return JSONParse(await this.text());
  }

  async formData() {
    throw new TypeError("formData() is not supported: read text() and parse it with URLSearchParams");
  }

  async blob() {
    throw new TypeError("blob() is not supported: use arrayBuffer() or bytes()");
  }
}

const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"];

function normalizeMethod(method) {
  const text = String(method);
  if (!RegExpPrototypeTest(TOKEN, text)) throw new TypeError(`Invalid method: "${text}"`);
  const upper = StringPrototypeToUpperCase(text);
  for (const m of new SafeArrayIterator(METHODS)) if (m === upper) return upper;
  if (upper === "CONNECT" || upper === "TRACE" || upper === "TRACK") {
    throw new TypeError(`Method ${upper} is forbidden`);
  }
  return text;
}

/** `Request`. */
export class Request extends Body {
  #method;
  #url;
  #headers;
  #signal;
  #redirect;

  constructor(input, init = {}) {
    super();
    const options = init ?? {};
    let bytes = null;
    if (ObjectPrototypeIsPrototypeOf(Request.prototype, input)) {
      this.#method = input.method;
      this.#url = input.url;
      this.#headers = new Headers(input.headers);
      this.#redirect = input.redirect;
      const source = bodyOf(input);
      bytes = source === null ? null : TypedArrayPrototypeSlice(source, 0);
    } else {
      let url;
      try {
        url = new URL(String(input));
      } catch {
        throw new TypeError(`Invalid URL: "${String(input)}" (a Request needs an absolute URL)`);
      }
      this.#method = "GET";
      this.#url = url.href;
      this.#headers = new Headers();
      this.#redirect = "follow";
    }
    if (options.method !== undefined) this.#method = normalizeMethod(options.method);
    if (options.headers !== undefined) this.#headers = new Headers(options.headers);
    if (options.redirect !== undefined) this.#redirect = String(options.redirect);
    if (options.body !== undefined && options.body !== null) {
      if (this.#method === "GET" || this.#method === "HEAD") {
        throw new TypeError("Request with GET/HEAD method cannot have body");
      }
      const [b, type] = extractBody(options.body);
      bytes = b;
      if (type !== null && !this.#headers.has("content-type")) this.#headers.set("content-type", type);
    }
    this.#signal = options.signal ?? new AbortController().signal;
    setBody(this, bytes);
  }

  get method() {
    return this.#method;
  }
  get url() {
    return this.#url;
  }
  get headers() {
    return this.#headers;
  }
  get signal() {
    return this.#signal;
  }
  get redirect() {
    return this.#redirect;
  }

  clone() {
    if (this.bodyUsed) throw new TypeError("Body has already been consumed");
    return new Request(this);
  }
}

/** `Response`. */
export class Response extends Body {
  #status;
  #statusText;
  #headers;
  #type = "default";
  url = "";
  redirected = false;

  constructor(body = null, init = {}) {
    super();
    const options = init ?? {};
    const status = options.status === undefined ? 200 : Number(options.status);
    if (!(status >= 200 && status <= 599) || status !== (status | 0)) {
      throw new RangeError(`The status provided (${options.status}) is outside the range [200, 599]`);
    }
    this.#status = status;
    this.#statusText = options.statusText === undefined ? "" : String(options.statusText);
    this.#headers = new Headers(options.headers);
    const [bytes, type] = extractBody(body);
    if (bytes !== null && (status === 101 || status === 204 || status === 205 || status === 304)) {
      throw new TypeError(`Response with null body status (${status}) cannot have body`);
    }
    if (type !== null && !this.#headers.has("content-type")) this.#headers.set("content-type", type);
    setBody(this, bytes);
  }

  static {
    setStatus = (r, status) => {
      r.#status = status;
    };
  }

  static json(data, init = {}) {
    const text = JSONStringify(data);
    if (text === undefined) throw new TypeError("The data is not JSON serializable");
    const response = new Response(text, init);
    response.headers.set("content-type", "application/json");
    return response;
  }

  static redirect(url, status = 302) {
    const code = Number(status);
    if (code !== 301 && code !== 302 && code !== 303 && code !== 307 && code !== 308) {
      throw new RangeError(`Invalid redirect status: ${status}`);
    }
    const response = new Response(null, { status: code, headers: { location: new URL(String(url)).href } });
    Headers.freeze(response.headers);
    return response;
  }

  static error() {
    const response = new Response(null, { status: 200 });
    response.#status = 0;
    response.#type = "error";
    return response;
  }

  get status() {
    return this.#status;
  }
  get statusText() {
    return this.#statusText;
  }
  get ok() {
    return this.#status >= 200 && this.#status < 300;
  }
  get headers() {
    return this.#headers;
  }
  get type() {
    return this.#type;
  }

  clone() {
    if (this.bodyUsed) throw new TypeError("Body has already been consumed");
    const bytes = bodyOf(this);
    const copy = new Response(null, {
      status: this.#status === 0 ? 200 : this.#status,
      statusText: this.#statusText,
      headers: this.#headers,
    });
    copy.#status = this.#status;
    copy.#type = this.#type;
    setBody(copy, bytes === null ? null : TypedArrayPrototypeSlice(bytes, 0));
    copy.url = this.url;
    return copy;
  }
}

/** A Response of a `fetch`: what came back over the wire. */
export function responseFrom(meta, bytes) {
  const response = new Response(null, { status: 200, statusText: meta.statusText, headers: meta.headers });
  setBody(response, bytes);
  // The real status, which may be one a constructed Response cannot have.
  setStatus(response, meta.status);
  response.url = meta.url;
  return response;
}

// The handler `Deno.serve` was given while the module being entered was
// evaluated, and the handler of each module entered before (by namespace).
let pendingHandler = null;
const handlers = new SafeWeakMap();

/**
 * `Deno.serve(handler)` / `Deno.serve(options, handler)` /
 * `Deno.serve({ handler })`: registers the module's fetch handler. Nothing
 * listens: the server calls the handler for requests to the function's
 * route.
 */
export function serve(a, b) {
  let handler = null;
  if (typeof a === "function") handler = a;
  else if (typeof b === "function") handler = b;
  else if (a !== null && typeof a === "object" && typeof a.handler === "function") handler = a.handler;
  if (handler === null) throw new TypeError("Deno.serve needs a handler function");
  pendingHandler = handler;
  const finished = new Promise(() => {});
  return {
    finished,
    addr: { transport: "tcp", hostname: "0.0.0.0", port: 0 },
    shutdown: () => PromiseResolve(),
    ref() {},
    unref() {},
  };
}

/** Forgets a handler registered by a call that did not enter it. */
export function forgetPending() {
  pendingHandler = null;
}

function handlerOf(ns) {
  let handler = WeakMapPrototypeGet(handlers, ns);
  if (handler === undefined) {
    const byDefault = ns.default;
    if (byDefault !== null && typeof byDefault === "object" && typeof byDefault.fetch === "function") {
      handler = (request, env, ctx) => ReflectApply(byDefault.fetch, byDefault, [request, env, ctx]);
    } else if (pendingHandler !== null) {
      handler = pendingHandler;
    } else {
      handler = null;
    }
    pendingHandler = null;
    WeakMapPrototypeSet(handlers, ns, handler);
  }
  return handler;
}

function bodyFromHost(record) {
  if (typeof record.bodyText === "string") return new TextEncoder().encode(record.bodyText);
  if (typeof record.body64 === "string") {
    const binary = atob(record.body64);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = StringPrototypeCharCodeAt(binary, i);
    return bytes;
  }
  return null;
}

/**
 * The host's way in: with a request record, calls the module's fetch
 * handler and answers the Response as a plain record; with null, describes
 * the module (its exported functions, whether it has a fetch handler).
 */
export async function serveHook(ns, record) {
  const handler = handlerOf(ns);
  if (record === null) {
    const functions = [];
    for (const key of new SafeArrayIterator(ObjectKeys(ns))) {
      if (typeof ns[key] === "function") ArrayPrototypePush(functions, key);
    }
    return { functions, fetch: handler !== null };
  }
  if (handler === null) {
    throw new TypeError(
      "The module has no fetch handler: export default { fetch(request, env) { ... } } or call Deno.serve(handler)",
    );
  }
  const request = new Request(record.url, { method: record.method, headers: record.headers });
  const bytes = bodyFromHost(record);
  if (bytes !== null && request.method !== "GET" && request.method !== "HEAD") setBody(request, bytes);
  const ctx = {
    waitUntil(promise) {
      // The call lasts until its response; work past it is not kept.
      PromisePrototypeCatch(PromiseResolve(promise), () => {});
    },
    passThroughOnException() {},
  };
  const env = record.env ?? {};
  const response = await handler(request, env, ctx);
  if (!ObjectPrototypeIsPrototypeOf(Response.prototype, response)) {
    throw new TypeError(
      `The fetch handler must return a Response, not ${response === null ? "null" : typeof response}`,
    );
  }
  if (response.type === "error") throw new TypeError("The fetch handler returned Response.error()");
  const body = bodyOf(response);
  return {
    status: response.status,
    statusText: response.statusText,
    headers: Headers.pairs(response.headers),
    body: body === null ? null : body,
  };
}
