// Binary results become MIME-sniffed data URIs, at any depth: these bytes
// are an SVG, so they come back as data:image/svg+xml;base64,… (a PNG would
// come back as data:image/png, a PDF as data:application/pdf).
//
//   jq -n --rawfile s examples/image.ts '{script: $s, fn: "chart", payload: {values: [3, 7, 4, 9]}}' \
//     | curl -s localhost:3000/run -H 'content-type: application/json' -d @-
//
// → {"result":{"image":"data:image/svg+xml;base64,PHN2Zy…","bytes":409},"logs":[]}

export function chart(input: { values?: number[] } | null) {
  const values = input?.values ?? [3, 7, 4, 9, 6];
  const width = 40 * values.length + 20;
  const max = Math.max(...values, 1);
  const bars = values
    .map((v, i) => {
      const h = Math.round((v / max) * 100);
      return `<rect x="${20 + i * 40}" y="${120 - h}" width="28" height="${h}" rx="3" fill="#2563eb"/>`;
    })
    .join("");
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="130" viewBox="0 0 ${width} 130">` +
    `<rect width="100%" height="100%" fill="#f8fafc"/>${bars}</svg>`;
  const bytes = new TextEncoder().encode(svg);
  return { image: bytes, bytes: bytes.length };
}
