#!/usr/bin/env python3
"""Re-export the bundled Fashion-MNIST ResNets with penultimate features and a named head.

Usage (from the repository root):

    .venv/bin/python scripts/reexport_bundled.py [--dry-run]

`models/fmnist-resnet.pt` and `models/fmnist-resnet-confidence.pt` were traced from Rust (tch
`CModule::create_by_tracing`, crates/oodscope/src/train/export.rs): their weights are constants of the traced
graph and they return one tensor ([N, 10] logits, or [N, 11] with a confidence logit last). This
script rewrites them, WITHOUT retraining, so that they also expose the penultimate features z
(the 64-d globally pooled activations) and the linear head as a submodule:

    fmnist-resnet.pt             -> (logits [N, 10], features [N, 64])
    fmnist-resnet-confidence.pt  -> (logits [N, 10], confidence [N, 1], features [N, 64])

with `fc` a submodule holding `fc.weight` [10, 64] and `fc.bias` [10] (logits = z @ W^T + b);
the confidence model's [11, 64] head is split into `fc` (rows 0-9) and `confidence` (row 10).
The cards get `outputs = "logits+features"` / `"logits+confidence+features"` and `head = "fc"`;
every other line is kept (a sentence is appended to `notes`).

How: the old file is loaded with torch.jit.load; its inlined graph is walked in order and the
constant inputs of every aten::_convolution, aten::batch_norm and aten::linear node are mapped
onto the layers of `OodscopeNet` below (the Python twin of crates/oodscope/src/train/resnet.rs). Strides,
paddings, shapes, BN eps and the exact op sequence are checked against that architecture. The
new module is put in eval mode with every parameter frozen, traced on a [2, 1, 28, 28] example,
serialised to memory, re-loaded from those bytes and compared with the old file on every image
of assets/demo/fmnist-test and assets/demo/mnist plus 64 uniform-noise images: logits,
confidence column, argmax, z @ fc.weight^T + fc.bias against the logits, and the input gradient
of the ODIN loss. Only if every check passes are the bytes written over the old file (no backup
is kept: git has the old one). Nothing is written with --dry-run.

Idempotent: a model that already returns a tuple (already re-exported) is reported and left
alone, as is its card.
"""

from __future__ import annotations

import argparse
import io
import sys
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
DEMO = REPO / "assets" / "demo"

# name -> (old `outputs`, new `outputs`, has confidence)
TARGETS = {
    "fmnist-resnet": ("logits", "logits+features", False),
    "fmnist-resnet-confidence": ("logits+confidence", "logits+confidence+features", True),
}
NUM_CLASSES = 10
WIDTH = 16
FEATURES = 4 * WIDTH
HEAD = "fc"

LOGIT_ATOL = 1e-5       # old vs new logits / confidence: expected ~0 (same kernels, same order)
HEAD_RTOL = 1e-5        # z @ W^T + b vs logits, relative to max(1, |logit|)
GRAD_RTOL = 1e-4        # ODIN input gradient, relative to the largest gradient entry
ODIN_T = 1000.0
N_GRAD_IMAGES = 16
N_NOISE = 64
NOISE_SEED = 0


class Failure(Exception):
    pass


# ------------------------------------------------------------------------------ architecture


def conv3x3(c_in: int, c_out: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """crates/oodscope/src/train/resnet.rs BasicBlock: relu(bn2(conv2(relu(bn1(conv1 x)))) + skip)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.has_shortcut = stride != 1 or c_in != c_out
        if self.has_shortcut:
            self.shortcut_conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        skip = self.shortcut_bn(self.shortcut_conv(x)) if self.has_shortcut else x
        return torch.relu(y + skip)  # same operand order as the Rust `y + skip`

    def layers(self) -> list[tuple[str, nn.Module]]:
        out = [("conv1", self.conv1), ("bn1", self.bn1), ("conv2", self.conv2), ("bn2", self.bn2)]
        if self.has_shortcut:
            out += [("shortcut_conv", self.shortcut_conv), ("shortcut_bn", self.shortcut_bn)]
        return out


class OodscopeNet(nn.Module):
    """crates/oodscope/src/train/resnet.rs ResNet, returning the pooled features beside the logits."""

    def __init__(self, confidence: bool):
        super().__init__()
        w = WIDTH
        self.stem = conv3x3(1, w, 1)
        self.stem_bn = nn.BatchNorm2d(w)
        self.stage1 = BasicBlock(w, w, 1)
        self.stage2 = BasicBlock(w, 2 * w, 2)
        self.stage3 = BasicBlock(2 * w, 4 * w, 2)
        self.fc = nn.Linear(FEATURES, NUM_CLASSES)
        self.with_confidence = confidence
        if confidence:
            self.confidence = nn.Linear(FEATURES, 1)

    def forward(self, x: torch.Tensor):
        h = torch.relu(self.stem_bn(self.stem(x)))
        h = self.stage3(self.stage2(self.stage1(h)))
        z = torch.flatten(F.adaptive_avg_pool2d(h, [1, 1]), 1)
        if self.with_confidence:
            # One [11, 64] product, as in the Rust export, then split: a separate 1-row product
            # for the confidence rounds differently (gemv vs gemm, ~1e-6), this is bit-identical.
            out = F.linear(z, torch.cat([self.fc.weight, self.confidence.weight]),
                           torch.cat([self.fc.bias, self.confidence.bias]))
            return (out[:, :NUM_CLASSES].contiguous(), out[:, NUM_CLASSES:].contiguous(), z)
        return self.fc(z), z

    def layers(self) -> list[tuple[str, nn.Module]]:
        """Conv / BN layers in the order the Rust forward pass (and so the traced graph) runs them."""
        out = [("stem", self.stem), ("stem_bn", self.stem_bn)]
        for s in ("stage1", "stage2", "stage3"):
            out += [(f"{s}.{n}", m) for n, m in getattr(self, s).layers()]
        return out


# Op sequence of the Rust-traced graph (aten ops only), checked before any weight is mapped.
def expected_ops() -> list[str]:
    ops = ["aten::_convolution", "aten::batch_norm", "aten::relu"]
    for shortcut in (False, True, True):
        ops += ["aten::_convolution", "aten::batch_norm", "aten::relu",
                "aten::_convolution", "aten::batch_norm"]
        if shortcut:
            ops += ["aten::_convolution", "aten::batch_norm"]
        ops += ["aten::add", "aten::relu"]
    return ops + ["aten::adaptive_avg_pool2d", "aten::flatten", "aten::linear"]


# ------------------------------------------------------------------------ weight extraction


def const(value: torch._C.Value):
    """The constant a graph input stands for (lists of constants resolved)."""
    node = value.node()
    if node.kind() == "prim::Constant":
        return value.toIValue()
    if node.kind() == "prim::ListConstruct":
        return [const(v) for v in node.inputs()]
    return None  # a computed value (an activation)


def graph_ops(module: torch.jit.ScriptModule) -> list[tuple[str, list]]:
    ops = []
    for node in module.inlined_graph.nodes():
        if node.kind().startswith("aten::"):
            ops.append((node.kind(), [const(v) for v in node.inputs()]))
    return ops


def load_weights(old: torch.jit.ScriptModule, net: OodscopeNet) -> dict:
    """Copy the traced graph's constants into `net`; returns facts found on the way."""
    ops = graph_ops(old)
    kinds = [k for k, _ in ops]
    if kinds != expected_ops():
        raise Failure(f"graph op sequence differs from the ResNet in crates/oodscope/src/train/resnet.rs: {kinds}")
    convs = [a for k, a in ops if k == "aten::_convolution"]
    bns = [a for k, a in ops if k == "aten::batch_norm"]
    (linear,) = [a for k, a in ops if k == "aten::linear"]
    layers = net.layers()
    conv_layers = [(n, m) for n, m in layers if isinstance(m, nn.Conv2d)]
    bn_layers = [(n, m) for n, m in layers if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != len(conv_layers) or len(bns) != len(bn_layers):
        raise Failure(f"{len(convs)} convolutions / {len(bns)} batch norms in the graph, "
                      f"expected {len(conv_layers)} / {len(bn_layers)}")
    eps_seen, momentum_seen, shared = set(), set(), []
    seen_ids: dict[int, str] = {}

    def take(t, name: str, shape) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            raise Failure(f"{name}: not a constant tensor in the graph")
        if tuple(t.shape) != tuple(shape) or t.dtype != torch.float32:
            raise Failure(f"{name}: graph constant {tuple(t.shape)} {t.dtype}, expected {tuple(shape)} float32")
        key = t.data_ptr()
        if key in seen_ids:
            shared.append(f"{name} = {seen_ids[key]}")
        seen_ids.setdefault(key, name)
        return t.detach().clone()

    with torch.no_grad():
        for (name, m), a in zip(conv_layers, convs):
            # _convolution(input, weight, bias, stride, padding, dilation, transposed,
            #              output_padding, groups, benchmark, deterministic, cudnn, tf32)
            w, b, stride, padding, dilation, transposed, _, groups = a[1:9]
            if b is not None or transposed or groups != 1 or list(dilation) != [1, 1] \
                    or list(stride) != list(m.stride) or list(padding) != list(m.padding):
                raise Failure(f"{name}: graph conv (bias {b is not None}, stride {stride}, padding "
                              f"{padding}, dilation {dilation}, groups {groups}, transposed "
                              f"{transposed}) does not match {m}")
            m.weight.copy_(take(w, f"{name}.weight", m.weight.shape))
        for (name, m), a in zip(bn_layers, bns):
            # batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
            w, b, mean, var, training, momentum, eps = a[1:8]
            if training:
                raise Failure(f"{name}: batch_norm traced in training mode")
            eps_seen.add(eps)
            momentum_seen.add(momentum)
            m.eps, m.momentum = float(eps), float(momentum)
            m.weight.copy_(take(w, f"{name}.weight", m.weight.shape))
            m.bias.copy_(take(b, f"{name}.bias", m.bias.shape))
            m.running_mean.copy_(take(mean, f"{name}.running_mean", m.running_mean.shape))
            m.running_var.copy_(take(var, f"{name}.running_var", m.running_var.shape))
        w, b = linear[1], linear[2]
        rows = NUM_CLASSES + (1 if net.with_confidence else 0)
        w = take(w, "head.weight", (rows, FEATURES))
        b = take(b, "head.bias", (rows,))
        net.fc.weight.copy_(w[:NUM_CLASSES])
        net.fc.bias.copy_(b[:NUM_CLASSES])
        if net.with_confidence:
            net.confidence.weight.copy_(w[NUM_CLASSES:])
            net.confidence.bias.copy_(b[NUM_CLASSES:])
    return {"eps": sorted(eps_seen), "momentum": sorted(momentum_seen), "shared": shared}


# ------------------------------------------------------------------------------------ inputs


def load_inputs(card: dict) -> tuple[torch.Tensor, dict[str, slice]]:
    """Every demo image (fmnist-test, mnist) plus uniform noise, normalised as oodscope does."""
    groups = {
        "fmnist-test": sorted((DEMO / "fmnist-test").glob("*/*.png")),
        "mnist": sorted((DEMO / "mnist").glob("*.png")),
    }
    arrays, spans, start = [], {}, 0
    for name, files in groups.items():
        if not files:
            raise Failure(f"no PNGs under {DEMO / name}")
        px = []
        for f in files:
            with Image.open(f) as img:
                if img.mode != "L" or img.size != (28, 28):
                    raise Failure(f"{f}: {img.mode} {img.size}, expected L 28x28")
                px.append(np.asarray(img, dtype=np.uint8))
        arrays.append(np.stack(px).astype(np.float32) / 255.0)
        spans[name] = slice(start, start + len(files))
        start += len(files)
    gen = torch.Generator().manual_seed(NOISE_SEED)
    arrays.append(torch.rand(N_NOISE, 28, 28, generator=gen).numpy())
    spans["noise"] = slice(start, start + N_NOISE)
    x = torch.from_numpy(np.concatenate(arrays))[:, None]
    mean = torch.tensor(card["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(card["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std, spans


def run_batched(module, x: torch.Tensor, batch: int = 500):
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            o = module(x[i : i + batch])
            outs.append(o if isinstance(o, tuple) else (o,))
    return tuple(torch.cat(parts) for parts in zip(*outs))


def odin_grad(logits_of, x: torch.Tensor) -> torch.Tensor:
    """d/dx of the ODIN loss: cross-entropy of logits / T against the predicted class."""
    x = x.clone().requires_grad_(True)
    logits = logits_of(x)
    loss = F.cross_entropy(logits / ODIN_T, logits.argmax(1), reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g


# ------------------------------------------------------------------------------------ verify


def verify(old, new, x: torch.Tensor, spans: dict, confidence: bool) -> dict:
    (old_out,) = run_batched(old, x)
    new_out = run_batched(new, x)
    if confidence:
        logits, conf, z = new_out
        old_logits, old_conf = old_out[:, :NUM_CLASSES], old_out[:, NUM_CLASSES:]
    else:
        logits, z = new_out
        conf, old_logits, old_conf = None, old_out, None
    n = len(x)
    if logits.shape != (n, NUM_CLASSES) or z.shape != (n, FEATURES):
        raise Failure(f"new outputs {logits.shape}, {z.shape}; expected [{n}, 10], [{n}, 64]")
    r = {"n": n}
    r["logits_max_abs"] = (logits - old_logits).abs().max().item()
    r["logits_bit_equal"] = bool(torch.equal(logits, old_logits))
    per_set = {}
    for name, s in spans.items():
        per_set[name] = (logits[s] - old_logits[s]).abs().max().item()
    r["logits_max_abs_per_set"] = per_set
    if confidence:
        if conf.shape != (n, 1):
            raise Failure(f"confidence output {tuple(conf.shape)}, expected [{n}, 1]")
        r["confidence_max_abs"] = (conf - old_conf).abs().max().item()
        r["confidence_bit_equal"] = bool(torch.equal(conf, old_conf))
    argmax_diff = int((logits.argmax(1) != old_logits.argmax(1)).sum())
    r["argmax_differences"] = argmax_diff

    params = dict(new.named_parameters())
    if f"{HEAD}.weight" not in params or f"{HEAD}.bias" not in params:
        raise Failure(f"{HEAD}.weight / {HEAD}.bias not among the parameters: {sorted(params)}")
    w, b = params[f"{HEAD}.weight"], params[f"{HEAD}.bias"]
    if tuple(w.shape) != (NUM_CLASSES, FEATURES) or tuple(b.shape) != (NUM_CLASSES,):
        raise Failure(f"{HEAD}: weight {tuple(w.shape)}, bias {tuple(b.shape)}")
    trainable = [k for k, p in params.items() if p.requires_grad]
    if trainable:
        raise Failure(f"parameters still require grad: {trainable}")
    with torch.no_grad():
        recon = z @ w.T + b
    d = (recon - logits).abs()
    r["head_max_abs"] = d.max().item()
    r["head_max_rel"] = (d / logits.abs().clamp_min(1.0)).max().item()

    # ODIN input gradient on a few images of each set.
    idx = torch.cat([torch.arange(s.start, s.stop)[: N_GRAD_IMAGES // 2 if k != "noise" else 4]
                     for k, s in spans.items()])
    xg = x[idx]
    g_old = odin_grad(lambda t: old(t)[:, :NUM_CLASSES], xg)
    g_new = odin_grad(lambda t: new(t)[0], xg)
    scale = g_old.abs().max().item()
    r["odin_grad_images"] = len(idx)
    r["odin_grad_max_abs"] = (g_new - g_old).abs().max().item()
    r["odin_grad_max_rel"] = r["odin_grad_max_abs"] / scale if scale > 0 else float("inf")
    r["odin_grad_sign_agree"] = (torch.sign(g_new) == torch.sign(g_old)).float().mean().item()

    problems = []
    if r["logits_max_abs"] > LOGIT_ATOL:
        problems.append(f"logits differ by {r['logits_max_abs']:.3g}")
    if confidence and r["confidence_max_abs"] > LOGIT_ATOL:
        problems.append(f"confidence differs by {r['confidence_max_abs']:.3g}")
    if argmax_diff:
        problems.append(f"argmax differs on {argmax_diff} images")
    if r["head_max_rel"] > HEAD_RTOL:
        problems.append(f"features @ fc.weight^T + fc.bias is off by {r['head_max_rel']:.3g} (relative)")
    if r["odin_grad_max_rel"] > GRAD_RTOL:
        problems.append(f"ODIN input gradient differs by {r['odin_grad_max_rel']:.3g} (relative)")
    if problems:
        raise Failure("; ".join(problems))
    return r


# -------------------------------------------------------------------------------------- card


def update_card(text: str, old_outputs: str, new_outputs: str, note: str) -> str:
    lines = text.splitlines(keepends=True)
    out, saw_outputs, saw_notes = [], False, False
    for line in lines:
        key = line.split("=", 1)[0].strip()
        if key == "outputs":
            if tomllib.loads(line)["outputs"] != old_outputs:
                raise Failure(f"card line {line.strip()!r}, expected outputs = {old_outputs!r}")
            out.append(f'outputs = "{new_outputs}"\n')
            out.append(f'head = "{HEAD}"\n')
            saw_outputs = True
        elif key == "notes":
            notes = tomllib.loads(line)["notes"]
            out.append(f"notes = {toml_string(notes + note)}\n")
            saw_notes = True
        elif key == "head":
            raise Failure("card already has a head line")
        else:
            out.append(line)
    if not (saw_outputs and saw_notes):
        raise Failure("card has no outputs or no notes line")
    new_text = "".join(out)
    tomllib.loads(new_text)  # still valid TOML
    return new_text


def toml_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -------------------------------------------------------------------------------------- main


def reexport(name: str, dry_run: bool) -> None:
    old_outputs, new_outputs, confidence = TARGETS[name]
    pt, card_path = MODELS / f"{name}.pt", MODELS / f"{name}.toml"
    card_text = card_path.read_text(encoding="utf-8")
    card = tomllib.loads(card_text)
    old_bytes = pt.read_bytes()
    old = torch.jit.load(io.BytesIO(old_bytes), map_location="cpu").eval()
    with torch.no_grad():
        probe = old(torch.zeros(2, 1, 28, 28))
    if isinstance(probe, tuple):
        if card.get("outputs") == new_outputs and card.get("head") == HEAD:
            print(f"{name}: already re-exported (returns a tuple of {len(probe)}; card says "
                  f"outputs = {new_outputs!r}, head = {HEAD!r}); left alone")
            return
        raise Failure(f"{pt} already returns a tuple but {card_path.name} says outputs = "
                      f"{card.get('outputs')!r}, head = {card.get('head')!r}: restore both from git "
                      f"(`git checkout -- models/{name}.pt models/{name}.toml`) and run again")
    if card.get("outputs") != old_outputs:
        raise Failure(f"{card_path}: outputs = {card.get('outputs')!r}, expected {old_outputs!r}")

    print(f"{name}: {pt.relative_to(REPO)} ({len(old_bytes)} bytes), traced graph "
          f"-> output {tuple(probe.shape)}")
    torch.manual_seed(0)  # only the (overwritten) default init draws random numbers
    net = OodscopeNet(confidence)
    facts = load_weights(old, net)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    print(f"  batch norm in the graph: eps {facts['eps']}, momentum {facts['momentum']}, "
          f"training = False")
    if facts["shared"]:
        print(f"  graph constants shared between layers (equal tensors pooled by the tracer): "
              f"{', '.join(facts['shared'])}")

    example = torch.zeros(2, 1, 28, 28)
    traced = torch.jit.trace(net, example)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    new_bytes = buf.getvalue()
    new = torch.jit.load(io.BytesIO(new_bytes), map_location="cpu").eval()

    x, spans = load_inputs(card)
    r = verify(old, new, x, spans, confidence)
    print(f"  checked on {r['n']} images ({', '.join(f'{k} {s.stop - s.start}' for k, s in spans.items())}):")
    print(f"    logits      max |new - old| = {r['logits_max_abs']:.3g} "
          f"(bit-identical: {r['logits_bit_equal']}; per set: "
          + ", ".join(f"{k} {v:.3g}" for k, v in r["logits_max_abs_per_set"].items()) + ")")
    if confidence:
        print(f"    confidence  max |new - old[:, 10]| = {r['confidence_max_abs']:.3g} "
              f"(bit-identical: {r['confidence_bit_equal']})")
    print(f"    argmax differences: {r['argmax_differences']}")
    print(f"    features @ {HEAD}.weight^T + {HEAD}.bias vs logits: max abs {r['head_max_abs']:.3g}, "
          f"max rel {r['head_max_rel']:.3g}")
    print(f"    ODIN input gradient (T = {ODIN_T:g}, {r['odin_grad_images']} images): max abs diff "
          f"{r['odin_grad_max_abs']:.3g}, relative to max |grad| {r['odin_grad_max_rel']:.3g}, "
          f"signs agree {100 * r['odin_grad_sign_agree']:.3f} %")
    print(f"  new file: {len(new_bytes)} bytes (old {len(old_bytes)})")

    delta = max(r["logits_max_abs"], r.get("confidence_max_abs", 0.0))
    layout = ("(logits [N, 10], confidence [N, 1], features [N, 64]), the [11, 64] head split into "
              "fc and confidence" if confidence else "(logits [N, 10], features [N, 64])")
    note = (f"; re-exported with features and head by scripts/reexport_bundled.py: returns {layout} "
            f"(logits equal to the Rust-traced export, max |Δ| = {delta:.3g})")
    new_card = update_card(card_text, old_outputs, new_outputs, note)
    if dry_run:
        print(f"  --dry-run: not writing {pt.name} or {card_path.name}; the card would read:")
        print("".join(f"    {line}" for line in new_card.splitlines(keepends=True)), end="")
        return
    pt.write_bytes(new_bytes)
    card_path.write_text(new_card, encoding="utf-8")
    print(f"  wrote {pt.relative_to(REPO)} and {card_path.relative_to(REPO)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="verify only; write nothing")
    args = ap.parse_args()
    try:
        for name in TARGETS:
            reexport(name, args.dry_run)
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
