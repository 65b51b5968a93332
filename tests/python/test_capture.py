"""capture runs eager models the tracer cannot: Python control flow, dict outputs, Hugging Face
classifiers; and ODIN's input step in PyTorch equals the CLI's on a TorchScript copy."""

from __future__ import annotations

import csv
import sys
import tomllib

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import oodscope
from conftest import FIXTURES, REPO, oodscope_cli

sys.path.insert(0, str(REPO / "tests" / "fixtures"))
import own_custom_net  # noqa: E402


class Branchy(nn.Module):
    """Python control flow on the data: tracing would freeze one branch."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 24), nn.ReLU())
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        z = self.body(x)
        if x.mean() > 0.5:
            z = z * 2.0
        else:
            z = z.flip(1)
        return self.fc(z)


def test_capture_runs_python_control_flow_per_batch():
    torch.manual_seed(0)
    model = Branchy()
    x = torch.cat([torch.rand(8, 3, 8, 8) * 0.4, torch.rand(8, 3, 8, 8) * 0.4 + 0.6])
    y = torch.arange(16) % 5
    out = oodscope.capture(model, DataLoader(TensorDataset(x, y), batch_size=8), head="fc")
    with torch.no_grad():
        expected = torch.cat([model(x[:8]), model(x[8:])]).numpy()
    assert np.array_equal(out.logits, expected)
    assert out.features.shape == (16, 24) and np.array_equal(out.labels, y.numpy())
    # The features are the head's input: W·z + b gives the logits (checked by a fit with the head).
    fit = oodscope.Fit.from_outputs(out, head=model.fc)
    assert fit.has_head and np.isfinite(oodscope.score("vim", out, fit)).all()
    assert model.training  # capture restores the mode it found


class Paths(Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], 0, f"image-{i}.png"


def test_capture_unwraps_dict_outputs_and_keeps_paths():
    torch.manual_seed(1)
    model = own_custom_net.DictNet()
    x = torch.rand(6, 3, 16, 16)
    out = oodscope.capture(model, DataLoader(Paths(x), batch_size=4), head="out")
    with torch.no_grad():
        assert np.array_equal(out.logits, model.eval()(x)["logits"].numpy())
    assert out.paths == [f"image-{i}.png" for i in range(6)]
    with pytest.raises(oodscope.OodscopeError, match=r"returns dict with keys \['embedding', 'scores'\]"):
        oodscope.capture(own_custom_net.DictNet(key="scores"), [x], head="out")
    with pytest.raises(oodscope.OodscopeError, match=r"no submodule `fc` \(its linear layers: embed, out\)"):
        oodscope.capture(model, [x])


def test_capture_reads_a_hugging_face_classifier():
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=37, num_labels=5,
    )
    torch.manual_seed(2)
    model = transformers.ViTForImageClassification(config)
    batches = [{"pixel_values": torch.randn(4, 3, 32, 32), "labels": torch.tensor([0, 1, 2, 3])} for _ in range(2)]
    out = oodscope.capture(model, batches, head="classifier")
    with torch.no_grad():
        expected = torch.cat([model(pixel_values=b["pixel_values"]).logits for b in batches]).numpy()
    assert np.array_equal(out.logits, expected)
    assert out.features.shape == (8, 32) and list(out.labels) == [0, 1, 2, 3] * 2
    fit = oodscope.Fit.from_outputs(out, head=model.classifier)
    assert np.isfinite(oodscope.score("residual", out, fit, dim=4)).all()


def test_odin_through_capture_equals_the_cli_on_a_torchscript_copy(tmp_path):
    import make_own_models

    own = FIXTURES / "own"
    card_path = own / "models" / "custom.toml"
    card = tomllib.loads(card_path.read_text())
    model = own_custom_net.build()
    model.load_state_dict(torch.load(own / "weights" / "custom.pth", weights_only=True))
    paths = sorted((own / "images" / "id").glob("*.png")) + sorted((own / "images" / "ood").glob("*.png"))
    mean = torch.tensor(card["mean"]).view(-1, 1, 1)
    std = torch.tensor(card["std"]).view(-1, 1, 1)
    x = torch.stack([(make_own_models.pixels(p, card) - mean) / std for p in paths])
    T, eps = 10.0, 0.002
    out = oodscope.capture(model, DataLoader(TensorDataset(x), batch_size=4), head="out", perturb=("odin", T, eps, card["std"]))
    ours = oodscope.score("odin", out)

    scores = tmp_path / "odin.csv"
    oodscope_cli(
        "score", "--model", own / "models" / "custom.pt", "--id", own / "images" / "id", "--ood", own / "images" / "ood",
        "--method", "odin", "--param", f"temperature={T}", "--param", f"epsilon={eps}", "--scores", scores, "--quiet",
    )
    cli = {row["path"]: float(row["score"]) for row in csv.DictReader(scores.open())}
    expected = np.array([cli[str(p)] for p in paths])
    assert np.allclose(ours, expected, rtol=1e-5, atol=0), np.abs(ours - expected).max()
    # The step matters here: without it the scores move away.
    clean = oodscope.score("odin", oodscope.capture(model, [x], head="out"), temperature=T, epsilon=0)
    assert np.abs(clean - expected).max() > 100 * np.abs(ours - expected).max()
    with pytest.raises(oodscope.OodscopeError, match="captured with temperature = 10.0"):
        oodscope.score("odin", out, temperature=1000)
    with pytest.raises(oodscope.OodscopeError, match="needs clean outputs"):
        oodscope.score("msp", out)
