// The restricted Deno namespace: what user code may ask of the host. Every
// capability goes through an op that checks the call's permissions.
import {
  op_isoexec_deny,
  op_isoexec_env_get,
  op_isoexec_env_object,
  op_isoexec_exit,
} from "ext:core/ops";

export class PermissionDenied extends Error {
  constructor(message) {
    super(message);
    this.name = "PermissionDenied";
  }
}

export class NotFound extends Error {
  constructor(message) {
    super(message);
    this.name = "NotFound";
  }
}

/** Records the refusal on the host side, then throws. */
export function deny(what) {
  throw new PermissionDenied(op_isoexec_deny(String(what)));
}

const env = Object.freeze({
  get(key) {
    const value = op_isoexec_env_get(String(key));
    return value === null ? undefined : value;
  },
  has(key) {
    return op_isoexec_env_get(String(key)) !== null;
  },
  toObject() {
    return op_isoexec_env_object();
  },
  set(key) {
    deny("env write access to '" + String(key) + "'");
  },
  delete(key) {
    deny("env write access to '" + String(key) + "'");
  },
});

function exit(code = 0) {
  const n = Number(code);
  op_isoexec_exit(Number.isInteger(n) ? n : 1);
  // Termination is already requested: this line only runs if V8 has not yet
  // noticed it, and then it unwinds the caller.
  throw new Error("exit");
}

export function createDeno() {
  return Object.freeze({
    args: Object.freeze([]),
    env,
    exit,
    pid: 0,
    version: Object.freeze({ isoexec: "1" }),
    errors: Object.freeze({ PermissionDenied, NotFound }),
    readTextFile: (path) => Promise.reject(denial("read access to '" + String(path) + "'")),
    readFile: (path) => Promise.reject(denial("read access to '" + String(path) + "'")),
    readTextFileSync: (path) => deny("read access to '" + String(path) + "'"),
    readFileSync: (path) => deny("read access to '" + String(path) + "'"),
    writeTextFile: (path) => Promise.reject(denial("write access to '" + String(path) + "'")),
    writeFile: (path) => Promise.reject(denial("write access to '" + String(path) + "'")),
    writeTextFileSync: (path) => deny("write access to '" + String(path) + "'"),
    writeFileSync: (path) => deny("write access to '" + String(path) + "'"),
    run: () => deny("run access (subprocesses)"),
    Command: function Command() {
      deny("run access (subprocesses)");
    },
  });
}

function denial(what) {
  try {
    deny(what);
  } catch (e) {
    return e;
  }
}

export function fetch(input) {
  let target;
  try {
    target = String(input instanceof Object && "url" in input ? input.url : input);
  } catch (_e) {
    target = "(unknown)";
  }
  return Promise.reject(denial("net access to '" + target + "'"));
}
