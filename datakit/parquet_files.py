"""Reading and writing Parquet files on the local disk, whatever their names.

pyarrow takes a path string for a URI when it looks like one: a manifest folder named
``aug:heavy`` made ``aug:heavy/images.parquet`` "Unrecognized filesystem type in URI". Every
Parquet file datakit reads or writes goes through here, with the local file system named and an
absolute path, so a name is never parsed as a URI.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # info reads Parquet with pyarrow alone and must not import pandas
    import pandas as pd


def _local(path: str | os.PathLike[str]) -> tuple[str, Any]:
    from pyarrow.fs import LocalFileSystem

    # LocalFileSystem wants an absolute path: a relative one with a colon is still taken for a URI
    return os.path.abspath(os.fspath(path)), LocalFileSystem()


def read_parquet(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A local Parquet file as a DataFrame."""
    import pandas as pd

    where, filesystem = _local(path)
    return pd.read_parquet(where, columns=list(columns) if columns is not None else None, filesystem=filesystem)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """``df`` (without its index) to a local Parquet file."""
    where, filesystem = _local(path)
    df.to_parquet(where, index=False, engine="pyarrow", filesystem=filesystem)


def open_parquet(path: str | os.PathLike[str]) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` over a local file, for reading its schema and columns."""
    import pyarrow.parquet as pq

    where, filesystem = _local(path)
    return pq.ParquetFile(where, filesystem=filesystem)
