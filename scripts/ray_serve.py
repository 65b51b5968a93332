#!/usr/bin/env python3
"""Serves a saved detector (.oodsd) with Ray Serve: N replicas, each running oodscope's engine
in-process through the Python package (`import oodscope`), behind Ray Serve's HTTP proxy.

    .venv/bin/python scripts/ray_serve.py DETECTOR.oodsd [--replicas 2] [--port 8000] [--device cpu]

POST /check with one encoded image as the body (any content type but JSON), or JSON
{"images": ["<base64>", …]}; the answer is {"detector": NAME, "records": [...]}, each record the
verdict `oodscope check` prints ({index, verdict, score, p_value, class, class_index, probability})
or {index, skipped}. Ctrl-C stops the deployment.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse


@serve.deployment
class DetectorDeployment:
    """One replica: the detector loaded once, checked requests answered with its verdicts."""

    def __init__(self, path: str, device: str = "cpu") -> None:
        import oodscope

        self.detector = oodscope.Detector.load(path, device)
        self.name = self.detector.manifest["name"]

    async def __call__(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            if request.headers.get("content-type", "").startswith("application/json"):
                images = [base64.b64decode(s, validate=True) for s in json.loads(body)["images"]]
            else:
                images = [body]
            if not images or not all(images):
                raise ValueError("no image in the request")
            records = self.detector.check(images)
        except (ValueError, KeyError, TypeError) as e:
            return JSONResponse({"error": f"bad request: {e}"}, status_code=400)
        return JSONResponse({"detector": self.name, "replica": os.getpid(), "records": records})


def build(path: str, replicas: int = 2, device: str = "cpu"):
    """The application: `replicas` copies of the deployment for the detector at `path`."""
    return DetectorDeployment.options(num_replicas=replicas).bind(os.path.abspath(path), device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("detector", help="the detector file (.oodsd)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args()
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build(args.detector, args.replicas, args.device), route_prefix="/check")
    print(f"ray_serve: {args.detector} on http://127.0.0.1:{args.port}/check with {args.replicas} replicas", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()


if __name__ == "__main__":
    main()
