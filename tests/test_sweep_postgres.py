"""Two sweep workers on one study in a real PostgreSQL server that the test starts on 127.0.0.1.

The server is Debian's `postgresql` package (initdb and pg_ctl); `.ci/run` installs it. As root
(as CI runs) the server runs as the `postgres` user, since PostgreSQL refuses to run as root.
Without the binaries or the driver (psycopg, the `test` extra) the test is skipped with the reason.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import optuna
import pytest
import yaml

from tests.conftest import REPO
from datakit.sweep_storage import storage_url
from tests.test_sweep import FAST, _space, digits_300  # noqa: F401  (digits_300 is a fixture)

PG_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


def _pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, or Debian's versioned folder (newest first)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for pattern in PG_BIN_GLOBS:
        for folder in sorted(glob.glob(pattern), reverse=True):
            if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
                return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's `postgresql` "
                    "package (apt-get install -y postgresql) to run this test")
    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):
        pytest.skip("no PostgreSQL driver for SQLAlchemy: pip install -e '.[test]' installs psycopg")
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the `postgres` user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without `runuser` to start PostgreSQL as the postgres user")
        try:
            import pwd

            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    home = Path(tempfile.mkdtemp(prefix="datakit-pg-"))
    if as_postgres:
        os.chown(home, account.pw_uid, account.pw_gid)
    data, port = home / "data", _free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_postgres, *args], capture_output=True, text=True, timeout=120)

    init = run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    if init.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr.strip()[-2000:]}")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "server.log"), "-w",
                "-t", "60", "start")
    try:
        if start.returncode != 0:
            log = (home / "server.log").read_text(errors="replace")[-2000:] if (home / "server.log").exists() else ""
            pytest.fail(f"pg_ctl start failed: {start.stderr.strip()} {log}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow  # about 30-45 s: two workers, five trials of real training
def test_two_workers_on_postgresql_one_killed_mid_trial_every_combination_completes_once(
        postgres_url: str, digits_300: Path, tmp_path: Path) -> None:
    import signal

    lrs = [0.005, 0.01, 0.02, 0.03]
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(_space({"optim.lr": lrs}) | {"set": {**FAST, "epochs": 5}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def worker(name: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "datakit", "sweep", str(digits_300), "--space", str(space),
                                 "-o", str(tmp_path / name), "--storage", postgres_url, "--study-name", "shared",
                                 "-q", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    doomed, survivor = worker("doomed"), worker("survivor")
    # kill the first worker with SIGKILL as soon as its first trial has finished an epoch
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and doomed.poll() is None \
            and not list((tmp_path / "doomed" / "trials").glob("trial-*/metrics.csv")):
        time.sleep(0.02)
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate(timeout=60)
    started = list((tmp_path / "doomed" / "trials").glob("trial-*/metrics.csv"))
    assert started, "the first worker never started a trial"
    killed = int(started[0].parent.name.removeprefix("trial-"))

    stdout, stderr = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, stderr
    summary = json.loads(stdout)
    # the survivor found the dead worker's trial by its pid and ran that combination itself
    assert any(line.startswith(f"trial {killed} was left running by ") and line.endswith("queued to run again")
               for line in summary["recovered"]), summary["recovered"]

    study = optuna.load_study(study_name="shared", storage=storage_url(postgres_url))
    trials = study.get_trials()
    states = optuna.trial.TrialState
    finished = [t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]
    # exactly once: one complete (or pruned) trial per grid combination, nothing left running or queued
    assert sorted(t.params["optim.lr"] for t in finished) == lrs
    assert not [t for t in trials if t.state in (states.RUNNING, states.WAITING)]
    dead = next(t for t in trials if t.number == killed)
    assert dead.state == states.FAIL and "died mid-trial" in dead.user_attrs["error"]
    retry = [t for t in finished if t.system_attrs.get("failed_trial") == killed]
    assert len(retry) == 1 and retry[0].params == dead.params
    assert retry[0].user_attrs["worker"] != dead.user_attrs["worker"]
    # the survivor's results list every trial, the killed one as interrupted
    rows = {r["trial"]: r for r in summary["results"]}
    assert rows[killed]["state"] == "interrupted" and len(rows) == len(trials)


def test_without_postgresql_binaries_the_test_is_skipped_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.test_sweep_postgres as this

    monkeypatch.setattr(this, "PG_BIN_GLOBS", ())
    monkeypatch.setenv("PATH", "")
    assert this._pg_bin() is None  # the fixture then skips, naming the package to install
