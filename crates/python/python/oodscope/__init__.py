"""oodscope for Python: out-of-distribution detection for PyTorch image classifiers.

oodscope's engine runs in this process (a Rust extension module), so every score here is the
command line's, bit for bit. Bring outputs of any eager model (``capture``) or arrays of your own
(``Outputs``), fit ID training statistics (``Fit.from_outputs``), score with any method that needs
no input gradient (``score``), measure (``metrics``, ``compare``) and use saved detectors
(``Detector.load``). The manual: docs/python.md in the repository.
"""

from __future__ import annotations

_TORCH_RELEASE = "2.13"
"""The torch release this wheel was built against (its libtorch is linked, not bundled)."""


def _check_torch() -> None:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"oodscope needs PyTorch {_TORCH_RELEASE}.x (it links its libtorch): pip install 'torch=={_TORCH_RELEASE}.*'"
        ) from e
    found = torch.__version__.split("+")[0]
    if not (found == _TORCH_RELEASE or found.startswith(_TORCH_RELEASE + ".")):
        raise ImportError(
            f"oodscope was built for PyTorch {_TORCH_RELEASE}.x and this environment has torch {torch.__version__}: "
            f"install torch {_TORCH_RELEASE}.x here, or build oodscope against torch {found} (scripts/python_package.sh)"
        )


_check_torch()

from ._native import OodscopeError, __version__  # noqa: E402
from ._outputs import Blocks, Outputs  # noqa: E402
from ._capture import capture  # noqa: E402
from ._api import Detector, Fit, compare, methods, metrics, save_results, score  # noqa: E402

__all__ = [
    "Blocks",
    "Detector",
    "Fit",
    "OodscopeError",
    "Outputs",
    "__version__",
    "capture",
    "compare",
    "methods",
    "metrics",
    "save_results",
    "score",
]
