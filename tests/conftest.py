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
