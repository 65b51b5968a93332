"""The package runs oodscope's engine in-process: on the CLI's own outputs its scores equal the
CLI's bit for bit, its fits from arrays agree with `oodscope fit`, and compare equals the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

import oodscope
from conftest import ARRAY_METHODS


def outputs_of(s: dict, classes: list[str]) -> oodscope.Outputs:
    return oodscope.Outputs(s["logits"], s["features"], paths=s["paths"], classes=classes)


@pytest.mark.parametrize("method", list(ARRAY_METHODS))
def test_scores_equal_the_cli_bit_for_bit(demo_run, method):
    fit = oodscope.Fit.load(demo_run["fit"])
    for name, s in demo_run["sets"].items():
        got = oodscope.score(method, outputs_of(s, demo_run["classes"]), fit, head=demo_run["head"], **ARRAY_METHODS[method])
        assert got.dtype == np.float32 and got.shape == (len(s["paths"]),)
        expected = s["columns"][method]
        assert np.array_equal(got, expected), f"{method} on {name}: max |Δ| = {np.abs(got - expected).max():.3e}"


def test_a_fit_from_arrays_scores_like_oodscope_fit(demo_run):
    train = demo_run["train"]
    ours = oodscope.Fit.from_outputs(
        oodscope.Outputs(train["logits"], train["features"], labels=train["labels"], classes=demo_run["classes"]),
        head=demo_run["head"],
        class_covariances=True,
    )
    assert ours.has_head and ours.info["images"] == 6000 and ours.info["labels"] == "given"
    cli = oodscope.Fit.load(demo_run["fit"])
    assert ours.info["counts"] == cli.info["counts"]
    for method in ("klm", "mahalanobis", "rmds", "knn", "vim", "residual", "fdbd", "nci", "react", "dice", "gradnorm", "she", "vra", "tempscale",
                   "nnguide", "pnml", "openmax", "gmm"):
        for name, s in demo_run["sets"].items():
            outputs = outputs_of(s, demo_run["classes"])
            params = ARRAY_METHODS[method]
            a = oodscope.score(method, outputs, ours, **params).astype(np.float64)
            b = oodscope.score(method, outputs, cli, head=demo_run["head"], **params).astype(np.float64)
            scale = max(np.abs(b).max(), 1e-6)
            assert np.abs(a - b).max() <= 1e-5 * scale, f"{method} on {name}: {np.abs(a - b).max() / scale:.2e} apart"


def test_a_saved_fit_loads_back_the_same(demo_run, tmp_path):
    train = demo_run["train"]
    fit = oodscope.Fit.from_outputs(oodscope.Outputs(train["logits"], train["features"]), head=demo_run["head"])
    saved = fit.save(tmp_path / "mine.safetensors")
    again = oodscope.Fit.load(saved)
    assert again.info == {**fit.info, "file": str(saved)}
    outputs = outputs_of(demo_run["sets"]["mnist"], demo_run["classes"])
    assert np.array_equal(oodscope.score("vim", outputs, fit), oodscope.score("vim", outputs, again))
    # Damaged on disk: refused, naming the file.
    data = bytearray(saved.read_bytes())
    data[-5] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(oodscope.OodscopeError, match="damaged"):
        oodscope.Fit.load(saved)


def test_compare_equals_the_cli_report(demo_run):
    sets = demo_run["sets"]
    classes = demo_run["classes"]
    id_name = next(n for n, s in sets.items() if s["role"] == "id")
    ood = {n: outputs_of(s, classes) for n, s in sets.items() if n != id_name}
    params = {m: p for m, p in ARRAY_METHODS.items() if p}
    frame = oodscope.compare(
        outputs_of(sets[id_name], classes), ood, oodscope.Fit.load(demo_run["fit"]), params=params, head=demo_run["head"]
    )
    assert set(frame.index) == set(ARRAY_METHODS), frame.attrs["skipped"]
    report = json.loads(demo_run["report"].read_text())
    checked = 0
    for name, entry in report["methods"].items():
        for set_name, values in [*entry["metrics"].items(), ("mean", entry["mean_metrics"])]:
            for key in ("auroc", "fpr_at_95_tpr", "detection_error", "aupr_in", "aupr_out"):
                assert frame.loc[name, (set_name, key)] == pytest.approx(values[key], abs=1e-12), (name, set_name, key)
                checked += 1
    assert checked == len(ARRAY_METHODS) * 3 * 5
    assert list(frame[("mean", "auroc")]) == sorted(frame[("mean", "auroc")], reverse=True)


def test_a_results_file_written_from_python_compares_in_the_cli_as_in_python(demo_run, tmp_path):
    import subprocess

    from conftest import OODSCOPE

    sets, classes = demo_run["sets"], demo_run["classes"]
    train = demo_run["train"]
    fit = oodscope.Fit.from_outputs(
        oodscope.Outputs(train["logits"], train["features"], labels=train["labels"], classes=classes),
        head=demo_run["head"],
    )
    fit_path = fit.save(tmp_path / "fit.safetensors")
    id_name = next(n for n, s in sets.items() if s["role"] == "id")
    id_outputs = outputs_of(sets[id_name], classes)
    ood = {n: outputs_of(s, classes) for n, s in sets.items() if n != id_name}
    mine = np.concatenate([o.logits.max(axis=1) for o in [id_outputs, *ood.values()]])
    results = oodscope.save_results(tmp_path / "mine.parquet", {id_name: id_outputs}, ood, fit, scores={"mine": mine})
    report = tmp_path / "report.json"
    done = subprocess.run(
        [str(OODSCOPE), "compare", "--from", str(results), "--fit", str(fit_path), "--param", "knn.k=10",
         "--report", str(report), "--quiet"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    cli = json.loads(report.read_text())["methods"]
    ours = oodscope.compare(id_outputs, ood, fit, params={"knn": {"k": 10}})
    compared = 0
    for name in ours.index:
        if name not in cli:
            continue
        for set_name, values in cli[name]["metrics"].items():
            assert ours.loc[name, (set_name, "auroc")] == pytest.approx(values["auroc"], abs=1e-12), (name, set_name)
            compared += 1
    assert compared >= 2 * 20, compared
    external = [k for k in cli if k.startswith("mine")]
    assert external and cli[external[0]].get("external") is True, list(cli)
