#!/usr/bin/env bash
# Builds Athena and runs it on its embedded defaults: API + web on http://127.0.0.1:48000,
# SQLite and book files under ./data, every role in one process. Idempotent; extra arguments go to
# `athena serve` (e.g. --role api).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --locked -p athena
exec ./target/release/athena serve "$@"
