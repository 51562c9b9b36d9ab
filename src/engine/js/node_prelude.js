// Node.js's program globals for isoexec programs: `process`, `Buffer`, and
// `require` with the built-in modules grader and interview programs use.
// Evaluated as a script in a program's own isolate (never reused) before
// its code, on top of the sandboxed globals (`Deno`, `console`, timers), so
// it reaches nothing a program could not. The script is a function of the
// host's `requireFile(specifier, referrer)`, which finds a file as imports
// do (module roots, `node_modules` with require conditions) and returns
// [path, text]; it returns the host's hooks (main, finish).
((requireFile, writeRaw) => {
  "use strict";
  const G = globalThis;
  const D = G.Deno;
  const enc = new TextEncoder();
  const NOT_HERE =
    "isoexec runs code inside V8 isolates, without processes, sockets, threads or a shell";

  // ---- output: process.stdout/stderr.write pass text through as written --
  // The host keeps output as lines; a write is split into lines, and what
  // follows the last newline waits for the next write (or the end).
  const consoleError = console.error;
  // Output as written: a write adds no newline, and a console line after
  // a partial write continues it, as in a terminal.
  function stream(fd) {
    const level = fd === 1 ? 1 : 4;
    const s = new EventEmitter();
    s.fd = fd;
    s.isTTY = false;
    s.columns = 80;
    s.writable = true;
    s.write = (chunk, encoding, cb) => {
      if (typeof encoding === "function") cb = encoding;
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
      if (text !== "") writeRaw(level, text);
      if (typeof cb === "function") queueMicrotask(cb);
      return true;
    };
    s.end = (chunk, encoding, cb) => {
      if (chunk !== undefined && chunk !== null && typeof chunk !== "function") s.write(chunk, encoding);
      const done = [chunk, encoding, cb].find((f) => typeof f === "function");
      if (done) queueMicrotask(done);
    };
    s.cork = s.uncork = () => {};
    return s;
  }

  // ---- events -------------------------------------------------------------
  class EventEmitter {
    constructor() {
      Object.defineProperty(this, "_events", { value: new Map(), writable: true });
    }
    _list(name) {
      if (!this._events) Object.defineProperty(this, "_events", { value: new Map(), writable: true });
      let list = this._events.get(name);
      if (!list) this._events.set(name, (list = []));
      return list;
    }
    on(name, fn) {
      this._list(name).push({ fn, once: false });
      if (this._onListen) this._onListen(name);
      return this;
    }
    addListener(name, fn) {
      return this.on(name, fn);
    }
    prependListener(name, fn) {
      this._list(name).unshift({ fn, once: false });
      if (this._onListen) this._onListen(name);
      return this;
    }
    once(name, fn) {
      this._list(name).push({ fn, once: true });
      if (this._onListen) this._onListen(name);
      return this;
    }
    off(name, fn) {
      const list = this._list(name);
      const i = list.findIndex((l) => l.fn === fn);
      if (i >= 0) list.splice(i, 1);
      return this;
    }
    removeListener(name, fn) {
      return this.off(name, fn);
    }
    removeAllListeners(name) {
      if (name === undefined) this._events.clear();
      else this._events.delete(name);
      return this;
    }
    emit(name, ...args) {
      const list = this._list(name);
      if (name === "error" && list.length === 0) throw args[0];
      for (const l of [...list]) {
        if (l.once) this.off(name, l.fn);
        l.fn.apply(this, args);
      }
      return list.length > 0;
    }
    listenerCount(name) {
      return this._list(name).length;
    }
    listeners(name) {
      return this._list(name).map((l) => l.fn);
    }
    setMaxListeners() {
      return this;
    }
  }
  EventEmitter.EventEmitter = EventEmitter;
  EventEmitter.defaultMaxListeners = 10;
  EventEmitter.once = (emitter, name) =>
    new Promise((resolve) => emitter.once(name, (...args) => resolve(args)));

  // ---- stdin: the job's input, read once, handed out as Node streams do --
  let stdinText = null;
  function readAllStdin() {
    if (stdinText === null) {
      const chunks = [];
      const buf = new Uint8Array(65536);
      for (;;) {
        const n = D.stdin.readSync(buf);
        if (n === null || n === 0) break;
        chunks.push(buf.slice(0, n));
      }
      stdinText = Buffer.concat(chunks);
    }
    return stdinText;
  }

  const stdin = new EventEmitter();
  stdin.fd = 0;
  stdin.isTTY = false;
  stdin.readable = true;
  let stdinEncoding = null;
  let stdinFlowing = false;
  stdin.setEncoding = (e) => {
    stdinEncoding = e || "utf8";
    return stdin;
  };
  const flowStdin = () => {
    if (stdinFlowing) return;
    stdinFlowing = true;
    setTimeout(() => {
      const all = readAllStdin();
      if (all.length > 0) stdin.emit("data", stdinEncoding ? all.toString(stdinEncoding) : all);
      stdin.readable = false;
      stdin.emit("end");
      stdin.emit("close");
    }, 0);
  };
  stdin._onListen = (name) => {
    if (name === "data" || name === "end" || name === "readable") flowStdin();
  };
  stdin.resume = () => {
    flowStdin();
    return stdin;
  };
  stdin.pause = () => stdin;
  stdin.read = () => {
    const all = readAllStdin();
    if (stdin._consumed) return null;
    stdin._consumed = true;
    return stdinEncoding ? all.toString(stdinEncoding) : all;
  };
  stdin[Symbol.asyncIterator] = async function* () {
    const all = readAllStdin();
    if (all.length > 0) yield stdinEncoding ? all.toString(stdinEncoding) : all;
  };

  // ---- process --------------------------------------------------------------
  // A variable the program may not read is simply absent, as an unset one.
  // (Looked up among the variables the call may see, so that asking for
  // another is no refused capability.)
  const envGet = (k) => {
    if (typeof k !== "string") return undefined;
    const all = D.env.toObject();
    return Object.hasOwn(all, k) ? all[k] : undefined;
  };
  const started = performance.now();
  const process = new EventEmitter();
  Object.assign(process, {
    argv: ["/usr/local/bin/node", "/workspace/main.js"],
    argv0: "node",
    execArgv: [],
    execPath: "/usr/local/bin/node",
    env: new Proxy(
      {},
      {
        get: (_t, k) => envGet(k),
        has: (_t, k) => envGet(k) !== undefined,
        ownKeys: () => Object.keys(D.env.toObject()),
        getOwnPropertyDescriptor: (_t, k) => {
          const v = envGet(k);
          return v === undefined ? undefined : { value: v, enumerable: true, configurable: true, writable: true };
        },
        set: () => true,
        deleteProperty: () => true,
      },
    ),
    exitCode: undefined,
    platform: "linux",
    arch: "x64",
    pid: 1,
    ppid: 0,
    title: "node",
    version: "v22.12.0",
    versions: { node: "22.12.0", v8: "13.0", isoexec: "1" },
    release: { name: "node" },
    stdout: stream(1),
    stderr: stream(2),
    stdin,
    cwd: () => "/workspace",
    chdir: () => {
      throw new Error("process.chdir() is not supported here");
    },
    exit(code) {
      if (code !== undefined) process.exitCode = code;
      const n = Number(process.exitCode ?? 0) | 0;
      process.emit("exit", n);
      D.exit(n);
    },
    abort() {
      process.exit(134);
    },
    nextTick(fn, ...args) {
      queueMicrotask(() => fn(...args));
    },
    hrtime: Object.assign(
      (prev) => {
        const ns = BigInt(Math.round((performance.now() - started) * 1e6));
        const s = Number(ns / 1000000000n);
        const n = Number(ns % 1000000000n);
        if (!prev) return [s, n];
        let ds = s - prev[0];
        let dn = n - prev[1];
        if (dn < 0) {
          ds -= 1;
          dn += 1e9;
        }
        return [ds, dn];
      },
      { bigint: () => BigInt(Math.round((performance.now() - started) * 1e6)) },
    ),
    uptime: () => (performance.now() - started) / 1000,
    memoryUsage: Object.assign(() => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }), {
      rss: () => 0,
    }),
    cpuUsage: () => ({ user: Math.round((performance.now() - started) * 1000), system: 0 }),
    emitWarning: (w) => console.error(`(node) Warning: ${w instanceof Error ? w.message : w}`),
    binding: () => {
      throw new Error(`process.binding is not available: ${NOT_HERE}`);
    },
    kill: () => {
      throw new Error(`process.kill is not available: ${NOT_HERE}`);
    },
    umask: () => 0o22,
    getuid: () => 1000,
    getgid: () => 1000,
    features: {},
    config: { variables: {} },
  });

  // ---- Buffer -----------------------------------------------------------------
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  class Buffer extends Uint8Array {
    static from(value, encodingOrOffset, length) {
      if (typeof value === "string") return Buffer._fromString(value, encodingOrOffset);
      if (value instanceof ArrayBuffer) {
        return new Buffer(value, encodingOrOffset ?? 0, length ?? value.byteLength - (encodingOrOffset ?? 0));
      }
      if (ArrayBuffer.isView(value)) {
        const b = new Buffer(value.byteLength);
        b.set(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
        return b;
      }
      if (value && value.type === "Buffer" && Array.isArray(value.data)) return Buffer.from(value.data);
      if (Array.isArray(value) || (value && typeof value.length === "number")) {
        const b = new Buffer(value.length);
        for (let i = 0; i < value.length; i++) b[i] = Number(value[i]) & 255;
        return b;
      }
      throw new TypeError("The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array");
    }
    static _fromString(s, encoding = "utf8") {
      const e = String(encoding).toLowerCase();
      if (e === "hex") {
        const b = new Buffer(s.length >> 1);
        for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(i * 2, 2), 16);
        return b;
      }
      if (e === "base64" || e === "base64url") {
        const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/").replace(/[^A-Za-z0-9+/]/g, "").padEnd(Math.ceil(s.length / 4) * 4, "="));
        return Buffer.from(Array.from(bin, (c) => c.charCodeAt(0)));
      }
      if (e === "latin1" || e === "binary" || e === "ascii") {
        return Buffer.from(Array.from(s, (c) => c.charCodeAt(0) & 255));
      }
      return Buffer.from(enc.encode(s));
    }
    static alloc(size, fill) {
      const b = new Buffer(size);
      if (fill !== undefined) b.fill(typeof fill === "string" ? fill.charCodeAt(0) : fill);
      return b;
    }
    static allocUnsafe(size) {
      return new Buffer(size);
    }
    static isBuffer(b) {
      return b instanceof Buffer;
    }
    static isEncoding(e) {
      return ["utf8", "utf-8", "hex", "base64", "base64url", "ascii", "latin1", "binary"].includes(String(e).toLowerCase());
    }
    static byteLength(s, encoding) {
      return typeof s === "string" ? Buffer._fromString(s, encoding).length : s.byteLength;
    }
    static concat(list, total) {
      const length = total ?? list.reduce((n, b) => n + b.length, 0);
      const out = Buffer.alloc(length);
      let at = 0;
      for (const b of list) {
        if (at >= length) break;
        out.set(b.subarray(0, length - at), at);
        at += b.length;
      }
      return out;
    }
    static compare(a, b) {
      return a.compare(b);
    }
    toString(encoding = "utf8", start = 0, end = this.length) {
      const bytes = this.subarray(start, end);
      const e = String(encoding).toLowerCase();
      if (e === "hex") return hex(bytes);
      if (e === "base64" || e === "base64url") {
        let bin = "";
        for (const b of bytes) bin += String.fromCharCode(b);
        const b64 = btoa(bin);
        return e === "base64" ? b64 : b64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      }
      if (e === "latin1" || e === "binary" || e === "ascii") {
        let s = "";
        for (const b of bytes) s += String.fromCharCode(e === "ascii" ? b & 127 : b);
        return s;
      }
      return new TextDecoder().decode(bytes);
    }
    toJSON() {
      return { type: "Buffer", data: Array.from(this) };
    }
    equals(other) {
      return this.compare(other) === 0;
    }
    compare(other) {
      const n = Math.min(this.length, other.length);
      for (let i = 0; i < n; i++) if (this[i] !== other[i]) return this[i] < other[i] ? -1 : 1;
      return this.length === other.length ? 0 : this.length < other.length ? -1 : 1;
    }
    write(s, offset = 0) {
      const b = Buffer.from(s);
      this.set(b.subarray(0, this.length - offset), offset);
      return Math.min(b.length, this.length - offset);
    }
    slice(start, end) {
      return this.subarray(start, end);
    }
    readUInt8(i = 0) {
      return this[i];
    }
    [Symbol.for("nodejs.util.inspect.custom")]() {
      return `<Buffer ${Array.from(this.subarray(0, 50), (b) => b.toString(16).padStart(2, "0")).join(" ")}${this.length > 50 ? ` ... ${this.length - 50} more bytes` : ""}>`;
    }
  }

  // ---- util -------------------------------------------------------------------
  function inspect(value, opts, depth = 0, seen = new Set()) {
    const max = (opts && opts.depth !== undefined ? opts.depth : 2) ?? Infinity;
    if (typeof value === "string") return depth === 0 ? value : `'${value.replace(/'/g, "\\'")}'`;
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "symbol") return value.toString();
    if (typeof value === "function") return `[Function: ${value.name || "(anonymous)"}]`;
    if (value === null || typeof value !== "object") return String(value);
    if (seen.has(value)) return "[Circular *1]";
    if (value instanceof Buffer) return value[Symbol.for("nodejs.util.inspect.custom")]();
    if (value instanceof Error) return value.stack || `${value.name}: ${value.message}`;
    if (value instanceof Date) return value.toISOString();
    if (value instanceof RegExp) return String(value);
    if (depth > max) return Array.isArray(value) ? "[Array]" : "[Object]";
    seen.add(value);
    const inner = (v) => inspect(v, opts, depth + 1, seen);
    let parts;
    let open;
    let close;
    if (Array.isArray(value)) {
      parts = value.map(inner);
      [open, close] = ["[", "]"];
    } else if (value instanceof Map) {
      parts = [...value].map(([k, v]) => `${inner(k)} => ${inner(v)}`);
      [open, close] = [`Map(${value.size}) {`, "}"];
    } else if (value instanceof Set) {
      parts = [...value].map(inner);
      [open, close] = [`Set(${value.size}) {`, "}"];
    } else {
      const name = value.constructor && value.constructor !== Object ? `${value.constructor.name} ` : "";
      parts = Object.keys(value).map((k) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : `'${k}'`}: ${inner(value[k])}`);
      [open, close] = [`${name}{`, "}"];
      if (parts.length === 0) {
        seen.delete(value);
        return `${name}{}`;
      }
    }
    seen.delete(value);
    if (parts.length === 0) return `${open}${close}`;
    const line = `${open} ${parts.join(", ")} ${close}`;
    if (line.length <= 72 && !parts.some((p) => p.includes("\n"))) return line;
    const pad = "  ".repeat(depth + 1);
    return `${open}\n${parts.map((p) => pad + p).join(",\n")}\n${"  ".repeat(depth)}${close}`;
  }
  function format(first, ...args) {
    if (typeof first !== "string") return [first, ...args].map((a) => inspect(a)).join(" ");
    let i = 0;
    let out = first.replace(/%[sdifjoOc%]/g, (m) => {
      if (m === "%%") return "%";
      if (i >= args.length) return m;
      const a = args[i++];
      switch (m) {
        case "%s":
          return typeof a === "string" ? a : inspect(a, { depth: 1 });
        case "%d":
        case "%i":
          return m === "%i" ? String(parseInt(a)) : String(Number(a));
        case "%f":
          return String(parseFloat(a));
        case "%j":
          return JSON.stringify(a);
        case "%c":
          return "";
        default:
          return inspect(a, { depth: 4 });
      }
    });
    for (; i < args.length; i++) out += ` ${typeof args[i] === "string" ? args[i] : inspect(args[i])}`;
    return out;
  }
  const util = {
    format,
    inspect,
    inherits(ctor, superCtor) {
      Object.setPrototypeOf(ctor.prototype, superCtor.prototype);
      Object.setPrototypeOf(ctor, superCtor);
    },
    promisify: (fn) => (...args) =>
      new Promise((resolve, reject) => fn(...args, (err, value) => (err ? reject(err) : resolve(value)))),
    isDeepStrictEqual: (a, b) => deepEqual(a, b, true),
    types: { isPromise: (p) => p instanceof Promise, isDate: (d) => d instanceof Date, isRegExp: (r) => r instanceof RegExp },
    TextEncoder,
    TextDecoder,
    deprecate: (fn) => fn,
  };
  inspect.custom = Symbol.for("nodejs.util.inspect.custom");

  // ---- assert -----------------------------------------------------------------
  class AssertionError extends Error {
    constructor(options) {
      super(options.message);
      this.name = "AssertionError";
      this.code = "ERR_ASSERTION";
      this.actual = options.actual;
      this.expected = options.expected;
      this.operator = options.operator;
    }
  }
  function deepEqual(a, b, strict) {
    if (strict ? Object.is(a, b) : a == b) return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
    if (strict && Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
    if (a instanceof Map || a instanceof Set) {
      return a.size === b.size && deepEqual([...a], [...b], strict);
    }
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k], strict));
  }
  function fail(actual, expected, message, operator, defaultMessage) {
    if (message instanceof Error) throw message;
    throw new AssertionError({ message: message ?? defaultMessage, actual, expected, operator });
  }
  function assert(value, message) {
    if (!value) fail(value, true, message, "==", "The expression evaluated to a falsy value");
  }
  Object.assign(assert, {
    ok: assert,
    AssertionError,
    fail: (message) => fail(undefined, undefined, message, "fail", "Failed"),
    equal: (a, b, m) => a == b || fail(a, b, m, "==", `${inspect(a)} == ${inspect(b)}`),
    notEqual: (a, b, m) => a != b || fail(a, b, m, "!=", `${inspect(a)} != ${inspect(b)}`),
    strictEqual: (a, b, m) =>
      Object.is(a, b) || fail(a, b, m, "strictEqual", `Expected values to be strictly equal:\n\n${inspect(a)} !== ${inspect(b)}\n`),
    notStrictEqual: (a, b, m) => !Object.is(a, b) || fail(a, b, m, "notStrictEqual", `Expected "actual" to be strictly unequal to: ${inspect(b)}`),
    deepEqual: (a, b, m) => deepEqual(a, b, false) || fail(a, b, m, "deepEqual", "Expected values to be loosely deep-equal"),
    deepStrictEqual: (a, b, m) =>
      deepEqual(a, b, true) || fail(a, b, m, "deepStrictEqual", "Expected values to be strictly deep-equal"),
    notDeepStrictEqual: (a, b, m) => !deepEqual(a, b, true) || fail(a, b, m, "notDeepStrictEqual", "Expected values not to be deep-equal"),
    throws(fn, expected, message) {
      try {
        fn();
      } catch (e) {
        if (typeof expected === "function" && expected.prototype !== undefined && !(e instanceof expected)) throw e;
        if (expected instanceof RegExp && !expected.test(String(e && e.message))) throw e;
        return;
      }
      fail(undefined, expected, typeof expected === "string" ? expected : message, "throws", "Missing expected exception.");
    },
    async rejects(p, expected, message) {
      try {
        await (typeof p === "function" ? p() : p);
      } catch (_e) {
        return;
      }
      fail(undefined, expected, message, "rejects", "Missing expected rejection.");
    },
    doesNotThrow: (fn) => fn(),
    match: (s, re, m) => re.test(s) || fail(s, re, m, "match", `The input did not match the regular expression ${re}`),
  });
  assert.strict = assert;

  // ---- path (POSIX) -------------------------------------------------------------
  function normalize(p) {
    const abs = p.startsWith("/");
    const out = [];
    for (const part of p.split("/")) {
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (out.length && out[out.length - 1] !== "..") out.pop();
        else if (!abs) out.push("..");
      } else out.push(part);
    }
    const s = (abs ? "/" : "") + out.join("/");
    return (s || (abs ? "/" : ".")) + (p.endsWith("/") && out.length ? "/" : "");
  }
  const path = {
    sep: "/",
    delimiter: ":",
    normalize,
    join: (...parts) => normalize(parts.filter((p) => p !== "").join("/") || "."),
    resolve: (...parts) => {
      let p = "";
      for (let i = parts.length - 1; i >= 0 && !p.startsWith("/"); i--) p = parts[i] + (p ? `/${p}` : "");
      if (!p.startsWith("/")) p = `${process.cwd()}/${p}`;
      const n = normalize(p);
      return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
    },
    isAbsolute: (p) => p.startsWith("/"),
    basename: (p, ext) => {
      const b = p.replace(/\/+$/, "").split("/").pop();
      return ext && b.endsWith(ext) && b !== ext ? b.slice(0, -ext.length) : b;
    },
    dirname: (p) => {
      const s = p.replace(/\/+$/, "");
      const i = s.lastIndexOf("/");
      return i < 0 ? "." : i === 0 ? "/" : s.slice(0, i);
    },
    extname: (p) => {
      const b = path.basename(p);
      const i = b.lastIndexOf(".");
      return i <= 0 ? "" : b.slice(i);
    },
    relative: (from, to) => {
      const a = path.resolve(from).split("/").filter(Boolean);
      const b = path.resolve(to).split("/").filter(Boolean);
      let i = 0;
      while (i < a.length && a[i] === b[i]) i++;
      return [...a.slice(i).map(() => ".."), ...b.slice(i)].join("/");
    },
    parse: (p) => {
      const base = path.basename(p);
      const ext = path.extname(p);
      return { root: p.startsWith("/") ? "/" : "", dir: path.dirname(p), base, ext, name: ext ? base.slice(0, -ext.length) : base };
    },
    format: (o) => `${o.dir ? `${o.dir}/` : o.root || ""}${o.base || `${o.name || ""}${o.ext || ""}`}`,
  };
  path.posix = path;

  // ---- fs -----------------------------------------------------------------------
  const isStdin = (p) => p === 0 || p === "/dev/stdin";
  function readFileSync(p, options) {
    const encoding = typeof options === "string" ? options : options && options.encoding;
    const bytes = isStdin(p) ? readAllStdin() : Buffer.from(D.readFileSync(String(p)));
    return encoding ? bytes.toString(encoding) : bytes;
  }
  function writeFileSync(p, data, options) {
    const append = Boolean(options && options.flag && String(options.flag).startsWith("a"));
    if (p === 1 || p === "/dev/stdout") return void process.stdout.write(data);
    if (p === 2 || p === "/dev/stderr") return void process.stderr.write(data);
    D.writeFileSync(String(p), typeof data === "string" ? enc.encode(data) : new Uint8Array(data), { append });
  }
  const callback = (fn) => (...args) => {
    const cb = args.pop();
    try {
      const value = fn(...args);
      queueMicrotask(() => cb(null, value));
    } catch (e) {
      queueMicrotask(() => cb(e));
    }
  };
  const fsPromises = {
    readFile: async (p, o) => readFileSync(p, o),
    writeFile: async (p, d, o) => writeFileSync(p, d, o),
    appendFile: async (p, d) => writeFileSync(p, d, { flag: "a" }),
  };
  const fs = {
    readFileSync,
    writeFileSync,
    appendFileSync: (p, d) => writeFileSync(p, d, { flag: "a" }),
    existsSync: (p) => {
      try {
        D.readFileSync(String(p));
        return true;
      } catch (_e) {
        return false;
      }
    },
    readFile: callback(readFileSync),
    writeFile: callback(writeFileSync),
    promises: fsPromises,
    constants: { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1 },
  };

  // ---- readline -------------------------------------------------------------------
  class Interface extends EventEmitter {
    constructor(options) {
      super();
      const input = options && options.input !== undefined ? options.input : options;
      this.output = options && options.output;
      this.closed = false;
      this._lines = null;
      this._waiting = [];
      this._input = input;
      this._scheduled = false;
      this.terminal = false;
    }
    _take() {
      if (this._lines === null) {
        const text = this._input === stdin || this._input === undefined ? readAllStdin().toString("utf8") : "";
        const lines = text.split(/\r?\n/);
        if (lines.length && lines[lines.length - 1] === "") lines.pop();
        this._lines = lines;
      }
      return this._lines;
    }
    _onListen(name) {
      if (name !== "line" || this._scheduled) return;
      this._scheduled = true;
      const pump = () => {
        const lines = this._take();
        if (this.closed) return;
        if (lines.length === 0) return this.close();
        this.emit("line", lines.shift());
        setTimeout(pump, 0);
      };
      setTimeout(pump, 0);
    }
    question(query, options, cb) {
      if (typeof options === "function") cb = options;
      process.stdout.write(query);
      const line = this._take().shift();
      if (typeof cb === "function") {
        queueMicrotask(() => cb(line ?? ""));
        return undefined;
      }
      return Promise.resolve(line ?? "");
    }
    prompt() {}
    setPrompt() {}
    write() {}
    pause() {
      return this;
    }
    resume() {
      return this;
    }
    close() {
      if (this.closed) return;
      this.closed = true;
      this.emit("close");
    }
    async *[Symbol.asyncIterator]() {
      const lines = this._take();
      while (lines.length) yield lines.shift();
      this.close();
    }
  }
  const readline = {
    createInterface: (options) => new Interface(options),
    Interface,
    clearLine: () => true,
    cursorTo: () => true,
    emitKeypressEvents: () => {},
  };
  const readlinePromises = {
    createInterface: (options) => {
      const rl = new Interface(options);
      const question = rl.question.bind(rl);
      rl.question = (q) => question(q);
      return rl;
    },
    Interface,
  };

  // ---- small modules -----------------------------------------------------------
  class StringDecoder {
    constructor(encoding = "utf8") {
      this.encoding = encoding;
      this.decoder = new TextDecoder();
    }
    write(b) {
      return this.encoding === "utf8" || this.encoding === "utf-8"
        ? this.decoder.decode(b, { stream: true })
        : Buffer.from(b).toString(this.encoding);
    }
    end(b) {
      return (b ? this.write(b) : "") + (this.encoding.startsWith("utf") ? this.decoder.decode() : "");
    }
  }
  const os = {
    EOL: "\n",
    platform: () => "linux",
    type: () => "Linux",
    arch: () => "x64",
    release: () => "6.0.0",
    hostname: () => "isoexec",
    homedir: () => "/home/isoexec",
    tmpdir: () => "/tmp",
    cpus: () => [{ model: "isoexec", speed: 0, times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 } }],
    availableParallelism: () => 1,
    totalmem: () => 0,
    freemem: () => 0,
    uptime: () => process.uptime(),
    loadavg: () => [0, 0, 0],
    endianness: () => "LE",
    userInfo: () => ({ username: "isoexec", uid: 1000, gid: 1000, shell: null, homedir: "/home/isoexec" }),
    networkInterfaces: () => ({}),
  };
  const timers = { setTimeout, clearTimeout, setInterval, clearInterval, setImmediate: (f, ...a) => setTimeout(f, 0, ...a), clearImmediate: clearTimeout };
  const timersPromises = {
    setTimeout: (ms, value) => new Promise((resolve) => setTimeout(() => resolve(value), ms)),
    setImmediate: (value) => new Promise((resolve) => setTimeout(() => resolve(value), 0)),
  };
  const nodeCrypto = {
    randomUUID: () => crypto.randomUUID(),
    randomBytes: (n, cb) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
      if (typeof cb === "function") queueMicrotask(() => cb(null, b));
      return b;
    },
    randomInt: (min, max) => {
      if (max === undefined) [min, max] = [0, min];
      const r = new Uint32Array(1);
      crypto.getRandomValues(r);
      return min + (r[0] % (max - min));
    },
    getRandomValues: (a) => crypto.getRandomValues(a),
    webcrypto: crypto,
    createHash: (name) => new Hash(name),
    getHashes: () => ["md5", "sha1", "sha256"],
  };

  // ---- hashes: md5, sha1, sha256 over whole messages ------------------------
  const rotl = (x, n) => (x << n) | (x >>> (32 - n));
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  /** The message padded to 64-byte blocks with its bit length (big or little endian). */
  function pad(bytes, littleEndian) {
    const len = bytes.length;
    const total = (((len + 8) >> 6) + 1) << 6;
    const out = new Uint8Array(total);
    out.set(bytes);
    out[len] = 0x80;
    const view = new DataView(out.buffer);
    const bits = len * 8;
    if (littleEndian) {
      view.setUint32(total - 8, bits >>> 0, true);
      view.setUint32(total - 4, Math.floor(bits / 2 ** 32), true);
    } else {
      view.setUint32(total - 8, Math.floor(bits / 2 ** 32));
      view.setUint32(total - 4, bits >>> 0);
    }
    return view;
  }
  const K256 = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ];
  function sha256(bytes) {
    const v = pad(bytes, false);
    const h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    const w = new Array(64);
    for (let off = 0; off < v.byteLength; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = v.getUint32(off + i * 4);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) | 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        hh = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      [a, b, c, d, e, f, g, hh].forEach((x, i) => (h[i] = (h[i] + x) | 0));
    }
    const out = new DataView(new ArrayBuffer(32));
    h.forEach((x, i) => out.setUint32(i * 4, x));
    return new Uint8Array(out.buffer);
  }
  function sha1(bytes) {
    const v = pad(bytes, false);
    const h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
    const w = new Array(80);
    for (let off = 0; off < v.byteLength; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = v.getUint32(off + i * 4);
      for (let i = 16; i < 80; i++) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
      let [a, b, c, d, e] = h;
      for (let i = 0; i < 80; i++) {
        const [f, k] =
          i < 20 ? [(b & c) | (~b & d), 0x5a827999]
          : i < 40 ? [b ^ c ^ d, 0x6ed9eba1]
          : i < 60 ? [(b & c) | (b & d) | (c & d), 0x8f1bbcdc]
          : [b ^ c ^ d, 0xca62c1d6];
        const t = (rotl(a, 5) + f + e + k + w[i]) | 0;
        e = d;
        d = c;
        c = rotl(b, 30);
        b = a;
        a = t;
      }
      [a, b, c, d, e].forEach((x, i) => (h[i] = (h[i] + x) | 0));
    }
    const out = new DataView(new ArrayBuffer(20));
    h.forEach((x, i) => out.setUint32(i * 4, x));
    return new Uint8Array(out.buffer);
  }
  const S_MD5 = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  const K_MD5 = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);
  function md5(bytes) {
    const v = pad(bytes, true);
    const h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for (let off = 0; off < v.byteLength; off += 64) {
      const m = Array.from({ length: 16 }, (_, i) => v.getUint32(off + i * 4, true));
      let [a, b, c, d] = h;
      for (let i = 0; i < 64; i++) {
        let f;
        let g;
        if (i < 16) [f, g] = [(b & c) | (~b & d), i];
        else if (i < 32) [f, g] = [(d & b) | (~d & c), (5 * i + 1) % 16];
        else if (i < 48) [f, g] = [b ^ c ^ d, (3 * i + 5) % 16];
        else [f, g] = [c ^ (b | ~d), (7 * i) % 16];
        const t = d;
        d = c;
        c = b;
        b = (b + rotl((a + f + K_MD5[i] + m[g]) | 0, S_MD5[(i >> 4) * 4 + (i % 4)])) | 0;
        a = t;
      }
      [a, b, c, d].forEach((x, i) => (h[i] = (h[i] + x) | 0));
    }
    const out = new DataView(new ArrayBuffer(16));
    h.forEach((x, i) => out.setUint32(i * 4, x, true));
    return new Uint8Array(out.buffer);
  }
  const HASHES = { md5, sha1, sha256, "sha-256": sha256, "sha-1": sha1 };
  class Hash {
    constructor(name) {
      this.fn = HASHES[String(name).toLowerCase()];
      if (!this.fn) throw new Error(`Digest method not supported: ${name} (md5, sha1 and sha256 are)`);
      this.parts = [];
    }
    update(data, encoding) {
      this.parts.push(typeof data === "string" ? Buffer.from(data, encoding) : Buffer.from(data));
      return this;
    }
    digest(encoding) {
      const out = Buffer.from(this.fn(Buffer.concat(this.parts)));
      return encoding ? out.toString(encoding) : out;
    }
  }

  const modules = {
    events: EventEmitter,
    util,
    assert,
    "assert/strict": assert,
    path,
    "path/posix": path,
    fs,
    "fs/promises": fsPromises,
    readline,
    "readline/promises": readlinePromises,
    buffer: { Buffer, constants: { MAX_LENGTH: 2 ** 31 - 1 } },
    string_decoder: { StringDecoder },
    os,
    timers,
    "timers/promises": timersPromises,
    crypto: nodeCrypto,
    process,
    console,
  };
  const unavailable = new Set([
    "child_process", "net", "http", "https", "http2", "dgram", "dns", "tls", "cluster",
    "worker_threads", "vm", "v8", "inspector", "repl", "tty", "zlib", "perf_hooks", "module",
  ]);

  // ---- uncaught errors, as Node prints them ---------------------------------------
  function printUncaught(error, filename, source) {
    const stack = String((error && error.stack) || error)
      .split("\n")
      .filter((line) => !line.includes("ext:isoexec/"))
      .map((line) => line.replace(/file:\/\//g, ""))
      // The wrapper sits before the program on its first line.
      .map((line) =>
        line.replace(/([^()\s]+):1:(\d+)(\)?)$/, (m, file, col, close) =>
          file === filename ? `${file}:1:${Math.max(1, Number(col) - WRAPPER_WIDTH)}${close}` : m,
        ),
      );
    const at = stack
      .map((line) => line.match(/\(?([^()\s]+):(\d+):(\d+)\)?$/))
      .find((m) => m && m[1] === filename);
    const out = [];
    if (at) {
      const line = source.split("\n")[Number(at[2]) - 1];
      if (line !== undefined) {
        // Node marks a throw statement where it starts.
        const col = Number(at[3]) - 1;
        const thrownAt = line.lastIndexOf("throw", col);
        const caret = thrownAt >= 0 ? thrownAt : col;
        out.push(`${filename}:${at[2]}`, line, `${" ".repeat(Math.max(0, caret))}^`, "");
      }
    }
    const thrown = error instanceof Error ? stack.join("\n") : typeof error === "string" ? error : inspect(error);
    out.push(thrown, "", `Node.js ${process.version}`);
    consoleError(out.join("\n"));
  }
  // "(function (exports, require, module, __filename, __dirname) { ".length
  const WRAPPER_WIDTH = 62;

  // ---- require ---------------------------------------------------------------------
  const cache = new Map();
  function makeRequire(fromFile) {
    function require(id) {
      id = String(id);
      const bare = id.startsWith("node:") ? id.slice(5) : id;
      if (Object.hasOwn(modules, bare)) return modules[bare];
      if (unavailable.has(bare)) {
        const e = new Error(`Cannot use the Node.js module '${bare}' here: ${NOT_HERE}.`);
        e.code = "ERR_UNAVAILABLE_HERE";
        throw e;
      }
      let found;
      try {
        found = requireFile(id, fromFile);
      } catch (e) {
        const err = new Error(String(e && e.message ? e.message : e));
        err.code = /ES module/.test(err.message) ? "ERR_REQUIRE_ESM" : "MODULE_NOT_FOUND";
        throw err;
      }
      const [file, text] = found;
      if (cache.has(file)) return cache.get(file).exports;
      if (file.endsWith(".json")) {
        const m = { exports: JSON.parse(text) };
        cache.set(file, m);
        return m.exports;
      }
      return loadCommonJs(text, file).exports;
    }
    require.resolve = (id) => id;
    require.cache = {};
    return require;
  }

  /** Runs `text` as the CommonJS module `filename`; returns its `module`. */
  function loadCommonJs(text, filename, compiled) {
    const module = { exports: {}, filename, id: filename, loaded: false, children: [], paths: [] };
    cache.set(filename, module);
    const dir = path.dirname(filename);
    const fn =
      compiled ||
      new Function("exports", "require", "module", "__filename", "__dirname", text.replace(/^#!.*/, ""));
    const require = makeRequire(filename);
    module.require = require;
    fn.call(module.exports, module.exports, require, module, filename, dir);
    module.loaded = true;
    return module;
  }

  G.process = process;
  G.Buffer = Buffer;
  // What an ES module's `node:` and CommonJS-package imports go through.
  Object.defineProperty(G, Symbol.for("isoexec.node.require"), {
    value: makeRequire(`${D.cwd ? D.cwd() : "/"}/[import]`),
  });
  G.global = G;
  G.setImmediate = timers.setImmediate;
  G.clearImmediate = timers.clearImmediate;
  return {
    /** Runs the program's wrapper function as the main CommonJS module. */
    main: (fn, filename, text) => {
      process.argv[1] = filename;
      try {
        loadCommonJs("", filename, fn);
      } catch (e) {
        // Uncaught while the program's body ran: printed as Node prints
        // it (the line, a caret, the error, Node's version), exit code 1.
        printUncaught(e, filename, text);
        D.exit(1);
      }
    },
    /** Node's REPL globals, `require` resolving from `dir`. */
    repl: (dir) => {
      const module = { exports: {}, filename: `${dir}/[repl]`, id: "<repl>", loaded: true };
      G.require = makeRequire(`${dir}/[repl]`);
      G.module = module;
      G.exports = module.exports;
      G.__dirname = dir;
      G.__filename = module.filename;
    },
    /** Runs `exit` listeners and ends with process.exitCode, if set. */
    finish: () => {
      if (process.listenerCount("exit") > 0) process.emit("exit", Number(process.exitCode ?? 0) | 0);
      if (process.exitCode !== undefined && Number(process.exitCode) !== 0) D.exit(Number(process.exitCode) | 0);
    },
  };
})
