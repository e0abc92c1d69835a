"""datakit: from a folder of images to a trained, evaluated model you can trust.

The Python API and the CLI are the same functions: ``datakit.ingest(...)`` does what
``datakit ingest ...`` does, with the same arguments.
"""

__version__ = "0.1.0"

from datakit.errors import CheckFailed, DatakitError, ManifestError  # noqa: E402
from datakit.manifest import Manifest, load_manifest, save_manifest  # noqa: E402
from datakit.ingest import ingest  # noqa: E402
from datakit.info import info  # noqa: E402
from datakit.samples import sample  # noqa: E402
from datakit.convert import convert, export  # noqa: E402

# training, evaluation and prediction import torch (~2 s); load them on first use so that
# `import datakit` and commands that do not train stay fast
_LAZY = {
    "train": "datakit.training",
    "TrainResult": "datakit.training",
    "TrainConfig": "datakit.config",
    "evaluate": "datakit.evaluation",
    "evaluate_predictions": "datakit.metrics.scoring",
    "predict": "datakit.prediction",
    "sweep": "datakit.sweeping",
    "SweepResult": "datakit.sweeping",
    "run_pipeline": "datakit.pipeline",
    "PipelineResult": "datakit.pipeline",
    "augment": "datakit.augmentation.command",
    "balance_report": "datakit.report.runner",
    "Report": "datakit.report.runner",
}


def __getattr__(name: str):  # noqa: ANN202 - module attribute hook (PEP 562)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'datakit' has no attribute {name!r}")


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
    "sweep",
    "train",
]
