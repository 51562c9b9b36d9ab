// setTimeout / setInterval on deno_core's timer queue. Every live timer is
// tracked so the host can cancel them all when a call settles.
//
// Like all of runtime_js, this file uses only what it captured while the
// snapshot was made (primordials and module-local bindings): user code can
// patch globals and prototypes, but not the host's view of them.
import { core, primordials } from "ext:core/mod.js";

const {
  MapPrototypeClear,
  MapPrototypeDelete,
  MapPrototypeForEach,
  MapPrototypeGet,
  MapPrototypeGetSize,
  MapPrototypeSet,
  ReflectApply,
  SafeMap,
  String,
  StringPrototypeSlice,
  TypeError,
} = primordials;
const { cancelTimer, createTimer } = core;

const live = new SafeMap();
let nextId = 1;

function schedule(callback, delay, args, repeat) {
  if (typeof callback !== "function") {
    const code = String(callback);
    callback = () => {
      throw new TypeError(
        "setTimeout with a string is not supported: " + StringPrototypeSlice(code, 0, 40),
      );
    };
  }
  const id = nextId++;
  // deno_core would spread `args` (an iterator user code can patch): the
  // arguments are applied here instead.
  const run = repeat ? () => ReflectApply(callback, undefined, args) : () => {
    MapPrototypeDelete(live, id);
    ReflectApply(callback, undefined, args);
  };
  const timer = createTimer(run, delay, undefined, repeat, true);
  MapPrototypeSet(live, id, timer);
  return id;
}

function clear(id) {
  const timer = MapPrototypeGet(live, id);
  if (timer === undefined) return;
  MapPrototypeDelete(live, id);
  cancelTimer(timer);
}

export function setTimeout(callback, delay = 0, ...args) {
  return schedule(callback, delay, args, false);
}

export function setInterval(callback, delay = 0, ...args) {
  return schedule(callback, delay, args, true);
}

export function clearTimeout(id = undefined) {
  clear(id);
}

export function clearInterval(id = undefined) {
  clear(id);
}

function cancelOne(timer) {
  cancelTimer(timer);
}

/** Cancels every pending timer: called by the host after a call settles. */
export function cancelAllTimers() {
  // Clearing a map allocates its table anew: most calls leave none.
  if (MapPrototypeGetSize(live) === 0) return;
  MapPrototypeForEach(live, cancelOne);
  MapPrototypeClear(live);
}

/** Cancels every pending timer and numbers the next one 1 again, as in a
 * fresh runtime: called between frozen-mode calls, so an id cannot tell
 * how many timers earlier calls made. */
export function resetTimers() {
  cancelAllTimers();
  nextId = 1;
}
