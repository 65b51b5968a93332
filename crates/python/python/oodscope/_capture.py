"""capture: run any eager PyTorch classifier over a DataLoader and record what oodscope scores.

No tracing: the model runs as the user's own Python (control flow, dict or dataclass outputs,
Hugging Face classifiers). The logits are the model's output; the features are the input of the
head (a forward hook on it); inner blocks' maps, where asked, are reduced as they come.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from . import _native
from ._native import OodscopeError
from ._outputs import Blocks, Outputs

_STEPPED = ("odin", "energy")


def logits_of(output: Any) -> torch.Tensor:
    """The logits ``[N, C]`` in a model's output: a tensor, ``output["logits"]``, ``output.logits``
    (Hugging Face's ModelOutput, a dataclass) or the first element of a tuple."""
    found = output
    if isinstance(output, Mapping) and "logits" in output:
        found = output["logits"]
    elif not isinstance(output, torch.Tensor) and hasattr(output, "logits"):
        found = output.logits
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        found = output[0]
    if not isinstance(found, torch.Tensor):
        keys = f" with keys {sorted(output)}" if isinstance(output, Mapping) else ""
        raise OodscopeError(
            f"the model returns {type(output).__name__}{keys}; capture needs logits [N, C]: return a tensor, "
            "a dict with 'logits', or an object with .logits"
        )
    if found.dim() != 2:
        raise OodscopeError(f"the model's logits have shape {list(found.shape)}; capture needs [N, C]")
    return found


def find_head(model: nn.Module, head: Union[str, nn.Module, None]) -> Optional[nn.Module]:
    """The head module named (a dotted path such as ``"fc"`` or ``"classifier.1"``) or given."""
    if head is None or isinstance(head, nn.Module):
        return head
    try:
        return model.get_submodule(head)
    except AttributeError:
        linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        hint = f" (its linear layers: {', '.join(linear[-5:])})" if linear else ""
        raise OodscopeError(
            f"the model has no submodule `{head}`{hint}: pass head= the final linear layer's name or the module, "
            "or head=None to capture logits only"
        ) from None


def _split_batch(batch: Any) -> tuple[Any, Any, Any]:
    """``x``, ``(x, y)``, ``(x, y, path)`` or a dict (``pixel_values``/``x``/``image``, ``labels``/``y``,
    ``path``/``paths``)."""
    if isinstance(batch, torch.Tensor):
        return batch, None, None
    if isinstance(batch, Mapping):
        x = next((batch[k] for k in ("pixel_values", "x", "image", "images", "input") if k in batch), None)
        if x is None:
            raise OodscopeError(f"a batch dict needs the images under 'pixel_values' or 'x'; it has {sorted(batch)}")
        y = next((batch[k] for k in ("labels", "label", "y") if k in batch), None)
        p = next((batch[k] for k in ("path", "paths") if k in batch), None)
        return x, y, p
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 3:
        items = list(batch) + [None] * (3 - len(batch))
        return items[0], items[1], items[2]
    raise OodscopeError(
        f"the loader yields {type(batch).__name__}; capture takes batches x, (x, y), (x, y, path) or a dict"
    )


def _perturbation(perturb: Any, channels: int) -> Optional[dict]:
    """``("odin", T, ε)`` or ``("odin", T, ε, std)`` (std: the loader's per-channel normalisation, so
    that ε is in pixel units as docs/methods.md defines it), or the same as a dict."""
    if perturb is None:
        return None
    if isinstance(perturb, Mapping):
        spec = dict(perturb)
    else:
        values = list(perturb)
        if len(values) not in (3, 4):
            raise OodscopeError('perturb takes ("odin", temperature, epsilon[, std])')
        spec = dict(zip(("method", "temperature", "epsilon", "std"), values))
    method = spec.get("method")
    if method not in _STEPPED:
        raise OodscopeError(f"perturb steps for {' or '.join(_STEPPED)}; got {method!r}")
    temperature, epsilon = float(spec.get("temperature", 1.0)), float(spec.get("epsilon", 0.0))
    if not temperature > 0 or not epsilon >= 0:
        raise OodscopeError(f"perturb needs temperature > 0 and epsilon ≥ 0; got T = {temperature}, ε = {epsilon}")
    std = spec.get("std")
    std = [1.0] * channels if std is None else [float(s) for s in np.atleast_1d(std)]
    if len(std) not in (1, channels) or min(std) <= 0:
        raise OodscopeError(f"perturb's std needs 1 or {channels} positive values; got {std}")
    return {"method": method, "temperature": temperature, "epsilon": epsilon, "std": std}


def _step(model: nn.Module, x: torch.Tensor, spec: dict) -> torch.Tensor:
    """ODIN's input step: ``x̃ = x − ε·sign(∇ₓ(−log softmax(ℓ(x)/T)_ŷ))`` with ε in pixel units, taken
    on the loader's (normalised) input as ``ε/σ_c`` per channel; one image's loss per image."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = logits_of(model(x))
        predicted = logits.argmax(dim=1, keepdim=True)
        loss = -torch.log_softmax(logits / spec["temperature"], dim=1).gather(1, predicted).sum()
        (gradient,) = torch.autograd.grad(loss, x)
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    std = torch.tensor(spec["std"], dtype=x.dtype, device=x.device).expand(x.shape[1]).reshape(shape)
    return (x - spec["epsilon"] * torch.sign(gradient) / std).detach()


def capture(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    head: Union[str, nn.Module, None] = "fc",
    device: Union[str, torch.device, None] = None,
    paths: Optional[Sequence[str]] = None,
    perturb: Any = None,
    classes: Optional[Sequence[str]] = None,
    blocks: Optional[Sequence[str]] = None,
) -> Outputs:
    """Runs ``model`` over ``loader`` in eval mode, under ``no_grad``, on the model's device (or
    ``device``), and records the logits, the head's input as features, the labels and the paths.

    ``perturb=("odin", T, ε[, std])`` scores the image after ODIN's input step instead (ε in pixel
    units; ``std`` the loader's normalisation): ``score("odin", outputs)`` then uses that T and ε.

    ``blocks=["layer3", "layer4"]`` also records those submodules' feature maps (forward hooks),
    reduced batch by batch as the command line reduces them (``Outputs.blocks``; the maps are not
    kept). rankfeat reads the last, which must be the map the features are pooled from.
    """
    if not isinstance(model, nn.Module):
        raise OodscopeError(f"capture needs a torch.nn.Module; got {type(model).__name__}")
    head_module = find_head(model, head)
    if device is None:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    device = torch.device(device)
    recorded: list[torch.Tensor] = []

    def record(_module: nn.Module, inputs: tuple, _output: Any) -> None:
        recorded.append(inputs[0].detach())

    hook = head_module.register_forward_hook(record) if head_module is not None else None
    block_names = [str(b) for b in blocks] if blocks else []
    maps: dict[str, torch.Tensor] = {}
    block_hooks = [
        _block_module(model, name).register_forward_hook(lambda _m, _i, out, name=name: maps.__setitem__(name, out))
        for name in block_names
    ]
    block_parts, block_widths = [], None
    was_training = model.training
    model.eval()
    logits_parts, feature_parts, label_parts, path_parts = [], [], [], []
    spec = None
    try:
        for batch in loader:
            x, y, p = _split_batch(batch)
            if not isinstance(x, torch.Tensor):
                raise OodscopeError(f"a batch's images must be a tensor; got {type(x).__name__}")
            x = x.to(device)
            if perturb is not None and spec is None:
                spec = _perturbation(perturb, x.shape[1] if x.dim() > 1 else 1)
            if spec is not None and spec["epsilon"] > 0:
                x = _step(model, x, spec)
            recorded.clear()
            maps.clear()
            with torch.no_grad():
                out = logits_of(model(x))
            if block_names:
                values, block_widths = _reduce(block_names, maps)
                block_parts.append(values)
            logits_parts.append(out.detach().float().cpu())
            if head_module is not None:
                if not recorded:
                    raise OodscopeError("the head was not called in the model's forward pass: pass the final linear layer as head=")
                feature_parts.append(recorded[-1].flatten(1).float().cpu())
            if y is not None:
                label_parts.append(torch.as_tensor(y).reshape(-1).cpu())
            if p is not None:
                path_parts.extend([p] if isinstance(p, str) else list(p))
    finally:
        if hook is not None:
            hook.remove()
        for block_hook in block_hooks:
            block_hook.remove()
        model.train(was_training)
    if not logits_parts:
        raise OodscopeError("the loader gave no batches")
    labels = torch.cat(label_parts).numpy() if label_parts else None
    if labels is not None and labels.shape[0] != sum(t.shape[0] for t in logits_parts):
        raise OodscopeError("some batches had labels and some did not")
    if paths is None and path_parts:
        paths = path_parts
    perturbation = None
    if spec is not None:
        perturbation = {k: spec[k] for k in ("method", "temperature", "epsilon")}
    features = torch.cat(feature_parts) if feature_parts else None
    reductions = None
    if block_names:
        values = np.concatenate(block_parts)
        last = sum(block_widths[:-1])
        pooled = features is not None and _close(values[:, last : last + block_widths[-1]], features.numpy())
        reductions = Blocks(block_names, block_widths, values, pooled)
    return Outputs(
        torch.cat(logits_parts),
        features,
        labels,
        paths,
        classes,
        perturbation,
        reductions,
    )


def _block_module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = ", ".join(n for n, _ in model.named_children())
        raise OodscopeError(f"blocks: the model has no submodule `{name}` (its top-level ones: {names})") from None


def _reduce(names: list[str], maps: dict) -> tuple[np.ndarray, list[int]]:
    """One batch's block maps reduced by the engine (spatial means, the last one's rank-1-free mean)."""
    missing = [n for n in names if n not in maps]
    if missing:
        raise OodscopeError(f"blocks: block `{missing[0]}` was not called in the model's forward pass")
    arrays = []
    for name in names:
        m = maps[name]
        if not isinstance(m, torch.Tensor) or m.dim() != 4:
            shape = list(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise OodscopeError(f"blocks: block `{name}` gives {shape}, not a feature map [N, C, H, W]")
        arrays.append(np.ascontiguousarray(m.detach().float().cpu().numpy()))
    values, widths = _native.reduce_blocks(names, arrays)
    return values, list(widths)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """As the command line's load probe: equal to 1e-4 of the largest |b|."""
    if a.shape != b.shape:
        return False
    return float(np.abs(a - b).max()) <= 1e-4 * max(float(np.abs(b).max()), 1e-12)
