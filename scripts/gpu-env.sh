# Sourced by the scripts that run the CUDA build on a GPU machine with no Rust toolchain
# (gpu-smoke.sh, gpu-bench.sh): unpacks the bundle made by
#   SWEEP_CUDA_BUNDLE=.gpu/sweep-cuda.tar.xz scripts/build-cuda.sh
# into $W (once per shell), finds the CUDA 13 and cuDNN 9 libraries (PyTorch's pip packages,
# else anywhere on the system), exports LD_LIBRARY_PATH and prints what was found.
#   source scripts/gpu-env.sh [BUNDLE]
BUNDLE=${1:-.gpu/sweep-cuda.tar.xz}
if [[ -z ${W:-} || ! -x ${W:-}/sweep ]]; then
  W=$(mktemp -d)
  tar -xJf "$BUNDLE" -C "$W" || return 1
fi
export W

echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader

echo "== CUDA 13 and cuDNN 9 libraries"
need="libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudart.so.13 libnvrtc.so.13 libcudnn.so.9"
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
ldd "$W/sweep" | grep -E 'cuda|cublas|curand|nvrtc|cudnn|not found'
for l in $need; do
  p=$(ldconfig -p 2>/dev/null | grep -m1 "$l" | awk '{print $NF}')
  for d in ${dirs//:/ }; do [[ -e $d/$l ]] && p=$(readlink -f "$d/$l") && break; done
  echo "  $l -> ${p:-MISSING}"
done
python3 -m pip list 2>/dev/null | grep -E '^(torch|timm|nvidia-(cublas|curand|cuda-runtime|cuda-nvrtc|cudnn))' | tr -s ' '
true
