// Bootstrap: builds the web globals and the restricted Deno namespace and
// hands the host its hooks; `seal` later removes every path to deno_core's
// internals and installs the globals.
import {
  op_isoexec_require,
  op_isoexec_set_hooks,
  op_isoexec_set_python_hooks,
  op_isoexec_write,
} from "ext:core/ops";
import { primordials } from "ext:core/mod.js";
import { createConsole } from "ext:isoexec/01_console.js";
import {
  cancelAllTimers,
  clearInterval,
  clearTimeout,
  setInterval,
  setTimeout,
} from "ext:isoexec/02_timers.js";
import { atob, btoa, TextDecoder, TextEncoder } from "ext:isoexec/03_encoding.js";
import {
  AbortController,
  AbortSignal,
  CustomEvent,
  DOMException,
  Event,
  EventTarget,
} from "ext:isoexec/04_events.js";
import { URL, URLSearchParams } from "ext:isoexec/05_url.js";
import { crypto, performance, structuredClone } from "ext:isoexec/06_web.js";
import { forgetPending, Headers, Request, Response, serveHook } from "ext:isoexec/06_http.js";
import { alert, confirm, createDeno, fetch, prompt } from "ext:isoexec/07_deno.js";
import { hostWorkPending, installBufferGuards } from "ext:isoexec/08_buffers.js";
import { lockdown, resetRealm } from "ext:isoexec/09_lockdown.js";
import { keepWasm, python } from "ext:isoexec/10_python.js";
import { callHook, resultHook } from "ext:isoexec/11_result.js";

const { ObjectDefineProperty, ObjectKeys, ReflectDeleteProperty, SafeArrayIterator } = primordials;

const globals = {
  console: createConsole(),
  setTimeout,
  setInterval,
  clearTimeout,
  clearInterval,
  TextEncoder,
  TextDecoder,
  atob,
  btoa,
  DOMException,
  Event,
  CustomEvent,
  EventTarget,
  AbortController,
  AbortSignal,
  URL,
  URLSearchParams,
  crypto,
  performance,
  structuredClone,
  fetch,
  Headers,
  Request,
  Response,
  prompt,
  confirm,
  alert,
  Deno: createDeno(),
};

// Runs once per runtime, after deno_core has restored it from the snapshot
// and no longer needs `globalThis.Deno.core`.
function seal() {
  // WebAssembly memory lives outside both the heap and the ArrayBuffer
  // budget, so no limit could hold it: WebAssembly is not offered. Only the
  // Python hooks keep it, to load Pyodide with every page charged.
  keepWasm(globalThis.WebAssembly);
  for (const name of new SafeArrayIterator(["Deno", "__bootstrap", "console", "WebAssembly"])) {
    ReflectDeleteProperty(globalThis, name);
  }
  for (const name of new SafeArrayIterator(ObjectKeys(globals))) {
    ObjectDefineProperty(globalThis, name, {
      value: globals[name],
      writable: true,
      enumerable: false,
      configurable: true,
    });
  }
  installBufferGuards(globalThis);
  ObjectDefineProperty(globalThis, "self", {
    value: globalThis,
    writable: true,
    enumerable: false,
    configurable: true,
  });
}

// Runs after every call in a runtime that is kept: cancels what the call
// left pending, and answers whether the runtime is quiet, that is, whether
// nothing the call started can still run JS later.
function settle() {
  cancelAllTimers();
  forgetPending();
  return !hostWorkPending();
}

op_isoexec_set_hooks(
  settle,
  seal,
  lockdown,
  resetRealm,
  serveHook,
  resultHook(settle),
  callHook(settle),
);
op_isoexec_set_python_hooks(python.boot, python.run, python.cell, op_isoexec_require, op_isoexec_write);
