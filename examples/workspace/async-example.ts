import { sum } from '@/utils/math.ts';

function delay<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}

// Top-level await: the run ends when nothing is left to do.
const values = await Promise.all([delay(20, 1), delay(10, 2), delay(5, 3)]);
console.log(JSON.stringify({ values, total: sum(values), status: 'success' }));
