"""datakit: from a folder of images to a trained, evaluated model you can trust.

The Python API and the CLI are the same functions: ``datakit.ingest(...)`` does what
``datakit ingest ...`` does, with the same arguments.
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys
import types as _types

# albumentations asks PyPI for a newer version on import (a network call with a timeout, in
# every DataLoader worker and sweep trial); datakit never reaches the network at run time.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from datakit.errors import CheckFailed, DatakitError, ManifestError  # noqa: E402

# Everything else loads on first use, so that `import datakit` and the CLI's start-up import
# neither pandas/pyarrow/numpy/PIL/cv2 nor torch (see tests/test_startup.py). Name -> module.
_LAZY = {
    "Manifest": "datakit.manifest",
    "load_manifest": "datakit.manifest",
    "save_manifest": "datakit.manifest",
    "ingest": "datakit.ingest",
    "info": "datakit.info",
    "sample": "datakit.samples",
    "convert": "datakit.convert",
    "export": "datakit.convert",
    "train": "datakit.training",
    "TrainResult": "datakit.training",
    "TrainConfig": "datakit.config",
    "evaluate": "datakit.evaluation",
    "evaluate_predictions": "datakit.metrics.scoring",
    "predict": "datakit.prediction",
    "sweep": "datakit.sweeping",
    "SweepResult": "datakit.sweeping",
    "run_pipeline": "datakit.pipeline",
    "split": "datakit.splitting",
    "SplitResult": "datakit.splitting",
    "PipelineResult": "datakit.pipeline",
    "augment": "datakit.augmentation.command",
    "balance_report": "datakit.report.runner",
    "Report": "datakit.report.runner",
}


class _Package(_types.ModuleType):
    """Keeps ``datakit.ingest`` (and info, convert) the function, as the eager imports made it.

    Importing the submodule ``datakit.ingest`` sets the package attribute ``ingest`` to the module;
    that assignment is dropped for API names, so ``datakit.ingest(...)`` stays the function
    (``from datakit.ingest import x`` still finds the module in sys.modules)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):  # noqa: ANN202 - module attribute hook (PEP 562)
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'datakit' has no attribute {name!r}")


def __dir__() -> list[str]:  # the API names too, though they load on first use (tab completion, help)
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CheckFailed",
    "DatakitError",
    "Manifest",
    "ManifestError",
    "PipelineResult",
    "SweepResult",
    "TrainConfig",
    "TrainResult",
    "Report",
    "__version__",
    "augment",
    "balance_report",
    "convert",
    "evaluate",
    "evaluate_predictions",
    "export",
    "info",
    "ingest",
    "load_manifest",
    "predict",
    "run_pipeline",
    "sample",
    "save_manifest",
    "split",
    "SplitResult",
    "sweep",
    "train",
]
