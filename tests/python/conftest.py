"""Shared fixtures of the Python package's tests: the repository, the oodscope binary, and the CLI's
own outputs on the bundled model and demo sets (the references the package must equal)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("OODSCOPE_FIXTURES", REPO / "target" / "fixtures"))
OODSCOPE = REPO / "target" / "release" / "oodscope"
DEMO_MODEL = REPO / "models" / "fmnist-resnet.pt"
DEMO = REPO / "assets" / "demo"

# Every method the package scores from outputs (no input gradient), with the parameters the tests use.
ARRAY_METHODS = {
    "msp": {}, "energy": {}, "maxlogit": {}, "entropy": {}, "gen": {}, "klm": {}, "mahalanobis": {},
    "rmds": {}, "knn": {"k": 10}, "vim": {}, "residual": {}, "fdbd": {}, "nci": {}, "react": {},
    "ash-p": {}, "ash-b": {}, "ash-s": {}, "scale": {}, "lts": {}, "dice": {}, "gradnorm": {},
    "she": {}, "vra": {}, "tempscale": {}, "nnguide": {}, "pnml": {}, "openmax": {}, "gmm": {},
}


def oodscope_cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs the oodscope binary; fails the test with its stderr when it fails."""
    done = subprocess.run([str(OODSCOPE), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, f"oodscope {' '.join(map(str, args))} failed:\n{done.stderr}"
    return done


def read_results(path: Path) -> dict[str, dict]:
    """A results file's rows per set: logits, features, labels, paths and every score column."""
    table = pq.read_table(path).to_pandas()
    sets = {}
    for name, rows in table.groupby("set", sort=False):
        sets[name] = {
            "logits": np.stack(rows["logits"].to_numpy()).astype(np.float32),
            "features": np.stack(rows["features"].to_numpy()).astype(np.float32),
            "labels": rows["label"].to_numpy(),
            "paths": rows["path"].tolist(),
            "role": rows["role"].iloc[0],
            "columns": {c: rows[c].to_numpy(np.float32) for c in rows.columns if c in ARRAY_METHODS},
        }
    return sets


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> dict:
    """The CLI on the bundled model: a fit of the 6000 training images, one compare run of every
    array method over the demo sets (logits and features saved), and the training set's outputs."""
    out = tmp_path_factory.mktemp("demo")
    fit = out / "fit.safetensors"
    oodscope_cli("fit", "--model", DEMO_MODEL, "--train", DEMO / "fmnist-train", "--out", fit, "--class-covariances", "--quiet")
    params = [a for m, p in ARRAY_METHODS.items() for k, v in p.items() for a in ("--param", f"{m}.{k}={v}")]
    oodscope_cli(
        "compare", "--model", DEMO_MODEL, "--id", DEMO / "fmnist-test", "--ood", DEMO / "mnist",
        "--ood", DEMO / "photo-crops", "--fit", fit, "--methods", ",".join(ARRAY_METHODS), *params,
        "--results", out / "run.parquet", "--save-logits", "--save-features", "--report", out / "report.json",
        "--quiet",
    )
    oodscope_cli(
        "score", "--model", DEMO_MODEL, "--id", DEMO / "fmnist-train", "--ood", "uniform:1",
        "--results", out / "train.parquet", "--save-logits", "--save-features", "--quiet",
    )
    module = torch.jit.load(str(DEMO_MODEL))
    head = (module.fc.weight.detach().numpy(), module.fc.bias.detach().numpy())
    return {
        "dir": out,
        "fit": fit,
        "sets": read_results(out / "run.parquet"),
        "train": read_results(out / "train.parquet")["fmnist-train"],
        "report": out / "report.json",
        "head": head,
        "classes": module_classes(),
    }


def module_classes() -> list[str]:
    import tomllib

    return tomllib.loads(DEMO_MODEL.with_suffix(".toml").read_text())["classes"]
