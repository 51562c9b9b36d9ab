// The playground: run a function, lint, run a program as a job, save and
// execute by codeId, and a notebook session, in TypeScript or Python — all
// against this server's own API, nothing else.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const EXAMPLES = window.ISOEXEC_EXAMPLES || {};
  const DEFAULT_CODE = `// Ctrl/Cmd+Enter runs. The function named in "fn" is called with the payload.
export function main(person: { name: string }) {
  console.log("greeting", person.name);
  return { greeting: \`Hello, \${person.name}!\` };
}
`;

  const DEFAULT_PYTHON = `# A program: Program → Run as a job (stdin below), or cells in a Notebook.
import sys

name = sys.stdin.readline().strip() or "Ada"
squares = [n * n for n in range(1, 6)]
print(f"Hello, {name}! Squares: {squares}")
`;

  const editor = window.IsoexecEditor.create($("editor"), DEFAULT_CODE, () => run());

  // ---- the language: TypeScript (every API) or Python (jobs, notebooks) ----
  const languageSelect = $("language");
  const codeOf = { typescript: DEFAULT_CODE, python: DEFAULT_PYTHON };
  let language = "typescript";
  function setLanguage(next) {
    if (next === language) return;
    codeOf[language] = editor.getCode();
    language = next;
    languageSelect.value = next;
    editor.setLanguage(next);
    editor.setCode(codeOf[next]);
    editor.clear();
    for (const e of document.querySelectorAll(".ts-only")) e.hidden = next !== "typescript";
    $("cell").placeholder = next === "python" ? "x = 40; then in the next cell: x + 2" : "let x = 40; then in the next cell: x + 2";
    // A notebook speaks one language: the next cell starts a new one.
    session = null;
    $("nb-session").textContent = "";
    if (next === "python") showTab("program");
  }
  languageSelect.addEventListener("change", () => setLanguage(languageSelect.value));

  // ---- the API key, kept in this browser only ------------------------------
  const keyInput = $("api-key");
  keyInput.value = localStorage.getItem("isoexec.apiKey") || "";
  keyInput.addEventListener("change", () => localStorage.setItem("isoexec.apiKey", keyInput.value));

  async function api(method, path, body) {
    const headers = { "content-type": "application/json" };
    if (keyInput.value) headers.authorization = `Bearer ${keyInput.value}`;
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = null;
    try {
      json = await response.json();
    } catch (_e) {
      json = null;
    }
    return { status: response.status, json };
  }

  // ---- rendering a JSON value, data URIs drawn -----------------------------
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function media(uri) {
    const mime = uri.slice(5, uri.indexOf(";"));
    const box = el("div", { class: "media" });
    if (mime.startsWith("image/")) {
      box.append(el("img", { src: uri, alt: mime, "data-testid": "result-image" }));
    } else if (mime.startsWith("audio/")) {
      box.append(el("audio", { src: uri, controls: "" }));
    } else if (mime.startsWith("video/")) {
      box.append(el("video", { src: uri, controls: "", "max-width": "100%" }));
    } else {
      const ext = (mime.split("/")[1] || "bin").replace(/[^a-z0-9]/gi, "").slice(0, 8);
      box.append(el("a", { href: uri, download: `result.${ext}` }, `Download (${mime})`));
    }
    return box;
  }

  function tree(value) {
    if (value === null) return el("span", { class: "lit" }, "null");
    if (typeof value === "string") {
      if (/^data:[a-z0-9.+-]+\/[a-z0-9.+-]+;base64,/i.test(value)) return media(value);
      return el("span", { class: "str" }, JSON.stringify(value));
    }
    if (typeof value === "number") return el("span", { class: "num" }, String(value));
    if (typeof value === "boolean") return el("span", { class: "lit" }, String(value));
    const list = el("ul", { class: "tree" });
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    if (entries.length === 0) return el("span", { class: "lit" }, Array.isArray(value) ? "[]" : "{}");
    for (const [k, v] of entries) {
      list.append(el("li", {}, el("span", { class: "k" }, `${k}: `), tree(v)));
    }
    return list;
  }

  function showLogs(logs) {
    const list = $("logs");
    list.replaceChildren();
    for (const log of logs || []) {
      const time = new Date(log.ts).toISOString().slice(11, 23);
      list.append(
        el("li", { class: `level-${log.level}` }, el("span", { class: "time" }, time), `[${log.level}] ${log.message}`),
      );
    }
  }

  /** The editor line of an error: a syntax error's, or the top stack frame's. */
  function errorLine(json) {
    const d = json.details || {};
    if (typeof d.line === "number") return { line: d.line, col: Math.max(0, (d.column || 1) - 1) };
    const stack = typeof d.stack === "string" ? d.stack : "";
    const m = stack.match(/file:\/\/\/isoexec\/[0-9a-f]+\.ts:(\d+):(\d+)/);
    return m ? { line: Number(m[1]), col: Number(m[2]) - 1 } : null;
  }

  // ---- run a function ------------------------------------------------------
  async function run() {
    const result = $("result");
    if (language === "python") {
      // Python runs as a program or in a notebook, not as a function call.
      showTab("program");
      return runJob();
    }
    result.dataset.state = "running";
    result.replaceChildren(el("p", { class: "hint" }, "Running…"));
    editor.clear();
    let payload = null;
    try {
      payload = $("payload").value.trim() ? JSON.parse($("payload").value) : null;
    } catch (e) {
      result.dataset.state = "error";
      result.replaceChildren(el("span", { class: "kind" }, "bad_request "), `payload is not JSON: ${e.message}`);
      return;
    }
    const started = performance.now();
    const { status, json } = await api("POST", "/run", {
      script: editor.getCode(),
      fn: $("fn").value,
      payload,
      isolation: $("isolation").value,
      timeout: Number($("timeout").value) || undefined,
    });
    $("duration").textContent = `${status} in ${(performance.now() - started).toFixed(1)} ms`;
    showLogs(json && json.logs);
    if (status === 200 && json && "result" in json) {
      result.dataset.state = "ok";
      result.replaceChildren(tree(json.result));
      return;
    }
    result.dataset.state = "error";
    const kind = (json && json.kind) || `HTTP ${status}`;
    result.replaceChildren(
      el("div", {}, el("span", { class: "kind", "data-testid": "error-kind" }, kind), " ", (json && json.error) || ""),
    );
    if (json && json.details && json.details.stack) {
      result.append(el("pre", { class: "stream stderr" }, json.details.stack));
    }
    const at = json && errorLine(json);
    if (at) editor.mark([{ line: at.line, col: at.col, message: (json && json.error) || kind }]);
  }

  // ---- lint ------------------------------------------------------------------
  async function lint() {
    const codeId = `playground-lint-${Math.random().toString(36).slice(2, 10)}`;
    const list = $("diagnostics");
    list.replaceChildren(el("li", { class: "hint" }, "Linting…"));
    const saved = await api("PUT", "/workspace", { codeId, code: editor.getCode() });
    if (saved.status !== 200) {
      list.replaceChildren(el("li", { class: "level-error" }, (saved.json && saved.json.error && saved.json.error.message) || "save failed"));
      return;
    }
    const { json } = await api("POST", "/lint", { codeId });
    await api("DELETE", `/workspace/${codeId}`);
    const report = (json && json.result) || { diagnostics: [], errors: [] };
    list.replaceChildren();
    const marks = [];
    for (const d of report.diagnostics) {
      const r = d.range;
      list.append(
        el("li", { class: "level-warn", "data-line": r ? r.start.line : "" }, `${r ? `${r.start.line}:${r.start.col + 1}` : "-"} ${d.code}: ${d.message}`),
      );
      if (r) marks.push({ line: r.start.line, col: r.start.col, endLine: r.end.line, endCol: r.end.col, message: `${d.code}: ${d.message}`, severity: "warning" });
    }
    for (const e of report.errors) list.append(el("li", { class: "level-error" }, e.message));
    if (!report.diagnostics.length && !report.errors.length) list.append(el("li", { class: "hint" }, "No problems."));
    editor.mark(marks);
  }

  // ---- save and execute by codeId -------------------------------------------
  async function save() {
    const out = $("program");
    const { status, json } = await api("PUT", "/workspace", { codeId: $("code-id").value, code: editor.getCode() });
    out.dataset.state = status === 200 ? "ok" : "error";
    out.replaceChildren(status === 200 ? `Saved ${json.result.codeId} (${json.result.size} bytes)` : (json && json.error && json.error.message) || `HTTP ${status}`);
  }

  async function execute() {
    const out = $("program");
    out.dataset.state = "running";
    const { status, json } = await api("POST", "/execute", { codeId: $("code-id").value });
    const ok = json && json.success;
    out.dataset.state = ok ? "ok" : "error";
    const details = (json && json.error && json.error.details) || {};
    out.replaceChildren(
      el("div", {}, `exit code ${ok ? 0 : details.exitCode ?? "–"} · ${json && json.executionTime} ms`),
      el("h3", {}, ok ? "result" : "stdout"),
      ok ? tree(json.result) : el("pre", { class: "stream", "data-testid": "stdout" }, details.stdout || ""),
      el("h3", {}, "stderr"),
      el("pre", { class: "stream stderr", "data-testid": "stderr" }, ok ? "" : details.stderr || (json && json.error && json.error.message) || `HTTP ${status}`),
    );
  }

  // ---- a program run as a code job ------------------------------------------
  async function runJob() {
    const out = $("program");
    out.dataset.state = "running";
    out.replaceChildren(el("p", { class: "hint" }, "Running…"));
    const started = performance.now();
    const { status, json } = await api("POST", "/execute/code", {
      lang: language === "python" ? "python" : "ts",
      code: editor.getCode(),
      stdin: $("stdin").value || undefined,
      timeout: Number($("timeout").value) || undefined,
    });
    const took = (performance.now() - started).toFixed(1);
    if (status !== 200 || !json || !json.status) {
      out.dataset.state = "error";
      out.replaceChildren(el("span", { class: "kind" }, (json && json.kind) || `HTTP ${status}`), " ", (json && json.error) || "");
      return;
    }
    out.dataset.state = json.status === "done" && json.exit_code === 0 ? "ok" : "error";
    out.replaceChildren(
      el("div", { "data-testid": "job-status" }, json.status === "done" ? `exit code ${json.exit_code}` : `${json.status}${json.error ? `: ${json.error}` : ""}`, ` · ${took} ms`),
      el("h3", {}, "output"),
      el("pre", { class: "stream", "data-testid": "job-output" }, json.output || ""),
    );
    // A traceback's line in the program is marked in the editor.
    const m = /File "\/workspace\/job\.py", line (\d+)(?![\s\S]*File "\/workspace\/job\.py")/.exec(json.output || "");
    if (m) editor.mark([{ line: Number(m[1]), col: 0, message: (json.output || "").trim().split("\n").pop() }]);
  }

  // ---- a notebook session ---------------------------------------------------
  let session = null;
  async function startNotebook() {
    const { status, json } = await api("POST", "/api/v1/sessions", { environment: language, mode: "notebook" });
    if (status !== 200) {
      $("nb-session").textContent = (json && json.detail) || `HTTP ${status}`;
      return null;
    }
    session = json.session_id;
    $("nb-session").textContent = `session ${session}`;
    $("cells").replaceChildren();
    return session;
  }

  async function runCell() {
    if (!session && !(await startNotebook())) return;
    const code = $("cell").value;
    const item = el("li", { "data-state": "running" }, el("pre", {}, code));
    $("cells").append(item);
    const { json } = await api("POST", `/api/v1/sessions/${session}/execute`, { code });
    // A cell that threw completed with exit code 1: shown as an error.
    const ok = json && json.status === "completed" && json.exit_code === 0;
    item.dataset.state = ok ? "ok" : "error";
    if (json && json.stdout) item.append(el("pre", { class: "stream" }, json.stdout));
    if (json && json.stderr) item.append(el("pre", { class: "stream stderr" }, json.stderr));
    const value = el("div", { "data-testid": "cell-result" });
    value.append(ok ? tree(json.result) : el("span", { class: "kind" }, (json && json.status === "completed" ? `exit code ${json.exit_code}` : json && (json.status || json.detail)) || "error"));
    item.append(value);
    $("cell").value = "";
  }

  // ---- a tenant's deployed function -------------------------------------------
  const fnPath = () => `/tenants/${encodeURIComponent($("fn-tenant").value.trim())}/functions/${encodeURIComponent($("fn-name").value.trim())}`;

  function showFunctionError(status, json) {
    const out = $("function");
    out.dataset.state = "error";
    out.replaceChildren(
      el("div", {}, el("span", { class: "kind", "data-testid": "function-error" }, (json && json.kind) || `HTTP ${status}`), " ", (json && json.error) || ""),
    );
  }

  async function listVersions() {
    const list = $("fn-versions");
    const { status, json } = await api("GET", `${fnPath()}/versions`);
    list.replaceChildren();
    if (status !== 200 || !json) return;
    for (const v of json.versions) {
      const item = el(
        "li",
        { "data-version": v.version },
        `v${v.version}${v.version === json.head ? " (head)" : ""} · ${v.sha256.slice(0, 12)} · ${new Date(v.createdAt).toISOString().slice(0, 19).replace("T", " ")} `,
      );
      if (v.version !== json.head) {
        const back = el("button", { type: "button", "data-testid": `rollback-${v.version}` }, "Roll back");
        back.addEventListener("click", async () => {
          const r = await api("POST", `${fnPath()}/rollback`, { version: v.version });
          if (r.status !== 200) showFunctionError(r.status, r.json);
          else $("function").replaceChildren(el("div", { "data-testid": "function-status" }, `head is v${r.json.version}`));
          listVersions();
        });
        item.append(back);
      }
      list.append(item);
    }
  }

  async function deployFunction() {
    const out = $("function");
    out.dataset.state = "running";
    out.replaceChildren(el("p", { class: "hint" }, "Checking and deploying…"));
    const { status, json } = await api("PUT", fnPath(), { code: editor.getCode(), isolation: $("fn-isolation").value });
    if (status !== 200 && status !== 201) {
      showFunctionError(status, json);
      const at = json && errorLine(json);
      if (at) editor.mark([{ line: at.line, col: at.col, message: json.error }]);
      return;
    }
    out.dataset.state = "ok";
    out.replaceChildren(
      el("div", { "data-testid": "function-status" }, `${json.created ? "deployed" : "unchanged"}: v${json.version} · ${json.isolation}`),
      el("div", {}, `exports: ${json.exports.join(", ") || "–"} · fetch handler: ${json.fetch ? "yes" : "no"}`),
    );
    listVersions();
  }

  async function invokeFunction() {
    const out = $("function");
    let payload = null;
    try {
      payload = $("fn-payload").value.trim() ? JSON.parse($("fn-payload").value) : null;
    } catch (e) {
      return showFunctionError(400, { kind: "bad_request", error: `payload is not JSON: ${e.message}` });
    }
    out.dataset.state = "running";
    const started = performance.now();
    const { status, json } = await api("POST", `${fnPath()}/invoke`, { fn: $("fn-export").value, payload });
    const took = (performance.now() - started).toFixed(1);
    if (status !== 200) return showFunctionError(status, json);
    out.dataset.state = "ok";
    const logs = (json.logs || []).map((l) => `[${l.level}] ${l.message}`).join("\n");
    out.replaceChildren(
      el("div", { class: "hint" }, `200 in ${took} ms`),
      el("div", { "data-testid": "function-result" }, tree(json.result)),
      el("pre", { class: "stream", "data-testid": "function-logs" }, logs),
    );
  }

  async function sendRequest() {
    const out = $("function");
    const method = $("fn-method").value;
    const path = $("fn-path").value.startsWith("/") ? $("fn-path").value : `/${$("fn-path").value}`;
    const headers = {};
    if (keyInput.value) headers.authorization = `Bearer ${keyInput.value}`;
    out.dataset.state = "running";
    const url = `/t/${encodeURIComponent($("fn-tenant").value.trim())}/${encodeURIComponent($("fn-name").value.trim())}${path === "/" ? "" : path}`;
    const response = await fetch(url, {
      method,
      headers,
      body: method === "GET" ? undefined : $("fn-payload").value,
    });
    const text = await response.text();
    out.dataset.state = response.ok ? "ok" : "error";
    const shown = [...response.headers].filter(([k]) => !k.startsWith("x-") && !["date", "connection", "content-length", "content-security-policy"].includes(k));
    out.replaceChildren(
      el("div", { "data-testid": "function-status" }, `${response.status} ${response.statusText}`),
      el("pre", { class: "stream" }, shown.map(([k, v]) => `${k}: ${v}`).join("\n")),
      el("pre", { class: "stream", "data-testid": "function-body" }, text),
    );
  }

  // ---- examples, sharing -----------------------------------------------------
  const select = $("examples");
  select.append(el("option", { value: "" }, "—"));
  for (const name of Object.keys(EXAMPLES)) select.append(el("option", { value: name }, name));
  select.addEventListener("change", () => {
    const ex = EXAMPLES[select.value];
    if (!ex) return;
    editor.setCode(ex.script);
    $("fn").value = ex.fn;
    $("payload").value = ex.payload;
  });

  function encode(state) {
    const bytes = new TextEncoder().encode(JSON.stringify(state));
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decode(text) {
    const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  }

  $("share").addEventListener("click", async () => {
    const state = { script: editor.getCode(), fn: $("fn").value, payload: $("payload").value, isolation: $("isolation").value, language };
    location.hash = `code=${encode(state)}`;
    try {
      await navigator.clipboard.writeText(location.href);
      $("share").textContent = "Link copied";
    } catch (_e) {
      $("share").textContent = "Link in the address bar";
    }
    setTimeout(() => ($("share").textContent = "Share"), 2000);
  });

  function restore() {
    const m = location.hash.match(/code=([A-Za-z0-9_-]+)/);
    if (!m) return;
    try {
      const state = decode(m[1]);
      setLanguage(state.language === "python" ? "python" : "typescript");
      editor.setCode(state.script || "");
      if (state.fn) $("fn").value = state.fn;
      if (typeof state.payload === "string") $("payload").value = state.payload;
      if (state.isolation) $("isolation").value = state.isolation;
    } catch (_e) {
      // A broken link leaves the default code.
    }
  }

  // ---- tabs and buttons ------------------------------------------------------
  function showTab(name) {
    for (const t of document.querySelectorAll(".tabs button")) t.classList.toggle("active", t.dataset.tab === name);
    for (const p of document.querySelectorAll(".tab")) p.hidden = p.dataset.panel !== name;
    // The function call's own controls (fn, isolation, payload, Run) only
    // with the Call tab: the others have their own.
    for (const c of document.querySelectorAll(".call-only")) c.hidden = name !== "call";
  }
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  $("job-run").addEventListener("click", runJob);
  $("run").addEventListener("click", run);
  $("lint").addEventListener("click", lint);
  $("save").addEventListener("click", save);
  $("execute").addEventListener("click", execute);
  $("nb-start").addEventListener("click", startNotebook);
  $("cell-run").addEventListener("click", runCell);
  $("fn-deploy").addEventListener("click", deployFunction);
  $("fn-invoke").addEventListener("click", invokeFunction);
  $("fn-send").addEventListener("click", sendRequest);
  $("cell").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      runCell();
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !e.target.closest("#cell") && !e.target.closest("#editor")) {
      e.preventDefault();
      run();
    }
  });
  restore();
  window.addEventListener("hashchange", restore);
})();
