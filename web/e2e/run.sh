#!/usr/bin/env bash
# The web app's checks: lint, unit tests (vitest), build, then the end-to-end suite (Debian chromium
# driven by playwright-core against a real `athena serve` on a temp data dir and free ports).
# Builds no Rust: expects ATHENA_BIN or target/debug/athena. Exit code = the first failure's.
set -euo pipefail
if [[ -n "${ATHENA_BIN:-}" ]]; then export ATHENA_BIN="$(realpath "$ATHENA_BIN")"; fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash ./build.sh --deps-only

bin="${ATHENA_BIN:-../target/debug/athena}"
[[ -x "$bin" ]] || { echo "no athena binary at $bin (build it first: cargo build -p athena)" >&2; exit 1; }
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || { echo "no chromium at ${CHROMIUM:-/usr/bin/chromium} (scripts/install-deps.sh installs it)" >&2; exit 1; }

npm run --silent lint
npx vitest run
bash ./build.sh
ATHENA_BIN="$(realpath "$bin")" timeout --kill-after=20 300 node e2e/app.e2e.mjs
# `npm run dev` (Vite on its own port, proxying to a real server) still signs in and syncs.
ATHENA_BIN="$(realpath "$bin")" timeout --kill-after=20 180 node e2e/dev-smoke.mjs
