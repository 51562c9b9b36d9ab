// Deno's own server with the functions compiled once: `Deno.serve` runs a
// call on the thread that read its request.
const source = await Deno.readTextFile(new URL("./functions.js", import.meta.url));
const fns = new Function(`${source}; return { trivial, sort };`)();
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`peer listening on http://127.0.0.1:${port}`),
}, async (req) => {
  const { fn, payload } = await req.json();
  return Response.json({ result: fns[fn](payload), logs: [] });
});
