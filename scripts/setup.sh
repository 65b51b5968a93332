#!/usr/bin/env bash
# Sets up everything oodscope needs on a fresh Debian machine, idempotently:
# a project-local Python venv (.venv) with PyTorch 2.13.0 (libtorch for tch) and the test tools.
# A second run does nothing but check.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
VENV=.venv
# Test references: scikit-learn (metrics), scipy and pytorch-ood (feature methods; it needs
# torchvision, pinned to the torch release), safetensors (fixture heads); timm, onnx and onnx2torch
# (scripts/export_model.py builds timm models and converts ONNX graphs; crates/oodscope/tests/own_model.rs);
# pyarrow, pandas and polars read our Parquet results as users do; ray runs scripts/ray_score.py on a
# local cluster (crates/oodscope/tests/scale_out.rs); tritonclient[http] and kserve are the standard
# Open Inference Protocol clients `oodscope serve` is tested with (crates/oodscope/tests/serve_clients.rs;
# kserve brings prometheus_client, which parses /metrics there, and needs pandas < 3); fastapi,
# uvicorn and httpx run the Python server of scripts/bench_serve.sh. maturin builds the Python package
# (crates/python, scripts/python_package.sh) and pytest tests it (tests/python/), with transformers
# (a Hugging Face classifier from a config) and Ray Serve (scripts/ray_serve.py; protobuf held at the
# release onnx and the OIP clients use); faiss is the KNN reference of scripts/bench_python.py.
PY_PACKAGES=(numpy scikit-learn pillow scipy safetensors "torchvision==0.28.0" "pytorch-ood==0.4.0"
  "timm==1.0.31" "onnx==1.23.2" "onnx2torch==1.5.15" "pyarrow==26.0.1" "pandas==2.3.3"
  "polars==2.1.0" "ray==2.60.0" "tritonclient[http]==2.73.0" "kserve==0.21.0" "fastapi==0.165.0"
  "uvicorn==0.55.0" "httpx==0.29.0" "maturin==1.16.0" "pytest==9.2.0" "transformers==5.25.0"
  "ray[serve]==2.60.0" "protobuf==6.33.6" "faiss-cpu==1.15.1")

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi

if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION into $VENV (large download, once)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi

if ! "$VENV/bin/python" -c "import numpy, sklearn, PIL, scipy, safetensors, torchvision, pytorch_ood, timm, onnx, onnx2torch, pyarrow, pandas, polars, ray, ray.serve, tritonclient.http, kserve, prometheus_client, fastapi, uvicorn, httpx, maturin, pytest, transformers, faiss" 2>/dev/null; then
  echo "setup: installing ${PY_PACKAGES[*]} into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
fi
