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


def test_capture_with_blocks_scores_rankfeat_as_its_float64_definition():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(3)
    model = torchvision.models.resnet18(num_classes=6).eval()
    x = torch.randn(10, 3, 64, 64)
    batches = [x[:4], x[4:]]
    out = oodscope.capture(model, batches, head="fc", blocks=["layer3", "layer4"])
    assert out.blocks.names == ["layer3", "layer4"] and out.blocks.widths == [256, 512]
    assert out.blocks.values.shape == (10, 256 + 512 + 512 + 10 * (256 + 512)) and out.blocks.pooled
    # The spatial means are the blocks' own; layer4's is the features (it is the map they are pooled from).
    assert np.allclose(out.blocks.values[:, 256:768], out.features, rtol=0, atol=1e-5)

    # docs/methods.md's RankFeat in float64, from the eager model's layer4 maps.
    maps = []
    hook = model.layer4.register_forward_hook(lambda _m, _i, o: maps.append(o.double()))
    with torch.no_grad():
        model(x)
    hook.remove()
    w, b = model.fc.weight.double(), model.fc.bias.double()
    expected = []
    for m in maps[0].reshape(10, 512, -1):
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        r = (m - s[0] * torch.outer(u[:, 0], vh[0])).mean(dim=1)
        expected.append(torch.logsumexp(w @ r + b, dim=0).item())
    got = oodscope.score("rankfeat", out, head=model.fc)
    assert np.allclose(got, expected, rtol=1e-4, atol=0), (got, expected)
    # Subsets keep their rows' reductions.
    assert np.array_equal(oodscope.score("rankfeat", out.subset(slice(2, 7)), head=model.fc), got[2:7])

    # The last block must be the one the features are pooled from; names are checked.
    swapped = oodscope.capture(model, batches, head="fc", blocks=["layer4", "layer3"])
    assert not swapped.blocks.pooled
    with pytest.raises(oodscope.OodscopeError, match="`layer3` is not: list the block before the global pooling last"):
        oodscope.score("rankfeat", swapped, head=model.fc)
    with pytest.raises(oodscope.OodscopeError, match=r"no submodule `layer9` \(its top-level ones: conv1, bn1"):
        oodscope.capture(model, batches, head="fc", blocks=["layer9"])
    with pytest.raises(oodscope.OodscopeError, match="needs the model's inner blocks"):
        oodscope.score("rankfeat", oodscope.capture(model, batches, head="fc"), head=model.fc)


class TwoBlocks(nn.Module):
    """Two small convolutional blocks, pooled into the head's input (well-conditioned block statistics)."""

    def __init__(self) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(6, 10, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        return self.fc(self.block2(self.block1(x)).mean(dim=(2, 3)))


def test_multi_mahalanobis_from_captured_blocks_equals_its_float64_definition():
    torch.manual_seed(4)
    model = TwoBlocks().eval()
    x_fit, y_fit = torch.rand(300, 3, 12, 12), torch.arange(300) % 3
    x = torch.rand(40, 3, 12, 12)
    blocks = ["block1", "block2"]
    fit_out = oodscope.capture(model, DataLoader(TensorDataset(x_fit, y_fit), batch_size=64), head="fc", blocks=blocks)
    assert fit_out.blocks.pooled
    fit = oodscope.Fit.from_outputs(fit_out, head=model.fc)
    assert fit.info["block_widths"] == [6, 10]
    out = oodscope.capture(model, [x], head="fc", blocks=blocks)
    got = oodscope.score("multi-mahalanobis", out, fit)

    # docs/methods.md in float64 from the eager model's maps: per block, class means and the shared
    # covariance of the fit's spatial means; the sum of each block's largest −distance.
    def spatial_means(images):
        maps = []
        hooks = [model.get_submodule(b).register_forward_hook(lambda _m, _i, o: maps.append(o)) for b in blocks]
        with torch.no_grad():
            model(images)
        for h in hooks:
            h.remove()
        return [m.double().mean(dim=(2, 3)).numpy() for m in maps]

    expected = np.zeros(len(x))
    labels = y_fit.numpy()
    for mf, m in zip(spatial_means(x_fit), spatial_means(x)):
        means = np.stack([mf[labels == c].mean(axis=0) for c in range(3)])
        centred = mf - means[labels]
        precision = np.linalg.pinv(centred.T @ centred / len(mf), hermitian=True)
        d = np.stack([np.einsum("nd,de,ne->n", m - mu, precision, m - mu) for mu in means], axis=1)
        expected += (-d).max(axis=1)
    assert np.allclose(got, expected, rtol=1e-4, atol=0), np.abs(got - expected).max()
    # Without blocks, a fit has no per-block statistics, and the method says so.
    plain = oodscope.Fit.from_outputs(oodscope.capture(model, [x_fit], head="fc"), head=model.fc)
    with pytest.raises(oodscope.OodscopeError, match="needs the model's inner blocks"):
        oodscope.score("multi-mahalanobis", oodscope.capture(model, [x], head="fc"), plain)
    with pytest.raises(oodscope.OodscopeError, match="has no per-block statistics"):
        oodscope.score("multi-mahalanobis", out, plain)


def test_gram_from_captured_blocks_equals_its_float64_definition():
    torch.manual_seed(5)
    model = TwoBlocks().eval()
    x_fit, y_fit = torch.rand(200, 3, 12, 12), torch.arange(200) % 3
    x = torch.cat([torch.rand(20, 3, 12, 12), 3 * torch.rand(20, 3, 12, 12)])
    blocks = ["block1", "block2"]
    fit_out = oodscope.capture(model, DataLoader(TensorDataset(x_fit, y_fit), batch_size=64), head="fc", blocks=blocks)
    fit = oodscope.Fit.from_outputs(fit_out, head=model.fc)
    out = oodscope.capture(model, [x], head="fc", blocks=blocks)
    got = oodscope.score("gram", out, fit)
    got3 = oodscope.score("gram", out, fit, poles=3)

    # docs/methods.md in float64 from the eager model's maps: rooted row sums of each pole's full Gram
    # matrix, class bounds over the rows not held out (row index mod 10 = 9 is), the held-out rows' mean
    # deviation per block, and −Σ_b δ_b / E[δ_b] against the predicted class's bounds.
    def gram_rows(images):
        maps = []
        hooks = [model.get_submodule(b).register_forward_hook(lambda _m, _i, o: maps.append(o)) for b in blocks]
        with torch.no_grad():
            logits = model(images)
        for h in hooks:
            h.remove()
        rows = []
        for m in maps:
            X = m.double().flatten(2).numpy()
            per_pole = []
            for p in range(1, 11):
                t = np.einsum("ncj,nkj->nc", X**p, X**p)
                per_pole.append(np.sign(t) * np.abs(t) ** (1 / p))
            rows.append(np.stack(per_pole, axis=1))
        return logits.argmax(1).numpy(), rows

    def deviation(g, lo, hi):
        return (np.maximum(lo - g, 0) / np.abs(lo + 1e-6)).sum(-1) + (np.maximum(g - hi, 0) / np.abs(hi + 1e-6)).sum(-1)

    labels = y_fit.numpy()
    held = np.arange(len(labels)) % 10 == 9
    (_, fit_rows), (predicted, rows) = gram_rows(x_fit), gram_rows(x)
    for poles, scores in ((10, got), (3, got3)):
        expected = np.zeros(len(x))
        for gf, g in zip(fit_rows, rows):
            gf, g = gf[:, :poles], g[:, :poles]
            lo = np.stack([gf[~held & (labels == c)].min(axis=0) for c in range(3)])
            hi = np.stack([gf[~held & (labels == c)].max(axis=0) for c in range(3)])
            norm = deviation(gf[held], lo[labels[held]], hi[labels[held]]).sum(axis=1).mean()
            expected -= deviation(g, lo[predicted], hi[predicted]).sum(axis=1) / norm
        scale = np.abs(expected).std() / 10
        assert np.all(np.abs(scores - expected) <= 1e-4 * np.maximum(np.abs(expected), scale)), np.abs(scores - expected).max()
    assert got[20:].mean() < got[:20].mean()
    plain = oodscope.Fit.from_outputs(oodscope.capture(model, [x_fit], head="fc"), head=model.fc)
    with pytest.raises(oodscope.OodscopeError, match="has no Gram bounds"):
        oodscope.score("gram", out, plain)
