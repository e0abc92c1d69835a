"""``datakit.augment(...)``: the one function behind ``datakit augment`` (offline, verify, preview)."""

from __future__ import annotations

import os
from typing import Any

from datakit.errors import DatakitError
from datakit.manifest_header import takes_allow_outside

DEFAULT_PRESET = "medium"


@takes_allow_outside
def augment(
    manifest: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    preset: str | None = None,
    spec: Any = None,
    orientation: str | None = None,
    task: str | None = None,
    copies: int | None = None,
    split: str = "train",
    balance: bool = False,
    target: int | None = None,
    seed: int = 0,
    workers: int = 1,
    verify: str | os.PathLike[str] | None = None,
    preview: str | os.PathLike[str] | None = None,
    preview_count: int = 4,
    show_progress: bool = True,
    table_format: str = "parquet",
) -> Any:
    """Augment a manifest's images into a new manifest with lineage; or verify one; or draw a preview.

    - ``augment(MANIFEST, OUT, preset="medium", copies=3)``: ``copies`` derived images per image of
      ``split`` (default train; ``"all"`` for every image), written with the rest under ``OUT``.
    - ``balance=True`` / ``target=N``: derived images only for classes below the largest class / N.
    - ``spec=``: a spec file (albumentations' ``A.save`` form or a list of transforms), a list of
      transforms, or an albumentations transform, instead of a preset.
    - ``verify=OUT``: regenerate every derived image of ``OUT`` and compare bytes (VerifyResult).
    - ``preview=grid.png``: originals beside augmented versions with boxes and masks drawn.
    """
    if verify is not None:
        if manifest is not None or output is not None:
            raise DatakitError("--verify takes the augmented manifest alone: datakit augment --verify OUT")
        from datakit.augmentation.verify import verify as run_verify

        return run_verify(verify, workers=workers, show_progress=show_progress)
    if manifest is None:
        raise DatakitError("give the manifest to augment (datakit augment MANIFEST -o OUT), or --verify OUT")
    if output is None and preview is None:
        raise DatakitError("give an output folder (-o OUT) for the augmented manifest, or --preview grid.png")
    if preset is not None and spec is not None:
        raise DatakitError("give either --preset or --spec, not both")
    from datakit.augmentation.offline import augment_manifest, choose_task
    from datakit.augmentation.specs import resolve
    from datakit.manifest import load_manifest

    loaded = load_manifest(manifest)
    if preview is not None:
        from datakit.manifest_header import check_output_file

        check_output_file(preview, "--preview", loaded)
    chosen_task = choose_task(loaded, task)
    if spec is not None and orientation is not None:
        raise DatakitError("--orientation goes with a preset; a spec file says exactly which transforms run")
    pipeline = resolve(spec if spec is not None else (preset or DEFAULT_PRESET), task=chosen_task,
                       orientation=orientation)
    from datakit.augmentation.render import check_8bit_output

    check_8bit_output(pipeline.compose)
    pipeline.hash()  # a pipeline that cannot be serialized has no lineage: say so before any image is made
    result = None
    preview_result = None
    if preview is not None:
        from datakit.augmentation.preview import make_preview

        preview_result = make_preview(loaded, pipeline, split, seed, preview, count=preview_count)
    if output is not None:
        result = augment_manifest(loaded, output, pipeline, chosen_task, copies=copies, split=split,
                                  balance=balance, target=target, seed=seed, workers=workers,
                                  show_progress=show_progress, table_format=table_format)
        result.preview = preview_result
        return result
    return preview_result
