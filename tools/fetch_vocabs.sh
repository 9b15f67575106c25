#!/usr/bin/env bash
# Fetches the vocabulary-only GGUF files that the tokenizer tests use for
# the Llama 2 (SentencePiece BPE) and Qwen2 (byte-level BPE) families into
# models/vocab/. They are llama.cpp's test vocabularies (llama.cpp is MIT;
# the vocabularies keep their own licences), taken from the llama.cpp source
# vendored in the PyPI sdist of llama-cpp-python, and checked by sha256.
# Nothing is fetched from a model hub.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=llama-cpp-python==0.3.36
declare -A SHA256=(
  [ggml-vocab-llama-spm.gguf]=16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69
  [ggml-vocab-qwen2.gguf]=44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c
)

mkdir -p models/vocab
missing=0
for f in "${!SHA256[@]}"; do
  if ! { [[ -f models/vocab/$f ]] &&
         echo "${SHA256[$f]}  models/vocab/$f" | sha256sum -c --status; }; then
    missing=1
  fi
done
[[ $missing -eq 0 ]] && exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_vocabs: downloading the $PACKAGE sdist from PyPI"
# --no-binary for this package only: ":all:" would reach pip's build
# isolation too and build the sdist's build backend from source.
python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python --dest "$tmp" "$PACKAGE"
for f in "${!SHA256[@]}"; do
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp" --wildcards --strip-components=4 \
    "*/vendor/llama.cpp/models/$f"
  echo "${SHA256[$f]}  $tmp/$f" | sha256sum -c --quiet
  mv "$tmp/$f" "models/vocab/$f"
done
echo "fetch_vocabs: models/vocab/{${!SHA256[*]}}"
