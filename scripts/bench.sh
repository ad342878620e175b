#!/usr/bin/env bash
# Builds the release server and benchmark, then runs the benchmarks of docs/PERFORMANCE.md.
# Not part of CI or scripts/test.sh: it takes minutes and its figures depend on the machine.
#   scripts/bench.sh                      # all: startup, upload, list-sqlite, list-postgres
#   scripts/bench.sh --only startup       # one (or a comma list); any other athena-bench flag passes through
#   scripts/bench.sh --only processing    # builds the 200-book library first (bench_corpus.py + npm chinese-poetry)
# Results: JSON lines on stdout (also appended to target/bench-results.jsonl); progress on stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release -p athena -p athena-bench
if [[ " $* " != *" --only "* || "$*" == *postgres* ]]; then
  # The PostgreSQL list benchmark uses the machine's server; start its cluster if it stopped, as scripts/test.sh does.
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi
mkdir -p target
if [[ "$*" == *processing* && ! -f target/bench-library/manifest.json ]]; then
  # The 200-book library of ../shared/tools/bench_corpus.py, with the chinese-poetry npm package for the Chinese half.
  mkdir -p target/bench-poetry
  if [[ ! -d target/bench-poetry/package ]]; then
    (cd target/bench-poetry && npm pack --silent chinese-poetry@2.0.1 >/dev/null && tar xzf chinese-poetry-2.0.1.tgz)
  fi
  python3 ../shared/tools/bench_corpus.py target/bench-library --books 200 --poetry target/bench-poetry/package/dist
fi
printf '{"run_started":"%s","host_cpus":%s}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" >> target/bench-results.jsonl
target/release/athena-bench "$@" | tee -a target/bench-results.jsonl
