"""Where a sweep's trials live: an Optuna database that several processes or machines can share.

SQLite (a file in the sweep directory) is the default and serves processes on one machine;
PostgreSQL or MySQL URLs (``postgresql://user:pass@host/db``) serve many machines. Running trials
send a heartbeat, so a trial whose process was killed is marked failed after ``GRACE_SECONDS`` and
queued to run again, instead of blocking the sweep as "running" forever.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import optuna

from datakit.errors import DatakitError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the retries below still apply
    fcntl = None  # type: ignore[assignment]

HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
SQLITE_BUSY_TIMEOUT = 120  # seconds a process waits for another one's write to SQLite


def storage_url(value: str) -> str:
    """A database URL; a plain file path means an SQLite file."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).resolve()}"


# what two processes creating one database's tables at the same moment can see; the loser retries
_CREATION_RACES = ("already exists", "UNIQUE constraint failed", "duplicate key", "database is locked")


@contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """Processes on one machine open a new SQLite file one at a time (its tables are made on open)."""
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
    if not path or fcntl is None or path == ":memory:":
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_storage(value: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    url = storage_url(value)
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}} if url.startswith("sqlite") else {}
    for attempt in range(1, attempts + 1):
        try:
            with _creation_lock(url), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        except Exception as exc:  # SQLAlchemy: bad URL, missing driver, unreachable server, unwritable file
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if any(race in first for race in _CREATION_RACES) and attempt < attempts:
                time.sleep(0.2 * attempt)  # e.g. processes on several machines creating the tables together
                continue
            raise DatakitError(f"storage {url}: cannot open the Optuna database ({first})") from None
    raise AssertionError("unreachable")
