#!/usr/bin/env python3
"""Throughput beside busy neighbours (docs/benchmarks.md#under-a-busy-neighbour).

`oodscope score --method odin` on the demo's 4000 test images (fmnist-test as ID, mnist as OOD),
quiet and beside 1 and 2 processes that spin on a core each, with oodscope's default threads (which
follow the free cores), a fixed `--threads N` (N = the cores: the default before) and `--threads 1`;
then the same ODIN in PyTorch (scripts/bench_torch.py, batched, torch's default threads = the
cores). Each cell is the median of --repeat runs; the neighbours start before and end after each.

    .venv/bin/python scripts/bench_neighbour.py [--repeat 3] [--neighbours 0 1 2] [--limit N]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OODSCOPE = ROOT / "target" / "release" / "oodscope"
MODEL = ROOT / "models" / "fmnist-resnet.pt"
ID = ROOT / "assets" / "demo" / "fmnist-test"
OOD = ROOT / "assets" / "demo" / "mnist"


def spinners(n):
    """`n` processes that spin on a core each (a training job's or a browser's load, at its worst)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def oodscope(threads, env_extra):
    args = [str(OODSCOPE), "score", "--model", str(MODEL), "--id", str(ID), "--ood", str(OOD)]
    args += ["--method", "odin", "--device", "cpu", "--quiet"]
    if threads:
        args += ["--threads", str(threads)]
    env = dict(os.environ, **env_extra)
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    m = re.search(r"scored (\d+) images in ([\d.]+) s", out.stderr)
    if not m:
        raise SystemExit(f"no throughput in: {out.stderr}")
    return int(m[1]) / float(m[2])


def pytorch(threads):
    args = [sys.executable, str(ROOT / "scripts" / "bench_torch.py"), "--mode", "batched", "--method", "odin"]
    args += ["--id", str(ID), "--ood", str(OOD), "--threads", str(threads), "--workers", "0"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--neighbours", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--skip-pytorch", action="store_true")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    variants = [
        ("oodscope, default threads (follow the free cores)", lambda: oodscope(None, {})),
        (f"oodscope --threads {cores} (the default before)", lambda: oodscope(cores, {})),
        (f"oodscope --threads {cores}, OMP_WAIT_POLICY=PASSIVE", lambda: oodscope(cores, {"OMP_WAIT_POLICY": "PASSIVE"})),
        ("oodscope --threads 1", lambda: oodscope(1, {})),
    ]
    if not args.skip_pytorch:
        variants.append((f"PyTorch, {cores} threads (its default)", lambda: pytorch(cores)))
        variants.append(("PyTorch, 1 thread", lambda: pytorch(1)))
    rows = {}
    for name, run in variants:
        for n in args.neighbours:
            rates = []
            for _ in range(args.repeat):
                busy = spinners(n)
                time.sleep(0.5)
                try:
                    rates.append(run())
                finally:
                    for p in busy:
                        p.kill()
                        p.wait()
            rows.setdefault(name, {})[n] = statistics.median(rates)
            print(f"{name}, {n} busy: {[round(r) for r in rates]} images/s", file=sys.stderr, flush=True)
    head = "| run | " + " | ".join(f"{n} busy" for n in args.neighbours) + " |"
    print(head)
    print("|---|" + "---:|" * len(args.neighbours))
    for name, by_n in rows.items():
        quiet = by_n.get(0)
        cells = []
        for n in args.neighbours:
            share = f" ({by_n[n] / quiet:.0%})" if quiet and n else ""
            cells.append(f"{by_n[n]:,.0f}{share}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(json.dumps({"cores": cores, "repeat": args.repeat, "images_per_s": rows}))


if __name__ == "__main__":
    main()
