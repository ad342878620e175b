#!/usr/bin/env bash
# Builds the release server and benchmark, then runs the benchmarks of docs/PERFORMANCE.md.
# Not part of CI or scripts/test.sh: it takes minutes and its figures depend on the machine.
#   scripts/bench.sh                      # all: startup, upload, list-sqlite, list-postgres
#   scripts/bench.sh --only startup       # one (or a comma list); any other athena-bench flag passes through
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
printf '{"run_started":"%s","host_cpus":%s}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" >> target/bench-results.jsonl
target/release/athena-bench "$@" | tee -a target/bench-results.jsonl
