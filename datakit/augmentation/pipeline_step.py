"""The pipeline's ``augment`` step: ``datakit augment`` between ingest/split and train.

::

    steps:
      - sample: {name: shapes, count: 400}
      - ingest: {}
      - split: {val: 0.2, test: 0.2}
      - augment: {preset: medium, copies: 2}    # the train split only; val and test carried unchanged
      - train: {epochs: 10}                     # trains on the augmented manifest

Without a split step, give ``split: all`` (every image is augmented, and training then splits the
result keeping each derived image with its parent). The options are those of ``datakit augment``;
``spec`` is a spec file (read relative to the pipeline file) or the short form inline, a list of
``{TransformName: {param: value}}``. ``verify: true`` regenerates every derived image afterwards and
fails the step on any difference.
"""

from __future__ import annotations

import os
from typing import Any


def augment_step(ctx: Any, manifest: str | None = None, output: str | None = None, preset: str | None = None,
                 spec: Any = None, orientation: str | None = None, task: str | None = None,
                 copies: int | None = None, split: str = "train", balance: bool = False, target: int | None = None,
                 seed: int | None = None, workers: int = 1, verify: bool = False,
                 table_format: str = "parquet") -> dict[str, Any]:
    """Augmented copy of a manifest (default: the latest) with lineage; it becomes the latest manifest."""
    from datakit.augmentation.command import augment
    from datakit.augmentation.summary import augment_summary, verify_summary
    from datakit.errors import DatakitError

    if isinstance(spec, (str, os.PathLike)):
        spec = ctx.input_path(spec)
    out = ctx.output_path(output)
    result = augment(ctx.input_path(manifest, "manifest"), out, preset=preset, spec=spec, orientation=orientation,
                     task=task, copies=copies, split=split, balance=balance, target=target,
                     seed=ctx.seed if seed is None else seed, workers=workers, show_progress=ctx.show_progress,
                     table_format=table_format)
    ctx.show(lambda c: augment_summary(c, result))
    results = {"manifest": str(result.output), "pipeline": result.pipeline, "source": result.source,
               "derived": result.derived, "carried": result.carried, "split": result.split, "mode": result.mode,
               "before": result.before, "after": result.after, "objects": result.objects,
               "seconds": result.seconds}
    if verify:
        checked = augment(verify=out, workers=workers, show_progress=ctx.show_progress)
        ctx.show(lambda c: verify_summary(c, checked))
        if not checked.passed:
            raise DatakitError(f"{out}: verification failed: {len(checked.corrupt)} corrupt, "
                               f"{len(checked.version_mismatch)} version mismatch, {len(checked.missing)} missing, "
                               f"{len(checked.parent_changed)} with a changed parent, "
                               f"{len(checked.objects_differ)} whose objects differ")
        results["verified"] = checked.ok
    return results
