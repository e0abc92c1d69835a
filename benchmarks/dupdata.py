"""Generated images of distinct content, and planted transformed copies, for duplicate benchmarks.

Content comes from real photos on this machine (the images scikit-image ships in
``skimage/data`` that are on disk, and scikit-learn's two sample photos) and from generated
textures: random crops at random scales and orientations, channel permutations, mixes of two
crops, and textures blended over crops. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

TRANSFORMS = ("resize", "jpeg50", "crop5", "brightness", "hflip")
# synthetic or near-uniform pictures whose crops all look alike: not used as content
SKIP = {"chessboard_GRAY", "chessboard_RGB", "color", "logo", "phantom", "page", "text", "horse", "clock_motion",
        "hubble_deep_field", "microaneurysms", "cell", "no_time_for_that_tiny"}
MAX_IOU = 0.15  # a crop overlapping an earlier crop of the same photo more than this is refused


def photos() -> list[np.ndarray]:
    """RGB uint8 photos available offline (skimage.data files on disk, sklearn sample images)."""
    out = []
    try:
        import skimage.data

        folder = Path(skimage.data.__file__).parent
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in (".png", ".jpg") or path.stem in SKIP:
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None or min(image.shape[:2]) < 200:
                continue
            out.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    except ImportError:
        pass
    from sklearn.datasets import load_sample_images

    out.extend(np.asarray(img) for img in load_sample_images().images)
    return out


def texture(rng: np.random.Generator, side: int) -> np.ndarray:
    """Coloured band-limited noise with a random spectrum slope and orientation bias."""
    freq_y = np.fft.fftfreq(side)[:, None]
    freq_x = np.fft.fftfreq(side)[None, :]
    angle = rng.uniform(0, np.pi)
    stretch = rng.uniform(1, 4)
    fx = freq_x * np.cos(angle) - freq_y * np.sin(angle)
    fy = (freq_x * np.sin(angle) + freq_y * np.cos(angle)) * stretch
    radius = np.sqrt(fx ** 2 + fy ** 2) + 1.0 / side
    spectrum = radius ** -rng.uniform(1.2, 2.5)
    channels = []
    for _ in range(3):
        phase = np.exp(2j * np.pi * rng.random((side, side)))
        field = np.real(np.fft.ifft2(spectrum * phase))
        channels.append((field - field.mean()) / (field.std() + 1e-9))
    mix = rng.normal(size=(3, 3)) * 0.5 + np.eye(3)
    img = np.einsum("chw,dc->hwd", np.array(channels), mix)
    img = img * rng.uniform(25, 60) + rng.uniform(60, 190, size=3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _max_iou(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> float:
    if not others:
        return 0.0
    ax, ay, aw, ah = box
    o = np.array(others, dtype=np.float64)
    iw = np.clip(np.minimum(ax + aw, o[:, 0] + o[:, 2]) - np.maximum(ax, o[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay + ah, o[:, 1] + o[:, 3]) - np.maximum(ay, o[:, 1]), 0, None)
    inter = iw * ih
    return float((inter / (aw * ah + o[:, 2] * o[:, 3] - inter)).max())


class Crops:
    """Crops of the photos that never overlap an earlier crop of the same photo by more than MAX_IOU."""

    def __init__(self, sources: list[np.ndarray]) -> None:
        self.sources = sources
        self.used: list[list[tuple[int, int, int, int]]] = [[] for _ in sources]

    def take(self, rng: np.random.Generator, side: int) -> np.ndarray | None:
        for _ in range(30):
            k = int(rng.integers(len(self.sources)))
            photo = self.sources[k]
            h, w = photo.shape[:2]
            size = int(rng.uniform(0.12, 0.6) * min(h, w))
            aspect = rng.uniform(0.75, 1.33)
            ch, cw = max(16, min(h, int(size * aspect))), max(16, min(w, int(size / aspect)))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            box = (x, y, cw, ch)
            if _max_iou(box, self.used[k]) <= MAX_IOU:
                self.used[k].append(box)
                return _orient(rng, photo[y:y + ch, x:x + cw], side)
        return None


def _orient(rng: np.random.Generator, crop: np.ndarray, side: int) -> np.ndarray:
    crop = np.rot90(crop, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = crop[:, :, rng.permutation(3)]
    return cv2.resize(np.ascontiguousarray(crop), (side, side), interpolation=cv2.INTER_AREA)


def distinct_image(rng: np.random.Generator, crops: Crops, side: int = 256) -> np.ndarray:
    """One RGB picture: a fresh crop, a mix of two, a texture, or a texture over a crop.

    When the photos run out of fresh regions, textures (random phases: never alike) take over.
    """
    kind = rng.random()
    a = crops.take(rng, side) if kind < 0.85 else None
    if a is None:
        return texture(rng, side)
    if kind < 0.4:
        return a
    other = crops.take(rng, side) if kind < 0.7 else None
    other = texture(rng, side) if other is None else other
    t = rng.uniform(0.35, 0.65)
    return np.clip(a.astype(np.float32) * t + other.astype(np.float32) * (1 - t), 0, 255).astype(np.uint8)


def transformed(rng: np.random.Generator, image: np.ndarray, kind: str) -> tuple[np.ndarray, int]:
    """(copy, JPEG quality to save it with) for one of TRANSFORMS."""
    h, w = image.shape[:2]
    if kind == "resize":
        scale = rng.uniform(0.4, 0.8) if rng.random() < 0.7 else rng.uniform(1.2, 1.6)
        return cv2.resize(image, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA), 95
    if kind == "jpeg50":
        return image, 50
    if kind == "crop5":
        # remove 5% of the width and of the height, split at random between the two sides
        dy, dx = round(0.05 * h), round(0.05 * w)
        top, left = rng.integers(0, dy + 1), rng.integers(0, dx + 1)
        return image[top:top + h - dy, left:left + w - dx], 95
    if kind == "brightness":
        shift = rng.choice([-30, 30])
        return np.clip(image.astype(np.int16) + shift, 0, 255).astype(np.uint8), 95
    if kind == "hflip":
        return image[:, ::-1], 95
    raise ValueError(kind)


def write(path: Path, rgb: np.ndarray, quality: int = 95) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])


def make_set(out: Path, count: int, planted: int, seed: int = 0, side: int = 256) -> list[tuple[str, str, str]]:
    """Write ``count`` distinct JPEGs and ``planted`` transformed copies under ``out/images``.

    Returns the planted pairs (original file, copy file, transform), paths relative to ``out/images``.
    """
    rng = np.random.default_rng(seed)
    crops = Crops(photos())
    folder = out / "images"
    names = []
    for i in range(count):
        name = f"img/{i:06d}.jpg"
        write(folder / name, distinct_image(rng, crops, side), 95)
        names.append(name)
    pairs = []
    chosen = rng.choice(count, size=planted, replace=False)
    for k, i in enumerate(chosen):
        kind = TRANSFORMS[k % len(TRANSFORMS)]
        original = cv2.cvtColor(cv2.imread(str(folder / names[i])), cv2.COLOR_BGR2RGB)
        copy, quality = transformed(rng, original, kind)
        name = f"copy/{k:06d}_{kind}.jpg"
        write(folder / name, copy, quality)
        pairs.append((names[i], name, kind))
    return pairs


def workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
