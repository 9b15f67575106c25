#!/usr/bin/env bash
# Fetches the source of xgrammar (Apache-2.0; the structured-output engine
# of vLLM, SGLang and TensorRT-LLM), which weft builds into its runtime for
# response_format / guided decoding (runtime/grammar.h), from its PyPI sdist
# into third_party/xgrammar/, checked by sha256. Only the C++ core is built
# (third_party/xgrammar.cmake); its Python bindings are not.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.2.8
SHA256=8305646fd2b319d6c3003f51a1665e54cbbe9cba1fb636bc41d0b46434ccbb80
DEST=third_party/xgrammar

if [[ -f $DEST/.sha256 ]] && [[ $(cat "$DEST/.sha256") == "$SHA256" ]]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_xgrammar: downloading the xgrammar==$VERSION sdist from PyPI"
# --no-binary for this package only: ":all:" would reach pip's build
# isolation too and build the sdist's build backend from source. The hash
# is checked by pip as the archive arrives, before it prepares the sdist's
# metadata (which runs its build backend), and again below.
echo "xgrammar==$VERSION --hash=sha256:$SHA256" > "$tmp/requirements.txt"
python3 -m pip download --quiet --no-deps --no-binary xgrammar --require-hashes \
  --dest "$tmp" -r "$tmp/requirements.txt"
echo "$SHA256  $tmp/xgrammar-$VERSION.tar.gz" | sha256sum -c --quiet
rm -rf "$DEST"
mkdir -p "$DEST"
tar -xzf "$tmp/xgrammar-$VERSION.tar.gz" -C "$DEST" --strip-components=1 \
  "xgrammar-$VERSION/LICENSE" "xgrammar-$VERSION/NOTICE" \
  "xgrammar-$VERSION/include" "xgrammar-$VERSION/cpp" \
  "xgrammar-$VERSION/3rdparty/picojson" "xgrammar-$VERSION/3rdparty/dlpack/include"
echo "$SHA256" > "$DEST/.sha256"
echo "fetch_xgrammar: $DEST (xgrammar $VERSION, sha256 $SHA256)"
