"""Score (and fit) with oodscope on a Ray cluster: every shard is a Ray task that runs the oodscope
binary; the parts are merged into one result, equal to a single machine's.

    .venv/bin/python scripts/ray_score.py --model models/fmnist-resnet.pt \\
        --id assets/demo/fmnist-test --ood assets/demo/mnist --ood uniform:1000 \\
        --method knn --train assets/demo/fmnist-train --shards 8 --work ray-run

What it does:

1. Connects to a running cluster (``--address auto`` or ``ray://host:10001``, or ``RAY_ADDRESS``), or
   starts a local one (``ray.init(num_cpus=--num-cpus)``).
2. With ``--train DIR``: a sharded fit first. Task i runs
   ``oodscope fit --shard i/N --out WORK/fit-part-i.safetensors``; then
   ``oodscope fit-merge`` writes ``WORK/fit.safetensors`` (the file a single ``oodscope fit`` with
   the same ``--fit-batch-size`` writes), and scoring uses it (``--fit``).
3. Task i runs ``oodscope score --shard i/N --results WORK/score-part-i.parquet`` (every set's
   sorted listing cut into N blocks; the method, ``--param`` and any further arguments as given),
   or ``oodscope compare`` with ``--methods a,b,...`` (one score column per method).
4. ``oodscope merge`` checks the parts and concatenates them into ``--out``
   (default ``WORK/results.parquet``), and its metrics table is printed.

Each task asks for one GPU (``num_gpus=1``) when the cluster has GPUs, else one CPU. A shard that
fails (the binary's exit code, or its worker lost) is run again, up to ``--max-retries`` times, with
a log line saying which shard, which attempt and the binary's last error line; nothing is merged
unless every shard succeeded. Paths are made absolute: on a cluster of several machines the binary,
the model, the image folders and WORK must be at the same paths on every node (a shared file
system). Arguments this script does not know go to ``oodscope score`` (or ``compare``) as they are (e.g.
``--batch-size 256``, ``--save-features``).

``--fit-only`` stops after the sharded fit (with ``--train``). For tests, ``RAY_SCORE_FAIL_ONCE``
(e.g. ``score:1,fit:0``) makes those shards fail on their first attempt, to exercise the retries.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import ray

ROOT = Path(__file__).resolve().parent.parent


def log(message):
    print(f"ray_score: {message}", file=sys.stderr, flush=True)


def absolute(spec):
    """A set spec with its folder made absolute (uniform:N / gaussian:N stay as they are)."""
    if spec.split(":", 1)[0] in ("uniform", "gaussian"):
        return spec
    return str(Path(spec).resolve())


@ray.remote
def run_shard(command, fail_marker):
    """Runs one shard's oodscope command in a Ray worker; its exit code and output."""
    if fail_marker is not None and not os.path.exists(fail_marker):
        Path(fail_marker).write_text("failed once on purpose (RAY_SCORE_FAIL_ONCE)\n")
        return {"rc": 75, "stdout": "", "stderr": "simulated failure (RAY_SCORE_FAIL_ONCE)\n"}
    done = subprocess.run(command, capture_output=True, text=True)
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_shards(kind, commands, task_options, max_retries, work):
    """Runs every shard's command as a Ray task, retrying failed shards; their outputs by shard."""
    fail_once = {
        int(item.split(":")[1])
        for item in os.environ.get("RAY_SCORE_FAIL_ONCE", "").split(",")
        if item.startswith(f"{kind}:")
    }
    n = len(commands)
    for i in fail_once:  # once per run of this script
        (work / f".{kind}-{i}-failed-once").unlink(missing_ok=True)
    remote = run_shard.options(**task_options)

    def submit(i):
        marker = str(work / f".{kind}-{i}-failed-once") if i in fail_once else None
        return remote.remote(commands[i], marker)

    pending = {submit(i): i for i in range(n)}
    attempts = {i: 1 for i in range(n)}
    outputs = {}
    started = time.monotonic()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except Exception as error:  # the worker was lost beyond Ray's own retries
            result = {"rc": -1, "stdout": "", "stderr": f"Ray task error: {error}"}
        if result["rc"] == 0:
            outputs[i] = result
            log(f"{kind} shard {i}/{n} done ({len(outputs)} of {n}, {time.monotonic() - started:.1f} s)")
            continue
        reason = last_line(result["stderr"])
        if attempts[i] > max_retries:
            raise SystemExit(
                f"ray_score: {kind} shard {i}/{n} failed {attempts[i]} times, giving up: {reason}"
            )
        log(f"{kind} shard {i}/{n} failed (attempt {attempts[i]} of {max_retries + 1}): {reason}; retrying")
        attempts[i] += 1
        pending[submit(i)] = i
    return [outputs[i] for i in range(n)]


def run_here(command):
    """Runs a merge step on this machine; stops with its error line if it fails."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"ray_score: {' '.join(command[1:3])} failed: {last_line(done.stderr)}")
    return done


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--oodscope", default=str(ROOT / "target/release/oodscope"), help="the oodscope binary")
    parser.add_argument("--model", required=True, help="TorchScript model (.pt with its card) or card (.toml)")
    parser.add_argument("--id", action="append", default=[], help="ID set (repeatable)")
    parser.add_argument("--ood", action="append", default=[], help="OOD set: folder, uniform:N or gaussian:N (repeatable)")
    methods = parser.add_mutually_exclusive_group()
    methods.add_argument("--method", default="msp", help="one scoring method (the shards run `oodscope score`)")
    methods.add_argument("--methods", help="several methods, e.g. knn,vim,energy or all (the shards run "
                         "`oodscope compare`: one score column per method)")
    parser.add_argument("--param", action="append", default=[],
                        help="a method parameter NAME=VALUE (METHOD.NAME=VALUE with --methods; repeatable)")
    parser.add_argument("--shards", type=int, required=True, help="N: how many shards (Ray tasks) per step")
    parser.add_argument("--work", default="ray-oodscope", help="folder for the parts and the merged files")
    parser.add_argument("--out", help="the merged results (Parquet) [default: WORK/results.parquet]")
    parser.add_argument("--train", help="ID training folder: fit sharded first (fit --shard, fit-merge)")
    parser.add_argument("--fit", help="a fit file made before (instead of --train)")
    parser.add_argument("--fit-batch-size", type=int, default=64, help="batch size of the fit shards")
    parser.add_argument("--max-fit-images", type=int, help="fit on at most N training images")
    parser.add_argument("--fit-only", action="store_true", help="stop after the sharded fit")
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="a running Ray cluster (auto, ray://host:10001) [default: start a local one]")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local cluster [default: all]")
    parser.add_argument("--max-retries", type=int, default=2, help="runs of a failed shard after the first")
    args, score_extra = parser.parse_known_args(argv)

    if args.shards < 1:
        parser.error("--shards must be at least 1")
    if args.train and args.fit:
        parser.error("give --train or --fit, not both")
    if args.fit_only and not args.train:
        parser.error("--fit-only needs --train")
    if not args.fit_only and (not args.id or not args.ood):
        parser.error("give at least one --id and one --ood set")
    binary = str(Path(args.oodscope).resolve())
    if not os.access(binary, os.X_OK):
        parser.error(f"{binary}: no oodscope binary there (cargo build --release, or give --oodscope)")
    model = str(Path(args.model).resolve())
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    n = args.shards

    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    gpus = ray.cluster_resources().get("GPU", 0)
    task_options = {"num_gpus": 1} if gpus > 0 else {"num_cpus": 1}
    log(f"{n} shards on a cluster of {ray.cluster_resources().get('CPU', 0):.0f} CPUs and {gpus:.0f} GPUs; "
        f"each task asks for {task_options}")

    fit_file = str(Path(args.fit).resolve()) if args.fit else None
    if args.train:
        train = str(Path(args.train).resolve())
        fit_parts = [str(work / f"fit-part-{i}.safetensors") for i in range(n)]
        commands = []
        for i in range(n):
            command = [binary, "fit", "--model", model, "--train", train, "--shard", f"{i}/{n}",
                       "--out", fit_parts[i], "--batch-size", str(args.fit_batch_size), "--quiet"]
            if args.max_fit_images is not None:
                command += ["--max-images", str(args.max_fit_images)]
            commands.append(command)
        run_shards("fit", commands, task_options, args.max_retries, work)
        fit_file = str(work / "fit.safetensors")
        merged = run_here([binary, "fit-merge", *fit_parts, "--out", fit_file, "--quiet"])
        log(f"fit merged from {n} parts into {fit_file}")
        if args.fit_only:
            print(merged.stdout, end="")
            return 0

    score_parts = [str(work / f"score-part-{i}.parquet") for i in range(n)]
    commands = []
    for i in range(n):
        command = [binary, "compare", "--methods", args.methods] if args.methods else [
            binary, "score", "--method", args.method]
        command += ["--model", model, "--shard", f"{i}/{n}", "--results", score_parts[i], "--quiet"]
        for spec in args.id:
            command += ["--id", absolute(spec)]
        for spec in args.ood:
            command += ["--ood", absolute(spec)]
        for param in args.param:
            command += ["--param", param]
        if fit_file:
            command += ["--fit", fit_file]
        commands.append(command + score_extra)
    run_shards("score", commands, task_options, args.max_retries, work)
    out = str(Path(args.out).resolve()) if args.out else str(work / "results.parquet")
    merged = run_here([binary, "merge", *score_parts, "--out", out])
    log(f"results merged from {n} parts into {out}")
    print(merged.stdout, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
