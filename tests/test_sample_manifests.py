"""The shipped sample manifests load as they are and describe the files next to them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from datakit import load_manifest
from datakit.info import info

ROOT = Path(__file__).resolve().parents[1] / "sample_manifests"
MANIFESTS = sorted(p.parent for p in ROOT.glob("*/*/manifest.json"))


def test_there_are_sample_manifests() -> None:
    assert {p.relative_to(ROOT).as_posix() for p in MANIFESTS} >= {
        "shapes-mini/manifest", "shapes-mini/objects.manifest", "digits-mini/manifest"}


@pytest.mark.parametrize("location", MANIFESTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_sample_manifest_matches_its_files(location: Path) -> None:
    m = load_manifest(location)
    assert len(m.images) > 0 and (m.images["status"] == "ok").all()
    for row in m.images.itertuples():
        data = m.image_path(row.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256 and len(data) == row.file_size
    assert info(location)["ok_images"] == len(m.images)


def test_objects_manifest_has_boxes_and_masks() -> None:
    m = load_manifest(ROOT / "shapes-mini" / "objects.manifest")
    assert set(m.tasks) == {"detection", "instance_segmentation"}
    assert (m.annotations["segmentation_kind"] == "rle").all()
    assert (m.annotations["bbox_w"] > 0).all() and (m.annotations["bbox_h"] > 0).all()
