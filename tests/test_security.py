"""Hostile files: each test feeds one and checks the outcome (issue 11, security)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.errors import DatakitError, ManifestError
from datakit.evaluation import evaluate
from datakit.imageinfo import DEFAULT_MAX_PIXELS
from datakit.ingest import ingest, inspect_paths
from datakit.manifest import load_manifest, save_manifest
from datakit.pipeline import run_pipeline
from datakit.prediction import predict
from datakit.training import train
from tests.conftest import TINY_TRAIN, write_png

runner = CliRunner()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb(path: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A valid-looking PNG of a few hundred bytes whose header claims width x height pixels:
    decoding it would allocate width * height * 3 bytes (7.5 GB for the default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = zlib.compress(b"\x00" * 4096, 9)  # far fewer rows than declared; a decoder still sizes for all
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))
    return path


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging forever (a FIFO opened for reading blocks until a writer comes)."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds}s: something opened a FIFO")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _two_classes(src: Path, per_class: int = 3) -> Path:
    for name in ("a", "b"):
        for i in range(per_class):
            write_png(src / name / f"{name}{i}.png", 8, 8, seed=i)
    return src


# ---------------------------------------------------------------------------------------------
# 1. decompression bombs


def test_ingest_marks_a_bomb_too_large_and_never_decodes_it(tmp_path: Path) -> None:
    src = _two_classes(tmp_path / "src")
    write_bomb(src / "a" / "bomb.png")
    assert (src / "a" / "bomb.png").stat().st_size < 1000
    result = ingest(src, tmp_path / "m", workers=1, verify="decode", show_progress=False)
    rows = load_manifest(tmp_path / "m").images.set_index("path")
    assert rows.loc["a/bomb.png", "status"] == "too_large"
    reason = rows.loc["a/bomb.png", "reason"]
    assert "50000x50000" in reason and "--max-pixels" in reason and "179" in reason
    assert result.status_counts == {"ok": 6, "too_large": 1}
    assert (rows.drop("a/bomb.png")["status"] == "ok").all()
    assert DEFAULT_MAX_PIXELS == 178_956_970  # Pillow's error threshold


def test_max_pixels_moves_the_limit_both_ways(tmp_path: Path) -> None:
    src = _two_classes(tmp_path / "src")
    write_bomb(src / "b" / "wide.png", 20_000, 10_000)  # 200 MP: over the default
    write_png(src / "b" / "big.png", 40, 30)
    result = runner.invoke(app, ["ingest", str(src), "-o", str(tmp_path / "m"), "--max-pixels", "1000", "--json"])
    assert result.exit_code == 0, result.output
    rows = load_manifest(tmp_path / "m").images.set_index("path")
    assert rows.loc["b/big.png", "status"] == "too_large"  # 1200 pixels > 1000
    assert rows.loc["a/a0.png", "status"] == "ok"  # 64 pixels
    ingest(src, tmp_path / "m2", max_pixels=300_000_000, workers=1, show_progress=False)
    assert load_manifest(tmp_path / "m2").images.set_index("path").loc["b/wide.png", "status"] == "ok"
    bad = runner.invoke(app, ["ingest", str(src), "-o", str(tmp_path / "m3"), "--max-pixels", "0"])
    assert bad.exit_code == 2 and "--max-pixels must be a positive" in bad.output


def test_a_format_reader_marks_a_bomb_too_large(tmp_path: Path) -> None:
    write_png(tmp_path / "ok.png", 8, 8)
    write_bomb(tmp_path / "bomb.png")
    frame = inspect_paths(tmp_path, ["ok.png", "bomb.png"], workers=1, show_progress=False).set_index("path")
    assert frame.loc["bomb.png", "status"] == "too_large" and frame.loc["ok.png", "status"] == "ok"


def test_predict_reports_a_bomb_as_a_row_and_keeps_every_other_prediction(digits_run, tmp_path: Path) -> None:
    good = [write_png(tmp_path / f"good{i}.png", 8, 8, mode="L", seed=i) for i in range(3)]
    bomb = write_bomb(tmp_path / "bomb.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    table = predict(digits_run.run_dir, [*good, bomb, text]).set_index("path")
    assert table.loc[[str(p) for p in good], "label"].notna().all()
    assert "too large" in table.loc[str(bomb), "error"] and pd.isna(table.loc[str(bomb), "label"])
    assert "cannot decode" in table.loc[str(text), "error"] and "ingest" not in table.loc[str(text), "error"].split("(")[0]
    result = runner.invoke(app, ["predict", str(digits_run.run_dir), str(tmp_path), "--csv", str(tmp_path / "p.csv")])
    assert result.exit_code == 1, result.output  # some images failed: the exit code says so
    assert "2 of 5 image(s) could not be predicted" in result.output
    written = pd.read_csv(tmp_path / "p.csv")
    assert len(written) == 5 and written["label"].notna().sum() == 3


def _manifest_with_images_outside(digits_small: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of digits_small whose images live beside its manifest (so it may be trusted)."""
    m = load_manifest(digits_small)
    source = tmp_path / "images"
    shutil.copytree(m.root(), source)
    m.image_root = str(source)
    save_manifest(m, tmp_path / "m")
    return tmp_path / "m", source


def test_train_and_eval_leave_a_bomb_out_and_say_so(digits_small: Path, digits_run, tmp_path: Path) -> None:
    manifest, source = _manifest_with_images_outside(digits_small, tmp_path)
    rows = load_manifest(manifest).images
    victim = source / rows["path"].iloc[3]
    write_bomb(victim)  # replaced after ingest: the manifest still says ok
    result = train(manifest, output=tmp_path / "run", show_progress=False, epochs=1, **TINY_TRAIN)
    assert any("could not be decoded" in n and "image too large" in n for n in result.notes)
    # without the in-memory cache the files are screened from their headers instead
    uncached = train(manifest, output=tmp_path / "run2", show_progress=False, epochs=1,
                     **{**TINY_TRAIN, "data.cache": False})
    assert any("image too large" in n for n in uncached.notes)
    metrics = evaluate(digits_run.run_dir, manifest, split="all", show_progress=False)
    assert len(metrics["skipped"]) == 1 and "image too large" in metrics["skipped"][0]["reason"]
    assert metrics["images"] == len(rows) - 1


def _in_a_memory_capped_process(code: str, cwd: Path) -> "subprocess.CompletedProcess[str]":
    """Run Python code with 3 GiB of address space, so a rasterization bomb fails alone rather than
    taking the test run (or the machine) down with it."""
    import resource
    import subprocess
    import sys

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    return subprocess.run([sys.executable, "-c", code], cwd=cwd, preexec_fn=cap, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


def test_an_annotation_bomb_polygon_is_refused_not_rasterized(tmp_path: Path) -> None:
    """One polygon vertex at 5e9 made pycocotools walk its edges pixel by pixel until the process was
    killed; a NaN coordinate did the same. Each is now one line in the report."""
    from tests.formats_data import tiny_coco

    far, nan = [1, 1, 5e9, 1, 5e9, 5e9, 1, 5e9], [1, 1, 6, float("nan"), 6, 5, 1, 5]
    tiny_coco(tmp_path / "src", [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [far], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [nan], "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 6, 1, 6, 5, 1, 5]], "iscrowd": 0}])
    done = _in_a_memory_capped_process(
        "import json, datakit\n"
        "r = datakit.ingest('src', 'm', format='coco', show_progress=False)\n"
        "print(json.dumps([s['reason'] for s in r.skipped]))", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    reasons = json.loads(done.stdout.strip().splitlines()[-1])
    assert any("beyond 1,000,000 pixels (5e+09)" in r for r in reasons)
    assert any("not finite (NaN or infinity)" in r for r in reasons)
    assert len(load_manifest(tmp_path / "m").annotations) == 1


def test_predicted_polygon_bombs_are_lint_not_rasterized(tmp_path: Path) -> None:
    from tests.formats_data import tiny_coco

    tiny_coco(tmp_path / "src", [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 6, 1, 6, 5, 1, 5]],
                                  "iscrowd": 0}])
    (tmp_path / "p.json").write_text(json.dumps([
        {"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": [[1, 1, 6, 1, 6, 5, 1, 5]]},
        {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": [[1, 1, 5e9, 1, 5e9, 5e9, 1, 5e9]]}]))
    (tmp_path / "yolo").mkdir()
    (tmp_path / "yolo" / "a.txt").write_text("0 0.1 0.1 0.8 0.1 0.8 0.8 0.9\n0 0.1 0.1 9e8 0.1 9e8 9e8 0.5\n")
    done = _in_a_memory_capped_process(
        "import datakit\n"
        "datakit.ingest('src', 'm', format='coco', show_progress=False)\n"
        "from datakit.errors import DatakitError\n"
        "for p in ('p.json', 'yolo'):\n"
        "    try:\n"
        "        datakit.evaluate_predictions(p, 'm', plots=False)\n"
        "    except DatakitError as e:\n"
        "        print('refused:', str(e).replace(chr(10), ' '))\n", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    refused = [line for line in done.stdout.splitlines() if line.startswith("refused:")]
    assert len(refused) == 2, done.stdout
    assert "a polygon that has a coordinate beyond 1,000,000 pixels" in refused[0]
    assert "line(s) with an unusable polygon" in refused[1]


# ---------------------------------------------------------------------------------------------
# 2. image_root that leaves the data set


def _crafted(tmp_path: Path, image_root: str, name: str = "passwd") -> Path:
    """A manifest written by hand, as an attacker would ship it."""
    location = tmp_path / "evil.manifest"
    location.mkdir(parents=True)
    pd.DataFrame([{"id": "x", "path": name, "status": "ok", "label": "cat"}]).to_csv(location / "images.csv", index=False)
    (location / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "tasks": ["classification"], "categories": [{"id": 0, "name": "cat"}],
        "image_root": image_root, "tables": {"images": "images.csv"}}))
    return location


@pytest.mark.parametrize("image_root, problem", [
    ("/etc", "is absolute"),
    ("../../../../../../../../etc", "climbs 8 folders above the manifest"),
    ("images/../../../secret", "climbs 2 folders above the manifest"),
])
def test_an_image_root_outside_the_data_set_is_refused(tmp_path: Path, image_root: str, problem: str) -> None:
    manifest = _crafted(tmp_path, image_root)
    result = runner.invoke(app, ["export", str(manifest), "--format", "imagefolder", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert problem in result.output and "--allow-outside" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(ManifestError, match="outside the data set"):
        load_manifest(manifest)


def test_allow_outside_is_the_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = write_png(tmp_path / "elsewhere" / "deep" / "pic.png", 8, 8)
    manifest = _crafted(tmp_path / "a" / "b", str(secret.parent), name="pic.png")
    result = runner.invoke(app, ["export", str(manifest), "--format", "imagefolder", "-o", str(tmp_path / "out"),
                                 "--allow-outside"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "cat" / "pic.png").read_bytes() == secret.read_bytes()
    assert runner.invoke(app, ["info", str(manifest), "--allow-outside"]).exit_code == 0
    monkeypatch.setenv("DATAKIT_ALLOW_OUTSIDE", "1")
    assert load_manifest(manifest).root() == secret.parent


def test_an_annotation_format_never_opens_an_image_symlinked_outside_the_source(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """COCO names the images; links among them that leave the source are refused as the folder
    scan refuses them (a link to /etc/passwd was read: 'not an image (starts with b'root:x:0')')."""
    from datakit.samples import make_shapes

    monkeypatch.delenv("DATAKIT_ALLOW_OUTSIDE", raising=False)
    src = tmp_path / "s"
    make_shapes(src, count=4, size=24)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    picture = write_png(tmp_path / "elsewhere.png", 16, 16)
    first, second = sorted((src / "images").rglob("*.png"))[:2]
    for link, target in ((first, secret), (second, picture)):
        link.unlink()
        link.symlink_to(target)
    refused = ingest(src, tmp_path / "m", workers=1, show_progress=False)
    assert refused.format == "coco"
    reasons = {b["path"]: (b["status"], b["reason"]) for b in refused.broken}
    for link, target in ((first, secret), (second, picture)):
        status, reason = reasons[link.relative_to(src).as_posix()]
        assert status == "unreadable" and f"symlink resolves outside the source ({target})" in reason
        assert "--allow-outside" in reason and "root:x" not in reason
    trusted = ingest(src, tmp_path / "m2", workers=1, show_progress=False, allow_outside=True)
    assert {b["path"] for b in trusted.broken} == {first.relative_to(src).as_posix()}  # the text file, read


def test_one_level_up_is_what_ingest_writes_and_is_accepted(tmp_path: Path) -> None:
    src = _two_classes(tmp_path / "shapes")
    ingest(src, tmp_path / "shapes.manifest", workers=1, show_progress=False)
    header = json.loads((tmp_path / "shapes.manifest" / "manifest.json").read_text())
    assert header["image_root"] == "../shapes"
    assert len(load_manifest(tmp_path / "shapes.manifest").images) == 6


def test_ingest_refuses_a_manifest_far_from_its_images_before_reading(tmp_path: Path) -> None:
    src = _two_classes(tmp_path / "data" / "shapes")
    result = runner.invoke(app, ["ingest", str(src), "-o", str(tmp_path / "x" / "y" / "m")])
    assert result.exit_code == 2 and "climbs" in result.output and "--allow-outside" in result.output
    assert not (tmp_path / "x").exists()
    ok = runner.invoke(app, ["ingest", str(src), "-o", str(tmp_path / "x" / "y" / "m"), "--allow-outside"])
    assert ok.exit_code == 0, ok.output


def test_a_saved_copy_points_at_the_same_images_relatively(tmp_path: Path) -> None:
    src = _two_classes(tmp_path / "shapes")
    ingest(src, tmp_path / "shapes.manifest", workers=1, show_progress=False)
    m = load_manifest(tmp_path / "shapes.manifest")
    save_manifest(m, tmp_path / "copy.manifest")
    header = json.loads((tmp_path / "copy.manifest" / "manifest.json").read_text())
    assert header["image_root"] == "../shapes"
    assert load_manifest(tmp_path / "copy.manifest").image_path("a/a0.png").is_file()


def test_pipeline_split_step_writes_a_relative_root(tmp_path: Path) -> None:
    out = tmp_path / "p"
    run_pipeline({"name": "rel", "steps": [{"sample": {"name": "digits"}}, {"ingest": {}}, {"split": {}}]},
                 out, show_progress=False)
    header = json.loads((out / "split" / "manifest.json").read_text())
    assert not os.path.isabs(header["image_root"]) and header["image_root"].startswith("../")
    assert load_manifest(out / "split").image_path(load_manifest(out / "split").images["path"].iloc[0]).is_file()


def test_an_annotation_file_or_folder_linked_outside_the_data_set_is_refused_before_reading(tmp_path: Path) -> None:
    """COCO's JSON (or a YOLO labels folder) symlinked to a file elsewhere was read into the manifest:
    a data set could pull any file on the machine into what it ships."""
    from tests.formats_data import tiny_coco

    outside = tmp_path / "elsewhere"
    coco = tiny_coco(outside, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 2], "iscrowd": 0}])
    src = tmp_path / "src"
    shutil.copytree(outside / "images", src / "images")
    (src / "annotations").mkdir()
    (src / "annotations" / "instances.json").symlink_to(coco)
    with pytest.raises(DatakitError, match=r"1 symlink\(s\) lead outside the data set \(annotations/instances.json -> "
                                           r".*elsewhere/annotations/instances.json\).*--allow-outside"):
        ingest(src, tmp_path / "m", format="coco", workers=1, show_progress=False)
    assert not (tmp_path / "m").exists()
    trusted = ingest(src, tmp_path / "m", format="coco", workers=1, show_progress=False, allow_outside=True)
    assert trusted.total == 1
    (src / "annotations" / "instances.json").unlink()
    shutil.copyfile(coco, src / "annotations" / "instances.json")
    (src / "labels").symlink_to(outside, target_is_directory=True)  # a folder link counts too
    with pytest.raises(DatakitError, match=r"labels -> "):
        ingest(src, tmp_path / "m2", format="coco", workers=1, show_progress=False)


# ---------------------------------------------------------------------------------------------
# 3. FIFOs and other special files


def test_a_fifo_is_skipped_and_reported_never_opened(tmp_path: Path) -> None:
    src = _two_classes(tmp_path / "src")
    os.mkfifo(src / "a" / "pipe.jpg")
    os.mkfifo(src / "b" / "other")
    with deadline(60):
        result = ingest(src, tmp_path / "m", workers=1, show_progress=False)
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert "FIFO" in reasons["a/pipe.jpg"] and "never opened" in reasons["a/pipe.jpg"]
    assert "FIFO" in reasons["b/other"]
    assert result.total == 6


def test_a_fifo_named_by_an_annotation_file_or_given_to_predict_is_a_row(tmp_path: Path, digits_run) -> None:
    write_png(tmp_path / "ok.png", 8, 8, mode="L")
    os.mkfifo(tmp_path / "pipe.png")
    with deadline(60):
        frame = inspect_paths(tmp_path, ["ok.png", "pipe.png"], workers=1, show_progress=False).set_index("path")
        table = predict(digits_run.run_dir, [tmp_path / "ok.png", tmp_path / "pipe.png"]).set_index("path")
    assert frame.loc["pipe.png", "status"] == "unreadable" and "FIFO" in frame.loc["pipe.png", "reason"]
    assert "FIFO" in table.loc[str(tmp_path / "pipe.png"), "error"]
    assert pd.notna(table.loc[str(tmp_path / "ok.png"), "label"])


def _fifo_in_place_of(path: Path) -> Path:
    path.unlink()
    os.mkfifo(path)
    return path


def test_a_fifo_that_replaced_an_image_after_ingest_is_never_waited_on(tmp_path: Path) -> None:
    """Ingest saw a file; a FIFO stands there now: augment, export and the report answer, never block."""
    import datakit
    from tests.report_data import objects_manifest

    manifest = objects_manifest(tmp_path / "o", count=8)
    m = load_manifest(manifest)
    with_objects = m.annotations["image_id"].iloc[0]
    relative = m.images.set_index("id").at[with_objects, "path"]
    fifo = _fifo_in_place_of(m.image_path(relative))
    with deadline(120):
        exported = datakit.export(manifest, "imagefolder", tmp_path / "crops", crop_objects=True)
        report = datakit.balance_report(manifest, sections=["overview", "variance"], workers=1, show_progress=False)
        with pytest.raises(DatakitError, match=r"not a regular file \(FIFO"):
            datakit.augment(manifest, tmp_path / "aug", preset="light", split="all", workers=1, show_progress=False)
    assert any(s["path"] == relative and "cannot read the image" in s["reason"] for s in exported.report.skipped)
    (broken,) = report.sections["overview"]["broken_files"]
    assert broken["path"] == relative and "FIFO" in broken["reason"]
    assert fifo.exists() and not (tmp_path / "aug").exists()


def test_a_fifo_among_annotation_files_is_named_never_opened(tmp_path: Path) -> None:
    import datakit
    from tests.report_data import objects_manifest

    manifest = objects_manifest(tmp_path / "o", count=6)
    found = {}
    for fmt in ("yolo", "labelme", "masks", "voc"):
        datakit.export(manifest, fmt, tmp_path / fmt)
    label = _fifo_in_place_of(sorted((tmp_path / "yolo" / "labels").rglob("*.txt"))[0])
    os.mkfifo(label.parent / "orphan.txt")
    described = _fifo_in_place_of(sorted((tmp_path / "labelme").rglob("*.json"))[0])
    mask = _fifo_in_place_of(sorted((tmp_path / "masks" / "masks").rglob("*.png"))[0])
    xml = _fifo_in_place_of(sorted((tmp_path / "voc" / "Annotations").glob("*.xml"))[0])
    with deadline(120):
        for fmt in ("yolo", "labelme"):
            result = ingest(tmp_path / fmt, tmp_path / f"{fmt}.manifest", workers=1, show_progress=False)
            found[fmt] = {s["path"]: s["reason"] for s in result.skipped}
        for folder, file in (("masks", mask), ("voc", xml)):
            with pytest.raises(DatakitError, match=r"not a regular file \(FIFO") as caught:
                ingest(tmp_path / folder, tmp_path / f"{folder}.manifest", workers=1, show_progress=False)
            assert file.name in str(caught.value)
    yolo_label = label.relative_to(tmp_path / "yolo").as_posix()
    assert "FIFO" in found["yolo"][yolo_label] and "read without its objects" in found["yolo"][yolo_label]
    assert "FIFO" in found["yolo"][yolo_label.rsplit("/", 1)[0] + "/orphan.txt"]
    assert "FIFO" in found["labelme"][described.relative_to(tmp_path / "labelme").as_posix()]


# ---------------------------------------------------------------------------------------------
# 4. outputs that overwrite inputs


def test_predict_csv_onto_an_input_image_is_refused(digits_run, tmp_path: Path) -> None:
    image = write_png(tmp_path / "ok.png", 8, 8, mode="L")
    before = image.read_bytes()
    for target in (image, tmp_path / "new.png"):
        result = runner.invoke(app, ["predict", str(digits_run.run_dir), str(image), "--csv", str(target)])
        assert result.exit_code == 2, result.output
        assert "--csv" in result.output
    assert image.read_bytes() == before and not (tmp_path / "new.png").exists()


def test_ingest_output_onto_its_input_or_an_existing_file_is_refused(tmp_path: Path) -> None:
    src = _two_classes(tmp_path / "src")
    same = runner.invoke(app, ["ingest", str(src), "-o", str(src)])
    assert same.exit_code == 2 and "is the input itself" in same.output
    assert not (src / "manifest.json").exists()
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    result = runner.invoke(app, ["ingest", str(src), "-o", str(existing)])
    assert result.exit_code == 2 and "exists and is a file" in result.output and "Traceback" not in result.output
    assert existing.read_text() == "keep me"


# ---------------------------------------------------------------------------------------------
# 5. pipeline names that escape


@pytest.mark.parametrize("name", ["../../../escaped", "/tmp/abs", "..", ".hidden", "a/b"])
def test_a_pipeline_name_must_be_plain_and_nothing_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              name: str) -> None:
    work = tmp_path / "a" / "b" / "c" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    with pytest.raises(DatakitError, match="must be a plain name"):
        run_pipeline({"name": name, "steps": [{"sample": {"name": "digits"}}]}, show_progress=False)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a", "a/b", "a/b/c", "a/b/c/work"]
