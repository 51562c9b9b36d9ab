// Binary results become MIME-sniffed data URIs, at any depth.
//
//   jq -n --rawfile s examples/image.ts '{script: $s, fn: "pixel"}' \
//     | curl -s localhost:3000/run -H 'content-type: application/json' -d @-
//
// → {"result":{"image":"data:image/png;base64,iVBORw0KGgo…","bytes":67},"logs":[]}

// A complete 1×1 transparent PNG.
const PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAACklEQVR4nGMAAQAABQABDQottAAAAABJRU5ErkJggg==";

export function pixel() {
  const bytes = Uint8Array.from(atob(PNG_BASE64), (c) => c.charCodeAt(0));
  return { image: bytes, bytes: bytes.length };
}
