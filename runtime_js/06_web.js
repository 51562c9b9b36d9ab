// crypto, performance and structuredClone.
import {
  op_isoexec_now,
  op_isoexec_random_fill,
  op_isoexec_time_origin,
} from "ext:core/ops";
import { core } from "ext:core/mod.js";
import { DOMException } from "ext:isoexec/04_events.js";

const INTEGER_ARRAYS = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  BigInt64Array,
  BigUint64Array,
];

function getRandomValues(array) {
  if (!INTEGER_ARRAYS.some((T) => array instanceof T)) {
    throw new DOMException(
      "getRandomValues: the argument must be an integer typed array",
      "TypeMismatchError",
    );
  }
  if (array.byteLength > 65536) {
    throw new DOMException(
      "getRandomValues: the array is " + array.byteLength + " bytes, more than 65536",
      "QuotaExceededError",
    );
  }
  op_isoexec_random_fill(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
  return array;
}

function randomUUID() {
  const b = new Uint8Array(16);
  op_isoexec_random_fill(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  let hex = "";
  for (let i = 0; i < 16; i++) hex += (b[i] + 0x100).toString(16).slice(1);
  return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
    hex.slice(16, 20) + "-" + hex.slice(20);
}

export const crypto = Object.freeze({ getRandomValues, randomUUID });

// Both are relative to the start of the current call.
export const performance = Object.freeze({
  now: () => op_isoexec_now(),
  get timeOrigin() {
    return op_isoexec_time_origin();
  },
  toJSON: () => ({ timeOrigin: op_isoexec_time_origin() }),
});

export function structuredClone(value, options = undefined) {
  if (options !== undefined && options !== null && options.transfer !== undefined &&
    Array.from(options.transfer).length > 0) {
    throw new DOMException("structuredClone: transfer is not supported", "DataCloneError");
  }
  try {
    return core.structuredClone(value);
  } catch (e) {
    throw new DOMException(String(e && e.message ? e.message : e), "DataCloneError");
  }
}
