"""The wheel as a user installs it: `pip install` into a second, fresh venv (not the project's),
imported from there, scoring as the project venv's install does. PyTorch and NumPy come from the
project venv through a .pth line placed after the fresh venv's own site-packages (no download
here), so the package itself is found only where pip put it. The extension needs no path of the
build machine: it finds libtorch through the `torch` imported first."""

from __future__ import annotations

import json
import subprocess
import sysconfig
import venv
from pathlib import Path

import numpy as np
import oodscope

from conftest import REPO

WHEELS = REPO / "target" / "wheels"

SCRIPT = """
import json, sys
import numpy as np
import oodscope
rng = np.random.default_rng(0)
outputs = oodscope.Outputs(logits=rng.normal(size=(64, 10)).astype(np.float32),
                           features=rng.normal(size=(64, 16)).astype(np.float32))
print(json.dumps({"file": oodscope.__file__, "version": oodscope.__version__,
                  "methods": len(oodscope.methods()),
                  "energy": oodscope.score("energy", outputs, temperature=2.0).tolist()}))
"""


def newest_wheel() -> Path:
    wheels = sorted(WHEELS.glob("oodscope-*.whl"), key=lambda p: p.stat().st_mtime)
    assert wheels, f"no wheel in {WHEELS}: scripts/python_package.sh builds it"
    return wheels[-1]


def test_the_wheel_installs_with_pip_into_a_fresh_venv_and_scores_as_the_project_install(tmp_path):
    wheel = newest_wheel()
    fresh = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=True).create(fresh)
    python = fresh / "bin" / "python"
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--disable-pip-version-check", wheel],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # torch and numpy from the project venv, after the fresh venv's own packages.
    (Path(purelib) / "zz_project_torch.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    shown = subprocess.run([python, "-m", "pip", "show", "oodscope"], capture_output=True, text=True, check=True)
    assert "Requires: numpy, torch" in shown.stdout, shown.stdout

    ran = subprocess.run([python, "-c", SCRIPT], capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    there = json.loads(ran.stdout.strip().splitlines()[-1])
    assert Path(there["file"]).is_relative_to(fresh), there["file"]
    assert there["version"] == oodscope.__version__
    assert there["methods"] == len(oodscope.methods())

    rng = np.random.default_rng(0)
    here = oodscope.Outputs(
        logits=rng.normal(size=(64, 10)).astype(np.float32),
        features=rng.normal(size=(64, 16)).astype(np.float32),
    )
    assert np.array_equal(np.asarray(there["energy"], dtype=np.float32), oodscope.score("energy", here, temperature=2.0))


def test_the_extension_needs_no_path_of_the_build_machine(tmp_path):
    """No RPATH / RUNPATH, and every needed library by its soname: libtorch is the one the
    user's `import torch` loaded (torch-sys's header paths in assertion messages are only text)."""
    import zipfile

    with zipfile.ZipFile(newest_wheel()) as wheel:
        native = next(n for n in wheel.namelist() if n.startswith("oodscope/_native"))
        wheel.extract(native, tmp_path)
    dynamic = subprocess.run(["readelf", "-d", tmp_path / native], capture_output=True, text=True, check=True).stdout
    assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, dynamic
    needed = [line.split("[")[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line]
    assert "libtorch_cpu.so" in needed and all("/" not in n for n in needed), needed
