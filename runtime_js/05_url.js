// URL and URLSearchParams. Parsing and setters are the WHATWG algorithms of
// the Rust `url` crate (op_isoexec_url_parse / op_isoexec_url_set).
// Uses only builtins captured at snapshot time (see 02_timers.js).
import { op_isoexec_url_parse, op_isoexec_url_set } from "ext:core/ops";
import { primordials } from "ext:core/mod.js";

const {
  ArrayFrom,
  ArrayPrototypeFilter,
  ArrayPrototypeFind,
  ArrayPrototypeFindIndex,
  ArrayPrototypeJoin,
  ArrayPrototypeMap,
  ArrayPrototypePush,
  ArrayPrototypeSome,
  ArrayPrototypeSort,
  FunctionPrototypeCall,
  NumberPrototypeToString,
  ObjectKeys,
  RegExpPrototypeSymbolReplace,
  SafeArrayIterator,
  SafeRegExp,
  String,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeSlice,
  StringPrototypeSplit,
  StringPrototypeStartsWith,
  StringPrototypeToUpperCase,
  SymbolIterator,
  TypeError,
  decodeURIComponent,
  encodeURIComponent,
} = primordials;

const SPACE_ENCODED = new SafeRegExp("%20", "g");
const FORM_RESERVED = new SafeRegExp("[!'()~]", "g");
const PLUS = new SafeRegExp("\\+", "g");
const PERCENT_RUNS = new SafeRegExp("(%[0-9A-Fa-f]{2})+", "g");

// Order of the parts array returned by the ops (see src/js/ops.rs).
const HREF = 0;
const ORIGIN = 1;
const PROTOCOL = 2;
const USERNAME = 3;
const PASSWORD = 4;
const HOST = 5;
const HOSTNAME = 6;
const PORT = 7;
const PATHNAME = 8;
const SEARCH = 9;
const HASH = 10;

// Setter numbers understood by op_isoexec_url_set.
const SET = {
  href: 0,
  protocol: 1,
  username: 2,
  password: 3,
  host: 4,
  hostname: 5,
  port: 6,
  pathname: 7,
  search: 8,
  hash: 9,
};

function formEncode(s) {
  const spaced = RegExpPrototypeSymbolReplace(SPACE_ENCODED, encodeURIComponent(s), "+");
  return RegExpPrototypeSymbolReplace(
    FORM_RESERVED,
    spaced,
    (c) => "%" + StringPrototypeToUpperCase(NumberPrototypeToString(StringPrototypeCharCodeAt(c, 0), 16)),
  );
}

function formDecode(s) {
  const text = RegExpPrototypeSymbolReplace(PLUS, s, " ");
  try {
    return decodeURIComponent(text);
  } catch (_e) {
    return RegExpPrototypeSymbolReplace(PERCENT_RUNS, text, (m) => {
      try {
        return decodeURIComponent(m);
      } catch (_e2) {
        return m;
      }
    });
  }
}

export class URLSearchParams {
  #list = [];
  #url = null;

  constructor(init = undefined) {
    if (init === undefined || init === null) return;
    if (typeof init === "object" || typeof init === "function") {
      if (typeof init[SymbolIterator] === "function") {
        for (const pair of init) {
          const p = ArrayFrom(pair);
          if (p.length !== 2) {
            throw new TypeError("URLSearchParams: each pair must have exactly two items");
          }
          ArrayPrototypePush(this.#list, [String(p[0]), String(p[1])]);
        }
      } else {
        for (const key of new SafeArrayIterator(ObjectKeys(init))) {
          ArrayPrototypePush(this.#list, [key, String(init[key])]);
        }
      }
      return;
    }
    this.#parse(String(init));
  }

  #parse(text) {
    this.#list = [];
    const s = StringPrototypeStartsWith(text, "?") ? StringPrototypeSlice(text, 1) : text;
    for (const part of new SafeArrayIterator(StringPrototypeSplit(s, "&"))) {
      if (part === "") continue;
      const eq = StringPrototypeIndexOf(part, "=");
      const name = eq >= 0 ? StringPrototypeSlice(part, 0, eq) : part;
      const value = eq >= 0 ? StringPrototypeSlice(part, eq + 1) : "";
      ArrayPrototypePush(this.#list, [formDecode(name), formDecode(value)]);
    }
  }

  #update() {
    if (this.#url) this.#url._setSearchFromParams(this.toString());
  }

  static _attach(params, url) {
    params.#url = url;
  }

  static _reparse(params, search) {
    params.#parse(search);
  }

  get size() {
    return this.#list.length;
  }
  append(name, value) {
    ArrayPrototypePush(this.#list, [String(name), String(value)]);
    this.#update();
  }
  delete(name, value = undefined) {
    const n = String(name);
    const v = value === undefined ? undefined : String(value);
    this.#list = ArrayPrototypeFilter(
      this.#list,
      (e) => !(e[0] === n && (v === undefined || e[1] === v)),
    );
    this.#update();
  }
  get(name) {
    const n = String(name);
    const e = ArrayPrototypeFind(this.#list, (e) => e[0] === n);
    return e ? e[1] : null;
  }
  getAll(name) {
    const n = String(name);
    return ArrayPrototypeMap(ArrayPrototypeFilter(this.#list, (e) => e[0] === n), (e) => e[1]);
  }
  has(name, value = undefined) {
    const n = String(name);
    const v = value === undefined ? undefined : String(value);
    return ArrayPrototypeSome(
      this.#list,
      (e) => e[0] === n && (v === undefined || e[1] === v),
    );
  }
  set(name, value) {
    const n = String(name);
    const v = String(value);
    const i = ArrayPrototypeFindIndex(this.#list, (e) => e[0] === n);
    if (i < 0) {
      ArrayPrototypePush(this.#list, [n, v]);
    } else {
      this.#list[i][1] = v;
      this.#list = ArrayPrototypeFilter(this.#list, (e, j) => j <= i || e[0] !== n);
    }
    this.#update();
  }
  sort() {
    ArrayPrototypeSort(this.#list, (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.#update();
  }
  forEach(callback, thisArg = undefined) {
    for (const e of new SafeArrayIterator(this.#list)) {
      FunctionPrototypeCall(callback, thisArg, e[1], e[0], this);
    }
  }
  *entries() {
    for (const e of new SafeArrayIterator(this.#list)) yield [e[0], e[1]];
  }
  *keys() {
    for (const e of new SafeArrayIterator(this.#list)) yield e[0];
  }
  *values() {
    for (const e of new SafeArrayIterator(this.#list)) yield e[1];
  }
  [SymbolIterator]() {
    return this.entries();
  }
  toString() {
    return ArrayPrototypeJoin(
      ArrayPrototypeMap(this.#list, (e) => formEncode(e[0]) + "=" + formEncode(e[1])),
      "&",
    );
  }
}

export class URL {
  #parts;
  #params = null;

  constructor(url, base = undefined) {
    const href = String(url);
    const from = base === undefined ? null : String(base);
    const parts = op_isoexec_url_parse(href, from);
    if (parts === null) {
      throw new TypeError("Invalid URL: '" + href + "'" + (from === null ? "" : " with base '" + from + "'"));
    }
    this.#parts = parts;
  }

  static canParse(url, base = undefined) {
    return op_isoexec_url_parse(String(url), base === undefined ? null : String(base)) !== null;
  }

  static parse(url, base = undefined) {
    try {
      return new URL(url, base);
    } catch (_e) {
      return null;
    }
  }

  #set(which, value) {
    const text = String(value);
    const parts = op_isoexec_url_set(this.#parts[HREF], which, text);
    if (parts === null) {
      if (which === SET.href) throw new TypeError("Invalid URL: '" + text + "'");
      return;
    }
    this.#parts = parts;
    if (this.#params && which !== SET.hash) {
      URLSearchParams._reparse(this.#params, this.#parts[SEARCH]);
    }
  }

  _setSearchFromParams(query) {
    const parts = op_isoexec_url_set(this.#parts[HREF], SET.search, query);
    if (parts !== null) this.#parts = parts;
  }

  get href() {
    return this.#parts[HREF];
  }
  set href(v) {
    this.#set(SET.href, v);
  }
  get origin() {
    return this.#parts[ORIGIN];
  }
  get protocol() {
    return this.#parts[PROTOCOL];
  }
  set protocol(v) {
    this.#set(SET.protocol, v);
  }
  get username() {
    return this.#parts[USERNAME];
  }
  set username(v) {
    this.#set(SET.username, v);
  }
  get password() {
    return this.#parts[PASSWORD];
  }
  set password(v) {
    this.#set(SET.password, v);
  }
  get host() {
    return this.#parts[HOST];
  }
  set host(v) {
    this.#set(SET.host, v);
  }
  get hostname() {
    return this.#parts[HOSTNAME];
  }
  set hostname(v) {
    this.#set(SET.hostname, v);
  }
  get port() {
    return this.#parts[PORT];
  }
  set port(v) {
    this.#set(SET.port, v);
  }
  get pathname() {
    return this.#parts[PATHNAME];
  }
  set pathname(v) {
    this.#set(SET.pathname, v);
  }
  get search() {
    return this.#parts[SEARCH];
  }
  set search(v) {
    this.#set(SET.search, v);
  }
  get hash() {
    return this.#parts[HASH];
  }
  set hash(v) {
    this.#set(SET.hash, v);
  }
  get searchParams() {
    if (this.#params === null) {
      this.#params = new URLSearchParams(this.#parts[SEARCH]);
      URLSearchParams._attach(this.#params, this);
    }
    return this.#params;
  }
  toString() {
    return this.#parts[HREF];
  }
  toJSON() {
    return this.#parts[HREF];
  }
}
