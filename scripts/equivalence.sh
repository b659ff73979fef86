#!/usr/bin/env bash
# Layer-output equivalence with torchvision and timm (tests/equivalence.rs), opt-in: sets up a
# venv with the reference libraries from PyPI (CPU is enough; no weights are downloaded),
# writes the fixtures with scripts/equivalence.py and runs the Rust check on them.
#
#   scripts/equivalence.sh small   # rewrite the committed fixtures (tests/fixtures/equivalence)
#   scripts/equivalence.sh full    # every backbone with a PyTorch twin at its real width
#                                  # (about 3 GB of fixtures under $SWEEP_PEERS_CACHE/equivalence)
#
# Settings (environment): SWEEP_PEERS_CACHE (default ~/.cache/sweep-peers) holds the venv;
# PYTHON (default python3) makes it.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SWEEP_PEERS_CACHE:-$HOME/.cache/sweep-peers}
SET=${1:-small}
VENV=$CACHE/venv
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import torch, torchvision, timm, safetensors' 2>/dev/null; then
  echo "equivalence: installing torch, torchvision, timm, safetensors into $VENV" >&2
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check torch torchvision timm safetensors
fi
cd "$REPO"
case $SET in
  small)
    OUT=tests/fixtures/equivalence
    rm -rf "$OUT"
    "$VENV/bin/python" scripts/equivalence.py --set small "$OUT"
    cargo test --release --test integration equivalence::small -- --nocapture
    ;;
  full)
    OUT=$CACHE/equivalence
    rm -rf "$OUT"
    "$VENV/bin/python" scripts/equivalence.py --set full "$OUT"
    SWEEP_EQUIVALENCE_DIR=$OUT cargo test --release --test integration equivalence::full \
      -- --ignored --nocapture
    ;;
  *) echo "usage: scripts/equivalence.sh small|full" >&2; exit 2 ;;
esac
