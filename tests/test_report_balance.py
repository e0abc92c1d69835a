"""balance-report: overview, class balance, recommendation, --fail-on (exit 1 when crossed, 2 when malformed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import datakit
from datakit.cli import app
from datakit.errors import DatakitError
from datakit.report import fail_on
from tests.conftest import truncate
from tests.report_data import objects_manifest, shapes_manifest, with_splits

runner = CliRunner()


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    return shapes_manifest(tmp_path_factory.mktemp("imb"), count=120, imbalance=0.25)


def _report(manifest: Path, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["balance-report", str(manifest), "--json", "--workers", "1", *args])
    data = json.loads(result.stdout) if result.exit_code in (0, 1) else None
    return result.exit_code, data


def test_imbalanced_shapes_counts_ratio_entropy(imbalanced):
    manifest, classes = imbalanced
    report = datakit.balance_report(manifest, sections=["overview", "balance"], show_progress=False)
    bal = report.sections["balance"]
    assert {c: bal["counts"][c]["total"] for c in classes} == classes
    assert bal["basis"] == "all"
    expected_ratio = max(classes.values()) / min(classes.values())
    assert bal["imbalance"] == pytest.approx(expected_ratio)
    assert report.metrics["imbalance"] == pytest.approx(expected_ratio)
    assert 0 < bal["entropy"] < 1
    overview = report.sections["overview"]
    assert overview["images"] == sum(classes.values()) and overview["broken"] == 0 and overview["classes"] == 4
    rec = bal["recommendation"]
    target = max(classes.values())
    assert rec["target"] == target
    assert rec["add"] == {c: target - n for c, n in classes.items() if n < target}
    # an unsplit manifest: augment refuses --split train there
    assert rec["command"] == f"datakit augment {manifest} -o {manifest}-balanced --balance --split all"
    # class weights make every class weigh the same in the loss
    weighted = {c: rec["class_weights"][c] * n for c, n in classes.items()}
    assert max(weighted.values()) == pytest.approx(min(weighted.values()), rel=1e-3)


def test_fail_on_exits_1_exactly_when_crossed(imbalanced):
    manifest, classes = imbalanced
    ratio = max(classes.values()) / min(classes.values())
    code, data = _report(manifest, "--fail-on", f"imbalance>{ratio - 0.01}", "--fail-on", "broken>0")
    assert code == 1
    assert data["failed"] == [f"imbalance = {ratio:g} (imbalance>{ratio - 0.01})"]
    code, data = _report(manifest, "--fail-on", f"imbalance>{ratio}", "--fail-on", "broken>0")
    assert code == 0 and data["failed"] == []
    code, _ = _report(manifest, "--fail-on", f"imbalance>={ratio}")
    assert code == 1


@pytest.mark.parametrize("expr,message", [
    ("imbalance", "is not METRIC OP NUMBER"),
    ("imbalance>>3", "is not METRIC OP NUMBER"),
    ("imbalance>three", "is not METRIC OP NUMBER"),
    ("imbalanse>3", "did you mean 'imbalance'"),
    ("", "is not METRIC OP NUMBER"),
])
def test_malformed_fail_on_exits_2(imbalanced, expr, message):
    manifest, _ = imbalanced
    result = runner.invoke(app, ["balance-report", str(manifest), "--fail-on", expr])
    assert result.exit_code == 2
    assert message in result.stderr
    with pytest.raises(DatakitError, match="METRIC OP NUMBER|did you mean"):
        fail_on.parse(expr)


def test_fail_on_parse_and_evaluate():
    cond = fail_on.parse(" duplicates >= 10 ")
    assert (cond.metric, cond.op, cond.threshold) == ("duplicates", ">=", 10.0)
    assert fail_on.evaluate([cond], {"duplicates": 10}) == ["duplicates = 10 (duplicates >= 10)"]
    assert fail_on.evaluate([cond], {"duplicates": 9}) == []
    # a metric the report did not measure (no splits: no leakage) counts as 0
    assert fail_on.evaluate([fail_on.parse("leakage>0")], {}) == []
    assert fail_on.evaluate([fail_on.parse("imbalance>3")], {"imbalance": float("inf")}) == ["imbalance = inf (imbalance>3)"]


def test_splits_small_split_and_missing_class(imbalanced, tmp_path, allow_outside):
    manifest, classes = imbalanced
    m = datakit.load_manifest(manifest)
    paths = sorted(m.images["path"])
    # three validation images, all circles; everything else in train
    circles = [p for p in paths if p.startswith("circle/")]
    assign = {p: "train" for p in paths}
    for p in circles[:3]:
        assign[p] = "val"
    out = with_splits(manifest, f"split-{tmp_path.name}", assign)
    report = datakit.balance_report(out, sections=["balance"], show_progress=False)
    bal = report.sections["balance"]
    assert bal["basis"] == "train"
    assert bal["counts"]["circle"] == {"train": classes["circle"] - 3, "val": 3, "total": classes["circle"]}
    assert bal["imbalance"] == pytest.approx((classes["circle"] - 3) / min(classes.values()))
    assert [s["split"] for s in bal["small_splits"]] == ["val"] and bal["small_splits"][0]["images"] == 3
    assert bal["missing_from_split"] == {"val": ["square", "star", "triangle"]}


def test_class_missing_from_train_is_infinite_imbalance(imbalanced, tmp_path, allow_outside):
    manifest, _ = imbalanced
    m = datakit.load_manifest(manifest)
    assign = {p: ("test" if p.startswith("star/") else "train") for p in m.images["path"]}
    out = with_splits(manifest, f"split-{tmp_path.name}", assign)
    code, data = _report(out, "--fail-on", "imbalance>100")
    assert code == 1
    assert data["metrics"]["imbalance"] == "inf"
    assert data["sections"]["balance"]["missing"] == ["star"]


def test_broken_files_counted_with_reason(tmp_path):
    from datakit.ingest import ingest
    from tests.conftest import write_jpeg

    src = tmp_path / "src"
    for i in range(4):
        write_jpeg(src / "a" / f"a{i}.jpg", seed=i)
        write_jpeg(src / "b" / f"b{i}.jpg", seed=10 + i)
    truncate(src / "b" / "b0.jpg")
    ingest(src, tmp_path / "m", workers=1, show_progress=False)
    code, data = _report(tmp_path / "m", "--fail-on", "broken>0")
    assert code == 1
    overview = data["sections"]["overview"]
    assert overview["broken"] == 1 and overview["broken_files"][0]["path"] == "b/b0.jpg"
    assert "truncated" in overview["broken_files"][0]["reason"]
    assert data["sections"]["balance"]["counts"]["b"]["total"] == 3


def test_terminal_tables_and_errors(imbalanced, tmp_path):
    manifest, _ = imbalanced
    result = runner.invoke(app, ["balance-report", str(manifest), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "Class balance" in result.stdout and "datakit augment" in result.stdout
    result = runner.invoke(app, ["balance-report", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    result = runner.invoke(app, ["balance-report", str(manifest), "--sample", "0"])
    assert result.exit_code == 2 and "--sample" in result.stderr


def _run_recommendation(manifest: Path) -> str:
    """Run the augment command the report recommends, as a user would paste it; its split option."""
    import shlex

    command = datakit.balance_report(manifest, sections=["balance"], show_progress=False,
                                     workers=1).sections["balance"]["recommendation"]["command"]
    args = shlex.split(command)
    assert args[:2] == ["datakit", "augment"]
    result = runner.invoke(app, [*args[1:], "--workers", "1"])
    assert result.exit_code == 0, result.output
    return args[args.index("--split") + 1]


def test_recommended_augment_command_runs_on_unsplit_split_and_object_manifests(imbalanced, tmp_path,
                                                                                 allow_outside):
    manifest, _ = imbalanced
    assert _run_recommendation(manifest) == "all"
    split = with_splits(manifest, f"split-{tmp_path.name}", fractions=(0.8, 0.1, 0.1))
    assert _run_recommendation(split) == "train"
    objects = objects_manifest(tmp_path / "objects")
    assert _run_recommendation(objects) == "all"


def test_files_deleted_since_ingest_are_broken_not_usable(tmp_path, capfd):
    import shutil

    manifest, classes = shapes_manifest(tmp_path, count=40, seed=3)
    code, before = _report(manifest, "--fail-on", "broken>0")  # fills the pixel cache with every image
    assert code == 0 and before["sections"]["overview"]["ok_images"] == 40
    shutil.rmtree(tmp_path / "data" / "images" / "star")
    capfd.readouterr()
    code, data = _report(manifest, "--fail-on", "broken>0")
    assert code == 1 and data["failed"] == [f"broken = {classes['star']} (broken>0)"]
    overview = data["sections"]["overview"]
    assert overview["ok_images"] == 40 - classes["star"] and overview["broken"] == classes["star"]
    assert {(r["status"], r["reason"]) for r in overview["broken_files"]} == {("missing", "missing since ingest")}
    assert all(r["path"].startswith("star/") for r in overview["broken_files"])
    # counts and pixel statistics (the cache still holds the deleted files' entries) leave them out
    assert data["sections"]["balance"]["counts"]["star"]["total"] == 0
    assert "star" not in data["sections"]["variance"]["classes"]
    assert data["sections"]["variance"]["issue_counts"]["undecodable"] == 0
    assert "WARN" not in capfd.readouterr().err


def test_files_damaged_or_edited_since_ingest(tmp_path):
    import os
    import shutil

    manifest, _ = shapes_manifest(tmp_path, count=24, seed=5)
    images = tmp_path / "data" / "images"
    code, before = _report(manifest, "--fail-on", "broken>0")  # fills the pixel cache with every image
    assert code == 0 and before["sections"]["duplicates"]["exact_duplicates"] == 0 and before["notes"] == []
    damaged, edited, copied_from, touched = sorted(images.rglob("*.png"))[:4]
    truncate(damaged)
    shutil.copyfile(copied_from, edited)  # intact, but now the same picture as another file
    os.utime(touched, ns=(1, 1))  # only the time changed: the content is what ingest hashed
    code, data = _report(manifest, "--fail-on", "broken>0")
    assert code == 1 and data["metrics"]["broken"] == 1
    (row,) = data["sections"]["overview"]["broken_files"]
    assert row["path"] == damaged.relative_to(images).as_posix() and row["status"] == "truncated"
    assert row["reason"].endswith("(changed since ingest)")
    # the edited file is measured as it is now, under its new hash: an exact duplicate of its source
    assert data["sections"]["duplicates"]["exact_duplicates"] == 1
    assert data["notes"] == ["2 file(s) changed since ingest (1 now broken); the report reads them as they "
                             "are now: ingest again to update the manifest"]
    # ingested again, the manifest holds what the files are now
    datakit.ingest(images, manifest, workers=1, show_progress=False)
    code, again = _report(manifest)
    assert again["notes"] == [] and again["metrics"]["broken"] == 1 and again["sections"]["duplicates"]["exact_duplicates"] == 1


def test_undecodable_file_leaves_no_opencv_warning(tmp_path, capfd):
    from datakit.report.pixels import measure

    capfd.readouterr()
    assert measure(str(tmp_path / "gone.png")) == {"error": "cannot read the file (No such file or directory)"}
    (tmp_path / "empty.png").write_bytes(b"not an image at all")
    assert measure(str(tmp_path / "empty.png")) == {"error": "OpenCV could not decode the file"}
    assert capfd.readouterr().err == ""


def test_a_sample_keeps_exact_duplicates_and_label_conflicts(tmp_path):
    """--sample 10 dropped the copy of a circle filed as a square: 0 duplicates, conflicts 0, and
    --fail-on conflicts>0 passed; hashes need no pixels, so copies are always looked at."""
    import shutil

    manifest, _ = shapes_manifest(tmp_path, count=40, seed=2)
    images = tmp_path / "data" / "images"
    original = sorted((images / "circle").glob("*.png"))[0]
    shutil.copyfile(original, images / "square" / "copy.png")
    datakit.ingest(images, manifest, workers=1, show_progress=False)
    code, full = _report(manifest, "--fail-on", "conflicts>0")
    assert code == 1 and full["metrics"]["conflicts"] == 1
    for seed in ("0", "1", "2"):
        code, sampled = _report(manifest, "--sample", "10", "--seed", seed, "--fail-on", "conflicts>0")
        assert code == 1 and sampled["metrics"]["conflicts"] == 1
        assert sampled["sections"]["duplicates"]["exact_duplicates"] == 1
