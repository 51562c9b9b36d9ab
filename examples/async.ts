// An async function: the call ends when the returned promise settles.
//
//   jq -n --rawfile s examples/async.ts '{script: $s, fn: "slowSum", payload: {values: [1, 2, 3], delayMs: 50}}' \
//     | curl -s localhost:3000/run -H 'content-type: application/json' -d @-
//
// → {"result":{"sum":6,"waitedMs":50},"logs":[{"ts":…,"level":"info","message":"summing 3 values"}]}

export async function slowSum(input: { values: number[]; delayMs: number }) {
  console.info(`summing ${input.values.length} values`);
  await new Promise((resolve) => setTimeout(resolve, input.delayMs));
  return { sum: input.values.reduce((a, b) => a + b, 0), waitedMs: input.delayMs };
}
