"""A one-image OOD check as a user would write it in Python: the baseline that `oodscope check`'s
whole-process time is compared with in docs/benchmarks.md (scripts/bench_check.sh).

    python scripts/check_python.py MODEL.pt IMAGE THRESHOLD

Loads the TorchScript model, preprocesses the image as the bundled Fashion-MNIST card says
(greyscale, 28×28 bilinear, mean 0.286, std 0.353), and prints the MSP verdict as one JSON line.
"""
import json
import sys

import numpy as np
import torch
from PIL import Image


def main():
    model_path, image_path, threshold = sys.argv[1], sys.argv[2], float(sys.argv[3])
    torch.set_num_threads(1)
    model = torch.jit.load(model_path, map_location="cpu").eval()
    image = Image.open(image_path).convert("L").resize((28, 28), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None, None]
    x = (x - 0.286) / 0.353
    with torch.no_grad():
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        probs = torch.softmax(logits, dim=1)[0]
    score, cls = probs.max(0)
    verdict = "id" if score.item() >= threshold else "ood"
    print(json.dumps({"path": image_path, "verdict": verdict, "score": score.item(), "class_index": cls.item()}))


if __name__ == "__main__":
    main()
