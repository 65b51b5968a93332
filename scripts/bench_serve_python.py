"""The server a user would write with FastAPI, uvicorn and PyTorch, for scripts/bench_serve.sh to
measure `oodscope serve` against: the same TorchScript model, the same method (MSP: the maximum
softmax probability), the same preprocessing (Pillow: grey, resized to the card's size, /255,
the card's mean and std), the same threshold and calibration scores for the verdict and the
p-value, and the same Open Inference Protocol request and answer (binary data or JSON), so that
the same load generator drives both. One request at a time through the model (no batching across
requests), in uvicorn's thread pool, as the FastAPI documentation shows.

usage: bench_serve_python.py --model models/fmnist-resnet.pt --decision DECISION.json --port 8001
DECISION.json: {"name", "threshold", "calibration_scores"} (/oodscope/v1/watch of the Rust server).
"""

import argparse
import base64
import io
import json
import tomllib
from pathlib import Path

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool


def build_app(model_path: Path, decision: dict) -> FastAPI:
    card = tomllib.loads(model_path.with_suffix(".toml").read_text())
    channels, height, width = card["input"]
    mean = torch.tensor(card.get("mean", [0.0] * channels)).view(1, channels, 1, 1)
    std = torch.tensor(card.get("std", [1.0] * channels)).view(1, channels, 1, 1)
    model = torch.jit.load(str(model_path), map_location="cpu").eval()
    calibration = np.sort(np.asarray(decision["calibration_scores"], dtype=np.float32))
    threshold = np.float32(decision["threshold"])
    name = decision["name"]
    app = FastAPI()

    def preprocess(data: bytes) -> torch.Tensor:
        image = Image.open(io.BytesIO(data)).convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array).view(channels, height, width) if channels == 1 else torch.from_numpy(array).permute(2, 0, 1)
        return tensor

    def score(files: list[bytes]) -> dict:
        x = torch.stack([preprocess(f) for f in files])
        x = (x - mean) / std
        with torch.inference_mode():
            out = model(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            probs = torch.softmax(logits.float(), dim=1)
            msp, cls = probs.max(dim=1)
        scores = msp.numpy().astype(np.float32)
        p_values = (1 + np.searchsorted(calibration, scores, side="right")) / (len(calibration) + 1)
        n = len(files)
        return {
            "model_name": name,
            "outputs": [
                {"name": "score", "datatype": "FP32", "shape": [n], "data": scores.tolist()},
                {"name": "is_ood", "datatype": "BOOL", "shape": [n], "data": (scores < threshold).tolist()},
                {"name": "p_value", "datatype": "FP32", "shape": [n], "data": p_values.astype(np.float32).tolist()},
                {"name": "class", "datatype": "INT64", "shape": [n], "data": cls.numpy().astype(np.int64).tolist()},
                {"name": "probability", "datatype": "FP32", "shape": [n], "data": scores.tolist()},
            ],
        }

    @app.get("/v2/health/ready")
    def ready():
        return {"ready": True}

    @app.post("/v2/models/{model_name}/infer")
    async def infer(model_name: str, request: Request):
        if model_name != name:
            return JSONResponse({"error": f"unknown model '{model_name}'"}, status_code=404)
        body = await request.body()
        header_length = request.headers.get("inference-header-content-length")
        header = json.loads(body[: int(header_length)] if header_length else body)
        image = header["inputs"][0]
        if header_length:
            raw, files, at = body[int(header_length):], [], 0
            while at < len(raw):
                size = int.from_bytes(raw[at : at + 4], "little")
                files.append(raw[at + 4 : at + 4 + size])
                at += 4 + size
        else:
            files = [base64.b64decode(e["b64"] if isinstance(e, dict) else e) for e in image["data"]]
        try:
            answer = await run_in_threadpool(score, files)
        except Exception as e:  # a bad image: 400, as oodscope serve answers
            return JSONResponse({"error": str(e)}, status_code=400)
        return JSONResponse(answer)

    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path("models/fmnist-resnet.pt"))
    parser.add_argument("--decision", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    app = build_app(args.model, json.loads(args.decision.read_text()))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
