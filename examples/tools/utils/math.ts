/** Arithmetic helpers, imported by saved scripts as `utils/math.ts`. */

export function add(a: number, b: number): number {
  return a + b;
}

export function multiply(a: number, b: number): number {
  return a * b;
}

export function sum(values: number[]): number {
  return values.reduce((total, v) => total + v, 0);
}
