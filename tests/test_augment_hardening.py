"""`datakit augment` on the inputs that used to break it: odd folder names, outputs inside inputs,
parents changed since ingest, edited annotations, specs that fail at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

import datakit
from datakit.errors import DatakitError
from datakit.manifest import load_manifest
from datakit.parquet_files import read_parquet, write_parquet
from tests.augment_data import shapes_manifest


def test_a_manifest_folder_named_with_a_colon_is_written_and_read_back(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow took 'aug:heavy/images.parquet' for a URI ("Unrecognized filesystem type")."""
    monkeypatch.chdir(tmp_path)
    datakit.sample("shapes", "shapes", count=6, show_progress=False)
    datakit.ingest("shapes", "m:in", show_progress=False)
    assert len(load_manifest("m:in").images) == 6
    datakit.augment("m:in", "aug:heavy", split="all", preset="light", show_progress=False)
    assert datakit.info("aug:heavy")["images"] == 12
    assert len(load_manifest("aug:heavy").images) == 12
    # the other Parquet files (sweep results, pixel caches) go through the same helpers
    write_parquet(pd.DataFrame({"a": [1, 2]}), "aug:heavy/cache.parquet")
    assert read_parquet("aug:heavy/cache.parquet")["a"].tolist() == [1, 2]


@pytest.mark.parametrize("inside", ["images/aug", "m/sub", "m"])
def test_an_output_inside_the_input_is_refused_before_anything_is_written(tmp_path: Path, inside: str) -> None:
    """Derived images under the input's image folder became a new class 'aug' at the next ingest."""
    datakit.sample("shapes", tmp_path / "shapes", count=4, show_progress=False)
    datakit.ingest(tmp_path / "shapes" / "images", tmp_path / "m", show_progress=False)
    folder = {"images": tmp_path / "shapes" / "images", "m": tmp_path / "m"}
    first, _, rest = inside.partition("/")
    output = folder[first] / rest if rest else folder[first]
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(DatakitError, match="is inside the input"):
        datakit.augment(tmp_path / "m", output, split="all", show_progress=False)
    assert sorted(p for p in tmp_path.rglob("*")) == before


def _two_image_manifest(tmp: Path) -> Path:
    datakit.sample("shapes", tmp / "shapes", count=4, show_progress=False)
    (tmp / "c" / "a").mkdir(parents=True)
    for name in sorted(p.name for p in (tmp / "shapes" / "images").rglob("*.png"))[:2]:
        (tmp / "c" / "a" / name).write_bytes(next((tmp / "shapes" / "images").rglob(name)).read_bytes())
    datakit.ingest(tmp / "c", tmp / "c.m", show_progress=False)
    return tmp / "c.m"


def test_a_parent_changed_since_ingest_is_skipped_not_given_a_false_lineage(tmp_path: Path) -> None:
    """The derived image was made from the edited file but recorded the hash ingest saw, and
    --verify failed at once."""
    from PIL import Image

    manifest = _two_image_manifest(tmp_path)
    changed, kept = sorted(load_manifest(manifest).images["path"])
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "c" / changed)
    result = datakit.augment(manifest, tmp_path / "ca", split="all", preset="light", show_progress=False)
    assert [s["path"] for s in result.skipped] == [changed]
    assert "changed since ingest; re-ingest first" in result.skipped[0]["reason"]
    assert result.derived == 1 and result.after == {"a": 3}
    derived = load_manifest(tmp_path / "ca").images.dropna(subset=["parent_id"])
    parents = load_manifest(manifest).images.set_index("path")
    assert list(derived["parent_sha256"]) == [parents.loc[kept, "sha256"]]
    assert datakit.augment(verify=tmp_path / "ca", show_progress=False).passed
    Image.new("RGB", (64, 64), "red").save(tmp_path / "c" / kept)
    with pytest.raises(DatakitError, match=r"every source image \(2\) changed since ingest; re-ingest first"):
        datakit.augment(manifest, tmp_path / "none", split="all", show_progress=False)
    assert not (tmp_path / "none").exists()


@pytest.fixture(scope="module")
def augmented_objects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detection + instance segmentation output where every derived image keeps its objects."""
    tmp = tmp_path_factory.mktemp("objects")
    out = tmp / "out"
    datakit.augment(shapes_manifest(tmp, count=6, objects=(2, 3)), out, spec=[{"HorizontalFlip": {"p": 1.0}}],
                    split="all", show_progress=False)
    return out


def _edit_derived_annotations(source: Path, copy: Path, edit: Callable[[pd.DataFrame, pd.Series], pd.DataFrame]) -> str:
    """Copy ``source`` to ``copy`` and apply ``edit`` to its annotations table; the derived image's id."""
    import json
    import shutil

    shutil.copytree(source, copy)
    tables = json.loads((copy / "manifest.json").read_text())["tables"]
    annotations = read_parquet(copy / tables["annotations"])
    derived = annotations["id"].str.contains(":")
    victim = annotations[derived].iloc[0]
    write_parquet(edit(annotations, annotations["id"] == victim["id"]), copy / tables["annotations"])
    return str(victim["image_id"])


def _shift_box(table: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    table.loc[row, "bbox_x"] += 1.0
    return table


def _other_category(table: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    current = table.loc[row, "category"].iloc[0]
    table.loc[row, "category"] = next(c for c in table["category"].unique() if c != current)
    return table


def _other_mask(table: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    table.loc[row, "segmentation"] = table.loc[~row & table["id"].str.contains(":"), "segmentation"].iloc[0]
    return table


@pytest.mark.parametrize("edit, detail", [(_shift_box, "box"), (_other_category, "category differs"),
                                          (lambda t, row: t[~row], "objects recorded"),
                                          (_other_mask, "instance mask differs")],
                         ids=["box shifted", "category changed", "row deleted", "mask replaced"])
def test_verify_finds_edited_annotations_of_derived_images(augmented_objects: Path, tmp_path: Path,
                                                           edit: Callable[..., pd.DataFrame], detail: str) -> None:
    """--verify compared only pixels, so edited boxes, categories and rows passed as 'verified'."""
    assert datakit.augment(verify=augmented_objects, show_progress=False).passed
    victim = _edit_derived_annotations(augmented_objects, tmp_path / "copy", edit)
    result = datakit.augment(verify=tmp_path / "copy", show_progress=False)
    assert not result.passed and result.corrupt == []
    assert [r["id"] for r in result.objects_differ] == [victim]
    assert result.objects_differ[0]["reason"].startswith("objects differ: ") and detail in result.objects_differ[0]["reason"]


@pytest.fixture(scope="module")
def small_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("classes")
    datakit.sample("shapes", tmp / "shapes", count=8, show_progress=False)
    datakit.ingest(tmp / "shapes" / "images", tmp / "m", show_progress=False)
    return tmp / "m"


def _unchanged(image: object, **params: object) -> object:
    return image


@pytest.mark.parametrize("workers", [1, 2])
def test_a_transform_failing_on_an_image_is_one_clear_error_and_leaves_nothing(small_classes: Path, tmp_path: Path,
                                                                              workers: int) -> None:
    """A crop larger than the image raised albumentations' CropSizeError as a traceback."""
    spec = [{"RandomCrop": {"height": 500, "width": 500}}]
    with pytest.raises(DatakitError, match=r"^augment: \w+/shapes_\d+\.png: RandomCrop: Crop size .*\(500, 500\) vs "
                                           r"\(64, 64\)$"):
        datakit.augment(small_classes, tmp_path / "out", spec=spec, split="all", workers=workers, show_progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(DatakitError, match="RandomCrop: Crop size"):
        datakit.augment(small_classes, preview=tmp_path / "p.png", spec=spec, split="all", show_progress=False)


def test_lambda_and_float_outputs_are_refused_before_any_image_is_made(small_classes: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda raised a ValueError traceback; Normalize wrote near-black PNGs."""
    import albumentations as A

    with pytest.raises(DatakitError, match=r"augment\[0\]: Lambda runs Python functions.*no lineage"):
        datakit.augment(small_classes, tmp_path / "l", spec=[{"Lambda": {}}], split="all", show_progress=False)
    with pytest.raises(DatakitError, match="cannot be serialized, so its images would have no lineage"):
        datakit.augment(small_classes, tmp_path / "l", spec=A.Compose([A.Lambda(image=_unchanged)]),
                        split="all", show_progress=False)
    for name in ("Normalize", "ToFloat"):
        with pytest.raises(DatakitError, match=f"{name} outputs float images.*8-bit"):
            datakit.augment(small_classes, tmp_path / "n", spec=[{name: {"p": 1}}], split="all", show_progress=False)
    assert not (tmp_path / "l").exists() and not (tmp_path / "n").exists()
    # a transform the up-front list does not know is stopped at the first image it makes
    from datakit.augmentation import render

    monkeypatch.setattr(render, "NOT_8BIT", ())
    with pytest.raises(DatakitError, match=r"Normalize made a float32 image; offline augmentation writes 8-bit"):
        datakit.augment(small_classes, tmp_path / "n", spec=[{"Normalize": {"p": 1}}], split="all",
                        show_progress=False)
    assert not (tmp_path / "n").exists()


def test_list_presets_json_is_json() -> None:
    """--list-presets --json printed the rich tables."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "datakit", "augment", "--list-presets", "--json"],
                          capture_output=True, text=True, check=True)
    listed = json.loads(proc.stdout)
    assert [p["name"] for p in listed["presets"]] == ["light", "medium", "heavy"]
    assert all(p["transforms"] and p["assumes"] for p in listed["presets"])
    assert [o["name"] for o in listed["orientations"]] == ["upright", "any", "fixed"]


def test_list_presets_with_a_manifest_and_output_says_it_augments_nothing(small_classes: Path, tmp_path: Path) -> None:
    """`augment M -o OUT --list-presets` listed the presets and exited 0: the user thought M was augmented."""
    from typer.testing import CliRunner

    from datakit.cli import app

    result = CliRunner().invoke(app, ["augment", str(small_classes), "-o", str(tmp_path / "out"), "--list-presets"])
    assert result.exit_code == 2 and "augments nothing" in result.output


def test_copies_has_a_limit_and_task_takes_the_short_names(small_classes: Path, tmp_path: Path) -> None:
    """--copies 100000 planned 1 GB of jobs; --task segment was refused though the README says segment."""
    from datakit.augmentation.offline import MAX_COPIES

    with pytest.raises(DatakitError, match=f"--copies {MAX_COPIES + 1} is more than {MAX_COPIES}"):
        datakit.augment(small_classes, tmp_path / "many", copies=MAX_COPIES + 1, split="all", show_progress=False)
    assert not (tmp_path / "many").exists()
    for short, task in (("segment", "semantic_segmentation"), ("instance", "instance_segmentation"),
                        ("detect", "detection"), ("classify", "classification")):
        result = datakit.augment(small_classes, preview=tmp_path / f"{short}.png", task=short, split="all",
                                 preview_count=1, show_progress=False)
        assert result.sources == 1
        from datakit.augmentation.offline import choose_task

        assert choose_task(load_manifest(small_classes), short) == task
    with pytest.raises(DatakitError, match="augment has no presets for task 'localize'"):
        datakit.augment(small_classes, tmp_path / "loc", task="localize", split="all", show_progress=False)


def test_nested_short_form_specs_build_their_children(small_classes: Path, tmp_path: Path) -> None:
    """{OneOf: {transforms: [{HorizontalFlip: {}}]}} failed with "'str' object has no attribute 'available_keys'"."""
    spec = [{"OneOf": {"transforms": [{"HorizontalFlip": {"p": 1.0}}, "VerticalFlip",
                                      {"Sequential": {"transforms": [{"Blur": {"p": 1.0}}]}}], "p": 1.0}}]
    result = datakit.augment(small_classes, tmp_path / "out", spec=spec, split="all", show_progress=False)
    assert result.derived == 8 and datakit.augment(verify=tmp_path / "out", show_progress=False).passed
    with pytest.raises(DatakitError, match=r"augment\[0\]: OneOf.transforms\[0\]: unknown transform 'HorizontalFip'; "
                                           "did you mean 'HorizontalFlip'"):
        datakit.augment(small_classes, tmp_path / "bad", spec=[{"OneOf": {"transforms": ["HorizontalFip"]}}],
                        split="all", show_progress=False)


@pytest.mark.parametrize(("option", "value"), [("copies", "2"), ("copies", 2.5), ("target", "20"), ("seed", "abc"),
                                               ("workers", "2"), ("balance", "yes")])
def test_a_wrongly_typed_option_is_one_clear_error(small_classes: Path, tmp_path: Path, option: str, value: object) -> None:
    """copies="2" raised TypeError ('<' not supported between str and int); seed="abc" was accepted
    and written into augment.json."""
    extra = {"balance": False} if option != "balance" else {}
    with pytest.raises(DatakitError, match=rf"--{option} must be"):
        datakit.augment(small_classes, tmp_path / "out", split="all", show_progress=False, **extra, **{option: value})
    assert not (tmp_path / "out").exists()
