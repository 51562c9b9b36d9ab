// Resizable ArrayBuffers and growable SharedArrayBuffers take their memory
// from V8's own page allocator, not from the counting ArrayBuffer allocator
// that enforces MEMORY_LIMIT_MB, so no limit could hold them: their
// constructors refuse `maxByteLength`. Fixed-size buffers are unchanged.
import { core, primordials } from "ext:core/mod.js";
import { op_isoexec_charge, op_isoexec_release } from "ext:core/ops";

const {
  ArrayBuffer: OriginalArrayBuffer,
  FinalizationRegistry,
  FinalizationRegistryPrototypeRegister,
  ObjectPrototypeIsPrototypeOf,
  FunctionPrototype,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ObjectSetPrototypeOf,
  RangeError,
  ReflectConstruct,
  ReflectOwnKeys,
  SafeArrayIterator,
  Number,
  NumberIsFinite,
  PromisePrototypeThen,
  ReflectApply,
  TypeError,
} = primordials;
const { cancelTimer, createTimer } = core;
// Not among deno_core's primordials, and V8 may add them to a context only
// once it is restored: captured by `installBufferGuards`, before user code.
let Atomics;
let OriginalWaitAsync;
/** Extra time the event loop stays alive past a waitAsync timeout. */
const WAIT_SLACK_MS = 50;

function refuseGrowth(name, options) {
  if (options === undefined || options === null || typeof options !== "object") return;
  // Read once, as the constructor would; the original never sees `options`.
  if (options.maxByteLength !== undefined) {
    throw new RangeError(
      name + " with maxByteLength (resizable memory) is not supported: its memory " +
        "cannot be counted against the memory limit",
    );
  }
}

function guard(name, Original) {
  const Guarded = {
    [name]: function (length, options = undefined) {
      if (new.target === undefined) {
        throw new TypeError("Constructor " + name + " requires 'new'");
      }
      refuseGrowth(name, options);
      return ReflectConstruct(Original, [length], new.target === Guarded ? Original : new.target);
    },
  }[name];
  return standIn(Guarded, Original);
}

/**
 * Makes the constructor `Wrapper` stand in for the built-in `Original`: the
 * same static properties (`length`, `Symbol.species`, `isView`,
 * `supportedLocalesOf`, ...), the same `prototype`, and that prototype's
 * `constructor` pointing at `Wrapper`. Its own `name` is kept.
 */
function standIn(Wrapper, Original) {
  ObjectSetPrototypeOf(Wrapper, FunctionPrototype);
  for (const key of new SafeArrayIterator(ReflectOwnKeys(Original))) {
    if (key === "name" || key === "prototype") continue;
    ObjectDefineProperty(Wrapper, key, ObjectGetOwnPropertyDescriptor(Original, key));
  }
  ObjectDefineProperty(Wrapper, "prototype", {
    value: Original.prototype,
    writable: false,
    enumerable: false,
    configurable: false,
  });
  ObjectDefineProperty(Original.prototype, "constructor", {
    value: Wrapper,
    writable: true,
    enumerable: false,
    configurable: true,
  });
  return Wrapper;
}

/** The constructor that replaces the global of the same name. */
export const ArrayBuffer = guard("ArrayBuffer", OriginalArrayBuffer);

/** `Atomics.waitAsync` promises that have not settled yet. */
let pendingWaits = 0;

function settled() {
  pendingWaits--;
}

/**
 * `Atomics.waitAsync`: V8 resolves a wait from a task of its own that
 * deno_core's event loop does not count as pending work, so the loop would
 * end first and report a promise that can never settle. A timer keeps the
 * loop alive until a timed wait settles, and every wait still pending when
 * a call ends is counted, so the host retires the runtime instead of
 * letting the wait's callbacks run inside a later call.
 *
 * `timeout` is converted here, once, and V8 is given the number: a value
 * converted twice could answer differently each time.
 */
export function waitAsync(typedArray, index, value, timeout = undefined) {
  const ms = timeout === undefined ? undefined : Number(timeout);
  const result = ReflectApply(OriginalWaitAsync, Atomics, [typedArray, index, value, ms]);
  if (result.async === true) {
    pendingWaits++;
    PromisePrototypeThen(result.value, settled, settled);
    if (NumberIsFinite(ms)) {
      const timer = createTimer(() => {}, (ms < 0 ? 0 : ms) + WAIT_SLACK_MS, undefined, false, true);
      const done = () => cancelTimer(timer);
      PromisePrototypeThen(result.value, done, done);
    }
  }
  return result;
}

/**
 * Whether work V8 runs on its own (outside deno_core's event loop) may
 * still run JS in this runtime: a pending `Atomics.waitAsync`.
 */
export function hostWorkPending() {
  return pendingWaits !== 0;
}

/**
 * Bytes charged for each `Intl` object: ICU keeps a formatter's, collator's
 * or segmenter's state outside the V8 heap (measured at 20-30 KiB each),
 * where neither the heap limit nor the ArrayBuffer budget sees it, so each
 * object is charged to the budget while it lives.
 */
const INTL_OBJECT_BYTES = 32 * 1024;

/** The `Intl` constructors whose objects hold ICU state. */
const INTL_KINDS = [
  "Collator",
  "DateTimeFormat",
  "DisplayNames",
  "DurationFormat",
  "ListFormat",
  "NumberFormat",
  "PluralRules",
  "RelativeTimeFormat",
  "Segmenter",
];

/** Gives the charge of a collected `Intl` object back (made lazily). */
let intlReleases;

function charged(object) {
  if (!op_isoexec_charge(INTL_OBJECT_BYTES)) {
    // The isolate is already being stopped (memory_limit).
    throw new RangeError("memory limit exceeded by Intl objects");
  }
  if (intlReleases === undefined) {
    intlReleases = new FinalizationRegistry(op_isoexec_release);
  }
  FinalizationRegistryPrototypeRegister(intlReleases, object, INTL_OBJECT_BYTES);
  return object;
}

/** `Original` wrapped so that every object it makes is charged. */
function countIntl(name, Original) {
  const Counted = {
    [name]: function (...args) {
      if (new.target === undefined) {
        // Legacy call without `new` (DateTimeFormat, NumberFormat,
        // Collator): the result is a new object unless `this` is one.
        const made = ReflectApply(Original, this, args);
        return ObjectPrototypeIsPrototypeOf(Original.prototype, made) && made !== this
          ? charged(made)
          : made;
      }
      return charged(
        ReflectConstruct(Original, args, new.target === Counted ? Original : new.target),
      );
    },
  }[name];
  return standIn(Counted, Original);
}

/** Replaces the `Intl` constructors of `target` with counting ones. */
function installIntlGuards(target) {
  const Intl = target.Intl;
  if (Intl === undefined) return;
  for (const name of new SafeArrayIterator(INTL_KINDS)) {
    const Original = Intl[name];
    if (typeof Original !== "function") continue;
    ObjectDefineProperty(Intl, name, {
      value: countIntl(name, Original),
      writable: true,
      enumerable: false,
      configurable: true,
    });
  }
}

/**
 * Installs the guarded constructors and `Atomics.waitAsync` on `target`, a
 * freshly restored global object that user code has not seen yet.
 */
export function installBufferGuards(target) {
  const shared = target.SharedArrayBuffer;
  const guarded = [["ArrayBuffer", ArrayBuffer]];
  if (typeof shared === "function") {
    guarded[1] = ["SharedArrayBuffer", guard("SharedArrayBuffer", shared)];
  }
  for (const pair of new SafeArrayIterator(guarded)) {
    ObjectDefineProperty(target, pair[0], {
      value: pair[1],
      writable: true,
      enumerable: false,
      configurable: true,
    });
  }
  installIntlGuards(target);
  Atomics = target.Atomics;
  OriginalWaitAsync = Atomics?.waitAsync;
  if (Atomics !== undefined && typeof OriginalWaitAsync === "function") {
    ObjectDefineProperty(Atomics, "waitAsync", {
      value: waitAsync,
      writable: true,
      enumerable: false,
      configurable: true,
    });
  }
}
