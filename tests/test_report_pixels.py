"""balance-report pixel sections: variance and image issues, shortcuts, statistics cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import datakit
from datakit.ingest import ingest
from tests.report_data import shapes_manifest, smooth_picture, write_rgb


def _two_classes(root: Path, make_a, make_b, n: int = 24) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_rgb(root / "src" / "a" / f"a{i}.png", make_a(smooth_picture(rng)))
        write_rgb(root / "src" / "b" / f"b{i}.png", make_b(smooth_picture(rng)))
    ingest(root / "src", root / "m", workers=1, show_progress=False)
    return root / "m"


def _grey(rgb: np.ndarray) -> np.ndarray:
    g = rgb.mean(axis=2, keepdims=True).astype(np.uint8)
    return np.repeat(g, 3, axis=2)


def _report(manifest: Path, **kw):
    return datakit.balance_report(manifest, workers=1, show_progress=False, **kw)


def test_grayscale_class_is_a_shortcut(tmp_path):
    manifest = _two_classes(tmp_path, _grey, lambda x: x)
    report = _report(manifest, sections=["shortcuts"])
    data = report.sections["shortcuts"]
    flagged = {e["property"] for e in data["properties"] if e["strength"] >= 0.5}
    assert "grayscale" in flagged
    assert any("class 'a' is grayscale (100% vs 0% of the rest)" == w for w in data["flagged"])
    assert report.metrics["shortcuts"] == len(data["flagged"]) >= 1


def test_brighter_class_is_a_shortcut_in_words(tmp_path):
    brighter = lambda x: np.clip(x.astype(int) + 90, 0, 255).astype(np.uint8)  # noqa: E731
    manifest = _two_classes(tmp_path, brighter, lambda x: x)
    data = _report(manifest, sections=["shortcuts"]).sections["shortcuts"]
    words = [w for w in data["flagged"] if "brightness" in w]
    assert words and words[0].startswith("class 'a' is much brighter than the rest")


def test_balanced_shapes_have_no_shortcut_and_fail_on_passes(tmp_path):
    manifest, _ = shapes_manifest(tmp_path, count=160)
    report = _report(manifest, sections=["shortcuts"], fail_on=["shortcuts>0"])
    assert report.sections["shortcuts"]["flagged"] == []
    assert report.failed == []


def test_image_issues_each_found(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    for i in range(12):
        write_rgb(src / f"ok{i}.png", smooth_picture(rng))
    import cv2

    write_rgb(src / "dark.png", (smooth_picture(rng) * 0.12).astype(np.uint8))
    write_rgb(src / "light.png", (255 - smooth_picture(rng) * 0.1).astype(np.uint8))
    write_rgb(src / "blurry.png", cv2.GaussianBlur(smooth_picture(rng, 96), (0, 0), 6))
    write_rgb(src / "flat.png", np.full((96, 96, 3), 120, np.uint8))
    write_rgb(src / "strip.png", cv2.resize(smooth_picture(rng), (300, 40)))
    write_rgb(src / "tiny.png", cv2.resize(smooth_picture(rng), (12, 12)))
    ingest(src, tmp_path / "m", layout="unlabeled", workers=1, show_progress=False)
    data = _report(tmp_path / "m", sections=["variance"]).sections["variance"]
    by_path = {r["path"]: set(r["issues"]) for r in data["issue_images"]}
    assert "dark" in by_path["dark.png"]
    assert "light" in by_path["light.png"]
    assert by_path["blurry.png"] == {"blurry"}
    assert "low_information" in by_path["flat.png"]
    assert "odd_aspect" in by_path["strip.png"]
    assert "odd_size" in by_path["tiny.png"]
    assert not any(p.startswith("ok") for p in by_path)


def test_low_variance_class_flagged(tmp_path):
    rng = np.random.default_rng(2)
    same = smooth_picture(rng)
    src = tmp_path / "src"
    for i in range(10):
        noisy = np.clip(same.astype(int) + rng.integers(-3, 4, same.shape), 0, 255).astype(np.uint8)
        write_rgb(src / "same" / f"s{i}.png", noisy)
        write_rgb(src / "varied" / f"v{i}.png", smooth_picture(rng))
        write_rgb(src / "other" / f"o{i}.png", smooth_picture(rng))
    ingest(src, tmp_path / "m", workers=1, show_progress=False)
    data = _report(tmp_path / "m", sections=["variance"]).sections["variance"]
    assert [low["class"] for low in data["low_variance"]] == ["same"]


def test_statistics_cached_by_content_hash(tmp_path, monkeypatch):
    from datakit.manifest import load_manifest
    from datakit.report.base import ReportContext

    manifest = _two_classes(tmp_path, lambda x: x, lambda x: x, n=6)
    first = ReportContext(load_manifest(manifest), manifest, workers=1, show_progress=False).stats()
    assert first.attrs["decoded"] == 12 and first.attrs["cache"] == str((manifest / "pixel_stats.parquet").resolve())
    second = ReportContext(load_manifest(manifest), manifest, workers=1, show_progress=False).stats()
    assert second.attrs["decoded"] == 0
    np.testing.assert_allclose(second["brightness"].to_numpy(float), first["brightness"].to_numpy(float))
    # an edited image has a new content hash: only it is decoded again
    write_rgb(tmp_path / "src" / "a" / "a0.png", np.zeros((40, 40, 3), np.uint8))
    ingest(tmp_path / "src", manifest, workers=1, show_progress=False)
    third = ReportContext(load_manifest(manifest), manifest, workers=1, show_progress=False).stats()
    assert third.attrs["decoded"] == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_manifest_caches_in_user_folder(tmp_path, monkeypatch):
    from datakit.manifest import load_manifest
    from datakit.report.base import ReportContext

    manifest = _two_classes(tmp_path, lambda x: x, lambda x: x, n=3)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manifest.chmod(0o555)
    try:
        stats = ReportContext(load_manifest(manifest), manifest, workers=1, show_progress=False).stats()
    finally:
        manifest.chmod(0o755)
    assert stats.attrs["cache"].startswith(str(tmp_path / "cache" / "datakit"))
    assert not (manifest / "pixel_stats.parquet").exists()


def test_cache_location_for_read_only_folder(tmp_path, monkeypatch):
    from datakit.report import pixels

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(pixels.os, "access", lambda path, mode: False)
    where = pixels.cache_path(tmp_path / "m")
    assert where.parent == tmp_path / "cache" / "datakit" / "pixel_stats" and where.suffix == ".parquet"


def test_parallel_workers_match_serial(tmp_path):
    from datakit.manifest import load_manifest
    from datakit.report.base import ReportContext

    manifest = _two_classes(tmp_path, lambda x: x, lambda x: x, n=20)
    serial = ReportContext(load_manifest(manifest), manifest, workers=1, cache=False, show_progress=False).stats()
    parallel = ReportContext(load_manifest(manifest), manifest, workers=2, cache=False, show_progress=False).stats()
    np.testing.assert_allclose(parallel["sharpness"].to_numpy(float), serial["sharpness"].to_numpy(float))


def test_a_property_giving_one_class_away_is_flagged_among_many_classes(tmp_path):
    """Every circle 96 px, every other shape 64 px: 50% balanced accuracy against 25% chance, under
    the half-the-gap line, so nothing was flagged, though a CNN would learn 'large -> circle'."""
    from PIL import Image

    manifest, _ = shapes_manifest(tmp_path, count=80)
    images = tmp_path / "data" / "images"
    for path in (images / "circle").glob("*.png"):
        Image.open(path).resize((96, 96)).save(path)
    datakit.ingest(images, manifest, workers=1, show_progress=False)
    data = _report(manifest, sections=["shortcuts"]).sections["shortcuts"]
    width = next(e for e in data["properties"] if e["property"] == "width")
    assert width["strength"] < 0.5 and width["flagged"] and width["class"] == "circle"
    assert any(w.startswith("class 'circle' is much wider than the rest (median width 96 vs 64") for w in data["flagged"])
