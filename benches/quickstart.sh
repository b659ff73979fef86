#!/usr/bin/env bash
# The quickstart end to end, sweep against a plain PyTorch loop of the same net and recipe
# (benches/quickstart_peer.py): one run (lr 0.001, seed 1, up to 12 epochs with early
# stopping), `sweep run` from start to exit against the interpreter from start to exit, both
# with THREADS threads. Alternates ROUNDS times, each round on a quiet machine only
# (benches/quiet.sh), and prints every wall time, each side's best, and the ratio
# (PyTorch seconds / sweep seconds: above 1 means sweep is faster).
#
#   benches/quickstart.sh [THREADS]        (default 2; ROUNDS=3, MAX_LOAD=0.5)
#   PATIENCE=12 benches/quickstart.sh      (early stopping off: both sides train all 12 epochs;
#                                           with the recipe's 3, each side's own split decides)
#   PYTHON=/path/to/python benches/quickstart.sh
#
# PyTorch (with Pillow) is not a dependency of the crate: scripts/equivalence.sh makes a venv
# with it (~/.cache/sweep-peers/venv), the default PYTHON here.
set -euo pipefail
threads="${1:-2}"
python="${PYTHON:-${SWEEP_PEERS_CACHE:-$HOME/.cache/sweep-peers}/venv/bin/python}"
cd "$(dirname "$0")/.."
if ! "$python" -c 'import torch, PIL' 2>/dev/null; then
    echo "no torch or Pillow for $python: run scripts/equivalence.sh once, or set PYTHON" >&2
    exit 1
fi
rounds="${ROUNDS:-3}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
source benches/quiet.sh
cargo build --release --locked
data="$PWD/data/fashion-mini"
patience="${PATIENCE:-3}"
sed -e "s|\"../data/fashion-mini|\"$data|" -e 's|^lr = .*|lr = [0.001]|' -e 's|^seed = .*|seed = 1|' \
    -e "s|early_stopping = { monitor = \"val_loss\", patience = 3 }|early_stopping = { monitor = \"val_loss\", patience = $patience }|" \
    sweeps/quickstart.toml >"$out/quickstart.toml"
grep -q "patience = $patience }" "$out/quickstart.toml" || { echo "cannot set the patience in sweeps/quickstart.toml" >&2; exit 1; }
export RAYON_NUM_THREADS="$threads" CANDLE_NUM_THREADS="$threads"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"

sweep_once() {
    rm -rf "$out/runs"
    local t0 t1
    t0=$(date +%s.%N)
    target/release/sweep run "$out/quickstart.toml" --db "$out/runs/sweep.db" >"$out/log" 2>&1
    t1=$(date +%s.%N)
    grep -E "^\[1/1\]|test \(weights" "$out/log" | sed 's/^ */  /'
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "RESULT wall_s %.2f\n", b - a }'
}

for round in $(seq 1 "$rounds"); do
    quiet_round "round $round/$rounds: sweep run, $threads thread(s)" "$out/ours.$round" sweep_once
    quiet_round "round $round/$rounds: PyTorch loop, $threads thread(s)" "$out/torch.$round" \
        "$python" benches/quickstart_peer.py --threads "$threads" --seed 1 --lr 0.001 --patience "$patience" --data "$data"
done
require_rounds 'ours.*' 'torch.*'
best() { cat "$@" | awk '/^RESULT wall_s/ { if (b == "" || $3 < b) b = $3 } END { print b }'; }
ours=$(best "$out"/ours.*)
torch=$(best "$out"/torch.*)
echo
echo "## $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $threads thread(s), best of $rounds, PyTorch $("$python" -c 'import torch; print(torch.__version__)')"
sed 's/^/    /' "$out/loads"
echo
epochs() { grep -hoE "$1" "$out"/$2.* | grep -oE "[0-9]+" | sort -u | paste -sd/; }
echo "| quickstart, one run (patience $patience) | sweep s | PyTorch s | PyTorch / sweep | epochs (sweep, PyTorch) |"
echo "|---|---:|---:|---:|---|"
awk -v o="$ours" -v t="$torch" -v e="$(epochs 'completed [0-9]+|stopped[^0-9]*[0-9]+' 'ours'), $(epochs '^epochs [0-9]+' 'torch')" \
    'BEGIN { printf "| lr 0.001, seed 1, up to 12 epochs | %.1f | %.1f | %.2fx | %s |\n", o, t, t / o, e }'
