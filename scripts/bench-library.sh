#!/usr/bin/env bash
# Builds (once) the bench library of ../shared/tools/bench_corpus.py: N EPUBs, the Chinese half from the npm
# package chinese-poetry@2.0.1 (fetched once with `npm pack` into target/bench-poetry and reused).
#   scripts/bench-library.sh OUT_DIR [N]      # N defaults to 200; does nothing when OUT_DIR/manifest.json exists
# Used by `athena-bench --only search` (and the same layout as scripts/bench.sh --only processing).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$1"
books="${2:-200}"
[[ -f "$out/manifest.json" ]] && exit 0
poetry="$root/target/bench-poetry"
mkdir -p "$poetry"
if [[ ! -d "$poetry/package/dist" ]]; then
  (cd "$poetry" && npm pack --silent chinese-poetry@2.0.1 >/dev/null && tar xzf chinese-poetry-2.0.1.tgz)
fi
# Build into a temporary folder and rename, so an interrupted run never leaves a half library that looks done.
tmp="$out.partial"
rm -rf "$tmp"
python3 "$root/../shared/tools/bench_corpus.py" "$tmp" --books "$books" --poetry "$poetry/package/dist" >&2
rm -rf "$out"
mv "$tmp" "$out"
