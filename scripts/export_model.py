#!/usr/bin/env python3
"""Export your own PyTorch image classifier as an oodscope model: a TorchScript file (or, with
`--format aoti`, an AOTInductor package) that returns (logits, penultimate features), with its card
(`<out stem>.toml`) beside it.

Usage (the project venv's Python; from the repository root):

    python scripts/export_model.py --model torchvision:resnet50 --out models/resnet50.pt
    python scripts/export_model.py --model timm:convnext_tiny --weights ckpt.pth --out models/cnx.pt
    python scripts/export_model.py --model my_pkg.nets:build --model-path ~/code \\
        --model-arg num_classes=10 --classes classes.txt --preprocess resize --input-size 64 \\
        --weights runs/best.pth --out models/mine.pt
    python scripts/export_model.py --model hf:runs/vit-finetuned --out models/vit.pt
    python scripts/export_model.py --model onnx:model.onnx --classes classes.txt --out models/m.pt
    python scripts/export_model.py --model pickle:whole_model.pt --model-path ~/code --out models/m.pt
    python scripts/export_model.py --model torchvision:resnet50 --format aoti --out models/resnet50.pt2

What it does, in order:
  1. builds the model: torchvision by name (weights=None), timm by name (pretrained=False), any
     importable callable `module:function` (`--model-path` is put on sys.path, `--model-arg k=v`
     are its keyword arguments), an ONNX file (through onnx2torch), a whole pickled nn.Module
     (`torch.save(model)`; its classes must be importable), or a Hugging Face image classifier
     saved with save_pretrained (`hf:DIR`, read offline by scripts/export_hf.py: its weights,
     `config.id2label` classes, head and `.logits` (called with return_dict=True) come from the
     folder, the card's preprocessing from its `preprocessor_config.json`, with `backend = "hf"`:
     the processor's uint8 resize and crop, pixel for pixel);
  2. loads `--weights` strictly (not with hf:DIR, whose folder holds them): a state_dict, plain or under `state_dict` / `model` /
     `model_state_dict`, `module.` (DataParallel) and `_orig_mod.` (torch.compile) prefixes
     stripped; a .safetensors file works too; then puts the model in eval mode;
  3. finds the final linear layer (`fc`, `classifier[-1]`, `heads.head`, `head`, timm's
     `get_classifier()`, or `--head NAME`) and wraps the model so it returns (logits, z) where z is
     that layer's input; checks ℓ = W·z + b; with `--blocks NAME,…` each named inner block's
     feature map [N, C, H, W] follows z (forward hooks), and the card lists them as `blocks`
     (multi-mahalanobis reads them all; rankfeat the last, which must be the map z is pooled
     from: layer4 for a ResNet);
  4. traces it with torch.jit.trace in eval mode WITH autograd on (gradient methods such as ODIN
     need ∂loss/∂input: tracing under no_grad can record non-differentiable fast paths), parameters
     frozen (requires_grad = False: input gradients only); a TracerWarning from your own code (a
     Python `if` on a tensor's values, frozen to one branch) is an error that points to the Python
     package's `oodscope.capture`, which needs no tracing (`--allow-tracer-warnings` when the
     condition depends only on shapes); libraries' warnings (timm's shape asserts) are shown;
  5. writes the card: input size, mean/std and preprocessing (from the torchvision weights'
     transforms(), timm's pretrained config or the HF folder's image processor, else the flags), classes (`--classes`, else the
     weights' ImageNet names when the model has 1000 outputs, else c0, c1, …), outputs and head;
  6. reloads the file and checks its logits, features and input gradients against the eager model
     (relative 1e-4 for outputs, 1e-3 for gradients) at batch sizes 1 and 2, on single images across
     the input range (black, grey, white, noise: a forward that branches on the input's values, which
     tracing freezes to one branch, differs on some of them), and on up to 16 of your own images
     with `--check-images DIR`; then runs oodscope's own load probe (`oodscope methods --model OUT`)
     when the binary can be found. Everything is written into a folder of its own beside OUT and
     moved into place only when every check passed: a failed export leaves nothing behind.

Frozen by default: the traced file gets channels-last weights and is frozen (torch.jit.freeze: batch
norm folded into the convolutions; MSP 1.65× and ODIN 1.35× faster on a ResNet-18, input gradients
kept, docs/benchmarks.md); freezing inlines the head, so it is written beside the file as
`<stem>.head.safetensors` and the card names that file. The checks of step 6 run on the frozen file
first (its input gradient not on the flat black, grey and white images, where a max pool's tied
windows let the folded batch norm's rounding route the gradient elsewhere: a kernel's choice);
when freezing fails or the frozen file fails a check (a `.view` on a convolution's output, which
channels-last weights make non-contiguous, is one such model), one line says what differed and by
how much, and the plain traced file is written and checked instead, as with `--no-freeze`.
`--freeze` makes the frozen file a requirement: its failed check is the export's error.
`--no-freeze` writes the plain traced file (its card's head is `model.<layer>`, a submodule).

A model may return the logits tensor, or a dict / Hugging Face ModelOutput / dataclass with a
`logits` tensor (unwrapped); anything else is named with the fix. The card's preprocessing is the
preset's (`--preprocess`), with `--resize`, `--crop`, `--interpolation` and `--backend` instead
where given.

With `--format aoti` (an AOTInductor package, `.pt2`: the upstream successor of TorchScript, run by
libtorch with no Python) step 4 is torch.export.export with a dynamic batch dim, then
torch._inductor.aoti_compile_and_package for `--device` (cpu or cuda; the package runs only there;
it needs a C++ compiler here, none where oodscope runs it); the head is written beside it as
`<stem>.head.safetensors` (a package has no submodules by name); step 6 checks logits and features
through torch._inductor.aoti_load_package. A package is inference-only: the methods that step the
input along its gradient (ODIN, energy or Mahalanobis with ε > 0) need the TorchScript export.

Exit status: 0 when every check passes; 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import linecache
import math
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# TorchScript is deprecated upstream and torch 2.13 warns on every torch.jit.trace / trace_method /
# load. oodscope reads models through libtorch's TorchScript loader (tch has no binding for the
# torch.export / AOTInductor successor yet), so the warning says nothing a user of this script can
# act on; only these three exact messages are hidden (tracer warnings about shapes stay visible).
warnings.filterwarnings(
    "ignore",
    message=r"`torch\.jit\.(trace|trace_method|load)` is deprecated",
    category=DeprecationWarning,
)

REPO = Path(__file__).resolve().parent.parent
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
OUTPUT_RTOL = 1e-4
GRAD_RTOL = 1e-3
PRESETS = ("torchvision-imagenet", "timm", "resize")
# The example batch of a torch.export: torch 2.13 guards a convolution's batch at 16 (its backend
# choice), so a package exported at 16 accepts 16 and more; oodscope pads smaller batches to it.
AOTI_EXAMPLE_BATCH = 16


class ExportError(Exception):
    """A problem the user can fix; printed as one line."""


def say(message: str) -> None:
    print(f"export: {message}", flush=True)


# ------------------------------------------------------------------------------ building


class Built:
    """A model and what its source knows about feeding it."""

    def __init__(self, model: nn.Module, source: str):
        self.model = model
        self.source = source
        self.mean: list[float] | None = None
        self.std: list[float] | None = None
        self.input_size: int | None = None
        # (resize shorter side, crop, interpolation) of the source's own eval pipeline.
        self.pipeline: tuple[int, int, str] | None = None
        self.preset: str = "resize"
        self.categories: list[str] | None = None
        # Set by sources that know them: the head's name, the card's preprocessing fields, and
        # where the weights came from (no --weights needed).
        self.head: str | None = None
        self.fields: dict | None = None
        self.weights_from: str | None = None


def parse_model_args(pairs: list[str]) -> dict:
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ExportError(f"--model-arg {pair!r}: expected NAME=VALUE")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return kwargs


def sniff(path: Path) -> str:
    """'onnx', 'safetensors', 'zip' or 'other', by content."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 8 and int.from_bytes(head[:8], "little") < 100_000_000 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x08" and b"\x12" in head[1:4]:
        return "onnx"
    return "other"


def build(args, classes: list[str] | None) -> Built:
    spec = args.model
    kind, sep, rest = spec.partition(":")
    if args.model_path:
        for p in reversed(args.model_path):
            sys.path.insert(0, str(Path(p).expanduser().resolve()))
    kwargs = parse_model_args(args.model_arg)
    # torchvision and timm build their head for the classes given; a callable only gets
    # num_classes when --num-classes says so (it may not take that argument).
    num_classes = args.num_classes or (len(classes) if classes else None)
    if sep and kind == "torchvision":
        weights = getattr(args, "weights", None)
        flags_outside_weights(rest, kwargs, Path(weights) if weights else None)
        return build_torchvision(rest, num_classes, kwargs)
    if sep and kind == "timm":
        return build_timm(rest, num_classes, kwargs)
    if sep and kind == "hf":
        return build_hf(Path(rest).expanduser(), args)
    if sep and kind == "onnx":
        return build_onnx(Path(rest))
    if sep and kind == "pickle":
        return build_pickle(Path(rest))
    if Path(spec).is_file():
        fmt = sniff(Path(spec))
        if fmt == "onnx" or spec.endswith(".onnx"):
            return build_onnx(Path(spec))
        raise ExportError(
            f"--model {spec}: a file is given; say what it is: onnx:{spec} (an ONNX graph) or "
            f"pickle:{spec} (a whole nn.Module saved with torch.save(model)); a state_dict goes "
            "in --weights with --model naming the architecture"
        )
    if sep:
        return build_callable(kind, rest, args.num_classes, kwargs)
    raise ExportError(
        f"--model {spec!r}: expected torchvision:NAME, timm:NAME, hf:DIR, onnx:FILE, pickle:FILE or "
        "module.path:function"
    )


# torchvision builders whose flags change the computation or the keys but are not in a state_dict:
# the keys of each one's auxiliary classifiers.
AUX_KEYS = {"inception_v3": ("AuxLogits.",), "googlenet": ("aux1.", "aux2.")}


def flags_outside_weights(name: str, kwargs: dict, weights: Path | None) -> None:
    """`aux_logits` read from the weights (whether they hold the auxiliary classifiers), and
    `transform_input` required from the user: no state_dict records it, and a wrong value moves every
    score silently (torchvision turns it on only when it builds the model from its own ImageNet
    weights)."""
    if name not in AUX_KEYS or weights is None:
        return
    if "aux_logits" not in kwargs:
        has_aux = any(k.startswith(AUX_KEYS[name]) for k in read_state_dict(weights))
        kwargs["aux_logits"] = has_aux
        say(f"note: {name} built with aux_logits={has_aux}: the weights {'hold' if has_aux else 'have no'} auxiliary classifier keys")
    if "transform_input" not in kwargs:
        raise ExportError(
            f"{name} has a flag its weights do not record: transform_input (torchvision turns it on when it "
            "builds the model from its ImageNet weights, where fine-tuning usually starts; off otherwise): "
            "pass --model-arg transform_input=True or --model-arg transform_input=False, as the model was trained"
        )


def build_torchvision(name: str, num_classes: int | None, kwargs: dict) -> Built:
    import torchvision.models as tvm

    try:
        builder = tvm.get_model_builder(name)
    except ValueError as e:
        raise ExportError(f"torchvision has no model {name!r} ({e})") from None
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    # Random weights: the real ones come with --weights (nothing is downloaded).
    model = builder(weights=None, **kwargs)
    built = Built(model, f"torchvision:{name}")
    built.preset = "torchvision-imagenet"
    try:
        weights = tvm.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        return built
    t = weights.transforms()
    built.mean, built.std = list(t.mean), list(t.std)
    resize = t.resize_size[0] if t.resize_size else t.crop_size[0]
    built.pipeline = (resize, t.crop_size[0], t.interpolation.value)
    built.input_size = t.crop_size[0]
    built.categories = list(weights.meta.get("categories") or []) or None
    return built


def build_timm(name: str, num_classes: int | None, kwargs: dict) -> Built:
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError:
        raise ExportError("timm is not installed: pip install timm (scripts/setup.sh pins it)") from None
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    try:
        model = timm.create_model(name, pretrained=False, **kwargs)
    except RuntimeError as e:
        raise ExportError(f"timm cannot make {name!r}: {e}") from None
    built = Built(model, f"timm:{name}")
    built.preset = "timm"
    cfg = resolve_data_config({}, model=model)
    built.mean, built.std = list(cfg["mean"]), list(cfg["std"])
    size = cfg["input_size"][-1]
    built.input_size = size
    crop_pct = cfg.get("crop_pct") or 0.875
    interpolation = cfg.get("interpolation", "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bilinear"
    if cfg.get("crop_mode", "center") != "center":
        say(f"note: timm's crop_mode {cfg.get('crop_mode')!r} is written as a centre crop")
    built.pipeline = (math.floor(size / crop_pct), size, interpolation)
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model)
        if subset:
            built.categories = ImageNetInfo(subset).label_descriptions()
    except Exception:  # noqa: BLE001 - class names are a nicety; c0, c1, … otherwise
        pass
    return built


def build_hf(folder: Path, args) -> Built:
    """A Hugging Face image classifier saved with save_pretrained (scripts/export_hf.py): its weights,
    classes, head and the card's preprocessing all come from the folder."""
    if getattr(args, "weights", None):
        raise ExportError(
            f"--weights with hf:{folder}: the folder holds the weights (model.safetensors); to export others, "
            "load them into the model and save_pretrained it into a folder of its own"
        )
    if args.model_arg or args.num_classes:
        raise ExportError(f"--model-arg and --num-classes do not apply to hf:{folder}: its config.json says how the model is built")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import export_hf

    flags = args.input_size is not None and args.mean is not None and args.std is not None
    try:
        hf = export_hf.load(folder, args.input_size, flags)
    except export_hf.HFError as e:
        raise ExportError(str(e)) from None
    if hf.channels != args.channels:
        raise ExportError(f"the model takes {hf.channels} channels (its config's num_channels): pass --channels {hf.channels}")
    if args.input_size and hf.input_size and args.input_size != hf.input_size:
        raise ExportError(f"--input-size {args.input_size}: the folder's processor makes {hf.input_size}×{hf.input_size} images")
    built = Built(hf.model, f"hf:{folder}")
    built.mean, built.std, built.input_size = hf.mean, hf.std, hf.input_size
    built.categories, built.head, built.fields = hf.classes, hf.head, hf.fields
    built.weights_from = f"weights from the folder {folder.name}"
    for note in hf.notes:
        say(f"note: {note}")
    return built


def build_callable(module_name: str, function: str, num_classes: int | None, kwargs: dict) -> Built:
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ExportError(
            f"cannot import {module_name!r} ({e}); put its folder on --model-path (or PYTHONPATH)"
        ) from None
    fn = module
    for part in function.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ExportError(f"{module_name} has no {function!r}")
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    model = fn(**kwargs)
    if not isinstance(model, nn.Module):
        raise ExportError(f"{module_name}:{function} returned {type(model).__name__}, not an nn.Module")
    return Built(model, f"{module_name}:{function}")


def build_onnx(path: Path) -> Built:
    try:
        import onnx
        import onnx2torch
    except ImportError:
        raise ExportError("ONNX needs onnx and onnx2torch: pip install onnx onnx2torch (scripts/setup.sh pins them)") from None
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    graph = onnx.load(str(path))
    try:
        model = onnx2torch.convert(graph)
    except NotImplementedError as first:
        # onnx2torch knows opsets up to 17 for some operators (ReduceMean 18, ...): try a downgrade.
        try:
            from onnx import version_converter

            model = onnx2torch.convert(version_converter.convert_version(graph, 17))
        except Exception:  # noqa: BLE001 - report the first, more telling error
            raise ExportError(f"{path}: onnx2torch cannot convert this graph: {first}") from None
    return Built(model, f"onnx:{path}")


def build_pickle(path: Path) -> Built:
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    say(f"unpickling {path} (this runs code from the file: only for files you trust)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError) as e:
        raise ExportError(
            f"{path}: the model's classes cannot be imported ({e}); put the code that defines them on --model-path"
        ) from None
    if isinstance(obj, dict):
        obj = obj.get("model", obj)
    if not isinstance(obj, nn.Module):
        raise ExportError(
            f"{path} holds a {type(obj).__name__}, not an nn.Module: a state_dict goes in --weights with --model naming the architecture"
        )
    return Built(obj, f"pickle:{path}")


# ------------------------------------------------------------------------------ weights


STATE_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")
PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise ExportError(f"--weights {path}: no such file")
    if sniff(path) == "safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    elif sniff(path) == "zip" and any(n.endswith("archive_format") for n in zipfile.ZipFile(path).namelist()):
        # A torch.export program (.pt2): its weights, under the names of the module it came from.
        try:
            program = torch.export.load(str(path))
        except Exception as e:  # noqa: BLE001 - an AOTInductor package or a damaged file
            raise ExportError(f"--weights {path}: a .pt2 archive torch.export.load cannot read ({str(e).splitlines()[0][:200]})") from None
        state = dict(program.state_dict)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is one message
            raise ExportError(
                f"--weights {path}: not a state_dict that torch.load(weights_only=True) reads "
                f"({str(e).splitlines()[0][:200]}); a whole pickled model goes in --model pickle:{path}"
            ) from None
    for _ in range(3):
        if isinstance(state, dict) and not all(torch.is_tensor(v) for v in state.values()):
            inner = next((state[k] for k in STATE_KEYS if isinstance(state.get(k), dict)), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        keys = list(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise ExportError(f"--weights {path}: no state_dict found (top level: {keys})")
    cleaned = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        cleaned[key] = value
    return cleaned


def load_weights(model: nn.Module, path: Path) -> None:
    state = read_state_dict(path)
    result = model.load_state_dict(state, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} missing (e.g. {', '.join(result.missing_keys[:3])})")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} unexpected (e.g. {', '.join(result.unexpected_keys[:3])})")
    if problems:
        raise ExportError(f"--weights {path} does not fit the model: keys {'; '.join(problems)}")
    say(f"loaded {len(state)} tensors from {path}")


# ------------------------------------------------------------------------------ head


def find_head(model: nn.Module, override: str | None) -> str:
    """The dotted name of the final linear layer."""
    modules = dict(model.named_modules())
    if override:
        module = modules.get(override)
        if not isinstance(module, nn.Linear):
            raise ExportError(f"--head {override!r}: {'not a linear layer' if module is not None else 'no such submodule'}")
        return override
    for name in ("fc", "heads.head", "head", "head.fc", "classifier", "last_linear"):
        if isinstance(modules.get(name), nn.Linear):
            return name
    classifier = modules.get("classifier")
    if isinstance(classifier, nn.Sequential) and len(classifier) and isinstance(classifier[-1], nn.Linear):
        return f"classifier.{len(classifier) - 1}"
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        found = get_classifier()
        for name, module in modules.items():
            if module is found and isinstance(module, nn.Linear):
                return name
    linears = [name for name, m in modules.items() if isinstance(m, nn.Linear)]
    if len(linears) == 1:
        return linears[0]
    raise ExportError(
        "cannot tell which layer is the final linear one; name it with --head "
        f"(linear layers, last first: {', '.join(reversed(linears[-8:])) or 'none'})"
    )


def unwrap_logits(out):
    """The logits tensor of a model's output: the tensor itself, or the `logits` of a dict, a Hugging
    Face ModelOutput or a dataclass; anything else is named with the fix."""
    if torch.is_tensor(out):
        return out
    if isinstance(out, Mapping):
        if torch.is_tensor(out.get("logits")):
            return out["logits"]
        keys = ", ".join(sorted(str(k) for k in out))
        raise ExportError(
            f"the model returns a {type(out).__name__} with keys [{keys}] and no `logits` tensor: wrap it so "
            "that forward returns the logits (e.g. `return self.net(x)[\"scores\"]`) and export the wrapper"
        )
    logits = getattr(out, "logits", None)
    if torch.is_tensor(logits):
        return logits
    if dataclasses.is_dataclass(out):
        fields = ", ".join(f.name for f in dataclasses.fields(out))
        raise ExportError(
            f"the model returns a {type(out).__name__} dataclass with fields [{fields}] and no `logits` tensor: "
            "wrap it so that forward returns the logits tensor and export the wrapper"
        )
    if isinstance(out, (tuple, list)):
        raise ExportError(
            f"the model returns a {type(out).__name__} of {len(out)} items: wrap it so that forward returns the "
            "logits tensor alone (e.g. `return self.net(x)[0]`) and export the wrapper"
        )
    raise ExportError(f"the model returns {type(out).__name__}; expected a logits tensor [N, C]")


class WithFeatures(nn.Module):
    """The model, returning (logits, z, block maps…): z is what its final linear layer receives, and
    each named inner block's output follows (`--blocks`)."""

    def __init__(self, model: nn.Module, head: str, blocks: list[str] = ()):
        super().__init__()
        self.model = model
        self.blocks = list(blocks)
        self._z: list[torch.Tensor] = []
        self._maps: dict[str, torch.Tensor] = {}
        self._hooks = [model.get_submodule(head).register_forward_pre_hook(self._grab)]
        for name in self.blocks:
            self._hooks.append(block_module(model, name).register_forward_hook(self._keeper(name)))

    def detach_hook(self) -> None:
        """Leaves the model as it was (for callers that keep using it)."""
        for hook in self._hooks:
            hook.remove()

    def _grab(self, _module, inputs):
        self._z.append(inputs[0])

    def _keeper(self, name: str):
        def keep(_module, _inputs, output):
            self._maps[name] = output

        return keep

    def forward(self, x):
        self._z.clear()
        self._maps.clear()
        logits = unwrap_logits(self.model(x))
        z = self._z[-1] if self._z else None
        self._z.clear()
        if z is None:
            raise ExportError("the head was not called in the forward pass: name the right layer with --head")
        missing = [name for name in self.blocks if name not in self._maps]
        if missing:
            raise ExportError(f"--blocks: block `{missing[0]}` was not called in the forward pass")
        maps = tuple(self._maps[name] for name in self.blocks)
        self._maps.clear()
        return (logits, z) + maps


def block_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule `name` of `model` (`--blocks`), or an error listing the names there are."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise ExportError(
            f"--blocks: the model has no submodule `{name}` (its top-level ones: {', '.join(names)}; "
            "nested ones are dotted, as layer4.1)"
        ) from None


def check_wrapped(wrapped: WithFeatures, head: nn.Linear, example: torch.Tensor, classes: int | None) -> tuple[int, int]:
    with torch.no_grad():
        out = wrapped(example)
    logits, z = out[0], out[1]
    for name, block in zip(wrapped.blocks, out[2:]):
        if not torch.is_tensor(block) or block.dim() != 4 or block.shape[0] != example.shape[0]:
            shape = list(block.shape) if torch.is_tensor(block) else type(block).__name__
            raise ExportError(
                f"--blocks: block `{name}` gives {shape}, not a feature map [N, C, H, W]: name convolutional "
                "blocks (for a ResNet: layer1 … layer4)"
            )
    if not torch.is_tensor(logits) or logits.dim() != 2:
        shape = list(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ExportError(f"the model returns {shape}; expected logits [N, C]")
    if z.dim() != 2:
        raise ExportError(
            f"the head's input has shape {list(z.shape)}, not [N, D]: the head is applied per token or "
            "per position; name the layer that maps pooled features to logits with --head"
        )
    recomputed = F.linear(z, head.weight, head.bias)
    if recomputed.shape != logits.shape:
        raise ExportError(
            f"the head maps the features to {list(recomputed.shape)} but the model returns {list(logits.shape)}: "
            "the logits are not the head's output; name the final layer with --head"
        )
    scale = logits.abs().max().item() or 1.0
    relative = (recomputed - logits).abs().max().item() / scale
    if not relative <= 1e-5:
        raise ExportError(
            f"the logits are not W·z + b of the head (relative difference {relative:.1e}): the model changes "
            "them after its final linear layer; name the final layer with --head"
        )
    if classes is not None and logits.shape[1] != classes:
        raise ExportError(f"the model has {logits.shape[1]} outputs but {classes} classes are given")
    return logits.shape[1], z.shape[1]


# ------------------------------------------------------------------------------ card


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def read_classes(path: Path) -> list[str]:
    if not path.is_file():
        raise ExportError(f"--classes {path}: no such file")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) < 2:
        raise ExportError(f"--classes {path}: needs at least 2 class names, one a line")
    return names


def preprocessing(built: Built, preset: str, size: int) -> dict:
    """The card's preprocessing fields for a preset at input size `size`."""
    if preset == "resize":
        return {"resize": "resize"}
    if built.pipeline is not None and built.preset == preset:
        resize, crop, interpolation = built.pipeline
        resize = math.floor(size * resize / crop) if size != crop else resize
    elif preset == "timm":
        resize, interpolation = math.floor(size / 0.875), "bicubic"
    else:
        resize, interpolation = math.floor(size * 256 / 224), "bilinear"
    return {"resize": resize, "crop": [size, size], "interpolation": interpolation, "backend": "pil"}


def write_card(path: Path, fields: dict) -> None:
    lines = [f"{k} = {toml_value(v)}" for k, v in fields.items() if v is not None]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------ checks


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)


def spanning_inputs(size: int, channels: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """Images across the input range, normalised as the card says: black, mid-grey and white, and
    uniform noise. A forward that branches on the input's values (a Python `if` on a tensor, which
    tracing freezes to the branch of its example) gives another output on some of them."""
    gen = torch.Generator().manual_seed(2)
    pixels = torch.stack(
        [
            torch.zeros(channels, size, size),
            torch.full((channels, size, size), 0.5),
            torch.ones(channels, size, size),
            torch.rand(channels, size, size, generator=gen),
        ]
    )
    return normalise(pixels, mean, std)


def normalise(pixels: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (pixels - m) / s


def check_images(folder: Path, size: int, channels: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """Up to 16 of the user's images (sorted by name), resized to the input size, normalised."""
    from PIL import Image

    if not folder.is_dir():
        raise ExportError(f"--check-images {folder}: no such folder")
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())[:16]
    if not files:
        raise ExportError(f"--check-images {folder}: no image files in it")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
                arr = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).float() / 255.0
        except Exception as e:  # noqa: BLE001 - any unreadable file is named
            raise ExportError(f"--check-images: cannot read {f}: {str(e).splitlines()[0][:200]}") from None
        images.append(arr.view(size, size, channels).permute(2, 0, 1))
    return normalise(torch.stack(images), mean, std)


class ModelFault(ExportError):
    """A check of the frozen file failed where the plain traced module fails too: the model's own
    problem (a frozen shape, a branch on the input's values), which no fallback mends."""


def parity(eager: WithFeatures, out: Path, size: int, channels: int, inputs: list[tuple[str, str, torch.Tensor]],
           plain: torch.jit.ScriptModule | None = None) -> None:
    """The file's logits, features, block maps and ODIN input gradient against the eager model's: on
    random inputs at batch sizes 1 and 2, then on each batch of `inputs` ((what, which one, batch):
    images across the input range, the user's own images). `plain`: `out` is the frozen file, and this the traced
    module it was frozen from: a failure it shares is the model's (ModelFault), any other the
    freezing's."""
    loaded = torch.jit.load(str(out))
    frozen = plain is not None
    file = "the frozen file" if frozen else "the exported file"
    gen = torch.Generator().manual_seed(0)
    batches = [("random inputs", f"random inputs at batch size {batch}", torch.randn(batch, channels, size, size, generator=gen))
               for batch in (1, 2)]
    worst = {"logits": 0.0, "features": 0.0, "gradient": 0.0}
    where = {}
    for what, which, x in batches + inputs:
        batch = x.shape[0]
        try:
            with torch.no_grad():
                got = loaded(x)
        except Exception as e:  # noqa: BLE001 - a traced shape problem shows here
            reason = str(e).strip().splitlines()[-1][:200]
            if frozen and plain_runs(plain, x):
                raise ExportError(f"the frozen file fails at batch size {batch} ({reason})") from None
            raise (ModelFault if frozen else ExportError)(
                f"the exported file fails at batch size {batch} ({reason}): "
                "the trace froze a shape; make the model's forward use x.shape[0] / flatten(x, 1)"
            ) from None
        with torch.no_grad():
            want = eager(x)
        if len(got) != len(want):
            raise ExportError(
                f"{file} returns {len(got)} outputs, the eager model {len(want)} (logits, features and "
                f"{len(eager.blocks)} block maps)"
            )
        here = {}
        for name, g, w in zip(("logits", "features"), got, want):
            if g.shape != w.shape:
                raise ExportError(f"batch size {batch}: exported {name} have shape {list(g.shape)}, eager {list(w.shape)}")
            here[name] = relative(g, w)
        for name, g, w in zip(eager.blocks, got[2:], want[2:]):
            if g.shape != w.shape:
                raise ExportError(f"batch size {batch}: exported block `{name}` has shape {list(g.shape)}, eager {list(w.shape)}")
            # Block maps count as features: the same tolerance.
            here["features"] = max(here["features"], relative(g, w))
        # The ODIN loss's input gradient, through the file and through the eager model.
        grads = []
        for module in (loaded, eager):
            xg = x.clone().requires_grad_(True)
            logits = module(xg)[0]
            loss = -F.log_softmax(logits / 1000.0, dim=1).max(dim=1).values.sum()
            try:
                (grad,) = torch.autograd.grad(loss, xg)
            except RuntimeError as e:
                raise ExportError(
                    f"no input gradient through {file if module is loaded else 'the model'} "
                    f"({str(e).splitlines()[0][:200]}): gradient methods (ODIN, ε > 0) would fail"
                ) from None
            grads.append(grad)
        # On a flat image (every channel one value) a max pool's windows hold tied values, and the
        # frozen file's rounding (batch norm folded) routes the gradient to another of them: a
        # kernel's choice, as another CPU's would be (a ResNet-18's white image: 3.5e-3, 1.5e-4 of
        # the signs, frozen with or without channels-last). Its gradient is compared on the others.
        here["gradient"] = 0.0 if frozen and flat(x) else relative(grads[0], grads[1])
        differs = here["logits"] > OUTPUT_RTOL or here["features"] > OUTPUT_RTOL
        if what != "random inputs" and differs and (not frozen or plain_differs(plain, x, want)):
            raise (ModelFault if frozen else ExportError)(
                f"on {what} the exported file's outputs differ from the eager model's (relative "
                f"{max(here['logits'], here['features']):.1e}) though they agree on random inputs: the forward "
                "branches on the input's values (a Python `if` on a tensor), and tracing kept one branch; "
                "make it branch-free (torch.where) or export the wrapper that always takes the branch you want"
            )
        for k, v in here.items():
            if v > worst[k]:
                worst[k], where[k] = v, which
    checked = ", ".join(dict.fromkeys(what for what, _, _ in inputs))
    flats = " (not on flat images)" if frozen and any(flat(x) for _, _, x in inputs) else ""
    say(
        f"{'frozen' if frozen else 'exported'} vs eager at batch sizes 1 and 2{' and on ' + checked if checked else ''}: "
        f"max relative difference logits {worst['logits']:.1e}, features {worst['features']:.1e}, input gradient "
        f"{worst['gradient']:.1e}{flats}"
    )
    for name, bound in (("logits", OUTPUT_RTOL), ("features", OUTPUT_RTOL), ("gradient", GRAD_RTOL)):
        if not worst[name] <= bound:
            what = "input gradients" if name == "gradient" else name
            raise ExportError(
                f"{file}'s {what} differ from the eager model's by {worst[name]:.1e} relative on {where.get(name, 'an input')} "
                f"(more than {bound:g})"
            )


def flat(x: torch.Tensor) -> bool:
    """Whether every channel of every image in `x` is one value (the black, grey and white checks)."""
    return bool((x.amax(dim=(2, 3)) == x.amin(dim=(2, 3))).all())


def plain_runs(plain: torch.jit.ScriptModule, x: torch.Tensor) -> bool:
    """Whether the traced module (before freezing) runs on `x`."""
    try:
        with torch.no_grad():
            plain(x)
    except Exception:  # noqa: BLE001 - any failure: the model's, not the freezing's
        return False
    return True


def plain_differs(plain: torch.jit.ScriptModule, x: torch.Tensor, want) -> bool:
    """Whether the traced module (before freezing) differs from the eager outputs `want` on `x`."""
    with torch.no_grad():
        got = plain(x)
    return any(relative(g, w) > OUTPUT_RTOL for g, w in zip(got, want))


def aoti_parity(eager: WithFeatures, out: Path, size: int, channels: int, device: str) -> None:
    """The package's logits and features against the eager model's, at two batch sizes it accepts."""
    # The package's own shape checks (oodscope turns them on too): a batch outside its bounds fails.
    os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = "1"
    loaded = torch._inductor.aoti_load_package(str(out))
    gen = torch.Generator().manual_seed(0)
    worst = {"logits": 0.0, "features": 0.0}
    for batch in (AOTI_EXAMPLE_BATCH, AOTI_EXAMPLE_BATCH + 3):
        x = torch.randn(batch, channels, size, size, generator=gen).to(device)
        with torch.no_grad():
            try:
                got = loaded(x)
            except Exception as e:  # noqa: BLE001 - the package's own check says what it takes
                raise ExportError(
                    f"the package fails at batch size {batch} ({str(e).strip().splitlines()[-1][:200]})"
                ) from None
            want = eager(x)
        for name, g, w in zip(("logits", "features"), got, want):
            if g.shape != w.shape:
                raise ExportError(f"batch size {batch}: the package's {name} have shape {list(g.shape)}, eager {list(w.shape)}")
            worst[name] = max(worst[name], relative(g, w))
    say(
        f"package vs eager at batch sizes {AOTI_EXAMPLE_BATCH} and {AOTI_EXAMPLE_BATCH + 3}: max relative difference "
        f"logits {worst['logits']:.1e}, features {worst['features']:.1e}"
    )
    if worst["logits"] > OUTPUT_RTOL or worst["features"] > OUTPUT_RTOL:
        raise ExportError(f"the package's outputs differ from the eager model's by more than {OUTPUT_RTOL:g}")


def compile_aoti(wrapped: WithFeatures, out: Path, size: int, channels: int, device: str) -> None:
    """torch.export with a dynamic batch, then AOTInductor compiled and packaged for `device`."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ExportError("--device cuda: no CUDA device here (a CUDA package is compiled on one)")
    wrapped.to(device)
    gen = torch.Generator().manual_seed(2)
    example = torch.randn(AOTI_EXAMPLE_BATCH, channels, size, size, generator=gen).to(device)
    batch = torch.export.Dim("batch")
    try:
        program = torch.export.export(wrapped, (example,), dynamic_shapes={"x": {0: batch}})
    except Exception as e:  # noqa: BLE001 - torch.export's reasons are long; the last line says it
        raise ExportError(f"torch.export cannot export the model ({str(e).strip().splitlines()[0][:300]})") from None
    if out.exists():
        out.unlink()
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=str(out))
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"AOTInductor cannot compile the model ({str(e).strip().splitlines()[0][:300]}); a C++ compiler is needed") from None


def write_head(head: nn.Linear, path: Path) -> None:
    """The head as a safetensors file with `weight` [C, D] and `bias` [C] (float32)."""
    from safetensors.torch import save_file

    bias = head.bias if head.bias is not None else torch.zeros(head.out_features)
    save_file(
        {"weight": head.weight.detach().float().cpu().contiguous(), "bias": bias.detach().float().cpu().contiguous()},
        str(path),
    )


def find_oodscope(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("OODSCOPE_BIN"), str(REPO / "target" / "release" / "oodscope")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("oodscope")


def oodscope_probe(binary: str | None, out: Path) -> None:
    if binary is None:
        say("warning: the oodscope binary was not found (--oodscope, $OODSCOPE_BIN, target/release, PATH): its load probe was skipped")
        return
    done = subprocess.run([binary, "methods", "--model", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[-1]
        raise ExportError(f"oodscope does not accept the export: {message}")
    available = sum(1 for line in done.stdout.splitlines() if line.startswith("  ") and "[not for this model" not in line and not line.lstrip().startswith("--"))
    say(f"oodscope loads and probes it ({binary}): {available} methods available")


# ------------------------------------------------------------------------------ main


def export(args) -> None:
    out = Path(args.out)
    aoti = args.format == "aoti"
    suffix = ".pt2" if aoti else ".pt"
    if out.suffix != suffix:
        raise ExportError(f"--out {out}: the {'package' if aoti else 'model file'} must end in {suffix} (its card is <stem>.toml)")
    if args.preprocess is not None and args.preprocess not in PRESETS:
        raise ExportError(f"--preprocess {args.preprocess}: expected one of {', '.join(PRESETS)}")
    classes = read_classes(Path(args.classes)) if args.classes else None
    if classes and args.num_classes and len(classes) != args.num_classes:
        raise ExportError(f"--classes names {len(classes)} classes but --num-classes is {args.num_classes}")
    torch.manual_seed(0)
    built = build(args, classes)
    model = built.model
    if args.weights:
        load_weights(model, Path(args.weights))
    elif built.weights_from is None and not built.source.startswith(("onnx:", "pickle:")):
        say("note: no --weights: the model has random weights")
    model.eval()
    for p in model.parameters():
        # Frozen: a traced file then computes input gradients only (ODIN's backward is cheaper).
        p.requires_grad_(False)

    head_name = find_head(model, args.head or built.head)
    head = model.get_submodule(head_name)
    size = args.input_size or built.input_size or 224
    channels = args.channels
    blocks = [b.strip() for b in args.blocks.split(",") if b.strip()] if args.blocks else []
    if blocks and aoti:
        raise ExportError("--blocks is for TorchScript files: AOTInductor packages return logits and features only")
    if aoti and args.freeze == "required":
        raise ExportError("--freeze is for TorchScript files: an AOTInductor package is compiled, not frozen")
    wrapped = WithFeatures(model, head_name, blocks).eval()
    gen = torch.Generator().manual_seed(1)
    example = torch.randn(2, channels, size, size, generator=gen)
    num_logits, width = check_wrapped(wrapped, head, example, len(classes) if classes else None)
    if classes is None:
        if built.categories and len(built.categories) == num_logits:
            classes = built.categories
        else:
            classes = [f"c{i}" for i in range(num_logits)]

    preset = args.preprocess or ("hf" if built.fields is not None else built.preset)
    mean = args.mean or built.mean
    std = args.std or built.std
    if mean is None or std is None:
        say("note: no --mean/--std and none known for this model: ImageNet's are written")
        mean, std = mean or IMAGENET_MEAN[:channels], std or IMAGENET_STD[:channels]
    if len(mean) != channels or len(std) != channels:
        raise ExportError(f"--mean/--std need {channels} values, one per channel")
    # One image at a time: a branch on a batch statistic would see the range averaged away.
    spanning = spanning_inputs(size, channels, mean, std)
    spanning_what = "images across the input range (black, grey, white, noise)"
    inputs = [(spanning_what, f"the {name} image", spanning[i : i + 1]) for i, name in enumerate(("black", "grey", "white", "noise"))]
    if args.check_images:
        inputs.append((f"your images in {args.check_images}", f"your images in {args.check_images}", check_images(Path(args.check_images), size, channels, mean, std)))

    # Everything is written into a folder of its own beside the target and moved into place only
    # when every check passed: a failed export leaves nothing behind (and no half-checked file).
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        written = write_and_check(args, built, wrapped, head, head_name, stage / out.name, size, channels, classes,
                                  num_logits, width, preset, mean, std, inputs)
        for path in written:
            os.replace(path, out.parent / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def library_file(filename: str) -> bool:
    """Whether code at `filename` is a library's (an installed package, or this script's wrappers):
    their tracer warnings are about shapes (timm's and torchvision's asserts), not the user's data."""
    path = Path(filename).resolve()
    return "site-packages" in path.parts or "dist-packages" in path.parts or path == Path(__file__).resolve()


def trace_refusing_data_branches(wrapped: nn.Module, example: torch.Tensor, allow: bool):
    """torch.jit.trace, refusing a TracerWarning raised by the user's own code: a Python `if`, `int()`
    or `.item()` on a tensor's values is frozen to the example's branch, so the file would score other
    images wrongly (the parity checks catch it only when their inputs happen to take the other
    branch). Libraries' tracer warnings are shown as they are."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapped, example, check_trace=False)
    own = []
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning) and not library_file(w.filename):
            own.append(w)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if own and not allow:
        w = own[0]
        code = linecache.getline(w.filename, w.lineno).strip()
        cause = str(w.message).splitlines()[0].split(". ")[0]
        raise ExportError(
            f"tracing warned at {Path(w.filename).name}:{w.lineno} (`{code}`): {cause}: a Python condition "
            "on a tensor's values is frozen to the example input's branch, so the exported file would score "
            "other images wrongly. Score this model without tracing in Python, `oodscope.capture(model, "
            "loader)` (docs/python.md); or make the forward branch-free (torch.where); or, when the "
            "condition depends only on shapes, pass --allow-tracer-warnings"
        )
    return traced


def write_and_check(args, built, wrapped, head, head_name, out, size, channels, classes, num_logits, width, preset,
                    mean, std, inputs) -> list[Path]:
    """Traces (or compiles) the model into `out`, writes its card (and head file) beside it, checks
    them; returns the files written. A TorchScript file is frozen first (unless --no-freeze); when
    freezing fails or the frozen file fails a check, the plain traced file is written and checked
    instead (with --freeze that failure is the error)."""
    head_file = out.with_name(f"{out.stem}.head.safetensors")
    card = card_fields(args, built, wrapped, head_name, size, channels, classes, preset, mean, std, width)
    card_path = out.with_suffix(".toml")
    if args.format == "aoti":
        compile_aoti(wrapped, out, size, channels, args.device)
        write_head(head, head_file)
        write_card(card_path, {**card, "head": head_file.name})
        announce(args, num_logits, width, f"head `{head_name}` in {head_file.name}", preset)
        aoti_parity(wrapped, out, size, channels, args.device)
        probe(args, out)
        return [out, card_path, head_file]

    gen = torch.Generator().manual_seed(1)
    example = torch.randn(2, channels, size, size, generator=gen)
    # Traced with autograd on and an input that requires grad: under no_grad (or with nothing
    # requiring grad) PyTorch takes inference-only fast paths (nn.MultiheadAttention's
    # _native_multi_head_attention) that have no derivative, and ODIN would fail on the file.
    example.requires_grad_(True)
    traced = trace_refusing_data_branches(wrapped, example, args.allow_tracer_warnings)
    if args.freeze != "off":
        try:
            frozen = freeze(traced)
            write_head(head, head_file)
            write_card(card_path, {**card, "head": head_file.name})
            frozen.save(str(out))
            announce(args, num_logits, width, f"head `{head_name}` in {head_file.name}", preset,
                     " (frozen: batch norm folded, channels-last weights)")
            parity(wrapped, out, size, channels, inputs, plain=traced)
            probe(args, out)
            return [out, card_path, head_file]
        except ModelFault:
            raise
        except ExportError as e:
            if args.freeze == "required":
                raise ExportError(f"--freeze: {e}") from None
            say(f"note: not frozen: {e}; the plain traced file is exported instead (--no-freeze skips the attempt)")
            head_file.unlink(missing_ok=True)
    traced.save(str(out))
    write_card(card_path, {**card, "head": f"model.{head_name}"})
    announce(args, num_logits, width, f"head `model.{head_name}`", preset)
    parity(wrapped, out, size, channels, inputs)
    probe(args, out)
    return [out, card_path]


def freeze(traced: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """A frozen copy of the traced module with channels-last weights (docs/benchmarks.md, "Model math
    at real size": batch norm folded into the convolutions, MSP 1.65×, ODIN 1.35×, input gradients
    kept). Freezing inlines the submodules, so the head goes beside the file as safetensors. The
    traced module is left as it was (the fallback saves it)."""
    try:
        copy = torch.jit.load(_saved(traced))
        return torch.jit.freeze(copy.to(memory_format=torch.channels_last).eval())
    except Exception as e:  # noqa: BLE001 - any failure to freeze falls back to the plain file
        raise ExportError(f"torch.jit.freeze fails ({str(e).strip().splitlines()[-1][:200]})") from None


def _saved(module: torch.jit.ScriptModule):
    """The module serialised in memory (a copy that shares nothing with it, for torch.jit.load)."""
    import io

    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return buffer


def card_fields(args, built, wrapped, head_name, size, channels, classes, preset, mean, std, width) -> dict:
    """The card's fields; `head` (a submodule or the head file) is filled in by the caller."""
    weights_note = f"weights {Path(args.weights).name}" if args.weights else built.weights_from or "random weights"
    card = {
        "name": args.name or Path(args.out).stem,
        "input": [channels, size, size],
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "classes": classes,
        "outputs": "logits+features",
        "head": None,
        **({"blocks": wrapped.blocks} if wrapped.blocks else {}),
        **card_preprocessing(args, built, preset, size),
        "notes": f"exported by scripts/export_model.py from {built.source} ({weights_note}); "
        f"features: the {width}-d input of `{head_name}`",
    }
    return card


def announce(args, num_logits: int, width: int, head_note: str, preset: str, how: str = "") -> None:
    final = Path(args.out)
    say(
        f"writing {final}{how} and {final.with_suffix('.toml')}: {num_logits} classes, {width} features, "
        f"{head_note}, preprocessing {preset}"
    )


def probe(args, out: Path) -> None:
    if args.skip_oodscope_check:
        say("oodscope's load probe skipped (--skip-oodscope-check)")
    else:
        oodscope_probe(find_oodscope(args.oodscope), out)


def card_preprocessing(args, built: Built, preset: str, size: int) -> dict:
    """The preset's preprocessing fields, with what the flags give instead."""
    # "hf": the fields read from the folder's image processor (export_hf.py).
    fields = dict(built.fields) if preset == "hf" and built.fields is not None else preprocessing(built, preset, size)
    if args.resize is not None:
        fields["resize"] = args.resize
    if args.crop is not None:
        fields["crop"] = [args.crop, args.crop]
    if args.interpolation is not None:
        fields["interpolation"] = args.interpolation
    if args.backend is not None:
        fields["backend"] = args.backend
    if fields.get("crop") and fields["crop"] != [size, size]:
        raise ExportError(f"--crop {fields['crop'][0]} must equal the input size {size} (the crop is what the model takes)")
    if isinstance(fields.get("resize"), int) and fields["resize"] < size:
        raise ExportError(f"--resize {fields['resize']} is smaller than the input size {size}: nothing to crop")
    return fields


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="torchvision:NAME, timm:NAME, hf:DIR, onnx:FILE, pickle:FILE or module.path:function")
    parser.add_argument("--model-path", action="append", default=[], help="folder put on sys.path to import --model (repeatable)")
    parser.add_argument("--model-arg", action="append", default=[], help="NAME=VALUE keyword argument for the model's builder (repeatable)")
    parser.add_argument("--weights", help="state_dict file (torch.save or .safetensors) loaded strictly")
    parser.add_argument("--classes", help="text file with one class name a line, in output order")
    parser.add_argument("--num-classes", type=int, help="build the model with this many outputs (names c0, c1, … without --classes)")
    parser.add_argument("--preprocess", choices=PRESETS, help="the card's preprocessing (default: the model source's own, else resize)")
    parser.add_argument("--input-size", type=int, help="input height = width (default: the source's, else 224)")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--mean", type=float, nargs="+", help="per-channel mean (pixel units 0..1)")
    parser.add_argument("--std", type=float, nargs="+", help="per-channel std")
    parser.add_argument("--head", help="dotted name of the final linear layer, when it cannot be found")
    parser.add_argument("--blocks", metavar="NAME,…", help="inner blocks whose feature maps the file also returns (after the features), for multi-mahalanobis and rankfeat; the block before the global pooling last (for a ResNet: layer4)")
    parser.add_argument("--name", help="the card's name (default: the output file's stem)")
    parser.add_argument("--oodscope", help="the oodscope binary used for the final load probe")
    parser.add_argument("--skip-oodscope-check", action="store_true", help="do not run oodscope's load probe on the result")
    parser.add_argument("--format", choices=("torchscript", "aoti"), default="torchscript", help="torchscript (.pt, every method) or aoti (an AOTInductor package, .pt2: inference only)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="with --format aoti: the device the package is compiled for (it runs only there)")
    parser.add_argument("--resize", type=int, help="the card's resize: the shorter side in pixels before the crop (default: the preset's)")
    parser.add_argument("--crop", type=int, help="the card's centre crop (equal to the input size; default: the preset's)")
    parser.add_argument("--interpolation", choices=("bilinear", "bicubic", "nearest"), help="the card's resize filter (default: the preset's)")
    parser.add_argument("--backend", choices=("pil", "tensor", "hf"), help="the card's resize backend: pil (Pillow's 8-bit filters), tensor (torchvision's float resize) or hf (a Hugging Face processor's uint8 resize and crop)")
    frozen = parser.add_mutually_exclusive_group()
    frozen.add_argument("--freeze", dest="freeze", action="store_const", const="required", default="auto", help="require the frozen file (the default tries it and falls back to the plain traced file when a check fails): channels-last weights and batch norm folded (torch.jit.freeze), faster, input gradients kept; the head is written beside as safetensors")
    frozen.add_argument("--no-freeze", dest="freeze", action="store_const", const="off", help="write the plain traced file, not frozen (its card's head is the submodule model.NAME)")
    parser.add_argument("--allow-tracer-warnings", action="store_true", help="export although the model's own code raised a TracerWarning (a condition that depends only on shapes); the parity checks still run")
    parser.add_argument("--check-images", metavar="DIR", help="also check the exported file against the eager model on up to 16 of these images")
    parser.add_argument("--out", required=True, help="the file to write (.pt, or .pt2 with --format aoti); the card goes beside it")
    args = parser.parse_args(argv)
    try:
        export(args)
    except ExportError as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
