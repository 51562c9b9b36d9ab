// Python: loads the Pyodide runtime (CPython compiled to WebAssembly) into a
// runtime made for Python, and runs programs and notebook cells in it. The
// host evaluates Pyodide's two scripts as functions whose parameters stand
// in for the globals they look for (`WebAssembly`, and the `read`,
// `readbuffer` and `load` of a JS shell), so WebAssembly never becomes a
// global user code could reach.
import {
  op_isoexec_charge,
  op_isoexec_exit,
  op_isoexec_log,
  op_isoexec_python_file,
  op_isoexec_python_has_snapshot,
  op_isoexec_python_keep_module,
  op_isoexec_python_keep_snapshot,
  op_isoexec_python_module,
  op_isoexec_stdin_read,
  op_isoexec_write,
  op_isoexec_write_file,
} from "ext:core/ops";
import { primordials } from "ext:core/mod.js";
import { TextDecoder } from "ext:isoexec/03_encoding.js";

const {
  ArrayBuffer,
  ArrayBufferIsView,
  ArrayPrototypePush,
  Error,
  MapPrototypeForEach,
  MapPrototypeGet,
  MapPrototypeSet,
  MathMin,
  Number,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  RangeError,
  SafeMap,
  ReflectApply,
  ReflectDeleteProperty,
  SafeArrayIterator,
  String,
  StringPrototypeLastIndexOf,
  StringPrototypeSlice,
  StringPrototypeToLowerCase,
  StringFromCharCode,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeSubarray,
  Uint8Array,
} = primordials;

// Console levels of 01_console.js: stdout and stderr.
const LOG = 1;
const ERROR = 4;
const PAGE = 65536;

// `WebAssembly`, taken from the global object before `seal` removes it.
let wasm = null;
// The loaded interpreter, and the driver module's functions.
let pyodide = null;
let driver = null;

/** Keeps `WebAssembly` for a Python runtime; called by `seal`. */
export function keepWasm(w) {
  wasm = w;
}

/** Memory of a wasm instance, charged against the execution's off-heap budget. */
function charge(bytes) {
  if (!(bytes >= 0) || !op_isoexec_charge(MathMin(bytes, 0xffffffff))) {
    // The op has already stopped the execution with `memory_limit`.
    throw new RangeError("WebAssembly memory past the memory limit");
  }
}

/**
 * `WebAssembly` as Pyodide sees it: a memory grows only within the budget
 * (every page is charged first), and an instance's initial memory is
 * charged when it is made.
 */
function limitedWasm() {
  const W = wasm;
  const proto = W.Memory.prototype;
  const grow = proto.grow;
  const bufferOf = ObjectGetOwnPropertyDescriptor(proto, "buffer").get;
  ObjectDefineProperty(proto, "grow", {
    __proto__: null,
    value: function grow_(delta) {
      charge(Number(delta) * PAGE);
      return ReflectApply(grow, this, [delta]);
    },
    writable: false,
    configurable: false,
  });
  const instantiate = W.instantiate;
  return {
    __proto__: W,
    instantiate: async (source, imports) => {
      // The interpreter's module comes as an empty buffer (see
      // `readbuffer`): its compiled code is shared by every interpreter of
      // the process, compiled by the first.
      let module = null;
      if (source.byteLength === 0) {
        module = op_isoexec_python_module();
        if (module === undefined) {
          module = new W.Module(op_isoexec_python_file("pyodide.asm.wasm"));
          op_isoexec_python_keep_module(module);
        }
        source = module;
      }
      const made = await ReflectApply(instantiate, W, [source, imports]);
      const instance = made.instance ?? made;
      const memory = instance.exports.memory ?? imports?.env?.memory;
      if (memory) charge(ReflectApply(bufferOf, memory, []).byteLength);
      return module === null ? made : { instance, module };
    },
  };
}

/** One stream: bytes decoded as UTF-8 and passed on as written. */
class Stream {
  constructor(level) {
    this.level = level;
    this.decoder = new TextDecoder();
  }
  write(bytes) {
    const text = this.decoder.decode(bytes, { stream: true });
    if (text !== "") op_isoexec_write(this.level, text);
    return bytes.length;
  }
  flush() {
    const rest = this.decoder.decode();
    if (rest !== "") op_isoexec_write(this.level, rest);
  }
}

const stdout = new Stream(LOG);
const stderr = new Stream(ERROR);

/**
 * `TextDecoder` as Pyodide sees it: the web's UTF-8 one, and the UTF-16LE
 * and Latin-1 decoders Emscripten's string conversions ask for.
 */
class WideTextDecoder {
  constructor(label = "utf-8", options = undefined) {
    const name = StringPrototypeToLowerCase(String(label));
    if (name === "utf-16le" || name === "utf-16") {
      this.wide = 2;
    } else if (name === "latin1" || name === "iso-8859-1" || name === "ascii") {
      this.wide = 1;
    } else {
      this.wide = 0;
      this.inner = new TextDecoder(label, options);
    }
  }
  decode(input = new Uint8Array(0), options = undefined) {
    if (this.wide === 0) return this.inner.decode(input, options);
    const bytes = ArrayBufferIsView(input)
      ? new Uint8Array(
          TypedArrayPrototypeGetBuffer(input),
          TypedArrayPrototypeGetByteOffset(input),
          TypedArrayPrototypeGetByteLength(input),
        )
      : new Uint8Array(input);
    let out = "";
    if (this.wide === 1) {
      for (let i = 0; i < bytes.length; i += 8192) {
        out += ReflectApply(StringFromCharCode, null, TypedArrayPrototypeSubarray(bytes, i, i + 8192));
      }
      return out;
    }
    const units = bytes.length >> 1;
    for (let i = 0; i < units; i += 8192) {
      const end = MathMin(units, i + 8192);
      const chunk = [];
      for (let j = i; j < end; j++) chunk[j - i] = bytes[2 * j] | (bytes[2 * j + 1] << 8);
      out += ReflectApply(StringFromCharCode, null, chunk);
    }
    return out;
  }
}

function basename(path) {
  return StringPrototypeSlice(path, StringPrototypeLastIndexOf(path, "/") + 1);
}

/**
 * Loads Pyodide. `makeAsm` and `makeLoader` are Pyodide's two scripts as
 * functions of (WebAssembly, read, readbuffer, load, TextDecoder);
 * `driverSource` is the Python module that runs programs and cells;
 * `interruptWord` an Int32Array the host writes 2 into to raise
 * `KeyboardInterrupt`; `vendored` the operator's packages as [path, bytes]
 * pairs under /vendor/python. Resolves to true.
 */
async function boot(makeAsm, makeLoader, lockText, driverSource, interruptWord, vendored) {
  if (wasm === null) throw new Error("this runtime was not made for Python");
  const W = limitedWasm();
  const read = (path) => {
    throw new Error("no file " + String(path));
  };
  const load = read;
  const readbuffer = (path) => {
    const name = basename(String(path));
    return name === "pyodide.asm.wasm" ? new ArrayBuffer(0) : op_isoexec_python_file(name);
  };
  const createPyodideModule = makeAsm(W, read, readbuffer, load, WideTextDecoder);
  const { loadPyodide } = makeLoader(W, read, readbuffer, load, WideTextDecoder);
  // The first interpreter of the process starts CPython and leaves a
  // snapshot of its memory; every later one restores that instead.
  const restore = op_isoexec_python_has_snapshot();
  pyodide = await loadPyodide({
    indexURL: "/pyodide/",
    packageBaseUrl: "/pyodide/",
    lockFileContents: lockText,
    createPyodideModule,
    env: { HOME: "/home/pyodide" },
    args: [],
    _makeSnapshot: !restore,
    _loadSnapshot: restore ? op_isoexec_python_file("snapshot") : undefined,
  });
  if (!restore) {
    // What the driver imports is imported once, into the snapshot.
    pyodide.runPython("import ast, json, linecache, os, sys, traceback, types");
    op_isoexec_python_keep_snapshot(pyodide.makeMemorySnapshot());
  }
  pyodide.setStdout({ write: (b) => stdout.write(b), isatty: false });
  pyodide.setStderr({ write: (b) => stderr.write(b), isatty: false });
  pyodide.setStdin({
    read: (buffer) => {
      const n = op_isoexec_stdin_read(buffer);
      return n < 0 ? 0 : n;
    },
    isatty: false,
  });
  pyodide.setInterruptBuffer(interruptWord);
  mirror(vendored);
  const module = pyodide.runPython(driverSource, { globals: pyodide.toPy({}) });
  driver = { run: module.run, cell: module.cell };
  // What leads from a wasm object back to a constructor that could make
  // memory outside the budget is cut.
  for (const name of new SafeArrayIterator(["Memory", "Table", "Global", "Module", "Instance", "Tag", "Exception"])) {
    const ctor = W[name];
    if (ctor && ctor.prototype) ReflectDeleteProperty(ctor.prototype, "constructor");
  }
  wasm = null;
  return true;
}

/** Copies files into the interpreter's file system: [path, bytes] pairs. */
function mirror(files) {
  for (const entry of new SafeArrayIterator(files)) {
    const path = entry[0];
    const dir = StringPrototypeSlice(path, 0, StringPrototypeLastIndexOf(path, "/")) || "/";
    pyodide.FS.mkdirTree(dir);
    pyodide.FS.writeFile(path, entry[1]);
  }
}

/** Modification times of the regular files under `root`, by path. */
function listFiles(root, into = new SafeMap()) {
  const FS = pyodide.FS;
  let names;
  try {
    names = FS.readdir(root);
  } catch {
    return into;
  }
  for (const name of new SafeArrayIterator(names)) {
    if (name === "." || name === "..") continue;
    const path = root + "/" + name;
    const stat = FS.stat(path);
    if (FS.isDir(stat.mode)) listFiles(path, into);
    else if (FS.isFile(stat.mode)) MapPrototypeSet(into, path, stat.mtime.getTime());
  }
  return into;
}

/**
 * Writes back to the host the files under `root` the program made or
 * changed, through the same permission and quota checks as `Deno.writeFile`.
 */
function saveFiles(root, before) {
  const changed = [];
  MapPrototypeForEach(listFiles(root), (mtime, path) => {
    if (MapPrototypeGet(before, path) !== mtime) ArrayPrototypePush(changed, path);
  });
  for (const path of new SafeArrayIterator(changed)) {
    try {
      op_isoexec_write_file(path, pyodide.FS.readFile(path), false);
    } catch (e) {
      op_isoexec_log(ERROR, "error: " + basename(path) + " was not saved: " + String(e?.message ?? e));
      return false;
    }
  }
  return true;
}

/**
 * Runs `code` as the program `filename` (its directory the working one),
 * after writing `files` into the file system; with a `root`, what the
 * program wrote under it is saved to the host afterwards. Ends with the
 * program's exit code: returns for 0, otherwise ends the execution with it.
 */
function run(code, filename, files, root) {
  mirror(files);
  const before = root ? listFiles(root) : null;
  let status;
  try {
    status = driver.run(code, filename);
  } finally {
    stdout.flush();
    stderr.flush();
  }
  if (root && !saveFiles(root, before) && status === 0) status = 1;
  if (status !== 0) op_isoexec_exit(status);
  return status;
}

/**
 * Runs a notebook cell: returns [status, result] where status is 0 (ran),
 * 1 (raised: the traceback is on stderr) and result the JSON text of the
 * last expression's value, or null.
 */
function cell(code) {
  try {
    const out = driver.cell(code);
    const parts = out.toJs();
    out.destroy();
    return parts;
  } finally {
    stdout.flush();
    stderr.flush();
  }
}

export const python = { __proto__: null, boot, run, cell };
