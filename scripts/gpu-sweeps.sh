#!/usr/bin/env bash
# Real sweeps end to end on GPU 0, timed (wall clock of `sweep run`, worker start included):
# sweeps/quickstart.toml, sweeps/precision.toml (fp32 against bf16), then the 16 runs of
# sweeps/lr_batch.toml once for each --runs-per-device setting, each into a fresh database.
# Runs on a GPU machine with no Rust toolchain (see scripts/gpu-env.sh).
#   scripts/gpu-sweeps.sh [BUNDLE]          RPD="1 2 4 auto" SWEEPS="quickstart precision"
set -uo pipefail
BUNDLE=${1:-.gpu/sweep-cuda.tar.xz}
# shellcheck source=scripts/gpu-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/gpu-env.sh" "$BUNDLE" || exit 1
LOG=${SWEEPS_LOG:-${OUT:-/tmp}/gpu-sweeps.log}
: > "$LOG"
timed() {
  local s; s=$(date +%s%N)
  "$@" >> "$LOG" 2>&1
  local rc=$?
  echo "rc=$rc in $(( ($(date +%s%N) - s) / 1000000 )) ms: ${*:2}"
}
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
for f in ${SWEEPS-quickstart precision}; do
  db="$W/runs-$f/sweep.db"
  timed "$W/sweep" run "sweeps/$f.toml" --db "$db" --devices 0
  "$W/sweep" report --db "$db"
done
for n in ${RPD-1 2 4 auto}; do
  db="$W/runs-lr_batch-$n/sweep.db"
  timed "$W/sweep" run sweeps/lr_batch.toml --db "$db" --devices 0 --runs-per-device "$n"
  grep -m1 -E "runs, .* to train" "$LOG" | tail -1
  "$W/sweep" report --db "$db" | tail -20
done
