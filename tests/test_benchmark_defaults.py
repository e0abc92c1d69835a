"""benchmarks/defaults.py: the split seeds it averages over are really different splits."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from datakit.manifest import load_manifest
from tests.conftest import REPO


def _benchmark(monkeypatch):  # noqa: ANN001
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it imports its sibling measure.py
    spec = importlib.util.spec_from_file_location("benchmark_defaults", REPO / "benchmarks" / "defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _splits(manifest: Path) -> dict[str, str]:
    images = load_manifest(manifest).images
    return dict(zip(images["id"], images["split"].astype(str)))


def test_each_split_seed_gives_a_new_split(digits_small: Path, tmp_path: Path, monkeypatch) -> None:
    """datakit.split keeps the split an image already has; the benchmark must clear it first, or
    all 5 seeds of a real set measure split 0 again (as they once did)."""
    bench = _benchmark(monkeypatch)
    manifest = tmp_path / "manifest"
    shutil.copytree(digits_small, manifest)
    bench._splits(manifest, "real", 0)
    first = _splits(manifest)
    bench._splits(manifest, "real", 1)
    second = _splits(manifest)
    assert set(first.values()) == set(second.values()) == {"train", "val", "test"}
    assert sum(first[k] != second[k] for k in first) > len(first) // 4
    bench._splits(manifest, "real", 0)
    assert _splits(manifest) == first  # a seed is a split: the same one each time
