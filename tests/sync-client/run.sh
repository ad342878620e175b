#!/usr/bin/env bash
# End-to-end sync tests: the official PowerSync Node client (@powersync/node) against the athena binary.
# Builds nothing: expects ATHENA_BIN or ../../target/debug/athena. Set ATHENA_TEST_DATABASE_URL to run
# the server on PostgreSQL (a fresh database per server), SQLite otherwise. Exit code = the tests'.
set -euo pipefail
# A relative ATHENA_BIN is relative to the caller's directory.
if [[ -n "${ATHENA_BIN:-}" ]]; then export ATHENA_BIN="$(realpath "$ATHENA_BIN")"; fi
cd "$(dirname "${BASH_SOURCE[0]}")"

# Install the pinned packages only when the lockfile changed since the last install.
stamp=node_modules/.athena-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

bin="${ATHENA_BIN:-../../target/debug/athena}"
[[ -x "$bin" ]] || { echo "no athena binary at $bin (build it first: cargo build -p athena)" >&2; exit 1; }

# One file at a time (each starts its own servers); every test has its own timeout, and the
# whole run is bounded too.
exec timeout --kill-after=30 900 node --test --test-concurrency=1 --test-timeout=180000 "$@" ./*.test.mjs
