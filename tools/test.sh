#!/usr/bin/env bash
# Installs, builds and runs the whole test suite (what CI runs):
# the GoogleTest/CTest suites, then the end-to-end tests of the real
# weft-server binary with Python gRPC clients from PyPI (tests/e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
WEFT_SETUP_TESTS=1 tools/setup.sh
tools/fetch_vocabs.sh  # the tokenizer tests' vocabularies (tests only)
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${JOBS:-$(nproc)}"

VENV=.venv-e2e
# pip, not just python: a venv that failed half-way (no python3-venv) is
# made again.
if [[ ! -x $VENV/bin/pip ]]; then python3 -m venv --clear "$VENV"; fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
WEFT_BUILD_DIR="$(realpath "$BUILD_DIR")" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/e2e
