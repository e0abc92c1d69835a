"""`datakit augment` on the inputs that used to break it: odd folder names, outputs inside inputs,
parents changed since ingest, edited annotations, specs that fail at run time."""

from __future__ import annotations

from pathlib import Path

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
