// DOMException, Event, EventTarget, AbortController and AbortSignal.

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
    return DOM_CODES[this.#name] || 0;
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
  #timeStamp = Date.now();
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
    this.#detail = init && "detail" in init ? init.detail : null;
  }
  get detail() {
    return this.#detail;
  }
}

export class EventTarget {
  #listeners = new Map();
  addEventListener(type, listener, options = undefined) {
    if (listener === null || listener === undefined) return;
    const once = typeof options === "object" && options !== null && Boolean(options.once);
    const signal = typeof options === "object" && options !== null ? options.signal : undefined;
    if (signal && signal.aborted) return;
    const key = String(type);
    let list = this.#listeners.get(key);
    if (!list) {
      list = [];
      this.#listeners.set(key, list);
    }
    if (list.some((l) => l.listener === listener)) return;
    list.push({ listener, once });
    if (signal) {
      signal.addEventListener("abort", () => this.removeEventListener(key, listener));
    }
  }
  removeEventListener(type, listener) {
    const list = this.#listeners.get(String(type));
    if (!list) return;
    const i = list.findIndex((l) => l.listener === listener);
    if (i >= 0) list.splice(i, 1);
  }
  dispatchEvent(event) {
    if (!(event instanceof Event)) {
      throw new TypeError("dispatchEvent: argument must be an Event");
    }
    const state = Event._dispatchState(event);
    state.set(this);
    const list = (this.#listeners.get(event.type) || []).slice();
    const handler = this["on" + event.type];
    try {
      if (typeof handler === "function") handler.call(this, event);
      for (const entry of list) {
        if (state.stopped()) break;
        if (entry.once) this.removeEventListener(event.type, entry.listener);
        const l = entry.listener;
        if (typeof l === "function") l.call(this, event);
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
    globalThis.setTimeout(
      () => s._abort(new DOMException("The signal timed out", "TimeoutError")),
      ms,
    );
    return s;
  }
  static any(signals) {
    const s = new AbortSignal(ABORT_KEY);
    for (const other of signals) {
      if (other.aborted) {
        s._abort(other.reason);
        return s;
      }
    }
    for (const other of signals) {
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
