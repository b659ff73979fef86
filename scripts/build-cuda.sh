#!/usr/bin/env bash
# Builds the CUDA flavour of sweep on a machine with no GPU and no CUDA install.
#
#   scripts/build-cuda.sh                 # toolchain (first time) + release build
#   scripts/build-cuda.sh --env           # print the environment to `eval` for other cargo commands
#   scripts/build-cuda.sh -- ARGS...      # toolchain, then `cargo ARGS...` in that environment
#
# The CUDA 13.0 toolchain (nvcc, headers, libcudart/libcublas/libcurand/libnvrtc) comes from
# NVIDIA's PyPI wheels in a venv under $SWEEP_CUDA_CACHE (default ~/.cache/sweep-cuda); a stub
# libcuda.so (the driver API, from cudarc's own list of functions) satisfies the linker. At run
# time the real driver's libcuda.so.1 and the CUDA 13 libraries are needed: see docs/CUDA.md.
# Idempotent: a second run reuses the venv and the stub and only runs cargo.
#
# Settings (environment):
#   SWEEP_CUDA_CACHE   toolchain folder            (default ~/.cache/sweep-cuda)
#   CUDA_COMPUTE_CAP   GPU generation for the PTX  (default 90: H100/H200; 80: A100; 89: L4/4090)
#   CUDAFORGE_THREADS  parallel nvcc jobs in candle-kernels' build (default: all cores)
#   CARGO_TARGET_DIR   build folder                (default <repo>/target-cuda; never target/)
#   PYTHON             python3 with venv + pip     (default python3)
#   SWEEP_CUDA_BUNDLE  if set, also write the stripped sweep + cuda_smoke there as a .tar.xz
#                      (about 14 MB; e.g. .gpu/sweep-cuda.tar.xz to carry to a GPU machine)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SWEEP_CUDA_CACHE:-$HOME/.cache/sweep-cuda}
PYTHON=${PYTHON:-python3}
# Pinned to CUDA 13.0: PTX from nvcc 13.0 is ISA 9.0, which driver 580 (CUDA 13.0) loads; a
# newer nvcc would emit PTX that driver rejects (CUDA_ERROR_UNSUPPORTED_PTX_VERSION).
WHEELS=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
)
STAMP="$CACHE/.wheels-$(printf '%s\n' "${WHEELS[@]}" | sha256sum | cut -c1-12)"
ROOT="$CACHE/cuda"   # a CUDA_HOME-shaped folder: bin include nvvm -> the wheels; lib64 = links + stub

log() { echo "build-cuda: $*" >&2; }

# 1. The wheels.
if [[ ! -e $STAMP ]]; then
  log "installing CUDA 13.0 wheels into $CACHE/venv (about 1.2 GB)"
  mkdir -p "$CACHE"
  [[ -x $CACHE/venv/bin/pip ]] || "$PYTHON" -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install --quiet --disable-pip-version-check "${WHEELS[@]}"
  touch "$STAMP"
fi
CU13=$(ls -d "$CACHE"/venv/lib/python3*/site-packages/nvidia/cu13 | head -n1)
[[ -x $CU13/bin/nvcc ]] || { log "no nvcc in $CU13: remove $CACHE and retry"; exit 1; }

# 2. The CUDA_HOME-shaped root. Only links: cheap to rebuild every time, so always in sync.
mkdir -p "$ROOT/lib64/stubs"
for d in bin include nvvm; do ln -sfn "$CU13/$d" "$ROOT/$d"; done
for f in "$CU13"/lib/*.so.* "$CU13"/lib/*.a; do ln -sf "$f" "$ROOT/lib64/"; done
for lib in cudart cublas cublasLt curand nvrtc; do        # the unversioned names -l needs
  so=$(cd "$ROOT/lib64" && ls lib$lib.so.[0-9]* | sort | head -n1)
  ln -sf "$so" "$ROOT/lib64/lib$lib.so"
done

# 3. Fetch the crates (cudarc's list of driver functions makes the libcuda stub).
cd "$REPO"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target-cuda}
if [[ ${SWEEP_CUDA_OFFLINE:-0} != 1 ]]; then cargo fetch --quiet; fi
CUDARC=$(cargo metadata --format-version 1 2>/dev/null \
  | "$PYTHON" -c 'import json,sys,os; m=json.load(sys.stdin); print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"]=="cudarc"))')
# stub SYS PATTERN SONAME STATUS STUB: a library with soname SONAME defining every function
# of cudarc's bindings SYS that matches PATTERN, each returning STATUS. Enough to link; the
# real library is loaded at run time. Remade when the bindings or this script change.
stub() {
  local sys=$1 pattern=$2 soname=$3 status=$4 out=$5 src
  [[ ! -e $out || $sys -nt $out || $0 -nt $out ]] || return 0
  log "making the stub $out from $sys"
  src=$(mktemp --suffix=.c)
  grep -oE "$pattern" "$sys" | awk '{print $4}' | sort -u \
    | awk -v s="$status" '{print "int " $1 "(void) { return " s "; }"}' > "$src"
  cc -shared -fPIC -Wl,-soname,"$soname" -o "$out" "$src"
  rm -f "$src"
}
# The driver API: 34 = CUDA_ERROR_STUB_LIBRARY.
stub "$CUDARC/src/driver/sys/mod.rs" '^pub unsafe fn cu[A-Za-z0-9_]+' libcuda.so.1 34 \
  "$ROOT/lib64/stubs/libcuda.so"
# cuDNN is linked (candle's `cudnn` feature, our cuDNN ops) but only loaded at run time, from
# the machine's cuDNN 9 (PyTorch's nvidia-cudnn wheel): a stub of cudarc's cuDNN functions
# spares a 700 MB wheel. 1 = CUDNN_STATUS_NOT_INITIALIZED.
stub "$CUDARC/src/cudnn/sys/mod.rs" 'pub unsafe fn cudnn[A-Za-z0-9_]+' libcudnn.so.9 1 \
  "$ROOT/lib64/stubs/libcudnn.so"

# 4. The environment that candle-kernels (cudaforge: nvcc, CUDA_COMPUTE_CAP) and cudarc
#    (nvcc --version; link search under $CUDA_ROOT/lib64{,/stubs}) read.
ENV=(
  "PATH=$ROOT/bin:$PATH"
  "NVCC=$ROOT/bin/nvcc"
  "CUDA_HOME=$ROOT" "CUDA_ROOT=$ROOT" "CUDA_PATH=$ROOT"
  "CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}"
  "CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)}"   # nvcc jobs; cudaforge's default is half the cores
  "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
  "LIBRARY_PATH=$ROOT/lib64:$ROOT/lib64/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
)
if [[ ${1:-} == --env ]]; then
  for kv in "${ENV[@]}"; do printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"; done
  exit 0
fi
export "${ENV[@]}"

if [[ ${1:-} == -- ]]; then shift; exec cargo "$@"; fi
log "cargo build (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, target dir $CARGO_TARGET_DIR)"
cargo build --release --no-default-features --features cuda --example cuda_smoke --example gpu_bench \
  --bin sweep "$@"
log "built: $CARGO_TARGET_DIR/release/sweep and $CARGO_TARGET_DIR/release/examples/cuda_smoke"
log "NEEDED: $(readelf -d "$CARGO_TARGET_DIR/release/sweep" | grep -oP 'NEEDED.*\[\K[^]]+' | tr '\n' ' ')"
if [[ -n ${SWEEP_CUDA_BUNDLE:-} ]]; then
  tmp=$(mktemp -d)
  strip -o "$tmp/sweep" "$CARGO_TARGET_DIR/release/sweep"
  strip -o "$tmp/cuda_smoke" "$CARGO_TARGET_DIR/release/examples/cuda_smoke"
  strip -o "$tmp/gpu_bench" "$CARGO_TARGET_DIR/release/examples/gpu_bench"
  mkdir -p "$(dirname "$SWEEP_CUDA_BUNDLE")"
  tar -C "$tmp" -cf - sweep cuda_smoke gpu_bench | xz -T0 -6 > "$SWEEP_CUDA_BUNDLE"
  rm -rf "$tmp"
  log "bundle: $SWEEP_CUDA_BUNDLE ($(du -h "$SWEEP_CUDA_BUNDLE" | cut -f1))"
fi
