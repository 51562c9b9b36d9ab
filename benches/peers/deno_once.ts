// One call per process: what `deno run` per call costs.
const source = await Deno.readTextFile(new URL("./functions.js", import.meta.url));
const fns = new Function(`${source}; return { trivial, sort };`)();
const [fn, payload] = Deno.args;
console.log(JSON.stringify({ result: fns[fn](JSON.parse(payload)), logs: [] }));
