// Turns any JS value into readable text for console output. Never throws:
// user values with hostile getters or proxies still produce a string.
// Uses only builtins captured at snapshot time (see 02_timers.js).
import { primordials } from "ext:core/mod.js";

const {
  ArrayBufferIsView,
  ArrayBufferPrototype,
  ArrayBufferPrototypeGetByteLength,
  ArrayIsArray,
  ArrayPrototypeIncludes,
  ArrayPrototypeJoin,
  ArrayPrototypePop,
  ArrayPrototypePush,
  DataViewPrototype,
  DatePrototype,
  DatePrototypeToISOString,
  ErrorPrototype,
  FunctionPrototypeToString,
  JSONStringify,
  MapPrototype,
  MapPrototypeForEach,
  MapPrototypeGetSize,
  MathMin,
  MathTrunc,
  Number,
  NumberParseFloat,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  ObjectIs,
  ObjectPrototypeIsPrototypeOf,
  PromisePrototype,
  ReflectOwnKeys,
  RegExpPrototype,
  RegExpPrototypeTest,
  RegExpPrototypeToString,
  SafeArrayIterator,
  SafeRegExp,
  SetPrototype,
  SetPrototypeForEach,
  SetPrototypeGetSize,
  String,
  StringPrototypeIncludes,
  StringPrototypeSlice,
  StringPrototypeStartsWith,
  SymbolPrototypeToString,
  TypedArrayPrototypeGetLength,
  TypedArrayPrototypeGetSymbolToStringTag,
} = primordials;

const MAX_DEPTH = 4;
const MAX_ITEMS = 100;
/** Strings nested in an inspected value are cut here; printed ones never. */
const MAX_NESTED_STRING = 10000;
const IDENTIFIER = new SafeRegExp("^[A-Za-z_$][A-Za-z0-9_$]*$");

function safe(fn, fallback) {
  try {
    return fn();
  } catch (_e) {
    return fallback;
  }
}

function quote(s) {
  return JSONStringify(s);
}

function isA(prototype, v) {
  return safe(() => ObjectPrototypeIsPrototypeOf(prototype, v), false);
}

function keyText(k) {
  if (typeof k === "symbol") return "[" + safe(() => SymbolPrototypeToString(k), "Symbol()") + "]";
  return RegExpPrototypeTest(IDENTIFIER, k) ? k : quote(k);
}

function fnText(v) {
  const name = safe(() => {
    const d = ObjectGetOwnPropertyDescriptor(v, "name");
    return d && typeof d.value === "string" ? d.value : "";
  }, "");
  const isClass = safe(
    () => StringPrototypeStartsWith(FunctionPrototypeToString(v), "class"),
    false,
  );
  if (isClass) return "[class " + (name || "(anonymous)") + "]";
  return name ? "[Function: " + name + "]" : "[Function (anonymous)]";
}

function errorText(v) {
  const stack = safe(() => v.stack, undefined);
  if (typeof stack === "string" && stack.length > 0) return stack;
  const name = safe(() => String(v.name), "Error");
  const message = safe(() => String(v.message), "");
  return message ? name + ": " + message : name;
}

function join(items) {
  return ArrayPrototypeJoin(items, ", ");
}

function inspectInner(v, depth, seen, nested) {
  switch (typeof v) {
    case "string": {
      if (!nested) return v;
      return quote(
        v.length > MAX_NESTED_STRING ? StringPrototypeSlice(v, 0, MAX_NESTED_STRING) + "..." : v,
      );
    }
    case "number":
      return ObjectIs(v, -0) ? "-0" : String(v);
    case "bigint":
      return String(v) + "n";
    case "boolean":
    case "undefined":
      return String(v);
    case "symbol":
      return safe(() => SymbolPrototypeToString(v), "Symbol()");
    case "function":
      return fnText(v);
  }
  if (v === null) return "null";
  if (ArrayPrototypeIncludes(seen, v)) return "[Circular]";
  if (isA(ErrorPrototype, v)) return errorText(v);
  if (isA(DatePrototype, v)) {
    return safe(() => DatePrototypeToISOString(v), "Invalid Date");
  }
  if (isA(RegExpPrototype, v)) return safe(() => RegExpPrototypeToString(v), "/(?:)/");
  if (ArrayBufferIsView(v) && !isA(DataViewPrototype, v)) {
    return safe(() => {
      const name = TypedArrayPrototypeGetSymbolToStringTag(v) || "TypedArray";
      const length = TypedArrayPrototypeGetLength(v);
      const items = [];
      const n = MathMin(length, MAX_ITEMS);
      for (let i = 0; i < n; i++) ArrayPrototypePush(items, String(v[i]));
      if (length > MAX_ITEMS) ArrayPrototypePush(items, "... " + (length - MAX_ITEMS) + " more items");
      return name + "(" + length + ") [ " + join(items) + (items.length ? " ]" : "]");
    }, "TypedArray");
  }
  if (isA(ArrayBufferPrototype, v)) {
    return "ArrayBuffer { byteLength: " +
      safe(() => ArrayBufferPrototypeGetByteLength(v), "?") + " }";
  }
  if (isA(PromisePrototype, v)) return "Promise { <pending or settled> }";
  if (depth > MAX_DEPTH) {
    return ArrayIsArray(v) ? "[Array]" : "[Object]";
  }
  ArrayPrototypePush(seen, v);
  try {
    if (ArrayIsArray(v)) {
      const items = [];
      const length = safe(() => v.length, 0);
      const n = MathMin(length, MAX_ITEMS);
      for (let i = 0; i < n; i++) {
        ArrayPrototypePush(items, inspectInner(safe(() => v[i], undefined), depth + 1, seen, true));
      }
      if (length > MAX_ITEMS) ArrayPrototypePush(items, "... " + (length - MAX_ITEMS) + " more items");
      return items.length ? "[ " + join(items) + " ]" : "[]";
    }
    if (isA(MapPrototype, v)) {
      const items = [];
      safe(() =>
        MapPrototypeForEach(v, (val, k) => {
          if (items.length >= MAX_ITEMS) return;
          ArrayPrototypePush(
            items,
            inspectInner(k, depth + 1, seen, true) + " => " +
              inspectInner(val, depth + 1, seen, true),
          );
        }), undefined);
      const size = safe(() => MapPrototypeGetSize(v), items.length);
      return "Map(" + size + ") {" + (items.length ? " " + join(items) + " " : "") + "}";
    }
    if (isA(SetPrototype, v)) {
      const items = [];
      safe(() =>
        SetPrototypeForEach(v, (val) => {
          if (items.length >= MAX_ITEMS) return;
          ArrayPrototypePush(items, inspectInner(val, depth + 1, seen, true));
        }), undefined);
      const size = safe(() => SetPrototypeGetSize(v), items.length);
      return "Set(" + size + ") {" + (items.length ? " " + join(items) + " " : "") + "}";
    }
    const keys = safe(() => ReflectOwnKeys(v), []);
    const items = [];
    for (const k of new SafeArrayIterator(keys)) {
      if (items.length >= MAX_ITEMS) {
        ArrayPrototypePush(items, "...");
        break;
      }
      const desc = safe(() => ObjectGetOwnPropertyDescriptor(v, k), undefined);
      if (!desc || !desc.enumerable) continue;
      const accessor = desc.get !== undefined || desc.set !== undefined;
      const text = accessor
        ? "[Getter" + (desc.set ? "/Setter]" : "]")
        : inspectInner(desc.value, depth + 1, seen, true);
      ArrayPrototypePush(items, keyText(k) + ": " + text);
    }
    const proto = safe(() => ObjectGetPrototypeOf(v), null);
    const ctorName = proto === null ? "[Object: null prototype] " : safe(() => {
      const d = ObjectGetOwnPropertyDescriptor(proto, "constructor");
      const ctor = d && d.value;
      if (typeof ctor !== "function") return "";
      const n = ObjectGetOwnPropertyDescriptor(ctor, "name");
      const name = n && typeof n.value === "string" ? n.value : "";
      return name && name !== "Object" ? name + " " : "";
    }, "");
    return ctorName + (items.length ? "{ " + join(items) + " }" : "{}");
  } finally {
    ArrayPrototypePop(seen);
  }
}

/** Text for one console argument. Strings are printed whole. */
export function inspect(v) {
  return safe(() => inspectInner(v, 0, [], false), "[uninspectable value]");
}

/** console.log-style formatting with %s %d %i %f %o %O %j %c and %%. */
export function format(args) {
  if (args.length === 0) return "";
  let out = "";
  let rest = 0;
  const first = args[0];
  if (typeof first === "string" && args.length > 1 && StringPrototypeIncludes(first, "%")) {
    let next = 1;
    let i = 0;
    while (i < first.length) {
      const c = first[i];
      if (c === "%" && i + 1 < first.length) {
        const f = first[i + 1];
        if (f === "%") {
          out += "%";
          i += 2;
          continue;
        }
        if (StringPrototypeIncludes("sdifoOjc", f) && next < args.length) {
          const a = args[next++];
          switch (f) {
            case "s":
              out += typeof a === "string" ? a : inspect(a);
              break;
            case "d":
            case "i": {
              const n = safe(() => (typeof a === "bigint" ? a : Number(a)), NaN);
              out += typeof n === "bigint"
                ? String(n) + "n"
                : String(f === "i" ? MathTrunc(n) : n);
              break;
            }
            case "f":
              out += String(safe(() => NumberParseFloat(a), NaN));
              break;
            case "j":
              out += safe(() => JSONStringify(a), "[Circular]");
              break;
            case "c":
              break;
            default:
              out += safe(() => inspectInner(a, 0, [], true), "[uninspectable value]");
          }
          i += 2;
          continue;
        }
      }
      out += c;
      i++;
    }
    rest = next;
  } else {
    out = inspect(first);
    rest = 1;
  }
  for (let i = rest; i < args.length; i++) out += " " + inspect(args[i]);
  return out;
}
