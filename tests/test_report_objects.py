"""balance-report boxes and masks: counts per class and split, COCO sizes, bad boxes, coverage, missing classes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import datakit
from datakit.manifest import load_manifest
from datakit.samples import sample
from tests.report_data import copy_beside


@pytest.fixture(scope="module")
def coco_shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("objects")
    sample("shapes", root / "data", count=60, seed=3, show_progress=False)
    datakit.ingest(root / "data", root / "m", format="coco", workers=1, show_progress=False)
    coco = json.loads((root / "data" / "annotations" / "instances.json").read_text())
    return root / "m", coco


def test_counts_sizes_and_coverage_match_the_coco_file(coco_shapes):
    manifest, coco = coco_shapes
    data = datakit.balance_report(manifest, sections=["objects"], workers=1, show_progress=False).sections["objects"]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    expected = Counter(names[a["category_id"]] for a in coco["annotations"])
    assert {c: d["objects"]["total"] for c, d in data["classes"].items()} == dict(expected)
    assert data["objects"] == len(coco["annotations"])
    sizes = Counter("small" if a["area"] < 32 ** 2 else "medium" if a["area"] < 96 ** 2 else "large"
                    for a in coco["annotations"])
    assert {k: v for k, v in data["sizes"].items() if v} == dict(sizes)
    per_image = Counter(a["image_id"] for a in coco["annotations"])
    assert data["objects_per_image"]["max"] == max(per_image.values())
    assert data["degenerate"] == 0 and data["outside"] == 0
    assert data["masks"] == len(coco["annotations"])
    coverage = sorted(min(1.0, sum(a["area"] for a in coco["annotations"] if a["image_id"] == im["id"])
                          / (im["width"] * im["height"])) for im in coco["images"])
    assert data["mask_coverage"]["median"] == pytest.approx(coverage[len(coverage) // 2], abs=0.02)


def test_bad_boxes_and_missing_class_in_split(coco_shapes, tmp_path):
    manifest, _ = coco_shapes
    m = load_manifest(manifest)
    ann = m.annotations.copy()
    ann.loc[0, "bbox_w"] = 0.0  # degenerate
    ann.loc[1, "bbox_x"] = 60.0  # 64-px image: extends past the right edge
    ann.loc[1, "bbox_w"] = 20.0
    m.annotations = ann
    # images holding a star go to val only if they hold nothing else; everything else is train
    star_images = set(ann.loc[ann["category"] == "star", "image_id"])
    m.images["split"] = m.images["id"].map(lambda i: "train" if i not in star_images else "val").astype("string")
    bad = copy_beside(m, manifest, f"bad-{tmp_path.name}")
    report = datakit.balance_report(bad, sections=["objects"], workers=1, show_progress=False,
                                    fail_on=["degenerate_boxes>1"])
    data = report.sections["objects"]
    assert data["degenerate"] == 1 and data["outside"] == 1
    assert {b["problem"] for b in data["bad_boxes"]} == {"degenerate", "outside the image"}
    assert data["missing_from_split"]["train"] == ["star"]
    assert report.failed == ["degenerate_boxes = 2 (degenerate_boxes>1)"]
