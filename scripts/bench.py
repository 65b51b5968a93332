#!/usr/bin/env python3
"""Runs every benchmark of oodscope in one go (called by scripts/bench.sh after the release build),
prints the figures and writes them into docs/benchmarks.md between its bench markers.

Two sections: the scoring pipeline against PyTorch, the interaction budget and memory (`--only main`;
its block is `bench` on the CPU, `bench-cuda` with --device cuda), and the detectors (`--only
detectors`, CPU only, its own `bench-detectors` block): fit throughput and memory, the KNN search
against faiss-cpu's exact flat index (scripts/bench_knn.py), a 1 000 000 × 512 bank read from disk,
and all post-hoc methods in one plan against MSP alone.

Each measurement is its own process, so that its peak RSS (getrusage maxrss, via os.wait4: the
largest single process among it and its waited-for children) is its own.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DEFAULT = ROOT / "target" / "release" / "oodscope-bench"
OODSCOPE_DEFAULT = ROOT / "target" / "release" / "oodscope"
MODEL = "models/fmnist-resnet.pt"
ID_DIR, OOD_DIR = "assets/demo/fmnist-test", "assets/demo/mnist"
DETECTORS_JSON = ROOT / "target" / "bench-detectors.json"  # the detectors section's figures, to re-render
MARKERS = {  # the block of docs/benchmarks.md each device's run rewrites
    "cpu": ("<!-- bench:begin -->", "<!-- bench:end -->"),
    "cuda": ("<!-- bench-cuda:begin -->", "<!-- bench-cuda:end -->"),
    "detectors": ("<!-- bench-detectors:begin -->", "<!-- bench-detectors:end -->"),
}
# glibc's malloc with the settings oodscope applies to itself (crates/engine/src/alloc.rs), for the Python runs that
# show how much of the difference is the allocator.
HEAP_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456"


# The 1-minute load average at the start of every measurement (to show contention).
LOADS = []


def measure(cmd, env=None, stderr_seconds=None):
    """Runs `cmd` in the repository root (with `env` added to the environment); returns its last
    stdout line as JSON (if any) with the process's wall time and peak RSS added, and the seconds
    that the regex `stderr_seconds` finds in its stderr (as `stderr_seconds`), if given."""
    LOADS.append(os.getloadavg()[0])
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(c) for c in cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, cmd))} failed ({proc.returncode}): {err.decode()[-2000:]}")
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    result["wall_s"] = wall
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    if stderr_seconds:
        found = re.search(stderr_seconds, err.decode())
        result["stderr_seconds"] = float(found.group(1)) if found else None
    return result


def repeated(cmd, repeats, env=None):
    """The run with the median images/s of `repeats` runs, with the largest peak RSS of them."""
    runs = [measure(cmd, env) for _ in range(repeats)]
    runs.sort(key=lambda r: r["images_per_s"])
    best = dict(runs[len(runs) // 2])
    best["runs_images_per_s"] = [round(r["images_per_s"], 1) for r in runs]
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def gpu_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
        return out.stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "unknown GPU"


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3, help="runs per throughput figure (median reported)")
    ap.add_argument("--reference-limit", type=int, default=250, help="images per folder for the batch-1 reference")
    ap.add_argument("--memory-images", type=int, default=100_000, help="images in the generated folder (0: skip)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader num_workers of the Python runs")
    ap.add_argument("--output", default=str(ROOT / "docs/benchmarks.md"))
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where both sides run the model")
    ap.add_argument("--bench-binary", default=str(BENCH_DEFAULT), help="oodscope-bench to run (e.g. one built elsewhere)")
    ap.add_argument("--oodscope-binary", default=str(OODSCOPE_DEFAULT))
    ap.add_argument(
        "--only",
        choices=["all", "main", "detectors"],
        default="all",
        help="run one section: main (pipeline vs PyTorch, interaction, memory) or detectors (fit, KNN vs "
        "faiss, the on-disk bank, all post-hoc methods; CPU only); each rewrites its own block",
    )
    ap.add_argument("--knn-big-rows", type=int, default=1_000_000,
                    help="rows of the D = 512 KNN bank searched from disk (needs 6 GB free in the temp dir; 0: skip)")
    ap.add_argument("--render-detectors", metavar="JSON",
                    help="only rewrite the detectors block from a run's saved figures (each run saves "
                    f"{DETECTORS_JSON.relative_to(ROOT)})")
    args = ap.parse_args()

    if args.render_detectors:
        d = json.loads(Path(args.render_detectors).read_text())
        write(Path(args.output), render_detectors(d), *MARKERS["detectors"])
        print(f"bench: detectors block of {args.output} rewritten from {args.render_detectors}")
        return

    bench, oodscope = Path(args.bench_binary).resolve(), Path(args.oodscope_binary).resolve()
    if args.only in ("all", "main"):
        main_suite(args, bench, oodscope)
    if args.only in ("all", "detectors"):
        if args.device != "cpu":
            print("bench: the detectors section runs on the CPU only (faiss-cpu); skipped with --device cuda")
        else:
            detectors_suite(args, bench, oodscope)


def main_suite(args, bench, oodscope):
    """The scoring pipeline against PyTorch, the interaction budget and memory: the `bench` block
    (`bench-cuda` with --device cuda)."""
    cores = os.cpu_count() or 1
    model_threads = cores if args.device == "cpu" else 1  # oodscope's defaults (default_model_threads)
    other_schedule = "overlapped" if args.device == "cpu" else "in-turn"
    load_before = os.getloadavg()
    sets = ["--id", ID_DIR, "--ood", OOD_DIR]
    common = ["--batch-size", args.batch_size, "--device", args.device]
    r = {}
    for method in ("msp", "odin"):
        print(f"bench: oodscope end to end, {method}", flush=True)
        r[f"e2e_{method}"] = repeated([bench, "pipeline", "--model", MODEL, *sets, "--method", method, *common], args.repeats)
        print(f"bench: oodscope end to end, glibc's default malloc settings, {method}", flush=True)
        r[f"mallocdef_{method}"] = repeated(
            [bench, "pipeline", "--model", MODEL, *sets, "--method", method, "--malloc-defaults", *common],
            args.repeats,
        )
        print(f"bench: oodscope end to end, the other decode schedule ({other_schedule}), {method}", flush=True)
        r[f"overlap_{method}"] = repeated(
            [bench, "pipeline", "--model", MODEL, *sets, "--method", method, "--schedule", other_schedule, *common],
            args.repeats,
        )
        print(f"bench: oodscope preloaded, {method}", flush=True)
        r[f"pre_{method}"] = repeated(
            [bench, "pipeline", "--model", MODEL, *sets, "--method", method, "--preloaded", *common], args.repeats
        )
        print(f"bench: PyTorch batched, {method}", flush=True)
        for workers in (args.workers, 0):
            r[f"py_{method}_w{workers}"] = repeated(
                [sys.executable, "scripts/bench_torch.py", "--mode", "batched", "--method", method, "--model", MODEL,
                 *sets, *common, "--threads", model_threads, "--workers", workers],
                args.repeats,
            )
        # oodscope is compared with the faster of the two DataLoader settings.
        faster = max((args.workers, 0), key=lambda w: r[f"py_{method}_w{w}"]["images_per_s"])
        r[f"py_{method}"] = r[f"py_{method}_w{faster}"]
        print(f"bench: PyTorch batched with oodscope's malloc settings, {method}", flush=True)
        r[f"pyheap_{method}"] = repeated(
            [sys.executable, "scripts/bench_torch.py", "--mode", "batched", "--method", method, "--model", MODEL,
             *sets, *common, "--threads", model_threads, "--workers", faster],
            args.repeats,
            env={"GLIBC_TUNABLES": HEAP_TUNABLES},
        )
        print(f"bench: oodscope score CLI, {method}", flush=True)
        r[f"cli_{method}"] = measure(
            [oodscope, "score", "--model", MODEL, *sets, "--method", method, "--quiet", *common]
        )
    print("bench: PyTorch one image at a time (reference style), odin", flush=True)
    r["ref_odin"] = repeated(
        [sys.executable, "scripts/bench_torch.py", "--mode", "reference", "--method", "odin", "--model", MODEL,
         *sets, "--threads", model_threads, "--workers", args.workers, "--limit", args.reference_limit,
         "--device", args.device],
        args.repeats,
    )
    if args.device == "cpu":
        print("bench: ODIN profile (batch 1 and batched, forward and ODIN per image)", flush=True)
        try:
            r["profile"] = measure(
                [sys.executable, "scripts/profile_odin.py", "--model", MODEL, "--threads", model_threads,
                 "--batch-size", args.batch_size],
                env={"GLIBC_TUNABLES": HEAP_TUNABLES},
            )
        except SystemExit as failure:  # the rest of the run stands without the profile's table
            reason = str(failure).strip().splitlines()[-1]
            print(f"bench: warning: the ODIN profile is left out: {reason}", flush=True)
    print("bench: interaction budget", flush=True)
    r["interaction"] = measure([bench, "interaction", "--scores", 100_000, "--repeats", 21])

    memory = []
    if args.memory_images:
        for n in sorted({min(10_000, args.memory_images), args.memory_images}):
            with tempfile.TemporaryDirectory(prefix="oodscope-bench-") as tmp:
                print(f"bench: memory, writing {n} PNGs", flush=True)
                made = measure([bench, "make-folder", "--out", tmp, "--images", n])
                print(f"bench: memory, scoring {n} images (msp)", flush=True)
                run = measure(
                    [oodscope, "score", "--model", MODEL, "--id", f"{tmp}/id", "--ood", f"{tmp}/ood",
                     "--method", "msp", "--quiet", *common]
                )
                memory.append({"images": n, "make_s": made["seconds"], **run})
    load_after = os.getloadavg()

    text = render(r, memory, args, cores, model_threads, load_before, load_after)
    print(text)
    write(Path(args.output), text, *MARKERS[args.device])
    print(f"bench: written to {args.output}")


def ratio(a, b):
    return a["images_per_s"] / b["images_per_s"]


def render(r, memory, args, cores, model_threads, load_before, load_after):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    e = r["e2e_msp"]
    cpu = args.device == "cpu"
    command = (
        f"`scripts/bench.sh` (= `scripts/bench.py --repeats {args.repeats} --reference-limit {args.reference_limit} "
        f"--memory-images {args.memory_images}`)"
        if cpu
        else f"`scripts/bench.py --device cuda --repeats {args.repeats} --reference-limit {args.reference_limit} "
        f"--memory-images {args.memory_images}` (with binaries built on that machine)"
    )
    hardware = "CPU only," if cpu else f"{gpu_name()} (CUDA, device `{e['device']}`) on"
    schedule = (
        "oodscope decodes each batch with rayon "
        f"({e['decode_threads']} threads) and then scores it (`DecodeSchedule::InTurn`, the CPU's default)"
        if cpu
        else "oodscope decodes the next batch on a producer thread with rayon "
        f"({e['decode_threads']} threads) while the model scores the current one (`DecodeSchedule::Overlapped`, "
        "a GPU's default)"
    )
    lines = [
        f"Recorded {now} by {command}.",
        "",
        f"- Device: {hardware} {cpu_name()}, {cores} cores; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after.",
        f"- Model `{MODEL}` (28×28 grey ResNet), images `{ID_DIR}` (ID) + `{OOD_DIR}` (OOD): "
        f"{e['images']} PNGs; batch size {args.batch_size}; ODIN at T = 1000, ε = 0.0014.",
        f"- Threads: libtorch intra-op {e['model_threads']} in oodscope (its default: all cores on the CPU, 1 with "
        f"CUDA) and `torch.set_num_threads({model_threads})` in Python; {schedule}; "
        f"Python decodes in a DataLoader with num_workers = {args.workers} (the ODIN code's setting) or 0, "
        f"and oodscope is compared with the faster of the two.",
        "- Memory allocator: oodscope sets glibc's malloc to keep tensor buffers in the heap (`crates/engine/src/alloc.rs`; "
        "mmap threshold 32 MiB, trim threshold 256 MiB); Python runs with glibc's defaults, as a plain script "
        "does. Rows 1c and 2b swap that, to show the allocator's share of the difference.",
        f"- Throughput: median of {args.repeats} runs (each run's figure in brackets), timed after model load "
        "and two warm-up batches; peak RSS: getrusage maxrss of the process (largest of its runs; Python's "
        "includes the largest DataLoader worker if it is larger).",
        "",
        "| # | what | images/s | peak RSS (MB) |",
        "|---|---|---|---|",
    ]

    def row(num, what, res):
        runs = res.get("runs_images_per_s")
        bracket = f" ({', '.join(map(str, runs))})" if runs else ""
        lines.append(f"| {num} | {what} | **{res['images_per_s']:.0f}**{bracket} | {res['peak_rss_mb']:.0f} |")

    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        row("1", f"oodscope end to end (`run_scoring`: decode → preprocess → model → score), {name}", r[f"e2e_{method}"])
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        other = (
            "decoding on a producer thread beside the model (the GPU's schedule)"
            if cpu
            else "decoding and scoring in turn (the CPU's schedule)"
        )
        row("1b", f"oodscope end to end, {other}, {name}", r[f"overlap_{method}"])
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        row("1c", f"oodscope end to end, glibc's default malloc settings (`--malloc-defaults`), {name}",
            r[f"mallocdef_{method}"])
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        for workers in (args.workers, 0):
            row("2", f"PyTorch batched (DataLoader num_workers = {workers} + PIL, batch {args.batch_size}), {name}",
                r[f"py_{method}_w{workers}"])
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        py = r[f"pyheap_{method}"]
        row("2b", f"PyTorch batched, num_workers = {py['num_workers']}, with oodscope's malloc settings "
            f"(`GLIBC_TUNABLES`), {name}", py)
    ref = r["ref_odin"]
    row("3", f"PyTorch one image per forward/backward (ODIN reference style), ODIN, {ref['images']} images", ref)
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        pre = r[f"pre_{method}"]
        row("4", f"oodscope on preloaded tensors (`score_batch` only), {name}", pre)
    lines.append("")
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        cli = r[f"cli_{method}"]
        lines.append(
            f"- `oodscope score … --quiet`, {name}, whole process (load, scan, score, metrics, table): "
            f"{cli['wall_s']:.2f} s = {e['images'] / cli['wall_s']:.0f} images/s, peak RSS {cli['peak_rss_mb']:.0f} MB."
        )
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        pre = r[f"pre_{method}"]
        lines.append(
            f"- Profile, {name}: decoding + preprocessing all {pre['images']} images alone (rayon, "
            f"{e['decode_threads']} threads) took {pre['decode_all_seconds']:.2f} s; the model alone "
            f"{pre['seconds']:.2f} s; end to end {r[f'e2e_{method}']['seconds']:.2f} s."
        )
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        st = r[f"e2e_{method}"].get("stage_seconds") or {}
        if st:
            lines.append(
                f"- Stages of the end-to-end run, {name}: decoding {st['decode']:.2f} s, building the batch tensors "
                f"{st['to_device']:.3f} s, the model (`score_batch`) {st['model']:.2f} s."
            )
    lines.append(
        f"- Same images, same scores: mean score oodscope {r['e2e_odin']['mean_score']:.6f} / PyTorch "
        f"{r['py_odin']['mean_score']:.6f} (ODIN), {r['e2e_msp']['mean_score']:.6f} / "
        f"{r['py_msp']['mean_score']:.6f} (MSP)."
    )

    pf = r.get("profile")
    lines += profile_lines(pf, ref) if pf else []
    ia = r["interaction"]
    ia = r["interaction"]
    lines += [
        "",
        f"### Interaction budget ({ia['sets']} synthetic normal scores, median of {ia['repeats']})",
        "",
        "| interaction | ms |",
        "|---|---|",
        f"| threshold move: operating point per OOD set (`SortedScores`), 60-bin histograms of the 4 sets, "
        f"verdict counts | {ia['threshold_move_ms']:.3f} |",
        f"| T change with ε = 0: `scores_from_logits` (rayon) on {ia['scores']} rows of 10 logits | {ia['t_rescore_ms']:.2f} |",
        f"| ROC/PR recompute: `SortedScores::new` + `curves` for each of the 3 OOD sets | "
        f"{ia['roc_pr_recompute_ms']:.2f} |",
    ]
    if memory:
        lines += [
            "",
            "### Memory (generated folder of 32×32 PNGs, half ID, half OOD; `oodscope score --method msp --quiet`)",
            "",
            "| images | written in (s) | scored in (s) | images/s | peak RSS (MB) |",
            "|---|---|---|---|---|",
        ]
        for m in memory:
            lines.append(
                f"| {m['images']} | {m['make_s']:.1f} | {m['wall_s']:.1f} | {m['images'] / m['wall_s']:.0f} | "
                f"{m['peak_rss_mb']:.0f} |"
            )

    # Targets.
    def met(ok):
        return "met" if ok else "**missed**"

    t = []
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        x = ratio(r[f"e2e_{method}"], r[f"py_{method}"])
        t.append(f"| oodscope ≥ 1.0× batched PyTorch, {name} (1/2) | {x:.2f}× | {met(x >= 1.0)} |")
    x = ratio(r["e2e_odin"], ref)
    t.append(f"| oodscope ≥ 20× one-at-a-time reference, ODIN (1/3) | {x:.1f}× | {met(x >= 20)} |")
    for method, name in (("msp", "MSP"), ("odin", "ODIN")):
        x = ratio(r[f"e2e_{method}"], r[f"pre_{method}"])
        t.append(f"| end to end ≥ 90% of preloaded ceiling, {name} (1/4) | {x:.0%} | {met(x >= 0.9)} |")
    t.append(f"| threshold move < 5 ms (100 000 scores) | {ia['threshold_move_ms']:.3f} ms | "
             f"{met(ia['threshold_move_ms'] < 5)} |")
    t.append(f"| T re-score < 20 ms (100 000 scores) | {ia['t_rescore_ms']:.2f} ms | {met(ia['t_rescore_ms'] < 20)} |")
    big = max(memory, key=lambda m: m["images"]) if memory else None
    if big:
        gb = big["peak_rss_mb"] / 1024
        t.append(f"| peak RSS < 1.5 GB for {big['images']} images | {gb:.2f} GB | {met(gb < 1.5)} |")
    lines += ["", "### Targets", "", "| target | measured | |", "|---|---|---|", *t]
    if cpu:
        lines += ["", "CUDA figures: see the CUDA section below (run on a lent GPU machine)."]
    return "\n".join(lines)


def profile_lines(pf, ref):
    """The ODIN profile's table and the bound it puts on 1/3."""
    b1, bb = pf["batch_1"], pf[f"batch_{pf['batch_size']}"]
    floor_rate = 1000 / pf["odin_floor_ms"]
    lines = [
        "",
        f"### ODIN's cost per image (`scripts/profile_odin.py`, random inputs, {pf['threads']} libtorch threads, "
        "oodscope's malloc settings)",
        "",
        f"| | batch 1 | batch {pf['batch_size']} |",
        "|---|---|---|",
        f"| forward pass alone (ms/image) | {b1['forward_ms']:.3f} | {bb['forward_ms']:.3f} |",
        f"| ODIN: forward, backward to the input, forward on x̃ (ms/image) | {b1['odin_ms']:.3f} | {bb['odin_ms']:.3f} |",
    ]
    for group in bb["profile_ms"]:
        lines.append(
            f"| … of which {group} (torch.profiler self time, ms/image) | {b1['profile_ms'].get(group, 0):.3f} | "
            f"{bb['profile_ms'][group]:.3f} |"
        )
    lines += [
        "",
        f"ODIN evaluates the network twice per image, so no implementation on this machine can beat "
        f"2 × {bb['forward_ms']:.3f} = {pf['odin_floor_ms']:.2f} ms per image ({floor_rate:.0f} images/s); "
        f"against the reference style's {ref['images_per_s']:.0f} images/s that caps 1/3 at "
        f"{floor_rate / ref['images_per_s']:.1f}×.",
    ]

    return lines


# The detectors section: its own block (`bench-detectors`), CPU only.

DEMO_TRAIN = "assets/demo/fmnist-train"
KNN_K = 50
KNN_BATCHES = (64, 1024)
# (bank rows N, width D, queries Q): demo-like features, and wide ones.
KNN_SIZES = ((60_000, 64, 4096), (100_000, 512, 2048))
# The bank searched from disk (D = 512): queries at each batch size (a few batches each), and the
# queries checked against a float64 brute force.
BIG_DIM = 512
BIG_QUERIES = {64: 512, 1024: 2048}
BIG_REFERENCE = 16
GB = 1 << 30


def median_of(runs, key):
    """The run with the median `key` of `runs`, with every run's figure (`runs`, sorted) and the
    largest peak RSS of them."""
    ordered = sorted(runs, key=lambda r: r[key])
    best = dict(ordered[len(ordered) // 2])
    best["runs"] = [round(r[key], 1) for r in ordered]
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def tensor_shape(path, name):
    """The shape of tensor `name` in a safetensors file (from its header)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))[name]["shape"]


def mem_available():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def detectors_suite(args, bench, oodscope):
    """Fit throughput and memory, the KNN search against faiss, the on-disk bank, and all post-hoc
    methods in one plan against MSP alone: the `bench-detectors` block."""
    threads = os.cpu_count() or 1  # oodscope's libtorch default on the CPU; faiss gets the same
    load_before = os.getloadavg()
    started = time.perf_counter()
    LOADS.clear()
    d = {}
    with tempfile.TemporaryDirectory(prefix="oodscope-bench-detectors-") as tmp:
        tmp = Path(tmp)
        env = {"OODSCOPE_CACHE_DIR": str(tmp / "cache")}
        d["fit"] = fit_rows(args, oodscope, bench, tmp, env)
        d["plan"] = all_methods(args, bench, tmp / "demo.fit.safetensors")
        d["knn"] = [knn_size(args, bench, tmp, *size, threads) for size in KNN_SIZES]
        d["big"] = big_bank(args, bench, tmp, threads)
    d["meta"] = {
        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["scripts/bench.py", *sys.argv[1:]]),
        "minutes": (time.perf_counter() - started) / 60,
        "cpu": cpu_name(),
        "threads": threads,
        "load_before": load_before[0],
        "load_after": os.getloadavg()[0],
        "loads": [min(LOADS), max(LOADS)],
        "repeats": args.repeats,
        "batch_size": args.batch_size,
    }
    DETECTORS_JSON.parent.mkdir(parents=True, exist_ok=True)
    DETECTORS_JSON.write_text(json.dumps(d, indent=1))
    text = render_detectors(d)
    print(text)
    write(Path(args.output), text, *MARKERS["detectors"])
    print(f"bench: written to {args.output}")


def fit_rows(args, oodscope, bench, tmp, env):
    """`oodscope fit` on the demo training sample, in turn with `oodscope score --method msp` on the
    same images; then fits of generated folders (memory)."""
    classes = sorted(p.name for p in (ROOT / DEMO_TRAIN).iterdir() if p.is_dir())
    half = len(classes) // 2
    sets = [a for c in classes[:half] for a in ("--id", f"{DEMO_TRAIN}/{c}")]
    sets += [a for c in classes[half:] for a in ("--ood", f"{DEMO_TRAIN}/{c}")]
    images = sum(1 for _ in (ROOT / DEMO_TRAIN).rglob("*.png"))
    common = ["--batch-size", args.batch_size, "--device", "cpu", "--quiet"]
    demo_fit = tmp / "demo.fit.safetensors"
    fits, scores = [], []
    for i in range(args.repeats):
        print(f"bench: oodscope fit on {DEMO_TRAIN}, then score --method msp on its images ({i + 1}/{args.repeats})",
              flush=True)
        fits.append(measure([oodscope, "fit", "--model", MODEL, "--train", DEMO_TRAIN, "--out", demo_fit, *common],
                            env, r"fitted in ([\d.]+) s"))
        scores.append(measure([oodscope, "score", "--model", MODEL, "--method", "msp", *sets, *common],
                              env, r"scored \d+ images in ([\d.]+) s"))
    for run in fits + scores:
        run["images_per_s"] = images / run["wall_s"]
    out = {
        "images": images,
        "classes": (classes[:half], classes[half:]),
        "fit": median_of(fits, "images_per_s"),
        "score": median_of(scores, "images_per_s"),
        "fit_pass_s": statistics.median(r["stderr_seconds"] for r in fits),
        "score_pass_s": statistics.median(r["stderr_seconds"] for r in scores),
        "pair_ratios": sorted(f["images_per_s"] / s["images_per_s"] for f, s in zip(fits, scores)),
        "fit_bytes": demo_fit.stat().st_size,
        "bank_shape": tensor_shape(demo_fit, "knn_bank"),
        "generated": [],
    }
    if args.memory_images:
        for n in sorted({min(10_000, args.memory_images), args.memory_images}):
            folder, fit_file = tmp / f"gen-{n}", tmp / f"gen-{n}.fit.safetensors"
            print(f"bench: fit memory, writing {n} PNGs", flush=True)
            made = measure([bench, "make-folder", "--out", folder, "--images", n])
            print(f"bench: fit memory, fitting {n} images", flush=True)
            run = measure([oodscope, "fit", "--model", MODEL, "--train", folder, "--out", fit_file, *common],
                          env, r"fitted in ([\d.]+) s")
            run.update(images=n, make_s=made["seconds"], fit_bytes=fit_file.stat().st_size,
                       bank_shape=tensor_shape(fit_file, "knn_bank"))
            out["generated"].append(run)
            shutil.rmtree(folder)
            fit_file.unlink()
    return out


def all_methods(args, bench, fit):
    """One plan with every post-hoc method against MSP alone, end to end on the demo ID + OOD
    folders, in turn."""
    sets = ["--id", ID_DIR, "--ood", OOD_DIR]
    common = ["--batch-size", args.batch_size, "--device", "cpu"]
    msp, every = [], []
    for i in range(args.repeats):
        print(f"bench: pipeline, MSP alone, then all post-hoc methods in one plan ({i + 1}/{args.repeats})", flush=True)
        msp.append(measure([bench, "pipeline", "--model", MODEL, *sets, "--methods", "msp", *common]))
        every.append(measure([bench, "pipeline", "--model", MODEL, *sets, "--methods", "all-posthoc", "--fit", fit,
                              *common]))
    return {
        "msp": median_of(msp, "images_per_s"),
        "all": median_of(every, "images_per_s"),
        "pair_ratios": sorted(a["images_per_s"] / m["images_per_s"] for a, m in zip(every, msp)),
    }


def knn_commands(bench, bank, queries, batch, threads, distances, limit=None):
    """The oodscope and faiss command lines of one KNN measurement."""
    extra = ["--limit", limit] if limit else []
    return (
        [bench, "knn", "--bank", bank, "--queries", queries, "--k", KNN_K, "--batch-size", batch, "--threads",
         threads, "--distances-out", distances("oodscope"), *extra],
        [sys.executable, "scripts/bench_knn.py", "faiss", "--bank", bank, "--queries", queries, "--k", KNN_K,
         "--batch-size", batch, "--threads", threads, "--distances-out", distances("faiss"), *extra],
    )


def make_bank(bench, tmp, rows, dim, queries):
    """Seeded bank and queries (bench_knn.py gen), the bank written as a fit writes it (knn-bank)."""
    raw, qfile, bank = tmp / "bank.f32", tmp / f"queries-{rows}x{dim}.f32", tmp / f"bank-{rows}x{dim}.safetensors"
    print(f"bench: knn, generating a {rows} x {dim} bank and {queries} queries", flush=True)
    measure([sys.executable, "scripts/bench_knn.py", "gen", "--rows", rows, "--dim", dim, "--queries", queries,
             "--bank-out", raw, "--queries-out", qfile])
    written = measure([bench, "knn-bank", "--vectors", raw, "--dim", dim, "--out", bank])
    raw.unlink()
    return bank, qfile, written


def knn_check(bank, qfile, distances, reference):
    return measure([sys.executable, "scripts/bench_knn.py", "check", "--bank", bank, "--queries", qfile, "--k", KNN_K,
                    "--a", distances("oodscope"), "--b", distances("faiss"), "--reference", reference])


def knn_size(args, bench, tmp, rows, dim, queries, threads):
    """oodscope's and faiss's KNN search over the same bank and queries, in turn, at each batch size;
    and whether they found the same distances."""
    bank, qfile, written = make_bank(bench, tmp, rows, dim, queries)
    runs = {(side, b): [] for side in ("oodscope", "faiss") for b in KNN_BATCHES}
    for i in range(args.repeats):
        for b in KNN_BATCHES:
            print(f"bench: knn {rows} x {dim}, batch {b}, oodscope then faiss ({i + 1}/{args.repeats})", flush=True)
            ours, theirs = knn_commands(bench, bank, qfile, b, threads, lambda side: tmp / f"{side}-{b}.f64")
            runs[("oodscope", b)].append(measure(ours))
            runs[("faiss", b)].append(measure(theirs))
    by_batch = {}
    for j, b in enumerate(KNN_BATCHES):
        by_batch[b] = {
            "oodscope": median_of(runs[("oodscope", b)], "queries_per_s"),
            "faiss": median_of(runs[("faiss", b)], "queries_per_s"),
            "check": knn_check(bank, qfile, lambda side: tmp / f"{side}-{b}.f64", 256 if j == 0 else 0),
            "pair_ratios": sorted(o["queries_per_s"] / f["queries_per_s"]
                                  for o, f in zip(runs[("oodscope", b)], runs[("faiss", b)])),
        }
    bank.unlink()
    qfile.unlink()
    return {"rows": rows, "dim": dim, "queries": queries, "write": written, "by_batch": by_batch}


def big_bank(args, bench, tmp, threads):
    """A bank of --knn-big-rows × 512 searched from disk at oodscope's default budget (peak RSS and
    queries/s), and faiss on it in memory if there is room."""
    rows = args.knn_big_rows
    if not rows:
        return {"skipped": "--knn-big-rows 0", "rows": 0}
    size = rows * BIG_DIM * 4
    free = shutil.disk_usage(tmp).free
    if free < max(6 * GB, 2 * size + GB):  # the raw vectors and the bank file exist at once
        return {"skipped": f"{free / GB:.1f} GB free in {tmp.parent}, {max(6 * GB, 2 * size + GB) / GB:.0f} GB needed",
                "rows": rows}
    bank, qfile, written = make_bank(bench, tmp, rows, BIG_DIM, max(BIG_QUERIES.values()))
    out = {"rows": rows, "dim": BIG_DIM, "write": written, "file_bytes": bank.stat().st_size, "free_gb": free / GB,
           "by_batch": {}}
    faiss_fits = mem_available() >= size + GB
    if not faiss_fits:
        out["faiss_skipped"] = f"{mem_available() / GB:.1f} GB of memory available, faiss needs {size / GB + 1:.1f}"
    for j, (b, n) in enumerate(BIG_QUERIES.items()):
        distances = lambda side, b=b: tmp / f"big-{side}-{b}.f64"  # noqa: E731
        ours, theirs = knn_commands(bench, bank, qfile, b, threads, distances, limit=n)
        print(f"bench: knn {rows} x {BIG_DIM} from disk, batch {b}, {n} queries: oodscope", flush=True)
        entry = {"oodscope": measure(ours)}
        if faiss_fits:
            print(f"bench: knn {rows} x {BIG_DIM} in faiss's memory, batch {b}, {n} queries", flush=True)
            entry["faiss"] = measure(theirs)
            entry["check"] = knn_check(bank, qfile, distances, BIG_REFERENCE if j == 0 else 0)
        out["by_batch"][b] = entry
    bank.unlink()
    qfile.unlink()
    return out


def render_detectors(d):
    m = d["meta"]
    threads, repeats, batch_size = m["threads"], m["repeats"], m["batch_size"]
    f = d["fit"]
    lines = [
        f"Recorded {m['recorded']} by `{m['command']}` ({m['minutes']:.0f} minutes).",
        "",
        f"- Device: CPU only, {m['cpu']}, {threads} cores; load average {m['load_before']:.2f} before, "
        f"{m['load_after']:.2f} after, {m['loads'][0]:.2f}–{m['loads'][1]:.2f} at the start of the measurements "
        f"(one measurement alone makes about {threads}).",
        f"- Threads: libtorch intra-op {threads} in oodscope (its default on the CPU); faiss "
        f"`omp_set_num_threads({threads})`.",
        f"- Each figure is its own process; the two sides of a comparison run in turn, "
        f"{'once' if repeats == 1 else f'{repeats} times'}, and the table gives the median (every run in "
        "brackets); peak RSS: getrusage maxrss of the process "
        "(the largest of its runs). Ratios within about ±10% of each other are ties on this shared machine.",
    ]

    def bracket(res, key="images_per_s"):
        return f"**{res[key]:.0f}** ({', '.join(map(str, res['runs']))})"

    lines += [
        "",
        f"### Fit (`oodscope fit`, {f['images']} images of `{DEMO_TRAIN}`, whole process)",
        "",
        "| what | images/s (whole process) | the pass alone (s, as the command reports it) | peak RSS (MB) |",
        "|---|---|---|---|",
    ]
    for name, res, pass_s in (
        (f"`oodscope fit --train {DEMO_TRAIN}` (fit file {f['fit_bytes'] / 1e6:.1f} MB, bank "
         f"{' × '.join(map(str, f['bank_shape']))})", f["fit"], f["fit_pass_s"]),
        (f"`oodscope score --method msp`, the same {f['images']} images ({len(f['classes'][0])} class folders "
         f"as ID, {len(f['classes'][1])} as OOD)", f["score"], f["score_pass_s"]),
    ):
        lines.append(f"| {name} | {bracket(res)} | {pass_s:.2f} | {res['peak_rss_mb']:.0f} |")
    x = f["fit"]["images_per_s"] / f["score"]["images_per_s"]
    lines += [
        "",
        f"- fit / score-msp: **{x:.2f}×** the images/s as whole processes (pairs run in turn: "
        f"{', '.join(f'{r:.2f}' for r in f['pair_ratios'])}); the passes alone take {f['fit_pass_s']:.2f} s "
        f"against {f['score_pass_s']:.2f} s ({f['score_pass_s'] / f['fit_pass_s']:.2f}×). The fit's pass also "
        "writes each image's features to disk and then computes the statistics over them (covariances and "
        "their pseudo-inverses, ViM's eigenvectors and α, ReAct's percentiles, the normalised bank).",
    ]
    if f["generated"]:
        lines += [
            "",
            "Fits of generated folders (`oodscope-bench make-folder`: 32×32 PNGs in `id/` and `ood/`, no class "
            "folders, so the classes are the model's predictions), one run each:",
            "",
            "| images | fit in (s, whole process) | images/s | peak RSS (MB) | fit file (MB) | of which the KNN bank (MB) |",
            "|---|---|---|---|---|---|",
        ]
        demo = {**f["fit"], "images": f["images"], "fit_bytes": f["fit_bytes"], "bank_shape": f["bank_shape"]}
        for name, g in [(f"{f['images']} (`fmnist-train`, 28×28, the median run above)", demo),
                        *((str(g["images"]), g) for g in f["generated"])]:
            rows, dim = g["bank_shape"]
            lines.append(
                f"| {name} | {g['wall_s']:.1f} | {g['images'] / g['wall_s']:.0f} | {g['peak_rss_mb']:.0f} | "
                f"{g['fit_bytes'] / 1e6:.1f} | {rows * dim * 4 / 1e6:.1f} |"
            )

    p = d["plan"]
    methods = p["all"]["methods"]
    x = p["all"]["images_per_s"] / p["msp"]["images_per_s"]
    lines += [
        "",
        f"### All post-hoc methods in one plan against MSP alone ({p['msp']['images']} images of `{ID_DIR}` + "
        f"`{OOD_DIR}`, end to end, batch {batch_size})",
        "",
        "| plan | images/s | peak RSS (MB) |",
        "|---|---|---|",
        f"| MSP alone | {bracket(p['msp'])} | {p['msp']['peak_rss_mb']:.0f} |",
        f"| {len(methods)} methods (with the fit of the row above, loaded before timing) | {bracket(p['all'])} | "
        f"{p['all']['peak_rss_mb']:.0f} |",
        "",
        f"- All / MSP: **{x:.2f}×** the images/s (pairs run in turn: "
        f"{', '.join(f'{r:.2f}' for r in p['pair_ratios'])}); that is {1 / x - 1:+.0%} time for {len(methods) - 1} "
        "more methods. One forward pass per batch serves them all.",
        f"- The methods (`--methods all-posthoc`: every registered method the model supports with a fit that takes "
        f"no input step at its defaults): {p['all']['settings']}.",
    ]

    faiss_version = next(iter(d["knn"][0]["by_batch"].values()))["faiss"].get("faiss_version", "?")
    lines += [
        "",
        f"### KNN: `Bank::kth_distance` against faiss's exact flat index (k = {KNN_K}, the same vectors)",
        "",
        "Both search the bank that `oodscope-bench knn-bank` wrote as a fit writes it (each row normalised, float32): "
        f"oodscope through `Bank::open` at its default budget, faiss-cpu {faiss_version} as `IndexFlatIP` over the "
        "same rows (its default settings, its bundled OpenBLAS), the "
        "k-th distance `√(2 − 2s)`. The vectors are seeded ReLU'd Gaussian mixtures (`bench_knn.py gen`: 10 "
        "components; the queries half from the bank's mixture, half from another). Each side times its queries in "
        f"batches after one untimed call on the first 64.",
        "",
        "| bank N × D (held) | batch | queries | oodscope queries/s | faiss queries/s | oodscope / faiss | "
        "peak RSS oodscope / faiss (MB) | max \\|Δd\\| oodscope − faiss | max \\|Δd\\| vs float64 (oodscope / faiss) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size in d["knn"]:
        for b, e in size["by_batch"].items():
            o, fa, c = e["oodscope"], e["faiss"], e["check"]
            ref = (f"{c['max_abs_diff_a_reference']:.1e} / {c['max_abs_diff_b_reference']:.1e} "
                   f"({c['reference_queries']} queries)" if c.get("reference_queries") else "")
            held = "on disk" if o["on_disk"] else "in memory"
            lines.append(
                f"| {size['rows']} × {size['dim']} ({held}) | {b} | {o['queries']} | "
                f"{bracket(o, 'queries_per_s')} | {bracket(fa, 'queries_per_s')} | "
                f"**{o['queries_per_s'] / fa['queries_per_s']:.2f}×** | "
                f"{o['peak_rss_mb']:.0f} / {fa['peak_rss_mb']:.0f} | "
                f"{c['max_abs_diff']:.1e} | {ref} |"
            )

    big = d["big"]
    lines += ["", f"### A {big.get('rows', '?')} × {BIG_DIM} bank read from disk", ""]
    if "skipped" in big:
        lines.append(f"Skipped: {big['skipped']}.")
    else:
        w = big["write"]
        first = next(iter(big["by_batch"].values()))["oodscope"]
        held = (
            "the bank stays in the file and is read in ~64 MB blocks for every batch (from the page cache here: the "
            "file was just written and the machine has the memory; a cold disk adds its read time)"
            if first["on_disk"]
            else "the bank fits the budget, so it is searched in memory"
        )
        lines += [
            f"The bank file is {big['file_bytes'] / 1e9:.2f} GB (written by `knn-bank` in {w['seconds']:.0f} s at a "
            f"peak RSS of {w['peak_rss_mb']:.0f} MB, streamed). oodscope searches it at its default budget "
            f"({first['budget_mb']} MB): {held}. faiss holds the whole bank in memory. One run each.",
            "",
            "| side | batch | queries | queries/s | peak RSS (MB) | max \\|Δd\\| oodscope − faiss |",
            "|---|---|---|---|---|---|",
        ]
        for b, e in big["by_batch"].items():
            o = e["oodscope"]
            held = "bank on disk" if o["on_disk"] else "bank in memory"
            diff = f"{e['check']['max_abs_diff']:.1e}" if "check" in e else ""
            lines.append(f"| oodscope ({held}) | {b} | {o['queries']} | **{o['queries_per_s']:.1f}** | "
                         f"{o['peak_rss_mb']:.0f} | {diff} |")
            if "faiss" in e:
                fa = e["faiss"]
                lines.append(f"| faiss `IndexFlatIP` (in memory) | {b} | {fa['queries']} | **{fa['queries_per_s']:.1f}** "
                             f"| {fa['peak_rss_mb']:.0f} | |")
        if big.get("faiss_skipped"):
            lines.append(f"\nfaiss skipped: {big['faiss_skipped']}.")
        first = next(iter(big["by_batch"].values()))
        if first.get("check", {}).get("reference_queries"):
            c = first["check"]
            lines.append(f"\nAgainst a float64 brute force on the first {c['reference_queries']} queries: max |Δd| "
                         f"{c['max_abs_diff_a_reference']:.1e} (oodscope), {c['max_abs_diff_b_reference']:.1e} (faiss).")
        lines += ["", "| target | measured | |", "|---|---|---|"]
        for b, e in big["by_batch"].items():
            gb = e["oodscope"]["peak_rss_mb"] / 1024
            what = f"batches of {b}" + (" (scoring's default batch size)" if int(b) == 64 else "")
            lines.append(f"| a {big['rows']} × {BIG_DIM} bank scores in ≤ 1 GB RSS, {what} | {gb:.2f} GB | "
                         f"{'met' if gb <= 1 else '**missed**'} |")

    lines += [
        "",
        "Commands (`$T`: a temporary folder, `OODSCOPE_CACHE_DIR=$T/cache`; every command with `--batch-size "
        f"{batch_size} --device cpu` where it takes them):",
        "",
        "```sh",
        f"oodscope fit --model {MODEL} --train {DEMO_TRAIN} --out $T/demo.fit.safetensors --quiet",
        f"oodscope score --model {MODEL} --method msp "
        + " ".join(f"--id {DEMO_TRAIN}/{c}" for c in f["classes"][0]) + " "
        + " ".join(f"--ood {DEMO_TRAIN}/{c}" for c in f["classes"][1]) + " --quiet",
        "oodscope-bench make-folder --out $T/gen-N --images N && "
        f"oodscope fit --model {MODEL} --train $T/gen-N --out $T/gen-N.fit.safetensors --quiet",
        f"oodscope-bench pipeline --model {MODEL} --id {ID_DIR} --ood {OOD_DIR} --methods msp",
        f"oodscope-bench pipeline --model {MODEL} --id {ID_DIR} --ood {OOD_DIR} --methods all-posthoc "
        "--fit $T/demo.fit.safetensors",
        "scripts/bench_knn.py gen --rows N --dim D --queries Q --bank-out $T/bank.f32 --queries-out $T/q.f32",
        "oodscope-bench knn-bank --vectors $T/bank.f32 --dim D --out $T/bank.safetensors",
        f"oodscope-bench knn --bank $T/bank.safetensors --queries $T/q.f32 --k {KNN_K} --batch-size B --threads "
        f"{threads} [--limit n] --distances-out $T/oodscope.f64",
        f"scripts/bench_knn.py faiss --bank $T/bank.safetensors --queries $T/q.f32 --k {KNN_K} --batch-size B "
        f"--threads {threads} [--limit n] --distances-out $T/faiss.f64",
        f"scripts/bench_knn.py check --bank $T/bank.safetensors --queries $T/q.f32 --k {KNN_K} --a $T/oodscope.f64 "
        "--b $T/faiss.f64 --reference 256",
        "```",
    ]
    return "\n".join(lines)



def write(path, text, begin, end):
    """Replaces the block between `begin` and `end` in `path`, or appends one."""
    block = f"{begin}\n{text}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured with `scripts/bench.sh`.\n"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = f"{old.rstrip()}\n\n{block}\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
