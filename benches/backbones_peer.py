#!/usr/bin/env python3
"""PyTorch peer of benches/backbones.rs: the same backbones (torchvision's, and timm's
legacy_xception for xception: the architectures tests/equivalence.rs checks sweep's against),
batch 32, 3 channels, 10 classes, SGD momentum 0.9, random data, train mode. Each backbone
runs in its own child process; peak memory is its ru_maxrss (PyTorch's own libraries included,
about 300 MiB of it). Prints `RESULT <backbone>@<size> <img/s> <peak MiB> <steps>`.

    python3 benches/backbones_peer.py [--threads N] [--seconds S] [--only resnet18@112,...]

Needs torch, torchvision and timm (CPU is enough; no weights are downloaded).
"""
import argparse
import os
import resource
import subprocess
import sys
import time

CASES = [("resnet18", 112), ("resnet50", 112), ("vgg16", 112), ("xception", 150),
         ("efficientnet_b0", 112), ("mobilenet_v2", 112)]
BATCH, CLASSES = 32, 10


def child(name, size, threads, seconds):
    import torch
    import torchvision
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    if name == "xception":
        import timm
        model = timm.create_model("legacy_xception", pretrained=False, num_classes=CLASSES)
    else:
        model = torchvision.models.get_model(name, weights=None, num_classes=CLASSES)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(BATCH, 3, size, size) * 2 - 1
    y = torch.arange(BATCH) % CLASSES

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    step()
    t, steps = time.perf_counter(), 0
    while steps < 3 or time.perf_counter() - t < seconds:
        step()
        steps += 1
    img_s = steps * BATCH / (time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {name}@{size} {img_s:.3f} {peak:.0f} {steps}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--only")
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        name, size = a.child.split("@")
        child(name, int(size), a.threads, a.seconds)
        return
    import torch
    print(f"PyTorch {torch.__version__} backbones peer: batch {BATCH}, {CLASSES} classes, "
          f"SGD momentum 0.9, {a.threads} thread(s), >= {a.seconds} s per backbone")
    only = a.only.split(",") if a.only else None
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    for name, size in CASES:
        case = f"{name}@{size}"
        if only and case not in only:
            continue
        out = subprocess.run([sys.executable, __file__, "--child", case, "--threads",
                              str(a.threads), "--seconds", str(a.seconds)],
                             capture_output=True, text=True, env=env)
        line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT")), None)
        if line:
            f = line.split()
            print(f"{case:22} {f[2]:>8} img/s  peak {f[3]:>6} MiB  ({f[4]} steps)")
            print(line)
        else:
            print(f"{case:22} failed: {out.stderr.strip()[-400:]}")


if __name__ == "__main__":
    main()
