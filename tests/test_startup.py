"""Start-up stays light: `import datakit.cli` (every command pays it) and `import datakit` load no
data or ML library, and the lazy API still hands out the functions (issue 11, start-up time)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("pandas", "pyarrow", "numpy", "PIL", "cv2", "torch", "torchvision", "albumentations", "optuna", "matplotlib",
         "scipy", "pycocotools", "yaml")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    return sorted(loaded & set(HEAVY))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import datakit.cli") == []


def test_importing_the_package_loads_no_heavy_library() -> None:
    assert _loaded_after("import datakit") == []


def test_help_and_version_load_no_heavy_library() -> None:
    code = ("import sys\nfrom datakit.cli import app\nfor args in (['--help'], ['--version'], ['ingest', '--help']):\n"
            "    try:\n        app(args)\n    except SystemExit:\n        pass")
    assert _loaded_after(code) == []


def test_the_lazy_api_still_gives_the_functions() -> None:
    code = ("import datakit, datakit.ingest, datakit.info, datakit.convert\n"
            "from datakit.ingest import scan_images\n"
            "assert callable(datakit.ingest) and datakit.ingest.__module__ == 'datakit.ingest'\n"
            "assert datakit.info.__module__ == 'datakit.info' and datakit.export.__module__ == 'datakit.convert'\n"
            "assert datakit.Manifest.__name__ == 'Manifest' and callable(datakit.load_manifest)\n"
            "assert set(datakit.__all__) <= set(dir(datakit))\n"  # lazy names listed too (tab completion)
            "import sys\nassert 'datakit.training' not in sys.modules")  # ... without loading them
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_version_flag() -> None:
    out = subprocess.run([sys.executable, "-m", "datakit", "--version"], cwd=REPO, capture_output=True, text=True)
    import datakit

    assert out.returncode == 0 and out.stdout.strip() == f"datakit {datakit.__version__}"


def test_albumentations_never_asks_pypi_for_updates() -> None:
    # albumentations' import-time version check is a network call; datakit turns it off unless
    # the user set the variable themselves.
    probe = ("import os\nos.environ.pop('NO_ALBUMENTATIONS_UPDATE', None)\nimport datakit\n"
             "from unittest import mock\nimport albumentations.check_version as cv\n"
             "with mock.patch.object(cv, 'check_for_updates', side_effect=AssertionError('network')):\n"
             "    import importlib, albumentations\n    importlib.reload(albumentations)\n"
             "print(os.environ['NO_ALBUMENTATIONS_UPDATE'])")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"
