"""`datakit augment`: the offline writer, its lineage, --split, --verify, --workers, rebalancing, preview."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

import datakit
from datakit.errors import DatakitError
from datakit.geometry import rle_to_mask
from datakit.manifest import load_manifest, save_manifest
from datakit.splitting import stratified_split
from tests.augment_data import classes_manifest, shapes_manifest, with_splits


@pytest.fixture(scope="module")
def shapes_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_splits(shapes_manifest(tmp_path_factory.mktemp("shapes"), count=24))


@pytest.fixture(scope="module")
def augmented(shapes_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("aug") / "out"
    datakit.augment(shapes_split, out, preset="medium", copies=2, seed=5, show_progress=False)
    return out


def _derived(manifest: Path) -> pd.DataFrame:
    images = load_manifest(manifest).images
    return images[images["parent_id"].notna()]


def test_lineage_of_every_derived_image(shapes_split: Path, augmented: Path) -> None:
    source = load_manifest(shapes_split)
    out = load_manifest(augmented)
    derived = _derived(augmented)
    train = source.images[source.images["split"] == "train"]
    assert len(derived) == 2 * len(train)
    # the pipeline is stored once in the header, keyed by its hash
    assert set(derived["pipeline"]) == set(out.pipelines)
    (entry,) = out.pipelines.values()
    assert entry["pipeline"]["transform"]["__class_fullname__"] == "Compose"
    assert entry["albumentations"].startswith("2.0") and entry["opencv"]
    parents = source.images.set_index("id")
    for row in derived.itertuples():
        assert row.parent_id in parents.index and row.parent_sha256 == parents.loc[row.parent_id, "sha256"]
        assert row.split == "train" and row.seed is not pd.NA
        assert (augmented / "images" / row.path).is_file()
        applied = json.loads(row.applied)
        assert isinstance(applied, list) and all(set(step) == {"index", "name", "params"} for step in applied)
        fates = json.loads(row.objects)
        n_parent = int((source.annotations["image_id"] == row.parent_id).sum())
        assert len(fates) == n_parent
        assert all(f["status"] in ("kept", "clipped", "dropped") for f in fates)
        assert all(f.get("reason") for f in fates if f["status"] != "kept")
        kept = [f for f in fates if f["status"] != "dropped"]
        ann = out.annotations[out.annotations["image_id"] == row.id]
        assert sorted(ann["id"]) == sorted(f["id"] for f in kept)
        assert list(ann["category"]) == [f["category"] for f in sorted(kept, key=lambda f: f["id"])]


def test_val_and_test_are_carried_unchanged(shapes_split: Path, augmented: Path) -> None:
    source = load_manifest(shapes_split)
    out = load_manifest(augmented)
    carried = out.images[out.images["parent_id"].isna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(carried[source.images.columns], source.images[source.images.columns],
                                  check_dtype=False)
    pd.testing.assert_frame_equal(out.annotations.iloc[:len(source.annotations)].reset_index(drop=True),
                                  source.annotations, check_dtype=False)
    for row in source.images.itertuples():
        assert (augmented / "images" / row.path).read_bytes() == (source.root() / row.path).read_bytes()
    assert set(_derived(augmented)["split"]) == {"train"}


def test_unsplit_manifest_stops_with_a_message_and_split_all_augments_everything(tmp_path: Path) -> None:
    manifest = shapes_manifest(tmp_path, count=6)
    with pytest.raises(DatakitError, match="the manifest has no splits.*--split all"):
        datakit.augment(manifest, tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()
    result = datakit.augment(manifest, tmp_path / "all", split="all", preset="light", show_progress=False)
    assert result.derived == 6 and result.sources == 6


def test_older_manifest_without_lineage_columns_still_loads(shapes_split: Path, tmp_path: Path, allow_outside: None) -> None:
    m = load_manifest(shapes_split)
    old = shapes_split.parent / "old"  # beside the manifest, so its image root climbs one folder as usual
    old.mkdir()
    legacy = [c for c in m.images.columns if c not in ("parent_sha256", "pipeline", "seed", "applied", "objects")]
    m.images[legacy].to_csv(old / "images.csv", index=False)
    header = {"schema_version": 1, "tasks": m.tasks, "categories": m.categories,
              "image_root": os.path.relpath(m.root(), old),
              "tables": {"images": "images.csv"}}
    (old / "manifest.json").write_text(json.dumps(header))
    loaded = load_manifest(old)
    assert loaded.pipelines == {} and loaded.images["pipeline"].isna().all()
    result = datakit.augment(old, tmp_path / "out", preset="light", show_progress=False)
    assert result.derived == int((m.images["split"] == "train").sum())


def test_verify_passes_and_fails_when_one_byte_changes(augmented: Path, tmp_path: Path) -> None:
    assert datakit.augment(verify=augmented, show_progress=False).passed
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(augmented, copy)
    victim = _derived(copy).iloc[3]
    path = copy / "images" / victim["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = datakit.augment(verify=copy, show_progress=False)
    assert not result.passed
    assert [r["id"] for r in result.corrupt] == [victim["id"]] and result.version_mismatch == []
    assert result.ok == result.checked - 1
    proc = subprocess.run([sys.executable, "-m", "datakit", "augment", "--verify", str(copy)], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "corrupt" in proc.stdout
    # same damage, but the header says another albumentations made the images: a version mismatch
    header = json.loads((copy / "manifest.json").read_text())
    for entry in header["pipelines"].values():
        entry["albumentations"] = "2.0.0"
    (copy / "manifest.json").write_text(json.dumps(header))
    result = datakit.augment(verify=copy, show_progress=False)
    assert result.corrupt == [] and [r["id"] for r in result.version_mismatch] == [victim["id"]]
    assert "albumentations" in result.version_mismatch[0]["reason"]


def test_verify_regenerates_outputs_made_with_one_seed_for_every_transform(shapes_split: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs made before each transform had a stream of its own carry no 'seeding' in their
    pipeline entry; --verify seeds them as albumentations' set_random_seed did, so they still pass."""
    from datakit.augmentation import targets

    with monkeypatch.context() as patch:  # the writer as it seeded before
        patch.setattr(targets, "reseed", lambda transform, seed: transform.set_random_seed(seed))
        datakit.augment(shapes_split, tmp_path / "old", preset="medium", seed=5, workers=1, show_progress=False)
    header = json.loads((tmp_path / "old" / "manifest.json").read_text())
    assert not datakit.augment(verify=tmp_path / "old", show_progress=False).passed  # recorded as streams: wrong
    for entry in header["pipelines"].values():
        del entry["seeding"]
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(header))
    assert datakit.augment(verify=tmp_path / "old", show_progress=False).passed
    for entry in header["pipelines"].values():
        entry["seeding"] = "from-the-future"
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(header))
    with pytest.raises(DatakitError, match="seeded by a rule this datakit does not know"):
        datakit.augment(verify=tmp_path / "old", show_progress=False)


def test_verify_reports_a_changed_parent(augmented: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(augmented, copy)
    parent = load_manifest(copy).images.set_index("id").loc[_derived(copy).iloc[0]["parent_id"]]
    parent_file = copy / "images" / parent["path"]
    parent_file.unlink()  # break the hard link before writing
    image = cv2.imread(str(augmented / "images" / parent["path"]))
    cv2.imwrite(str(parent_file), 255 - image)
    result = datakit.augment(verify=copy, show_progress=False)
    assert not result.passed and result.parent_changed and "changed since it was augmented" in result.parent_changed[0]["reason"]


def test_one_and_two_workers_write_identical_files(shapes_split: Path, augmented: Path, tmp_path: Path) -> None:
    two = tmp_path / "two"
    datakit.augment(shapes_split, two, preset="medium", copies=2, seed=5, workers=2, show_progress=False)
    one_rows, two_rows = _derived(augmented), _derived(two)
    columns = [c for c in one_rows.columns if c != "mtime_ns"]
    pd.testing.assert_frame_equal(one_rows[columns].reset_index(drop=True), two_rows[columns].reset_index(drop=True))
    for path in one_rows["path"]:
        assert (augmented / "images" / path).read_bytes() == (two / "images" / path).read_bytes()
    pd.testing.assert_frame_equal(load_manifest(augmented).annotations, load_manifest(two).annotations)
    # another seed gives other images (a few may match where no transform of the preset fired)
    other = tmp_path / "other"
    datakit.augment(shapes_split, other, preset="medium", copies=2, seed=6, show_progress=False)
    assert len(set(_derived(other)["sha256"]) & set(one_rows["sha256"])) <= len(one_rows) // 4


def test_rotation_and_crop_keep_masks_on_their_shapes_and_boxes_around_them(tmp_path: Path) -> None:
    manifest = shapes_manifest(tmp_path, count=12, noise=0.0, objects=(1, 3))
    spec = tmp_path / "rotate_crop.yaml"
    spec.write_text(yaml.safe_dump([{"Affine": {"rotate": [20, 40], "p": 1.0}},
                                    {"CropAndPad": {"percent": [-0.2, -0.1], "keep_size": True, "p": 1.0}}]))
    out = tmp_path / "out"
    datakit.augment(manifest, out, spec=spec, split="all", copies=2, show_progress=False)
    m = load_manifest(out)
    source = load_manifest(manifest)
    derived = m.images[m.images["parent_id"].notna()]
    checked = 0
    for row in derived.itertuples():
        image = cv2.cvtColor(cv2.imread(str(out / "images" / row.path)), cv2.COLOR_BGR2RGB)
        parent = source.images.set_index("id").loc[row.parent_id]
        parent_image = cv2.cvtColor(cv2.imread(str(source.root() / parent["path"])), cv2.COLOR_BGR2RGB)
        parent_ann = source.annotations.set_index("id")
        fates = {f["id"]: f for f in json.loads(row.objects) if "id" in f}
        for ann in m.annotations[m.annotations["image_id"] == row.id].itertuples():
            mask = rle_to_mask(json.loads(ann.segmentation))
            ys, xs = np.nonzero(mask)
            # the box encloses the mask's pixels, tightly (it is recomputed from the mask)
            assert xs.min() == ann.bbox_x and xs.max() + 1 == ann.bbox_x + ann.bbox_w
            assert ys.min() == ann.bbox_y and ys.max() + 1 == ann.bbox_y + ann.bbox_h
            # the mask stays on its shape: away from the edge (where interpolation blends), its
            # pixels have the shape's colour in the parent (shapes have one flat colour each)
            source_mask = rle_to_mask(json.loads(parent_ann.loc[fates[ann.id]["annotation"], "segmentation"]))
            colour = np.median(parent_image[source_mask > 0], axis=0)
            inner = cv2.erode(mask, np.ones((5, 5), np.uint8))
            if inner.sum() < 5:
                continue
            pixels = image[inner > 0].astype(int)
            assert np.median(np.abs(pixels - colour).max(axis=1)) <= 12
            assert np.mean(np.abs(pixels - colour).max(axis=1) <= 40) > 0.95
            checked += 1
    assert checked >= 10


def test_classification_balance_gives_exact_counts(tmp_path: Path) -> None:
    manifest = with_splits(classes_manifest(tmp_path, count=40, imbalance=0.3))
    source = load_manifest(manifest)
    train = source.images[source.images["split"] == "train"]
    before = train["label"].value_counts().to_dict()
    largest = max(before.values())
    result = datakit.augment(manifest, tmp_path / "bal", balance=True, show_progress=False)
    out = load_manifest(tmp_path / "bal")
    counts = out.images[out.images["split"] == "train"]["label"].value_counts().to_dict()
    assert counts == {label: largest for label in before}
    assert result.after == counts and result.before == before
    # val and test untouched
    for split in ("val", "test"):
        assert (out.images["split"] == split).sum() == (source.images["split"] == split).sum()
    # round-robin: sources of a class are used evenly (counts differ by at most one)
    derived = out.images[out.images["parent_id"].notna()]
    for label, group in derived.groupby("label"):
        uses = group["parent_id"].value_counts()
        assert uses.max() - uses.min() <= 1
        assert len(uses) == min(before[label], largest - before[label])
    result = datakit.augment(manifest, tmp_path / "target", target=12, show_progress=False)
    out = load_manifest(tmp_path / "target")
    counts = out.images[out.images["split"] == "train"]["label"].value_counts().to_dict()
    assert counts == {label: max(12, n) for label, n in before.items()}
    assert any("left as it is" in note for note in result.notes) == any(n > 12 for n in before.values())


def test_a_class_with_no_image_in_the_split_is_named_when_balancing(tmp_path: Path) -> None:
    """It stayed at 0 with only a '-N' in the table's 'vs target' column."""
    manifest = with_splits(classes_manifest(tmp_path, count=40, imbalance=0.3))
    m = load_manifest(manifest)
    star_train = (m.images["label"] == "star") & (m.images["split"] == "train")
    m.images.loc[star_train, "split"] = "val"  # no star left to derive from in train
    save_manifest(m, manifest)
    result = datakit.augment(manifest, tmp_path / "bal", balance=True, show_progress=False)
    assert result.after["star"] == 0
    assert any(note.startswith("class 'star' has no image in the augmented split (train)") for note in result.notes)


def test_object_balance_reaches_the_target_and_reports_overshoot(tmp_path: Path) -> None:
    manifest = with_splits(shapes_manifest(tmp_path, count=30, objects=(1, 3)))
    source = load_manifest(manifest)
    train_ids = set(source.images.loc[source.images["split"] == "train", "id"])
    before = source.annotations[source.annotations["image_id"].isin(train_ids)]["category"].value_counts().to_dict()
    result = datakit.augment(manifest, tmp_path / "out", balance=True, preset="heavy", show_progress=False)
    out = load_manifest(tmp_path / "out")
    train_ids = set(out.images.loc[out.images["split"] == "train", "id"])
    after = out.annotations[out.annotations["image_id"].isin(train_ids)]["category"].value_counts().to_dict()
    goal = max(before.values())
    assert result.target == goal and result.counted == "objects"
    assert all(after[name] >= goal for name in before)
    assert result.after == after
    assert result.overshoot == {k: v - goal for k, v in after.items() if before[k] <= goal and v > goal}
    assert result.shortfall == {}


def test_derived_images_are_split_with_their_parent(augmented: Path) -> None:
    images = load_manifest(augmented).images.copy()
    images["label"] = images["id"].str[:1]  # any labels will do
    parents = images.set_index("id")
    for seed in range(3):
        splits = stratified_split(images, 0.3, 0.3, seed=seed)
        by_id = dict(zip(images["id"], splits))
        for row in images[images["parent_id"].notna()].itertuples():
            assert by_id[row.id] == by_id[row.parent_id]
    assert len(parents) == len(images)


def test_preview_draws_originals_and_versions(shapes_split: Path, tmp_path: Path) -> None:
    path = tmp_path / "grid.png"
    result = datakit.augment(shapes_split, preview=path, preset="heavy", show_progress=False)
    grid = cv2.imread(str(path))
    from datakit.augmentation.preview import CELL, HEADER

    assert grid.shape == (HEADER + 4 * CELL, 4 * CELL, 3) and result.sources == 4
    # boxes are drawn: every original tile holds pixels of its class colour that the image itself lacks
    assert not np.array_equal(grid[HEADER:HEADER + CELL, :CELL], grid[HEADER:HEADER + CELL, CELL:2 * CELL])


def test_bad_usage_is_one_clear_error(shapes_split: Path, tmp_path: Path) -> None:
    with pytest.raises(DatakitError, match="--copies and --balance"):
        datakit.augment(shapes_split, tmp_path / "o", copies=2, balance=True, show_progress=False)
    with pytest.raises(DatakitError, match="either --preset or --spec"):
        datakit.augment(shapes_split, tmp_path / "o", preset="light", spec=["HorizontalFlip"], show_progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DatakitError, match="not an empty folder"):
        datakit.augment(shapes_split, tmp_path / "full", show_progress=False)
    with pytest.raises(DatakitError, match="no derived images"):
        datakit.augment(verify=shapes_split, show_progress=False)


def test_horizontal_flip_through_the_writer_moves_every_box_to_w_minus_x_minus_w(tmp_path: Path) -> None:
    manifest = shapes_manifest(tmp_path, count=8, objects=(2, 3))
    out = tmp_path / "out"
    datakit.augment(manifest, out, spec=[{"HorizontalFlip": {"p": 1.0}}], split="all", show_progress=False)
    m = load_manifest(out)
    parent_ann = m.annotations.set_index("id")
    checked = 0
    for row in m.images[m.images["parent_id"].notna()].itertuples():
        fates = json.loads(row.objects)
        assert all(f["status"] == "kept" for f in fates)  # a flip cuts nothing off
        for fate in fates:
            before, after = parent_ann.loc[fate["annotation"]], parent_ann.loc[fate["id"]]
            assert after["bbox_x"] == row.width - before["bbox_x"] - before["bbox_w"]
            assert (after["bbox_y"], after["bbox_w"], after["bbox_h"]) == (before["bbox_y"], before["bbox_w"], before["bbox_h"])
            assert after["category"] == before["category"]
            checked += 1
    assert checked >= 16


def test_a_failed_run_leaves_no_half_made_output(shapes_split: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datakit.augmentation import offline

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(offline, "_carry_files", broken)
    with pytest.raises(KeyboardInterrupt):
        datakit.augment(shapes_split, tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_sigterm_cleans_up_as_ctrl_c_does(shapes_split: Path, tmp_path: Path) -> None:
    """kill (or a scheduler) sends SIGTERM, whose default ended the process mid-write: the
    half-made folder then blocked the next run ("exists and is not an empty folder")."""
    import os
    import signal
    import time

    from tests.conftest import REPO, default_sigint

    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "datakit", "augment", str(shapes_split), "-o", str(out),
                                "--copies", "400", "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and len(list(out.rglob("*.png"))) < 20:
        time.sleep(0.05)
    assert process.poll() is None, "finished before it could be stopped"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in stderr, stderr
    assert not out.exists()


def test_semantic_masks_follow_the_pixels_and_verify(tmp_path: Path) -> None:
    datakit.sample("shapes", tmp_path / "shapes", count=6, noise=0.0, show_progress=False)
    datakit.ingest(tmp_path / "shapes", tmp_path / "m", format="masks", show_progress=False)
    out = tmp_path / "out"
    datakit.augment(tmp_path / "m", out, spec=[{"Affine": {"rotate": [30, 30], "p": 1.0}}], split="all",
                    show_progress=False)
    m = load_manifest(out)
    ids = {c["id"] for c in m.categories}
    for row in m.images[m.images["parent_id"].notna()].itertuples():
        semantic = cv2.imread(str(out / "images" / row.semantic_mask), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(out / "images" / row.path))
        assert semantic.shape == image.shape[:2]
        assert set(np.unique(semantic).tolist()) <= ids | {0}  # nearest neighbour: no invented class
        # the class map moved with the pixels: where the map says background, the rotation's black
        # corners are; where it names a class, the image is not black
        inner = cv2.erode((semantic > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert inner.any() and (image[inner].max(axis=1) > 0).mean() > 0.99
    assert datakit.augment(verify=out, show_progress=False).passed


def test_balancing_an_augmented_manifest_counts_its_derived_images(tmp_path: Path) -> None:
    """Balancing counted the originals only: a balanced set got 16 more images and came out
    10/13/17/16 while the table said 10/10/10/10; the same seed then gave the same derived paths
    ('already in the manifest')."""
    from datakit.manifest import load_manifest

    manifest = classes_manifest(tmp_path, count=40, imbalance=0.3)
    first = datakit.augment(manifest, tmp_path / "bal", balance=True, split="all", show_progress=False)
    assert len(set(first.after.values())) == 1 and first.derived > 0

    def counts(path: Path) -> dict[str, int]:
        images = load_manifest(path).images
        return images.loc[images["status"] == "ok", "label"].value_counts().to_dict()

    assert counts(tmp_path / "bal") == first.after
    again = datakit.augment(tmp_path / "bal", tmp_path / "bal2", balance=True, split="all", show_progress=False)
    assert again.derived == 0 and again.before == again.after == first.after
    goal = max(first.after.values()) + 3
    more = datakit.augment(tmp_path / "bal", tmp_path / "bal3", target=goal, split="all", show_progress=False)
    assert more.derived == 3 * len(first.after) and counts(tmp_path / "bal3") == more.after
    assert set(more.after.values()) == {goal}
