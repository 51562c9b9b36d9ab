// The two functions every system in benches/peers.rs runs: a trivial one
// and a sort of `n` pseudo-random numbers. Plain script (no exports): each
// server evaluates it in its own way.
function trivial(p) {
  return { ok: true, n: p };
}
function sort(n) {
  let x = 1;
  const a = new Array(n);
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    a[i] = x;
  }
  a.sort((p, q) => p - q);
  return { median: a[n >> 1] };
}
