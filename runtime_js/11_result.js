// A call's result as JSON text (see `convert::to_json_by_hook`). Its
// frames are left out of the stacks of errors user code throws while it
// runs (a getter, a toJSON method).
import {
  op_isoexec_data_uri,
  op_isoexec_result_chunk,
  op_isoexec_value_kind,
} from "ext:core/ops";
import { primordials } from "ext:core/mod.js";

// The rules: JSON.stringify's, but BigInts as decimal strings, binary
// values (ArrayBuffers, views, shared buffers) as data URIs, text with lone
// surrogates made well-formed, and no more than `maxBytes` of text nor
// `maxDepth` levels of nesting. Runs in the call's realm after the call, so
// it uses only what was captured at startup: a built-in replaced by user
// code changes nothing here, while the value's own toJSON methods, getters
// and proxy traps run once each, as JSON.stringify would run them.
const {
  ArrayIsArray,
  BigIntPrototypeToString,
  JSONStringify,
  NumberIsFinite,
  ObjectCreate,
  ObjectKeys,
  ReflectApply,
  String: StringCtor,
  Number: NumberCtor,
  StringPrototypeCharCodeAt,
  StringPrototypeToWellFormed,
  Uint8Array: Uint8ArrayCtor,
} = primordials;
const TOO_LARGE = 1;
const TOO_DEEP = 2;
const CYCLE = 3;
// What `callHook`'s function answers when the module has no function of
// that name.
const NOT_A_FUNCTION = 4;
// What op_isoexec_value_kind says of an object.
const BYTES = 1;
const SHARED_BYTES = 2;
const BOXED_NUMBER = 3;
const BOXED_STRING = 4;
const BOXED_BOOLEAN = 5;
const BOXED_BIGINT = 6;
const PROXY = 7;
const ARRAY = 8;
const PROMISE = 9;
// Strings up to this long are looked at here before JSON.stringify is
// asked to quote them: most need no escape, and a call into the built-in
// costs more than the look.
const SHORT = 64;
// Member names quoted before, with the colon that follows them, by name
// (a null-prototype object of the glue's, never reachable from user code):
// a result's names repeat within it and from call to call, and a look-up
// costs less than a look at each character. At most this many names, each
// no longer than SHORT; when full, it starts again empty.
const QUOTED_MAX = 512;
// Text is handed to the host in pieces of about this many UTF-16 units, so
// a large result never builds up in the heap (as a string of many small
// parts, it would take several times its size there).
const CHUNK = 16384;

// Hands the text written so far to the host once it is a piece's worth.
function flush(st) {
  if (st.out.length >= CHUNK) {
    op_isoexec_result_chunk(st.out);
    st.size += st.out.length;
    st.out = "";
  }
}

function written(st) {
  return st.size + st.out.length;
}

// toJSON, then boxed primitives unwrapped, as JSON.stringify does before it
// looks at a value. For an object, what it is goes to `st.kind`, for the
// `writeValue` that always follows.
function prepareValue(st, value, key) {
  if (isPrimitive(value)) return value;
  return prepareObject(st, value, key, op_isoexec_value_kind(value));
}

function isPrimitive(value) {
  const type = typeof value;
  return (type !== "object" || value === null) && type !== "function";
}

// `prepareValue` of an object whose `kind` is known.
function prepareObject(st, value, key, kind) {
  if (kind === BYTES || kind === SHARED_BYTES) {
    st.kind = kind;
    return value;
  }
  const toJSON = value.toJSON;
  if (typeof toJSON === "function") {
    value = ReflectApply(toJSON, value, [key]);
    if (typeof value !== "object" || value === null) return value;
    kind = op_isoexec_value_kind(value);
  }
  if (kind === BOXED_NUMBER) return NumberCtor(value);
  if (kind === BOXED_STRING || kind === BOXED_BIGINT) return StringCtor(value);
  if (kind === BOXED_BOOLEAN) return StringCtor(value) === "true";
  st.kind = kind;
  return value;
}

function isSkipped(v) {
  const type = typeof v;
  return type === "undefined" || type === "function" || type === "symbol";
}

function quote(text) {
  const length = text.length;
  if (length <= SHORT) {
    let i = 0;
    for (; i < length; i++) {
      const c = StringPrototypeCharCodeAt(text, i);
      // What JSON.stringify escapes, and surrogates (made well-formed).
      if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) break;
    }
    if (i === length) return '"' + text + '"';
  }
  return JSONStringify(StringPrototypeToWellFormed(text));
}

let quotedNames = ObjectCreate(null);
let quotedCount = 0;

// `name` quoted, then a colon.
function nameText(name) {
  const known = quotedNames[name];
  if (known !== undefined) return known;
  const text = quote(name) + ":";
  if (name.length <= SHORT) {
    if (quotedCount >= QUOTED_MAX) {
      quotedNames = ObjectCreate(null);
      quotedCount = 0;
    }
    quotedNames[name] = text;
    quotedCount++;
  }
  return text;
}

// Appends `v` to `st.out`; 0, or why it could not.
function writeValue(st, v, depth) {
  const type = typeof v;
  if (v === null) {
    st.out += "null";
  } else if (v === true) {
    st.out += "true";
  } else if (v === false) {
    st.out += "false";
  } else if (type === "string") {
    if (written(st) + v.length + 2 > st.max) return TOO_LARGE;
    st.out += quote(v);
  } else if (type === "number") {
    st.out += NumberIsFinite(v) ? StringCtor(v) : "null";
  } else if (type === "bigint") {
    st.out += '"' + BigIntPrototypeToString(v) + '"';
  } else if (type === "object" && (st.kind === BYTES || st.kind === SHARED_BYTES)) {
    const bytes = st.kind === SHARED_BYTES ? new Uint8ArrayCtor(v) : v;
    const uri = op_isoexec_data_uri(bytes, st.max - written(st));
    if (uri === null) return TOO_LARGE;
    st.out += '"' + uri + '"';
  } else if (type === "object") {
    if (depth > st.maxDepth) return TOO_DEEP;
    // The objects being written, outermost first: `path[d - 1]` is the
    // one at depth `d`, and those above `depth` are done with.
    const path = st.path;
    for (let i = 0; i < depth - 1; i++) {
      if (path[i] === v) return CYCLE;
    }
    path[depth - 1] = v;
    const kind = st.kind;
    // A proxy is written as an object whatever it stands for; asking
    // whether it stands for an array throws for a revoked one, as
    // JSON.stringify's own look does.
    if (kind === PROXY) ArrayIsArray(v);
    const why = kind === ARRAY ? writeArray(st, v, depth) : writeObject(st, v, depth);
    if (why !== 0) return why;
  } else {
    // undefined, functions and symbols inside arrays.
    st.out += "null";
  }
  if (written(st) > st.max) return TOO_LARGE;
  flush(st);
  return 0;
}

function writeArray(st, a, depth) {
  const length = a.length >>> 0;
  st.out += "[";
  for (let i = 0; i < length; i++) {
    if (i > 0) st.out += ",";
    const item = prepareValue(st, a[i], i);
    if (isSkipped(item)) {
      st.out += "null";
    } else {
      const why = writeValue(st, item, depth + 1);
      if (why !== 0) return why;
    }
    if (written(st) > st.max) return TOO_LARGE;
  }
  st.out += "]";
  return 0;
}

function writeObject(st, o, depth) {
  const keys = ObjectKeys(o);
  st.out += "{";
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const item = prepareValue(st, o[key], key);
    if (isSkipped(item)) continue;
    if (!first) st.out += ",";
    first = false;
    if (written(st) + key.length + 3 > st.max) return TOO_LARGE;
    st.out += nameText(key);
    const why = writeValue(st, item, depth + 1);
    if (why !== 0) return why;
  }
  st.out += "}";
  return 0;
}

// The text's last piece (the pieces before it went to the host through
// `op_isoexec_result_chunk`), or a number for why there is none.
function resultJson(value, maxBytes, maxDepth) {
  const st = state(maxBytes, maxDepth);
  return writeTop(st, prepareValue(st, value, ""));
}

function state(maxBytes, maxDepth) {
  // Room on the path for four levels from the start: most results are no
  // deeper, and an empty array would grow at the first.
  const path = [null, null, null, null];
  return { out: "", size: 0, max: maxBytes, maxDepth, path, kind: 0 };
}

// The text of a prepared result.
function writeTop(st, top) {
  if (isSkipped(top)) return "null";
  const why = writeValue(st, top, 1);
  return why === 0 ? st.out : why;
}

// The hook the host calls with a call's result: `resultJson`, and after a
// warm call that keeps its runtime (`settleAfter`), `settle` in the same
// entry into JS; the text then comes back wrapped in an array if the
// runtime was not quiet.
export function resultHook(settle) {
  return function resultHookOf(value, maxBytes, maxDepth, settleAfter) {
    return settled(resultJson(value, maxBytes, maxDepth), settleAfter, settle);
  };
}

// A hook's answer for `text`: after `settle` when asked to settle, wrapped
// in an array if the runtime was not quiet.
function settled(text, settleAfter, settle) {
  if (settleAfter && typeof text === "string" && !settle()) return [text];
  return text;
}

// The hook the host calls for a call of a module's exported function, in
// one entry into JS: it finds the export `name` of `namespace` (a live
// binding, so looked up each time), calls it with `payload` and answers as
// `resultHook`'s function does for what it returned. A promise is answered
// as it is, for the host to settle (then `resultHook` converts its value);
// `NOT_A_FUNCTION` when the export is no function. What the function
// throws passes through.
export function callHook(settle) {
  return function callHookOf(namespace, name, payload, maxBytes, maxDepth, settleAfter) {
    const fn = namespace[name];
    if (typeof fn !== "function") return NOT_A_FUNCTION;
    const value = fn(payload);
    const st = state(maxBytes, maxDepth);
    let top = value;
    if (!isPrimitive(value)) {
      const kind = op_isoexec_value_kind(value);
      if (kind === PROMISE) return value;
      top = prepareObject(st, value, "", kind);
    }
    return settled(writeTop(st, top), settleAfter, settle);
  };
}
