"""`datakit augment --verify OUT`: regenerate every derived image from its lineage, compare bytes.

For each derived row: the parent must still be in the manifest with the recorded content hash,
the pipeline must be in the header, and rendering the parent with the recorded seed must give
exactly the bytes on disk (and the semantic mask PNG, when there is one). A difference is
reported as a *version mismatch* when the albumentations/OpenCV/NumPy versions recorded with the
pipeline differ from the running ones (the images may be fine; the library changed), and as
*corrupt* when they are the same (the file changed).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from datakit.augmentation import render as rendering
from datakit.errors import DatakitError


@dataclass
class VerifyResult:
    manifest: Path
    checked: int
    ok: int
    corrupt: list[dict[str, str]] = field(default_factory=list)
    version_mismatch: list[dict[str, str]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    parent_changed: list[dict[str, str]] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=dict)
    """{"recorded": {pipeline hash: versions}, "running": versions}."""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not (self.corrupt or self.version_mismatch or self.missing or self.parent_changed)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["manifest"] = str(self.manifest)
        data["passed"] = self.passed
        return data


_VERIFY: dict[str, Any] = {}


def _init(pipelines: dict[str, Any]) -> None:
    # no SIGINT change here: with one worker this runs in the caller's process, where ignoring
    # Ctrl-C would outlive the call (pool workers ignore it through offline._pool_init)
    import cv2

    from datakit.augmentation.specs import from_header

    cv2.setNumThreads(1)
    _VERIFY.clear()
    # a pipeline recorded without "seeding" was made when every transform shared one seed
    _VERIFY.update({h: (from_header(entry), entry.get("encoding") or rendering.ENCODING, entry.get("seeding", "shared"))
                    for h, entry in pipelines.items()})


def _check(task: tuple[rendering.Job, str, str, str | None]) -> tuple[str, str]:
    """(outcome, detail) for one derived image: ok, differs or missing."""
    job, pipeline_hash, path, mask_path = task
    if not Path(path).is_file():
        return "missing", "file does not exist"
    compose, encoding, seeding = _VERIFY[pipeline_hash]
    try:
        done = rendering.render(compose, job, encoding, seeding=seeding)
    except rendering.ParentChanged:
        return "parent_changed", "changed since it was augmented"
    on_disk = Path(path).read_bytes()
    if on_disk != done.image:
        return "differs", (f"regenerated image differs (sha256 {hashlib.sha256(on_disk).hexdigest()[:12]} on disk, "
                           f"{done.sha256[:12]} regenerated)")
    if mask_path is not None:
        if not Path(mask_path).is_file():
            return "missing", "semantic mask file does not exist"
        if Path(mask_path).read_bytes() != done.semantic_mask:
            return "differs", "regenerated semantic mask differs"
    return "ok", ""


def verify(output: str | os.PathLike[str], workers: int = 1, show_progress: bool = True) -> VerifyResult:
    from datakit.augmentation.offline import _jobs_for, _objects_by_image, _versions, run_jobs
    from datakit.console import progress_bar
    from datakit.manifest import load_manifest

    started = time.perf_counter()
    manifest = load_manifest(output)
    images = manifest.images
    derived = images[images["parent_id"].notna()]
    if derived.empty:
        raise DatakitError(f"{manifest.location}: no derived images to verify (no row has a parent_id)")
    running = _versions()
    recorded = {h: {k: e.get(k) for k in running} for h, e in manifest.pipelines.items()}
    result = VerifyResult(manifest=manifest.location, checked=len(derived), ok=0,
                          versions={"recorded": recorded, "running": running})
    parents = images.set_index("id", drop=False)
    objects = _objects_by_image(manifest)
    root = manifest.root()
    tasks = []
    for _, row in derived.iterrows():
        ident, parent_id = str(row["id"]), str(row["parent_id"])
        if parent_id not in parents.index:
            result.parent_changed.append({"id": ident, "path": row["path"], "reason": f"parent {parent_id} is not in the manifest"})
            continue
        parent = parents.loc[parent_id]
        parent_file = root / parent["path"]
        if not parent_file.is_file():
            result.parent_changed.append({"id": ident, "path": row["path"], "reason": f"parent file {parent['path']} is missing"})
            continue
        pipeline_hash = str(row["pipeline"]) if pd.notna(row["pipeline"]) else None
        if pipeline_hash not in manifest.pipelines:
            raise DatakitError(f"{manifest.location}: image {ident}: pipeline {pipeline_hash} is not in the header's "
                               "'pipelines'; the lineage is incomplete")
        if pd.isna(row["seed"]):
            raise DatakitError(f"{manifest.location}: image {ident}: no seed recorded; cannot regenerate it")
        (job, _, _, _, _), = _jobs_for([(parent, 0)], manifest, objects, pipeline_hash, 0, 0)
        job.seed = int(row["seed"])
        job.out_format = str(row["format"])
        # the render hashes the parent bytes it decodes and stops at a parent that is not the recorded one
        job.parent_sha256 = str(row["parent_sha256"]) if pd.notna(row["parent_sha256"]) else None
        # the objects that went in are the parent's, as recorded at augmentation time
        mask_path = str(root / row["semantic_mask"]) if pd.notna(row["semantic_mask"]) else None
        tasks.append(((job, pipeline_hash, str(root / row["path"]), mask_path), ident, str(row["path"]), pipeline_hash))
    with progress_bar("Verifying", len(tasks), show_progress) as advance:
        outcomes = run_jobs([t[0] for t in tasks], _check, (manifest.pipelines,), workers, advance,
                            init=_init)
    for (job, ident, path, pipeline_hash), (outcome, detail) in zip(tasks, outcomes):
        if outcome == "ok":
            result.ok += 1
        elif outcome == "parent_changed":
            parent_path = os.path.relpath(job[0].parent_path, root)
            result.parent_changed.append({"id": ident, "path": path, "reason": f"parent file {parent_path} {detail}"})
        elif outcome == "missing":
            result.missing.append({"id": ident, "path": path, "reason": detail})
        elif recorded.get(pipeline_hash) != running:
            changed = {k: f"{recorded[pipeline_hash].get(k)} -> {v}" for k, v in running.items()
                       if recorded[pipeline_hash].get(k) != v}
            result.version_mismatch.append({"id": ident, "path": path,
                                            "reason": f"{detail}; made with other library versions ({json.dumps(changed)})"})
        else:
            result.corrupt.append({"id": ident, "path": path, "reason": detail})
    result.seconds = round(time.perf_counter() - started, 3)
    return result
