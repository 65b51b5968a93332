#!/usr/bin/env python3
"""Where ODIN's time goes on the CPU, at batch 1 (the reference code's style) and batched.

Times, per image, on random inputs of the model's shape (no decoding): the forward pass alone, and
ODIN (forward with gradients, backward to the input, forward on x̃), then profiles one ODIN run with
torch.profiler and groups the operators' self time. From these it derives the fastest ODIN can be
here: it evaluates the network twice per image, so no implementation beats 2 × the batched forward
time. Prints one JSON line (scripts/bench.py renders it).

    python scripts/profile_odin.py [--model models/fmnist-resnet.pt] [--threads N] [--batch-size 64]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
from make_fixtures import load_card  # noqa: E402

T, EPS = 1000.0, 0.0014


def logits_of(module, x):
    """The logits of a model that may also return features (a tuple: logits first)."""
    out = module(x)
    return out[0] if isinstance(out, tuple) else out


def odin(module, x):
    xg = x.detach().clone().requires_grad_(True)
    logits = logits_of(module, xg)
    loss = -(F.log_softmax(logits / T, dim=1).gather(1, logits.argmax(1, keepdim=True))).sum()
    loss.backward()
    x_tilde = (x - EPS * torch.sign(xg.grad)).detach()
    with torch.no_grad():
        return F.softmax(logits_of(module, x_tilde) / T, dim=1).max(1).values


def forward(module, x):
    with torch.no_grad():
        return module(x)


def ms_per_image(fn, module, x, images):
    """Median over 5 timings of `fn` on enough batches for `images` images, in ms per image."""
    for _ in range(3):
        fn(module, x)
    reps = max(1, images // len(x))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            fn(module, x)
        times.append((time.perf_counter() - start) / (reps * len(x)) * 1e3)
    return sorted(times)[2]


GROUPS = [
    ("convolution forward", ("convolution", "conv2d", "_convolution", "mkldnn_convolution", "thnn_conv")),
    ("convolution backward", ("convolution_backward",)),
    ("batch norm forward", ("batch_norm", "_batch_norm_impl_index", "native_batch_norm")),
    ("batch norm backward", ("native_batch_norm_backward", "batch_norm_backward")),
]


def group_of(name):
    name = name.removeprefix("aten::")
    for label, keys in GROUPS:
        if any(name == k for k in keys):
            return label
    if "Backward" in name or "backward" in name:
        return "other backward (autograd nodes)"
    return "other operators"


def profile_groups(module, x, images):
    """Self CPU time per operator group, ms per image, over one ODIN pass on `images` images."""
    reps = max(1, images // len(x))
    odin(module, x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            odin(module, x)
    groups = {}
    for event in prof.key_averages():
        label = group_of(event.key)
        groups[label] = groups.get(label, 0.0) + event.self_cpu_time_total / 1e3 / (reps * len(x))
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models" / "fmnist-resnet.pt"))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--images", type=int, default=640)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    card = load_card(Path(args.model).with_suffix(".toml"))
    module = torch.jit.load(args.model).eval()
    torch.manual_seed(0)
    c, h, w = card["input"]
    result = {"model": args.model, "threads": torch.get_num_threads(), "batch_size": args.batch_size}
    for b in (1, args.batch_size):
        x = torch.rand(b, c, h, w)
        images = args.images if b > 1 else args.images // 4
        result[f"batch_{b}"] = {
            "forward_ms": ms_per_image(forward, module, x, images),
            "odin_ms": ms_per_image(odin, module, x, images),
            "profile_ms": profile_groups(module, x, images),
        }
    result["odin_floor_ms"] = 2 * result[f"batch_{args.batch_size}"]["forward_ms"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
