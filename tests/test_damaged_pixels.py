"""Files with a good header and damaged pixels (issue 11): train (uncached too), eval and predict
report each such file and go on. The files are damaged after ingest, so the manifest says ok."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from datakit.data import ImageClassificationDataset, Preprocess, screen_files
from datakit.evaluation import evaluate
from datakit.manifest import load_manifest, save_manifest
from datakit.prediction import predict
from datakit.training import train
from tests.conftest import TINY_TRAIN, truncate, write_jpeg, write_png


def _bad_crc_png(path: Path) -> Path:
    """A PNG whose header and IEND are intact but whose pixel data fails its checksum: nothing
    short of decoding it finds the damage."""
    data = bytearray(write_png(path, 8, 8).read_bytes())
    data[data.index(b"IDAT") + 14] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _damaged_copy(digits_small: Path, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """digits_small with its images beside it; three of them damaged after ingest."""
    m = load_manifest(digits_small)
    source = tmp_path / "images"
    shutil.copytree(m.root(), source)
    m.image_root = str(source)
    save_manifest(m, tmp_path / "m")
    paths = m.images["path"]
    victims = {"jpeg": source / paths.iloc[3], "png": source / paths.iloc[17], "crc": source / paths.iloc[29]}
    truncate(write_jpeg(victims["jpeg"], 64, 64), 0.6)  # a JPEG under a .png name: decoded by content
    truncate(write_png(victims["png"], 8, 8, mode="L"), 0.5)
    _bad_crc_png(victims["crc"])
    return tmp_path / "m", victims


def test_the_screen_names_truncated_files_and_the_dataset_replaces_what_slips_through(tmp_path: Path) -> None:
    good = [write_png(tmp_path / f"g{i}.png", 8, 8, mode="L", seed=i) for i in range(3)]
    cut = truncate(write_png(tmp_path / "cut.png", 8, 8), 0.5)
    crc = _bad_crc_png(tmp_path / "crc.png")
    failures = screen_files([good[0], cut, crc])
    assert list(failures) == [1] and "cut.png: damaged: PNG IEND chunk missing" in failures[1]
    dataset = ImageClassificationDataset([good[0], crc, good[1], good[2]], [0, 1, 2, 3],
                                         Preprocess(height=8, width=8, channels=1, resize="stretch"))
    x, y = dataset.__getitems__([0, 1, 2])
    # the damaged file is left out once and for all; the next file that decodes takes its place
    assert x.shape == (3, 1, 8, 8) and y.tolist() == [0, 2, 2]
    assert list(dataset.skipped) == [1] and "crc.png: cannot decode image" in dataset.skipped[1]
    assert dataset.__getitems__([1, 3])[1].tolist() == [2, 3]


def test_train_uncached_eval_and_predict_go_on_past_damaged_pixels(digits_small: Path, digits_run,
                                                                    tmp_path: Path, capsys) -> None:
    manifest, victims = _damaged_copy(digits_small, tmp_path)
    result = train(manifest, output=tmp_path / "run", show_progress=False, epochs=1,
                   **{**TINY_TRAIN, "data.cache": False})
    assert result.status == "completed"
    notes = " ".join(result.notes)
    # the truncated ones are screened out before the run and named; the one whose damage only a
    # decode shows is left out when it is reached, and named on stderr
    assert f"{victims['jpeg'].name}: damaged: JPEG end-of-image marker" in notes
    assert f"{victims['png'].name}: damaged: PNG IEND chunk missing" in notes
    assert f"{victims['crc'].name}: cannot decode image" in capsys.readouterr().err.replace("\n", "")
    metrics = evaluate(digits_run.run_dir, manifest, split="all", show_progress=False)
    assert sorted(Path(s["path"]).name for s in metrics["skipped"]) == sorted(v.name for v in victims.values())
    assert metrics["images"] == len(load_manifest(manifest).images) - 3
    good = next(p for p in victims["crc"].parent.rglob("*.png") if p not in victims.values())
    table = predict(digits_run.run_dir, [good, *victims.values()]).set_index("path")
    assert pd.notna(table.loc[str(good), "label"]) and pd.isna(table.loc[str(good), "error"])
    for victim in victims.values():
        assert pd.isna(table.loc[str(victim), "label"]) and "cannot decode" in table.loc[str(victim), "error"]
    assert np.isfinite(result.history[-1]["train_loss"])
