#!/usr/bin/env bash
# Installs, builds and runs the whole test suite (what CI runs):
# the GoogleTest/CTest suites, then the end-to-end tests of the real
# weft-server binary with Python gRPC clients from PyPI (tests/e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${JOBS:-$(nproc)}"

VENV=.venv-e2e
if [[ ! -x $VENV/bin/python ]]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
WEFT_BUILD_DIR="$PWD/$BUILD_DIR" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/e2e
