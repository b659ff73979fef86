#!/usr/bin/env bash
# Runs the CUDA build on a GPU machine with no Rust toolchain: unpacks the bundle made by
#   SWEEP_CUDA_BUNDLE=.gpu/sweep-cuda.tar.xz scripts/build-cuda.sh
# finds the CUDA 13 libraries (PyTorch's pip packages, else the system), then runs
# `sweep --help`, `sweep devices`, examples/cuda_smoke and the quickstart sweep on GPU 0.
#   scripts/gpu-smoke.sh [BUNDLE]        (run from the repository root)
set -uo pipefail
BUNDLE=${1:-.gpu/sweep-cuda.tar.xz}
W=$(mktemp -d)
tar -xJf "$BUNDLE" -C "$W" || exit 1
step() { echo; echo "== $*"; }

step "GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader

step "CUDA 13 libraries"
need="libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudart.so.13 libnvrtc.so.13"
dirs=$(python3 - "$need" <<'EOF' 2>/dev/null
import glob, os, sys
need = sys.argv[1].split()
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
found = {}
for root in roots:
    for path in glob.glob(os.path.join(root, "**", "lib*.so*"), recursive=True):
        name = os.path.basename(path)
        if name in need and name not in found:
            found[name] = os.path.dirname(path)
print(":".join(dict.fromkeys(found.values())))
EOF
)
if [[ -z $dirs ]]; then  # no PyTorch: look anywhere
  dirs=$(for l in $need; do find / -xdev -name "$l" -not -path '/proc/*' 2>/dev/null | head -n1; done \
    | xargs -r -n1 dirname | sort -u | paste -sd:)
fi
export LD_LIBRARY_PATH=$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$W/sweep" | grep -E 'cuda|cublas|curand|nvrtc|not found'
for l in $need; do
  p=$(ldconfig -p 2>/dev/null | grep -m1 "$l" | awk '{print $NF}')
  for d in ${dirs//:/ }; do [[ -e $d/$l ]] && p=$(readlink -f "$d/$l") && break; done
  echo "  $l -> ${p:-MISSING}"
done
pip list 2>/dev/null | grep -E '^(torch|nvidia-(cublas|curand|cuda-runtime|cuda-nvrtc))' | tr -s ' '

step "sweep --help"
"$W/sweep" --help; echo "rc=$?"
step "sweep devices"
"$W/sweep" devices; echo "rc=$?"

step "cuda_smoke 50 64"
"$W/cuda_smoke" 50 64; echo "rc=$?"
step "cuda_smoke 30 256"
"$W/cuda_smoke" 30 256; echo "rc=$?"

step "sweep run sweeps/quickstart.toml --devices 0"
s=$(date +%s%N)
"$W/sweep" run sweeps/quickstart.toml --db "$W/runs/sweep.db" --devices 0
echo "rc=$? in $(( ($(date +%s%N) - s) / 1000000 )) ms"
"$W/sweep" report --db "$W/runs/sweep.db"; echo "rc=$?"
