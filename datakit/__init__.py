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

__all__ = [
    "CheckFailed",
    "DatakitError",
    "Manifest",
    "ManifestError",
    "__version__",
    "info",
    "ingest",
    "load_manifest",
    "sample",
    "save_manifest",
]
