// Frozen mode: one runtime serves many calls, and no call can observe
// another. `lockdown` runs once per runtime, after `seal`: it freezes every
// object reachable from the global object (built-ins, their prototypes, the
// hidden intrinsics such as the generator prototypes, and the host's own
// globals), records the global object's own properties, and guards
// FinalizationRegistry callbacks. `resetRealm` runs after each call: it puts
// the global object back as recorded and resets the host's per-call JS state.
// Module state is fresh because the host loads every call's modules anew.
//
// Like all of runtime_js, only captured builtins are used here.
import { primordials } from "ext:core/mod.js";
import { resetConsole } from "ext:isoexec/01_console.js";
import { resetTimers } from "ext:isoexec/02_timers.js";
import { resetStdin } from "ext:isoexec/07_deno.js";

const {
  ArrayPrototype,
  ArrayPrototypePush,
  ErrorPrototype,
  FunctionPrototype,
  FinalizationRegistry: RealFinalizationRegistry,
  FinalizationRegistryPrototypeRegister,
  FinalizationRegistryPrototypeUnregister,
  MapPrototypeGet,
  MapPrototypeSet,
  ObjectDefineProperty,
  ObjectFreeze,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  ObjectIs,
  ObjectIsExtensible,
  ObjectKeys,
  ObjectPreventExtensions,
  ObjectPrototype,
  ObjectPrototypeHasOwnProperty,
  ObjectPrototypeIsPrototypeOf,
  ObjectSetPrototypeOf,
  ReflectApply,
  ReflectDeleteProperty,
  ReflectGetPrototypeOf,
  ReflectOwnKeys,
  RegExpPrototypeExec,
  SafeMap,
  SafeRegExp,
  SafeWeakSet,
  String,
  SymbolIterator,
  SymbolToStringTag,
  TypeError,
  WeakSetPrototypeAdd,
  WeakSetPrototypeHas,
} = primordials;

/** Bumped by every reset: callbacks of an earlier call compare it. */
let generation = 0;

/** The global object's own properties as lockdown left them: their keys
 * in order, their descriptors in the same order, and both by key. */
const baseline = new SafeMap();
let baselineKeys = [];
let baselineDescs = [];
let baselineProto = null;
/** Its enumerable own keys (`Object.keys`), in order. */
let baselineEnumerable = [];

/** Resets the legacy `RegExp.$1`..., `RegExp.input` of the last match. */
const EMPTY = new SafeRegExp("(?:)");

/**
 * Data properties that code commonly assigns on its own objects although a
 * built-in prototype has them (`this.name = "MyError"`, `obj.toString = ...`).
 * On a frozen prototype such an assignment would throw (the "override
 * mistake"); these become accessors whose setter defines the property on
 * the object assigned to instead.
 */
const OVERRIDABLE = [
  "constructor",
  "name",
  "message",
  "toString",
  "valueOf",
  "toLocaleString",
  "toJSON",
  "hasOwnProperty",
  "isPrototypeOf",
  "propertyIsEnumerable",
];

/**
 * Whether `object` gets its `OVERRIDABLE` properties tamed: the prototypes
 * user objects and errors inherit from. The prototypes of arrays, promises
 * and regexps keep plain frozen data properties, so V8's fast paths for
 * them (which check that `constructor` and `then` are untouched) stay on.
 */
function overridable(object) {
  return object === ObjectPrototype || object === FunctionPrototype ||
    object === ErrorPrototype || ObjectPrototypeIsPrototypeOf(ErrorPrototype, object);
}

/**
 * Replaces the data property `key` of `object` with an accessor (see
 * `OVERRIDABLE`) and returns its new descriptor, so that the caller freezes
 * the getter and setter too: they are objects every later call can reach
 * through `Object.getOwnPropertyDescriptor`. Methods have no `prototype`
 * object of their own to freeze.
 */
function tame(object, key, desc) {
  const value = desc.value;
  const { get, set } = {
    get() {
      return value;
    },
    set(v) {
      if (this === object) {
        throw new TypeError(
          "Cannot assign to read only property '" + String(key) +
            "': built-ins are frozen in \"frozen\" isolation",
        );
      }
      if (ObjectPrototypeHasOwnProperty(this, key)) {
        // An own accessor or read-only property of `this`: plain assignment.
        this[key] = v;
        return;
      }
      ObjectDefineProperty(this, key, {
        __proto__: null,
        value: v,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    },
  };
  const tamed = {
    __proto__: null,
    get,
    set,
    enumerable: desc.enumerable,
    configurable: false,
  };
  ObjectDefineProperty(object, key, tamed);
  return tamed;
}

/**
 * Freezes `object`. `Object.freeze` on `Object.prototype` or
 * `Array.prototype` changes the kind of their (empty) elements, and V8 then
 * turns off, for the isolate's life, its check that no prototype of an array
 * has elements: every array with holes (`new Array(n)` filled by index, what
 * `sort` works on) falls to a slow path: a sort of 10,000 numbers took a
 * fifth longer. Making each own property non-configurable (and read-only
 * when it holds a value), then the object non-extensible, is the same
 * freeze as far as any code can tell (`Object.isFrozen` holds; nothing can
 * be added, changed or deleted) and leaves the elements as they were; a
 * later `Object.freeze` of the frozen object changes nothing either.
 */
function freeze(object) {
  if (object !== ObjectPrototype && object !== ArrayPrototype) {
    ObjectFreeze(object);
    return;
  }
  const keys = ReflectOwnKeys(object);
  for (let i = 0; i < keys.length; i++) {
    const desc = ObjectGetOwnPropertyDescriptor(object, keys[i]);
    const fixed = { __proto__: null, configurable: false };
    if (ObjectPrototypeHasOwnProperty(desc, "value")) fixed.writable = false;
    ObjectDefineProperty(object, keys[i], fixed);
  }
  ObjectPreventExtensions(object);
}

/** Values whose prototypes are intrinsics no global property leads to. */
function hiddenIntrinsics() {
  const seeds = [
    function* () {},
    async function () {},
    async function* () {},
    async () => {},
    [][SymbolIterator](),
    new primordials.Map()[SymbolIterator](),
    new primordials.Set()[SymbolIterator](),
    ""[SymbolIterator](),
    new primordials.RegExp("a")[primordials.SymbolMatchAll](""),
    (function* () {})(),
    (async function* () {})(),
  ];
  const G = primordials.globalThis;
  try {
    ArrayPrototypePush(seeds, G.Iterator.from({ next() {} }));
    ArrayPrototypePush(seeds, [][SymbolIterator]().map((x) => x));
  } catch {
    // Iterator helpers are not in every V8.
  }
  try {
    const segments = new G.Intl.Segmenter().segment("a");
    ArrayPrototypePush(seeds, segments, segments[SymbolIterator]());
  } catch {
    // Intl without segmenter.
  }
  return seeds;
}

/**
 * `Error.captureStackTrace` that refuses the global object. On any other
 * object it records the stack as V8's does (the frames from its caller
 * on). On the global object V8 would keep the stack in a slot of its own,
 * which no reset can see or clear and which every error's `stack` getter
 * and setter read and write for any receiver: a later call could read
 * this one's stack, or any value written there. The global object is the
 * one object a frozen call can reach that lives on and is extensible, and
 * V8 refuses objects that are not.
 */
function captureStackTrace(G) {
  const capture = primordials.ErrorCaptureStackTrace;
  const { captureStackTrace } = {
    captureStackTrace(object, constructorOpt) {
      if (object === G) {
        throw new TypeError(
          "Error.captureStackTrace cannot record a stack on the global object " +
            "in \"frozen\" isolation: it outlives the call",
        );
      }
      return ReflectApply(capture, undefined, [
        object,
        constructorOpt === undefined ? captureStackTrace : constructorOpt,
      ]);
    },
  };
  return captureStackTrace;
}

/** FinalizationRegistry whose callbacks run only in the call that made it. */
class FinalizationRegistry {
  #inner;
  constructor(cleanup) {
    if (new.target === undefined) {
      throw new TypeError("Constructor FinalizationRegistry requires 'new'");
    }
    if (typeof cleanup !== "function") {
      throw new TypeError("FinalizationRegistry: cleanup must be callable");
    }
    const born = generation;
    this.#inner = new RealFinalizationRegistry((held) => {
      if (generation === born) cleanup(held);
    });
  }
  register(target, held, token = undefined) {
    return FinalizationRegistryPrototypeRegister(this.#inner, target, held, token);
  }
  unregister(token) {
    return FinalizationRegistryPrototypeUnregister(this.#inner, token);
  }
}
ObjectDefineProperty(FinalizationRegistry.prototype, SymbolToStringTag, {
  __proto__: null,
  value: "FinalizationRegistry",
  configurable: true,
});

/**
 * Freezes what the global object leads to and records the global itself.
 * True when every object could be frozen; false leaves the runtime unfit
 * for frozen mode.
 */
export function lockdown() {
  const G = primordials.globalThis;
  ObjectDefineProperty(G, "FinalizationRegistry", {
    __proto__: null,
    value: FinalizationRegistry,
    writable: true,
    enumerable: false,
    configurable: true,
  });
  ObjectDefineProperty(primordials.Error, "captureStackTrace", {
    __proto__: null,
    value: captureStackTrace(G),
    writable: true,
    enumerable: false,
    configurable: true,
  });
  const seen = new SafeWeakSet();
  WeakSetPrototypeAdd(seen, G);
  const stack = [];
  const visit = (v) => {
    if ((typeof v === "object" && v !== null) || typeof v === "function") {
      if (!WeakSetPrototypeHas(seen, v)) {
        WeakSetPrototypeAdd(seen, v);
        ArrayPrototypePush(stack, v);
      }
    }
  };
  const globalKeys = ReflectOwnKeys(G);
  for (let i = 0; i < globalKeys.length; i++) {
    const desc = ObjectGetOwnPropertyDescriptor(G, globalKeys[i]);
    visit(desc.value);
    visit(desc.get);
    visit(desc.set);
  }
  visit(ReflectGetPrototypeOf(G));
  const seeds = hiddenIntrinsics();
  for (let i = 0; i < seeds.length; i++) visit(ReflectGetPrototypeOf(seeds[i]));
  while (stack.length > 0) {
    const object = stack[stack.length - 1];
    stack.length -= 1;
    visit(ReflectGetPrototypeOf(object));
    const keys = ReflectOwnKeys(object);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      let desc = ObjectGetOwnPropertyDescriptor(object, key);
      if (desc === undefined) continue;
      if (typeof key === "string" && desc.writable === true && overridable(object)) {
        for (let j = 0; j < OVERRIDABLE.length; j++) {
          if (OVERRIDABLE[j] === key) {
            // The value is still visited: the accessor returns it.
            visit(desc.value);
            desc = tame(object, key, desc);
            break;
          }
        }
      }
      visit(desc.value);
      visit(desc.get);
      visit(desc.set);
    }
    try {
      freeze(object);
    } catch {
      return false;
    }
  }
  // deno_core's `queueMicrotask` hides V8's own under the same name, two
  // entries in the global object, until its first call finds V8's by
  // deleting itself and then assigns itself over it: one entry. Called
  // here, so that no call can tell from the number of `delete`s it takes
  // whether an earlier call used it, and every global is there once.
  G.queueMicrotask(() => {});
  baselineKeys = ReflectOwnKeys(G);
  for (let i = 0; i < baselineKeys.length; i++) {
    const key = baselineKeys[i];
    const desc = ObjectGetOwnPropertyDescriptor(G, key);
    MapPrototypeSet(baseline, key, desc);
    ArrayPrototypePush(baselineDescs, desc);
  }
  baselineProto = ObjectGetPrototypeOf(G);
  baselineEnumerable = ObjectKeys(G);
  return true;
}

/** How many of `keys`' first entries are `baseline`'s, in the same order. */
function commonStart(keys, baseline) {
  let n = 0;
  while (n < keys.length && n < baseline.length && keys[n] === baseline[n]) n++;
  return n;
}

/** Whether `keys` are `baseline`'s, in the same order. */
function sameKeys(keys, baseline) {
  return keys.length === baseline.length && commonStart(keys, baseline) === keys.length;
}

/** Whether two descriptors are the same; values compare as `Object.is`
 * does, so that `NaN` is its own (with `===` the global `NaN` was defined
 * anew after every call). */
function same(a, b) {
  return ObjectIs(a.value, b.value) && a.get === b.get && a.set === b.set &&
    a.writable === b.writable && a.enumerable === b.enumerable &&
    a.configurable === b.configurable;
}

/**
 * Puts the global object back as lockdown recorded it and resets the host's
 * per-call state. False when that was impossible (a property made
 * non-configurable, the global made non-extensible): the runtime must then
 * not serve another call.
 */
export function resetRealm(written) {
  generation++;
  resetTimers();
  resetConsole();
  resetStdin();
  RegExpPrototypeExec(EMPTY, "");
  const G = primordials.globalThis;
  if (!ObjectIsExtensible(G)) return false;
  if (ObjectGetPrototypeOf(G) !== baselineProto) {
    try {
      ObjectSetPrototypeOf(G, baselineProto);
    } catch {
      return false;
    }
  }
  // The host notes every set, definition and deletion of a global property
  // (engine/js/ext/global_writes.rs) but a `var` an indirect `eval`
  // declares anew, which is enumerable: with none noted and the enumerable
  // keys as they were, every property is as lockdown left it.
  if (written !== true && sameKeys(ObjectKeys(G), baselineEnumerable)) return true;
  const keys = ReflectOwnKeys(G);
  // Most calls add and delete no global: the same keys in the same order
  // need no look-up each.
  const unchanged = sameKeys(keys, baselineKeys);
  for (let i = 0; !unchanged && i < keys.length; i++) {
    const key = keys[i];
    if (MapPrototypeGet(baseline, key) === undefined && !ReflectDeleteProperty(G, key)) {
      return false;
    }
  }
  for (let i = 0; i < baselineKeys.length; i++) {
    const key = baselineKeys[i];
    const want = baselineDescs[i];
    const now = ObjectGetOwnPropertyDescriptor(G, key);
    if (now !== undefined && same(now, want)) continue;
    try {
      ObjectDefineProperty(G, key, want);
    } catch {
      return false;
    }
  }
  return unchanged || reorder(G);
}

/**
 * Puts the global object's keys back in lockdown's order. A global deleted
 * and defined again comes last, and the order alone would tell a later
 * call what this one did. The keys from the first one out of place on are
 * deleted and defined again in order; false when one of them cannot be
 * deleted (`undefined`, `NaN` and `Infinity` cannot) or is still there
 * after it was (a name twice in the global object, which no definition
 * can make again).
 */
function reorder(G) {
  const first = commonStart(ReflectOwnKeys(G), baselineKeys);
  if (first === baselineKeys.length) return true;
  for (let i = first; i < baselineKeys.length; i++) {
    const key = baselineKeys[i];
    if (!ReflectDeleteProperty(G, key) || ObjectPrototypeHasOwnProperty(G, key)) return false;
  }
  for (let i = first; i < baselineKeys.length; i++) {
    try {
      ObjectDefineProperty(G, baselineKeys[i], baselineDescs[i]);
    } catch {
      return false;
    }
  }
  return true;
}
