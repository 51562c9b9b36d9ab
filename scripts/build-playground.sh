#!/usr/bin/env bash
# Rebuilds the playground's editor bundle (assets/playground/playground.js)
# from the npm registry: installs the pinned packages of
# assets/playground/package.json (package-lock.json keeps every version),
# bundles src/editor.js with esbuild into one minified file, and records
# the versions and the bundle's SHA-256 in assets/playground/MANIFEST. The
# server embeds the bundle; the page loads nothing from the internet.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../assets/playground"
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund --silent
else
  npm install --no-audit --no-fund --silent
fi
npx --no-install esbuild src/editor.js --bundle --minify --format=iife \
  --target=es2020 --legal-comments=none --outfile=playground.js
{
  echo "# package version (from package-lock.json), and the bundle's sha256; written by scripts/build-playground.sh"
  node -e '
    const lock = require("./package-lock.json");
    for (const [path, p] of Object.entries(lock.packages)) {
      if (path.startsWith("node_modules/") && !p.dev) console.log(path.slice(13), p.version);
    }'
  echo "playground.js sha256 $(sha256sum playground.js | cut -d" " -f1)"
} > MANIFEST
cat MANIFEST
