"""Shared fixtures: real image files of every kind ingest must handle, written on the fly."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"


def noise_image(width: int = 32, height: int = 24, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    if channels == 1:
        pixels = pixels[:, :, 0]
    if mode == "CMYK":
        return Image.frombytes("CMYK", (width, height), pixels.tobytes())
    return Image.fromarray(pixels)


def write_jpeg(path: Path, width: int = 32, height: int = 24, seed: int = 0, **save_args: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_image(width, height, seed=seed).save(path, format="JPEG", **save_args)
    return path


def write_png(path: Path, width: int = 32, height: int = 24, mode: str = "RGB", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_image(width, height, mode=mode, seed=seed).save(path, format="PNG")
    return path


def write_png16(path: Path, width: int = 20, height: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.arange(width * height, dtype=np.uint16).reshape(height, width) * 300).astype(np.uint16)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def write_cmyk_jpeg(path: Path, width: int = 30, height: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_image(width, height, mode="CMYK").save(path, format="JPEG")
    return path


def write_exif_rotated_jpeg(path: Path, width: int = 40, height: int = 20, orientation: int = 6) -> Path:
    """A photo stored landscape whose EXIF says 'rotate 90°': displayed as portrait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    noise_image(width, height).save(path, format="JPEG", exif=exif.tobytes())
    return path


def truncate(path: Path, keep_fraction: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def image_bytes(fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    noise_image(**kwargs).save(buffer, format=fmt)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """SRC/<class>/*.jpg|png with two classes."""
    src = tmp_path / "src"
    for i in range(3):
        write_jpeg(src / "cat" / f"cat_{i}.jpg", seed=i)
        write_png(src / "dog" / f"dog_{i}.png", seed=10 + i)
    return src


@pytest.fixture
def shared_testdata() -> Path:
    if not SHARED_TESTDATA.is_dir():
        pytest.skip("../shared/testdata is not present")
    return SHARED_TESTDATA


@pytest.fixture
def allow_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust image roots outside the data set, as a user does with --allow-outside: for tests whose
    data sets (shared, read-only, or session fixtures) cannot hold their manifests beside them."""
    monkeypatch.setenv("DATAKIT_ALLOW_OUTSIDE", "1")


# ---------------------------------------------------------------------------------------------
# training: real generated images, made once per session


def _subset_manifest(full: Path, out: Path, per_class: int) -> Path:
    """A manifest over the first ``per_class`` images of each class of ``full``, same image files."""
    from datakit.manifest import load_manifest, save_manifest

    m = load_manifest(full)
    images = m.images.sort_values("path").groupby("label", sort=True).head(per_class)
    m.images = images.reset_index(drop=True)
    m.image_root = str(m.root())
    save_manifest(m, out)
    return out


@pytest.fixture(scope="session")
def digits_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's 1797 8x8 digits as PNG class folders, ingested (no splits)."""
    from datakit.ingest import ingest
    from datakit.samples import sample

    root = tmp_path_factory.mktemp("digits")
    result = sample("digits", root / "data", show_progress=False)
    ingest(result.image_folder, root / "manifest", workers=2, show_progress=False)
    return root / "manifest"


@pytest.fixture(scope="session")
def digits_small(digits_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 digits per class (600 images): enough to learn, quick to train."""
    # beside the full manifest: a manifest may reach its images at most one folder up
    return _subset_manifest(digits_manifest, digits_manifest.parent / "small.manifest", 60)


# a CNN small enough to train a few epochs on 600 8x8 digits in about a second
def fit_loss_parts(model, images, targets, steps: int, lr: float = 3e-3) -> tuple[dict, dict]:  # noqa: ANN001
    """Full-batch AdamW steps on a model with ``loss(outputs, targets)`` (the detectors and the
    instance model): its loss parts (floats) at the first step and at the last."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    first = last = {}
    for step in range(steps):
        parts = model.loss(model(images), targets)
        optimizer.zero_grad()
        parts["loss"].backward()
        optimizer.step()
        last = {k: float(v.detach()) for k, v in parts.items()}
        first = last if step == 0 else first
    return first, last


TINY_TRAIN = {
    "data.image_size": 8,
    "model.conv.filters": [16, 32],
    "model.head.dense": [],
    "model.head.dropout": 0.0,
    "train.batch_size": 32,
    "train.threads": 1,
    "optim.lr": 0.01,
    "schedule.name": "none",
}


@pytest.fixture(scope="session")
def digits_run(digits_small: Path, tmp_path_factory: pytest.TempPathFactory):
    """A run trained 6 epochs on ``digits_small`` (generated 70/15/15 split): (TrainResult, manifest)."""
    from datakit.training import train

    output = tmp_path_factory.mktemp("digits_run") / "run"
    result = train(digits_small, output=output, show_progress=False, epochs=6, **TINY_TRAIN)
    return result


def default_sigint() -> None:
    """``preexec_fn`` for child processes that must see Ctrl-C as Python normally does.

    A job started in the background by a non-interactive shell inherits SIGINT as ignored, and
    Python then never raises KeyboardInterrupt; restoring the default keeps such tests meaningful.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
