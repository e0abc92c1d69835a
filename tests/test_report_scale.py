"""balance-report at scale: compact statistics, banded near-duplicate confirmation, bounded listings,
semantic mask statistics, and no plotting library loaded unless a page is written.

Memory per image is measured by benchmarks/balance_report.py, not timed here; these tests check
that the scalable paths give the same answers as the direct ones.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import datakit
from datakit import hashing
from datakit.ingest import ingest, ingest_format
from datakit.manifest import load_manifest
from datakit.report import duplicates as duplicates_section
from datakit.report import pixels, shortcuts, variance
from datakit.report.base import ReportContext
from datakit.samples import sample
from tests.report_data import shapes_manifest
from tests.test_hashing import _synthetic


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest, _ = shapes_manifest(tmp_path_factory.mktemp("scale"), count=60)
    return manifest


def test_statistics_are_compact_arrays_equal_to_one_file_measure(shapes: Path):
    m = load_manifest(shapes)
    stats = ReportContext(m, shapes, workers=1, cache=False, show_progress=False).stats()
    assert all(stats[c].dtype == np.uint8 for c in hashing.THUMB_COLUMNS)
    assert all(stats[c].dtype == np.float32 for c in pixels.PHASH_COLUMNS)
    row = m.ok_images().iloc[3]
    one = pixels.measure(str(m.image_path(row["path"])))
    got = stats.loc[m.ok_images().index[3]]
    for column in (*pixels.STAT_COLUMNS, *pixels.PHASH_COLUMNS[:5], *hashing.THUMB_COLUMNS[:5]):
        assert got[column] == pytest.approx(one[column], rel=1e-5, abs=1e-5), column
    assert bool(got["grayscale"]) == one["grayscale"] and pd.isna(got["error"])


def test_cached_statistics_keep_compact_dtypes_and_values(shapes: Path, tmp_path: Path):
    m = load_manifest(shapes)
    first = ReportContext(m, shapes, workers=1, show_progress=False).stats()
    second = ReportContext(load_manifest(shapes), shapes, workers=1, show_progress=False).stats()
    assert second.attrs["decoded"] == 0
    assert second[list(hashing.THUMB_COLUMNS)].dtypes.eq(np.uint8).all()
    pd.testing.assert_frame_equal(first, second, check_like=True)


def test_banded_confirmation_equals_confirming_all_candidates_at_once():
    hashes, truth = _synthetic(2000, 120, seed=5)
    candidates = hashing.candidate_pairs(hashes)
    sims, which = hashing.pair_similarity(hashes, candidates)
    direct = {tuple(p) for p in candidates[sims >= hashing.NEAR_THRESHOLD].tolist()}
    for chunk in (50_000, 7):  # tiny chunks: every band is confirmed in many pieces
        pairs, got_sims, _ = hashing.near_duplicate_pairs(hashes, chunk=chunk)
        assert {tuple(p) for p in pairs.tolist()} == direct
        assert len(pairs) == len(direct)  # each pair once, though several bands propose it
        assert (got_sims >= hashing.NEAR_THRESHOLD).all()
    assert len(direct & truth) >= 0.95 * len(truth)


def test_colour_confirmation_in_chunks_matches_one_pass():
    rng = np.random.default_rng(2)
    hashes, truth = _synthetic(400, 30, seed=2)
    thumbs = rng.integers(0, 256, size=(len(hashes), len(hashing.THUMB_COLUMNS))).astype(np.uint8)
    for a, b in truth:  # copies share their original's colours, except one pair that must fail
        thumbs[b] = thumbs[a]
    bad = sorted(truth)[0]
    thumbs[bad[1]] = 255 - thumbs[bad[0]]
    whole = hashing.near_duplicate_pairs(hashes, thumbs)[0]
    pieces = hashing.near_duplicate_pairs(hashes, thumbs, chunk=3)[0]
    assert {tuple(p) for p in whole.tolist()} == {tuple(p) for p in pieces.tolist()}
    assert bad not in {tuple(p) for p in whole.tolist()}


def test_duplicate_listing_is_capped_largest_first_while_counts_cover_all(tmp_path: Path, monkeypatch):
    from tests.report_data import write_rgb

    rng = np.random.default_rng(4)
    src = tmp_path / "src"
    for i in range(6):
        picture = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
        copies = 3 if i == 0 else 2  # one cluster of three, five clusters of two
        for k in range(copies):
            write_rgb(src / ("a" if k == 0 else "b") / f"p{i}_{k}.png", picture)
    ingest(src, tmp_path / "m", workers=1, show_progress=False)
    monkeypatch.setattr(duplicates_section, "MAX_CLUSTERS_KEPT", 2)
    data = datakit.balance_report(tmp_path / "m", sections=["duplicates"], workers=1,
                                  show_progress=False).sections["duplicates"]
    assert data["clusters"] == 6 and data["duplicates"] == 7 and data["exact_duplicates"] == 7
    assert data["conflicts"] == 6  # every cluster holds labels a and b
    assert [c["size"] for c in data["cluster_list"]] == [3, 2]
    assert sorted(data["cluster_list"][0]["paths"]) == ["a/p0_0.png", "b/p0_1.png", "b/p0_2.png"]
    assert data["cluster_list"][0]["kind"] == "exact" and data["cluster_list"][0]["conflict"]


def test_issue_listing_is_capped_while_counts_cover_all(shapes: Path, monkeypatch):
    monkeypatch.setattr(variance, "MAX_ISSUES_KEPT", 2)
    monkeypatch.setattr(variance, "DARK_BELOW", 256.0)  # every image is "dark"
    data = datakit.balance_report(shapes, sections=["variance"], workers=1, show_progress=False).sections["variance"]
    assert data["images_with_issues"] == data["issue_counts"]["dark"] == data["images"] == 60
    assert len(data["issue_images"]) == 2 and all("dark" in r["issues"] for r in data["issue_images"])


def test_shortcut_sample_keeps_proportions_and_small_classes():
    frame = pd.DataFrame({"label": ["big"] * 9000 + ["mid"] * 2000 + ["tiny"] * 6, "x": np.arange(11006)})
    picked = shortcuts._stratified_sample(frame, 1000, seed=0)
    counts = picked["label"].value_counts()
    assert counts["big"] == pytest.approx(818, abs=2) and counts["mid"] == pytest.approx(182, abs=2)
    assert counts["tiny"] == shortcuts.MIN_PER_CLASS
    assert picked.index.is_monotonic_increasing


def test_report_without_html_does_not_import_matplotlib(shapes: Path):
    code = ("import sys, datakit; datakit.balance_report(sys.argv[1], workers=1, show_progress=False); "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(shapes)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def masks_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("semantic")
    sample("shapes", root / "data", count=24, size=64, seed=3, show_progress=False)
    ingest_format(root / "data", root / "m", format="masks", show_progress=False)
    return root / "m"


def test_semantic_masks_give_coverage_and_class_pixel_shares(masks_manifest: Path):
    m = load_manifest(masks_manifest)
    rows = m.ok_images()
    truth = np.zeros(256, np.int64)
    coverage = []
    for rel in rows["semantic_mask"]:
        mask = cv2.imread(str(m.image_path(rel)), cv2.IMREAD_UNCHANGED)
        truth += np.bincount(mask.ravel(), minlength=256)
        coverage.append((mask > 0).mean())
    data = datakit.balance_report(masks_manifest, sections=["objects"], workers=1,
                                  show_progress=False).sections["objects"]
    sem = data["semantic"]
    assert sem["masks"] == len(rows) and sem["unreadable"] == 0 and not sem["unknown_values"]
    shares = {c["value"]: c["pixel_share"] for c in sem["classes"].values()}
    for value, share in shares.items():
        assert share == pytest.approx(truth[value] / truth.sum(), rel=1e-9)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert sem["coverage"]["median"] == pytest.approx(float(np.median(coverage)))
    assert sem["classes"]["background"]["images"] == len(rows)


def test_semantic_only_manifest_reports_unknown_values_and_unreadable_masks(masks_manifest: Path, tmp_path: Path):
    m = load_manifest(masks_manifest)
    rows = m.ok_images()
    first = m.image_path(rows["semantic_mask"].iloc[0])
    second = m.image_path(rows["semantic_mask"].iloc[1])
    saved = first.read_bytes(), second.read_bytes()
    try:
        mask = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
        mask[:4, :4] = 9  # no category has value 9
        cv2.imwrite(str(first), mask)
        second.write_bytes(b"not a png")
        m.annotations = m.annotations.iloc[0:0]  # semantic masks only: the section still applies
        from tests.report_data import copy_beside

        only = copy_beside(m, masks_manifest, "semantic-only")
        report = datakit.balance_report(only, sections=["objects"], workers=1, show_progress=False)
    finally:
        first.write_bytes(saved[0])
        second.write_bytes(saved[1])
    sem = report.sections["objects"]["semantic"]
    assert sem["unknown_values"] == {"9": 1}
    assert sem["unreadable"] == 1 and sem["masks"] == len(rows) - 1
    text = " ".join(report.sections and datakit.report.SECTIONS["objects"].findings(report.sections["objects"]))
    assert "values that are no category: 9" in text and "could not be read" in text


def test_near_duplicate_search_is_cached_by_content_and_redone_when_the_set_changes(shapes: Path, monkeypatch):
    first = ReportContext(load_manifest(shapes), shapes, workers=1, show_progress=False).duplicates()
    assert (shapes / "pixel_stats.near_pairs.npz").exists()

    def no_search(*args, **kwargs):
        raise AssertionError("the near-duplicate search ran again")

    monkeypatch.setattr(hashing, "near_duplicate_pairs", no_search)
    again = ReportContext(load_manifest(shapes), shapes, workers=1, show_progress=False).duplicates()
    assert np.array_equal(first.cluster, again.cluster) and np.array_equal(first.near_pairs, again.near_pairs)
    m = load_manifest(shapes)
    fewer = ReportContext(m, shapes, workers=1, sample=30, show_progress=False)  # another set of images
    with pytest.raises(AssertionError, match="ran again"):
        fewer.duplicates()
    monkeypatch.undo()
    uncached = ReportContext(load_manifest(shapes), shapes, workers=1, cache=False, show_progress=False).duplicates()
    assert np.array_equal(first.cluster, uncached.cluster)
