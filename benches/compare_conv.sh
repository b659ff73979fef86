#!/usr/bin/env bash
# Dense convolution pass by pass, sweep against PyTorch (oneDNN) on this machine with the same
# thread count: builds benches/conv.rs, alternates it with benches/conv_peer.py ROUNDS times,
# each round on a quiet machine (benches/quiet.sh), keeps each side's fastest time per pass,
# and prints the Markdown table of BENCHMARKS.md with the loads.
#
#   benches/compare_conv.sh [THREADS]     (default 2; ROUNDS=3, SECONDS_PER=1, ONLY=a,b)
#   PYTHON=/path/to/venv/python benches/compare_conv.sh 2
set -euo pipefail
threads=${1:-2}
python=${PYTHON:-${SWEEP_PEERS_CACHE:-$HOME/.cache/sweep-peers}/venv/bin/python}
cd "$(dirname "$0")/.."
"$python" -c 'import torch' || {
  echo "no torch for $python: run scripts/equivalence.sh once, or set PYTHON" >&2
  exit 1
}
rounds=${ROUNDS:-3}
secs=${SECONDS_PER:-1}
only=()
[[ -n ${ONLY:-} ]] && only=(--only "$ONLY")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
source benches/quiet.sh
cargo bench --bench conv --no-run
export RAYON_NUM_THREADS=$threads CANDLE_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
for round in $(seq 1 "$rounds"); do
  quiet_round "round $round/$rounds: sweep" "$out/ours.$round" \
    cargo bench --bench conv -- --threads "$threads" --seconds "$secs" "${only[@]}"
  quiet_round "round $round/$rounds: PyTorch" "$out/torch.$round" \
    "$python" benches/conv_peer.py --threads "$threads" --seconds "$secs" "${only[@]}"
done
require_rounds 'ours.*' 'torch.*'
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo
echo "$(date -u +%Y-%m-%d), $cpu, $(nproc) cores, $threads thread(s), best of $rounds rounds, PyTorch $torch_version"
echo
sed 's/^/    /' "$out/loads"
echo
echo "| conv, batch 32 | forward ms (PyTorch) | input grad ms (PyTorch) | weight grad ms (PyTorch) | all three: PyTorch / sweep |"
echo "|---|---:|---:|---:|---:|"
cat "$out"/ours.* | grep '^RESULT' >"$out/ours"
cat "$out"/torch.* | grep '^RESULT' >"$out/torch"
awk '
  function keep(arr, k, v) { if (!(k in arr) || v < arr[k]) arr[k] = v }
  FNR == NR { keep(o, $2, $3 + 0); split($2, p, ":"); if (!(p[1] in seen)) { seen[p[1]] = 1; order[++n] = p[1] }; next }
  { keep(t, $2, $3 + 0) }
  END {
    for (i = 1; i <= n; i++) {
      s = order[i]; so = 0; st = 0; row = "| " s
      for (j = 1; j <= 3; j++) {
        pass = (j == 1 ? "fwd" : (j == 2 ? "dx" : "dw")); k = s ":" pass
        row = row sprintf(" | %.2f (%.2f)", o[k], t[k]); so += o[k]; st += t[k]
      }
      printf "%s | %.2fx |\n", row, st / so
    }
  }' "$out/ours" "$out/torch"
