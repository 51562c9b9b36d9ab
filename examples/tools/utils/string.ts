/** String helpers, imported by saved scripts as `utils/string.ts`. */

export function capitalize(text: string): string {
  return text
    .split(" ")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(" ");
}

export function reverse(text: string): string {
  return [...text].reverse().join("");
}
