"""PyTorch eager training speed: the peer of examples/gpu_bench.rs (scripts/gpu-bench.sh runs both).

    python3 benches/gpu_peer.py MODEL SIZE BATCH [--precision fp32|bf16] [--steps N] [--device cuda|cpu]

Same measurement as gpu_bench: a fixed random batch made once on the device (no data loading),
1000 classes, SGD lr 0.01 momentum 0.9 (PyTorch's default foreach implementation), 5 warm-up
steps, then N timed steps (default 20) between two synchronisations, then 5 steps timed phase
by phase. PyTorch's defaults otherwise: NCHW, cudnn.benchmark = False, cuDNN TF32 allowed
(torch.backends.cudnn.allow_tf32 = True), matmul TF32 off. bf16 is
torch.autocast(dtype=torch.bfloat16) around the forward pass with an f32 loss.

Models: torchvision's resnet18/34/50/101/152, timm's legacy_xception (Keras' Xception), and the
users' cnn (Keras baseline: 3 convs 32/64/64, 2 max-pools, dense 512, dropout).
Prints one RESULT line of key=value pairs.
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def cnn(classes, size, w=32):
    # Keras baseline of the seeds (src/model/cnn.rs): conv3x3 valid, pool 2, conv, pool, conv,
    # flatten, dense 16w, softmax; dropout 0.25/0.25/0.5.
    def out(n):
        n = (n - 2) // 2
        n = (n - 2) // 2
        return n - 2
    s = out(size)
    return nn.Sequential(
        nn.Conv2d(3, w, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(w, 2 * w, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(2 * w, 2 * w, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(2 * w * s * s, 16 * w), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16 * w, classes))


def build(name, size):
    if name == "xception":
        import timm
        return timm.create_model("legacy_xception", pretrained=False, num_classes=1000)
    if name == "cnn":
        return cnn(1000, size)
    import torchvision
    return getattr(torchvision.models, name)(weights=None, num_classes=1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("size", type=int)
    ap.add_argument("batch", type=int)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    model = build(a.model, a.size).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(a.batch, 3, a.size, a.size, device=dev) * 2 - 1
    y = torch.randint(0, 1000, (a.batch,), device=dev)
    bf16 = a.precision == "bf16"

    def forward():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        return F.cross_entropy(logits.float(), y)

    def step():
        loss = forward()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    first = step().item()
    for _ in range(4):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    secs = time.perf_counter() - t
    ms_step = 1e3 * secs / a.steps
    ips = a.batch * a.steps / secs

    fwd = bwd = upd = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        loss = forward()
        sync()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        sync()
        t3 = time.perf_counter()
        fwd, bwd, upd = fwd + t1 - t0, bwd + t2 - t1, upd + t3 - t2
    last = loss.item()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{a.model} {a.size}x{a.size} batch {a.batch} {a.precision} (PyTorch {torch.__version__}): "
          f"{ms_step:.1f} ms/step, {ips:.0f} img/s; forward {200 * fwd:.1f} ms, backward "
          f"{200 * bwd:.1f} ms, update {200 * upd:.1f} ms; {params} params; loss {first:.3f} -> {last:.3f}")
    print(f"RESULT side=pytorch model={a.model} size={a.size} batch={a.batch} precision={a.precision} "
          f"img_s={ips:.1f} ms_step={ms_step:.2f} fwd_ms={200 * fwd:.2f} bwd_ms={200 * bwd:.2f} "
          f"upd_ms={200 * upd:.2f}", flush=True)


if __name__ == "__main__":
    main()
