#!/usr/bin/env python3
"""PyTorch side of scripts/bench.py: a straightforward batched implementation and the ODIN reference
code's one-image-at-a-time style, timed on the same model, images, batch size and threads as oodscope.

Decoding and preprocessing are tests/fixtures/make_fixtures.py's (PIL, then the torchvision-style
resize), inside a torch DataLoader. Prints one JSON line.

    python scripts/bench_torch.py --mode batched|reference --method msp|odin --id DIR --ood DIR \
        [--model models/fmnist-resnet.pt] [--batch-size 64] [--threads 1] [--workers 2] [--limit N]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
from make_fixtures import Reference, load_card, preprocess  # noqa: E402

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def list_images(folder):
    """Image files under `folder`, recursively, sorted, hidden files and folders skipped (as oodscope)."""
    root = Path(folder)
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in EXTENSIONS and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


class Images(torch.utils.data.Dataset):
    def __init__(self, paths, card):
        self.paths, self.card = paths, card

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as image:
            return preprocess(np.asarray(image), self.card)


def score(ref, module, x, method, t, eps):
    """MSP: one forward without gradients. ODIN: forward with gradients (its logits give the prediction),
    backward, x̃ = x − ε·sign(∇), forward on x̃ (as oodscope and the ODIN code do)."""
    if method == "msp":
        with torch.no_grad():
            return F.softmax(ref.run(module, x)[0], dim=1).max(1).values
    xg = x.detach().clone().requires_grad_(True)
    logits = ref.run(module, xg)[0]
    pred = logits.argmax(1, keepdim=True)
    loss = -(F.log_softmax(logits / t, dim=1).gather(1, pred)).sum()
    loss.backward()
    x_tilde = (x - eps * torch.sign(xg.grad)).detach()
    with torch.no_grad():
        return F.softmax(ref.run(module, x_tilde)[0] / t, dim=1).max(1).values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["batched", "reference"], required=True)
    ap.add_argument("--method", choices=["msp", "odin"], required=True)
    ap.add_argument("--model", default=str(ROOT / "models" / "fmnist-resnet.pt"))
    ap.add_argument("--id", action="append", required=True)
    ap.add_argument("--ood", action="append", required=True)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="first N images of each folder (0: all)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model_path = Path(args.model)
    card = load_card(model_path.with_suffix(".toml"))
    device = torch.device(args.device)
    module = torch.jit.load(str(model_path), map_location=device).eval()
    ref = Reference(card, [(module, None)])
    ref.mean, ref.std = ref.mean.to(device), ref.std.to(device)
    t, eps = (1000.0, 0.0014) if args.method == "odin" else (1.0, 0.0)
    paths = []
    for folder in args.id + args.ood:
        found = list_images(folder)
        paths += found[: args.limit] if args.limit else found
    batch_size = 1 if args.mode == "reference" else args.batch_size
    loader = torch.utils.data.DataLoader(
        Images(paths, card), batch_size=batch_size, shuffle=False, num_workers=args.workers
    )

    c, h, w = card["input"]
    for _ in range(2):  # TorchScript's first calls, not timed (as the Rust side)
        score(ref, module, torch.zeros(batch_size, c, h, w, device=device), args.method, t, eps)
    start = time.perf_counter()
    scores = []
    for x in loader:
        scores.append(score(ref, module, x.to(device), args.method, t, eps).cpu())
    seconds = time.perf_counter() - start
    n = sum(len(s) for s in scores)
    print(
        json.dumps(
            {
                "kind": f"python_{args.mode}",
                "method": args.method,
                "images": n,
                "batch_size": batch_size,
                "seconds": seconds,
                "images_per_s": n / seconds,
                "torch_threads": torch.get_num_threads(),
                "num_workers": args.workers,
                "torch": torch.__version__,
                "device": str(device),
                "mean_score": float(torch.cat(scores).mean()),
            }
        )
    )


if __name__ == "__main__":
    main()
