#!/usr/bin/env python3
"""The benchmark of `oodscope compare` (issue 12: every method at once), as whole processes.

For each size (the demo, and a ResNet-18 at 224×224 on JPEG photos) it times, median of --repeats runs:
  1. `oodscope score --method msp` alone;
  2. `oodscope compare --methods <every non-gradient method>` with `--train`, the fit cached by one
     untimed warm-up run first (OODSCOPE_CACHE_DIR in a temporary folder);
  3. scripts/bench_pytorch_ood.py: the same detectors with pytorch-ood, one after another, each
     fitting and predicting with its own forward passes (median of --pytorch-ood-repeats runs),
and prints a markdown table with the ratios compare/msp (target ≤ 1.3×) and pytorch-ood/compare
(target ≥ 5×), which it also writes into docs/benchmarks.md between the bench-compare markers.

The real-size images are made from the photos in assets/internet/ (random crops and rescales,
150–900 px sides, JPEG quality 85–95, seed 0) under target/bench-compare/ (never committed), with the
model exported there by scripts/export_model.py (torchvision:resnet18, random weights, 10 classes, the
plain traced file: --no-freeze).

    python scripts/bench_compare.py [--sizes demo,real] [--repeats 3] [--pytorch-ood-repeats 3]
        [--real-id 64 --real-ood 64 --real-train 60]
"""

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision
from PIL import Image

import pytorch_ood

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import cpu_name, measure, write  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OODSCOPE = ROOT / "target" / "release" / "oodscope"
WORK = ROOT / "target" / "bench-compare"
RESULTS_JSON = WORK / "results.json"
MARKERS = ("<!-- bench-compare:begin -->", "<!-- bench-compare:end -->")
METHODS = "msp,energy,maxlogit,entropy,gen,klm,mahalanobis,rmds,knn,vim,react,ash-p,ash-b,ash-s,scale,dice,gradnorm"
PHOTOS = ROOT / "assets" / "internet"


def make_photos(out, count, photos, rng, classes=0):
    """`count` JPEGs cut from `photos`: a random crop (30–100% of each side), rescaled to sides of
    150–900 px, saved at quality 85–95; in `classes` sub-folders c0, c1, … when classes > 0."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        with Image.open(rng.choice(photos)) as image:
            image = image.convert("RGB")
        w, h = image.size
        cw, ch = max(8, int(w * rng.uniform(0.3, 1.0))), max(8, int(h * rng.uniform(0.3, 1.0)))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = image.crop((left, top, left + cw, top + ch))
        size = (rng.randint(150, 900), rng.randint(150, 900))
        folder = out / f"c{i % classes}" if classes else out
        folder.mkdir(exist_ok=True)
        crop.resize(size, Image.BILINEAR).save(folder / f"{i:05d}.jpg", quality=rng.randint(85, 95))


def real_size(args):
    """The ResNet-18 (exported if missing) and the JPEG folders (made anew when the counts change)."""
    model = WORK / "resnet18.pt"
    if not model.exists():
        print("bench-compare: exporting torchvision:resnet18 (random weights)", flush=True)
        # The plain traced file (--no-freeze), as in the recorded runs; pytorch-ood's script reads its
        # head as the submodule the card names. scripts/bench_model_math.py times the frozen one.
        subprocess.run([sys.executable, "scripts/export_model.py", "--model", "torchvision:resnet18", "--num-classes",
                        "10", "--preprocess", "torchvision-imagenet", "--no-freeze", "--out", str(model)], cwd=ROOT,
                       check=True)
    counts = {"id": args.real_id, "ood": args.real_ood, "train": args.real_train, "seed": 0}
    stamp = WORK / "photos.json"
    if not stamp.exists() or json.loads(stamp.read_text()) != counts:
        print(f"bench-compare: making {args.real_id} + {args.real_ood} + {args.real_train} JPEGs", flush=True)
        photos = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in {".jpg", ".png"})
        rng = random.Random(0)
        for name in ("id", "ood", "train"):
            subprocess.run(["rm", "-rf", str(WORK / name)], check=True)
        # ID and train from the first half of the photos, OOD from the other half
        make_photos(WORK / "id", args.real_id, photos[: len(photos) // 2], rng)
        make_photos(WORK / "ood", args.real_ood, photos[len(photos) // 2:], rng)
        make_photos(WORK / "train", args.real_train, photos[: len(photos) // 2], rng, classes=10)
        stamp.write_text(json.dumps(counts))
    return {"model": str(model.relative_to(ROOT)), "id": str((WORK / "id").relative_to(ROOT)),
            "ood": str((WORK / "ood").relative_to(ROOT)), "train": str((WORK / "train").relative_to(ROOT))}


SIZES = {
    "demo": lambda args: {"model": "models/fmnist-resnet.pt", "id": "assets/demo/fmnist-test",
                          "ood": "assets/demo/mnist", "train": "assets/demo/fmnist-train"},
    "real": real_size,
}
DESCRIPTION = {
    "demo": "the demo: `models/fmnist-resnet.pt` (1×28×28 grey ResNet, 10 classes, 64 features)",
    "real": "real size: torchvision ResNet-18 with random weights, 3×224×224 (resize 256, centre crop 224), "
            "512 features, 10 classes",
}


def count_images(folder):
    return sum(1 for p in Path(ROOT / folder).rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})


def median_run(cmd, repeats, env):
    runs = [measure(cmd, env) for _ in range(repeats)]
    walls = [r["wall_s"] for r in runs]
    best = dict(sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2])
    best["runs_s"] = [round(w, 2) for w in walls]
    best["median_s"] = statistics.median(walls)
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def bench_size(name, args, env):
    s = SIZES[name](args)
    sets = ["--model", s["model"], "--id", s["id"], "--ood", s["ood"]]
    compare = [OODSCOPE, "compare", *sets, "--train", s["train"], "--methods", METHODS, "--quiet"]
    r = {"paths": s, "images": count_images(s["id"]) + count_images(s["ood"]), "train_images": count_images(s["train"])}
    print(f"bench-compare [{name}]: warm-up (fits and caches)", flush=True)
    r["warmup"] = measure(compare, env)
    print(f"bench-compare [{name}]: oodscope score --method msp", flush=True)
    r["msp"] = median_run([OODSCOPE, "score", *sets, "--method", "msp", "--quiet"], args.repeats, env)
    print(f"bench-compare [{name}]: oodscope compare --methods {METHODS}", flush=True)
    r["compare"] = median_run(compare, args.repeats, env)
    print(f"bench-compare [{name}]: scripts/bench_pytorch_ood.py", flush=True)
    r["pytorch_ood"] = median_run(
        [sys.executable, "scripts/bench_pytorch_ood.py", *sets, "--train", s["train"], "--batch-size", 64,
         "--workers", 0, "--detectors", METHODS], args.pytorch_ood_repeats, env)
    return r


def render(res, args):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    v = res["versions"]
    lines = [
        f"Recorded {now} by `scripts/bench_compare.py --repeats {args.repeats} --pytorch-ood-repeats "
        f"{args.pytorch_ood_repeats} --real-id {args.real_id} --real-ood {args.real_ood} --real-train "
        f"{args.real_train}`.",
        "",
        f"- Machine: CPU only, {res['cpu']}, {res['cores']} cores; load average {res['load_before']:.2f} before, "
        f"{res['load_after']:.2f} after ({res['note']}).",
        f"- Versions: oodscope at `{res['commit']}` (release build), Python {v['python']}, torch {v['torch']}, "
        f"torchvision {v['torchvision']}, pytorch-ood {v['pytorch_ood']}.",
        f"- Methods (`--methods`): {METHODS.replace(',', ', ')} — all at their defaults (Mahalanobis and Energy "
        "at ε = 0). oodscope's threads are its defaults (all cores); the pytorch-ood script sets "
        f"`torch.set_num_threads({res['cores']})` and reads the images in a DataLoader with batch 64, "
        "num_workers = 0, torchvision transforms of the card (`Image.open(p).convert(…)`, Resize/CenterCrop, "
        "ToTensor, Normalize).",
        "- Times are whole processes (start to exit: model load, listing, decoding, fit or cached fit, scoring, "
        f"metrics); median of {args.repeats} runs for oodscope, of {args.pytorch_ood_repeats} for the pytorch-ood "
        "script (each run's time in brackets). `compare` reads the fit cached by one untimed warm-up run "
        "(its time is shown: fit + score); pytorch-ood fits every detector that needs one inside its timed run, "
        "as a user of it would.",
        "",
    ]
    for name in res["sizes"]:
        r = res[name]
        p = r["pytorch_ood"]
        lines += [
            f"### {DESCRIPTION[name].split(':')[0].capitalize()}: {DESCRIPTION[name].split(': ', 1)[1]}",
            "",
            f"Model `{r['paths']['model']}`; ID `{r['paths']['id']}` + OOD `{r['paths']['ood']}`: {r['images']} "
            f"images; train `{r['paths']['train']}`: {r['train_images']} images in 10 class folders.",
            "",
            "| what | seconds | images/s | peak RSS (MB) |",
            "|---|---|---|---|",
        ]

        def row(what, m, images):
            runs = f" ({', '.join(map(str, m['runs_s']))})" if len(m.get("runs_s", [])) > 1 else ""
            rate = images / m["median_s"]
            rate = f"{rate:.0f}" if rate >= 10 else f"{rate:.2f}"
            lines.append(f"| {what} | **{m['median_s']:.2f}**{runs} | {rate} | "
                         f"{m['peak_rss_mb']:.0f} |")

        row("`oodscope score --method msp`", r["msp"], r["images"])
        row(f"`oodscope compare`, {len(METHODS.split(','))} methods, fit cached", r["compare"], r["images"])
        w = r["warmup"]
        lines.append(f"| `oodscope compare`, first run: fit on {r['train_images']} images + score (untimed warm-up) | "
                     f"{w['wall_s']:.2f} | — | {w['peak_rss_mb']:.0f} |")
        ran = len(p["detectors"])
        row(f"pytorch-ood, {ran} detectors one after another (`scripts/bench_pytorch_ood.py`)", p, r["images"])
        cm, pm = r["compare"]["median_s"] / r["msp"]["median_s"], p["median_s"] / r["compare"]["median_s"]
        lines += [
            "",
            f"- compare / MSP alone: **{cm:.2f}×** the time (target ≤ 1.3×: {'met' if cm <= 1.3 else '**missed**'}).",
            f"- pytorch-ood / compare: **{pm:.1f}×** (target ≥ 5×: {'met' if pm >= 5 else '**missed**'}).",
        ]
        if p["skipped"]:
            lines.append("- Skipped by pytorch-ood on this model: " +
                         "; ".join(f"{k} ({why})" for k, why in p["skipped"].items()) + ".")
        lines += [
            "",
            f"pytorch-ood per detector (the median run; fit on the {r['train_images']} training images, predict "
            f"on the {r['images']} ID + OOD images):",
            "",
            "| method | pytorch-ood class | fit (s) | predict (s) |",
            "|---|---|---|---|",
        ]
        for m, d in p["detectors"].items():
            fit = f"{d['fit_s']:.2f}" if d["fit_s"] > 0.005 else "—"
            lines.append(f"| {m} | `{d['class']}` | {fit} | {d['predict_s']:.2f} |")
        lines += [f"| all | | {sum(d['fit_s'] for d in p['detectors'].values()):.2f} | "
                  f"{sum(d['predict_s'] for d in p['detectors'].values()):.2f} |", ""]
    return "\n".join(lines).rstrip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="demo,real", help="demo, real or both")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each oodscope command (median reported)")
    ap.add_argument("--pytorch-ood-repeats", type=int, default=3, help="runs of the pytorch-ood script")
    ap.add_argument("--real-id", type=int, default=64)
    ap.add_argument("--real-ood", type=int, default=64)
    ap.add_argument("--real-train", type=int, default=60, help="≥ 50: pytorch-ood's KNN needs k = 50 samples")
    ap.add_argument("--note", default="other processes were using the CPU; the ratios within one run are what counts",
                    help="said after the load averages")
    ap.add_argument("--output", default=str(ROOT / "docs/benchmarks.md"))
    ap.add_argument("--render", metavar="JSON", help=f"only rewrite the block from saved figures ({RESULTS_JSON})")
    args = ap.parse_args()
    if args.render:
        res = json.loads(Path(args.render).read_text())
        text = render(res, argparse.Namespace(**res["args"]))
        print(text)
        write(Path(args.output), text, *MARKERS)
        return

    WORK.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    res = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "load_before": os.getloadavg()[0], "note": args.note,
        "commit": commit.stdout.strip(), "sizes": args.sizes.split(","), "args": vars(args),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "pytorch_ood": pytorch_ood.__version__},
    }
    print(f"bench-compare: {res['cpu']}, {res['cores']} cores; torch {torch.__version__}, torchvision "
          f"{torchvision.__version__}, pytorch-ood {pytorch_ood.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="oodscope-bench-compare-") as cache:
        env = {"OODSCOPE_CACHE_DIR": cache}
        for name in res["sizes"]:
            res[name] = bench_size(name, args, env)
            r = res[name]
            print(f"bench-compare [{name}]: msp {r['msp']['median_s']:.2f} s, compare {r['compare']['median_s']:.2f} s "
                  f"({r['compare']['median_s'] / r['msp']['median_s']:.2f}×), pytorch-ood "
                  f"{r['pytorch_ood']['median_s']:.2f} s ({r['pytorch_ood']['median_s'] / r['compare']['median_s']:.1f}× "
                  f"compare); skipped: {r['pytorch_ood']['skipped'] or 'none'}", flush=True)
            RESULTS_JSON.write_text(json.dumps(res, indent=1))
    res["load_after"] = os.getloadavg()[0]
    RESULTS_JSON.write_text(json.dumps(res, indent=1))
    text = render(res, args)
    print(text)
    write(Path(args.output), text, *MARKERS)
    print(f"bench-compare: written to {args.output} (figures in {RESULTS_JSON.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
