// crypto, performance and structuredClone.
import {
  op_isoexec_now,
  op_isoexec_random_fill,
  op_isoexec_time_origin,
} from "ext:core/ops";
import { core, primordials } from "ext:core/mod.js";
import { DOMException } from "ext:isoexec/04_events.js";

const {
  ArrayFrom,
  ArrayPrototypeSome,
  NumberPrototypeToString,
  ObjectFreeze,
  ObjectPrototypeIsPrototypeOf,
  String,
  StringPrototypeSlice,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  Uint8Array,
} = primordials;
const coreStructuredClone = core.structuredClone;

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
  if (!ArrayPrototypeSome(INTEGER_ARRAYS, (T) => ObjectPrototypeIsPrototypeOf(T.prototype, array))) {
    throw new DOMException(
      "getRandomValues: the argument must be an integer typed array",
      "TypeMismatchError",
    );
  }
  const byteLength = TypedArrayPrototypeGetByteLength(array);
  if (byteLength > 65536) {
    throw new DOMException(
      "getRandomValues: the array is " + byteLength + " bytes, more than 65536",
      "QuotaExceededError",
    );
  }
  op_isoexec_random_fill(
    new Uint8Array(
      TypedArrayPrototypeGetBuffer(array),
      TypedArrayPrototypeGetByteOffset(array),
      byteLength,
    ),
  );
  return array;
}

function randomUUID() {
  const b = new Uint8Array(16);
  op_isoexec_random_fill(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  let hex = "";
  for (let i = 0; i < 16; i++) {
    hex += StringPrototypeSlice(NumberPrototypeToString(b[i] + 0x100, 16), 1);
  }
  const part = (from, to) => StringPrototypeSlice(hex, from, to);
  return part(0, 8) + "-" + part(8, 12) + "-" + part(12, 16) + "-" + part(16, 20) + "-" +
    part(20, 32);
}

export const crypto = ObjectFreeze({ getRandomValues, randomUUID });

// Both are relative to the start of the current call.
export const performance = ObjectFreeze({
  now: () => op_isoexec_now(),
  get timeOrigin() {
    return op_isoexec_time_origin();
  },
  toJSON: () => ({ timeOrigin: op_isoexec_time_origin() }),
});

export function structuredClone(value, options = undefined) {
  const transfer = options !== undefined && options !== null ? options.transfer : undefined;
  if (transfer !== undefined && ArrayFrom(transfer).length > 0) {
    throw new DOMException("structuredClone: transfer is not supported", "DataCloneError");
  }
  try {
    return coreStructuredClone(value);
  } catch (e) {
    throw new DOMException(String(e && e.message ? e.message : e), "DataCloneError");
  }
}
