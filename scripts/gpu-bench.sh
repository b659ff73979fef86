#!/usr/bin/env bash
# GPU training speed of sweep against PyTorch eager on the same GPU, model, batch and
# precision, in one run: for each round, each config and each precision, examples/gpu_bench
# then benches/gpu_peer.py, alternating; then a Markdown table of the best img/s of each side
# and their ratio. Runs on a GPU machine with no Rust toolchain (see scripts/gpu-env.sh).
#   scripts/gpu-bench.sh [BUNDLE] [MODEL:SIZE:BATCH ...]
# Default configs: the issue's resnet50:224:64 resnet18:112:128 xception:299:32.
# Settings: ROUNDS (default 2), PRECISIONS (default "fp32 bf16"), STEPS (default 20),
# BENCH_LOG (default $OUT/gpu-bench.log or /tmp/gpu-bench.log).
set -uo pipefail
BUNDLE=${1:-.gpu/sweep-cuda.tar.xz}
# shellcheck source=scripts/gpu-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/gpu-env.sh" "$BUNDLE" || exit 1
shift || true
configs=("$@")
[[ ${#configs[@]} -gt 0 ]] || configs=(resnet50:224:64 resnet18:112:128 xception:299:32)
LOG=${BENCH_LOG:-${OUT:-/tmp}/gpu-bench.log}
: > "$LOG"
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)" | tee -a "$LOG"
for round in $(seq "${ROUNDS:-2}"); do
  for c in "${configs[@]}"; do
    IFS=: read -r model size batch <<<"$c"
    for p in ${PRECISIONS:-fp32 bf16}; do
      echo "== round $round: $model $size batch $batch $p" | tee -a "$LOG"
      timeout 300 "$W/gpu_bench" "$model" "$size" "$batch" --precision "$p" --steps "${STEPS:-20}" 2>&1 | tee -a "$LOG"
      timeout 300 python3 benches/gpu_peer.py "$model" "$size" "$batch" --precision "$p" --steps "${STEPS:-20}" 2>&1 | tee -a "$LOG"
    done
  done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"
python3 - "$LOG" <<'EOF'
import re, sys
best = {}
for line in open(sys.argv[1]):
    if not line.startswith("RESULT "):
        continue
    kv = dict(p.split("=", 1) for p in line.split()[1:])
    key = (kv["model"], kv["size"], kv["batch"], kv["precision"])
    side = kv["side"]
    if float(kv["img_s"]) > best.get((key, side), {"img_s": "0"}).get("img_s_f", 0):
        kv["img_s_f"] = float(kv["img_s"])
        best[(key, side)] = kv
keys = sorted({k for k, _ in best}, key=lambda k: (k[0], int(k[1]), k[3]))
print("\n| model | input | batch | precision | sweep img/s | PyTorch img/s | ratio | sweep fwd/bwd/upd ms | PyTorch fwd/bwd/upd ms |")
print("|---|---|---:|---|---:|---:|---:|---|---|")
for k in keys:
    s, t = best.get((k, "sweep")), best.get((k, "pytorch"))
    f = lambda r: f"{r['img_s_f']:.0f}" if r else "failed"
    ph = lambda r: f"{float(r['fwd_ms']):.1f} / {float(r['bwd_ms']):.1f} / {float(r['upd_ms']):.1f}" if r else "-"
    ratio = f"**{s['img_s_f'] / t['img_s_f']:.2f}x**" if s and t else "-"
    print(f"| {k[0]} | {k[1]}x{k[1]} | {k[2]} | {k[3]} | {f(s)} | {f(t)} | {ratio} | {ph(s)} | {ph(t)} |")
EOF
