#!/usr/bin/env python3
"""Model math at real size (issue 12): can batch-norm folding, channels-last or oneDNN settings make the
ResNet-18's own forward/backward cheaper without moving MSP/ODIN scores beyond the tolerances
(1e-4 relative for MSP, 3e-4 for ODIN)?

Part `micro`: one fixed batch of 64 real JPEGs from target/bench-compare/{id,ood} (PIL, Resize 256,
CenterCrop 224, ToTensor, Normalize — the card's preprocessing), torch.set_num_threads(2), each variant of
the same TorchScript file timed (median of --repeats after 2 warm-up calls) on
  MSP:  one forward without gradients, scores = max softmax(ℓ);
  ODIN: forward with input gradients, backward, x̃ = x − ε·sign(∇ₓ(−log max softmax(ℓ/T))), forward on x̃,
        scores = max softmax(f(x̃)/T), T = 1000, ε = 0.0014;
and compared with the exported module's scores (max relative difference).

Part `e2e`: whole processes (start to exit), alternating, median of --e2e-repeats:
`oodscope score --method msp|odin --quiet --device cpu` against scripts/bench_torch.py --mode batched
(PIL + DataLoader num_workers=0, batch 64, 2 threads), each on the plain traced file
(target/bench-compare/resnet18.pt, exported with --no-freeze) and on the exporter's default, frozen
file (target/bench-compare/resnet18_frozen.pt: the same network and weights exported again by
scripts/export_model.py, channels-last weights, batch norm folded, its head beside it as
resnet18_frozen.head.safetensors). Both runs of a method must print the same metrics.

    python scripts/bench_model_math.py [--part micro,e2e] [--variants a,d,x] [--repeats 5] [--e2e-repeats 3]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench-compare"
MODEL = WORK / "resnet18.pt"
FROZEN = WORK / "resnet18_frozen.pt"  # the exporter's default: frozen with channels-last weights
# The export of bench_compare.py's real-size model (random weights: the exporter seeds them).
EXPORT = ["--model", "torchvision:resnet18", "--num-classes", "10", "--preprocess", "torchvision-imagenet"]
T, EPS = 1000.0, 0.0014


def load_batch(n=64):
    import torchvision.transforms as tv
    from PIL import Image

    tf = tv.Compose([tv.Resize(256), tv.CenterCrop(224), tv.ToTensor(),
                     tv.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    paths = sorted((WORK / "id").glob("*.jpg")) + sorted((WORK / "ood").glob("*.jpg"))
    paths = paths[:n]
    xs = []
    for p in paths:
        with Image.open(p) as im:
            xs.append(tf(im.convert("RGB")))
    return torch.stack(xs)


def logits_of(m, x):
    out = m(x)
    return out[0] if isinstance(out, tuple) else out


def msp(m, x):
    with torch.no_grad():
        return F.softmax(logits_of(m, x), dim=1).max(1).values


def odin(m, x):
    xg = x.detach().clone().requires_grad_(True)
    logits = logits_of(m, xg)
    pred = logits.argmax(1, keepdim=True)
    loss = -(F.log_softmax(logits / T, dim=1).gather(1, pred)).sum()
    loss.backward()
    if xg.grad is None:
        raise RuntimeError("no input gradient")
    x_tilde = (x - EPS * torch.sign(xg.grad)).detach()
    if x.is_contiguous(memory_format=torch.channels_last):
        x_tilde = x_tilde.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        return F.softmax(logits_of(m, x_tilde) / T, dim=1).max(1).values


def timed(fn, repeats):
    fn(), fn()  # TorchScript's profiling runs (the second call is optimised), not timed
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def count_nodes(m, kind):
    g = m.graph if hasattr(m, "graph") else None
    if g is None:
        return None
    n = 0
    for node in g.nodes():
        if node.kind() == kind:
            n += 1
    return n


def variants():
    """(name, description, builder() -> (module, input transform), global setup, global teardown)."""
    load = lambda: torch.jit.load(str(MODEL)).eval()  # noqa: E731
    ident = lambda x: x  # noqa: E731
    cl = lambda x: x.contiguous(memory_format=torch.channels_last)  # noqa: E731

    def frozen():
        return torch.jit.freeze(load())

    def frozen_ofi():
        return torch.jit.optimize_for_inference(torch.jit.freeze(load()))

    def frozen_cl():
        m = load()
        m.to(memory_format=torch.channels_last)
        return torch.jit.freeze(m)

    def base_cl():
        m = load()
        m.to(memory_format=torch.channels_last)
        return m

    def exported():
        export_frozen()
        return torch.jit.load(str(FROZEN)).eval()

    def on(flag):
        return lambda: torch.jit.enable_onednn_fusion(flag)

    nop = lambda: None  # noqa: E731
    return [
        ("a", "as exported (baseline)", lambda: (load(), ident), nop, nop),
        ("b", "torch.jit.freeze (conv+BN folded)", lambda: (frozen(), ident), nop, nop),
        ("c", "b + torch.jit.optimize_for_inference (MKLDNN)", lambda: (frozen_ofi(), ident), nop, nop),
        ("d", "b + channels-last weights and input", lambda: (frozen_cl(), cl), nop, nop),
        ("e1", "a + channels-last weights and input (not frozen)", lambda: (base_cl(), cl), nop, nop),
        ("e2", "b + oneDNN Graph fusion (torch.jit.enable_onednn_fusion)", lambda: (frozen(), ident),
         on(True), on(False)),
        ("x", "the exporter's default file (d as exported), NCHW-contiguous input (as oodscope feeds it)",
         lambda: (exported(), ident), nop, nop),
    ]


def part_micro(args):
    torch.set_num_threads(2)
    x0 = load_batch(64)
    print(f"micro: batch {tuple(x0.shape)} of real JPEGs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, mkldnn {torch.backends.mkldnn.is_available()}", flush=True)
    rows, base = [], None
    chosen = args.variants.split(",") if args.variants else None
    for key, desc, build, setup, teardown in variants():
        if chosen is not None and key not in chosen:
            continue
        setup()
        row = {"variant": key, "what": desc}
        try:
            m, tf = build()
            x = tf(x0.clone())
            row["batch_norm_nodes"] = count_nodes(m, "aten::batch_norm")
            ms, mt, ms_scores = timed(lambda: msp(m, x), args.repeats)
            row.update(msp_s=ms, msp_runs=mt)
            try:
                os_, ot, od_scores = timed(lambda: odin(m, x), args.repeats)
                row.update(odin_s=os_, odin_runs=ot, gradients="yes")
            except Exception as e:  # noqa: BLE001
                od_scores = None
                row.update(odin_s=None, gradients=f"no: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
            if base is None:
                base = (ms_scores, od_scores, ms, row["odin_s"])
            row["msp_ratio"] = base[2] / ms
            row["msp_rel"] = float(((ms_scores - base[0]).abs() / base[0].abs()).max())
            if od_scores is not None:
                row["odin_ratio"] = base[3] / row["odin_s"]
                row["odin_rel"] = float(((od_scores - base[1]).abs() / base[1].abs()).max())
        except Exception as e:  # noqa: BLE001
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        finally:
            teardown()
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def export_frozen():
    """The plain file (exported with --no-freeze when missing) and the exporter's default, frozen
    export of the same network and weights beside it (made once)."""
    for path, extra in ((MODEL, ["--no-freeze"]), (FROZEN, [])):
        if not path.exists():
            subprocess.run([sys.executable, "scripts/export_model.py", *EXPORT, *extra, "--out", str(path)], cwd=ROOT,
                           check=True)
    card = (WORK / "resnet18_frozen.toml").read_text()
    if 'head = "resnet18_frozen.head.safetensors"' not in card:
        raise SystemExit(f"{FROZEN} is not frozen (its card's head is not the head file): remove it and rerun")


def run_wall(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: {p.stderr[-2000:]}")
    return dt, p.stdout


def part_e2e(args):
    export_frozen()
    oodscope = str(ROOT / "target" / "release" / "oodscope")
    sets = ["--id", str(WORK / "id"), "--ood", str(WORK / "ood")]
    files = {"plain": MODEL, "frozen": FROZEN}
    cmds = {}
    # In each repeat the plain and frozen runs of one program follow each other (their ratio per
    # repeat is steadier than the medians' on a machine whose load comes and goes).
    for method in ("msp", "odin"):
        for kind, path in files.items():
            cmds[(f"oodscope_{kind}", method)] = [oodscope, "score", "--model", str(path), *sets, "--method", method,
                                                  "--quiet", "--device", "cpu"]
        for kind, path in files.items():
            cmds[(f"pytorch_{kind}", method)] = [sys.executable, "scripts/bench_torch.py", "--mode", "batched",
                                                 "--method", method, "--model", str(path), *sets, "--batch-size", "64",
                                                 "--threads", "2", "--workers", "0"]
    times = {k: [] for k in cmds}
    outs = {}
    for _ in range(args.e2e_repeats):
        for k, cmd in cmds.items():
            dt, out = run_wall(cmd)
            times[k].append(dt)
            outs.setdefault(k, []).append(out)
    res = {f"{k[0]}/{k[1]}": {"median_s": statistics.median(v), "runs": v} for k, v in times.items()}
    for method in ("msp", "odin"):
        # The scripts' own timers (scoring only, after start and model load).
        for kind in files:
            own = [json.loads(o.strip().splitlines()[-1])["seconds"] for o in outs[(f"pytorch_{kind}", method)]]
            res[f"pytorch_{kind}/{method}"]["own_timer_median_s"] = statistics.median(own)
            res[f"pytorch_{kind}/{method}"]["mean_score"] = json.loads(
                outs[(f"pytorch_{kind}", method)][-1].strip().splitlines()[-1])["mean_score"]
        median = lambda name: res[f"{name}/{method}"]["median_s"]  # noqa: E731
        for program in ("oodscope", "pytorch"):
            runs = lambda kind: res[f"{program}_{kind}/{method}"]["runs"]  # noqa: E731
            res[f"ratio {program}_frozen/{program}_plain {method}"] = median(f"{program}_frozen") / median(f"{program}_plain")
            res[f"ratios per repeat {program}_frozen/{program}_plain {method}"] = [
                f / p for f, p in zip(runs("frozen"), runs("plain"))]
        for kind in files:
            res[f"ratio oodscope_{kind}/pytorch_plain {method}"] = median(f"oodscope_{kind}") / median("pytorch_plain")
            res[f"ratio oodscope_{kind}/pytorch_{kind} {method}"] = median(f"oodscope_{kind}") / median(f"pytorch_{kind}")
        plain, frozen = outs[("oodscope_plain", method)][-1], outs[("oodscope_frozen", method)][-1]
        res[f"same metrics {method}"] = metrics_of(plain) == metrics_of(frozen)
        res[f"stdout oodscope_plain {method}"] = plain[-1500:]
        res[f"stdout oodscope_frozen {method}"] = frozen[-1500:]
    print(json.dumps(res, indent=1), flush=True)
    return res


def metrics_of(stdout: str) -> list[str]:
    """The lines of `oodscope score`'s output that hold numbers (the metrics table), without the
    model's name (the files differ in it)."""
    return [line.replace("resnet18_frozen", "resnet18") for line in stdout.splitlines()
            if any(c.isdigit() for c in line) and "s)" not in line]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="micro,e2e")
    ap.add_argument("--variants", help="micro: only these variants (comma-separated keys: a, b, c, d, e1, e2, x)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--e2e-repeats", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    res = {"loadavg_before": os.getloadavg()}
    parts = args.part.split(",")
    if "micro" in parts:
        res["micro"] = part_micro(args)
    if "e2e" in parts:
        res["e2e"] = part_e2e(args)
    res["loadavg_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
