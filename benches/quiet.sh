# Sourced by the compare scripts: each measured round waits for a quiet machine first.
# Another process slows PyTorch's OpenMP threads more than ours, so a ratio taken under load
# flatters sweep; a round that cannot start with the 1-minute load average at or below
# MAX_LOAD (default 0.5) within QUIET_WAIT seconds (default 600) is not reported.

max_load=${MAX_LOAD:-0.5}
quiet_wait=${QUIET_WAIT:-600}

load1() { cut -d' ' -f1 /proc/loadavg; }

# Waits until the 1-minute load average is at most $max_load; fails after $quiet_wait s.
wait_quiet() {
  local waited=0
  while awk -v l="$(load1)" -v m="$max_load" 'BEGIN { exit !(l > m) }'; do
    if ((waited >= quiet_wait)); then
      return 1
    fi
    sleep 5
    waited=$((waited + 5))
  done
}

# quiet_round NAME FILE CMD...: runs CMD into FILE (and the terminal) once the machine is
# quiet, noting the load before and after in $out/loads; skips it, saying why, otherwise.
quiet_round() {
  local name=$1 file=$2
  shift 2
  if ! wait_quiet; then
    echo "== $name: skipped, the load average stayed above $max_load for ${quiet_wait}s ($(load1))"
    return 0
  fi
  local before
  before=$(load1)
  echo "== $name (load average $before)"
  "$@" | tee "$file"
  echo "$name: load $before before, $(load1) after" >>"$out/loads"
}

# Fails unless some round of each side was measured.
require_rounds() {
  local pattern
  for pattern in "$@"; do
    if ! compgen -G "$out/$pattern" >/dev/null; then
      echo "no round matching $pattern started on a quiet machine (MAX_LOAD=$max_load): nothing to report" >&2
      exit 1
    fi
  done
}
