#!/usr/bin/env python3
"""PyTorch peer of benches/train_speed.rs: the same ResNet-18 and per-op timings on the CPU.

The network is torchvision's BasicBlock ResNet-18 layout with widths 16/32/64/128 and the
stem src/model/resnet.rs uses: for inputs under 96 px a CIFAR-style 3x3 stride-1 conv + BN +
ReLU without max-pool, otherwise torchvision's 7x7/2 conv + BN + ReLU + 3x3/2 max-pool.
Batch 32, 10 classes, SGD momentum 0.9, random data. Every figure is also printed as
`RESULT <key> <value>` (img/s or ms), the keys matching the Rust bench.

    python3 benches/pytorch_peer.py [--threads N] [--steps N] [--sizes 32,64]

Needs torch (CPU is enough): python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 32


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, blocks=(2, 2, 2, 2), channels=3, size=32, classes=10, w=16):
        super().__init__()
        imagenet = size >= 96
        if imagenet:
            self.conv1 = nn.Conv2d(channels, w, 7, 2, 3, bias=False)
        else:
            self.conv1 = nn.Conv2d(channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.stem_pool = imagenet
        layers, cin = [], w
        for stage, n in enumerate(blocks):
            cout = w << stage
            stage_blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                stage_blocks.append(BasicBlock(cin, cout, stride))
                cin = cout
            layers.append(nn.Sequential(*stage_blocks))
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if self.stem_pool:
            x = F.max_pool2d(x, 3, 2, 1)
        x = self.layers(x)
        return self.fc(x.mean((2, 3)))


def train_speed(size, steps):
    model = ResNet(size=size)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(BATCH, 3, size, size) * 2 - 1
    labels = torch.arange(BATCH) % 10

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()

    step()
    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - t)


def time_ms(f):
    t = time.perf_counter()
    f()
    first = time.perf_counter() - t
    reps = max(3, min(30, int(2.0 / first)))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def fwd_bwd(shapes, op):
    ts = [(torch.rand(*s) * 2 - 1).requires_grad_() for s in shapes]

    def run():
        y = op(*ts)
        y.backward(torch.ones_like(y))

    return time_ms(run)


def batch_norm(x, g, b):
    c = g.shape[0]
    return F.batch_norm(x, torch.zeros(c), torch.ones(c), g, b, training=True, momentum=0.1, eps=1e-5)


OPS = [
    ("conv3x3", "conv 3x3 64->64, 32x32", [(BATCH, 64, 32, 32), (64, 64, 3, 3)],
     lambda x, k: F.conv2d(x, k, None, 1, 1)),
    ("conv1x1", "conv 1x1 64->128 stride 2, 32x32", [(BATCH, 64, 32, 32), (128, 64, 1, 1)],
     lambda x, k: F.conv2d(x, k, None, 2, 0)),
    ("depthwise", "depthwise 3x3, 728 ch, 19x19", [(BATCH, 728, 19, 19), (728, 1, 3, 3)],
     lambda x, k: F.conv2d(x, k, None, 1, 1, 1, 728)),
    ("maxpool", "max-pool 3x3/2 pad 1, 64 ch, 56x56", [(BATCH, 64, 56, 56)],
     lambda x: F.max_pool2d(x, 3, 2, 1)),
    ("batchnorm", "batch norm (train), 64 ch, 32x32", [(BATCH, 64, 32, 32), (64,), (64,)],
     batch_norm),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--sizes", default="32,64")
    p.add_argument("--no-ops", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"pytorch_peer: torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {BATCH}")
    print("\n## Training (img/s)")
    for size in [int(s) for s in a.sizes.split(",")]:
        steps = a.steps if size == 32 else (a.steps + 1) // 2
        v = train_speed(size, steps)
        print(f"{size}x{size} PyTorch, {a.threads} thread(s): {v:8.1f} img/s")
        print(f"RESULT train_{size} {v:.2f}")
    if a.no_ops:
        return
    print(f"\n## Ops, forward + backward, batch {BATCH} (ms, median)")
    for key, label, shapes, op in OPS:
        v = fwd_bwd(shapes, op)
        print(f"{label:<40} PyTorch {v:9.2f} ms")
        print(f"RESULT op_{key} {v:.3f}")


if __name__ == "__main__":
    main()
