"""Saved detectors in Python: the verdicts of `oodscope check`, on files, on encoded bytes and on
captured outputs; and a detector served by Ray Serve with two replicas answering the same."""

from __future__ import annotations

import json
import socket
import sys

import numpy as np
import pytest

import oodscope
from conftest import DEMO, DEMO_MODEL, REPO, oodscope_cli


@pytest.fixture(scope="module")
def detector(demo_run) -> dict:
    """A KNN detector of the bundled model, calibrated on the demo's ID test images, and the CLI's
    verdicts on a mix of ID and OOD files (and one that is not an image)."""
    out = demo_run["dir"]
    path = out / "knn.oodsd"
    oodscope_cli(
        "detector", "save", "--model", DEMO_MODEL, "--method", "knn", "--param", "k=10", "--fit", demo_run["fit"],
        "--calibration", DEMO / "fmnist-test", "--out", path, "--quiet",
    )
    files = sorted((DEMO / "fmnist-test" / "bag").glob("*.png"))[:6] + sorted((DEMO / "mnist").glob("*.png"))[:6]
    not_image = out / "notes.png"
    not_image.write_text("not an image")
    paths = [*files, not_image]
    done = oodscope_cli("check", "--detector", path, "--format", "jsonl", *paths, cwd=out)
    return {"path": path, "paths": paths, "cli": [json.loads(line) for line in done.stdout.splitlines()]}


def test_check_on_files_equals_oodscope_check(detector):
    d = oodscope.Detector.load(detector["path"])
    assert d.manifest["method"]["method"] == "knn" and np.float32(d.threshold) == np.float32(d.manifest["decision"]["threshold"])
    ours = d.check(detector["paths"])
    assert ours == detector["cli"]
    verdicts = [r.get("verdict") for r in ours]
    assert verdicts.count("ood") >= 3 and verdicts.count("id") >= 3 and "skipped" in ours[-1]


def test_check_on_bytes_and_on_outputs_gives_the_same_verdicts(detector, demo_run):
    d = oodscope.Detector.load(detector["path"])
    files = detector["paths"][:-1]
    on_bytes = d.check([p.read_bytes() for p in files] + [b"garbage"])
    for record, cli in zip(on_bytes[:-1], detector["cli"][:-1], strict=True):
        assert record["verdict"] == cli["verdict"] and record["score"] == pytest.approx(cli["score"], rel=1e-6)
    assert "skipped" in on_bytes[-1] and on_bytes[-1]["index"] == len(files)
    # Outputs saved by the CLI's run of the same model: the same scores from the logits and features.
    mnist = demo_run["sets"]["mnist"]
    outputs = oodscope.Outputs(mnist["logits"], mnist["features"], paths=mnist["paths"])
    records = d.check(outputs)
    by_path = {r["path"]: r for r in detector["cli"] if "verdict" in r}
    compared = 0
    for record in records:
        if record["path"] in by_path:
            assert record["verdict"] == by_path[record["path"]]["verdict"]
            assert record["score"] == pytest.approx(by_path[record["path"]]["score"], rel=1e-6)
            compared += 1
    assert compared == 6
    assert np.mean([r["verdict"] == "ood" for r in records]) > 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_serve_with_two_replicas_answers_as_oodscope_check(detector):
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    import base64

    import httpx

    sys.path.insert(0, str(REPO / "scripts"))
    import ray_serve

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO / "scripts")}})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(ray_serve.build(str(detector["path"]), replicas=2), route_prefix="/check")
        url = f"http://127.0.0.1:{port}/check"
        files = detector["paths"][:-1]
        replicas = set()
        with httpx.Client(timeout=60) as client:
            for _ in range(3):
                for path, cli in zip(files, detector["cli"]):
                    answer = client.post(url, content=path.read_bytes(), headers={"content-type": "image/png"}).json()
                    (record,) = answer["records"]
                    assert record["verdict"] == cli["verdict"] and record["score"] == pytest.approx(cli["score"], rel=1e-6)
                    replicas.add(answer["replica"])
            batch = client.post(url, json={"images": [base64.b64encode(p.read_bytes()).decode() for p in files]}).json()
            assert [r["verdict"] for r in batch["records"]] == [c["verdict"] for c in detector["cli"][: len(files)]]
            bad = client.post(url, json={"images": ["%%%"]})
            assert bad.status_code == 400 and "bad request" in bad.json()["error"]
        assert len(replicas) == 2, f"answered by {len(replicas)} replica(s)"
    finally:
        serve.shutdown()
        ray.shutdown()
