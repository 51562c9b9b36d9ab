import { add, multiply } from 'utils/math.ts';
import { capitalize } from 'utils/string.ts';

async function main() {
  const result = {
    calculation: add(10, 20),
    product: multiply(6, 7),
    text: capitalize('hello world'),
    status: 'success',
  };
  console.log(JSON.stringify(result));
}

main().catch((error) => {
  console.error(JSON.stringify({ success: false, error: error.message }));
  Deno.exit(1);
});
