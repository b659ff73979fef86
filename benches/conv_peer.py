"""PyTorch's side of benches/conv.rs: the forward pass, the input gradient and the weight
gradient of the same convolutions (batch 32), each timed on its own, through the ops PyTorch's
autograd calls (aten.convolution and aten.convolution_backward with one output mask, oneDNN on
the CPU). Prints the same `RESULT <shape>:<pass> <ms>` lines.

    python benches/conv_peer.py [--threads N] [--only NAME,NAME] [--seconds S]
"""
import argparse
import time

import torch

BATCH = 32

# name, input channels, input size, output channels, kernel, stride, padding: the list of
# benches/conv.rs, in the same order.
SHAPES = [
    ("c3_64_32", 64, 32, 64, 3, 1, 1),
    ("vgg_b1", 64, 112, 64, 3, 1, 1),
    ("vgg_b2", 128, 56, 128, 3, 1, 1),
    ("r18_stem", 3, 112, 64, 7, 2, 3),
    ("r18_l1", 64, 28, 64, 3, 1, 1),
    ("r18_l2_down", 64, 28, 128, 3, 2, 1),
    ("r18_l2", 128, 14, 128, 3, 1, 1),
    ("r18_l3", 256, 7, 256, 3, 1, 1),
    ("r18_l4_down", 256, 7, 512, 3, 2, 1),
    ("r18_l4", 512, 4, 512, 3, 1, 1),
    ("r18_proj4", 256, 7, 512, 1, 2, 0),
    ("r50_expand1", 64, 28, 256, 1, 1, 0),
    ("r50_reduce3", 1024, 7, 256, 1, 1, 0),
    ("r50_l3", 256, 7, 256, 3, 1, 1),
    ("w16_32_l1", 16, 32, 16, 3, 1, 1),
    ("w16_32_l2", 32, 16, 32, 3, 1, 1),
    ("w16_32_l3", 64, 8, 64, 3, 1, 1),
    ("w16_32_l4", 128, 4, 128, 3, 1, 1),
    ("w16_64_l1", 16, 64, 16, 3, 1, 1),
    ("w16_64_l2", 32, 32, 32, 3, 1, 1),
    ("w16_64_l3", 64, 16, 64, 3, 1, 1),
    ("w16_64_l4", 128, 8, 128, 3, 1, 1),
]


def time_ms(seconds, f):
    f()
    start = time.perf_counter()
    times = []
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    only = set(a.only.split(",")) if a.only else None
    aten = torch.ops.aten
    print(f"conv passes, batch {BATCH}, {a.threads} thread(s), PyTorch {torch.__version__}: ms")
    with torch.no_grad():
        for name, ci, size, co, k, s, p in SHAPES:
            if only and name not in only:
                continue
            out = (size + 2 * p - k) // s + 1
            x = torch.rand(BATCH, ci, size, size) * 2 - 1
            w = (torch.rand(co, ci, k, k) * 2 - 1) * 0.05
            dy = torch.rand(BATCH, co, out, out) * 2 - 1
            conv = (None, [s, s], [p, p], [1, 1], False, [0, 0], 1)

            def back(mask):
                return lambda: aten.convolution_backward(dy, x, w, [0], *conv[1:], mask)

            fwd = time_ms(a.seconds, lambda: aten.convolution(x, w, *conv))
            dx = time_ms(a.seconds, back([True, False, False]))
            dw = time_ms(a.seconds, back([False, True, False]))
            print(f"{name:<12} fwd {fwd:8.2f} dx {dx:8.2f} dw {dw:8.2f}")
            for pas, ms in (("fwd", fwd), ("dx", dx), ("dw", dw)):
                print(f"RESULT {name}:{pas} {ms:.3f}")


if __name__ == "__main__":
    main()
