#!/usr/bin/env bash
# Refreshes the vendored page assets (Swagger UI, ReDoc) from the npm
# registry: fetches the pinned package versions, copies the files the pages
# serve into assets/vendor/, and rewrites assets/vendor/MANIFEST with each
# file's package, version and SHA-256. The server embeds these files; no page
# loads anything from the internet.
#
#   scripts/vendor-assets.sh            # the pinned versions below
#   SWAGGER_UI=5.35.0 REDOC=2.5.4 scripts/vendor-assets.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SWAGGER_UI="${SWAGGER_UI:-5.35.0}"
REDOC="${REDOC:-2.5.4}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI" "redoc@$REDOC" >/dev/null)
mkdir -p "$work/swagger" "$work/redoc"
tar -xzf "$work"/swagger-ui-dist-*.tgz -C "$work/swagger"
tar -xzf "$work"/redoc-*.tgz -C "$work/redoc"

out=assets/vendor
mkdir -p "$out"
cp "$work/swagger/package/swagger-ui-bundle.js" "$out/swagger-ui-bundle.js"
cp "$work/swagger/package/swagger-ui.css" "$out/swagger-ui.css"
cp "$work/swagger/package/LICENSE" "$out/swagger-ui.LICENSE"
cp "$work/redoc/package/bundles/redoc.standalone.js" "$out/redoc.standalone.js"
cp "$work/redoc/package/LICENSE" "$out/redoc.LICENSE"

{
  echo "# file package version sha256 (written by scripts/vendor-assets.sh)"
  for f in swagger-ui-bundle.js swagger-ui.css swagger-ui.LICENSE; do
    echo "$f swagger-ui-dist $SWAGGER_UI $(sha256sum "$out/$f" | cut -d' ' -f1)"
  done
  for f in redoc.standalone.js redoc.LICENSE; do
    echo "$f redoc $REDOC $(sha256sum "$out/$f" | cut -d' ' -f1)"
  done
} > "$out/MANIFEST"
cat "$out/MANIFEST"
