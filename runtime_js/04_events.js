// DOMException, Event, EventTarget, AbortController and AbortSignal.
// Uses only builtins captured at snapshot time (see 02_timers.js).
import { primordials } from "ext:core/mod.js";
import { setTimeout } from "ext:isoexec/02_timers.js";

const {
  ArrayPrototypeFindIndex,
  ArrayPrototypePush,
  ArrayPrototypeSlice,
  ArrayPrototypeSome,
  ArrayPrototypeSplice,
  Boolean,
  DateNow,
  Error,
  FunctionPrototypeCall,
  MapPrototypeGet,
  MapPrototypeSet,
  ObjectHasOwn,
  ObjectPrototypeIsPrototypeOf,
  SafeArrayIterator,
  SafeMap,
  String,
  Symbol,
  TypeError,
} = primordials;

const DOM_CODES = {
  IndexSizeError: 1,
  HierarchyRequestError: 3,
  InvalidCharacterError: 5,
  NotSupportedError: 9,
  InvalidStateError: 11,
  SyntaxError: 12,
  NetworkError: 19,
  AbortError: 20,
  TimeoutError: 23,
  DataCloneError: 25,
  QuotaExceededError: 22,
};

export class DOMException extends Error {
  #name;
  constructor(message = "", name = "Error") {
    super(String(message));
    this.#name = String(name);
  }
  get name() {
    return this.#name;
  }
  get code() {
    return ObjectHasOwn(DOM_CODES, this.#name) ? DOM_CODES[this.#name] : 0;
  }
}

export class Event {
  #type;
  #bubbles;
  #cancelable;
  #defaultPrevented = false;
  #stopped = false;
  #target = null;
  #currentTarget = null;
  #timeStamp = DateNow();
  constructor(type, init = {}) {
    if (arguments.length === 0) throw new TypeError("Event: type is required");
    this.#type = String(type);
    this.#bubbles = Boolean(init && init.bubbles);
    this.#cancelable = Boolean(init && init.cancelable);
  }
  get type() {
    return this.#type;
  }
  get bubbles() {
    return this.#bubbles;
  }
  get cancelable() {
    return this.#cancelable;
  }
  get defaultPrevented() {
    return this.#defaultPrevented;
  }
  get target() {
    return this.#target;
  }
  get currentTarget() {
    return this.#currentTarget;
  }
  get timeStamp() {
    return this.#timeStamp;
  }
  preventDefault() {
    if (this.#cancelable) this.#defaultPrevented = true;
  }
  stopPropagation() {}
  stopImmediatePropagation() {
    this.#stopped = true;
  }
  static _dispatchState(event) {
    return {
      set: (target) => {
        event.#target = target;
        event.#currentTarget = target;
      },
      clearCurrent: () => {
        event.#currentTarget = null;
      },
      stopped: () => event.#stopped,
    };
  }
}

export class CustomEvent extends Event {
  #detail;
  constructor(type, init = {}) {
    super(type, init);
    this.#detail = init && init.detail !== undefined ? init.detail : null;
  }
  get detail() {
    return this.#detail;
  }
}

export class EventTarget {
  #listeners = new SafeMap();
  addEventListener(type, listener, options = undefined) {
    if (listener === null || listener === undefined) return;
    const once = typeof options === "object" && options !== null && Boolean(options.once);
    const signal = typeof options === "object" && options !== null ? options.signal : undefined;
    if (signal && signal.aborted) return;
    const key = String(type);
    let list = MapPrototypeGet(this.#listeners, key);
    if (!list) {
      list = [];
      MapPrototypeSet(this.#listeners, key, list);
    }
    if (ArrayPrototypeSome(list, (l) => l.listener === listener)) return;
    ArrayPrototypePush(list, { __proto__: null, listener, once });
    if (signal) {
      signal.addEventListener("abort", () => this.removeEventListener(key, listener));
    }
  }
  removeEventListener(type, listener) {
    const list = MapPrototypeGet(this.#listeners, String(type));
    if (!list) return;
    const i = ArrayPrototypeFindIndex(list, (l) => l.listener === listener);
    if (i >= 0) ArrayPrototypeSplice(list, i, 1);
  }
  dispatchEvent(event) {
    if (!ObjectPrototypeIsPrototypeOf(Event.prototype, event)) {
      throw new TypeError("dispatchEvent: argument must be an Event");
    }
    const state = Event._dispatchState(event);
    state.set(this);
    // Read once: a subclass's getter could answer differently each time.
    const type = event.type;
    const list = ArrayPrototypeSlice(MapPrototypeGet(this.#listeners, type) || []);
    const handler = this["on" + type];
    try {
      if (typeof handler === "function") FunctionPrototypeCall(handler, this, event);
      for (const entry of new SafeArrayIterator(list)) {
        if (state.stopped()) break;
        if (entry.once) this.removeEventListener(type, entry.listener);
        const l = entry.listener;
        if (typeof l === "function") FunctionPrototypeCall(l, this, event);
        else if (l && typeof l.handleEvent === "function") l.handleEvent(event);
      }
    } finally {
      state.clearCurrent();
    }
    return !event.defaultPrevented;
  }
}

export class AbortSignal extends EventTarget {
  #aborted = false;
  #reason = undefined;
  onabort = null;
  constructor(key) {
    super();
    if (key !== ABORT_KEY) throw new TypeError("Illegal constructor");
  }
  get aborted() {
    return this.#aborted;
  }
  get reason() {
    return this.#reason;
  }
  throwIfAborted() {
    if (this.#aborted) throw this.#reason;
  }
  _abort(reason) {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason === undefined
      ? new DOMException("The signal has been aborted", "AbortError")
      : reason;
    this.dispatchEvent(new Event("abort"));
  }
  static abort(reason = undefined) {
    const s = new AbortSignal(ABORT_KEY);
    s._abort(reason);
    return s;
  }
  static timeout(ms) {
    const s = new AbortSignal(ABORT_KEY);
    setTimeout(
      () => s._abort(new DOMException("The signal timed out", "TimeoutError")),
      ms,
    );
    return s;
  }
  static any(signals) {
    const s = new AbortSignal(ABORT_KEY);
    const all = [];
    for (const other of signals) ArrayPrototypePush(all, other);
    for (const other of new SafeArrayIterator(all)) {
      if (other.aborted) {
        s._abort(other.reason);
        return s;
      }
    }
    for (const other of new SafeArrayIterator(all)) {
      other.addEventListener("abort", () => s._abort(other.reason), { once: true });
    }
    return s;
  }
}

const ABORT_KEY = Symbol("abort-signal");

export class AbortController {
  #signal = new AbortSignal(ABORT_KEY);
  get signal() {
    return this.#signal;
  }
  abort(reason = undefined) {
    this.#signal._abort(reason);
  }
}
