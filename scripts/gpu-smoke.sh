#!/usr/bin/env bash
# Runs the CUDA build on a GPU machine with no Rust toolchain: unpacks the bundle made by
#   SWEEP_CUDA_BUNDLE=.gpu/sweep-cuda.tar.xz scripts/build-cuda.sh
# finds the CUDA 13 libraries (PyTorch's pip packages, else the system), then runs
# `sweep --help`, `sweep devices`, examples/cuda_smoke and the quickstart sweep on GPU 0.
#   scripts/gpu-smoke.sh [BUNDLE]        (run from the repository root)
set -uo pipefail
BUNDLE=${1:-.gpu/sweep-cuda.tar.xz}
step() { echo; echo "== $*"; }
# shellcheck source=scripts/gpu-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/gpu-env.sh" "$BUNDLE" || exit 1

step "sweep --help"
"$W/sweep" --help; echo "rc=$?"
step "sweep devices"
"$W/sweep" devices; echo "rc=$?"

step "cuda_smoke 50 64"
"$W/cuda_smoke" 50 64; echo "rc=$?"
step "cuda_smoke 60 256"
"$W/cuda_smoke" 60 256; echo "rc=$?"

step "sweep run sweeps/quickstart.toml --devices 0"
s=$(date +%s%N)
"$W/sweep" run sweeps/quickstart.toml --db "$W/runs/sweep.db" --devices 0
echo "rc=$? in $(( ($(date +%s%N) - s) / 1000000 )) ms"
"$W/sweep" report --db "$W/runs/sweep.db"; echo "rc=$?"
