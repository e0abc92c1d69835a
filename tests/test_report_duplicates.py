"""balance-report duplicates: transformed copies found, leakage across splits, label conflicts, --fail-on."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import datakit
from datakit.cli import app
from datakit.ingest import ingest
from tests.report_data import objects_manifest, smooth_picture, with_splits, write_rgb

COPIES = {  # copy name -> (original index, transform, label, split)
    "resized": (0, "resize", "a", "val"),
    "jpeg50": (1, "jpeg", "a", "train"),
    "cropped": (2, "crop", "a", "train"),
    "brighter": (3, "brightness", "a", "test"),
    "flipped": (4, "hflip", "a", "train"),
    "exact": (5, "exact", "b", "train"),
    "rotated": (6, "rot90", "a", "train"),
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("dups")
    rng = np.random.default_rng(7)
    src = root / "src"
    pictures = []
    for i in range(40):
        label = "a" if i < 20 else "b"
        pictures.append(smooth_picture(rng, 128))
        write_rgb(src / label / f"p{i:02d}.png", pictures[-1])
    expected = {}
    for name, (k, kind, label, _) in COPIES.items():
        picture, path = pictures[k], src / label / f"{name}.jpg"
        if kind == "resize":
            write_rgb(path, cv2.resize(picture, (77, 77), interpolation=cv2.INTER_AREA), quality=95)
        elif kind == "jpeg":
            write_rgb(path, picture, quality=50)
        elif kind == "crop":
            write_rgb(path, picture[3:3 + 122, 2:2 + 122], quality=95)
        elif kind == "brightness":
            write_rgb(path, np.clip(picture.astype(int) + 30, 0, 255).astype(np.uint8), quality=95)
        elif kind == "hflip":
            write_rgb(path, picture[:, ::-1], quality=95)
        elif kind == "rot90":
            write_rgb(path, np.rot90(picture), quality=95)
        elif kind == "exact":
            path = path.with_suffix(".png")
            shutil.copyfile(src / "a" / f"p{k:02d}.png", path)
        expected[f"{label}/{path.name}"] = f"a/p{k:02d}.png"
    ingest(src, root / "m", workers=1, show_progress=False)
    m = datakit.load_manifest(root / "m")
    assign = {p: "train" for p in m.images["path"]}
    for name, (_, _, label, split) in COPIES.items():
        for p in m.images["path"]:
            if p.startswith(f"{label}/{name}."):
                assign[p] = split
    return with_splits(root / "m", "split", assign), expected


def test_each_transformed_copy_is_found_and_nothing_else(planted):
    manifest, expected = planted
    report = datakit.balance_report(manifest, sections=["duplicates"], workers=1, show_progress=False)
    data = report.sections["duplicates"]
    clusters = {frozenset(c["paths"]) for c in data["cluster_list"]}
    assert clusters == {frozenset({copy, original}) for copy, original in expected.items()}
    assert data["duplicates"] == len(COPIES)
    assert data["exact_duplicates"] == 1 and data["near_duplicates"] == len(COPIES) - 1
    by_copy = {next(p for p in c["paths"] if p in expected): c for c in data["cluster_list"]}
    assert by_copy["a/flipped.jpg"]["orientations"] == ["hflip"]
    assert by_copy["b/exact.png"]["kind"] == "exact"


def test_leakage_and_label_conflict_counted(planted):
    manifest, _ = planted
    report = datakit.balance_report(manifest, sections=["duplicates"], workers=1, show_progress=False)
    data = report.sections["duplicates"]
    assert data["leakage"] == 2 and data["leakage_by_split"] == {"val": 1, "test": 1}
    assert data["conflicts"] == 1
    conflict = next(c for c in data["cluster_list"] if c["conflict"])
    assert sorted(conflict["paths"]) == ["a/p05.png", "b/exact.png"]
    assert report.metrics == {"duplicates": 7, "leakage": 2, "conflicts": 1}


@pytest.mark.parametrize("expr,code", [
    ("leakage>0", 1), ("leakage>2", 0), ("conflicts>0", 1), ("duplicates>6", 1), ("duplicates>7", 0),
])
def test_fail_on_duplicate_metrics(planted, expr, code):
    manifest, _ = planted
    result = CliRunner().invoke(app, ["balance-report", str(manifest), "--json", "--workers", "1", "--fail-on", expr])
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["metrics"]["leakage"] == 2


def test_resplit_with_near_duplicate_groups_reports_no_leakage(planted):
    manifest, _ = planted
    plain = datakit.split(manifest, manifest.parent / "resplit-plain")
    leaky = datakit.balance_report(plain.manifest, sections=["duplicates"], workers=1, show_progress=False)
    # sha256 groups alone keep the exact copy together, not the resized and brightened ones
    assert leaky.metrics["leakage"] == 2
    result = CliRunner().invoke(app, ["split", str(manifest), "-o", str(manifest.parent / "resplit"),
                                      "--group-by", "near-duplicates", "--json"])
    assert result.exit_code == 0, result.output
    report = datakit.balance_report(manifest.parent / "resplit", sections=["duplicates"], workers=1,
                                    show_progress=False, fail_on=["leakage>0"])
    assert report.metrics["leakage"] == 0 and report.failed == []
    assert report.sections["duplicates"]["duplicates"] == len(COPIES)
    for cluster in report.sections["duplicates"]["cluster_list"]:
        assert len(set(cluster["splits"])) == 1


def test_near_duplicate_group_hook_keys(planted):
    from datakit.report.groups import near_duplicate_groups

    manifest, expected = planted
    m = datakit.load_manifest(manifest)
    keys = near_duplicate_groups(manifest)(m.images)
    by_path = dict(zip(m.images["path"], keys))
    for copy, original in expected.items():
        assert by_path[copy] == by_path[original] and not pd.isna(by_path[copy])
    assert keys.notna().sum() == 2 * len(expected)


def _unlabeled_with_copy(root: Path) -> Path:
    rng = np.random.default_rng(4)
    for i in range(6):
        write_rgb(root / "src" / f"p{i}.png", smooth_picture(rng))
    shutil.copyfile(root / "src" / "p0.png", root / "src" / "p0_copy.png")
    ingest(root / "src", root / "m", workers=1, show_progress=False)
    return root / "m"


@pytest.mark.parametrize("make", ["objects", "unlabeled"])
def test_clusters_without_labels_or_splits_show_a_dash_not_none(tmp_path, make):
    manifest = objects_manifest(tmp_path, count=12, copies=2) if make == "objects" else _unlabeled_with_copy(tmp_path)
    page = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["balance-report", str(manifest), "--workers", "1", "--html", str(page)],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    clusters = [line for line in result.stdout.splitlines() if "│ exact" in line]
    assert clusters and all(line.split("│")[3:5] == [" -      ", " -      "] for line in clusters), clusters
    text = page.read_text()
    assert "<td>-</td><td>-</td>" in text
    for leak in ("None", "nan"):  # what str() makes of a missing label, split or statistic
        assert not re.search(rf"\b{leak}\b", result.stdout), leak
        assert not re.search(rf">[^<]*\b{leak}\b[^<]*<", text), leak
