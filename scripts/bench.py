#!/usr/bin/env python3
"""Runs every benchmark of oodscope in one go (called by scripts/bench.sh after the release build),
prints the figures and writes them into BENCHMARKS.md between its bench markers.

Each measurement is its own process, so that its peak RSS (getrusage maxrss, via os.wait4: the
largest single process among it and its waited-for children) is its own.
"""

import argparse
import datetime
import json
import os
import platform
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
MARKERS = {  # the block of BENCHMARKS.md each device's run rewrites
    "cpu": ("<!-- bench:begin -->", "<!-- bench:end -->"),
    "cuda": ("<!-- bench-cuda:begin -->", "<!-- bench-cuda:end -->"),
}
# glibc's malloc with the settings oodscope applies to itself (src/alloc.rs), for the Python runs that
# show how much of the difference is the allocator.
HEAP_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456"


def measure(cmd, env=None):
    """Runs `cmd` in the repository root (with `env` added to the environment); returns its last
    stdout line as JSON (if any) with the process's wall time and peak RSS added."""
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
    ap.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where both sides run the model")
    ap.add_argument("--bench-binary", default=str(BENCH_DEFAULT), help="oodscope-bench to run (e.g. one built elsewhere)")
    ap.add_argument("--oodscope-binary", default=str(OODSCOPE_DEFAULT))
    args = ap.parse_args()

    cores = os.cpu_count() or 1
    model_threads = cores if args.device == "cpu" else 1  # oodscope's defaults (default_model_threads)
    bench, oodscope = Path(args.bench_binary).resolve(), Path(args.oodscope_binary).resolve()
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
        r["profile"] = measure(
            [sys.executable, "scripts/profile_odin.py", "--model", MODEL, "--threads", model_threads,
             "--batch-size", args.batch_size],
            env={"GLIBC_TUNABLES": HEAP_TUNABLES},
        )
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
        "- Memory allocator: oodscope sets glibc's malloc to keep tensor buffers in the heap (`src/alloc.rs`; "
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
