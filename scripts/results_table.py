"""Scores the demo sets with every bundled model and applicable method, and writes the README's
results table (between the `results:begin` / `results:end` markers): per model × method × OOD set,
the five metrics, the MSP baseline beside the method, as the papers present them.

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
KEYS = [("fpr_at_95_tpr", "FPR at 95% TPR ↓"), ("detection_error", "Detection error ↓"), ("auroc", "AUROC ↑"),
        ("aupr_in", "AUPR-In ↑"), ("aupr_out", "AUPR-Out ↑")]


def run(model, method, t, eps):
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        args = [str(BIN), "score", "--model", model, "--id", ID, "--method", method, "--temperature", str(t),
                "--epsilon", str(eps), "--device", "cpu", "--quiet", "--report", str(report)]
        for o in OOD:
            args += ["--ood", o]
        subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return json.loads(report.read_text())


def describe(method, t, eps):
    names = {"odin": "ODIN", "energy": "Energy", "confidence": "Confidence branch", "ensemble": "Leave-out ensemble"}
    parts = []
    if method in ("odin", "energy", "ensemble"):
        parts.append(f"T = {t}")
    parts.append(f"ε = {eps}")
    return f"{names[method]} ({', '.join(parts)})"


def table():
    lines = []
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
    readme = ROOT / "README.md"
    text = readme.read_text()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if begin not in text or end not in text:
        sys.exit("README.md has no results markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + begin + "\n" + table() + end + tail)
    print("README.md results table updated")


if __name__ == "__main__":
    main()
