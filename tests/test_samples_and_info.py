"""Built-in samples (deterministic, consistent annotations), `datakit info`, and the CLI surface."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from datakit.cli import app
from datakit.errors import DatakitError
from datakit.info import info
from datakit.ingest import ingest
from datakit.samples import SHAPE_CLASSES, sample

runner = CliRunner()


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_shapes_is_deterministic_by_seed(tmp_path: Path) -> None:
    sample("shapes", tmp_path / "a", seed=3, count=12, show_progress=False)
    sample("shapes", tmp_path / "b", seed=3, count=12, show_progress=False)
    sample("shapes", tmp_path / "c", seed=4, count=12, show_progress=False)
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")
    assert _tree_bytes(tmp_path / "a") != _tree_bytes(tmp_path / "c")


def test_shapes_annotations_agree_with_pixels(tmp_path: Path) -> None:
    result = sample("shapes", tmp_path / "s", seed=1, count=20, size=48, objects=(2, 4), show_progress=False)
    coco = json.loads((tmp_path / "s" / "annotations" / "instances.json").read_text())
    assert len(coco["images"]) == 20 and result.images == 20
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert sorted(names.values()) == sorted(SHAPE_CLASSES)
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for image in coco["images"]:
        stem = Path(image["file_name"]).stem
        semantic = cv2.imread(str(tmp_path / "s" / "masks" / "semantic" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        instance = cv2.imread(str(tmp_path / "s" / "masks" / "instance" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        anns = by_image[image["id"]]
        assert 1 <= len(anns) <= 4
        rebuilt = np.zeros_like(semantic)
        for ann in anns:
            mask = mask_utils.decode(ann["segmentation"]).astype(bool)
            assert mask.sum() == ann["area"] > 0
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert len(np.unique(instance[mask])) == 1
            rebuilt[mask] = ann["category_id"]
        assert np.array_equal(rebuilt, semantic)
        # the folder the image is filed under is the class of its largest shape
        largest = max(anns, key=lambda a: a["area"])
        assert image["file_name"].split("/")[0] == names[largest["category_id"]]


def test_shapes_imbalance(tmp_path: Path) -> None:
    result = sample("shapes", tmp_path / "s", count=100, imbalance=0.25, show_progress=False)
    counts = list(result.classes.values())
    assert sum(counts) == 100 and counts[0] == max(counts) and counts[-1] == min(counts)
    assert counts[-1] / counts[0] == pytest.approx(0.25, abs=0.05)


def test_digits_are_sklearn_digits(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    result = sample("digits", tmp_path / "d", show_progress=False)
    digits = load_digits()
    assert result.images == len(digits.images) == 1797
    assert result.classes == {str(d): int((digits.target == d).sum()) for d in range(10)}
    first = cv2.imread(str(tmp_path / "d" / "images" / str(digits.target[0]) / "digit_0000.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(first, np.round(digits.images[0] * 255 / 16).astype(np.uint8))


def test_sample_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(DatakitError, match="unknown sample 'cats'"):
        sample("cats", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DatakitError, match="not empty"):
        sample("shapes", tmp_path / "full")
    result = runner.invoke(app, ["sample", "shapes", "-o", str(tmp_path / "y"), "--objects", "3"])
    assert result.exit_code == 2 and "--objects must be MIN,MAX" in result.output
    for name, option, value, message in (("shapes", "--count", "-5", "at least 4"), ("shapes", "--count", "3", "at least 4"),
                                         ("digits", "--count", "1798", "between 10 and 1797"),
                                         ("shapes", "--size", "100000", "at most 2048")):
        refused = runner.invoke(app, ["sample", name, "-o", str(tmp_path / "z"), option, value])
        assert refused.exit_code == 2 and message in refused.output, refused.output
        assert not (tmp_path / "z").exists()  # refused before any folder is made


def test_digits_count_draws_each_class_in_proportion(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    targets = load_digits().target
    result = sample("digits", tmp_path / "d", count=100, seed=1, show_progress=False)
    assert result.images == 100 == sum(result.classes.values()) and len(result.classes) == 10
    for label, n in result.classes.items():  # 1797 images in 10 near-equal classes: 9 or 10 of each
        assert abs(n - 100 * (targets == int(label)).sum() / len(targets)) < 1
    files = sorted(p.name for p in (tmp_path / "d" / "images").rglob("*.png"))
    again = sample("digits", tmp_path / "e", count=100, seed=1, show_progress=False)
    assert files == sorted(p.name for p in (tmp_path / "e" / "images").rglob("*.png")) and again.classes == result.classes
    other = sample("digits", tmp_path / "f", count=100, seed=2, show_progress=False)
    assert files != sorted(p.name for p in (tmp_path / "f" / "images").rglob("*.png"))


def test_info_counts_and_cli_json(class_folder: Path, tmp_path: Path) -> None:
    (class_folder / "dog" / "broken.jpg").write_bytes(b"")
    ingest(class_folder, tmp_path / "m", show_progress=False)
    data = info(tmp_path / "m")
    assert data["images"] == 7 and data["ok_images"] == 6
    assert data["status"] == {"empty": 1, "ok": 6}
    assert data["labels"] == {"cat": 3, "dog": 3}
    assert data["formats"] == {"JPEG": 3, "PNG": 3}
    assert data["width"] == {"min": 32.0, "median": 32.0, "max": 32.0}
    result = runner.invoke(app, ["info", str(tmp_path / "m"), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["labels"] == {"cat": 3, "dog": 3}
    table = runner.invoke(app, ["info", str(tmp_path / "m")])
    assert table.exit_code == 0 and "cat" in table.output and "JPEG" in table.output


def test_cli_ingest_and_bad_manifest_exit_codes(class_folder: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(class_folder), "-o", str(tmp_path / "m"), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["status"] == {"ok": 6}
    (tmp_path / "m" / "manifest.json").write_text("{broken")
    result = runner.invoke(app, ["info", str(tmp_path / "m")])
    assert result.exit_code == 2 and "invalid JSON" in result.output and "Traceback" not in result.output


def test_python_m_datakit_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "datakit", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ingest" in done.stdout


def test_bracketed_names_are_shown_as_written(tmp_path: Path) -> None:
    """A class "[red]cats" or a file "[bold]bad.jpg" is data: rich would read it as markup and drop it."""
    from tests.conftest import write_png

    for i in range(4):
        write_png(tmp_path / "src" / "[red]cats" / f"{i}.png", seed=i)
        write_png(tmp_path / "src" / "dogs" / f"{i}.png", seed=10 + i)
    (tmp_path / "src" / "dogs" / "[bold]bad.jpg").write_bytes(b"junk")
    ingested = runner.invoke(app, ["ingest", str(tmp_path / "src"), "-o", str(tmp_path / "m")])
    assert ingested.exit_code == 0, ingested.output
    assert "[red]cats" in ingested.output and "dogs/[bold]bad.jpg" in ingested.output
    shown = runner.invoke(app, ["info", str(tmp_path / "m")])
    assert shown.exit_code == 0 and "[red]cats" in shown.output
    report = runner.invoke(app, ["balance-report", str(tmp_path / "m"), "--no-cache"])
    assert "[red]cats" in report.output and "dogs/[bold]bad.jpg" in report.output, report.output
