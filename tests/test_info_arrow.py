"""`datakit info` reads a Parquet manifest with pyarrow alone (issue 11, start-up time): the counts
and every validation verdict must equal those of the pandas read (``load_manifest``)."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from datakit.errors import ManifestError
from datakit.info import info
from datakit.ingest import ingest
from datakit.manifest import load_manifest, save_manifest
from datakit.samples import sample
from tests.conftest import REPO


def _pandas_info(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    with monkeypatch.context() as patched:
        patched.setattr(importlib.import_module("datakit.info"), "read_tables", lambda *args: None)  # as for a CSV manifest
        return info(manifest)


@pytest.fixture(scope="module")
def rich_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Boxes and masks, a split with unsplit rows, a broken file and a label-less image."""
    folder = tmp_path_factory.mktemp("info-arrow")
    sample("shapes", folder / "shapes", count=24, seed=3, show_progress=False)
    ingest(folder / "shapes", folder / "m", show_progress=False)
    m = load_manifest(folder / "m")
    m.images.loc[2, ["status", "reason"]] = ["corrupt", "damaged in the test"]
    m.images.loc[: len(m.images) // 2, "split"] = "train"
    m.images.loc[len(m.images) - 4:, "split"] = "val"
    m.images["label"] = [m.category_names[i % 3] if i % 5 else None for i in range(len(m.images))]
    save_manifest(m, folder / "m")
    return folder / "m"


def test_counts_equal_the_pandas_read(rich_manifest: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fast = info(rich_manifest)
    assert fast == _pandas_info(rich_manifest, monkeypatch)
    assert fast["annotations"] > 0 and fast["status"] == {"corrupt": 1, "ok": 23} and "(none)" in fast["labels"]
    assert set(fast["splits"]) == {"train", "val", "(none)"}
    csv = tmp_path / "csv"
    save_manifest(load_manifest(rich_manifest), csv, table_format="csv")  # read through pandas
    assert {**info(csv, allow_outside=True), "manifest": fast["manifest"]} == fast


@pytest.mark.parametrize("name", ["digits-mini", "shapes-mini"])
def test_shipped_samples_equal_the_pandas_read(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = REPO / "sample_manifests" / name / "manifest"
    parquet = tmp_path / name / "manifest"
    shutil.copytree(source.parent / "images", tmp_path / name / "images")
    m = load_manifest(source)
    m.location, m.image_root = None, "../images"  # beside its copied images, as shipped
    save_manifest(m, parquet)
    assert info(parquet) == _pandas_info(parquet, monkeypatch) == {**info(source), "manifest": str(parquet.resolve())}


def _put(frame: pd.DataFrame, column: str, row: int, value: object) -> None:
    if value is not None and not isinstance(value, str):
        frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value


Change = Callable[[pd.DataFrame, pd.DataFrame], None]
# each breaks one rule of datakit.manifest.validate or a column's type, or is a value pandas accepts
BROKEN: dict[str, Change] = {
    "duplicate image id": lambda im, an: _put(im, "id", 1, im.loc[0, "id"]),
    "null image id": lambda im, an: _put(im, "id", 2, None),
    "duplicate path": lambda im, an: _put(im, "path", 3, im.loc[2, "path"]),
    "absolute path": lambda im, an: _put(im, "path", 1, "/etc/passwd"),
    "path leaving the root": lambda im, an: _put(im, "path", 1, "a/../../x.png"),
    "harmless dots": lambda im, an: _put(im, "path", 1, "a..b/x.png"),
    "unknown status": lambda im, an: _put(im, "status", 0, "fine"),
    "unknown split": lambda im, an: _put(im, "split", 0, "holdout"),
    "unknown label": lambda im, an: _put(im, "label", 0, "zebra"),
    "unknown annotation category": lambda im, an: _put(an, "category", 0, "zebra"),
    "unknown annotation image": lambda im, an: _put(an, "image_id", 0, "no-such-image"),
    "null annotation category": lambda im, an: _put(an, "category", 0, None),
    "duplicate annotation id": lambda im, an: _put(an, "id", 1, an.loc[0, "id"]),
    "unknown segmentation kind": lambda im, an: _put(an, "segmentation_kind", 0, "scribble"),
    "width as text": lambda im, an: im.__setitem__("width", im["width"].astype("string")),
    "width not whole": lambda im, an: _put(im, "width", 0, 3.5),
    "status as category": lambda im, an: im.__setitem__("status", im["status"].astype("category")),
}
ACCEPTED = ("harmless dots", "width as text", "status as category")  # pandas casts; the dots leave nothing


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_every_rule_gives_the_pandas_verdict(case: str, rich_manifest: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "m"
    shutil.copytree(rich_manifest, manifest)
    header = json.loads((manifest / "manifest.json").read_text())
    images = pd.read_parquet(manifest / header["tables"]["images"])
    annotations = pd.read_parquet(manifest / header["tables"]["annotations"])
    BROKEN[case](images, annotations)
    images.to_parquet(manifest / header["tables"]["images"], index=False)
    annotations.to_parquet(manifest / header["tables"]["annotations"], index=False)
    try:
        expected: object = _pandas_info(manifest, monkeypatch)
    except ManifestError as exc:
        expected = str(exc)
    try:
        got: object = info(manifest)
    except ManifestError as exc:
        got = str(exc)
    assert got == expected
    assert isinstance(got, dict) if case in ACCEPTED else isinstance(got, str), got


def test_info_on_parquet_imports_no_pandas(rich_manifest: Path) -> None:
    code = (f"import sys, json\nfrom datakit.info import info\ninfo({str(rich_manifest)!r})\n"
            "print(json.dumps(sorted(m for m in ('pandas', 'cv2', 'torch', 'PIL') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
