"""Type stubs of oodscope's extension module (crates/python/src): the engine's functions on arrays."""

from os import PathLike
from typing import Optional, Union

import numpy as np
import numpy.typing as npt

__version__: str

class OodscopeError(ValueError):
    """A request oodscope cannot carry out, with the reason in one line."""

def methods(classes: int = 10, features: Optional[int] = None) -> str:
    """Every method as JSON: name, title, group, needs and parameters."""

def score(
    method: str,
    logits: npt.NDArray[np.float32],
    features: Optional[npt.NDArray[np.float32]],
    classes: list[str],
    fit: Optional[NativeFit],
    head: Optional[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]],
    params: list[tuple[str, float]],
) -> npt.NDArray[np.float32]:
    """Each row's score under `method` (higher = more in-distribution)."""

def metrics(id_scores: npt.NDArray[np.float32], ood_scores: npt.NDArray[np.float32]) -> dict[str, float]:
    """The detection metrics of ID against OOD scores."""

def fit_arrays(
    path: Union[str, PathLike[str]],
    logits: npt.NDArray[np.float32],
    features: Optional[npt.NDArray[np.float32]],
    labels: Optional[npt.NDArray[np.int64]],
    head: Optional[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]],
    classes: list[str],
    source: str,
    class_covariances: bool = False,
) -> NativeFit:
    """Writes the fit of these outputs at `path` and loads it back."""

def save_results(
    path: Union[str, PathLike[str]],
    sets: list[
        tuple[
            str,
            str,
            npt.NDArray[np.float32],
            Optional[npt.NDArray[np.float32]],
            Optional[npt.NDArray[np.int64]],
            Optional[list[str]],
        ]
    ],
    classes: list[str],
    fit: Optional[NativeFit],
    extra: list[tuple[str, npt.NDArray[np.float32]]],
) -> None:
    """Writes the sets as an oodscope results file (Parquet)."""

class NativeFit:
    @staticmethod
    def load(path: Union[str, PathLike[str]]) -> NativeFit: ...
    def info_json(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def has_head(self) -> bool: ...
    @property
    def tensors(self) -> list[str]: ...

class NativeDetector:
    @staticmethod
    def load(path: Union[str, PathLike[str]], device: str = "cpu") -> NativeDetector: ...
    def manifest_json(self) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def threshold(self) -> float: ...
    def check_paths(self, paths: list[str], batch_size: int = 64) -> str: ...
    def check_images(self, images: list[bytes]) -> str: ...
    def check_outputs(
        self, logits: npt.NDArray[np.float32], features: Optional[npt.NDArray[np.float32]] = None
    ) -> tuple[
        npt.NDArray[np.float32],
        npt.NDArray[np.bool_],
        npt.NDArray[np.float64],
        npt.NDArray[np.int64],
        npt.NDArray[np.float32],
    ]: ...
