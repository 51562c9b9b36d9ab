// A function call with a payload and captured logs.
//
//   jq -n --rawfile s examples/hello.ts '{script: $s, fn: "hello", payload: {name: "Ada"}}' \
//     | curl -s localhost:3000/run -H 'content-type: application/json' -d @-
//
// → {"result":{"greeting":"Hello, Ada!","length":3},"logs":[{"ts":…,"level":"log","message":"greeting Ada"}]}

interface Person {
  name: string;
}

export function hello(person: Person): { greeting: string; length: number } {
  console.log("greeting", person.name);
  return { greeting: `Hello, ${person.name}!`, length: person.name.length };
}
