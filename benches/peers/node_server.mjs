// Node 24 servers: isolated-vm with one warm context, isolated-vm with a new
// context per call, or node:vm with a new context per call (argv[2]).
import http from "node:http";
import vm from "node:vm";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const SRC = readFileSync(new URL("./functions.js", import.meta.url), "utf8");
const mode = process.argv[2];
let call;
if (mode === "ivm-warm" || mode === "ivm-context") {
  const ivm = createRequire(import.meta.url)("isolated-vm");
  const isolate = new ivm.Isolate({ memoryLimit: 128 });
  const script = isolate.compileScriptSync(SRC);
  const options = { arguments: { copy: true }, result: { copy: true }, timeout: 5000 };
  if (mode === "ivm-warm") {
    const context = isolate.createContextSync();
    script.runSync(context);
    const fns = {
      trivial: context.global.getSync("trivial", { reference: true }),
      sort: context.global.getSync("sort", { reference: true }),
    };
    call = (fn, payload) => fns[fn].applySync(undefined, [payload], options);
  } else {
    call = (fn, payload) => {
      const context = isolate.createContextSync();
      try {
        script.runSync(context);
        return context.global.getSync(fn, { reference: true }).applySync(undefined, [payload], options);
      } finally {
        context.release();
      }
    };
  }
} else if (mode === "node-vm") {
  const script = new vm.Script(SRC);
  call = (fn, payload) => {
    const context = vm.createContext({});
    script.runInContext(context);
    return JSON.parse(JSON.stringify(context[fn](payload)));
  };
} else {
  throw new Error(`unknown mode ${mode}`);
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const { fn, payload } = JSON.parse(Buffer.concat(chunks).toString());
      const out = JSON.stringify({ result: call(fn, payload), logs: [] });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
      res.end(out);
    });
  })
  .listen(0, "127.0.0.1", function () {
    console.log(`peer listening on http://127.0.0.1:${this.address().port}`);
  });
