// setTimeout / setInterval on deno_core's timer queue. Every live timer is
// tracked so the host can cancel them all when a call settles.
import { core } from "ext:core/mod.js";

const live = new Map();
let nextId = 1;

function schedule(callback, delay, args, repeat) {
  if (typeof callback !== "function") {
    const code = String(callback);
    callback = () => {
      throw new TypeError("setTimeout with a string is not supported: " + code.slice(0, 40));
    };
  }
  const id = nextId++;
  const run = repeat ? callback : (...a) => {
    live.delete(id);
    callback(...a);
  };
  const timer = core.createTimer(run, delay, args, repeat, true);
  live.set(id, timer);
  return id;
}

function clear(id) {
  const timer = live.get(id);
  if (timer === undefined) return;
  live.delete(id);
  core.cancelTimer(timer);
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

/** Cancels every pending timer: called by the host after a call settles. */
export function cancelAllTimers() {
  for (const timer of live.values()) core.cancelTimer(timer);
  live.clear();
}
