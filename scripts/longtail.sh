#!/usr/bin/env bash
# The long-tailed Fashion-MNIST of issue 12: class k keeps floor(6000 * 0.1^(k/9)) training
# images (6000 down to 600, 10:1), as symlinks into a Fashion-MNIST folder built by
# ../shared/data/fetch.sh DIR fashion_mnist; the test folder is linked whole (balanced).
#   scripts/longtail.sh DIR/fashion_mnist data/fetched/longtail
#   sweep run sweeps/longtail.toml && sweep report --by balance --split test
set -euo pipefail
src=$(cd "${1:?usage: longtail.sh FASHION_MNIST_DIR OUT_DIR}" && pwd)
out=${2:?usage: longtail.sh FASHION_MNIST_DIR OUT_DIR}
mkdir -p "$out/train"
k=0
for class in $(ls "$src/train" | sort); do
  [[ -d $src/train/$class ]] || continue
  keep=$(python3 -c "print(int(6000 * 0.1 ** ($k / 9)))")
  mkdir -p "$out/train/$class"
  ls "$src/train/$class" | grep '\.png$' | sort | head -n "$keep" | while read -r f; do
    ln -sf "$src/train/$class/$f" "$out/train/$class/$f"
  done
  echo "$class: $keep"
  k=$((k + 1))
done
ln -sfn "$src/test" "$out/test"
