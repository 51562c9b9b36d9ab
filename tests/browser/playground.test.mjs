// The playground in a real browser: Debian's Chromium driven by
// playwright-core, against the real server binary on a free port. Each test
// does what a person does, and checks that no request leaves the page and
// no page error happens.
//
//   cargo build && (cd tests/browser && npm ci) && node --test tests/browser/
//
// ISOEXEC_BIN (default target/debug/isoexec) and CHROMIUM (default
// /usr/bin/chromium) say what to run.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.ISOEXEC_BIN || join(root, "target", "debug", "isoexec");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

let server;
let base;
let browser;
let scratch;

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), "isoexec-browser-"));
  server = spawn(bin, [], {
    env: {
      ...process.env,
      PORT: "0",
      POOL_SIZE: "2",
      LOG_LEVEL: "warn",
      API_KEY: "browser-key",
      WORKSPACE_DIR: join(scratch, "ws"),
      DATA_DIR: join(scratch, "data"),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  base = await new Promise((resolve, reject) => {
    let text = "";
    server.stdout.on("data", (chunk) => {
      text += chunk;
      const m = text.match(/isoexec listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    server.on("exit", (code) => reject(new Error(`the server exited with ${code}`)));
  });
  browser = await chromium.launch({
    executablePath,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGKILL");
  rmSync(scratch, { recursive: true, force: true });
});

/** A page on the playground that records every request and page error. */
async function open(path = "/playground", options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  const page = await context.newPage();
  const requests = [];
  const errors = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + path);
  await page.getByTestId("api-key").fill("browser-key");
  await page.getByTestId("api-key").dispatchEvent("change");
  const done = async () => {
    const outside = requests.filter((u) => !u.startsWith(base) && !u.startsWith("data:"));
    assert.deepEqual(outside, [], "a request left the page");
    assert.deepEqual(errors, [], "the page threw");
    await context.close();
  };
  return { page, done };
}

/** Replaces the editor's text as a person would: select all, type. */
async function typeCode(page, code) {
  const content = page.getByTestId("editor").locator(".cm-content");
  await content.click();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(code);
}

async function resultState(page) {
  const result = page.getByTestId("result");
  await page.waitForFunction(
    () => document.querySelector('[data-testid="result"]').dataset.state !== "running",
  );
  return result.getAttribute("data-state");
}

test("a function typed in the editor runs and its result and logs show", async () => {
  const { page, done } = await open();
  await typeCode(page, "export function add(p: { a: number; b: number }) {\n  console.log('adding', p.a, p.b);\n  return { sum: p.a + p.b };\n}");
  await page.getByTestId("fn").fill("add");
  await page.getByTestId("payload").fill('{"a": 2, "b": 40}');
  await page.getByTestId("run").click();
  assert.equal(await resultState(page), "ok");
  assert.match(await page.getByTestId("result").innerText(), /sum: 42/);
  assert.match(await page.getByTestId("logs").innerText(), /\[log\] adding 2 40/);
  // Ctrl/Cmd+Enter in the editor runs too.
  await page.getByTestId("payload").fill('{"a": 1, "b": 1}');
  await page.getByTestId("editor").locator(".cm-content").click();
  await page.keyboard.press("ControlOrMeta+Enter");
  await page.waitForFunction(() => document.querySelector('[data-testid="result"]').innerText.includes("sum: 2"));
  await done();
});

test("returned image bytes are drawn as a picture", async () => {
  const { page, done } = await open();
  await page.getByTestId("examples").selectOption("image.ts");
  await page.getByTestId("run").click();
  assert.equal(await resultState(page), "ok");
  const img = page.getByTestId("result-image");
  await img.waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid="result-image"]').complete);
  // The example's chart: five bars, 220 px wide, drawn where it can be seen.
  const width = await img.evaluate((i) => i.naturalWidth);
  assert.equal(width, 220, "the SVG chart was decoded");
  const shown = await img.boundingBox();
  assert.ok(shown && shown.width >= 100, `drawn ${JSON.stringify(shown)}`);
  assert.match(await img.getAttribute("src"), /^data:image\/svg\+xml;base64,/);
  await done();
});

test("a loop shows timeout, and a syntax error marks its line", async () => {
  const { page, done } = await open();
  await typeCode(page, "export function main() {\n  while (true) {}\n}");
  await page.getByTestId("timeout").fill("200");
  const timeouts = async () => {
    const text = await (await fetch(`${base}/metrics`, { headers: { authorization: "Bearer browser-key" } })).text();
    const line = text.split("\n").find((l) => l.startsWith("isoexec_executions_total{") && l.includes('api="run"') && l.includes('outcome="timeout"'));
    return line ? Number(line.split(" ").pop()) : 0;
  };
  const before = await timeouts();
  await page.getByTestId("run").click();
  assert.equal(await resultState(page), "error");
  assert.equal(await page.getByTestId("error-kind").innerText(), "timeout");
  // Run once: a browser resends a request answered 408 on a connection it
  // reused, so the server gives each browser request a connection of its own.
  assert.equal(await timeouts(), before + 1, "the timed-out call ran more than once");
  await typeCode(page, "export function main() {\n  return 1;\n}\nconst = ;");
  await page.getByTestId("run").click();
  assert.equal(await resultState(page), "error");
  assert.equal(await page.getByTestId("error-kind").innerText(), "syntax_error");
  // The line is marked in the editor.
  await page.locator(".cm-lintRange-error").first().waitFor();
  await done();
});

test("lint marks a line and lists the diagnostic", async () => {
  const { page, done } = await open();
  await typeCode(page, "export function main() {\n  const unused = 1;\n  return 2;\n}");
  await page.getByTestId("lint").click();
  const item = page.getByTestId("diagnostics").locator("li[data-line]").first();
  await item.waitFor();
  assert.equal(await item.getAttribute("data-line"), "2");
  assert.match(await item.innerText(), /no-unused-vars/);
  await page.locator(".cm-lintRange-warning").first().waitFor();
  await done();
});

test("saved code executes by codeId with its stdout and exit code", async () => {
  const { page, done } = await open();
  await typeCode(page, "console.log('to stdout');\nconsole.error('to stderr');\nDeno.exit(3);");
  await page.getByRole("tab", { name: "Program" }).click();
  await page.getByTestId("code-id").fill("browser-prog");
  await page.getByTestId("save").click();
  await page.waitForFunction(() => document.querySelector('[data-testid="program"]').innerText.includes("Saved browser-prog"));
  await page.getByTestId("execute").click();
  await page.getByTestId("stdout").waitFor();
  assert.match(await page.getByTestId("program").innerText(), /exit code 3/);
  assert.equal((await page.getByTestId("stdout").innerText()).trim(), "to stdout");
  assert.match(await page.getByTestId("stderr").innerText(), /to stderr/);
  await done();
});

test("a notebook's second cell sees the first", async () => {
  const { page, done } = await open();
  // The call's own controls stay with the Call tab.
  assert.ok(await page.getByTestId("fn").isVisible());
  await page.getByRole("tab", { name: "Notebook" }).click();
  assert.ok(!(await page.getByTestId("fn").isVisible()), "the call's fn stays in view");
  assert.ok(!(await page.getByTestId("run").isVisible()));
  assert.ok(!(await page.getByTestId("payload").isVisible()));
  await page.getByTestId("cell").fill("const base: number = 40;");
  await page.getByTestId("cell-run").click();
  await page.getByTestId("cell-result").first().waitFor();
  await page.getByTestId("cell").fill("base + 2");
  await page.getByTestId("cell-run").click();
  await page.getByTestId("cell-result").nth(1).waitFor();
  assert.equal((await page.getByTestId("cell-result").nth(1).innerText()).trim(), "42");
  // A cell that throws completed with exit code 1: shown as an error.
  await page.getByTestId("cell").fill("throw new Error('no')");
  await page.getByTestId("cell-run").click();
  await page.getByTestId("cell-result").nth(2).waitFor();
  assert.equal((await page.getByTestId("cell-result").nth(2).innerText()).trim(), "exit code 1");
  const state = await page.locator("#cells > li").nth(2).getAttribute("data-state");
  assert.equal(state, "error");
  await done();
});

test("a share link carries the code and restores it", async () => {
  const first = await open();
  await typeCode(first.page, "export const shared = () => 'from a link';");
  await first.page.getByTestId("fn").fill("shared");
  await first.page.getByTestId("share").click();
  await first.page.waitForFunction(() => location.hash.startsWith("#code="));
  const link = new URL(first.page.url());
  await first.done();
  const second = await open(link.pathname + link.hash);
  const code = await second.page.getByTestId("editor").locator(".cm-content").innerText();
  assert.match(code, /from a link/);
  assert.equal(await second.page.getByTestId("fn").inputValue(), "shared");
  await second.page.getByTestId("run").click();
  assert.equal(await resultState(second.page), "ok");
  assert.match(await second.page.getByTestId("result").innerText(), /from a link/);
  await second.done();
});

test("GET / is the page for a browser, in a narrow window and dark mode too", async () => {
  const { page, done } = await open("/", { viewport: { width: 420, height: 800 }, colorScheme: "dark" });
  await page.getByTestId("run").waitFor();
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(bg, "rgb(255, 255, 255)");
  await page.screenshot({ path: join(scratch, "narrow-dark.png") });
  await done();
});

test("Python runs as a job with stdin, marks a traceback's line, and keeps a notebook's state", async () => {
  const { page, done } = await open();
  await page.getByTestId("language").selectOption("python");
  // Python has no function calls: the Call tab and its controls step aside.
  assert.ok(!(await page.getByRole("tab", { name: "Call" }).isVisible()));
  assert.ok(!(await page.getByTestId("fn").isVisible()));
  await typeCode(page, "import sys\nname = sys.stdin.readline().strip()\nprint(f'hi {name}')");
  await page.getByTestId("stdin").fill("Grace\n");
  await page.getByTestId("job-run").click();
  await page.getByTestId("job-output").waitFor();
  assert.equal((await page.getByTestId("job-output").innerText()).trim(), "hi Grace");
  assert.match(await page.getByTestId("job-status").innerText(), /exit code 0/);
  await typeCode(page, "x = 1\ny = 0\nprint(x / y)");
  await page.getByTestId("job-run").click();
  await page.waitForFunction(() => document.querySelector('[data-testid="job-output"]')?.innerText.includes("ZeroDivisionError"));
  assert.match(await page.getByTestId("job-status").innerText(), /exit code 1/);
  await page.locator(".cm-lintRange-error").first().waitFor();
  await page.getByRole("tab", { name: "Notebook" }).click();
  await page.getByTestId("cell").fill("xs = [1, 2, 3]");
  await page.getByTestId("cell-run").click();
  await page.getByTestId("cell-result").first().waitFor();
  await page.getByTestId("cell").fill("sum(xs) * 7");
  await page.getByTestId("cell-run").click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="cell-result"]').length === 2 && !document.querySelector('#cells li[data-state="running"]'));
  assert.equal((await page.getByTestId("cell-result").nth(1).innerText()).trim(), "42");
  await done();
});

test("a tenant's function deploys, answers by name and by HTTP, and rolls back", async () => {
  // The operator makes the tenant and its key; the page uses the key.
  const operator = { "content-type": "application/json", authorization: "Bearer browser-key" };
  let r = await fetch(`${base}/tenants`, { method: "POST", headers: operator, body: JSON.stringify({ id: "web" }) });
  assert.equal(r.status, 201);
  r = await fetch(`${base}/tenants/web/keys`, { method: "POST", headers: operator, body: "{}" });
  const { key } = await r.json();
  const { page, done } = await open();
  await page.getByTestId("api-key").fill(key);
  await page.getByTestId("api-key").dispatchEvent("change");
  await page.getByTestId("function-tab").click();
  await page.getByTestId("fn-tenant").fill("web");
  await page.getByTestId("fn-name").fill("hello");
  const code = (v) =>
    `export function main(p: { name: string }) { console.log("v${v}"); return { greeting: "v${v} " + p.name }; }\n` +
    `export default { fetch: (req: Request) => new Response("route v${v} " + new URL(req.url).pathname, { headers: { "x-v": "${v}" } }) };`;
  const status = () => page.getByTestId("function-status").innerText();
  await typeCode(page, code(1));
  await page.getByTestId("fn-deploy").click();
  await page.waitForFunction(() => document.querySelector('[data-testid="function"]').dataset.state !== "running");
  assert.match(await status(), /deployed: v1/);
  await page.getByTestId("fn-invoke").click();
  await page.getByTestId("function-result").waitFor();
  assert.match(await page.getByTestId("function-result").innerText(), /greeting: "v1 Ada"/);
  assert.match(await page.getByTestId("function-logs").innerText(), /\[log\] v1/);
  await page.getByTestId("fn-path").fill("/a/b");
  await page.getByTestId("fn-send").click();
  await page.getByTestId("function-body").waitFor();
  assert.equal(await page.getByTestId("function-body").innerText(), "route v1 /a/b");
  assert.match(await status(), /^200/);

  await typeCode(page, code(2));
  await page.getByTestId("fn-deploy").click();
  await page.waitForFunction(() => /deployed: v2/.test(document.querySelector('[data-testid="function"]').innerText));
  await page.getByTestId("rollback-1").waitFor();
  assert.match(await page.getByTestId("fn-versions").innerText(), /v2 \(head\)/);
  await page.getByTestId("rollback-1").click();
  await page.waitForFunction(() => /head is v1/.test(document.querySelector('[data-testid="function"]').innerText));
  await page.getByTestId("fn-invoke").click();
  await page.waitForFunction(() => /v1 Ada/.test(document.querySelector('[data-testid="function"]').innerText));

  // A syntax error is refused at deploy and marked in the editor.
  await typeCode(page, "export function main( {");
  await page.getByTestId("fn-deploy").click();
  await page.getByTestId("function-error").waitFor();
  assert.equal(await page.getByTestId("function-error").innerText(), "syntax_error");
  await done();
});
