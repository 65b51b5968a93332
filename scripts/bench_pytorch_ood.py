#!/usr/bin/env python3
"""The pytorch-ood side of scripts/bench_compare.py: the detectors that `oodscope compare` scores in one
pass, run with pytorch-ood one after another, as a user of pytorch-ood would write it.

The model is the same TorchScript file (`torch.jit.load`; it returns `(logits, features)`), the card
`<stem>.toml` beside it gives the preprocessing (mean, std, input size, resize/crop) and the head
submodule whose weight W and bias b the feature detectors need. The images go through the torchvision
transforms equivalent to the card's preprocessing in a DataLoader (batch 64, num_workers 0 by default),
and every detector is constructed, fitted on the training loader where it needs a fit, and asked for
the scores of the ID and OOD loaders: each detector decodes the images and runs the model itself.

Where a detector wants a backbone and a head (ReAct, ASH, SCALE) the backbone is the model's features
as a B×D×1×1 feature map and the head is `F.linear(z, W, b)`; an encoder (Mahalanobis, RMD, KNN, ViM,
DICE) is the model's features; a logits detector gets the model's logits. A detector that cannot run
on the model is skipped and named in the output.

Prints one line per detector and, last, one JSON line with the seconds of each (fit and predict) and
the total.

    python scripts/bench_pytorch_ood.py --model models/fmnist-resnet.pt --train DIR --id DIR --ood DIR \
        [--batch-size 64] [--workers 0] [--threads N] [--detectors msp,energy,…]
"""

import argparse
import json
import os
import sys
import time
import tomllib
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

import pytorch_ood
from pytorch_ood.detector import (
    ASH,
    DICE,
    GEN,
    KNN,
    RMD,
    SCALE,
    EnergyBased,
    Entropy,
    GradNorm,
    KLMatching,
    Mahalanobis,
    MaxLogit,
    MaxSoftmax,
    ReAct,
    ViM,
)

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# oodscope's non-gradient methods, in `oodscope methods` order of the compare benchmark.
ALL = "msp,energy,maxlogit,entropy,gen,klm,mahalanobis,rmds,knn,vim,react,ash-p,ash-b,ash-s,scale,dice,gradnorm"


def list_images(folder):
    """Image files under `folder`, recursively, sorted, hidden files and folders skipped (as oodscope)."""
    root = Path(folder)
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in EXTENSIONS and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


class Images(Dataset):
    """(image, label) pairs: the label is the class sub-folder's index in the card's classes (else the
    sorted sub-folders'), 0 for images of a folder without class sub-folders."""

    def __init__(self, folder, transform, mode, classes):
        self.paths = list_images(folder)
        self.transform, self.mode = transform, mode
        subdirs = sorted(d.name for d in Path(folder).iterdir() if d.is_dir() and not d.name.startswith("."))
        if subdirs and all(d in classes for d in subdirs):
            index = {name: classes.index(name) for name in subdirs}
        else:
            index = {name: i for i, name in enumerate(subdirs)}
        root = Path(folder)
        self.labels = [index.get(p.relative_to(root).parts[0], 0) if len(p.relative_to(root).parts) > 1 else 0
                       for p in self.paths]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as image:
            x = self.transform(image.convert(self.mode))
        return x, self.labels[i]


def transform_of(card):
    """The torchvision transforms of the card's preprocessing."""
    c, h, w = card["input"]
    normalize = T.Normalize(card["mean"], card["std"])
    if card.get("resize", "resize") == "resize":  # a plain resize to the input size
        return T.Compose([T.Resize((h, w)), T.ToTensor(), normalize])
    interpolation = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
                     "nearest": T.InterpolationMode.NEAREST}[card.get("interpolation", "bilinear")]
    crop = card.get("crop", [h, w])
    return T.Compose([T.Resize(card["resize"], interpolation=interpolation), T.CenterCrop(crop), T.ToTensor(),
                      normalize])


class WithHead(torch.nn.Module):
    """The TorchScript model's features followed by the head as an eager nn.Linear: GradNorm needs an
    nn.Module whose named parameters include the head's (it differentiates with torch.func)."""

    def __init__(self, model, w, b):
        super().__init__()
        self.model = model
        self.fc = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(w)
            self.fc.bias.copy_(b)

    def forward(self, x):
        return self.fc(self.model(x)[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="TorchScript model with its card <stem>.toml beside it")
    ap.add_argument("--train", required=True, help="ID training images (class sub-folders) for the fits")
    ap.add_argument("--id", required=True)
    ap.add_argument("--ood", required=True)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader num_workers")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all cores)")
    ap.add_argument("--detectors", default=ALL, help=f"comma-separated, oodscope's names (default: {ALL})")
    args = ap.parse_args()
    start = time.perf_counter()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    model_path = Path(args.model)
    card = tomllib.loads(model_path.with_suffix(".toml").read_text())
    model = torch.jit.load(str(model_path), map_location="cpu").eval()
    if card["head"].endswith(".safetensors"):
        # A frozen export (the exporter's default): its head is the file beside it.
        from safetensors.torch import load_file

        tensors = load_file(str(model_path.with_name(card["head"])))
        w, b = tensors["weight"], tensors["bias"]
    else:
        head = model
        for part in card["head"].split("."):
            head = getattr(head, part)
        w, b = head.weight.detach().clone(), head.bias.detach().clone()
    c = card["input"][0]
    transform = transform_of(card)
    mode = "RGB" if c == 3 else "L"

    def loader(folder):
        return DataLoader(Images(folder, transform, mode, card["classes"]), batch_size=args.batch_size,
                          shuffle=False, num_workers=args.workers)

    train_loader, id_loader, ood_loader = loader(args.train), loader(args.id), loader(args.ood)

    # The model split as the detectors want it.
    def logits_of(x):
        return model(x)[0]

    def features_of(x):
        return model(x)[1]

    def feature_maps_of(x):
        return model(x)[1][:, :, None, None]

    def head_of(z):
        return F.linear(z.flatten(1), w, b)

    d = w.shape[1]
    vim_dim = 1000 if d >= 2048 else max(d // 2, 1)  # oodscope's default (crates/engine/src/detect/features/vim.rs)
    makers = {  # oodscope's method → (pytorch-ood detector, whether it is fitted); oodscope's defaults
        "msp": (lambda: MaxSoftmax(logits_of), False),
        "energy": (lambda: EnergyBased(logits_of), False),
        "maxlogit": (lambda: MaxLogit(logits_of), False),
        "entropy": (lambda: Entropy(logits_of), False),
        "gen": (lambda: GEN(logits_of, gamma=0.1, M=100), False),
        "klm": (lambda: KLMatching(logits_of), True),
        "mahalanobis": (lambda: Mahalanobis(features_of), True),
        "rmds": (lambda: RMD(features_of), True),
        "knn": (lambda: KNN(features_of, k=50), True),
        "vim": (lambda: ViM(features_of, d=vim_dim, w=w, b=b), True),
        "react": (lambda: ReAct(feature_maps_of, head_of, percentile=0.9), True),
        "ash-p": (lambda: ASH(feature_maps_of, head_of, variant="ash-p", percentile=0.9), False),
        "ash-b": (lambda: ASH(feature_maps_of, head_of, variant="ash-b", percentile=0.9), False),
        "ash-s": (lambda: ASH(feature_maps_of, head_of, variant="ash-s", percentile=0.9), False),
        "scale": (lambda: SCALE(feature_maps_of, head_of, percentile=0.85), False),
        "dice": (lambda: DICE(features_of, w=w, b=b, p=0.9), True),
        "gradnorm": (lambda: GradNorm(WithHead(model, w, b), param_filter=lambda n: n.startswith("fc.")), False),
    }
    print(f"pytorch-ood {pytorch_ood.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}; "
          f"{len(id_loader.dataset)} ID + {len(ood_loader.dataset)} OOD images, {len(train_loader.dataset)} train; "
          f"batch {args.batch_size}, num_workers {args.workers}, {args.threads} threads", flush=True)

    results, skipped = {}, {}
    for name in args.detectors.split(","):
        make, fitted = makers[name]
        t0 = time.perf_counter()
        try:
            detector = make()
            if fitted:
                with torch.no_grad():
                    detector.fit(train_loader)
            t1 = time.perf_counter()
            scores = []
            with torch.no_grad():
                for data in (id_loader, ood_loader):
                    for x, _ in data:
                        scores.append(detector(x).float())
            t2 = time.perf_counter()
        except Exception as failure:  # noqa: BLE001: a detector that cannot run on this model is skipped
            reason = f"{type(failure).__name__}: {str(failure).strip().splitlines()[0] if str(failure).strip() else ''}"
            skipped[name] = reason[:300]
            print(f"  {name:12s} skipped: {reason[:300]}", flush=True)
            continue
        s = torch.cat(scores)
        results[name] = {"class": type(detector).__name__, "fit_s": t1 - t0, "predict_s": t2 - t1,
                         "total_s": t2 - t0, "mean_score": float(s.double().mean()), "scores": len(s)}
        print(f"  {name:12s} {type(detector).__name__:12s} fit {t1 - t0:7.2f} s  predict {t2 - t1:7.2f} s", flush=True)
    total = time.perf_counter() - start
    print(json.dumps({
        "detectors": results, "skipped": skipped, "total_s": total,
        "images": len(id_loader.dataset) + len(ood_loader.dataset), "train_images": len(train_loader.dataset),
        "batch_size": args.batch_size, "num_workers": args.workers, "threads": args.threads,
        "versions": {"pytorch_ood": pytorch_ood.__version__, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "python": sys.version.split()[0]},
    }))


if __name__ == "__main__":
    main()
