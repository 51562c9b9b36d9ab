// TextEncoder / TextDecoder (UTF-8) and atob / btoa.
// Uses only builtins captured at snapshot time (see 02_timers.js).
import { op_isoexec_utf8_decode } from "ext:core/ops";
import { core, primordials } from "ext:core/mod.js";
import { DOMException } from "ext:isoexec/04_events.js";

const {
  ArrayBufferIsView,
  ArrayBufferPrototype,
  ArrayPrototypeIncludes,
  Boolean,
  ObjectPrototypeIsPrototypeOf,
  RangeError,
  RegExpPrototypeSymbolReplace,
  RegExpPrototypeTest,
  SafeRegExp,
  String,
  StringFromCharCode,
  StringPrototypeCharCodeAt,
  StringPrototypeCodePointAt,
  StringPrototypeIndexOf,
  StringPrototypeToLowerCase,
  StringPrototypeTrim,
  TypeError,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetLength,
  TypedArrayPrototypeSet,
  TypedArrayPrototypeSlice,
  TypedArrayPrototypeSubarray,
  DataViewPrototype,
  DataViewPrototypeGetBuffer,
  DataViewPrototypeGetByteLength,
  DataViewPrototypeGetByteOffset,
  Uint8Array,
  Uint8ArrayPrototype,
} = primordials;
const { encode } = core;

export class TextEncoder {
  get encoding() {
    return "utf-8";
  }
  encode(input = "") {
    return encode(String(input));
  }
  encodeInto(source, destination) {
    if (!ObjectPrototypeIsPrototypeOf(Uint8ArrayPrototype, destination)) {
      throw new TypeError("encodeInto: destination must be a Uint8Array");
    }
    const s = String(source);
    const room = TypedArrayPrototypeGetLength(destination);
    let read = 0;
    let written = 0;
    for (let i = 0; i < s.length;) {
      const cp = StringPrototypeCodePointAt(s, i);
      const units = cp > 0xffff ? 2 : 1;
      const bytes = encode(sliceOf(s, i, units));
      const n = TypedArrayPrototypeGetLength(bytes);
      if (written + n > room) break;
      TypedArrayPrototypeSet(destination, bytes, written);
      written += n;
      read += units;
      i += units;
    }
    return { read, written };
  }
}

function sliceOf(s, start, count) {
  return count === 1 ? s[start] : s[start] + s[start + 1];
}

const UTF8_LABELS = ["utf-8", "utf8", "unicode-1-1-utf-8"];

function toBytes(input) {
  if (input === undefined) return new Uint8Array(0);
  if (ObjectPrototypeIsPrototypeOf(ArrayBufferPrototype, input)) return new Uint8Array(input);
  if (ArrayBufferIsView(input)) {
    if (ObjectPrototypeIsPrototypeOf(DataViewPrototype, input)) {
      return new Uint8Array(
        DataViewPrototypeGetBuffer(input),
        DataViewPrototypeGetByteOffset(input),
        DataViewPrototypeGetByteLength(input),
      );
    }
    return new Uint8Array(
      TypedArrayPrototypeGetBuffer(input),
      TypedArrayPrototypeGetByteOffset(input),
      TypedArrayPrototypeGetByteLength(input),
    );
  }
  throw new TypeError("TextDecoder.decode: input must be an ArrayBuffer or a view");
}

// Length of an incomplete UTF-8 sequence at the end of `b` (0 to 3).
function incompleteTail(b) {
  const n = TypedArrayPrototypeGetLength(b);
  for (let back = 1; back <= 3 && back <= n; back++) {
    const c = b[n - back];
    if ((c & 0xc0) === 0x80) continue;
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

export class TextDecoder {
  #fatal;
  #ignoreBOM;
  #pending = null;
  #bomSeen = false;

  constructor(label = "utf-8", options = {}) {
    const text = String(label);
    const name = StringPrototypeToLowerCase(StringPrototypeTrim(text));
    if (!ArrayPrototypeIncludes(UTF8_LABELS, name)) {
      throw new RangeError("TextDecoder: only utf-8 is supported, not '" + text + "'");
    }
    const fatal = options && options.fatal;
    const ignoreBOM = options && options.ignoreBOM;
    this.#fatal = Boolean(fatal);
    this.#ignoreBOM = Boolean(ignoreBOM);
  }
  get encoding() {
    return "utf-8";
  }
  get fatal() {
    return this.#fatal;
  }
  get ignoreBOM() {
    return this.#ignoreBOM;
  }
  decode(input = undefined, options = {}) {
    let bytes = toBytes(input);
    const stream = Boolean(options && options.stream);
    if (this.#pending) {
      const pending = this.#pending;
      const a = TypedArrayPrototypeGetLength(pending);
      const joined = new Uint8Array(a + TypedArrayPrototypeGetLength(bytes));
      TypedArrayPrototypeSet(joined, pending, 0);
      TypedArrayPrototypeSet(joined, bytes, a);
      bytes = joined;
      this.#pending = null;
    }
    if (stream) {
      const tail = incompleteTail(bytes);
      if (tail > 0) {
        const n = TypedArrayPrototypeGetLength(bytes);
        this.#pending = TypedArrayPrototypeSlice(bytes, n - tail);
        bytes = TypedArrayPrototypeSubarray(bytes, 0, n - tail);
      }
    }
    const stripBom = !this.#ignoreBOM && !this.#bomSeen;
    const text = op_isoexec_utf8_decode(bytes, this.#fatal, stripBom);
    if (text === null) {
      this.#pending = null;
      throw new TypeError("The encoded data is not valid utf-8");
    }
    if (stream) {
      if (TypedArrayPrototypeGetLength(bytes) > 0) this.#bomSeen = true;
    } else {
      this.#bomSeen = false;
    }
    return text;
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const WHITESPACE = new SafeRegExp("[\\t\\n\\f\\r ]", "g");
const PADDING = new SafeRegExp("==?$");
const NOT_BASE64 = new SafeRegExp("[^A-Za-z0-9+/]");

export function btoa(data) {
  const s = String(data);
  let out = "";
  for (let i = 0; i < s.length; i += 3) {
    const a = StringPrototypeCharCodeAt(s, i);
    const b = i + 1 < s.length ? StringPrototypeCharCodeAt(s, i + 1) : 0;
    const c = i + 2 < s.length ? StringPrototypeCharCodeAt(s, i + 2) : 0;
    if (a > 255 || b > 255 || c > 255) {
      throw new DOMException(
        "The string to be encoded contains characters outside of the Latin1 range.",
        "InvalidCharacterError",
      );
    }
    const n = (a << 16) | (b << 8) | c;
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    out += i + 1 < s.length ? B64[(n >> 6) & 63] : "=";
    out += i + 2 < s.length ? B64[n & 63] : "=";
  }
  return out;
}

export function atob(data) {
  let s = RegExpPrototypeSymbolReplace(WHITESPACE, String(data), "");
  if (s.length % 4 === 0) s = RegExpPrototypeSymbolReplace(PADDING, s, "");
  if (s.length % 4 === 1 || RegExpPrototypeTest(NOT_BASE64, s)) {
    throw new DOMException(
      "The string to be decoded is not correctly encoded.",
      "InvalidCharacterError",
    );
  }
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    buffer = (buffer << 6) | StringPrototypeIndexOf(B64, s[i]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += StringFromCharCode((buffer >> bits) & 0xff);
    }
  }
  return out;
}
