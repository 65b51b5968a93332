"""Outputs: a model's logits (and penultimate features, labels, paths) for a set of images."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ._native import OodscopeError


def as_matrix(values: Any, what: str) -> np.ndarray:
    """A contiguous float32 ``[N, K]`` array from a numpy array, a torch tensor or nested lists."""
    if values is None:
        raise OodscopeError(f"{what} are missing")
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().float().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "fiub":
        raise OodscopeError(f"{what} must be numbers, not {array.dtype}")
    if array.ndim != 2:
        raise OodscopeError(f"{what} must have shape [N, K] (one row per image); got shape {list(array.shape)}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise OodscopeError(f"{what} of row {row} are NaN or infinite: every value must be finite")
    return array


def as_vector(values: Any, what: str, dtype: Any = np.float32) -> np.ndarray:
    """A contiguous 1-D array."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise OodscopeError(f"{what} must be one-dimensional; got shape {list(array.shape)}")
    return np.ascontiguousarray(array, dtype=dtype)


#: The poles 1…GRAM_POLES at which gram measures each block (the engine's `model::blocks::GRAM_POLES`).
GRAM_POLES = 10


class Blocks:
    """Inner blocks' reductions for N images, as ``capture(blocks=[…])`` makes them: ``values``
    ``[N, Σ C_b + C_last + GRAM_POLES·Σ C_b]`` (each block's spatial mean, the last block's mean after
    removing its rank-1 part, then each block's Gram row sums at poles 1…GRAM_POLES), each block's
    ``names`` and channel ``widths``, and ``pooled``: whether the last block's spatial mean equals the
    features (the map they are pooled from, which rankfeat needs)."""

    def __init__(self, names: Sequence[str], widths: Sequence[int], values: Any, pooled: bool) -> None:
        self.names = [str(n) for n in names]
        self.widths = [int(w) for w in widths]
        self.values = as_matrix(values, "block reductions")
        self.pooled = bool(pooled)
        expected = (1 + GRAM_POLES) * sum(self.widths) + (self.widths[-1] if self.widths else 0)
        if len(self.names) != len(self.widths) or not self.widths or self.values.shape[1] != expected:
            raise OodscopeError(
                f"block reductions of width {self.values.shape[1]} for blocks {self.names} of widths {self.widths}"
            )

    def rows(self, index: Any) -> "Blocks":
        return Blocks(self.names, self.widths, self.values[index], self.pooled)


class Outputs:
    """A model's outputs for N images: ``logits`` ``[N, C]``, and optionally ``features`` ``[N, D]``
    (the head's input), ``labels`` ``[N]`` (true classes, for fits), ``paths`` (N names),
    ``classes`` (C class names) and ``blocks`` (inner blocks' reductions, from
    ``capture(blocks=[…])``). numpy arrays or torch tensors; stored as float32 numpy arrays."""

    def __init__(
        self,
        logits: Any,
        features: Any = None,
        labels: Any = None,
        paths: Optional[Sequence[str]] = None,
        classes: Optional[Sequence[str]] = None,
        perturbation: Optional[dict] = None,
        blocks: Optional[Blocks] = None,
    ) -> None:
        self.logits = as_matrix(logits, "logits")
        n, c = self.logits.shape
        if n == 0 or c == 0:
            raise OodscopeError(f"logits must have at least one row and one column; got shape [{n}, {c}]")
        self.features = None if features is None else as_matrix(features, "features")
        if self.features is not None and self.features.shape[0] != n:
            raise OodscopeError(
                f"the features have {self.features.shape[0]} rows and the logits {n}: give one feature row per logit row"
            )
        self.labels = None
        if labels is not None:
            labels = as_vector(labels, "labels", np.int64)
            if labels.shape[0] != n:
                raise OodscopeError(f"{labels.shape[0]} labels for {n} rows: give one label per row")
            if labels.size and (labels.min() < 0 or labels.max() >= c):
                raise OodscopeError(f"labels must be class indices from 0 to {c - 1}; got {labels.min()} to {labels.max()}")
            self.labels = labels
        self.paths = None if paths is None else [str(p) for p in paths]
        if self.paths is not None and len(self.paths) != n:
            raise OodscopeError(f"{len(self.paths)} paths for {n} rows: give one path per row")
        self.classes = [str(k) for k in classes] if classes is not None else [str(k) for k in range(c)]
        if len(self.classes) != c:
            raise OodscopeError(f"{len(self.classes)} class names for {c} logit columns")
        self.perturbation = dict(perturbation) if perturbation else None
        if blocks is not None and (not isinstance(blocks, Blocks) or blocks.values.shape[0] != n):
            raise OodscopeError("blocks must be the Blocks of these rows (capture them with capture(blocks=[…]))")
        self.blocks = blocks

    def __len__(self) -> int:
        return self.logits.shape[0]

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    @property
    def feature_width(self) -> Optional[int]:
        return None if self.features is None else self.features.shape[1]

    def subset(self, rows: Any) -> "Outputs":
        """The outputs of some rows (a slice, indices or a boolean mask)."""
        index = np.arange(len(self))[rows]
        return Outputs(
            self.logits[index],
            None if self.features is None else self.features[index],
            None if self.labels is None else self.labels[index],
            None if self.paths is None else [self.paths[i] for i in index],
            self.classes,
            self.perturbation,
            None if self.blocks is None else self.blocks.rows(index),
        )

    def __repr__(self) -> str:
        parts = [f"{len(self)} rows", f"{self.num_classes} classes"]
        if self.features is not None:
            parts.append(f"features of width {self.feature_width}")
        if self.labels is not None:
            parts.append("labels")
        if self.paths is not None:
            parts.append("paths")
        if self.perturbation:
            parts.append(f"perturbed for {self.perturbation['method']}")
        if self.blocks is not None:
            parts.append(f"blocks {', '.join(self.blocks.names)}")
        return f"Outputs({', '.join(parts)})"
