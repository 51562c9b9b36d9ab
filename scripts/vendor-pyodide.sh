#!/usr/bin/env bash
# Refreshes the vendored Pyodide runtime (CPython compiled to WebAssembly)
# from the npm registry: fetches the pinned `pyodide` package, copies the
# files the server loads into assets/pyodide/, and rewrites
# assets/pyodide/MANIFEST with each file's version and SHA-256. The server
# embeds these files (src/engine/python/); nothing is fetched at run time.
#
#   scripts/vendor-pyodide.sh            # the pinned version below
#   PYODIDE=314.0.7 scripts/vendor-pyodide.sh
#
# Pyodide is distributed under the Mozilla Public License 2.0; its package
# ships no license file, so MANIFEST names the license and the source.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYODIDE="${PYODIDE:-314.0.7}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "pyodide@$PYODIDE" >/dev/null)
tar -xzf "$work"/pyodide-*.tgz -C "$work"

out=assets/pyodide
mkdir -p "$out"
files=(pyodide.mjs pyodide.asm.mjs pyodide.asm.wasm python_stdlib.zip pyodide-lock.json)
for f in "${files[@]}"; do
  cp "$work/package/$f" "$out/$f"
done
{
  echo "# file package version sha256 (written by scripts/vendor-pyodide.sh)"
  echo "# pyodide is MPL-2.0: https://github.com/pyodide/pyodide (npm: pyodide)"
  for f in "${files[@]}"; do
    echo "$f pyodide $PYODIDE $(sha256sum "$out/$f" | cut -d' ' -f1)"
  done
} > "$out/MANIFEST"
cat "$out/MANIFEST"
