"""Scores the demo sets with every bundled model and applicable method, and writes docs/demo.md's
results tables (between the `results:begin` / `results:end` markers):

* every method of the registry that the plain ResNet supports, at its defaults (the fit methods on
  the demo's ID training sample), sorted by mean AUROC: FPR at 95% TPR and AUROC per OOD set;
* per model × method × OOD set, the five metrics, the MSP baseline beside the method, as the papers
  present them (ODIN, energy, the confidence branch, the leave-out ensemble).

Usage (after scripts/run.sh or cargo build --release): .venv/bin/python scripts/results_table.py
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/oodscope"
ID = "assets/demo/fmnist-test"
OOD = ["assets/demo/mnist", "assets/demo/photo-crops", "uniform:1000", "gaussian:1000"]
RUNS = [
    # model, method, temperature, epsilon
    ("models/fmnist-resnet.pt", "odin", 1000, 0.0014),
    ("models/fmnist-resnet.pt", "energy", 1, 0),
    ("models/fmnist-resnet-confidence.pt", "confidence", 1, 0),
    ("models/fmnist-resnet-confidence.pt", "confidence", 1, 0.0014),
    ("models/fmnist-leaveout/fmnist-leaveout.toml", "ensemble", 1000, 0.0014),
]
TRAIN = "assets/demo/fmnist-train"
LEADERBOARD_MODEL = "models/fmnist-resnet.pt"
KEYS = [("fpr_at_95_tpr", "FPR at 95% TPR ↓"), ("detection_error", "Detection error ↓"), ("auroc", "AUROC ↑"),
        ("aupr_in", "AUPR-In ↑"), ("aupr_out", "AUPR-Out ↑")]


def run(model, method, t=None, eps=None):
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        args = [str(BIN), "score", "--model", model, "--id", ID, "--method", method, "--device", "cpu", "--quiet",
                "--report", str(report), "--train", TRAIN]
        if t is not None and method != "confidence":  # the confidence branch has no T
            args += ["--temperature", str(t)]
        if eps is not None:
            args += ["--epsilon", str(eps)]
        for o in OOD:
            args += ["--ood", o]
        subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return json.loads(report.read_text())


def supported_methods(model):
    """The registry's methods that `model` supports, in registry order (from `oodscope methods`)."""
    out = subprocess.run([str(BIN), "methods", "--model", model], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    names = []
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and "[not for this model" not in line:
            names.append(line.split()[0])
    return names


def describe_params(params):
    symbols = {"temperature": "T", "epsilon": "ε", "percentile": "p", "gamma": "γ", "m": "M"}
    order = ["temperature", "epsilon", "gamma", "m"]
    keys = sorted(params, key=lambda k: order.index(k) if k in order else len(order))
    return ", ".join(f"{symbols.get(k, k)} = {params[k]:g}" for k in keys)


def leaderboard():
    methods = supported_methods(LEADERBOARD_MODEL)
    rows = []
    for method in methods:
        r = run(LEADERBOARD_MODEL, method)
        rows.append((method, r))
    sets = list(rows[0][1]["metrics"])
    mean = lambda r: sum(r["metrics"][s]["auroc"] for s in sets) / len(sets)
    rows.sort(key=lambda mr: -mean(mr[1]))
    lines = [f"**fmnist-resnet** — all {len(rows)} methods it supports, at their defaults (the methods with a fit "
             f"use the demo's ID training sample, `{TRAIN}`), sorted by mean AUROC. FPR at 95% TPR ↓ / AUROC ↑, "
             "percentages; **bold**: the best of each column.", ""]
    lines.append("| method | parameters | " + " | ".join(sets) + " | mean AUROC ↑ |")
    lines.append("|---" * (len(sets) + 3) + "|")
    best_fpr = {s: min(r["metrics"][s]["fpr_at_95_tpr"] for _, r in rows) for s in sets}
    best_auc = {s: max(r["metrics"][s]["auroc"] for _, r in rows) for s in sets}
    best_mean = max(mean(r) for _, r in rows)
    bold = lambda text, on: f"**{text}**" if on else text
    for method, r in rows:
        cells = []
        for s in sets:
            m = r["metrics"][s]
            fpr = bold(f"{100 * m['fpr_at_95_tpr']:.1f}", m["fpr_at_95_tpr"] == best_fpr[s])
            auc = bold(f"{100 * m['auroc']:.1f}", m["auroc"] == best_auc[s])
            cells.append(f"{fpr} / {auc}")
        name = f"`{method}`" + (" (baseline)" if method == "msp" else "")
        params = describe_params(r["settings"]["params"]) or "–"
        lines.append(f"| {name} | {params} | " + " | ".join(cells) + f" | {bold(f'{100 * mean(r):.1f}', mean(r) == best_mean)} |")
    lines.append("")
    return "\n".join(lines)


def describe(method, t, eps):
    names = {"odin": "ODIN", "energy": "Energy", "confidence": "Confidence branch", "ensemble": "Leave-out ensemble"}
    parts = []
    if method in ("odin", "energy", "ensemble"):
        parts.append(f"T = {t}")
    parts.append(f"ε = {eps}")
    return f"{names[method]} ({', '.join(parts)})"


def table():
    lines = [leaderboard()]
    for model, method, t, eps in RUNS:
        r = run(model, method, t, eps)
        acc = r["id_accuracy"]
        baseline = r.get("baseline_metrics")
        name = r["settings"]["model_name"]
        head = f"**{name}** — {describe(method, t, eps)}" + (" beside the MSP baseline (baseline / method)" if baseline else "")
        lines += [f"{head}; ID accuracy on the demo sample {100 * acc:.2f}%", ""]
        lines.append("| OOD set | " + " | ".join(label for _, label in KEYS) + " |")
        lines.append("|---" * (len(KEYS) + 1) + "|")
        for ood, m in r["metrics"].items():
            cells = []
            for key, _ in KEYS:
                value = f"{100 * m[key]:.1f}"
                cells.append(f"{100 * baseline[ood][key]:.1f} / {value}" if baseline else value)
            lines.append(f"| {ood} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main():
    readme = ROOT / "docs" / "demo.md"
    text = readme.read_text()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if begin not in text or end not in text:
        sys.exit("docs/demo.md has no results markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + begin + "\n" + table() + end + tail)
    print("docs/demo.md results table updated")


if __name__ == "__main__":
    main()
