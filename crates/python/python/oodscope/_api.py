"""Fits, scores, metrics, comparisons and saved detectors on outputs, by oodscope's engine."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import OodscopeError
from ._outputs import Outputs, as_matrix, as_vector

PathLike = Union[str, os.PathLike]
_STEPPED = ("odin", "energy")


def methods(classes: int = 10, features: Optional[int] = None) -> list[dict]:
    """Every method: ``name``, ``title``, ``group``, ``needs`` (features, head, fit, gradient: it can
    take an input step, ε > 0, …), ``gradient_at_defaults`` (it takes one at its default ε: ODIN) and
    ``params`` (name, default, range, tuning grid) for a model of this many classes and features."""
    return json.loads(_native.methods(classes, features))


def _head_arrays(head: Any) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """``(W [C, D], b [C])`` from a linear module or a pair of arrays."""
    if head is None:
        return None
    if hasattr(head, "weight") and hasattr(head, "bias"):
        if head.bias is None:
            w = as_matrix(head.weight, "the head's weight")
            return w, np.zeros(w.shape[0], dtype=np.float32)
        return as_matrix(head.weight, "the head's weight"), as_vector(head.bias, "the head's bias")
    if isinstance(head, (tuple, list)) and len(head) == 2:
        return as_matrix(head[0], "the head's W"), as_vector(head[1], "the head's b")
    raise OodscopeError(f"head must be a linear module (weight and bias) or a pair (W, b); got {type(head).__name__}")


def _as_outputs(outputs: Any) -> Outputs:
    return outputs if isinstance(outputs, Outputs) else Outputs(outputs)


class Fit:
    """Statistics of ID training outputs that the fit methods read (class means, covariances, the
    KNN bank, ViM's space, ReAct's percentiles, …): the same file as ``oodscope fit``."""

    def __init__(self, native: Any, owned_dir: Optional[str] = None) -> None:
        self._native = native
        if owned_dir is not None:
            weakref.finalize(self, shutil.rmtree, owned_dir, True)

    @classmethod
    def from_outputs(
        cls, outputs: Outputs, head: Any = None, *, source: str = "arrays", class_covariances: bool = False
    ) -> "Fit":
        """Fits the outputs of ID training images (their ``labels`` when given, else each row's
        predicted class). ``head``: the final linear layer (module or ``(W, b)``), kept in the fit so
        that head methods (ViM, ReAct, ASH, …) score with it. ``class_covariances``: also keep each
        class's covariance, for ``gmm`` (C·D² float64 values; more than 4 GB is refused). Outputs
        captured with ``blocks=[…]`` also give each block's class means and shared covariance
        (``multi-mahalanobis``)."""
        outputs = _as_outputs(outputs)
        owned = tempfile.mkdtemp(prefix="oodscope-fit-")
        try:
            native = _native.fit_arrays(
                os.path.join(owned, "fit.safetensors"),
                outputs.logits,
                outputs.features,
                outputs.labels,
                _head_arrays(head),
                outputs.classes,
                source,
                class_covariances,
                None if outputs.blocks is None else (outputs.blocks.values, outputs.blocks.widths),
            )
        except BaseException:
            shutil.rmtree(owned, True)
            raise
        return cls(native, owned)

    @classmethod
    def load(cls, path: PathLike) -> "Fit":
        """Loads a fit file (from ``Fit.save`` or ``oodscope fit``), checking its digest."""
        return cls(_native.NativeFit.load(os.fspath(path)))

    def save(self, path: PathLike) -> Path:
        """Writes the fit file at ``path`` (whole or not at all)."""
        target = Path(path)
        if target.exists() and target.resolve() == Path(self._native.path).resolve():
            return target
        if target.is_dir():
            raise OodscopeError(f"{target} is a folder: give a file name for the fit")
        temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            shutil.copyfile(self._native.path, temporary)
            os.replace(temporary, target)
        except OSError as e:
            temporary.unlink(missing_ok=True)
            raise OodscopeError(f"cannot write {target}: {e.strerror or e}") from None
        return target

    @property
    def info(self) -> dict:
        """The fit's provenance: images, classes, counts, feature width, hashes, …"""
        return json.loads(self._native.info_json())

    @property
    def has_head(self) -> bool:
        return self._native.has_head

    @property
    def tensors(self) -> list[str]:
        """The names of the statistics the fit file holds (``class_covariances`` only when made with
        them)."""
        return list(self._native.tensors)

    def __repr__(self) -> str:
        info = self.info
        head = ", with the head" if self.has_head else ""
        return f"Fit({info['images']} images, {len(info['classes'])} classes, features {info['feature_width']}{head})"


def _params_for(method: str, outputs: Outputs, params: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The parameters sent to the engine; outputs captured after an input step score at ε = 0 with
    the step's temperature."""
    given = {k: float(v) for k, v in params.items()}
    step = outputs.perturbation
    if step is None:
        return list(given.items())
    if method not in _STEPPED:
        raise OodscopeError(
            f"these outputs were captured after {step['method']}'s input step; `{method}` needs clean outputs: capture without perturb"
        )
    for name, value in (("temperature", step["temperature"]), ("epsilon", step["epsilon"])):
        if name in given and given[name] != value:
            raise OodscopeError(f"these outputs were captured with {name} = {value}; `{method}` was asked for {given[name]}")
    given["temperature"] = step["temperature"]
    given["epsilon"] = 0.0
    return list(given.items())


def score(method: str, outputs: Any, fit: Optional[Fit] = None, *, head: Any = None, **params: Any) -> np.ndarray:
    """Each row's score under ``method`` (higher = more in-distribution), with the command line's
    definitions, names and parameters (``oodscope.methods()`` lists them)."""
    outputs = _as_outputs(outputs)
    if fit is not None and not isinstance(fit, Fit):
        raise OodscopeError(f"fit must be an oodscope.Fit; got {type(fit).__name__}")
    blocks = outputs.blocks
    needs = next((m["needs"] for m in methods() if m["name"] == method.lower()), {})
    if needs.get("pooled_block") and blocks is not None and not blocks.pooled:
        raise OodscopeError(
            f"`{method}` needs the last of the captured blocks to be the map the features are pooled from (its "
            f"spatial mean is the features); `{blocks.names[-1]}` is not: list the block before the global pooling last"
        )
    return _native.score(
        method,
        outputs.logits,
        outputs.features,
        outputs.classes,
        None if fit is None else fit._native,
        _head_arrays(head),
        _params_for(method, outputs, params),
        None if blocks is None else (blocks.values, blocks.widths),
    )


def metrics(id_scores: Any, ood_scores: Any) -> dict:
    """AUROC, FPR at 95% TPR, detection error, AUPR-In and AUPR-Out of ID against OOD scores (ID is
    the positive class; higher = more in-distribution), as in oodscope's reports."""
    return dict(_native.metrics(as_vector(id_scores, "id_scores"), as_vector(ood_scores, "ood_scores")))


_METRICS = ("auroc", "fpr_at_95_tpr", "detection_error", "aupr_in", "aupr_out")


def _flat_sets(ood: Any) -> dict[str, Outputs]:
    if not isinstance(ood, Mapping) or not ood:
        raise OodscopeError("ood takes {name: outputs} or {group: {name: outputs}}")
    sets: dict[str, Outputs] = {}
    for name, value in ood.items():
        if isinstance(value, Mapping):
            for inner, outputs in value.items():
                sets[f"{name}/{inner}"] = _as_outputs(outputs)
        else:
            sets[str(name)] = _as_outputs(value)
    return sets


def compare(
    id: Any,
    ood: Any,
    fit: Optional[Fit] = None,
    methods: Union[str, Sequence[str]] = "all",
    params: Optional[Mapping[str, Mapping[str, Any]]] = None,
    *,
    head: Any = None,
):
    """A leaderboard: one row per method, columns ``(set, metric)`` for every OOD set and ``mean``
    (groups ``{group: {name: outputs}}`` get a mean of their own), best mean AUROC first. With
    ``methods="all"`` every method these outputs can score; the others are listed with the reason in
    ``df.attrs["skipped"]``."""
    import pandas as pd

    id_outputs = _as_outputs(id)
    sets = _flat_sets(ood)
    params = dict(params or {})
    fit_info = fit.info if fit is not None else None
    fit_tensors = set(fit.tensors) if fit is not None else set()
    has_head = head is not None or (fit is not None and fit.has_head)
    chosen, skipped = [], {}
    listing = _native_methods(id_outputs)
    if methods == "all":
        for m in listing:
            why = _why_not(m, id_outputs, fit_info, fit_tensors, has_head, params.get(m["name"], {}))
            if why:
                skipped[m["name"]] = why
            else:
                chosen.append(m["name"])
    else:
        chosen = [methods] if isinstance(methods, str) else list(methods)
    rows, index = [], []
    for method in chosen:
        p = params.get(method, {})
        id_scores = score(method, id_outputs, fit, head=head, **p)
        row: dict[tuple[str, str], float] = {}
        for name, outputs in sets.items():
            m = metrics(id_scores, score(method, outputs, fit, head=head, **p))
            row.update({(name, k): m[k] for k in _METRICS})
        groups = sorted({name.split("/")[0] for name in sets if "/" in name})
        for group in groups + ["mean"]:
            members = [n for n in sets if group == "mean" or n.startswith(group + "/")]
            row.update({(group, k): float(np.mean([row[(n, k)] for n in members])) for k in _METRICS})
        rows.append(row)
        index.append(method)
    frame = pd.DataFrame(rows, index=pd.Index(index, name="method"))
    if len(frame):
        frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["set", "metric"])
        frame = frame.sort_values(("mean", "auroc"), ascending=False, kind="stable")
    frame.attrs["skipped"] = skipped
    return frame


def _native_methods(outputs: Outputs) -> list[dict]:
    return methods(outputs.num_classes, outputs.feature_width)


def _why_not(
    method: dict, outputs: Outputs, fit_info: Optional[dict], fit_tensors: set, has_head: bool, params: Mapping
) -> str:
    """Why ``method`` cannot score these outputs, or "" when it can."""
    needs = method["needs"]
    if needs["ensemble"]:
        return "needs a leave-out ensemble of models"
    if needs["confidence"]:
        return "needs a model's confidence branch"
    if needs["features"] and outputs.features is None:
        return "needs features"
    if needs["blocks"] and outputs.blocks is None:
        return "needs inner blocks: capture with blocks=[…]"
    if needs["pooled_block"] and not outputs.blocks.pooled:
        return "needs the block the features are pooled from, captured last in blocks=[…]"
    if needs["head"] and not has_head:
        return "needs the head: head=(W, b), or a fit made with it"
    if needs["fit"] and fit_info is None:
        return "needs a fit (Fit.from_outputs)"
    lacking = [t for t in method["fit_tensors"] if t not in fit_tensors]
    if needs["fit"] and lacking:
        if "class_covariances" in lacking:
            return "needs per-class covariances: Fit.from_outputs(..., class_covariances=True)"
        return f"needs statistics this fit lacks ({', '.join(lacking)}): make it again with Fit.from_outputs"
    if outputs.perturbation is not None and method["name"] not in _STEPPED:
        return "needs clean outputs (these were captured after an input step)"
    epsilon = {p["name"]: p["default"] for p in method["params"]}.get("epsilon", 0.0)
    if outputs.perturbation is None and float(params.get("epsilon", epsilon)) > 0:
        return "needs an input step: capture with perturb=(method, T, ε), or give epsilon=0"
    return ""


def save_results(
    path: PathLike,
    id: Any,
    ood: Any,
    fit: Optional[Fit] = None,
    *,
    scores: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Writes outputs as an oodscope results file (Parquet, written whole or not at all) that the
    window (``oodscope --results FILE``) and ``oodscope compare --from FILE`` / ``score --from FILE``
    open, scoring every method the outputs (and ``--fit``, with its head) allow. ``id``: outputs, or
    ``{name: outputs}``; ``ood``: ``{name: outputs}`` or ``{group: {name: outputs}}`` (sets named
    ``group/name``). ``scores``: score columns of your own (``{name: array}``, one value per row of
    every set, ID sets first, in order), shown as external methods."""
    id_sets = {"id": _as_outputs(id)} if not isinstance(id, Mapping) else {str(k): _as_outputs(v) for k, v in id.items()}
    ood_sets = _flat_sets(ood)
    ordered = [(name, "id", o) for name, o in id_sets.items()] + [(name, "ood", o) for name, o in ood_sets.items()]
    if not id_sets:
        raise OodscopeError("save_results needs at least one ID set")
    total = sum(len(o) for _, _, o in ordered)
    columns = []
    for name, values in (scores or {}).items():
        values = as_vector(values, f"score column `{name}`")
        if values.shape[0] != total:
            raise OodscopeError(f"score column `{name}` has {values.shape[0]} values for {total} rows (every set, ID first)")
        columns.append((str(name), values))
    first = ordered[0][2]
    target = Path(path)
    _native.save_results(
        os.fspath(target),
        [(name, role, o.logits, o.features, o.labels, o.paths) for name, role, o in ordered],
        first.classes,
        None if fit is None else fit._native,
        columns,
    )
    return target


class Detector:
    """A saved detector (``oodscope detector save``, or ``tune``/``compare --save-detector``): a
    method, its fit, the threshold δ with its rule and calibration scores, and the model."""

    def __init__(self, native: Any) -> None:
        self._native = native

    @classmethod
    def load(cls, path: PathLike, device: str = "cpu") -> "Detector":
        """Loads and checks a detector file (digest, model hash, fit) on ``device``."""
        return cls(_native.NativeDetector.load(os.fspath(path), device))

    @property
    def manifest(self) -> dict:
        return json.loads(self._native.manifest_json())

    @property
    def threshold(self) -> float:
        """δ: a score ≥ δ is in-distribution (``id``), below it out-of-distribution (``ood``)."""
        return self._native.threshold

    @property
    def classes(self) -> list[str]:
        return list(self._native.classes)

    def check(self, items: Any, *, batch_size: int = 64) -> list[dict]:
        """Verdicts as ``oodscope check`` prints them: ``{path, verdict, score, p_value, class,
        class_index, probability}`` or ``{path, skipped}``. ``items``: image paths (a path or a list
        of them) or encoded images (``bytes``, as a server receives them; records carry ``index``)
        scored by the detector's model, or ``Outputs`` of that model captured in Python."""
        if isinstance(items, Outputs):
            return self._check_outputs(items)
        if isinstance(items, (bytes, bytearray, memoryview, str, os.PathLike)):
            items = [items]
        items = list(items)
        if items and all(isinstance(i, (bytes, bytearray, memoryview)) for i in items):
            return json.loads(self._native.check_images([bytes(i) for i in items]))
        if batch_size < 1:
            raise OodscopeError("batch_size must be at least 1")
        return json.loads(self._native.check_paths([os.fspath(p) for p in items], batch_size))

    def _check_outputs(self, outputs: Outputs) -> list[dict]:
        if outputs.perturbation is not None:
            raise OodscopeError("a detector checks clean outputs: capture without perturb")
        scores, is_ood, p_values, classes, probabilities = self._native.check_outputs(outputs.logits, outputs.features)
        names = self.classes
        paths = outputs.paths or [None] * len(outputs)
        return [
            {
                "path": path,
                "verdict": "ood" if ood else "id",
                "score": float(s),
                "p_value": float(p),
                "class": names[c] if c < len(names) else str(c),
                "class_index": int(c),
                "probability": float(prob),
            }
            for path, s, ood, p, c, prob in zip(paths, scores, is_ood, p_values, classes, probabilities)
        ]

    def __repr__(self) -> str:
        m = self.manifest
        return f"Detector({m['name']}: {m['method']['method']} , δ = {self.threshold:g})"
