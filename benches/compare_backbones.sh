#!/usr/bin/env bash
# Training speed and peak memory of the compared backbones at real shapes, sweep against
# PyTorch on this machine with the same thread count: builds benches/backbones.rs, alternates
# it with benches/backbones_peer.py ROUNDS times (each side keeps its best img/s), and prints
# the Markdown table of BENCHMARKS.md with the load average before and after each round
# (a round starts only on a quiet machine: benches/quiet.sh, MAX_LOAD=0.5, QUIET_WAIT=600).
#
#   benches/compare_backbones.sh [THREADS]     (default 2; ROUNDS=2, SECONDS_PER=20, ONLY=a@112,b@150)
#   PYTHON=/path/to/venv/python benches/compare_backbones.sh 2
#
# PyTorch, torchvision and timm are not dependencies of the crate: scripts/equivalence.sh
# makes a venv with them (~/.cache/sweep-peers/venv), the default PYTHON here.
set -euo pipefail
threads=${1:-2}
python=${PYTHON:-${SWEEP_PEERS_CACHE:-$HOME/.cache/sweep-peers}/venv/bin/python}
cd "$(dirname "$0")/.."
"$python" -c 'import torch, torchvision, timm' || {
  echo "no torch/torchvision/timm for $python: run scripts/equivalence.sh once, or set PYTHON" >&2
  exit 1
}
rounds=${ROUNDS:-2}
secs=${SECONDS_PER:-20}
only=()
[[ -n ${ONLY:-} ]] && only=(--only "$ONLY")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
source benches/quiet.sh
cargo bench --bench backbones --no-run
export RAYON_NUM_THREADS=$threads CANDLE_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
for round in $(seq 1 "$rounds"); do
  quiet_round "round $round/$rounds: sweep" "$out/ours.$round" \
    cargo bench --bench backbones -- --threads "$threads" --seconds "$secs" "${only[@]}"
  quiet_round "round $round/$rounds: PyTorch" "$out/torch.$round" \
    "$python" benches/backbones_peer.py --threads "$threads" --seconds "$secs" "${only[@]}"
done
require_rounds 'ours.*' 'torch.*'
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo
echo "$(date -u +%Y-%m-%d), $cpu, $(nproc) cores, $threads thread(s), best of $rounds rounds, PyTorch $torch_version"
echo
sed 's/^/    /' "$out/loads"
echo
echo "| training, batch 32 | sweep img/s | PyTorch img/s | sweep / PyTorch | sweep peak MiB | PyTorch peak MiB |"
echo "|---|---:|---:|---:|---:|---:|"
cat "$out"/ours.* | grep '^RESULT' > "$out/ours"
cat "$out"/torch.* | grep '^RESULT' > "$out/torch"
awk '
  FNR == NR { if ($3 + 0 > o[$2] + 0) { o[$2] = $3; om[$2] = $4 } ; order[++n] = $2; next }
  { if ($3 + 0 > t[$2] + 0) { t[$2] = $3; tm[$2] = $4 } }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]; if (k in seen) continue; seen[k] = 1
      split(k, p, "@")
      if (k in t) printf "| %s %sx%s | %.2f | %.2f | %.2fx | %d | %d |\n", p[1], p[2], p[2], o[k], t[k], o[k] / t[k], om[k], tm[k]
      else printf "| %s %sx%s | %.2f | - | - | %d | - |\n", p[1], p[2], p[2], o[k], om[k]
    }
  }' "$out/ours" "$out/torch"
