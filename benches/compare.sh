#!/usr/bin/env bash
# Builds the train_speed bench, runs it and the PyTorch peer (benches/pytorch_peer.py) with the
# same thread count on this machine, alternating ROUNDS times and keeping each side's best
# figure, runs candle's reference path once, and prints both sides and their ratios as
# Markdown tables (the ones in BENCHMARKS.md). Each round starts only on a quiet machine
# (benches/quiet.sh: MAX_LOAD=0.5, QUIET_WAIT=600) and the loads are printed with the tables.
#
#   benches/compare.sh [THREADS]        (default: 2; ROUNDS=3)
#   PYTHON=/path/to/python ROUNDS=5 benches/compare.sh 2
#
# PyTorch is not a dependency of the crate: scripts/equivalence.sh makes a venv with it
# (~/.cache/sweep-peers/venv), the default PYTHON here.
set -euo pipefail
threads="${1:-2}"
python="${PYTHON:-${SWEEP_PEERS_CACHE:-$HOME/.cache/sweep-peers}/venv/bin/python}"
cd "$(dirname "$0")/.."
if ! "$python" -c 'import torch' 2>/dev/null; then
    echo "no torch for $python: run scripts/equivalence.sh once, or set PYTHON" >&2
    exit 1
fi
rounds="${ROUNDS:-3}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
source benches/quiet.sh
cargo bench --bench train_speed --no-run
export RAYON_NUM_THREADS="$threads" CANDLE_NUM_THREADS="$threads"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
# Other processes on the machine only ever slow a run down: alternate the two sides and keep
# each side's best figure (highest img/s, lowest ms).
for round in $(seq 1 "$rounds"); do
    quiet_round "round $round/$rounds: sweep (candle + fast kernels), $threads thread(s)" "$out/ours.$round" \
        cargo bench --bench train_speed -- --threads "$threads" --no-reference
    quiet_round "round $round/$rounds: PyTorch, $threads thread(s)" "$out/torch.$round" \
        "$python" benches/pytorch_peer.py --threads "$threads"
done
echo "== candle reference path (once: it is slow), $threads thread(s)"
cargo bench --bench train_speed -- --threads "$threads" --reference-only | tee "$out/reference"
require_rounds 'ours.*' 'torch.*'

torch_version="$("$python" -c 'import torch; print(torch.__version__)')"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo
echo "## $(date -u +%Y-%m-%d), $cpu, $(nproc) cores, $threads thread(s), best of $rounds rounds, PyTorch $torch_version"
echo
sed 's/^/    /' "$out/loads"
cat "$out"/ours.* "$out/reference" | grep '^RESULT' > "$out/ours"
cat "$out"/torch.* | grep '^RESULT' > "$out/torch"
awk -v t="$threads" '
    function keep(arr, k, v) {
        if (!(k in arr) || (k ~ /^train/ && v > arr[k]) || (k ~ /^op/ && v < arr[k])) arr[k] = v
    }
    FNR == NR { keep(ours, $2, $3 + 0); next }
    { keep(torch, $2, $3 + 0) }
    END {
        print ""
        print "| training, batch 32 | sweep img/s | PyTorch img/s | sweep / PyTorch | candle reference img/s |"
        print "|---|---:|---:|---:|---:|"
        for (s = 32; s <= 64; s *= 2) {
            k = "train_" s
            if (!(k in torch)) continue
            printf "| ResNet-18 w16, %dx%d | %.1f | %.1f | %.2fx | %.1f |\n", s, s, ours[k "_fast"], torch[k], ours[k "_fast"] / torch[k], ours[k "_reference"]
        }
        print ""
        print "| scaling | sweep 1 thread | sweep " t " threads | speed-up |"
        print "|---|---:|---:|---:|"
        for (s = 32; s <= 64; s *= 2) {
            k = "train_" s "_fast_t"
            if ((k "1") in ours && (k t) in ours)
                printf "| %dx%d | %.1f img/s | %.1f img/s | %.2fx |\n", s, s, ours[k "1"], ours[k t], ours[k t] / ours[k "1"]
        }
        print ""
        print "| op, fwd+bwd, batch 32 | sweep ms | PyTorch ms | PyTorch / sweep | candle reference ms | reference / sweep |"
        print "|---|---:|---:|---:|---:|---:|"
        n = split("conv3x3 conv1x1 depthwise maxpool batchnorm", keys, " ")
        split("conv 3x3 64->64 32x32|conv 1x1 64->128 /2 32x32|depthwise 3x3 728ch 19x19|max-pool 3x3/2 p1 64ch 56x56|batch norm 64ch 32x32", labels, "|")
        for (i = 1; i <= n; i++) {
            k = "op_" keys[i]
            if (!((k "_fast") in ours) || !(k in torch)) continue
            f = ours[k "_fast"]; r = ours[k "_reference"]
            printf "| %s | %.2f | %.2f | %.2fx | %.1f | %.1fx |\n", labels[i], f, torch[k], torch[k] / f, r, (r > 0 ? r / f : 0)
        }
    }' "$out/ours" "$out/torch"
