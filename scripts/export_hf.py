"""`--model hf:DIR` for scripts/export_model.py: a Hugging Face image classifier saved with
`save_pretrained`, read offline from its folder, with the card's preprocessing taken from the image
processor saved beside it (`preprocessor_config.json`).

- The model: `AutoModelForImageClassification.from_pretrained(DIR, local_files_only=True)` in
  float32, eval mode, its weights from the folder (a weight the folder lacks, such as the head of a
  base model saved without one, is an error, not a random layer). It is called with
  `return_dict=True` and its `.logits` returned, whatever the config's `return_dict` says.
- The head: `classifier` when it is a linear layer, else the linear layer whose output is the
  logits (found by running the model once).
- The classes: `config.id2label`, in index order.
- The preprocessing: what `AutoImageProcessor.from_pretrained(DIR)` does in transformers 5 (its
  default "fast" processor, on the torchvision backend): decoded to RGB, resized as a uint8 tensor
  by PyTorch's antialiased CPU kernel (`resample` 2 bilinear, 3 bicubic, 0 nearest-exact), centre
  cropped with truncated offsets, rescaled and normalised. The card says `backend = "hf"`, which
  oodscope reproduces pixel for pixel (crates/data/src/torch_u8.rs). Sizes: `size` {height, width}
  resizes to that size; {shortest_edge} resizes the shorter side (a centre crop to `crop_size`
  follows when `do_center_crop`); ConvNeXt's processor with `crop_pct` resizes the shorter side to
  `int(shortest_edge / crop_pct)` and crops `shortest_edge` below 384, and resizes to
  shortest_edge × shortest_edge from 384 on. `do_rescale` / `rescale_factor` / `do_normalize` are
  folded into the card's mean and std.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

# PIL's resampling codes as Hugging Face processors store them, and the card's interpolation.
RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
RESAMPLE_NAMES = {1: "LANCZOS", 4: "BOX", 5: "HAMMING"}
FLAGS = "--input-size, --mean, --std and --resize / --crop / --interpolation / --backend"


class HFError(Exception):
    """A problem with the folder the user can fix; export_model.py prints it as one line."""


class HFLogits(nn.Module):
    """A transformers image classifier as oodscope calls a model: pixel values in, logits out. Called
    with return_dict=True: a tuple output (return_dict=False) is never asked for."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.hf = model

    def forward(self, x):
        return self.hf(pixel_values=x, return_dict=True).logits


class HFModel:
    """What the folder gives: the wrapped model and what is known about feeding it."""

    def __init__(self, model: HFLogits, head: str, classes: list[str], channels: int):
        self.model = model
        self.head = head
        self.classes = classes
        self.channels = channels
        # From the processor (None when its settings are missing and the flags give them).
        self.mean: list[float] | None = None
        self.std: list[float] | None = None
        self.input_size: int | None = None
        self.fields: dict | None = None
        self.notes: list[str] = []


def load(folder: Path, size_flag: int | None, flags_give_preprocessing: bool) -> HFModel:
    """The model of `folder` and its preprocessing. `flags_give_preprocessing`: the user passed
    --input-size, --mean and --std, so a missing or unusable processor is not an error."""
    if not folder.is_dir():
        raise HFError(f"--model hf:{folder}: no such folder (a folder written by save_pretrained)")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise HFError(
            f"--model hf:{folder}: no config.json in the folder; hf:DIR takes a folder written by "
            "model.save_pretrained(DIR) (config.json and model.safetensors)"
        )
    try:
        import transformers
    except ImportError:
        raise HFError("hf: needs transformers: pip install transformers (scripts/setup.sh pins it)") from None
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars: noise in a one-line-per-step log
    model = load_model(folder, config_file, transformers)
    config = model.config
    num_labels = int(getattr(config, "num_labels", 0) or 0)
    channels = int(getattr(config, "num_channels", 3) or 3)
    wrapped = HFLogits(model).eval()
    id2label = getattr(config, "id2label", None) or {}
    classes = [str(id2label.get(i, id2label.get(str(i), f"c{i}"))) for i in range(num_labels)]
    hf = HFModel(wrapped, "", classes, channels)
    try:
        read_processor(folder, hf, transformers)
    except HFError:
        if not flags_give_preprocessing:
            raise
        hf.notes.append("the processor's settings are not used: the preprocessing comes from the flags")
    hf.head = "hf." + find_head(model, num_labels, hf.input_size or size_flag or 224, channels)
    return hf


def load_model(folder: Path, config_file: Path, transformers) -> nn.Module:
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HFError(f"{config_file}: not readable JSON ({e})") from None
    kind = config.get("model_type", "?") if isinstance(config, dict) else "?"
    try:
        model, info = transformers.AutoModelForImageClassification.from_pretrained(
            str(folder), local_files_only=True, dtype=torch.float32, output_loading_info=True
        )
    except ValueError as e:
        if "Unrecognized configuration class" in str(e) or "Unrecognized model" in str(e):
            archs = ", ".join(config.get("architectures") or []) if isinstance(config, dict) else ""
            raise HFError(
                f"{config_file}: a {kind} model{f' ({archs})' if archs else ''}, not an image classifier: "
                "AutoModelForImageClassification has no class for it (hf:DIR takes an image classification model)"
            ) from None
        raise HFError(f"--model hf:{folder}: transformers cannot load it: {str(e).splitlines()[0][:300]}") from None
    except OSError as e:
        raise HFError(
            f"--model hf:{folder}: transformers cannot load the weights ({str(e).splitlines()[0][:300]}); "
            "the folder needs the model.safetensors (or pytorch_model.bin) that save_pretrained writes"
        ) from None
    missing = list(info.get("missing_keys") or [])
    if missing:
        raise HFError(
            f"--model hf:{folder}: the folder's weights lack {len(missing)} of the model's tensors (e.g. "
            f"{', '.join(sorted(missing)[:3])}): those layers would be random (a base model saved without its "
            "classification head?); save the fine-tuned classifier with save_pretrained"
        )
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def find_head(model: nn.Module, num_labels: int, size: int, channels: int) -> str:
    """`classifier` when it is linear, else the linear layer whose output is the logits."""
    if num_labels <= 0:
        raise HFError("the model has no classification head (num_labels = 0 in its config)")
    modules = dict(model.named_modules())
    if isinstance(modules.get("classifier"), nn.Linear):
        return "classifier"
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name, m in modules.items()
        if isinstance(m, nn.Linear) and m.out_features == num_labels
    ]
    try:
        with torch.no_grad():
            x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(3))
            logits = model(pixel_values=x, return_dict=True).logits
    finally:
        for h in hooks:
            h.remove()
    found = [name for name, out in outputs.items() if torch.is_tensor(out) and out.shape == logits.shape and torch.equal(out, logits)]
    if len(found) != 1:
        linears = [name for name, m in modules.items() if isinstance(m, nn.Linear)]
        raise HFError(
            "cannot tell which linear layer gives the logits; name it with --head hf.NAME "
            f"(linear layers, last first: {', '.join(reversed(linears[-8:])) or 'none'})"
        )
    return found[0]


def size_of(size) -> dict:
    """A processor's size (a SizeDict or a dict) as a dict of its set fields."""
    if size is None:
        return {}
    if isinstance(size, Mapping):
        items = dict(size)
    else:
        keys = ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width")
        items = {k: getattr(size, k, None) for k in keys}
    return {k: v for k, v in items.items() if v is not None}


def read_processor(folder: Path, hf: HFModel, transformers) -> None:
    """Fills hf's mean, std, input size and card fields from the folder's image processor."""
    settings = folder / "preprocessor_config.json"
    if not settings.is_file():
        raise HFError(
            f"{folder}: no preprocessor_config.json (the image processor's settings, written by "
            f"processor.save_pretrained(DIR)): save the processor there, or give the preprocessing as flags: {FLAGS}"
        )
    try:
        proc = transformers.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read the processor is one message
        raise HFError(f"{settings}: transformers cannot read it ({str(e).splitlines()[0][:200]}); or give {FLAGS}") from None
    name = type(proc).__name__
    if getattr(proc, "backend", None) != "torchvision":
        raise HFError(
            f"{settings}: {name} runs on the {getattr(proc, 'backend', '?')} backend; oodscope reproduces "
            f"transformers' default torchvision backend only; give the preprocessing as flags: {FLAGS}"
        )
    from transformers.image_processing_backends import TorchvisionBackend

    convnext = type(proc).__name__ == "ConvNextImageProcessor"
    generic = type(proc).resize is TorchvisionBackend.resize and type(proc)._preprocess is TorchvisionBackend._preprocess
    if not (generic or convnext):
        raise HFError(
            f"{settings}: {name} preprocesses in its own way (its own resize or _preprocess), which a card "
            f"cannot describe; give the preprocessing as flags: {FLAGS}"
        )
    if not getattr(proc, "do_resize", True):
        raise HFError(f"{settings}: do_resize is false (images must come at the model's size); give {FLAGS}")
    resample = getattr(proc, "resample", None)
    try:
        resample = 2 if resample is None else int(resample)
    except (TypeError, ValueError):
        raise HFError(f"{settings}: resample {resample!r} is not a PIL filter code; give {FLAGS}") from None
    if resample not in RESAMPLE:
        raise HFError(
            f"{settings}: resample {resample} ({RESAMPLE_NAMES.get(resample, '?')}) has no card interpolation "
            "(bilinear 2, bicubic 3, nearest 0); give --interpolation and check the scores"
        )
    size = size_of(getattr(proc, "size", None))
    crop = size_of(getattr(proc, "crop_size", None)) if getattr(proc, "do_center_crop", False) else {}
    if crop and not ("height" in crop and "width" in crop):
        raise HFError(f"{settings}: crop_size {crop} is not {{height, width}}; give {FLAGS}")
    fields: dict = {"interpolation": RESAMPLE[resample], "backend": "hf"}
    if convnext:
        edge = size.get("shortest_edge")
        if edge is None:
            raise HFError(f"{settings}: ConvNextImageProcessor needs size {{shortest_edge}}, got {size}")
        if crop:
            raise HFError(f"{settings}: a crop_pct resize and do_center_crop together: give {FLAGS}")
        crop_pct = float(getattr(proc, "crop_pct", None) or 224 / 256)
        if edge < 384:
            # ConvNextImageProcessor.resize: shorter side to int(edge / crop_pct), then the centre.
            fields["resize"], final = int(edge / crop_pct), (edge, edge)
            fields["crop"] = [edge, edge]
        else:
            fields["resize"], final = [edge, edge], (edge, edge)
    elif set(size) == {"height", "width"}:
        fields["resize"], final = [size["height"], size["width"]], (size["height"], size["width"])
    elif set(size) == {"shortest_edge"}:
        if not crop:
            raise HFError(
                f"{settings}: size {{shortest_edge: {size['shortest_edge']}}} without a centre crop gives images "
                f"of varying size; give {FLAGS}"
            )
        fields["resize"], final = size["shortest_edge"], None
    else:
        raise HFError(f"{settings}: size {size} is not {{height, width}} nor {{shortest_edge}}; give {FLAGS}")
    if crop:
        fields["crop"], final = [crop["height"], crop["width"]], (crop["height"], crop["width"])
    if final[0] != final[1]:
        raise HFError(f"{settings}: the processor makes {final[0]}×{final[1]} images; the exporter takes square inputs")
    hf.input_size = final[0]
    hf.fields = fields
    hf.mean, hf.std = mean_std(proc, hf.channels)
    if getattr(proc, "do_convert_rgb", None):
        hf.notes.append(
            "the processor composites transparent images onto white (do_convert_rgb); oodscope drops the alpha "
            "channel, so images with transparency score otherwise"
        )


def mean_std(proc, channels: int) -> tuple[list[float], list[float]]:
    """The card's mean and std (on pixels / 255) for the processor's rescale and normalisation:
    it computes (v·r − m) / s on 0..255 values v, which is (v/255 − m/(255·r)) / (s/(255·r))."""
    rescale = float(proc.rescale_factor) if getattr(proc, "do_rescale", True) else 1.0
    factor = 1.0 if abs(rescale * 255.0 - 1.0) < 1e-9 else 255.0 * rescale
    if getattr(proc, "do_normalize", True):
        mean, std = proc.image_mean, proc.image_std
    else:
        mean, std = 0.0, 1.0
    mean = [float(mean)] * channels if isinstance(mean, (int, float)) else [float(v) for v in mean]
    std = [float(std)] * channels if isinstance(std, (int, float)) else [float(v) for v in std]
    if len(mean) != channels or len(std) != channels:
        raise HFError(f"the processor's image_mean / image_std have {len(mean)} values; the model takes {channels} channels")
    return [m / factor for m in mean], [s / factor for s in std]
