"""Unmodified standard clients against `oodscope serve` (crates/oodscope/tests/serve_clients.rs runs
this): tritonclient[http] (InferInput BYTES with binary data and without) and the kserve SDK
(InferenceRESTClient with InferRequest, binary and JSON), each answer compared with `oodscope
check`'s records; /metrics parsed by prometheus_client's OpenMetrics parser; the server's KS
statistic compared with scipy.stats.ks_2samp on the scores /oodscope/v1/watch reports.

usage: serve_clients.py HOST:PORT MODEL EXPECTED.json
EXPECTED.json: [{"path", "score", "p_value", "verdict", "class_index", "probability"}, ...] in order.
"""

import asyncio
import base64
import json
import sys
import urllib.request

import numpy as np


def check(outputs, expected, who):
    """outputs: name -> numpy array of the N images."""
    n = len(expected)
    for name in ("score", "is_ood", "p_value", "class", "probability"):
        assert outputs[name].shape == (n,), f"{who}: {name} has shape {outputs[name].shape}"
    assert outputs["score"].dtype == np.float32 and outputs["p_value"].dtype == np.float32, who
    assert outputs["is_ood"].dtype == np.bool_ and outputs["class"].dtype == np.int64, who
    for i, e in enumerate(expected):
        assert abs(float(outputs["score"][i]) - e["score"]) <= 1e-6, (who, i, outputs["score"][i], e)
        assert abs(float(outputs["p_value"][i]) - e["p_value"]) <= 1e-6, (who, i, outputs["p_value"][i], e)
        assert abs(float(outputs["probability"][i]) - e["probability"]) <= 1e-6, (who, i, e)
        assert bool(outputs["is_ood"][i]) == (e["verdict"] == "ood"), (who, i, e)
        assert int(outputs["class"][i]) == e["class_index"], (who, i, e)
    print(f"{who}: {n} images equal oodscope check's")


def tritonclient_checks(url, model, files, expected):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(model)
    meta = client.get_model_metadata(model)
    assert meta["name"] == model and meta["inputs"][0]["name"] == "image", meta
    names = ["score", "is_ood", "p_value", "class", "probability"]

    # Binary data (tritonclient's default), outputs binary too (no outputs named).
    tensor = np.array(files, dtype=np.object_)
    image = httpclient.InferInput("image", [len(files)], "BYTES")
    image.set_data_from_numpy(tensor, binary_data=True)
    result = client.infer(model, [image])
    check({n: result.as_numpy(n) for n in names}, expected, "tritonclient, binary data")

    # JSON: BYTES elements as strings (the files base64-encoded), outputs asked as JSON.
    encoded = np.array([base64.b64encode(f) for f in files], dtype=np.object_)
    image = httpclient.InferInput("image", [len(files)], "BYTES")
    image.set_data_from_numpy(encoded, binary_data=False)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in names]
    result = client.infer(model, [image], outputs=outputs)
    assert result.get_response()["outputs"][0].get("data") is not None
    check({n: result.as_numpy(n) for n in names}, expected, "tritonclient, JSON")

    # A bad image: the client raises the server's OIP error, naming the item.
    bad = np.array([files[0], b"not an image"], dtype=np.object_)
    image = httpclient.InferInput("image", [2], "BYTES")
    image.set_data_from_numpy(bad, binary_data=True)
    try:
        client.infer(model, [image])
        raise AssertionError("a bad image was accepted")
    except httpclient.InferenceServerException as e:
        assert e.status() == "400" and "item 1" in e.message(), (e.status(), e.message())
    print("tritonclient: a bad image is a 400 naming item 1")


def kserve_checks(url, model, files, expected):
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def run():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        base = f"http://{url}"
        assert await client.is_server_live(base)
        assert await client.is_server_ready(base)
        assert await client.is_model_ready(base, model)

        # Binary data.
        image = InferInput("image", [len(files)], "BYTES")
        image.set_data_from_numpy(np.array(files, dtype=np.object_), binary_data=True)
        response = await client.infer(base, InferRequest(model, [image]), model_name=model)
        check({o.name: o.as_numpy() for o in response.outputs}, expected, "kserve, binary data")

        # JSON: the files base64-encoded as BYTES strings.
        image = InferInput("image", [len(files)], "BYTES", data=[base64.b64encode(f).decode() for f in files])
        response = await client.infer(base, InferRequest(model, [image]), model_name=model)
        check({o.name: o.as_numpy() for o in response.outputs}, expected, "kserve, JSON")

    asyncio.run(run())


def metrics_and_drift_checks(url):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    from scipy.stats import ks_2samp

    text = urllib.request.urlopen(f"http://{url}/metrics").read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "oodscope_requests",
        "oodscope_errors",
        "oodscope_request_duration_seconds",
        "oodscope_batch_size",
        "oodscope_queue_depth",
        "oodscope_verdicts",
        "oodscope_ood_rate_window",
        "oodscope_false_alarm_target",
        "oodscope_ks_statistic",
    ):
        assert name in families, (name, sorted(families))
    ok = [s.value for s in families["oodscope_requests"].samples if s.labels.get("outcome") == "ok"]
    assert ok == [4.0], ok  # two infers by each client
    bad = [s.value for s in families["oodscope_errors"].samples if s.labels.get("kind") == "bad_image"]
    assert bad == [1.0], bad
    print("metrics: parsed by prometheus_client's OpenMetrics parser")

    watch = json.load(urllib.request.urlopen(f"http://{url}/oodscope/v1/watch"))
    recent = watch["recent_scores"][-1000:]
    expected = ks_2samp(np.array(recent, dtype=np.float64), np.array(watch["calibration_scores"], dtype=np.float64)).statistic
    assert abs(watch["ks_statistic"] - expected) <= 1e-12, (watch["ks_statistic"], expected)
    ks_metric = families["oodscope_ks_statistic"].samples[0].value
    assert abs(ks_metric - expected) <= 1e-9, (ks_metric, expected)
    print(f"drift: KS {expected:.6f} equals scipy.stats.ks_2samp's")


def main():
    url, model, expected_file = sys.argv[1:4]
    with open(expected_file) as f:
        expected = json.load(f)
    files = []
    for e in expected:
        with open(e["path"], "rb") as f:
            files.append(f.read())
    tritonclient_checks(url, model, files, expected)
    kserve_checks(url, model, files, expected)
    metrics_and_drift_checks(url)


if __name__ == "__main__":
    main()
