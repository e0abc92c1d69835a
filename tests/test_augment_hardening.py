"""`datakit augment` on the inputs that used to break it: odd folder names, outputs inside inputs,
parents changed since ingest, edited annotations, specs that fail at run time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import datakit
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
