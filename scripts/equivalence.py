"""Writes layer-output equivalence fixtures for sweep's backbones from the reference libraries.

Each case is one reference model (torchvision, or timm's legacy_xception) built with PyTorch's
own random initialisation, its batch-norm affine parameters and running statistics randomised,
evaluated in eval mode on a random batch. The case is written as
  NAME.safetensors (or NAME.pth)   the state dict, the reference library's tensor names
  NAME.io.safetensors              `input` [N, C, H, W] and the reference's `logits`
and `manifest.json` lists every case with the sweep model spec that must reproduce the logits
(`tests/equivalence.rs` reads it). No weights or data are downloaded.

  python scripts/equivalence.py --set small OUT   # the committed CI fixtures (tests/fixtures/equivalence)
  python scripts/equivalence.py --set full OUT    # every backbone with a PyTorch twin, real widths

The small set keeps each reference architecture and shrinks its widths the way sweep's `width`
does: torchvision's MobileNetV2(width_mult) and EfficientNet(_efficientnet_conf(width_mult))
directly; for the families whose constructors have no width argument (ResNet, VGG, AlexNet,
legacy_xception) every convolution, batch norm and linear layer of the reference module tree
is rebuilt with its channel counts divided by the same factor, keeping kernel, stride, padding,
groups, bias and module order (`shrink`), then initialised by PyTorch.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torchvision
from safetensors.torch import save_file

CLASSES = 5


def shrink(model, factor):
    """Rebuilds every Conv2d / BatchNorm2d / Linear of `model` with 1/`factor` of its channels.

    The first convolution keeps its input channels (the image) and the last linear layer its
    outputs (the classes). Every other count must divide exactly.
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    first, last = convs[0], linears[-1]

    def div(c):
        if c % factor:
            raise SystemExit(f"{c} channels do not divide by {factor}")
        return c // factor

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                cin = child.in_channels if child is first else div(child.in_channels)
                groups = 1 if child.groups == 1 else div(child.groups)
                new = nn.Conv2d(cin, div(child.out_channels), child.kernel_size, child.stride,
                                child.padding, child.dilation, groups, child.bias is not None,
                                child.padding_mode)
            elif isinstance(child, nn.BatchNorm2d):
                new = nn.BatchNorm2d(div(child.num_features), eps=child.eps,
                                     momentum=child.momentum)
            elif isinstance(child, nn.Linear):
                cout = child.out_features if child is last else div(child.out_features)
                new = nn.Linear(div(child.in_features), cout, child.bias is not None)
            else:
                continue
            setattr(parent, name, new)
    return model


def reinit_like_reference(model, family):
    """Applies the reference constructor's own weight initialisation to the rebuilt modules."""
    if family == "torchvision-resnet":
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    elif family == "torchvision-vgg":
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)
    # AlexNet and legacy_xception keep PyTorch's default (kaiming-uniform) layer init, as
    # their constructors do (legacy_xception re-inits convs with kaiming normal fan_out).
    elif family == "timm-xception":
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def randomise_norms(model, gen):
    """Batch norm: random scale, shift and running statistics (eval mode then uses them)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) * 0.6 + 0.7)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.8 + 0.6)


def tv(name, **kw):
    return torchvision.models.get_model(name, weights=None, num_classes=CLASSES, **kw)


def xception(**kw):
    import timm
    return timm.create_model("legacy_xception", pretrained=False, num_classes=CLASSES, **kw)


def efficientnet(arch, width_mult):
    from torchvision.models import efficientnet as e
    setting, last = e._efficientnet_conf(arch, width_mult=width_mult,
                                         depth_mult={"efficientnet_b0": 1.0,
                                                     "efficientnet_b1": 1.1,
                                                     "efficientnet_b2": 1.2}[arch])
    dropout = {"efficientnet_b0": 0.2, "efficientnet_b1": 0.2, "efficientnet_b2": 0.3}[arch]
    return e.EfficientNet(setting, dropout, num_classes=CLASSES, last_channel=last)


# (case, sweep backbone, sweep width, image size, builder, how it was built)
SMALL = [
    ("resnet18_w8", "resnet18", 8, 96,
     lambda: shrink(tv("resnet18"), 8), "torchvision resnet18, widths / 8", "torchvision-resnet"),
    ("resnet50_w4", "resnet50", 4, 97,
     lambda: shrink(tv("resnet50"), 16), "torchvision resnet50, widths / 16",
     "torchvision-resnet"),
    ("vgg11_bn_w2", "vgg11_bn", 2, 32,
     lambda: shrink(tv("vgg11_bn"), 32), "torchvision vgg11_bn, widths / 32", "torchvision-vgg"),
    ("vgg13_w1", "vgg13", 1, 35,
     lambda: shrink(tv("vgg13"), 64), "torchvision vgg13, widths / 64", "torchvision-vgg"),
    ("alexnet_w2", "alexnet", 2, 67,
     lambda: shrink(tv("alexnet"), 32), "torchvision alexnet, widths / 32", "torchvision-alexnet"),
    ("xception_w4", "xception", 4, 71,
     lambda: shrink(xception(), 8), "timm legacy_xception, widths / 8", "timm-xception"),
    ("mobilenet_v2_w8", "mobilenet_v2", 8, 33,
     lambda: tv("mobilenet_v2", width_mult=0.25), "torchvision MobileNetV2(width_mult=0.25)",
     None),
    ("efficientnet_b0_w8", "efficientnet_b0", 8, 35,
     lambda: efficientnet("efficientnet_b0", 0.25),
     "torchvision EfficientNet(_efficientnet_conf('efficientnet_b0', width_mult=0.25))", None),
]

TORCHVISION_FULL = ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
                    "vgg16_bn", "vgg19_bn", "resnet18", "resnet34", "resnet50", "resnet101",
                    "resnet152", "mobilenet_v2", "efficientnet_b0", "efficientnet_b1",
                    "efficientnet_b2"]
DEFAULT_WIDTH = {"mobilenet_v2": 32, "efficientnet_b0": 32, "efficientnet_b1": 32,
                 "efficientnet_b2": 32, "xception": 32}


def full_cases():
    cases = []
    for name in TORCHVISION_FULL:
        size = {"alexnet": 99, "resnet18": 112}.get(name, 97)
        cases.append((name, name, DEFAULT_WIDTH.get(name, 64), size,
                      (lambda n=name: tv(n)), f"torchvision {name}", None))
    cases.append(("xception", "xception", 32, 99, xception, "timm legacy_xception", None))
    return cases


def write_case(out, case, backbone, width, size, build, reference, fmt, seed, dtype):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = build()
    randomise_norms(model, gen)
    model.eval()
    x = torch.randn(2, 3, size, size, generator=gen)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    if dtype == torch.float16:
        # Stored as float16 to keep the committed fixtures small: the values are rounded
        # first, so the reference computes (in float32) with exactly the stored numbers.
        with torch.no_grad():
            for v in state.values():
                v.copy_(v.half().float())
        x = x.half().float()
    with torch.no_grad():
        logits = model(x)
    state = {k: v.detach().to(dtype).contiguous() for k, v in state.items()}
    weights = f"{case}.{fmt}"
    if fmt == "pth":
        torch.save(state, os.path.join(out, weights))
    else:
        save_file(state, os.path.join(out, weights))
    save_file({"input": x.to(dtype).contiguous(), "logits": logits.contiguous()},
              os.path.join(out, f"{case}.io.safetensors"))
    params = sum(p.numel() for p in model.parameters())
    print(f"{case:22s} {reference}: {params} parameters, logits max {logits.abs().max():.3g}",
          file=sys.stderr)
    return {"case": case, "backbone": backbone, "width": width, "channels": 3,
            "size": size, "classes": CLASSES, "weights": weights, "reference": reference,
            "parameters": params}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=["small", "full"], required=True)
    ap.add_argument("out")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cases = []
    if args.set == "small":
        for i, (case, bb, w, size, build, ref, family) in enumerate(SMALL):
            def built(build=build, family=family):
                m = build()
                reinit_like_reference(m, family)
                return m
            # One case as a PyTorch pickle, to check the .pth reader on a real torch.save file.
            fmt = "pth" if case == "resnet18_w8" else "safetensors"
            cases.append(write_case(args.out, case, bb, w, size, built, ref, fmt, 1000 + i,
                                    torch.float16))
    else:
        for i, (case, bb, w, size, build, ref, _) in enumerate(full_cases()):
            cases.append(write_case(args.out, case, bb, w, size, build, ref, "safetensors",
                                    2000 + i, torch.float32))
    import timm
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "timm": timm.__version__, "cases": cases}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
