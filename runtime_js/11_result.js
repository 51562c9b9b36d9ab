// A call's result as JSON text (see `convert::to_json_by_hook`). Its
// frames are left out of the stacks of errors user code throws while it
// runs (a getter, a toJSON method).
import {
  op_is_any_array_buffer,
  op_is_array_buffer_view,
  op_is_big_int_object,
  op_is_boolean_object,
  op_is_boxed_primitive,
  op_is_number_object,
  op_is_proxy,
  op_is_shared_array_buffer,
  op_is_string_object,
  op_isoexec_data_uri,
  op_isoexec_result_chunk,
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
  ArrayPrototypeIncludes,
  ArrayPrototypePop,
  ArrayPrototypePush,
  BigIntPrototypeToString,
  JSONStringify,
  NumberIsFinite,
  ObjectKeys,
  ReflectApply,
  String: StringCtor,
  Number: NumberCtor,
  StringPrototypeToWellFormed,
  Uint8Array: Uint8ArrayCtor,
} = primordials;
const TOO_LARGE = 1;
const TOO_DEEP = 2;
const CYCLE = 3;
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

function isBytes(v) {
  return op_is_any_array_buffer(v) || op_is_array_buffer_view(v);
}

// toJSON, then boxed primitives unwrapped, as JSON.stringify does before it
// looks at a value.
function prepareValue(value, key) {
  const type = typeof value;
  if ((type !== "object" || value === null) && type !== "function") return value;
  if (isBytes(value)) return value;
  const toJSON = value.toJSON;
  if (typeof toJSON === "function") value = ReflectApply(toJSON, value, [key]);
  if (typeof value === "object" && value !== null && op_is_boxed_primitive(value)) {
    if (op_is_number_object(value)) return NumberCtor(value);
    if (op_is_string_object(value)) return StringCtor(value);
    if (op_is_boolean_object(value)) return StringCtor(value) === "true";
    if (op_is_big_int_object(value)) return StringCtor(value);
  }
  return value;
}

function isSkipped(v) {
  const type = typeof v;
  return type === "undefined" || type === "function" || type === "symbol";
}

function quote(text) {
  return JSONStringify(StringPrototypeToWellFormed(text));
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
  } else if (type === "object" && isBytes(v)) {
    const bytes = op_is_shared_array_buffer(v) ? new Uint8ArrayCtor(v) : v;
    const uri = op_isoexec_data_uri(bytes, st.max - written(st));
    if (uri === null) return TOO_LARGE;
    st.out += '"' + uri + '"';
  } else if (type === "object") {
    if (depth > st.maxDepth) return TOO_DEEP;
    if (ArrayPrototypeIncludes(st.path, v)) return CYCLE;
    ArrayPrototypePush(st.path, v);
    const why = ArrayIsArray(v) && !op_is_proxy(v)
      ? writeArray(st, v, depth)
      : writeObject(st, v, depth);
    ArrayPrototypePop(st.path);
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
    const item = prepareValue(a[i], i);
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
    const item = prepareValue(o[key], key);
    if (isSkipped(item)) continue;
    if (!first) st.out += ",";
    first = false;
    if (written(st) + key.length + 3 > st.max) return TOO_LARGE;
    st.out += quote(key) + ":";
    const why = writeValue(st, item, depth + 1);
    if (why !== 0) return why;
  }
  st.out += "}";
  return 0;
}

// The text's last piece (the pieces before it went to the host through
// `op_isoexec_result_chunk`), or a number for why there is none.
export function resultJson(value, maxBytes, maxDepth) {
  const st = { out: "", size: 0, max: maxBytes, maxDepth, path: [] };
  const top = prepareValue(value, "");
  if (isSkipped(top)) return "null";
  const why = writeValue(st, top, 1);
  return why === 0 ? st.out : why;
}

