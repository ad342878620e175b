#!/usr/bin/env bash
# Builds Athena and runs it on its embedded defaults: API + web on http://127.0.0.1:48000,
# SQLite and book files under ./data, every role in one process. Idempotent; extra arguments go to
# `athena serve` (e.g. --role api). Installs the worker's tools and models first (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Calibre, Poppler, Tesseract, a CJK font, the OCR models and the embedding model (pinned by hash).
bash scripts/install-deps.sh
cargo build --release --locked -p athena
# The web app served at / (web/dist): npm ci only when its lockfile changed, then the Vite build.
bash web/build.sh
exec ./target/release/athena serve "$@"
