// Turns any JS value into readable text for console output. Never throws:
// user values with hostile getters or proxies still produce a string.

const MAX_DEPTH = 4;
const MAX_ITEMS = 100;
const MAX_STRING = 10000;

function safe(fn, fallback) {
  try {
    return fn();
  } catch (_e) {
    return fallback;
  }
}

function quote(s) {
  return JSON.stringify(s);
}

function keyText(k) {
  if (typeof k === "symbol") return "[" + safe(() => String(k), "Symbol()") + "]";
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? k : quote(k);
}

function fnText(v) {
  const name = safe(() => v.name, "");
  const isClass = safe(
    () => Function.prototype.toString.call(v).startsWith("class"),
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

function inspectInner(v, depth, seen, nested) {
  switch (typeof v) {
    case "string": {
      const s = v.length > MAX_STRING ? v.slice(0, MAX_STRING) + "..." : v;
      return nested ? quote(s) : s;
    }
    case "number":
      return Object.is(v, -0) ? "-0" : String(v);
    case "bigint":
      return String(v) + "n";
    case "boolean":
    case "undefined":
      return String(v);
    case "symbol":
      return safe(() => String(v), "Symbol()");
    case "function":
      return fnText(v);
  }
  if (v === null) return "null";
  if (seen.includes(v)) return "[Circular]";
  if (v instanceof Error) return errorText(v);
  if (v instanceof Date) {
    return safe(() => v.toISOString(), "Invalid Date");
  }
  if (v instanceof RegExp) return safe(() => String(v), "/(?:)/");
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    const name = safe(() => v.constructor.name, "TypedArray");
    const items = [];
    const n = Math.min(v.length, MAX_ITEMS);
    for (let i = 0; i < n; i++) items.push(String(v[i]));
    if (v.length > MAX_ITEMS) items.push("... " + (v.length - MAX_ITEMS) + " more items");
    return name + "(" + v.length + ") [ " + items.join(", ") + (items.length ? " ]" : "]");
  }
  if (v instanceof ArrayBuffer) {
    return "ArrayBuffer { byteLength: " + v.byteLength + " }";
  }
  if (v instanceof Promise) return "Promise { <pending or settled> }";
  if (depth > MAX_DEPTH) {
    return Array.isArray(v) ? "[Array]" : "[Object]";
  }
  seen.push(v);
  try {
    if (Array.isArray(v)) {
      const items = [];
      const n = Math.min(v.length, MAX_ITEMS);
      for (let i = 0; i < n; i++) {
        items.push(inspectInner(safe(() => v[i], undefined), depth + 1, seen, true));
      }
      if (v.length > MAX_ITEMS) items.push("... " + (v.length - MAX_ITEMS) + " more items");
      return items.length ? "[ " + items.join(", ") + " ]" : "[]";
    }
    if (v instanceof Map) {
      const items = [];
      for (const [k, val] of v) {
        if (items.length >= MAX_ITEMS) break;
        items.push(
          inspectInner(k, depth + 1, seen, true) + " => " +
            inspectInner(val, depth + 1, seen, true),
        );
      }
      return "Map(" + v.size + ") {" + (items.length ? " " + items.join(", ") + " " : "") + "}";
    }
    if (v instanceof Set) {
      const items = [];
      for (const val of v) {
        if (items.length >= MAX_ITEMS) break;
        items.push(inspectInner(val, depth + 1, seen, true));
      }
      return "Set(" + v.size + ") {" + (items.length ? " " + items.join(", ") + " " : "") + "}";
    }
    const keys = safe(() => Reflect.ownKeys(v), []);
    const items = [];
    for (const k of keys) {
      if (items.length >= MAX_ITEMS) {
        items.push("...");
        break;
      }
      const desc = safe(() => Object.getOwnPropertyDescriptor(v, k), undefined);
      if (!desc || !desc.enumerable) continue;
      const text = "get" in desc || "set" in desc
        ? "[Getter" + (desc.set ? "/Setter]" : "]")
        : inspectInner(desc.value, depth + 1, seen, true);
      items.push(keyText(k) + ": " + text);
    }
    const ctor = safe(() => Object.getPrototypeOf(v), null);
    const ctorName = ctor === null
      ? "[Object: null prototype] "
      : safe(() => (ctor.constructor && ctor.constructor.name !== "Object"
        ? ctor.constructor.name + " "
        : ""), "");
    return ctorName + (items.length ? "{ " + items.join(", ") + " }" : "{}");
  } finally {
    seen.pop();
  }
}

/** Text for one console argument. */
export function inspect(v) {
  return safe(() => inspectInner(v, 0, [], false), "[uninspectable value]");
}

/** console.log-style formatting with %s %d %i %f %o %O %j %c and %%. */
export function format(args) {
  if (args.length === 0) return "";
  let out = "";
  let rest = 0;
  const first = args[0];
  if (typeof first === "string" && args.length > 1 && first.includes("%")) {
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
        if ("sdifoOjc".includes(f) && next < args.length) {
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
                : String(f === "i" ? Math.trunc(n) : n);
              break;
            }
            case "f":
              out += String(safe(() => parseFloat(a), NaN));
              break;
            case "j":
              out += safe(() => JSON.stringify(a), "[Circular]");
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
