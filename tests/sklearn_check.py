#!/usr/bin/env python3
"""Check `sweep report --best --format json` against scikit-learn, from its stored confusion matrix.

    sweep report --best --format json > best.json && python3 tests/sklearn_check.py best.json

Needs scikit-learn (pip install scikit-learn). Rebuilds y_true / y_pred from the confusion matrix
(rows = true class) and compares every per-class and averaged number with
sklearn.metrics.precision_recall_fscore_support / accuracy_score. Exits 1 on any mismatch.
"""
import json
import sys

from sklearn.metrics import accuracy_score, precision_recall_fscore_support


def check(report, where):
    m = report["confusion"]
    y_true, y_pred = [], []
    for t, row in enumerate(m):
        for p, n in enumerate(row):
            y_true += [t] * n
            y_pred += [p] * n
    labels = list(range(len(m)))
    bad = []
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    for k, c in enumerate(report["classes"]):
        for name, ours, ref in (("precision", c["precision"], p[k]), ("recall", c["recall"], r[k]),
                                ("f1", c["f1"], f[k]), ("support", c["support"], s[k])):
            if abs(ours - ref) > 1e-9:
                bad.append(f"{where} class {c['name']} {name}: sweep {ours} sklearn {ref}")
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        for name, ref in (("precision", p), ("recall", r), ("f1", f)):
            ours = report[f"{avg}_{name}"]
            if abs(ours - ref) > 1e-9:
                bad.append(f"{where} {avg}_{name}: sweep {ours} sklearn {ref}")
    acc = accuracy_score(y_true, y_pred)
    if abs(report["accuracy"] - acc) > 1e-9:
        bad.append(f"{where} accuracy: sweep {report['accuracy']} sklearn {acc}")
    return bad, len(y_true)


best = json.load(open(sys.argv[1]))
problems, n = check(best, "validation")
print(f"validation: {n} images, {len(best['classes'])} classes checked")
if best.get("test"):
    more, n = check(best["test"], "test")
    problems += more
    print(f"test: {n} images checked")
for p in problems:
    print(p)
print("agree with scikit-learn" if not problems else f"{len(problems)} mismatches")
sys.exit(1 if problems else 0)
