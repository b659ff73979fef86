#!/usr/bin/env bash
# Every backbone trains on GPU 0: one sweep with a run per backbone (`sweep models`), at its
# default width, on the bundled Fashion-MNIST subset resized to 72x72 (above every minimum
# input), 2 epochs each, then the report and each run's stored epochs. Then
# sweeps/backbones.toml as a user runs it. Timed; runs on a GPU machine with no Rust toolchain
# (see scripts/gpu-env.sh).
#   scripts/gpu-backbones.sh [BUNDLE]
set -uo pipefail
BUNDLE=${1:-.gpu/sweep-cuda.tar.xz}
# shellcheck source=scripts/gpu-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/gpu-env.sh" "$BUNDLE" || exit 1
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"

names=$("$W/sweep" models --format json | python3 -c 'import json,sys; print(json.dumps([m["name"] for m in json.load(sys.stdin)]))')
toml="$W/all_backbones.toml"
cat > "$toml" <<EOF
name = "all_backbones"
[data]
train = "$PWD/data/fashion-mini/train"
test = "$PWD/data/fashion-mini/test"
val_split = 0.2
image_size = [72, 72]
channels = 1
[train]
epochs = 2
batch_size = 64
optimizer = "adam"
lr = 0.001
checkpoint = "best"
[grid]
backbone = $names
EOF
s=$(date +%s%N)
"$W/sweep" run "$toml" --db "$W/runs-all/sweep.db" --devices 0
echo "rc=$? in $(( ($(date +%s%N) - s) / 1000000 )) ms: all backbones"
"$W/sweep" report --db "$W/runs-all/sweep.db"
"$W/sweep" status --db "$W/runs-all/sweep.db"

s=$(date +%s%N)
"$W/sweep" run sweeps/backbones.toml --db "$W/runs-backbones/sweep.db" --devices 0
echo "rc=$? in $(( ($(date +%s%N) - s) / 1000000 )) ms: sweeps/backbones.toml"
"$W/sweep" report --db "$W/runs-backbones/sweep.db"
