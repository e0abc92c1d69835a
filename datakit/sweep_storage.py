"""Where a sweep's trials live: an Optuna database that several processes or machines can share.

SQLite (a file in the sweep directory) is the default and serves processes on one machine;
PostgreSQL or MySQL URLs (``postgresql://user:pass@host/db``) serve many machines.

A process that dies mid-trial (killed, out of memory, power cut) leaves its trial ``running``.
Two checks find such trials and queue their configuration to run again (Optuna's
``RetryHeartbeatStaleTrialCallback``), so no combination is lost and none runs twice:

- every trial records its owner (host, pid namespace, pid and the process's start time); a trial
  owned by a process on this host that no longer exists is stale at once (``reclaim_dead_trials``);
- running trials send a heartbeat every ``HEARTBEAT_SECONDS``; a trial on another host is stale
  when its heartbeat is older than ``GRACE_SECONDS`` (Optuna's ``fail_stale_trials``).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import socket
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

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
    """A database URL; a plain file path means an SQLite file.

    ``postgresql://`` means SQLAlchemy's default driver (psycopg2); where only psycopg 3 is
    installed, the URL names it (``postgresql+psycopg://``) so either driver works.
    """
    if "://" not in value:
        return f"sqlite:///{Path(value).resolve()}"
    scheme, rest = value.split("://", 1)
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg2") is None \
            and importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg://{rest}"
    return value


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
                    heartbeat_stale_trial_callback=_Retry())
        except Exception as exc:  # SQLAlchemy: bad URL, missing driver, unreachable server, unwritable file
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if any(race in first for race in _CREATION_RACES) and attempt < attempts:
                time.sleep(0.2 * attempt)  # e.g. processes on several machines creating the tables together
                continue
            raise DatakitError(f"storage {url}: cannot open the Optuna database ({first})") from None
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# who owns a running trial, and whether that process still exists


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name in (...) may hold spaces


def _pid_namespace() -> str | None:
    """Containers that share a host name (``--network host``) still see different pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def owner() -> dict[str, Any]:
    """What a trial records about the process that runs it."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid()),
            "pid_namespace": _pid_namespace()}


def _checkable_here(who: Any) -> bool:
    """Whether this process can see ``who``'s pid: same host name and the same pid namespace."""
    return isinstance(who, dict) and who.get("host") == socket.gethostname() and \
        who.get("pid_namespace") == _pid_namespace() and isinstance(who.get("pid"), int)


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return True  # cannot tell: leave it to the heartbeat
    now = _start_time(pid)
    if started is not None and now is not None and now != started:
        return False  # the pid was reused by a new process
    if now is not None and Path(f"/proc/{pid}/status").is_file():
        status = Path(f"/proc/{pid}/status").read_text(errors="replace")
        if "\nState:\tZ" in status:
            return False  # killed, waiting for its parent to reap it
    return True


MAX_RETRIES = 2  # a configuration whose process died three times (out of memory?) is not run again


class _Retry(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a stale trial (a WAITING copy with the same parameters), remembering which."""

    def __init__(self) -> None:
        super().__init__(max_retry=MAX_RETRIES)
        self.seen: list[tuple[int, bool]] = []  # (trial number, queued again)
        self.reported = 0  # how many of ``seen`` reclaim_dead_trials has returned

    def __call__(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> None:
        history = trial.system_attrs.get("retry_history", [])
        self.seen.append((trial.number, len(history) < MAX_RETRIES))
        super().__call__(study, trial)


@dataclass
class Reclaimed:
    """A running trial whose process died: failed, and queued to run again unless it died too often."""

    trial: int
    owner: str
    reason: str
    queued: bool

    def line(self) -> str:
        then = "queued to run again" if self.queued else f"not run again (its process died {MAX_RETRIES + 1} times)"
        return f"trial {self.trial} was left running by {self.owner} ({self.reason}): {then}"


def _owner_name(trial: "optuna.trial.FrozenTrial") -> str:
    who = trial.user_attrs.get("owner")
    return f"{who.get('host')}:{who.get('pid')}" if isinstance(who, dict) else "an unknown process"


def reclaim_dead_trials(study: "optuna.Study") -> list[Reclaimed]:
    """Fail the running trials whose process is gone and queue each one's configuration again.

    A trial owned by a process on this host is checked by pid at once; any other running trial is
    failed by Optuna once its heartbeat is older than the grace period. Several processes may call
    this at the same moment: the storage lets only one of them fail a trial, and only that one
    queues the retry.
    """
    storage = study._storage
    # Optuna wraps an RDBStorage in its own cache; both answer for the callback given to the storage
    getter = getattr(storage, "get_heartbeat_stale_trial_callback", None)
    retry = getter() if getter is not None else None
    if not isinstance(retry, _Retry):
        return []
    reasons: dict[int, tuple[str, str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            who = trial.user_attrs.get("owner")
            if not _checkable_here(who) or _alive(who["pid"], who.get("started")):
                continue  # alive, or not ours to judge: Optuna's heartbeat decides
            try:
                storage.set_trial_user_attr(trial._trial_id, "error",
                                            f"its process ({_owner_name(trial)}) died mid-trial")
                if not storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another process failed it first, and queues the retry
            reasons[trial.number] = (_owner_name(trial), "process gone")
            retry(study, copy.deepcopy(storage.get_trial(trial._trial_id)))
        optuna.storages.fail_stale_trials(study)  # other hosts: failed after GRACE_SECONDS without a heartbeat
    found = []
    # also the trials Optuna failed for a stale heartbeat when this process started a trial
    new, retry.reported = retry.seen[retry.reported:], len(retry.seen)
    for number, queued in new:
        owner_name, reason = reasons.get(number) or (
            _owner_name(study.get_trials(deepcopy=False)[number]), f"no heartbeat for {GRACE_SECONDS} s")
        found.append(Reclaimed(number, owner_name, reason, queued))
    return found
