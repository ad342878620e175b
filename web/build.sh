#!/usr/bin/env bash
# Builds the web app into web/dist, idempotently: installs the pinned npm packages (npm ci) only
# when package-lock.json changed since the last install, then runs the Vite build (a few seconds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v npm >/dev/null || { echo "npm is needed to build the web app (Node 20.19+)" >&2; exit 1; }
stamp=node_modules/.athena-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
if [[ "${1:-}" != "--deps-only" ]]; then
  npm run --silent build
fi
