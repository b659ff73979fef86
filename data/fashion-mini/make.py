#!/usr/bin/env python3
"""Build data/fashion-mini from the output of shared/data/fetch.sh (python3 stdlib only).

Usage: python3 data/fashion-mini/make.py FETCH_DIR [OUT_DIR]
  FETCH_DIR  the directory given to `fetch.sh FETCH_DIR fashion_mnist`
  OUT_DIR    defaults to the folder this script is in

Selection rule (deterministic, no randomness): for each class, the first 200 train and
the first 50 test images in upstream Fashion-MNIST order, i.e. the rows of fetch.sh's
manifest.csv in file order. Files are copied byte for byte, keeping their names
(<class>/<nnnnn>.png, nnnnn = position within the class upstream), and a manifest.csv
(path,label,source_index) listing exactly the copied files is written per split.
"""
import csv
import os
import shutil
import sys

PER_CLASS = {"train": 200, "test": 50}


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    src_root = os.path.join(sys.argv[1], "fashion_mnist")
    out_root = sys.argv[2] if len(sys.argv) == 3 else os.path.dirname(os.path.abspath(__file__))
    for split, quota in PER_CLASS.items():
        src = os.path.join(src_root, split)
        manifest = os.path.join(src, "manifest.csv")
        if not os.path.isfile(manifest):
            sys.exit(f"{manifest} not found: run `bash shared/data/fetch.sh {sys.argv[1]} fashion_mnist` first")
        out = os.path.join(out_root, split)
        if os.path.isdir(out):
            shutil.rmtree(out)
        taken, rows = {}, []
        with open(manifest, newline="") as f:
            for row in csv.DictReader(f):
                label = row["label"]
                if taken.get(label, 0) >= quota:
                    continue
                taken[label] = taken.get(label, 0) + 1
                os.makedirs(os.path.join(out, label), exist_ok=True)
                shutil.copyfile(os.path.join(src, row["path"]), os.path.join(out, row["path"]))
                rows.append((row["path"], label, row["source_index"]))
        short = {k: v for k, v in taken.items() if v < quota}
        if short or len(taken) != 10:
            sys.exit(f"{src}: expected 10 classes with {quota} images each, got {taken}")
        with open(os.path.join(out, "manifest.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["path", "label", "source_index"])
            w.writerows(rows)
        print(f"{out}: {len(rows)} images, {quota} per class, {len(taken)} classes")


if __name__ == "__main__":
    main()
